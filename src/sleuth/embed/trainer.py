"""SimCLR trained jointly with the rotation watermark's augmentation predictor (000 §5.1).

Each step encodes two SimCLR views of a batch plus, when watermarking, one rotated view per angle
interval of a small sub-batch (``wm_fraction`` of the batch), all in one forward pass. The loss is
NT-Xent on the projections plus ``wm_weight`` times the predictor's cross-entropy; the optimiser
holds the encoder's, the head's *and the predictor's* parameters (the papers' public code left the
predictor out). Randomness is drawn from generators seeded by (seed, epoch, rank), so an epoch is
reproducible on its own and ``resume`` continues exactly where a checkpoint left off.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from sleuth.data import BatchReader, ImageSet, InputSpec, adapt, default_workers
from sleuth.data.augment import SimCLRAugment
from sleuth.data.watermark import DRAWN, RotationWatermark
from sleuth.embed import distributed
from sleuth.embed.config import EmbedConfig
from sleuth.embed.distributed import DistInfo, gather_rows, sync_batchnorm
from sleuth.errors import SleuthError
from sleuth.fileio import atomic_write
from sleuth.models import Encoder, augmentation_predictor, encoder_config, projection_head
from sleuth.models.artifacts import read_torch_file
from sleuth.models.losses import nt_xent
from sleuth.progress import EmbedStep

CHECKPOINT_NAME = "checkpoint.pt"
# Trained on CPU in channels-last layout: 10-15 % less time per step for the same numbers of
# operations (measured for issue 18, docs/benchmarks.md "Peers"); the weights it returns are in
# the ordinary layout.
CPU_MEMORY_FORMAT = torch.channels_last
Progress = Callable[[EmbedStep], None]


class SimCLRModel(nn.Module):
    """Encoder, projection head and (optionally) augmentation predictor as one DDP-able module."""

    def __init__(self, encoder: Encoder, config: EmbedConfig, n_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = projection_head(encoder.rep_dim, encoder.rep_dim, config.proj_dim)
        self.predictor = (
            augmentation_predictor(encoder.rep_dim, config.predictor_hidden, n_classes)
            if config.watermark
            else None
        )

    def forward(self, x: torch.Tensor, n_contrast: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.encoder(x)
        z = self.head(h[:n_contrast])
        logits = self.predictor(h[n_contrast:]) if self.predictor is not None else None
        return z, logits


@dataclass
class TrainState:
    """What a checkpoint holds besides the weights."""

    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    elapsed: float = 0.0


def contrastive_loss(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float, info: DistInfo
) -> tuple[torch.Tensor, torch.Tensor]:
    """(NT-Xent over the global batch, the objective to backpropagate). Under DDP the negatives
    are every rank's rows (``gather_rows``), so the loss is the one-process loss on the whole
    batch; each rank's gradient flows through its own rows only, so the objective is scaled by
    the world size for DDP's average of the ranks' gradients to be the one-process gradient."""
    loss = nt_xent(gather_rows(info, z1), gather_rows(info, z2), temperature)
    return loss, loss * info.world


def steps_per_epoch(images: int, cfg: EmbedConfig, world: int) -> int:
    """Full batches in an epoch of ``images``; refused (before anything is written) when there
    is not one, or when the global batch does not split over the ranks."""
    if images < cfg.batch_size:
        raise SleuthError(f"{images} training images are fewer than one batch of {cfg.batch_size}")
    if cfg.batch_size % world:
        raise SleuthError(f"--batch-size {cfg.batch_size} does not split over {world} ranks")
    return images // cfg.batch_size


def _generator(seed: int, epoch: int, rank: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed * 1_000_003 + epoch * 1_009 + rank)
    return gen


def _save_checkpoint(path: Path, model: SimCLRModel, opt, sched, state: TrainState, cfg) -> None:
    obj = {
        "config": cfg.to_dict(),
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "epoch": state.epoch,
        "history": state.history,
        "elapsed": state.elapsed,
    }
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def _load_checkpoint(path: Path, model, opt, sched, cfg: EmbedConfig) -> TrainState:
    obj = read_torch_file(path)
    if obj.get("config") != cfg.to_dict():
        raise SleuthError(
            f"{path} was written with other training settings; resume with the same options"
        )
    model.load_state_dict(obj["model"])
    opt.load_state_dict(obj["optimizer"])
    sched.load_state_dict(obj["scheduler"])
    return TrainState(int(obj["epoch"]), list(obj["history"]), float(obj["elapsed"]))


@dataclass
class TrainOutput:
    """The trained modules and how training went."""

    model: SimCLRModel
    watermark: RotationWatermark | None
    state: TrainState
    resumed_from: int


def _with_intervals(cfg: EmbedConfig, checkpoint: Path | None, info: DistInfo) -> EmbedConfig:
    """The recipe with drawn intervals (``random``, ``random-half``) made explicit: those of the
    checkpoint when resuming, else a fresh secret draw by rank 0, shared with every rank. The
    caller's recipe (and so the public manifest) keeps the kind; the drawn intervals reach the
    owner key only."""
    if not cfg.watermark or cfg.wm_intervals not in DRAWN:
        return cfg
    if checkpoint is not None and checkpoint.exists():
        recorded = read_torch_file(checkpoint).get("config", {}).get("wm_intervals")
        if recorded is not None and recorded not in DRAWN:
            return replace(cfg, wm_intervals=recorded)
    secret = RotationWatermark.secret(cfg.wm_intervals).to_spec()
    drawn = distributed.from_main(info, secret)
    return replace(cfg, wm_intervals=str(drawn))


def train(
    cfg: EmbedConfig,
    private: ImageSet,
    input_spec: InputSpec,
    dist_info: DistInfo,
    *,
    checkpoint: Path | None = None,
    resume: bool = False,
    progress: Progress | None = None,
    workers: int | None = None,
) -> TrainOutput:
    """Train on ``private`` (the owner's training part); checkpoint every epoch on rank 0.

    Streamed images are read by ``workers`` DataLoader processes per rank (default
    ``default_workers``), each rank its own slice of the same global batches as in memory."""
    device = dist_info.device
    cfg = _with_intervals(cfg, checkpoint if resume else None, dist_info)
    watermark = RotationWatermark.parse(cfg.wm_intervals) if cfg.watermark else None
    torch.manual_seed(cfg.seed)
    encoder = Encoder(encoder_config(cfg.arch, input_spec, cfg.rep_dim, **cfg.arch_kwargs))
    model = SimCLRModel(encoder, cfg, watermark.n_classes if watermark else 2).to(device)
    if device.type == "cpu":  # oneDNN's convolutions are fastest on channels-last (NHWC) tensors
        model = model.to(memory_format=CPU_MEMORY_FORMAT)
    steps = steps_per_epoch(len(private), cfg, dist_info.world)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps)
    state = TrainState()
    if resume and checkpoint is not None and checkpoint.exists():
        state = _load_checkpoint(checkpoint, model, opt, sched, cfg)
    resumed_from = state.epoch
    net: nn.Module = model
    if dist_info.world > 1:
        model = sync_batchnorm(dist_info, model)
        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    augment = SimCLRAugment()
    workers = default_workers(dist_info.world) if workers is None else workers
    reader = BatchReader(private.images, device, workers)
    local_b = cfg.batch_size // dist_info.world
    wm_b = max(1, math.ceil(local_b * cfg.wm_fraction)) if watermark else 0

    for epoch in range(state.epoch, cfg.epochs):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(
            len(private), generator=_generator(cfg.seed, epoch, 0, torch.device("cpu"))
        )
        gen = _generator(cfg.seed, epoch, dist_info.rank, device)
        totals = {"loss": 0.0, "contrastive": 0.0, "wm_loss": 0.0, "wm_acc": 0.0}
        batches = [
            order[step * cfg.batch_size : (step + 1) * cfg.batch_size][
                dist_info.rank :: dist_info.world
            ]
            for step in range(steps)
        ]
        for step, (idx, batch) in enumerate(zip(batches, reader(batches), strict=True)):
            x = adapt(batch, input_spec)
            views = [augment(x, gen), augment(x, gen)]
            if watermark:
                wm_views, wm_labels = watermark.views(x[:wm_b], gen)
                views.append(wm_views)
            z, logits = net(torch.cat(views), 2 * len(idx))
            contrastive, objective = contrastive_loss(*z.chunk(2), cfg.temperature, dist_info)
            loss = contrastive
            if logits is not None:
                wm_loss = F.cross_entropy(logits, wm_labels)
                loss = loss + cfg.wm_weight * wm_loss
                objective = objective + cfg.wm_weight * wm_loss
                totals["wm_loss"] += wm_loss.item()
                totals["wm_acc"] += (logits.argmax(1) == wm_labels).float().mean().item()
            opt.zero_grad(set_to_none=True)
            objective.backward()
            opt.step()
            sched.step()
            totals["loss"] += loss.item()
            totals["contrastive"] += contrastive.item()
            if progress and dist_info.is_main:
                seen = (step + 1) * cfg.batch_size
                progress(
                    EmbedStep(
                        stage="train",
                        epoch=epoch + 1,
                        epochs=cfg.epochs,
                        step=step + 1,
                        steps=steps,
                        loss=loss.item(),
                        wm_acc=totals["wm_acc"] / (step + 1),
                        images_per_s=seen / (time.perf_counter() - t0),
                    )
                )
        seconds = time.perf_counter() - t0
        kept = totals if watermark else {k: totals[k] for k in ("loss", "contrastive")}
        record = {k: v / steps for k, v in kept.items()} | {"epoch": epoch + 1, "seconds": seconds}
        state = TrainState(epoch + 1, [*state.history, record], state.elapsed + seconds)
        if checkpoint is not None and dist_info.is_main:
            _save_checkpoint(checkpoint, model, opt, sched, state, cfg)
    model = model.to(memory_format=torch.contiguous_format)  # what callers save and load
    return TrainOutput(model.eval(), watermark, state, resumed_from)
