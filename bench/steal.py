"""Stealing benchmark (issue 3): every loss, query budgets, StolenEncoder's ablation, defences.

Cells are resumable: a finished cell (its folder has a manifest) is read back, not re-run.
Results go to bench/results/steal.json; Markdown tables are printed.

    python bench/steal.py --victim runs/bench-foundation/victim-half \
        [--sweep-data fmnist:../shared/data/fashion-mnist] [--only losses,sweep,ablation,defences]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from sleuth.data import load_images, to_float
from sleuth.data.watermark import RotationWatermark
from sleuth.embed.run import watermark_accuracy
from sleuth.models import load_encoder, load_owner_key
from sleuth.models.probe import linear_probe, probe_accuracy
from sleuth.steal import StealConfig, run_steal
from sleuth.steal.defences import parse_defence
from sleuth.steal.losses import LOSSES as STEAL_LOSSES
from sleuth.steal.oracle import LocalOracle

LOSSES = list(STEAL_LOSSES)  # every loss in the registry
SWEEP = [250, 500, 1000, 2000, 5000]
DEFENCES = {
    "noise": ["noise:sigma=0.5", "noise:sigma=1", "noise:sigma=1,mean=10"],
    "topk": ["topk:k=32", "topk:k=8", "topk:k=1"],
    "round": ["round:decimals=1", "round:decimals=0"],
}


class Bench:
    def __init__(self, victim: Path, out: Path, task: str) -> None:
        self.victim, self.out, self.task = victim, out, task
        self.key = load_owner_key(victim / "owner-key.pt")
        self.wm = RotationWatermark.from_list(self.key.watermark["intervals"])
        data = load_images(self.key.split["data_spec"], self.key.split["part"])
        self.private = data.images[torch.as_tensor(self.key.split["private"][:2000])]
        self.victim_encoder = load_encoder(victim / "encoder.pt")
        self.ta = linear_probe(self.victim_encoder, task).accuracy

    def steal(self, name: str, cfg: StealConfig, defences=()) -> dict:
        folder = self.out / name
        if not (folder / "manifest.json").exists():
            start = time.perf_counter()
            run_steal(cfg, str(self.victim), folder, defences=defences, force=True, device="cpu")
            print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)
        manifest = json.loads((folder / "manifest.json").read_text())
        enc = load_encoder(folder / "encoder.pt")
        sa = linear_probe(enc, self.task).accuracy
        return {
            "SA": sa,
            "SA/TA": sa / self.ta,
            "watermark_accuracy": watermark_accuracy(
                enc, self.key.augmentation_predictor(), self.wm, self.private, seed=12345
            ),
            "queries_used": manifest["details"]["queries_used"],
            "steal_s": manifest["timings_s"]["steal"],
        }

    def defended_ta(self, specs: list[str]) -> float:
        """A legitimate user's linear probe trained and tested on defended answers."""
        oracle = LocalOracle(self.victim_encoder, "bench", [parse_defence(s) for s in specs])
        train, test = load_images(self.task, "train"), load_images(self.task, "test")
        tr = oracle.answer(to_float(train.images)).numpy()
        te = oracle.answer(to_float(test.images)).numpy()
        return probe_accuracy(tr, train.labels.numpy(), te, test.labels.numpy())[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--victim", type=Path, default=Path("runs/bench-foundation/victim-half"))
    ap.add_argument("--out", type=Path, default=Path("runs/bench-steal"))
    ap.add_argument("--task", default="demo")
    ap.add_argument("--sweep-data", default="fmnist:../shared/data/fashion-mnist")
    ap.add_argument("--only", default="losses,sweep,ablation,defences")
    ap.add_argument("--losses", default=",".join([*LOSSES, "stolenencoder"]))
    ap.add_argument("--results", type=Path, default=Path("bench/results/steal.json"))
    args = ap.parse_args()
    b = Bench(args.victim, args.out, args.task)
    results_file = args.results
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    results["machine"] = (
        f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    results["TA"] = b.ta
    public = {"data": b.key.split["data_spec"], "public_split": True, "queries": 2000}
    only = set(args.only.split(","))

    def save() -> None:
        results_file.parent.mkdir(parents=True, exist_ok=True)
        results_file.write_text(json.dumps(results, indent=2) + "\n")

    if "losses" in only:
        cells = results.setdefault("losses", {})
        for loss in args.losses.split(","):
            cfg = (
                StealConfig(method="stolenencoder", **public)
                if loss == "stolenencoder"
                else StealConfig(loss=loss, **public)
            )
            cells[loss] = b.steal(f"loss-{loss}", cfg)
            save()
    if "ablation" in only:
        cells = results.setdefault("ablation", {})
        cells["stolenencoder"] = results.get("losses", {}).get("stolenencoder") or b.steal(
            "loss-stolenencoder", StealConfig(method="stolenencoder", **public)
        )
        cells["stolenencoder-w/o-aug"] = b.steal(
            "ablation-noaug", StealConfig(method="stolenencoder", lam=0.0, **public)
        )
        save()
    if "sweep" in only:
        cells = results.setdefault("sweep", {})
        for method, loss in (("direct", "mse"), ("direct", "infonce"), ("stolenencoder", "mse")):
            label = loss if method == "direct" else method
            for q in SWEEP:
                cfg = StealConfig(method=method, loss=loss, queries=q, data=args.sweep_data)
                cells.setdefault(label, {})[str(q)] = b.steal(f"sweep-{label}-{q}", cfg)
                save()
    if "defences" in only:
        cells = results.setdefault("defences", {})
        for family, specs in DEFENCES.items():
            for spec in specs:
                row = {"TA": b.defended_ta([spec])}
                methods = ("stolenencoder", "direct") if family == "noise" else ("stolenencoder",)
                for method in methods:
                    cfg = StealConfig(method=method, **public)
                    tag = spec.replace(":", "-").replace(",", "-").replace("=", "")
                    row[method] = b.steal(f"def-{method}-{tag}", cfg, defences=[spec])
                cells.setdefault(family, {})[spec] = row
                save()
    save()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
