"""``sleuth embed`` end to end: data and split, training, the watermark's check, the artifacts."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sleuth.data import (
    OwnerSplit,
    fingerprint,
    input_spec_for,
    load_images,
    make_split,
    to_float,
)
from sleuth.data.watermark import DRAWN, RotationWatermark
from sleuth.embed import distributed
from sleuth.embed.config import EmbedConfig
from sleuth.embed.trainer import CHECKPOINT_NAME, Progress, steps_per_epoch, train
from sleuth.errors import SleuthError
from sleuth.fileio import prepare_out_dir
from sleuth.manifest import write_manifest
from sleuth.models import (
    Encoder,
    OwnerKey,
    encoder_config,
    get_architecture,
    save_encoder,
    save_owner_key,
)

ENCODER_NAME = "encoder.pt"
OWNER_KEY_NAME = "owner-key.pt"


@dataclass(frozen=True)
class EmbedResult:
    """Where the artifacts went and what was measured."""

    out_dir: Path
    metrics: dict[str, Any]
    timings: dict[str, float]
    resumed_from_epoch: int


@torch.no_grad()
def watermark_accuracy(
    encoder: Encoder,
    predictor: nn.Module,
    watermark: RotationWatermark,
    images: torch.Tensor,
    seed: int,
) -> float:
    """Accuracy of ``predictor`` on ``encoder``'s representations of rotated ``images``."""
    gen = torch.Generator().manual_seed(seed)
    views, labels = watermark.views(to_float(images), gen)
    reps = encoder.represent(views)
    predictor = predictor.cpu().eval()
    return float((predictor(reps).argmax(1) == labels).float().mean())


def run_embed(
    cfg: EmbedConfig,
    out_dir: str | Path,
    *,
    force: bool = False,
    resume: bool = False,
    device: str = "auto",
    download: bool = False,
    wm_eval_images: int = 2000,
    progress: Progress | None = None,
    workers: int | None = None,
) -> EmbedResult | None:
    """Train and write encoder.pt, owner-key.pt and manifest.json; None on non-main DDP ranks.

    ``workers``: DataLoader processes per rank reading streamed data (``sleuth.data.lazy``)."""
    start = time.perf_counter()
    get_architecture(cfg.arch)
    if cfg.watermark and cfg.wm_intervals not in DRAWN:
        RotationWatermark.parse(cfg.wm_intervals)
    data = load_images(cfg.data, "train", download=download)
    split = make_split(len(data), cfg.public_fraction, cfg.seed)
    private = data.subset(split.private)
    input_spec = input_spec_for(private)
    Encoder(encoder_config(cfg.arch, input_spec, cfg.rep_dim, **cfg.arch_kwargs))  # bad args: now
    out_dir = Path(out_dir)
    info = distributed.setup(device)
    try:
        steps_per_epoch(len(private), cfg, info.world)  # refused before --out is made
        if info.is_main:
            # streamed data is read whole here, once (then cached): a file that cannot be
            # read is refused before --out is made, not in the middle of training
            data_fingerprint = fingerprint(data, workers)
            if (
                resume
                and (out_dir / ENCODER_NAME).exists()
                and not (out_dir / CHECKPOINT_NAME).exists()
            ):
                raise SleuthError(f"{out_dir} already holds a finished encoder; nothing to resume")
            prepare_out_dir(out_dir, force=force, resume=resume)
        distributed.barrier(info)
        checkpoint = out_dir / CHECKPOINT_NAME
        result = train(
            cfg,
            private,
            input_spec,
            info,
            checkpoint=checkpoint,
            resume=resume,
            progress=progress,
            workers=workers,
        )
        if not info.is_main:
            return None
        model = result.model.cpu()
        encoder = model.encoder
        metrics: dict[str, Any] = {
            "final": result.state.history[-1],
            "history": result.state.history,
        }
        if result.watermark is not None:
            n = min(wm_eval_images, len(private))
            metrics["watermark_accuracy"] = watermark_accuracy(
                encoder, model.predictor, result.watermark, private.images[:n], cfg.seed + 1
            )
        key = OwnerKey(
            rep_dim=encoder.rep_dim,
            projection={
                "hidden_dim": encoder.rep_dim,
                "out_dim": cfg.proj_dim,
                "state_dict": model.head.state_dict(),
            },
            predictor=None
            if model.predictor is None
            else {
                "hidden_dim": cfg.predictor_hidden,
                "n_classes": result.watermark.n_classes,
                "state_dict": model.predictor.state_dict(),
            },
            watermark=None
            if result.watermark is None
            else {"kind": "rotation", "intervals": result.watermark.to_list()},
            split=OwnerSplit.of(
                split, data_spec=str(cfg.data), part="train", fingerprint=data_fingerprint
            ),
            seed=cfg.seed,
            config=cfg.to_dict(),
        )
        save_encoder(encoder, out_dir / ENCODER_NAME)
        save_owner_key(key, out_dir / OWNER_KEY_NAME)
        trained = len(result.state.history) * (len(private) // cfg.batch_size) * cfg.batch_size
        timings = {"train": result.state.elapsed, "wall_this_run": time.perf_counter() - start}
        metrics["train_images_per_s"] = trained / max(result.state.elapsed, 1e-9)
        write_manifest(
            out_dir,
            [ENCODER_NAME, OWNER_KEY_NAME],
            kind="embed",
            seed=cfg.seed,
            timings=timings,
            metrics=metrics,
            details={
                "config": cfg.to_dict(),
                "encoder": encoder.config.to_dict(),
                "data_fingerprint": key.split.fingerprint,
                "n_private": len(split.private),
                "n_public": len(split.public),
                "world_size": info.world,
                "device": str(info.device),
                "streamed": data.streaming,
                "resumed_from_epoch": result.resumed_from,
            },
        )
        checkpoint.unlink(missing_ok=True)
        return EmbedResult(out_dir, metrics, timings, result.resumed_from)
    finally:
        distributed.teardown(info)
