"""The watermark's cost against its strength (issue 18): a smaller watermark sub-batch.

`sleuth embed` encodes 2 × `wm_fraction` × B rotated views beside the 2B contrastive ones, so
the watermark's training-time ratio sits near 1 + `wm_fraction` (1.09-1.12× measured at 0.125,
docs/benchmarks.md "Peers"); 1.05× needs about 0.04. This trains victims of the demo recipe at
0.125 (weight 1, the default) and at 0.04 with the weight tripled (the same watermark weight per
step), for two secret offsets each with everything else fixed, steals three copies of each (mse
of 2,000 and 500 queries, StolenEncoder of 2,000) and reads the victims' and copies' accuracy
on their victim's predictor on a 500-sample challenge, with the verdict against the zoo.

`--study weight` asks the other question (issue 15): does a heavier watermark reach the weak
copies that lack a second family, and what does it cost the victim? Victims at fraction 0.125
with weight 1, 2 and 4, for the demo victim's key and one more key of six arcs, each with the
linear-probe accuracy of the victim on `demo`, and copies of 500 queries (mse, InfoNCE,
StolenEncoder) and StolenEncoder of 2,000.

Needs the demo (`sleuth demo --out runs/demo`) and its zoo (`runs/zoo`, see bench/verdict.py).

    python bench/wm_fraction.py [--study fraction|weight] [--out runs/wm-fraction]
        [--results bench/results/wm-fraction.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from sleuth.bench.runner import machine
from sleuth.data.watermark import RotationWatermark
from sleuth.embed.config import EmbedConfig
from sleuth.embed.run import run_embed
from sleuth.fileio import atomic_write_text
from sleuth.models import load_encoder, load_owner_key
from sleuth.models.zoo import zoo_members
from sleuth.probe import linear_probe
from sleuth.steal import StealConfig, run_steal
from sleuth.verify import ChallengeSettings, build_challenge
from sleuth.verify.run import is_rotation_aware, owner_for

sys.path.insert(0, str(Path(__file__).parent))
from verdict import ATTACK, judge  # noqa: E402

OFFSET = 1234  # tenths of a degree: the fraction study's second victim's intervals (123.4°)
ARCS_SEED = 11  # the weight study's second victim's key: six arcs drawn from this seed


@dataclass(frozen=True)
class Study:
    variants: dict[str, tuple[float, float]]  # name: (wm_fraction, wm_weight)
    copies: dict[str, StealConfig]
    second_key: tuple[str, str]  # (name, spec) of the second victim's key


STUDIES = {
    "fraction": Study(
        {"fraction 0.125, weight 1": (0.125, 1.0), "fraction 0.04, weight 3": (0.04, 3.0)},
        {
            "mse-2000": ATTACK,
            "mse-500": replace(ATTACK, queries=500),
            "stolenencoder-2000": replace(ATTACK, method="stolenencoder"),
        },
        (f"turned {OFFSET / 10:g}°", RotationWatermark.turned(OFFSET).to_spec()),
    ),
    "weight": Study(
        {f"weight {w:g}": (0.125, w) for w in (1.0, 2.0, 4.0)},
        {
            "mse-500": replace(ATTACK, queries=500),
            "infonce-500": replace(ATTACK, loss="infonce", queries=500),
            "stolenencoder-500": replace(ATTACK, method="stolenencoder", queries=500),
            "stolenencoder-2000": replace(ATTACK, method="stolenencoder"),
        },
        (f"six arcs, seed {ARCS_SEED}", RotationWatermark.arcs(ARCS_SEED).to_spec()),
    ),
}


def folder(fraction: float, weight: float) -> str:
    return f"f{fraction:g}-w{weight:g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demo", default="runs/demo")
    parser.add_argument("--zoo", default="runs/zoo")
    parser.add_argument("--out", default="runs/wm-fraction")
    parser.add_argument("--study", choices=sorted(STUDIES), default="fraction")
    parser.add_argument("--results", help="default: bench/results/wm-STUDY.json")
    args = parser.parse_args()
    study = STUDIES[args.study]
    results = args.results or f"bench/results/wm-{args.study}.json"
    start = time.perf_counter()
    demo_victim = Path(args.demo) / "victim"
    manifest = json.loads((demo_victim / "manifest.json").read_text())
    recipe = EmbedConfig.from_dict(manifest["details"]["config"])
    demo_key = load_owner_key(demo_victim / "owner-key.pt").watermark
    second, second_spec = study.second_key
    keys = {
        "demo victim's": RotationWatermark.from_list(demo_key["intervals"]).to_spec(),
        second: second_spec,
    }
    zoo = [str(p) for p in zoo_members(args.zoo)]
    aware = sum(is_rotation_aware(z) for z in zoo)
    rows = []
    for key_name, spec in keys.items():
        for variant, (fraction, weight) in study.variants.items():
            keyed = Path(args.out) / spec.replace(":", "_").replace(",", "-")
            base = keyed / folder(fraction, weight)
            victim = base / "victim"
            if not (victim / "encoder.pt").exists():
                cfg = replace(recipe, wm_intervals=spec, wm_fraction=fraction, wm_weight=weight)
                run_embed(cfg, victim, force=True, device="cpu")
            for name, attack in study.copies.items():
                if not (base / name / "encoder.pt").exists():
                    run_steal(attack, str(victim), base / name, force=True, device="cpu")
            key = load_owner_key(victim / "owner-key.pt")
            ch = build_challenge(key, ChallengeSettings(samples=500))
            owner = owner_for(load_encoder(victim / "encoder.pt"), key, ch.images)
            refs = [load_encoder(Path(z) / "encoder.pt").represent(ch.images).numpy() for z in zoo]
            for model in ("victim", *study.copies):
                encoder = load_encoder(base / model / "encoder.pt")
                j = judge(owner, ch, encoder.represent(ch.images).numpy(), refs, aware)
                wm = j["tests"].get("watermark-matched", {})
                raw = j["tests"].get("watermark-binomial", {})
                rows.append(
                    {
                        "intervals": key_name,
                        "variant": variant,
                        "model": model,
                        "watermark_matched": wm.get("score"),
                        "watermark_matched_p_adjusted": wm.get("p_adjusted"),
                        "verdict": j["verdict"],
                        "p_verdict": j["p_verdict"],
                    }
                )
                if args.study == "weight":
                    rows[-1] |= {
                        "watermark_binomial": raw.get("score"),
                        "watermark_binomial_p_adjusted": raw.get("p_adjusted"),
                        "rejected": [t for t, v in j["tests"].items() if v["rejected"]],
                        "probe_accuracy": linear_probe(encoder, "demo").accuracy,
                    }
                print(json.dumps(rows[-1]), flush=True)
    result = {
        "command": "python bench/wm_fraction.py"
        + (f" --study {args.study}" if args.study != "fraction" else ""),
        "machine": machine(),
        "recipe": recipe.to_dict(),
        "zoo": len(zoo),
        "rows": rows,
        "seconds": time.perf_counter() - start,
    }
    atomic_write_text(Path(results), json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
