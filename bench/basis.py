"""The basis tests against a thief's free transformations (issue 15): what they see, and their null.

A thief who rotates or permutes his outputs switches off every test that compares coordinates,
and a weak copy so hidden was cleared as `not_stolen`. The two basis tests (`basis-skew`,
`basis-matched`) only guard a clearance. This scores them, on the demo recipe's 500-sample
challenge, for every zoo member (each against the other 19: their null), the demo's independent
and untrained encoders, and every copy as it is and under each of the thief's free
transformations (`sleuth.steal.evasion`), each in the zoo's sds.

Needs the demo, its zoo and bench/verdict.py's copies (runs/demo, runs/zoo).

    python bench/basis.py [--demo runs/demo] [--zoo runs/zoo]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from sleuth.bench.runner import machine
from sleuth.fileio import atomic_write_text
from sleuth.models import load_encoder, load_owner_key
from sleuth.models.zoo import zoo_members
from sleuth.steal.evasion import OUTPUT_TRANSFORMS, transform_outputs
from sleuth.verify import ChallengeSettings, build_challenge
from sleuth.verify.evidence import GROUPS
from sleuth.verify.run import decide, owner_for

TESTS = [t.name for t in GROUPS["basis"].tests]


def leave_one_out_z(values: np.ndarray) -> list[float]:
    """Each value's z-score against the mean and spread of the others: how far a zoo member
    sits from the rest of its zoo, the null's yardstick for a suspect's z."""
    rest = [np.delete(values, j) for j in range(len(values))]
    return [float((v - r.mean()) / r.std(ddof=1)) for v, r in zip(values, rest, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demo", default="runs/demo")
    parser.add_argument("--zoo", default="runs/zoo")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--results", default="bench/results/basis.json")
    args = parser.parse_args()
    start = time.perf_counter()
    demo = Path(args.demo)
    victim = demo / "victim"
    key = load_owner_key(victim / "owner-key.pt")
    ch = build_challenge(key, ChallengeSettings(samples=args.samples))
    owner = owner_for(load_encoder(victim / "encoder.pt"), key, ch.images)

    zoo = [Path(p) for p in zoo_members(args.zoo)]
    answers = {p.name: load_encoder(p / "encoder.pt").represent(ch.images).numpy() for p in zoo}

    def scores(reps: np.ndarray, name: str = "") -> dict[str, float]:
        """The basis tests' scores as a verification against the zoo computes them (a zoo
        member against the other members)."""
        refs = [r for n, r in answers.items() if n != name]
        decisions = decide(owner, ch, reps, refs, ["basis"], 0.01, rotation_aware=0)
        return {d.result.name: d.result.score for d in decisions}

    others = sorted(demo.glob("independent-*")) + sorted(demo.glob("untrained-*"))
    copies = sorted(demo.glob("stolen-*"))
    rng = np.random.default_rng(2026)
    rows: dict[str, dict[str, float]] = {}
    for path in [*zoo, *others, *copies]:
        reps = answers.get(path.name)
        if reps is None:
            reps = load_encoder(path / "encoder.pt").represent(ch.images).numpy()
        rows[path.name] = scores(reps, path.name)
        if path in copies or path == others[0]:
            for kind in OUTPUT_TRANSFORMS:
                moved = transform_outputs(kind, reps, int(rng.integers(2**31)))
                rows[f"{path.name}/{kind}"] = scores(moved)
    zoo_names = [p.name for p in zoo]
    summary = {}
    for test in TESTS:
        ref = np.array([rows[n][test] for n in zoo_names])
        loo = leave_one_out_z(ref)
        summary[test] = {
            "zoo_mean": float(ref.mean()),
            "zoo_sd": float(ref.std(ddof=1)),
            "zoo_loo_z": loo,
            "z": {
                n: float((r[test] - ref.mean()) / ref.std(ddof=1))
                for n, r in rows.items()
                if n not in zoo_names
            },
        }
    result = {
        "command": "python bench/basis.py",
        "machine": machine(),
        "samples": args.samples,
        "zoo": len(zoo),
        "scores": rows,
        "tests": summary,
        "seconds": round(time.perf_counter() - start, 1),
    }
    atomic_write_text(Path(args.results), json.dumps(result, indent=1) + "\n")
    for test, s in summary.items():
        print(
            f"{test}: zoo {s['zoo_mean']:.3f} ± {s['zoo_sd']:.3f}, leave-one-out z "
            f"{min(s['zoo_loo_z']):.1f} to {max(s['zoo_loo_z']):.1f}"
        )
        for name, z in s["z"].items():
            print(f"  {name:40s} {z:7.1f}")


if __name__ == "__main__":
    main()
