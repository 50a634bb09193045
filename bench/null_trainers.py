"""Independent encoders from other trainers under the null (issue 15): is an encoder trained by
another method and another library ever accused, and is it cleared?

The zoo of `sleuth references` holds encoders trained by the victim's own recipe and trainer.
Here independent encoders of the victim's architecture are trained on the victim's own private
images (the hardest null: the same data) by methods the field uses, with lightly's losses, heads
and momentum updates (`sleuth.embed.other_trainers`, which `sleuth references --trainer` also
uses; the `peers` extra: pip install -e '.[peers]'):

- SimCLR (`NTXentLoss`, `SimCLRProjectionHead`),
- BYOL (`BYOLProjectionHead` and `BYOLPredictionHead`, `NegativeCosineSimilarity`, a momentum
  encoder updated by `update_momentum` on lightly's cosine schedule),
- Barlow Twins (`BarlowTwinsLoss`, `BarlowTwinsProjectionHead`),
- MoCo v2 (`MoCoProjectionHead`, `NTXentLoss` with a memory bank, a momentum encoder),

and, without lightly, a supervised encoder (cross-entropy on the images' labels through a linear
layer). Every trainer gets sleuth's batched SimCLR augmentation (two views per image, one for the
supervised encoder), the victim recipe's epochs, batch size and Adam learning rate, and two seeds.
Each encoder's linear-probe accuracy on the task, beside an untrained encoder's, shows what it
learned (BYOL's and MoCo's momentum suits their ~100 steps: see
other_trainers.BASE_MOMENTUM); then it is verified as a suspect against the victim with the
whole zoo as references (one challenge, as bench/verdict.py does).

Needs the demo and its zoo (`sleuth demo --out runs/demo`, `sleuth references --victim
runs/demo/victim --n 17 --owners 3 --out runs/zoo`). Trained encoders are kept under --out and
reused. Writes bench/results/null-trainers.json.

    python bench/null_trainers.py [--demo runs/demo] [--zoo runs/zoo] [--seeds 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from verdict import judge, rate

from sleuth.bench.runner import machine
from sleuth.embed.other_trainers import TRAINERS, train_other
from sleuth.embed.references import victim_recipe
from sleuth.fileio import atomic_write_text
from sleuth.models import Encoder, load_encoder, load_owner_key
from sleuth.models.zoo import zoo_members
from sleuth.probe import linear_probe
from sleuth.verify import ChallengeSettings, build_challenge
from sleuth.verify.run import is_rotation_aware, owner_for


def train(method: str, seed: int, victim: Path, out: Path) -> dict:
    """Train one independent encoder of the victim's architecture on the victim's own private
    images by ``method`` from ``seed`` (``sleuth.embed.other_trainers``); reuse it if ``out``
    holds it."""
    record = out / "trained.json"
    if record.exists():
        return json.loads(record.read_text())
    recipe = victim_recipe(victim)
    private = load_owner_key(victim / "owner-key.pt").split.private
    train_other(method, recipe, seed, out, device="cpu", images=private)
    manifest = json.loads((out / "manifest.json").read_text())
    result = {
        "method": method,
        "seed": seed,
        "train_s": manifest["timings_s"]["train_s"],
        "final_loss": manifest["metrics"]["final_loss"],
    }
    atomic_write_text(record, json.dumps(result, indent=2) + "\n")
    return result


def untrained_encoder(victim: Path) -> Encoder:
    """The victim's architecture from a seed of these runs, never trained: the probe's floor."""
    torch.manual_seed(2000)
    return Encoder(load_encoder(victim / "encoder.pt").config).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", default="runs/demo")
    parser.add_argument("--zoo", default="runs/zoo")
    parser.add_argument("--out", default="runs/null-trainers")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=list(TRAINERS), choices=list(TRAINERS))
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--results", default="bench/results/null-trainers.json")
    args = parser.parse_args()
    start = time.perf_counter()
    victim = Path(args.demo) / "victim"
    task = json.loads((victim / "manifest.json").read_text())["details"]["config"]["data"]
    zoo = zoo_members(args.zoo)
    if not zoo:
        raise SystemExit(f"{args.zoo} is not a zoo: run sleuth references first")
    key = load_owner_key(victim / "owner-key.pt")
    ch = build_challenge(key, ChallengeSettings(samples=args.samples))
    owner = owner_for(load_encoder(victim / "encoder.pt"), key, ch.images)
    refs = [load_encoder(z / "encoder.pt").represent(ch.images).numpy() for z in zoo]
    aware = sum(is_rotation_aware(str(z)) for z in zoo)
    models = {}
    for method in args.methods:
        for seed in range(2000, 2000 + args.seeds):  # apart from the zoo's seeds (1000...)
            name = f"{method}-{seed}"
            folder = Path(args.out) / name
            trained = train(method, seed, victim, folder)
            encoder = load_encoder(folder / "encoder.pt")
            models[name] = {
                **trained,
                "probe_accuracy": linear_probe(encoder, task).accuracy,
                **judge(owner, ch, encoder.represent(ch.images).numpy(), refs, aware),
            }
            m = models[name]
            print(f"{name}: {m['verdict']} (probe {m['probe_accuracy']:.3f})", flush=True)
    null = list(models.values())
    tests = sorted({t for r in null for t in r["tests"]})
    results = {
        "models": models,
        "rates": {
            "accused": rate(sum(r["verdict"] == "stolen" for r in null), len(null)),
            "cleared": rate(sum(r["verdict"] == "not_stolen" for r in null), len(null)),
            "per_test": {
                t: rate(sum(r["tests"].get(t, {}).get("rejected", False) for r in null), len(null))
                for t in tests
            },
        },
        "victim_probe_accuracy": linear_probe(load_encoder(victim / "encoder.pt"), task).accuracy,
        "untrained_probe_accuracy": linear_probe(untrained_encoder(victim), task).accuracy,
        "settings": {"samples": args.samples, "queries": len(ch.images), "zoo": len(zoo)},
        "machine": machine(),
        "seconds": round(time.perf_counter() - start, 1),
    }
    atomic_write_text(Path(args.results), json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["rates"], indent=2))


if __name__ == "__main__":
    main()
