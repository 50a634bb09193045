"""``sleuth steal`` end to end: open the victim, pick the queries, attack, evaluate, write."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sleuth.data import ImageSet, fingerprint, input_spec_for, load_images, to_float
from sleuth.data.answers import AnswerStore
from sleuth.device import resolve_device
from sleuth.errors import SleuthError
from sleuth.fileio import check_out_dir, check_out_file
from sleuth.manifest import write_manifest
from sleuth.models import DEFAULT_ARCH, Encoder, encoder_config, load_owner_key, save_encoder
from sleuth.probe import linear_probe
from sleuth.steal.attacks import METHODS, AttackContext, Progress, images_needed
from sleuth.steal.config import StealConfig
from sleuth.steal.defences import Defence, parse_defence
from sleuth.steal.losses import get_loss
from sleuth.steal.oracle import MeteredOracle, open_victim
from sleuth.steal.sybil import SybilOracle

ENCODER_NAME = "encoder.pt"


@dataclass(frozen=True)
class StealResult:
    """The stolen encoder, what it cost and, when asked, how useful it is."""

    out_dir: Path
    queries_used: int
    queries_sent: int
    cache_hits: int
    metrics: dict[str, Any]
    timings: dict[str, float]
    notes: tuple[str, ...] = ()  # what the user should know: e.g. a budget the data cannot fill


def _surrogate(cfg: StealConfig, victim: str):
    """The attacker's data, restricted to the victim's public split when asked."""
    data = load_images(cfg.data, cfg.part)
    if not cfg.public_split:
        return data
    path = Path(victim)
    key_file = path / "owner-key.pt" if path.is_dir() else path.with_name("owner-key.pt")
    if not key_file.exists():
        raise SleuthError(f"--public-split needs the victim's owner key beside it: {key_file}")
    split = load_owner_key(key_file).split
    if split.fingerprint != fingerprint(data):
        raise SleuthError(
            f"--data {cfg.data} ({cfg.part}) is not the data the victim's split was drawn from "
            f"({split.data_spec}, {split.part})"
        )
    return data.subset(split.public)


def _query_order(cfg: StealConfig, data: ImageSet) -> torch.Tensor:
    return torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed))


def attacker_images(cfg: StealConfig, victim: str) -> tuple[ImageSet, ImageSet]:
    """(the surrogate data, the images of it that an attack with ``cfg`` uses, in the seeded
    query order): what the attacker holds, and what it spends its budget on."""
    data = _surrogate(cfg, victim)
    return data, data.subset(_query_order(cfg, data)[: images_needed(cfg)])


def budget_note(cfg: StealConfig, data: ImageSet) -> str | None:
    """What the attack spends when ``--queries`` needs more distinct images than the attacker
    holds (each is asked once: the attack spends less than the budget), else None."""
    needed = images_needed(cfg)
    if needed <= len(data):
        return None
    where = f"{cfg.data} ({cfg.part}{', public split' if cfg.public_split else ''})"
    return (
        f"--queries {cfg.queries:,} needs {needed:,} distinct images but {where} holds "
        f"{len(data):,}: the attack asks about those {len(data):,} only"
    )


def unqueried_images(cfg: StealConfig, victim: str) -> ImageSet:
    """The attacker's images that an attack with ``cfg`` never sends: what a thief can train
    its copy further on without another query."""
    data = _surrogate(cfg, victim)
    return data.subset(_query_order(cfg, data)[images_needed(cfg) :])


# SeedSequence's spawn key for the attacker's initial weights: a stream of its own, so that
# a thief and a victim given the same --seed never start from the same weights
_ATTACKER_INIT = 0x57EA1


def attacker_init_seed(seed: int) -> int:
    """The torch seed of a copy's initial weights under ``--seed seed``: never ``seed`` itself,
    which is what ``sleuth embed --seed`` initialises the victim with (a copy that started from
    the victim's weights would be closer to it than any thief's could be)."""
    return int(np.random.SeedSequence(seed, spawn_key=(_ATTACKER_INIT,)).generate_state(1)[0])


def run_steal(
    cfg: StealConfig,
    victim: str,
    out_dir: str | Path,
    *,
    defences: Sequence[str | Defence] = (),
    cache: str | Path | None = None,
    eval_task: str | None = None,
    force: bool = False,
    device: str = "auto",
    progress: Progress | None = None,
    api_keys: Sequence[str] = (),
    defence_data: str | None = None,
) -> StealResult:
    """Steal ``victim`` into ``out_dir``/encoder.pt with a manifest of what it took.

    With ``cfg.sybils`` > 1 the budget is split over that many accounts (``api_keys``, one per
    account, for an API) and their answers remapped onto the first's (``steal.sybil``)."""
    start = time.perf_counter()
    if cfg.method not in METHODS:
        raise SleuthError(f"unknown method {cfg.method!r} (known: {', '.join(METHODS)})")
    loss = get_loss(cfg.loss, cfg.temperature)
    parsed = [parse_defence(d) if isinstance(d, str) else d for d in defences]
    out_dir = check_out_dir(out_dir, force=force)  # before the victim is opened or asked
    if cache is not None:
        check_out_file(cache, force=True)  # read and rewritten; a folder or nowhere: refused
    opened = open_victim(
        victim,
        defences=parsed,
        access_head=cfg.method == "access-head",
        seed=cfg.seed,
        api_keys=api_keys,
        accounts=cfg.sybils,
        defence_data=defence_data,
    )
    oracle = opened.oracle
    if cfg.sybils > 1:
        oracle = SybilOracle(opened.accounts, cfg.sybil_mapper, cfg.seed)
    data, chosen = attacker_images(cfg, victim)
    if loss.needs_labels and data.labels is None:
        raise SleuthError(f"--loss {cfg.loss} needs labelled query data; {cfg.data} has none")
    store = None
    if cache is not None:
        store = (
            AnswerStore.read(cache, victim=oracle.digest)
            if Path(cache).exists()
            else AnswerStore(oracle.digest)
        )
    meter = MeteredOracle(oracle, cfg.queries, store)
    if isinstance(oracle, SybilOracle):
        overlap = to_float(chosen.images[: cfg.overlap])
        meter.spend(len(overlap) * cfg.sybils)  # refused before anything is sent
        oracle.calibrate(overlap)
    rep_dim = meter.rep_dim
    if cfg.method == "access-head":
        rep_dim = opened.encoder.rep_dim if opened.encoder is not None else cfg.rep_dim
        if rep_dim is None:
            raise SleuthError("--method access-head on a remote victim needs --rep-dim")
    arch = cfg.arch or (opened.encoder.config.arch if opened.encoder else DEFAULT_ARCH)

    dev = resolve_device(device)
    torch.manual_seed(attacker_init_seed(cfg.seed))
    attacker = Encoder(encoder_config(arch, input_spec_for(data), rep_dim)).to(dev).train()
    ctx = AttackContext(
        cfg=cfg,
        victim=meter,
        images=to_float(chosen.images),
        labels=chosen.labels,
        attacker=attacker,
        device=dev,
        gen=torch.Generator(device=dev).manual_seed(cfg.seed + 1),
        progress=progress,
    )
    history = METHODS[cfg.method](ctx)
    attacker = attacker.cpu().eval()
    train_s = time.perf_counter() - start
    metrics: dict[str, Any] = {"loss_history": history, "pow_work_s": opened.work_s}
    if isinstance(oracle, SybilOracle):
        metrics["remap_error"] = oracle.remap_error
    if eval_task is not None:
        sa = linear_probe(attacker, eval_task)
        metrics["SA"] = sa.accuracy
        if opened.encoder is not None:
            ta = linear_probe(opened.encoder, eval_task)
            metrics["TA"] = ta.accuracy
            metrics["SA/TA"] = sa.accuracy / ta.accuracy if ta.accuracy else None
    save_encoder(attacker, out_dir / ENCODER_NAME)
    if store is not None:
        store.write(cache)
    timings = {"steal": train_s, "total": time.perf_counter() - start}
    write_manifest(
        out_dir,
        [ENCODER_NAME],
        kind="steal",
        seed=cfg.seed,
        timings=timings,
        metrics=metrics,
        details={
            "config": cfg.to_dict(),
            "victim": victim,
            "victim_digest": oracle.digest,
            "accounts": cfg.sybils,
            "sybil_overlap": cfg.overlap,
            "queries_budget": cfg.queries,
            "queries_used": meter.used,
            "queries_sent": meter.sent,
            "cache_hits": meter.cache_hits,
            "surrogate_images": len(chosen),
            "surrogate_fingerprint": fingerprint(data),
            "defences": [d.describe() for d in parsed],
            "defence_data": defence_data,
            "encoder": attacker.config.to_dict(),
            "eval_task": eval_task,
            "device": str(dev),
        },
    )
    note = budget_note(cfg, data)
    return StealResult(
        out_dir,
        meter.used,
        meter.sent,
        meter.cache_hits,
        metrics,
        timings,
        notes=(note,) if note else (),
    )
