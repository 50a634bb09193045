"""The watermark's cost against its strength (issue 18): a smaller watermark sub-batch.

`sleuth embed` encodes 2 × `wm_fraction` × B rotated views beside the 2B contrastive ones, so
the watermark's training-time ratio sits near 1 + `wm_fraction` (1.09-1.12× measured at 0.125,
docs/benchmarks.md "Peers"); 1.05× needs about 0.04. This trains victims of the demo recipe at
0.125 (weight 1, the default) and at 0.04 with the weight tripled (the same watermark weight per
step), for two secret offsets each with everything else fixed, steals three copies of each (mse
of 2,000 and 500 queries, StolenEncoder of 2,000) and reads the victims' and copies' accuracy
on their victim's predictor on a 500-sample challenge, with the verdict against the zoo.

Needs the demo (`sleuth demo --out runs/demo`) and its zoo (`runs/zoo`, see bench/verdict.py).

    python bench/wm_fraction.py [--out runs/wm-fraction]
        [--results bench/results/wm-fraction.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from sleuth.bench.runner import machine
from sleuth.data.watermark import RotationWatermark
from sleuth.embed.config import EmbedConfig
from sleuth.embed.run import run_embed
from sleuth.fileio import atomic_write_text
from sleuth.models import load_encoder, load_owner_key
from sleuth.models.zoo import zoo_members
from sleuth.steal import run_steal
from sleuth.verify import ChallengeSettings, build_challenge
from sleuth.verify.run import is_rotation_aware, owner_for

sys.path.insert(0, str(Path(__file__).parent))
from verdict import ATTACK, judge  # noqa: E402

VARIANTS = {"fraction 0.125, weight 1": (0.125, 1.0), "fraction 0.04, weight 3": (0.04, 3.0)}
COPIES = {
    "mse-2000": ATTACK,
    "mse-500": replace(ATTACK, queries=500),
    "stolenencoder-2000": replace(ATTACK, method="stolenencoder"),
}
OFFSET = 1234  # tenths of a degree: the second victim's intervals (123.4°)


def folder(variant: str) -> str:
    fraction, weight = VARIANTS[variant]
    return f"f{fraction:g}-w{weight:g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demo", default="runs/demo")
    parser.add_argument("--zoo", default="runs/zoo")
    parser.add_argument("--out", default="runs/wm-fraction")
    parser.add_argument("--results", default="bench/results/wm-fraction.json")
    args = parser.parse_args()
    start = time.perf_counter()
    demo_victim = Path(args.demo) / "victim"
    manifest = json.loads((demo_victim / "manifest.json").read_text())
    recipe = EmbedConfig.from_dict(manifest["details"]["config"])
    demo_key = load_owner_key(demo_victim / "owner-key.pt").watermark
    keys = {
        "demo victim's": RotationWatermark.from_list(demo_key["intervals"]).to_spec(),
        f"turned {OFFSET / 10:g}°": RotationWatermark.turned(OFFSET).to_spec(),
    }
    zoo = [str(p) for p in zoo_members(args.zoo)]
    aware = sum(is_rotation_aware(z) for z in zoo)
    rows = []
    for key_name, spec in keys.items():
        for variant, (fraction, weight) in VARIANTS.items():
            base = Path(args.out) / spec.replace(":", "_").replace(",", "-") / folder(variant)
            victim = base / "victim"
            if not (victim / "encoder.pt").exists():
                cfg = replace(recipe, wm_intervals=spec, wm_fraction=fraction, wm_weight=weight)
                run_embed(cfg, victim, force=True, device="cpu")
            for name, attack in COPIES.items():
                if not (base / name / "encoder.pt").exists():
                    run_steal(attack, str(victim), base / name, force=True, device="cpu")
            key = load_owner_key(victim / "owner-key.pt")
            ch = build_challenge(key, ChallengeSettings(samples=500))
            owner = owner_for(load_encoder(victim / "encoder.pt"), key, ch.images)
            refs = [load_encoder(Path(z) / "encoder.pt").represent(ch.images).numpy() for z in zoo]
            for model in ("victim", *COPIES):
                reps = load_encoder(base / model / "encoder.pt").represent(ch.images).numpy()
                j = judge(owner, ch, reps, refs, aware)
                wm = j["tests"].get("watermark-matched", {})
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
                print(json.dumps(rows[-1]), flush=True)
    result = {
        "command": "python bench/wm_fraction.py",
        "machine": machine(),
        "recipe": recipe.to_dict(),
        "zoo": len(zoo),
        "rows": rows,
        "seconds": time.perf_counter() - start,
    }
    atomic_write_text(Path(args.results), json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
