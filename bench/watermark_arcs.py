"""A watermark key of several arcs against the paper's two half-turns (issue 15).

With the paper's key (two half-turns at a secret offset) another owner's encoder reads on the
victim's predictor far more widely than unwatermarked encoders do, in either direction, which is
why the watermark counts only beside rotation-aware references (docs/verification.md). This
trains, on the demo recipe, victims with a key of six random arcs (alternating classes, each at
least 30° wide, `--wm-intervals LO:HI=CLASS,...`) and victims with the paper's key, six other
owners of each kind, and four copies of each victim (mse and StolenEncoder of 2,000 and 500
queries), then scores on every victim's predictor (500-sample challenge, raw and matched
readings): the zoo's plain encoders, every other owner (the zoo's three among them) and the
copies.

Then, from the same scores, the calibration's null: each independent encoder against the other
encoders of its victim, with the references' spread as it is and floored at what the trials
resolve (`stats.calibrate`'s ``spread_floor``), and, on a victim whose predictor reads every
independent encoder alike, each copy against all of them.

Needs the demo (`sleuth demo --out runs/demo`) and its zoo (`runs/zoo`, see bench/verdict.py),
or, with ``--bench``, a finished `sleuth bench` folder whose recipe, attacks, references and other
owners take the demo's place (the full suite's: how far each key carries on a longer recipe).

    python bench/watermark_arcs.py [--out runs/arcs] [--results bench/results/watermark-arcs.json]
    python bench/watermark_arcs.py --calibration-only   # the second part, from the results
    python bench/watermark_arcs.py --bench runs/bench-full --victims-each 2 --owners-each 2 \
        --samples 1000 --out runs/arcs-full --results bench/results/watermark-arcs-full.json
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
from sleuth.data.watermark import RotationWatermark
from sleuth.embed.config import EmbedConfig
from sleuth.embed.run import run_embed
from sleuth.fileio import atomic_write_text
from sleuth.models import load_encoder, load_owner_key
from sleuth.models.zoo import zoo_members
from sleuth.steal import StealConfig, run_steal
from sleuth.verify import ChallengeSettings, build_challenge
from sleuth.verify.run import decide, owner_for
from sleuth.verify.stats import calibrate

VICTIMS = 3  # of each kind
OWNERS = 6  # of each kind
ATTACK = StealConfig(data="demo", public_split=True, queries=2000, epochs=20)
COPIES = {
    "mse-2000": ATTACK,
    "mse-500": replace(ATTACK, queries=500),
    "stolenencoder-2000": replace(ATTACK, method="stolenencoder"),
    "stolenencoder-500": replace(ATTACK, method="stolenencoder", queries=500),
}
READINGS = ("watermark-binomial", "watermark-matched", "watermark-aligned")
# the copies of a bench's victim, by its steal cells' names (their attacks, as the bench ran them)
BENCH_COPIES = ("mse-1000", "infonce-1000", "stolenencoder-1000", "mse-5000", "stolenencoder-5000")


def arcs_key(seed: int) -> str:
    """Six arcs of random widths (at least 30°) from a random start, classes alternating: what
    `random` draws, from a seed instead of the operating system."""
    return RotationWatermark.arcs(seed).to_spec()


def half_key(seed: int) -> str:
    """The paper's two half-turns at a random offset (what `random` draws today)."""
    return RotationWatermark.turned(int(np.random.default_rng(seed).integers(3600))).to_spec()


def four_arcs_key(seed: int) -> str:
    """Four arcs, drawn as ``arcs_key`` draws six: a key between the two."""
    return RotationWatermark.arcs(seed, 4).to_spec()


KINDS = {"arcs": arcs_key, "half-turns": half_key, "four-arcs": four_arcs_key}
# seeds of the keys drawn (victims, owners) and of the owners' training, per kind
SEEDS = {"arcs": (100, 200, 3000), "half-turns": (400, 300, 3100), "four-arcs": (500, 600, 3200)}


def from_bench(folder: Path) -> tuple[Path, dict[str, StealConfig], list[Path]]:
    """A finished bench's victim, the attacks of its ``BENCH_COPIES`` steal cells, and its
    references of the victim's architecture and other owners (as a zoo's members)."""
    cells = json.loads((folder / "results.json").read_text())["cells"]
    copies = {c: StealConfig(**cells[f"steal/{c}"]["params"]["attack"]) for c in BENCH_COPIES}
    embed = folder / "models" / "embed"
    members = sorted(p for p in embed.iterdir() if p.name.startswith(("ref-", "owner-")))
    return embed / "victim", copies, members


def zoo_kind(zoo: list[Path]) -> str:
    """The kind of key the zoo's other owners drew, as ``RotationWatermark`` reads it: a half-turn
    key's intervals carry no classes, an arc key's do."""
    owners = [p for p in zoo if "owner" in p.name]
    if not owners:
        return "none"
    keys = [load_owner_key(p / "owner-key.pt").watermark["intervals"] for p in owners]
    half = all(RotationWatermark.from_list(k).classes is None for k in keys)
    return "half-turns" if half else "arcs"


def calibration(rows: list[dict], samples: int, level: float = 1e-3) -> None:
    """Independent encoders below ``level`` with and without the spread floor, per reading; on a
    victim whose predictor reads every independent encoder alike, the copies' p with the floor.
    Each sample is two trials (the image rotated into both classes), as the verdict counts them."""
    trials = 2 * samples
    independent = {g for g in (r["group"] for r in rows) if not g.startswith(("copy", "victim"))}
    floor = (0.25 / trials) ** 0.5
    for reading in READINGS:
        below = {0.0: 0, floor: 0}
        pairs = 0
        alike = []
        for victim in dict.fromkeys(r["victim"] for r in rows):
            ours = [r for r in rows if r["victim"] == victim]
            scores = [r[reading] for r in ours if r["group"] in independent]
            for j, s in enumerate(scores):
                rest = scores[:j] + scores[j + 1 :]
                pairs += 1
                for f in below:
                    below[f] += calibrate(s, rest, 1, spread_floor=f)[1] < level
            if np.ptp(scores) == 0:
                copies = [r for r in ours if r["group"].startswith("copy")]
                ps = [calibrate(r[reading], scores, 1, spread_floor=floor)[1] for r in copies]
                each = ", ".join(
                    f"{r['group'][5:]} {p:.2g}" for r, p in zip(copies, ps, strict=True)
                )
                alike.append(f"  {victim}: all at {scores[0]:g}; copies' p {each}")
        print(
            f"{reading}: independent encoders below {level:g}, {below[0.0]} of {pairs} as the "
            f"references vary, {below[floor]} with their spread floored at {floor:.4f}"
        )
        for line in alike:
            print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demo", default="runs/demo")
    parser.add_argument("--zoo", default="runs/zoo")
    parser.add_argument("--out", default="runs/arcs")
    parser.add_argument("--results", default="bench/results/watermark-arcs.json")
    parser.add_argument("--calibration-only", action="store_true")
    parser.add_argument(
        "--bench",
        help="a finished `sleuth bench` folder whose victim's recipe, attacks (BENCH_COPIES), "
        "references and other owners replace the demo's and its zoo's",
    )
    parser.add_argument("--victims-each", type=int, default=VICTIMS, help="victims per kind")
    parser.add_argument("--owners-each", type=int, default=OWNERS, help="other owners per kind")
    parser.add_argument("--samples", type=int, default=500, help="challenge samples")
    parser.add_argument(
        "--victims",
        choices=sorted(KINDS),
        nargs="+",
        default=["arcs", "half-turns"],
        help="the kinds of victim key to train and score (other owners of each of them, and of "
        "arcs and half-turns always)",
    )
    args = parser.parse_args()
    if args.calibration_only:
        recorded = json.loads(Path(args.results).read_text())
        calibration(recorded["rows"], recorded["samples"])
        return
    start = time.perf_counter()
    out = Path(args.out)
    if args.bench:
        victim, copies, zoo = from_bench(Path(args.bench))
    else:
        victim, copies, zoo = Path(args.demo) / "victim", COPIES, list(zoo_members(args.zoo))
    manifest = json.loads((victim / "manifest.json").read_text())
    recipe = EmbedConfig.from_dict(manifest["details"]["config"])
    trained: dict[str, tuple[str, str]] = {}  # folder -> (kind, key)
    seeds: dict[str, int] = {}  # training seed; victims: the demo victim's
    kinds = {k: KINDS[k] for k in dict.fromkeys(["arcs", "half-turns", *args.victims])}
    for kind, draw in kinds.items():
        victim_keys, owner_keys, owner_seeds = SEEDS[kind]
        for i in range(args.victims_each if kind in args.victims else 0):
            trained[f"victim-{kind}-{i}"] = (kind, draw(victim_keys + i))
            seeds[f"victim-{kind}-{i}"] = recipe.seed
        for i in range(args.owners_each):
            trained[f"owner-{kind}-{i}"] = (kind, draw(owner_keys + i))
            seeds[f"owner-{kind}-{i}"] = owner_seeds + i
    for name, (_, spec) in trained.items():
        seed = seeds[name]
        if not (out / name / "encoder.pt").exists():
            run_embed(replace(recipe, wm_intervals=spec, seed=seed), out / name, device="cpu")
        if name.startswith("victim"):
            for copy, attack in copies.items():
                if not (out / f"{name}-{copy}" / "encoder.pt").exists():
                    run_steal(attack, str(out / name), out / f"{name}-{copy}", device="cpu")
        print(f"trained {name}", flush=True)
    groups = {
        "plain": [p for p in zoo if "ref-" in p.name],
        f"zoo owners ({zoo_kind(zoo)})": [p for p in zoo if "owner" in p.name],
        **{
            f"owners ({k})": [out / f"owner-{k}-{i}" for i in range(args.owners_each)]
            for k in kinds
        },
    }
    rows = []
    for name, (kind, spec) in trained.items():
        if not name.startswith("victim"):
            continue
        key = load_owner_key(out / name / "owner-key.pt")
        ch = build_challenge(key, ChallengeSettings(samples=args.samples))
        owner = owner_for(load_encoder(out / name / "encoder.pt"), key, ch.images)
        models = {g: [str(p) for p in ps] for g, ps in groups.items()}
        models |= {f"copy {c}": [str(out / f"{name}-{c}")] for c in copies}
        models["victim"] = [str(out / name)]
        for group, paths in models.items():
            for path in paths:
                reps = load_encoder(Path(path) / "encoder.pt").represent(ch.images).numpy()
                scores = {
                    d.result.name: d.result.score
                    for d in decide(owner, ch, reps, [], ["watermark"], 0.01, rotation_aware=0)
                }
                rows.append(
                    {"victim": name, "kind": kind, "key": spec, "group": group, "model": path}
                    | {r: scores[r] for r in READINGS}
                )
        print(f"scored {name}", flush=True)
    result = {
        "command": " ".join(["python", *sys.argv]),
        "machine": machine(),
        "recipe": recipe.to_dict(),
        "samples": args.samples,
        "rows": rows,
        "seconds": time.perf_counter() - start,
    }
    atomic_write_text(Path(args.results), json.dumps(result, indent=1) + "\n")
    for kind in dict.fromkeys(r["kind"] for r in rows):
        print(f"\nvictims with {kind} keys (mean, min-max over victims and models):")
        for group in dict.fromkeys(r["group"] for r in rows):
            for reading in READINGS:
                xs = [r[reading] for r in rows if r["kind"] == kind and r["group"] == group]
                print(
                    f"  {group:28s} {reading:20s} {np.mean(xs):.3f} "
                    f"({min(xs):.3f}-{max(xs):.3f}), sd {np.std(xs, ddof=1):.3f}"
                    if len(xs) > 1
                    else f"  {group:28s} {reading:20s} {xs[0]:.3f}"
                )
    calibration(rows, args.samples)


if __name__ == "__main__":
    main()
