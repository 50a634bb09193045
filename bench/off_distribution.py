"""Where a copy stolen with unlike images shows (issue 15): the aligned cosine distance to the
victim on the victim's images and on shifted images, for copies, other owners and references.

The quick suite's thief who queries the victim with inverted images (`mse-1000-otherdata`) is
found, untransformed, only by the distance in raw coordinates; rotated or permuted, every test is
typical of the references and the suspect is cleared. This measures why: for each probe set (the
victim's private and public images; public images inverted, which are the thief's own queries,
and private images inverted, which it never sent; public images at higher contrast, blurred or
with Gaussian noise), every model's representations are whitened and mapped onto the victim's by
the similarity transform cross-fitted on the probe images themselves (as `aligned-cosine` does on
private images), and its mean cosine distance to the victim is placed among the references' in
their standard deviations. Aligned distances do not change under a rotation or permutation of a
suspect's outputs, so these numbers hold for the transformed copies too.

Needs a finished quick suite (`sleuth bench --suite quick --out runs/bench-quick`). Writes
bench/results/off-distribution.json.

    python bench/off_distribution.py [--bench runs/bench-quick] [--samples 250]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from sleuth.bench.runner import machine
from sleuth.data import load_images, to_float
from sleuth.fileio import atomic_write_text
from sleuth.models import load_encoder, load_owner_key
from sleuth.verify import stats

SUSPECTS = {
    "steal/mse-1000-otherdata": "mse from inverted images",
    "steal/mse-1000": "mse",
    "steal/stolenencoder-500": "StolenEncoder, 500 queries",
    "steal/stolenencoder-1000-rotinv": "StolenEncoder trained invariant to rotations",
    "embed/owner-1": "another owner, seed 101 (independent)",
    "embed/owner-2": "another owner, seed 102 (independent)",
}
SHIFTS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "inverted": lambda x, g: 1 - x,
    "contrast x2": lambda x, g: ((x - 0.5) * 2 + 0.5).clamp(0, 1),
    "blur 3x3": lambda x, g: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False),
    "noise sd 0.15": lambda x, g: (x + 0.15 * torch.randn(x.shape, generator=g)).clamp(0, 1),
}


def aligned_cosine(victim: np.ndarray, suspect: np.ndarray) -> float:
    """Mean cosine distance to the victim after the cross-fitted similarity transform."""
    v, s = stats.whitened(victim), stats.whitened(suspect)
    return float(
        stats.pairwise_distances(v, stats.cross_fitted(s, v, stats.fit_alignment))["cosine"].mean()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", default="runs/bench-quick")
    parser.add_argument("--samples", type=int, default=250)
    parser.add_argument("--results", default="bench/results/off-distribution.json")
    args = parser.parse_args()
    start = time.perf_counter()
    models = Path(args.bench) / "models"
    victim = load_encoder(models / "embed/victim/encoder.pt")
    split = load_owner_key(models / "embed/victim/owner-key.pt").split
    data = load_images(split.data_spec, split.part)
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    private = to_float(data.images[rng.permutation(np.asarray(split.private))[: args.samples]])
    public = to_float(data.images[rng.permutation(np.asarray(split.public))[: args.samples]])
    # the thief queried inverted public images: inverted private images are ones it never sent
    probes = {"private": private, "public": public, "inverted private (held out)": 1 - private}
    probes |= {f"{name} public": shift(public, gen) for name, shift in SHIFTS.items()}
    refs = sorted(
        (p for p in (models / "embed").glob("ref-*")), key=lambda p: int(p.name.split("-")[1])
    )
    encoders = {f"embed/{p.name}": load_encoder(p / "encoder.pt") for p in refs}
    encoders |= {k: load_encoder(models / k / "encoder.pt") for k in SUSPECTS}
    rows: dict[str, dict] = {}
    for probe, images in probes.items():
        v = victim.represent(images).numpy().astype(np.float64)
        scores = {
            k: aligned_cosine(v, e.represent(images).numpy().astype(np.float64))
            for k, e in encoders.items()
        }
        ref_scores = np.array([scores[f"embed/{p.name}"] for p in refs])
        mean, sd = float(ref_scores.mean()), float(ref_scores.std(ddof=1))
        rows[probe] = {
            "references": {"mean": mean, "sd": sd, "k": len(refs)},
            "suspects": {k: {"score": scores[k], "sds": (scores[k] - mean) / sd} for k in SUSPECTS},
        }
        print(
            probe, {k: round(x["sds"], 1) for k, x in rows[probe]["suspects"].items()}, flush=True
        )
    result = {
        "bench": args.bench,
        "samples": args.samples,
        "suspects": SUSPECTS,
        "probes": rows,
        "machine": machine("cpu"),
        "seconds": round(time.perf_counter() - start, 1),
    }
    atomic_write_text(Path(args.results), json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
