"""The trainers the peers benchmark compares, each run alone in its own process.

``sleuth`` and ``sleuth+wm`` are ``sleuth embed``'s trainer (``sleuth.embed.trainer.train``)
without and with the watermark. ``lightly`` is the same SimCLR written the way lightly's
documentation writes it (docs.lightly.ai, examples/pytorch/simclr.py): a module of backbone and
``SimCLRProjectionHead``, ``SimCLRTransform`` inside a ``DataLoader`` of PIL images, one forward
pass per view, ``NTXentLoss``. For equal work and an identical network both get:

- the same backbone, sleuth's own (``sleuth.models.Encoder``, normalisation included), and a head
  of the same shape (lightly's without batch norm is sleuth's Linear-ReLU-Linear), built from the
  same seed in the same order, so they start from the same weights;
- the same augmentation parameters: lightly's transform set to sleuth's recipe (crop scale
  0.2-1, flip 0.5, jitter 0.8 at strength 0.5 = brightness/contrast/saturation 0.4, hue 0.1,
  greyscale 0.2, no blur, as SimCLR's CIFAR recipe) at the data's own size, two views per image;
  each library keeps its own implementation of it (lightly's per-image PIL transforms in its
  DataLoader, sleuth's batched tensor operations), since that is part of what is compared;
- the same images, seed, batch size, epochs, temperature and optimiser (Adam, cosine schedule
  over all steps), and the same torch threads.

The trainers of one network run side by side in lockstep: each in its own process, they take
turns of one training step each (``Turns``), granted in a round by the orchestrating process, so
that only one trains at a time, each is timed over its own turns only, and a load from other
work that comes and goes falls on all of them alike. A trainer's first turn also builds its model
(both do that inside the turn); its rate is taken over the steps after that first one.

The orchestrating process (``sleuth.bench.peers``) loads this file by path rather than as
``sleuth.bench.peer_trainers``: importing the ``sleuth.bench`` package imports every part of
sleuth (about 120 MB of resident memory no trainer uses), and peak RSS is one of the measures.
So this module imports only data, models and, inside the sleuth trainer, embed.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sleuth.data import ImageSet, InputSpec, input_spec_for, load_images, make_split
from sleuth.models import Encoder, encoder_config
from sleuth.probe import probe_accuracy

PUBLIC_FRACTION = 0.5  # sleuth embed's default: the owner trains on the other half


@dataclass(frozen=True)
class TrainSpec:
    """Everything one trainer's process needs; the same for every trainer but ``trainer``."""

    trainer: str
    arch: str
    data: str
    task: str
    images: int | None  # training images taken from the private part (None: all of it)
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    temperature: float
    proj_dim: int
    seed: int
    threads: int
    workers: int  # lightly's DataLoader workers (sleuth augments in the training process)
    probe: bool
    probe_images: int | None  # probe training images taken from the task's train part
    device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Trained:
    """A trainer's encoder and its last epoch's mean contrastive loss."""

    encoder: Encoder
    final_loss: float


class Turns:
    """One training step per turn, and the seconds spent in turns.

    With two file descriptors (from the orchestrator), ``begin``/``step`` say "ready" (``r``) and
    block until the orchestrator says "go" (``g``); ``end`` says "done" (``d``) and waits for a
    last go before the probe. Without them (one trainer alone, in tests) nothing waits.
    """

    def __init__(self, fd_in: int | None = None, fd_out: int | None = None) -> None:
        self._in = None if fd_in is None else os.fdopen(fd_in, "rb", buffering=0)
        self._out = None if fd_out is None else os.fdopen(fd_out, "wb", buffering=0)
        self.step_s: list[float] = []  # each turn's seconds (the first one builds the model)
        self._t0 = 0.0

    def _wait(self, say: bytes) -> None:
        if self._out is not None and self._in is not None:
            self._out.write(say)
            if self._in.read(1) != b"g":
                raise SystemExit("the orchestrator went away")
        self._t0 = time.perf_counter()

    def begin(self) -> None:
        """Wait for the first turn; the clock runs from here."""
        self._wait(b"r")

    def step(self, *_: Any) -> None:
        """A step ended: count its time, wait for the next turn (``train``'s progress hook)."""
        self.step_s.append(time.perf_counter() - self._t0)
        self._wait(b"r")

    def end(self) -> None:
        """Training ended (its last step counted): wait for the turn to measure and probe."""
        self._wait(b"d")


def training_images(spec: TrainSpec) -> ImageSet:
    """The private part ``sleuth embed`` trains on for this seed, its first ``images`` images."""
    data = load_images(spec.data, "train")
    private = data.subset(make_split(len(data), PUBLIC_FRACTION, spec.seed).private)
    if spec.images is not None:
        private = private.subset(np.arange(min(spec.images, len(private))))
    return private


def train_sleuth(
    spec: TrainSpec, private: ImageSet, input_spec: InputSpec, turns: Turns, watermark: bool
) -> Trained:
    from sleuth.embed import distributed
    from sleuth.embed.config import EmbedConfig
    from sleuth.embed.trainer import train

    cfg = EmbedConfig(
        data=spec.data,
        arch=spec.arch,
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        lr=spec.lr,
        weight_decay=spec.weight_decay,
        temperature=spec.temperature,
        seed=spec.seed,
        watermark=watermark,
        proj_dim=spec.proj_dim,
    )
    turns.begin()
    out = train(cfg, private, input_spec, distributed.setup(spec.device), progress=turns.step)
    return Trained(out.model.encoder, out.state.history[-1]["contrastive"])


class SimCLR(nn.Module):
    """lightly's documented SimCLR module: backbone, flatten, projection head."""

    def __init__(self, backbone: Encoder, proj_dim: int) -> None:
        from lightly.models.modules import SimCLRProjectionHead

        super().__init__()
        self.backbone = backbone
        dim = backbone.rep_dim
        # batch_norm=False: Linear-ReLU-Linear with biases, the head sleuth trains
        self.projection_head = SimCLRProjectionHead(dim, dim, proj_dim, batch_norm=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone(x).flatten(start_dim=1))


class PILImages(torch.utils.data.Dataset):
    """uint8 (N, C, H, W) images served as PIL images through ``transform``, as a torchvision
    dataset serves them to lightly's transforms."""

    def __init__(self, images: torch.Tensor, transform: Callable) -> None:
        self.images = images.permute(0, 2, 3, 1).numpy()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from PIL import Image

        img = self.images[i]
        pil = Image.fromarray(img[..., 0], mode="L") if img.shape[-1] == 1 else Image.fromarray(img)
        return self.transform(pil), 0


def lightly_transform(input_spec: InputSpec):
    """lightly's SimCLR transform set to sleuth's augmentation (``SimCLRAugment``'s defaults)."""
    from lightly.transforms import SimCLRTransform

    return SimCLRTransform(
        input_size=input_spec.size,
        cj_prob=0.8,
        cj_strength=0.5,  # lightly's advice for small images: 0.4 / 0.4 / 0.4 / 0.1
        min_scale=0.2,
        random_gray_scale=0.2,
        gaussian_blur=0.0,
        hf_prob=0.5,
        normalize=None,  # sleuth's Encoder normalises its input itself
    )


def train_lightly(spec: TrainSpec, private: ImageSet, input_spec: InputSpec, turns: Turns):
    import lightly.models.modules  # noqa: F401  imported before the clock starts, as sleuth's
    import lightly.transforms  # noqa: F401
    from lightly.loss import NTXentLoss

    turns.begin()
    device = torch.device(spec.device)
    torch.manual_seed(spec.seed)
    model = SimCLR(Encoder(encoder_config(spec.arch, input_spec)), spec.proj_dim).to(device)
    loader = torch.utils.data.DataLoader(
        PILImages(private.images, lightly_transform(input_spec)),
        batch_size=spec.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=spec.workers,
        generator=torch.Generator().manual_seed(spec.seed),
    )
    if len(loader) == 0:
        raise ValueError(f"{len(private)} images are fewer than one batch of {spec.batch_size}")
    criterion = NTXentLoss(temperature=spec.temperature)
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=spec.epochs * len(loader)
    )
    avg_loss = float("nan")
    for _ in range(spec.epochs):
        model.train()
        total_loss = torch.zeros(())
        for (x0, x1), _ in loader:
            x0, x1 = x0.to(device), x1.to(device)
            z0 = model(x0)
            z1 = model(x1)
            loss = criterion(z0, z1)
            total_loss += loss.detach().cpu()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            scheduler.step()
            turns.step()
        avg_loss = float(total_loss) / len(loader)
    return Trained(model.backbone.eval(), avg_loss)


TRAINERS: dict[str, Callable[[TrainSpec, ImageSet, InputSpec, Turns], Trained]] = {
    "sleuth": lambda spec, data, inp, turns: train_sleuth(spec, data, inp, turns, False),
    "sleuth+wm": lambda spec, data, inp, turns: train_sleuth(spec, data, inp, turns, True),
    "lightly": train_lightly,
}


def probe(encoder: Encoder, task: str, probe_images: int | None) -> float:
    """Linear-probe test accuracy (``sleuth.probe``), on the first ``probe_images`` of
    the task's train part."""
    train = load_images(task, "train")
    test = load_images(task, "test")
    n = len(train) if probe_images is None else min(probe_images, len(train))
    tr = encoder.represent(train.images[:n]).numpy()
    te = encoder.represent(test.images).numpy()
    return probe_accuracy(tr, train.labels[:n].numpy(), te, test.labels.numpy())[0]


def _peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # kilobytes on Linux


def run_trainer(spec: TrainSpec, turns: Turns | None = None) -> dict[str, Any]:
    """Train, measure, probe: the numbers of one trainer (this process's peak RSS included)."""
    turns = turns or Turns()
    torch.set_num_threads(spec.threads)
    private = training_images(spec)
    input_spec = input_spec_for(private)
    trained = TRAINERS[spec.trainer](spec, private, input_spec, turns)
    turns.end()
    images = spec.epochs * (len(private) // spec.batch_size) * spec.batch_size
    # the rate of the steps after the first: the first also builds the model and meets every
    # kernel for the first time, a one-off cost that a short benchmark would inflate
    timed = turns.step_s[1:] or turns.step_s
    result = {
        "trainer": spec.trainer,
        "arch": spec.arch,
        "seed": spec.seed,
        "images": images,
        "steps": len(turns.step_s),
        "train_s": sum(turns.step_s),
        "first_step_s": turns.step_s[0],
        "images_per_s": spec.batch_size * len(timed) / max(sum(timed), 1e-9),
        # the median step: a rate that a few steps slowed by a passing load do not move
        "median_step_images_per_s": spec.batch_size / max(statistics.median(turns.step_s), 1e-9),
        "step_s": [round(t, 4) for t in turns.step_s],
        "final_loss": trained.final_loss,
        # peaks of training: measured before the probe, which is the same for every trainer
        "peak_rss_mb": _peak_mb(resource.RUSAGE_SELF),
        # the largest loader worker (lightly); they share the trainer's pages until they write
        "workers_peak_rss_mb": _peak_mb(resource.RUSAGE_CHILDREN) if spec.workers else 0.0,
        "threads": torch.get_num_threads(),
        "probe_acc": None,
    }
    if spec.probe:
        result["probe_acc"] = probe(trained.encoder.cpu(), spec.task, spec.probe_images)
    return result


def worker_main(spec_path: str, result_path: str, fd_in: str = "", fd_out: str = "") -> None:
    """The entry point of a trainer's process: a spec file in, a result file out, and the two
    ends of the pipes its turns come through."""
    spec = TrainSpec(**json.loads(Path(spec_path).read_text(encoding="utf-8")))
    turns = Turns(int(fd_in), int(fd_out)) if fd_in and fd_out else Turns()
    result = run_trainer(spec, turns)
    Path(result_path).write_text(json.dumps(result, indent=1), encoding="utf-8")
