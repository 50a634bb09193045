"""Independent encoders from other trainers under the null (issue 15): is an encoder trained by
another method and another library ever accused, and is it cleared?

The zoo of `sleuth references` holds encoders trained by the victim's own recipe and trainer.
Here independent encoders of the victim's architecture are trained on the victim's own private
images (the hardest null: the same data) by methods the field uses, with lightly's losses, heads
and momentum updates (the `peers` extra: pip install -e '.[peers]'):

- SimCLR (`NTXentLoss`, `SimCLRProjectionHead`),
- BYOL (`BYOLProjectionHead` and `BYOLPredictionHead`, `NegativeCosineSimilarity`, a momentum
  encoder updated by `update_momentum` on lightly's cosine schedule),
- Barlow Twins (`BarlowTwinsLoss`, `BarlowTwinsProjectionHead`),
- MoCo v2 (`MoCoProjectionHead`, `NTXentLoss` with a memory bank, a momentum encoder),

and, without lightly, a supervised encoder (cross-entropy on the images' labels through a linear
layer). Every trainer gets sleuth's batched SimCLR augmentation (two views per image, one for the
supervised encoder), the victim recipe's epochs, batch size and Adam learning rate, and two seeds.
Each encoder's linear-probe accuracy on the task, beside an untrained encoder's, shows what it
learned (BYOL's and MoCo's momentum suits their ~100 steps: see BASE_MOMENTUM); then it is
verified as a suspect against the victim with the whole zoo as references (one challenge, as
bench/verdict.py does).

Needs the demo and its zoo (`sleuth demo --out runs/demo`, `sleuth references --victim
runs/demo/victim --n 17 --owners 3 --out runs/zoo`). Trained encoders are kept under --out and
reused. Writes bench/results/null-trainers.json.

    python bench/null_trainers.py [--demo runs/demo] [--zoo runs/zoo] [--seeds 2]
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from verdict import judge, rate

from sleuth.bench.runner import machine
from sleuth.data import load_images, to_float
from sleuth.data.augment import SimCLRAugment
from sleuth.models import Encoder, load_encoder, load_owner_key, save_encoder
from sleuth.models.zoo import zoo_members
from sleuth.probe import linear_probe
from sleuth.verify import ChallengeSettings, build_challenge
from sleuth.verify.run import owner_for

# momentum of BYOL's and MoCo's target networks, for runs of ~100 steps (each keeps
# BASE_MOMENTUM ** steps of its random start: 0.9 ** 90 is nothing, 0.99 ** 90 is 40 %)
BASE_MOMENTUM = 0.9


class Method(nn.Module):
    """A training method's parts besides the encoder; ``step(encoder, view1, view2, labels,
    share of training done)`` is its loss on one batch. ``views``: 1 if it reads one view."""

    views = 2


class SimCLR(Method):
    def __init__(self, encoder: Encoder) -> None:
        from lightly.loss import NTXentLoss
        from lightly.models.modules import SimCLRProjectionHead

        super().__init__()
        d = encoder.rep_dim
        self.head = SimCLRProjectionHead(d, d, 64)
        self.loss = NTXentLoss(temperature=0.5)

    def step(self, encoder, x1, x2, y, done):
        return self.loss(self.head(encoder(x1)), self.head(encoder(x2)))


class _Momentum(Method):
    """A method with a momentum copy of the encoder and projection head (BYOL, MoCo)."""

    def _momentum_copies(self, encoder: Encoder) -> None:
        from lightly.models.utils import deactivate_requires_grad

        # a plain attribute, not a submodule: the optimiser must not see the momentum encoder
        self.__dict__["encoder_m"] = copy.deepcopy(encoder)
        self.projection_m = copy.deepcopy(self.projection)
        deactivate_requires_grad(self.encoder_m)
        deactivate_requires_grad(self.projection_m)

    def _update(self, encoder: Encoder, m: float) -> None:
        from lightly.models.utils import update_momentum

        update_momentum(encoder, self.encoder_m, m)
        update_momentum(self.projection, self.projection_m, m)

    def _keys(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.projection_m(self.encoder_m(x))


class BYOL(_Momentum):
    def __init__(self, encoder: Encoder) -> None:
        from lightly.loss import NegativeCosineSimilarity
        from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead

        super().__init__()
        self.projection = BYOLProjectionHead(encoder.rep_dim, 256, 64)
        self.prediction = BYOLPredictionHead(64, 256, 64)
        self.loss = NegativeCosineSimilarity()
        self._momentum_copies(encoder)

    def step(self, encoder, x1, x2, y, done):
        from lightly.utils.scheduler import cosine_schedule

        # the base momentum of short runs: at 0.996 (lightly's example, for hundreds of epochs)
        # the target network of the recipe's ~90 steps would stay mostly its random start
        self._update(encoder, cosine_schedule(round(1000 * done), 1000, BASE_MOMENTUM, 1))
        p1 = self.prediction(self.projection(encoder(x1)))
        p2 = self.prediction(self.projection(encoder(x2)))
        return 0.5 * (self.loss(p1, self._keys(x2)) + self.loss(p2, self._keys(x1)))


class MoCo(_Momentum):
    def __init__(self, encoder: Encoder) -> None:
        from lightly.loss import NTXentLoss
        from lightly.models.modules import MoCoProjectionHead

        super().__init__()
        self.projection = MoCoProjectionHead(encoder.rep_dim, 256, 64)
        # a bank of 4 batches, well under an epoch, so that no image meets its own older key
        self.loss = NTXentLoss(temperature=0.1, memory_bank_size=(1024, 64))
        self._momentum_copies(encoder)

    def step(self, encoder, x1, x2, y, done):
        self._update(encoder, BASE_MOMENTUM)
        return self.loss(self.projection(encoder(x1)), self._keys(x2))


class BarlowTwins(Method):
    def __init__(self, encoder: Encoder) -> None:
        from lightly.loss import BarlowTwinsLoss
        from lightly.models.modules import BarlowTwinsProjectionHead

        super().__init__()
        self.head = BarlowTwinsProjectionHead(encoder.rep_dim, 512, 512)
        self.loss = BarlowTwinsLoss()

    def step(self, encoder, x1, x2, y, done):
        return self.loss(self.head(encoder(x1)), self.head(encoder(x2)))


class Supervised(Method):
    views = 1

    def __init__(self, encoder: Encoder, classes: int) -> None:
        super().__init__()
        self.classifier = nn.Linear(encoder.rep_dim, classes)

    def step(self, encoder, x1, x2, y, done):
        return F.cross_entropy(self.classifier(encoder(x1)), y)


METHODS: dict[str, Callable[[Encoder, int], Method]] = {
    "lightly-simclr": lambda enc, _classes: SimCLR(enc),
    "lightly-byol": lambda enc, _classes: BYOL(enc),
    "lightly-barlowtwins": lambda enc, _classes: BarlowTwins(enc),
    "lightly-moco": lambda enc, _classes: MoCo(enc),
    "supervised": lambda enc, classes: Supervised(enc, classes),
}


def train(method: str, seed: int, victim: Path, out: Path) -> dict:
    """Train one independent encoder of the victim's architecture on the victim's private images
    by ``method`` from ``seed``; reuse it if ``out`` holds it."""
    record = out / "trained.json"
    if record.exists():
        return json.loads(record.read_text())
    key = load_owner_key(victim / "owner-key.pt")
    recipe = json.loads((victim / "manifest.json").read_text())["details"]["config"]
    data = load_images(key.split.data_spec, key.split.part)
    private = np.asarray(key.split.private)
    images, labels = data.images[private], data.labels[private]
    torch.manual_seed(seed)
    encoder = Encoder(load_encoder(victim / "encoder.pt").config)
    parts = METHODS[method](encoder, int(labels.max()) + 1)
    params = [p for p in [*encoder.parameters(), *parts.parameters()] if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    augment, gen = SimCLRAugment(), torch.Generator().manual_seed(seed)
    batch, epochs = recipe["batch_size"], recipe["epochs"]
    steps = epochs * (len(images) // batch)
    start, done = time.perf_counter(), 0
    encoder.train()
    parts.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=gen)
        for i in range(len(images) // batch):
            rows = order[i * batch : (i + 1) * batch]
            x = to_float(images[rows])
            x1 = augment(x, gen)
            x2 = augment(x, gen) if parts.views == 2 else x1
            loss = parts.step(encoder, x1, x2, labels[rows], done / steps)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            done += 1
    seconds = time.perf_counter() - start
    encoder.eval()
    out.mkdir(parents=True, exist_ok=True)
    save_encoder(encoder, out / "encoder.pt")
    result = {"method": method, "seed": seed, "train_s": seconds, "final_loss": loss.item()}
    record.write_text(json.dumps(result, indent=2) + "\n")
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
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
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
                **judge(owner, ch, encoder.represent(ch.images).numpy(), refs),
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
    Path(args.results).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["rates"], indent=2))


if __name__ == "__main__":
    main()
