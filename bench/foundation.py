"""Foundation benchmark (issue 2): demo-preset cost, watermark strength, utility, overhead.

Trains, on the embedded demo data with the demo preset, a watermarked victim per interval split,
an unwatermarked encoder with the same seed (overhead and utility), and independent references
with other seeds; then scores every encoder on each victim's augmentation predictor and measures
linear-probe accuracy. Writes bench/results/foundation.json and prints Markdown tables.

    python bench/foundation.py [--data demo] [--out runs/bench-foundation] [--refs 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from sleuth.data import load_images
from sleuth.data.watermark import RotationWatermark
from sleuth.embed import from_preset, run_embed
from sleuth.embed.run import watermark_accuracy
from sleuth.models import load_encoder, load_owner_key
from sleuth.probe import linear_probe


def train(name: str, out: Path, **overrides) -> dict:
    folder = out / name
    if not (folder / "manifest.json").exists():
        start = time.perf_counter()
        run_embed(from_preset("demo", **overrides), folder, force=True, device="cpu")
        print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)
    return json.loads((folder / "manifest.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="demo")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-foundation"))
    ap.add_argument("--refs", type=int, default=3, help="independent references (seeds 1..N)")
    args = ap.parse_args()
    runs = {
        "victim-half": {"wm_intervals": "half", "seed": 0},
        "victim-flip": {"wm_intervals": "flip", "seed": 0},
        "plain-seed0": {"watermark": False, "seed": 0},
        **{f"ref-seed{s}": {"watermark": False, "seed": s} for s in range(1, args.refs + 1)},
    }
    manifests = {name: train(name, args.out, data=args.data, **kw) for name, kw in runs.items()}
    results: dict = {
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}",
        "runs": {},
    }
    for name, m in manifests.items():
        enc = load_encoder(args.out / name / "encoder.pt")
        results["runs"][name] = {
            "train_s": m["timings_s"]["train"],
            "wall_s": m["timings_s"]["wall_this_run"],
            "images_per_s": m["metrics"]["train_images_per_s"],
            "own_watermark_accuracy": m["metrics"].get("watermark_accuracy"),
            "probe_accuracy": linear_probe(enc, args.data).accuracy,
        }
    for victim in ("victim-half", "victim-flip"):
        key = load_owner_key(args.out / victim / "owner-key.pt")
        wm = RotationWatermark.from_list(key.watermark["intervals"])
        data = load_images(key.split.data_spec, key.split.part)
        private = data.images[torch.as_tensor(key.split.private[:2000])]
        results["runs"][victim]["scored_on_predictor"] = {
            name: watermark_accuracy(
                load_encoder(args.out / name / "encoder.pt"),
                key.augmentation_predictor(),
                wm,
                private,
                seed=12345,
            )
            for name in manifests
        }
    (Path("bench/results")).mkdir(parents=True, exist_ok=True)
    Path("bench/results/foundation.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
