"""What each kind of cell does: train, steal, defend, evade, verify or time, and measure.

Every kind is a function ``(context, cell) -> result`` with a JSON result, registered in
``KINDS``. Model cells write their encoder to ``context.model(key)`` and measure its linear-probe
accuracy on the task (TA for the victim's, SA for a copy's) and the accuracy of the victim's
augmentation predictor on its representations (000's watermark success rate).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from sleuth.bench.plan import Cell
from sleuth.bench.suites import poison_options
from sleuth.data import ImageSet, input_spec_for, load_images, make_split
from sleuth.data.watermark import RotationWatermark
from sleuth.embed import EmbedConfig, distributed, run_embed
from sleuth.embed.run import watermark_accuracy
from sleuth.embed.trainer import train
from sleuth.errors import SleuthError
from sleuth.fileio import atomic_write, sha256_file
from sleuth.models import Encoder, encoder_config, load_encoder, load_owner_key, save_encoder
from sleuth.probe import linear_probe, probe_accuracy
from sleuth.progress import EmbedStep, StageStep, TrainStep
from sleuth.steal import StealConfig, attacker_images, run_steal, unqueried_images
from sleuth.steal.defences import Defence, make_defence, parse_defence
from sleuth.steal.evasion import finetune, prune, transform_outputs
from sleuth.steal.oracle import LocalOracle
from sleuth.verify import (
    ChallengeSettings,
    VerifyResult,
    build_challenge,
    export_challenge,
    run_verify,
)

WATERMARK_IMAGES = 2000  # private images rotated to score a model on the victim's predictor
WATERMARK_SEED = 12345
Step = Callable[[StageStep], None]  # inner progress


@dataclass
class Context:
    """Where a bench lives and how its cells run."""

    out: Path
    device: str = "auto"
    step: Step = field(default=lambda _event: None)

    def model(self, key: str) -> Path:
        return self.out / "models" / key

    def data_file(self, name: str) -> Path:
        return self.out / "data" / f"{name}.npz"


def _parameters(encoder: Encoder) -> int:
    return sum(p.numel() for p in encoder.parameters())


def _victim_version(ctx: Context, victim: str) -> tuple[str, int]:
    """A cache key that changes when the victim is trained again."""
    folder = ctx.model(victim)
    return str(folder), (folder / "encoder.pt").stat().st_mtime_ns


def _owner_images(victim_dir: Path, role: str, limit: int | None = None) -> ImageSet:
    """The victim owner's ``role`` ("private" or "public") images, in split order."""
    key = load_owner_key(victim_dir / "owner-key.pt")
    data = load_images(key.split.data_spec, key.split.part)
    return data.subset(getattr(key.split, role)[:limit])


@functools.lru_cache(maxsize=4)
def _watermark_setup(victim: tuple[str, int]) -> tuple[Any, RotationWatermark, torch.Tensor]:
    folder = Path(victim[0])
    key = load_owner_key(folder / "owner-key.pt")
    return (
        key.augmentation_predictor(),
        RotationWatermark.from_list(key.watermark["intervals"]),
        _owner_images(folder, "private", WATERMARK_IMAGES).images,
    )


def victim_watermark(ctx: Context, victim: str, encoder: Encoder) -> float | None:
    """000's watermark success rate: the victim's predictor on ``encoder``'s representations of
    rotated private images (None when the sizes differ: the predictor cannot read them)."""
    predictor, wm, private = _watermark_setup(_victim_version(ctx, victim))
    if encoder.rep_dim != predictor[0].in_features:
        return None
    return watermark_accuracy(encoder, predictor, wm, private, seed=WATERMARK_SEED)


def _measure(ctx: Context, cell: Cell, encoder: Encoder) -> dict[str, Any]:
    """What every model cell reports: size, probe accuracy and watermark success."""
    return {
        "arch": encoder.config.arch,
        "parameters": _parameters(encoder),
        "rep_dim": encoder.rep_dim,
        "accuracy": linear_probe(encoder, cell.params["task"]).accuracy,
        "victim_watermark": victim_watermark(ctx, cell.params["victim"], encoder),
    }


def _embed_progress(ctx: Context) -> Callable[[EmbedStep], None]:
    def report(ev: EmbedStep) -> None:
        ctx.step(StageStep(f"epoch {ev.epoch}/{ev.epochs}", ev.done, ev.total))

    return report


def _steal_progress(ctx: Context) -> Callable[[TrainStep | StageStep], None]:
    def report(ev: TrainStep | StageStep) -> None:
        ctx.step(StageStep(ev.stage, ev.done, ev.total))

    return report


def embed(ctx: Context, cell: Cell) -> dict[str, Any]:
    cfg = EmbedConfig.from_dict(cell.params["config"])
    folder = ctx.model(cell.key)
    result = run_embed(cfg, folder, force=True, device=ctx.device, progress=_embed_progress(ctx))
    encoder = load_encoder(folder / "encoder.pt")
    return {
        **_measure(ctx, cell, encoder),
        "epochs": cfg.epochs,
        "watermarked": cfg.watermark,
        "train_s": result.timings["train"],
        "images_per_s": result.metrics["train_images_per_s"],
        "own_watermark": result.metrics.get("watermark_accuracy"),
    }


def _queries_data(ctx: Context, cell: Cell, cfg: StealConfig) -> StealConfig:
    """The thief's (or defender's) data: the victim's public part unless the cell says otherwise:
    ``private`` (the owner's own training images) or ``inverted-public`` (public images with
    inverted intensities: same content, unlike anything the victim was trained on)."""
    source = cell.params["queries_from"]
    if source == "public":
        return cfg
    victim = ctx.model(cell.params["victim"])
    part = _owner_images(victim, "private" if source == "private" else "public")
    images = part.images.numpy()
    if source == "inverted-public":
        images = 255 - images
    path = ctx.data_file(f"{source}-all-{sha256_file(victim / 'owner-key.pt')[:16]}")
    if not path.exists():
        labels = {} if part.labels is None else {"y": part.labels.numpy()}
        if labels:
            labels["y_test"] = labels["y"][:0]

        def write(tmp: Path) -> None:
            # an empty test part, so that no hold-out is taken from the train part
            with open(tmp, "wb") as f:
                np.savez(f, x=images, x_test=images[:0], **labels)

        atomic_write(path, write)
    return replace(cfg, data=f"npz:{path}", part="train", public_split=False)


def _defence(ctx: Context, spec: str, victim: str, defender: str | None) -> tuple[Defence, str]:
    """A suite's defence and the spec it was applied as: poison's eps, given as a fraction of the
    victim's median answer norm, made absolute, and its surrogate made the defender's copy (built
    from values, as the bench folder's path may hold a comma a spec cannot)."""
    if not spec.startswith("poison:"):
        return parse_defence(spec), spec
    options = poison_options(spec)
    fraction = float(options.pop("eps"))
    options["eps"] = f"{fraction * _median_norm(_victim_version(ctx, victim)):.6g}"
    options["surrogate"] = str(ctx.model(defender) / "encoder.pt")
    applied = "poison:" + ",".join(f"{k}={v}" for k, v in options.items())
    return make_defence("poison", options, spec=applied), applied


@functools.lru_cache(maxsize=4)
def _median_norm(victim: tuple[str, int]) -> float:
    """The median length of the victim's answers to 2,000 of its public images."""
    folder = Path(victim[0])
    public = _owner_images(folder, "public", 2000).images
    return float(load_encoder(folder / "encoder.pt").represent(public).norm(dim=1).median())


def steal(ctx: Context, cell: Cell) -> dict[str, Any]:
    p = cell.params
    cfg = _queries_data(ctx, cell, StealConfig(**p["attack"]))
    built = [_defence(ctx, s, p["victim"], p["defender"]) for s in p["defences"]]
    folder = ctx.model(cell.key)
    result = run_steal(
        cfg,
        str(ctx.model(p["victim"])),
        folder,
        defences=[defence for defence, _ in built],
        force=True,
        device=ctx.device,
        progress=_steal_progress(ctx),
    )
    return {
        **_measure(ctx, cell, load_encoder(folder / "encoder.pt")),
        "queries_used": result.queries_used,
        "steal_s": result.timings["steal"],
        "defences": [applied for _, applied in built],
    }


def pretrain(ctx: Context, cell: Cell) -> dict[str, Any]:
    """002 Table X's Pre-training-encoder: SimCLR on exactly the thief's images, no queries."""
    p = cell.params
    cfg = EmbedConfig.from_dict(p["config"])
    _, images = attacker_images(StealConfig(**p["attack"]), str(ctx.model(p["victim"])))
    info = distributed.setup(ctx.device)
    out = train(cfg, images, input_spec_for(images), info, progress=_embed_progress(ctx))
    encoder = out.model.encoder.cpu().eval()
    save_encoder(encoder, ctx.model(cell.key) / "encoder.pt")
    return {**_measure(ctx, cell, encoder), "train_s": out.state.elapsed, "images": len(images)}


def untrained(ctx: Context, cell: Cell) -> dict[str, Any]:
    """An encoder of the recipe's architecture as initialised, never trained: the floor of
    utility (what a probe gets from random features) and an independent model nobody trained."""
    cfg = EmbedConfig.from_dict(cell.params["config"])
    spec = load_encoder(ctx.model(cell.params["victim"]) / "encoder.pt").config.input_spec
    torch.manual_seed(cfg.seed)
    encoder = Encoder(encoder_config(cfg.arch, spec, cfg.rep_dim, **cfg.arch_kwargs)).eval()
    save_encoder(encoder, ctx.model(cell.key) / "encoder.pt")
    return _measure(ctx, cell, encoder)


def evade(ctx: Context, cell: Cell) -> dict[str, Any]:
    """A careful thief's copy: the source copy pruned, or fine-tuned on the public images its
    attack never queried (never answered by the victim, never in its training set, and not the
    linear probes' test images)."""
    p = cell.params
    start = time.perf_counter()
    source = load_encoder(ctx.model(p["source"]) / "encoder.pt")
    if p["how"] == "prune":
        encoder = prune(source, p["amount"])
    elif p["how"] == "finetune":
        victim = str(ctx.model(p["victim"]))
        images = unqueried_images(StealConfig(**p["attack"]), victim).images
        batch = min(128, len(images))
        encoder = finetune(source, images, epochs=p["epochs"], lr=p["lr"], batch_size=batch)
    else:
        raise SleuthError(f"unknown evasion {p['how']!r} (known: prune, finetune)")
    save_encoder(encoder, ctx.model(cell.key) / "encoder.pt")
    return {**_measure(ctx, cell, encoder), "seconds": time.perf_counter() - start}


def defended_ta(ctx: Context, cell: Cell) -> dict[str, Any]:
    """A legitimate user's linear probe trained and tested on defended answers (the TA columns
    of 000 Tables 10-11 and 002 Tables XIII-XV)."""
    p = cell.params
    defence, applied = _defence(ctx, p["defence"], p["victim"], p["defender"])
    victim = load_encoder(ctx.model(p["victim"]) / "encoder.pt")
    oracle = LocalOracle(victim, "bench", [defence])
    train_set, test_set = load_images(p["task"], "train"), load_images(p["task"], "test")
    tr, te = oracle.answer(train_set.images).numpy(), oracle.answer(test_set.images).numpy()
    accuracy = probe_accuracy(tr, train_set.labels.numpy(), te, test_set.labels.numpy())[0]
    return {"accuracy": accuracy, "defence": applied}


def _verify(ctx: Context, p: dict[str, Any], samples: int, **how: Any) -> VerifyResult:
    """``run_verify`` of the cell's suspect (``how``: black-box answers, a budget); every
    reference answers each challenge once for the whole bench (``verify --cache``)."""
    suspect = {} if "suspect_reps" in how else {"suspect": str(ctx.model(p["suspect"]))}
    return run_verify(
        [str(ctx.model(p["victim"]))],
        **suspect,
        references=[str(ctx.model(r)) for r in p["references"]],
        settings=ChallengeSettings(samples=samples),
        cache=ctx.out / "answer-cache",
        **how,
    )


SUMMARY_FIELDS = (
    "name",
    "family",
    "statistic",
    "p_value",
    "n",
    "effect",
    "score",
    "valid",
    "reference_scores",
    "p_reference",
    "counted",
    "p_decision",
    "p_adjusted",
    "rejected",
    "guards",
    "atypical",
)


def summary(result: VerifyResult) -> dict[str, Any]:
    """A verification as the tables read it: the verdict and every test's numbers."""
    v = result.victims[0]
    tests, noise = [], None
    for d in v.decisions:
        full = d.to_dict()
        tests.append({k: full[k] for k in SUMMARY_FIELDS})
        r = d.result
        if r.name == "noise-sensitivity" and r.valid:
            noise = {
                "victim_spread": float(r.samples["victim_spread"].mean()),
                "suspect_spread": float(r.samples["suspect_spread"].mean()),
            }
    return {
        "verdict": v.verdict,
        "reason": v.reason,
        "queries": v.queries,
        "seconds": result.seconds,
        "references_used": sum(r["used"] for r in result.references),
        "tests": tests,
        "noise_means": noise,
    }


def verify(ctx: Context, cell: Cell) -> dict[str, Any]:
    return summary(_verify(ctx, cell.params, cell.params["samples"]))


def transformed(ctx: Context, cell: Cell) -> dict[str, Any]:
    """A copy's verification through the black-box route after its thief transformed his
    answers for free (``steal.evasion.OUTPUT_TRANSFORMS``): the investigator exports the
    challenge, the thief answers it and transforms, the answers are verified."""
    p = cell.params
    folder = ctx.model(cell.key)
    folder.mkdir(parents=True, exist_ok=True)
    key = load_owner_key(ctx.model(p["victim"]) / "owner-key.pt")
    challenge = build_challenge(key, ChallengeSettings(samples=p["samples"]))
    _, key_file = export_challenge(challenge, folder / "challenge.h5")
    answers = load_encoder(ctx.model(p["suspect"]) / "encoder.pt").represent(challenge.images)
    moved = transform_outputs(p["transform"], answers.numpy(), p["seed"])
    answers_file = folder / "answers.h5"
    atomic_write(answers_file, lambda tmp: _write_answers(tmp, moved))
    result = _verify(
        ctx, p, p["samples"], suspect_reps=str(answers_file), challenge_key=str(key_file)
    )
    return {**summary(result), "transform": p["transform"]}


def _write_answers(path: Path, answers: np.ndarray) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("answers", data=answers)


def sequential(ctx: Context, cell: Cell) -> dict[str, Any]:
    """``verify --budget``: the challenge in rounds, stopping at the first ``stolen``."""
    p = cell.params
    result = _verify(ctx, p, p["samples"], budget=p["budget"])
    v = result.victims[0]
    return {
        "verdict": v.verdict,
        "reason": v.reason,
        "budget": p["budget"],
        "queries_used": v.queries,
        "rounds": len(v.looks),
    }


def fewest(ctx: Context, cell: Cell) -> dict[str, Any]:
    """The smallest challenge (of those tried, in order) whose verdict is ``stolen``."""
    tried = []
    for n in cell.params["samples"]:
        result = _verify(ctx, cell.params, n)
        tried.append(
            {"samples": n, "verdict": result.verdict, "queries": result.victims[0].queries}
        )
        if result.verdict == "stolen":
            return {"samples": n, "queries": result.victims[0].queries, "tried": tried}
    return {"samples": None, "queries": None, "tried": tried}


def time_verify(ctx: Context, cell: Cell) -> dict[str, Any]:
    p = cell.params
    result = _verify(ctx, p, p["samples"])
    suspect = load_encoder(ctx.model(p["suspect"]) / "encoder.pt")
    return {
        "samples": p["samples"],
        "seconds": result.seconds,
        "verdict": result.verdict,
        "queries": result.victims[0].queries,
        "models": 2 + len(p["references"]),
        "arch": p["arch"],
        "parameters": _parameters(suspect),
    }


def time_embed(ctx: Context, cell: Cell) -> dict[str, Any]:
    """SimCLR with the watermark on the first ``images`` of the private part: seconds per epoch
    (the second, once warm) and throughput."""
    cfg = EmbedConfig.from_dict(cell.params["config"])
    n = cell.params["images"]
    data = load_images(cfg.data, "train")
    split = make_split(len(data), cfg.public_fraction, cfg.seed)
    private = data.subset(split.private[:n])
    out = train(
        cfg,
        private,
        input_spec_for(private),
        distributed.setup(ctx.device),
        progress=_embed_progress(ctx),
    )
    epoch_s = out.state.history[-1]["seconds"]
    steps = n // cfg.batch_size
    return {
        "images": n,
        "arch": cfg.arch,
        "epoch_s": epoch_s,
        "images_per_s": steps * cfg.batch_size / epoch_s,
        "seconds": out.state.elapsed,
    }


KINDS: dict[str, Callable[[Context, Cell], dict[str, Any]]] = {
    "embed": embed,
    "untrained": untrained,
    "pretrain": pretrain,
    "steal": steal,
    "evade": evade,
    "defended-ta": defended_ta,
    "verify": verify,
    "transformed": transformed,
    "sequential": sequential,
    "fewest": fewest,
    "time-verify": time_verify,
    "time-embed": time_embed,
}

# the subpackages whose code cannot change a kind's result (the kind never calls them, and the
# import graph keeps them apart: verify imports neither embed nor steal, embed not steal), so
# that an edit of the verification statistics re-runs verifications, not every victim
_TRAINING = ("steal/", "verify/", "serve/")
_STEALING = ("verify/", "serve/")
_VERIFYING = ("embed/", "steal/", "serve/")
NOT_KIND_CODE: dict[str, tuple[str, ...]] = {
    "embed": _TRAINING,
    "untrained": _TRAINING,
    "pretrain": _STEALING,  # the thief's images are chosen by steal's code
    "time-embed": _TRAINING,
    "steal": _STEALING,
    "evade": _STEALING,
    "defended-ta": _STEALING,
    "verify": _VERIFYING,
    "transformed": ("embed/", "serve/"),  # the thief's transformation is steal's code
    "sequential": _VERIFYING,
    "fewest": _VERIFYING,
    "time-verify": _VERIFYING,
}
