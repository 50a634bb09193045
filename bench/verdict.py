"""Verdict benchmark (issue 15): margins, free output transformations and the false-accusation
rate under the null, on the demo recipe with a zoo of independent encoders.

Needs a finished demo (`sleuth demo --out runs/demo`) and a zoo of its victim
(`sleuth references --victim runs/demo/victim --n 17 --owners 3 --out runs/zoo`). Steals the
extra copies it lacks (StolenEncoder, a rotation-invariant StolenEncoder, symmetrized, barlow,
mse at 500 queries, supcon, infonce and StolenEncoder at 500 queries, and mse from the victim's
public images inverted, a thief querying off the victim's distribution) and two untrained encoders
(one with the victim's own initial weights) into the demo folder, answers one challenge with
every model once, then:

1. every copy against the zoo, and against the demo's independent encoders (the demo's
   setting), with its strongest Holm-adjusted p;
2. every copy whose outputs the thief transforms for free (a secret orthogonal rotation, a
   permutation, a scale and a shift, Gaussian noise of 10 % of each coordinate's spread), judged
   as black-box answers against the zoo;
3. sequential verification (`--budget`) of every copy at 100 and 1,000 queries: the round
   that found it stolen and the queries it used;
4. leave-one-out under the null: every independent model (each zoo member against the rest of
   the zoo; each demo independent against the whole zoo) as the suspect, with the
   false-accusation rate per verdict and per test and its Clopper-Pearson interval, for the
   one-round verdict and for sequential verification at both budgets.

Writes bench/results/verdict.json and prints the tables for docs/benchmarks.md.

    python bench/verdict.py [--demo runs/demo] [--zoo runs/zoo] [--samples 500]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from statsmodels.stats.proportion import proportion_confint

from sleuth.bench.runner import machine
from sleuth.data import load_images
from sleuth.fileio import atomic_write_text, sha256_file
from sleuth.models import Encoder, load_encoder, load_owner_key, save_encoder
from sleuth.models.zoo import zoo_members
from sleuth.steal import StealConfig, run_steal
from sleuth.steal.evasion import OUTPUT_TRANSFORMS, transform_outputs
from sleuth.verify import ChallengeSettings, build_challenge
from sleuth.verify.evidence import GROUPS
from sleuth.verify.run import decide, is_rotation_aware, owner_for, sequential
from sleuth.verify.verdict import DECISION_RULE, adjust, verdict, verdict_p

ALPHA = 0.01
BUDGETS = (100, 1000)
ATTACK = StealConfig(data="demo", public_split=True, queries=2000, epochs=20)
EXTRA_COPIES = {
    "stolen-stolenencoder": replace(ATTACK, method="stolenencoder"),
    "stolen-stolenencoder-rotinv": replace(ATTACK, method="stolenencoder", rotate=True),
    "stolen-symmetrized": replace(ATTACK, loss="symmetrized"),
    "stolen-barlow": replace(ATTACK, loss="barlow"),
    "stolen-mse-500": replace(ATTACK, queries=500),
    "stolen-supcon": replace(ATTACK, loss="supcon"),
    "stolen-infonce-500": replace(ATTACK, loss="infonce", queries=500),
    "stolen-se-500": replace(ATTACK, method="stolenencoder", queries=500),
}


def transforms(reps: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """What a thief can do to his answers for free, each with fresh secret draws."""
    return {
        name: transform_outputs(name, reps, int(rng.integers(2**31))) for name in OUTPUT_TRANSFORMS
    }


def judge(owner, ch, suspect: np.ndarray, refs: list[np.ndarray], aware: int) -> dict:
    """One verdict against ``refs``, ``aware`` of them rotation-aware (other owners)."""
    decisions = decide(owner, ch, suspect, refs, list(GROUPS), ALPHA, rotation_aware=aware)
    adjust(decisions, ALPHA)
    label, reason = verdict(decisions)
    counted = [d for d in decisions if d.counted]
    best = min(counted, key=lambda d: d.p_adjusted)
    return {
        "verdict": label,
        "reason": reason,
        "strongest": best.result.name,
        "strongest_p_adjusted": best.p_adjusted,
        "p_verdict": verdict_p(decisions),
        "references": len(refs),
        "tests": {
            d.result.name: {
                "p_adjusted": d.p_adjusted,
                "rejected": d.rejected,
                "atypical": d.atypical,
                "score": d.result.score,
            }
            for d in counted
        },
        "withheld_by": [d.result.name for d in decisions if d.guards and d.atypical],
    }


def judge_sequential(
    owner, ch, suspect: np.ndarray, refs: list[np.ndarray], aware: int, budget: int
) -> dict:
    decisions, asked, looks = sequential(
        owner, ch, suspect, refs, list(GROUPS), ALPHA, budget, rotation_aware=aware
    )
    return {"verdict": verdict(decisions)[0], "queries_used": asked, "looks": looks}


# a thief who queries with the victim's public images inverted (the quick suite's otherdata
# thief): a copy there, an ordinary encoder on the victim's own images
INVERTED = "stolen-mse-inverted"


def inverted_queries(victim: Path, path: Path) -> StealConfig:
    """The attack with the victim's public images, intensities inverted, as the thief's data."""
    split = load_owner_key(victim / "owner-key.pt").split
    public = load_images(split.data_spec, split.part).images[np.asarray(split.public)].numpy()
    np.savez(path, x=255 - public, x_test=public[:0])  # no test part: nothing held out
    return replace(ATTACK, data=f"npz:{path}", part="train", public_split=False)


def steal_copies(demo: Path) -> None:
    """Steal from the demo's victim every copy this benchmark judges that is not there yet."""
    victim = demo / "victim"
    for name, cfg in EXTRA_COPIES.items():
        if not (demo / name / "encoder.pt").exists():
            print(f"stealing {name}", flush=True)
            run_steal(cfg, str(victim), demo / name, force=True)
    if not (demo / INVERTED / "encoder.pt").exists():
        print(f"stealing {INVERTED}", flush=True)
        run_steal(
            inverted_queries(victim, demo / "inverted-public.npz"), str(victim), demo / INVERTED
        )


def untrained(victim: Path, seed: int, out: Path) -> None:
    """An encoder of the victim's architecture as initialised from ``seed``, never trained (with
    the victim's own seed: the victim's initial weights, its ancestor but not its copy)."""
    if (out / "encoder.pt").exists():
        return
    config = load_encoder(victim / "encoder.pt").config
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    save_encoder(Encoder(config).eval(), out / "encoder.pt")


def rate(k: int, n: int) -> dict:
    low, high = proportion_confint(k, n, alpha=0.05, method="beta")
    return {"k": k, "n": n, "rate": k / n, "ci95": [float(low), float(high)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demo", default="runs/demo")
    parser.add_argument("--zoo", default="runs/zoo")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--results", default="bench/results/verdict.json")
    args = parser.parse_args()
    start = time.perf_counter()
    demo = Path(args.demo)
    victim = demo / "victim"
    steal_copies(demo)
    for seed in (load_owner_key(victim / "owner-key.pt").seed, 12345):
        untrained(victim, seed, demo / f"untrained-seed{seed}")
    copies = sorted(p.name for p in demo.glob("stolen-*"))
    demo_refs = sorted(p.name for p in demo.glob("independent-*"))
    untrained_names = sorted(p.name for p in demo.glob("untrained-*"))
    zoo = [str(p) for p in zoo_members(args.zoo)]
    key = load_owner_key(victim / "owner-key.pt")
    ch = build_challenge(key, ChallengeSettings(samples=args.samples))
    owner = owner_for(load_encoder(victim / "encoder.pt"), key, ch.images)
    reps = {
        name: load_encoder(demo / name / "encoder.pt").represent(ch.images).numpy()
        for name in copies + demo_refs + untrained_names
    }
    reps |= {
        Path(z).name: load_encoder(Path(z) / "encoder.pt").represent(ch.images).numpy() for z in zoo
    }
    zoo_names = [Path(z).name for z in zoo]
    members = [*zoo, *(demo / n for n in demo_refs)]
    aware = {Path(m).name: is_rotation_aware(str(m)) for m in members}
    zoo_aware = sum(aware[n] for n in zoo_names)
    demo_aware = sum(aware[n] for n in demo_refs)
    zoo_reps = [reps[n] for n in zoo_names]
    demo_reps = [reps[n] for n in demo_refs]
    print(f"{len(ch.images)} challenge images; {len(zoo)} zoo members", flush=True)

    results: dict = {"copies": {}, "transformed": {}, "sequential": {}, "null": {}}
    rng = np.random.default_rng(2026)
    for name in copies:
        print(f"copy {name}", flush=True)
        results["copies"][name] = {
            "zoo": judge(owner, ch, reps[name], zoo_reps, zoo_aware),
            "demo": judge(owner, ch, reps[name], demo_reps, demo_aware),
        }
        for kind, answers in transforms(reps[name], rng).items():
            results["transformed"][f"{name}/{kind}"] = judge(
                owner, ch, answers, zoo_reps, zoo_aware
            )
        results["sequential"][name] = {
            str(b): judge_sequential(owner, ch, reps[name], zoo_reps, zoo_aware, b) for b in BUDGETS
        }
    nulls = [
        (n, zoo_reps[j], zoo_reps[:j] + zoo_reps[j + 1 :], zoo_aware - aware[n])
        for j, n in enumerate(zoo_names)
    ]
    nulls += [(n, reps[n], zoo_reps, zoo_aware) for n in demo_refs + untrained_names]
    for name, suspect, refs, n_aware in nulls:
        print(f"null {name}", flush=True)
        results["null"][name] = judge(owner, ch, suspect, refs, n_aware)
        for b in BUDGETS:
            results["null"][name][f"sequential-{b}"] = judge_sequential(
                owner, ch, suspect, refs, n_aware, b
            )

    null = results["null"].values()
    tests = sorted({t for r in null for t in r["tests"]})
    results["null_rates"] = {
        "accused": rate(sum(r["verdict"] == "stolen" for r in null), len(null)),
        **{
            f"accused-sequential-{b}": rate(
                sum(r[f"sequential-{b}"]["verdict"] == "stolen" for r in null), len(null)
            )
            for b in BUDGETS
        },
        "cleared": rate(sum(r["verdict"] == "not_stolen" for r in null), len(null)),
        "withheld": rate(sum(bool(r.get("withheld_by")) for r in null), len(null)),
        "per_test": {
            t: rate(sum(r["tests"].get(t, {}).get("rejected", False) for r in null), len(null))
            for t in tests
        },
    }
    results["settings"] = {
        "samples": args.samples,
        "alpha": ALPHA,
        "queries": len(ch.images),
        "owner_key_sha256": sha256_file(victim / "owner-key.pt"),
        "decision_rule": DECISION_RULE,
    }
    results["machine"] = machine()
    results["seconds"] = round(time.perf_counter() - start, 1)
    atomic_write_text(Path(args.results), json.dumps(results, indent=2) + "\n")
    print(render(results))


def p_text(x: float | None) -> str:
    return "–" if x is None else f"{x:.1e}" if x < 1e-3 else f"{x:.3f}"


def render(results: dict) -> str:
    first = next(iter(results["copies"].values()))
    k, k_demo = first["zoo"]["references"], (first.get("demo") or first["demo-5"])["references"]
    lines = [
        f"| copy | verdict vs the zoo ({k}) | margin | strongest (adjusted p) | verdict vs the "
        f"demo's {k_demo} | margin | strongest (adjusted p) |",
        "| --- | --- | ---: | --- | --- | ---: | --- |",
    ]
    for name, r in results["copies"].items():
        z, d = r["zoo"], r.get("demo") or r["demo-5"]
        lines.append(
            f"| {name} | {z['verdict']} | {p_text(z.get('p_verdict'))} | {z['strongest']} "
            f"({p_text(z['strongest_p_adjusted'])}) | {d['verdict']} | "
            f"{p_text(d.get('p_verdict'))} | {d['strongest']} "
            f"({p_text(d['strongest_p_adjusted'])}) |"
        )
    lines += [
        "",
        "| transformed copy | verdict | margin | strongest (adjusted p) | same as untransformed |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for name, r in results["transformed"].items():
        base = results["copies"][name.split("/")[0]]["zoo"]["verdict"]
        lines.append(
            f"| {name} | {r['verdict']} | {p_text(r.get('p_verdict'))} | {r['strongest']} "
            f"({p_text(r['strongest_p_adjusted'])}) | {'yes' if r['verdict'] == base else 'NO'} |"
        )
    lines += [
        "",
        "| copy | " + " | ".join(f"budget {b:,}: verdict (queries used)" for b in BUDGETS) + " |",
        "| --- |" + " --- |" * len(BUDGETS),
    ]
    for name, r in results["sequential"].items():
        cells = [f"{r[str(b)]['verdict']} ({r[str(b)]['queries_used']:,})" for b in BUDGETS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    rates = results["null_rates"]
    lines += ["", "| under the null | rate | 95 % interval |", "| --- | --- | --- |"]
    for label, x in [
        ("accused (verdict stolen)", rates["accused"]),
        ("cleared (not_stolen)", rates["cleared"]),
        *(
            [("atypical in a clearance guard (shifted images, basis)", rates["withheld"])]
            if "withheld" in rates
            else []
        ),
        *((f"test {t} rejects", v) for t, v in rates["per_test"].items()),
    ]:
        lines.append(f"| {label} | {x['k']}/{x['n']} | {x['ci95'][0]:.3f}-{x['ci95'][1]:.3f} |")
    verdicts = [r["verdict"] for r in results["null"].values()]
    lines.append("")
    lines.append(
        "null verdicts: " + ", ".join(f"{v} {verdicts.count(v)}" for v in sorted(set(verdicts)))
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
