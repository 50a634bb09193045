"""Would importing the statistics in a thread, while the forward passes run, shorten `sleuth
verify`? (issue 18, item 2). Measured before building it.

A verification process imports torch and the models' code, passes the challenge through every
model, then runs the statistics, whose imports (scipy, scikit-learn, statsmodels, and
`sleuth.verify` itself) take about a second. This times, in fresh processes taken in turn, the
part of a verification that the change would touch, on the demo's seven models (victim, suspect,
five references) over a real challenge's images:

- ``after``: the forward passes, then ``import sleuth.verify`` (today's order);
- ``thread``: ``import sleuth.verify`` in a thread started before the models are loaded, joined
  after the forward passes (the most a restructured CLI could overlap).

Needs a finished demo (`sleuth demo --out runs/demo`). Writes bench/results/import-overlap.json.

    python bench/import_overlap.py [--demo runs/demo] [--samples 500] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from sleuth.bench.runner import machine
from sleuth.fileio import atomic_write_text
from sleuth.models import load_owner_key
from sleuth.verify import ChallengeSettings, build_challenge

MODES = ("after", "thread")

CHILD = """
import sys, threading, time
start = time.perf_counter()
mode, images, models = sys.argv[1], sys.argv[2], sys.argv[3:]
import numpy as np
import torch
from sleuth.models import load_encoder
def stats():
    import sleuth.verify  # noqa: F401  (everything a verification imports beyond the models)
worker = threading.Thread(target=stats) if mode == "thread" else None
if worker:
    worker.start()
x = torch.from_numpy(np.load(images))
for m in models:
    load_encoder(m).represent(x)
worker.join() if worker else stats()
print(time.perf_counter() - start)
"""


def timed(mode: str, images: Path, models: list[Path]) -> float:
    """Seconds from the child's first line to its statistics being importable."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(images), *map(str, models)],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", default="runs/demo")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=7, help="measurements of each mode")
    parser.add_argument("--results", default="bench/results/import-overlap.json")
    args = parser.parse_args()
    demo = Path(args.demo)
    models = [
        demo / "victim" / "encoder.pt",
        demo / "stolen-mse" / "encoder.pt",
        *(r / "encoder.pt" for r in sorted(demo.glob("independent-*"))[:5]),
    ]
    key = load_owner_key(demo / "victim" / "owner-key.pt")
    images = build_challenge(key, ChallengeSettings(samples=args.samples)).images
    load_before = os.getloadavg()
    seconds: dict[str, list[float]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "images.npy"
        np.save(path, images.numpy())
        timed("after", path, models)  # warm the page cache; not counted
        for _ in range(args.rounds):
            for mode in MODES:
                seconds[mode].append(timed(mode, path, models))
    ratios = [a / t for a, t in zip(seconds["after"], seconds["thread"], strict=True)]
    results = {
        "samples": args.samples,
        "images": len(images),
        "models": len(models),
        "seconds": seconds,
        "median_s": {m: statistics.median(v) for m, v in seconds.items()},
        "median_ratio_after_over_thread": statistics.median(ratios),
        "ratio_range": [min(ratios), max(ratios)],
        "load_before": load_before[0],
        "load_after": os.getloadavg()[0],
        "machine": machine(),
    }
    atomic_write_text(Path(args.results), json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: results[k] for k in ("median_s", "median_ratio_after_over_thread")}))


if __name__ == "__main__":
    main()
