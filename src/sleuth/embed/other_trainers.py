"""Independent encoders trained by methods other than sleuth's own, for a zoo of references.

A null made only by the victim's own trainer is a narrow one: the verdict should also hold
against encoders other people train with the tools the field uses. ``TRAINERS`` holds lightly's
SimCLR, BYOL, Barlow Twins and MoCo v2 (its losses, heads and momentum updates; the ``peers``
extra: pip install 'sleuth[peers]') and a supervised encoder (cross-entropy on the images'
labels, no extra needed). Each trains an encoder of the victim recipe's architecture on the
recipe's data, split by the member's own seed as the recipe's references are, with sleuth's
batched SimCLR augmentation and the recipe's epochs, batch size, learning rate and weight decay.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from sleuth.data import adapt, input_spec_for, load_images, make_split, to_float
from sleuth.data.augment import SimCLRAugment
from sleuth.device import resolve_device
from sleuth.embed.config import EmbedConfig
from sleuth.embed.run import ENCODER_NAME
from sleuth.errors import SleuthError
from sleuth.fileio import prepare_out_dir
from sleuth.manifest import write_manifest
from sleuth.models import Encoder, encoder_config, save_encoder

# momentum of BYOL's and MoCo's target networks. lightly's examples use 0.99-0.996 for hundreds
# of epochs; a recipe of ~100 steps would leave such a target mostly its random start
# (0.99 ** 90 is 40 %), so a short run's target follows faster (0.9 ** 90 is nothing)
BASE_MOMENTUM = 0.9


def _lightly() -> None:
    """Refuse a lightly method in one line when the extra is not installed."""
    try:
        import lightly  # noqa: F401
    except ImportError:
        raise SleuthError(
            "lightly's trainers need the peers extra: pip install 'sleuth[peers]'"
        ) from None


class Method(nn.Module):
    """A training method's parts besides the encoder; each defines ``step(encoder, view1,
    view2, labels, share of training done)``, its loss on one batch. ``views``: 1 if it reads
    one view."""

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
        # a bank of 1,024 keys: a few batches, well under an epoch of a short recipe, so that
        # no image meets its own older key
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


# name -> (needs lightly, the method's parts for an encoder and a number of classes)
TRAINERS: dict[str, tuple[bool, Callable[[Encoder, int], Method]]] = {
    "lightly-simclr": (True, lambda enc, _classes: SimCLR(enc)),
    "lightly-byol": (True, lambda enc, _classes: BYOL(enc)),
    "lightly-barlowtwins": (True, lambda enc, _classes: BarlowTwins(enc)),
    "lightly-moco": (True, lambda enc, _classes: MoCo(enc)),
    "supervised": (False, lambda enc, classes: Supervised(enc, classes)),
}


def check_trainer(name: str) -> None:
    """Refuse an unknown trainer, or a lightly one without lightly, before anything trains."""
    if name not in TRAINERS:
        raise SleuthError(f"unknown trainer {name!r} (known: {', '.join(TRAINERS)})")
    if TRAINERS[name][0]:
        _lightly()


def train_other(
    name: str,
    recipe: EmbedConfig,
    seed: int,
    out_dir: str | Path,
    *,
    device: str = "auto",
    images: Sequence[int] | None = None,
) -> Path:
    """Train one independent encoder by trainer ``name`` on the recipe's data, write encoder.pt
    and manifest.json into ``out_dir``; return the encoder file. It trains on the private half
    of a split by ``seed`` (as the recipe's references do), or on ``images`` (indices into the
    data's training part: the victim's own private images are the hardest null)."""
    check_trainer(name)
    start = time.perf_counter()
    data = load_images(recipe.data, "train")
    given = images is not None
    if images is None:
        images = make_split(len(data), recipe.public_fraction, seed).private
    private = data.subset(images)
    if name == "supervised" and private.labels is None:
        raise SleuthError(f"the supervised trainer needs labelled data; {recipe.data} has none")
    batch = min(recipe.batch_size, len(private))
    if len(private) // batch < 1 or batch < 2:
        raise SleuthError(f"too few images ({len(private)}) for a batch of {recipe.batch_size}")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    spec = input_spec_for(private)
    encoder = Encoder(encoder_config(recipe.arch, spec, recipe.rep_dim, **recipe.arch_kwargs))
    classes = int(private.labels.max()) + 1 if private.labels is not None else 0
    parts = TRAINERS[name][1](encoder, classes)
    encoder.to(dev)
    parts.to(dev)
    if isinstance(parts, _Momentum):
        parts.encoder_m.to(dev)
    params = [p for p in [*encoder.parameters(), *parts.parameters()] if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    augment, gen = SimCLRAugment(), torch.Generator().manual_seed(seed)
    per_epoch = len(private) // batch
    steps, done, losses = recipe.epochs * per_epoch, 0, []
    encoder.train()
    parts.train()
    for _ in range(recipe.epochs):
        order = torch.randperm(len(private), generator=gen)
        for i in range(per_epoch):
            rows = order[i * batch : (i + 1) * batch]
            x = adapt(to_float(private.images[rows]), spec)
            x1 = augment(x, gen)
            x2 = augment(x, gen) if parts.views == 2 else x1
            labels = private.labels[rows].to(dev) if private.labels is not None else None
            loss = parts.step(encoder, x1.to(dev), x2.to(dev), labels, done / steps)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
            done += 1
    out = Path(out_dir)
    prepare_out_dir(out, force=True)
    save_encoder(encoder.cpu().eval(), out / ENCODER_NAME)
    details: dict[str, Any] = {
        "trainer": name,
        "recipe": recipe.to_dict(),
        "images": "given" if given else f"the private half of a split by seed {seed}",
        "lightly": metadata.version("lightly") if TRAINERS[name][0] else None,
    }
    write_manifest(
        out,
        [ENCODER_NAME],
        kind="reference",
        seed=seed,
        timings={"train_s": time.perf_counter() - start},
        metrics={"final_loss": losses[-1], "steps": done},
        details=details,
    )
    return out / ENCODER_NAME
