"""How far the rotation-free tests should whiten (issue 15): weak copies against the zoo.

`aligned-cosine`, `cka` and `knn-overlap` read each model whitened, every variance floored at
`stats.WHITENING_FLOOR` (0.1) of the largest; the floor was chosen on copies of 2,000 queries.
The full suite's weak copies (500-1,500 queries) sit 1e-17 from the references in raw
coordinates and *less* like the victim than the references once whitened. This scores the three
tests at several floors (1.0: no whitening, only a global scale) for every zoo member (each
against the other members: the null), the demo's independent encoders, the demo's and
bench/verdict.py's copies and weaker ones stolen here, and prints each in the zoo's sds
(positive: more like the victim than the zoo).

Needs the demo and its zoo (runs/demo, runs/zoo); steals bench/verdict.py's copies where missing.

    python bench/whitening.py [--demo runs/demo] [--zoo runs/zoo] [--weak runs/weak]
        [--results bench/results/whitening.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from sleuth.bench.runner import machine
from sleuth.fileio import atomic_write_text
from sleuth.models import load_encoder, load_owner_key
from sleuth.models.zoo import zoo_members
from sleuth.steal import run_steal
from sleuth.verify import ChallengeSettings, build_challenge, stats

sys.path.insert(0, str(Path(__file__).parent))
from basis import leave_one_out_z  # noqa: E402
from verdict import ATTACK, steal_copies  # noqa: E402

FLOORS = (0.01, 0.1, 0.3, 1.0)
WEAK = {
    "weak-mse-200": replace(ATTACK, queries=200),
    "weak-infonce-200": replace(ATTACK, loss="infonce", queries=200),
    "weak-se-200": replace(ATTACK, method="stolenencoder", queries=200),
    "weak-se-1000": replace(ATTACK, method="stolenencoder", queries=1000),
}


def scores(victim: np.ndarray, suspect: np.ndarray, floor: float) -> dict[str, float]:
    """The three tests' per-model scores at one floor, signed so that larger is more like the
    victim (the tests' own computations, with the floor set)."""
    v, s = stats.whitened(victim, floor), stats.whitened(suspect, floor)
    aligned = stats.cross_fitted(s, v, stats.fit_alignment)
    return {
        "aligned-cosine": -float(stats.pairwise_distances(v, aligned)["cosine"].mean()),
        "cka": stats.linear_cka(v, s),
        "knn-overlap": float(stats.knn_overlap(v, s, k=10).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demo", default="runs/demo")
    parser.add_argument("--zoo", default="runs/zoo")
    parser.add_argument("--weak", default="runs/weak")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--results", default="bench/results/whitening.json")
    args = parser.parse_args()
    start = time.perf_counter()
    demo, weak = Path(args.demo), Path(args.weak)
    victim = demo / "victim"
    steal_copies(demo)
    for name, cfg in WEAK.items():
        if not (weak / name / "encoder.pt").exists():
            print(f"stealing {name}", flush=True)
            run_steal(cfg, str(victim), weak / name, force=True)
    key = load_owner_key(victim / "owner-key.pt")
    ch = build_challenge(key, ChallengeSettings(samples=args.samples))

    def private(path: Path) -> np.ndarray:
        reps = load_encoder(path / "encoder.pt").represent(ch.images).numpy()
        return ch.role_reps(reps, "private").astype(np.float64)

    zoo = [Path(p) for p in zoo_members(args.zoo)]
    suspects = [
        *sorted(demo.glob("independent-*")),
        *sorted(demo.glob("stolen-*")),
        *sorted(weak.glob("weak-*")),
    ]
    v = private(victim)
    reps = {p.name: private(p) for p in [*zoo, *suspects]}
    zoo_names = [p.name for p in zoo]
    table: dict = {}
    for floor in FLOORS:
        per_model = {name: scores(v, r, floor) for name, r in reps.items()}
        for test in per_model[zoo_names[0]]:
            ref = np.array([per_model[n][test] for n in zoo_names])
            mean, sd = float(ref.mean()), float(ref.std(ddof=1))
            table.setdefault(test, {})[str(floor)] = {
                "zoo_mean": mean,
                "zoo_sd": sd,
                "zoo_loo_z": leave_one_out_z(ref),
                "z": {p.name: (per_model[p.name][test] - mean) / sd for p in suspects},
            }
    result = {
        "command": "python bench/whitening.py",
        "machine": machine(),
        "samples": args.samples,
        "zoo": len(zoo),
        "floors": list(FLOORS),
        "tests": table,
        "seconds": round(time.perf_counter() - start, 1),
    }
    atomic_write_text(Path(args.results), json.dumps(result, indent=1) + "\n")
    names = [p.name for p in suspects]
    for test, by_floor in table.items():
        print(f"\n{test}: z in the zoo's sds at floor " + " / ".join(map(str, FLOORS)))
        loo = [by_floor[str(f)]["zoo_loo_z"] for f in FLOORS]
        print(f"  {'zoo, leave-one-out max':32s} " + " ".join(f"{max(z):7.1f}" for z in loo))
        for name in names:
            z = [by_floor[str(f)]["z"][name] for f in FLOORS]
            print(f"  {name:32s} " + " ".join(f"{x:7.1f}" for x in z))


if __name__ == "__main__":
    main()
