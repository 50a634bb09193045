"""``sleuth references``: a zoo of independent encoders to calibrate verifications against.

The verdict places a suspect among encoders trained without the victim; the more of them, the
narrower the null (a prediction interval on k − 1 degrees of freedom) and the larger the margin a
clear copy gets. The zoo trains them by the victim's own recipe (read from its owner key) with
other seeds, unwatermarked, and optionally a few watermarked "other owners" (the harder null:
rotation-aware encoders that were never the victim), and encoders of other trainers
(``other_trainers``: lightly's SimCLR, BYOL, Barlow Twins, MoCo v2, supervised), so that the null
is not only sleuth's own trainer. Members are reused when already trained, so one zoo serves
every suspect of a victim; ``zoo.json`` lists them with their trainer, seed and digest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sleuth.data.watermark import RANDOM, RANDOM_HALF, RotationWatermark
from sleuth.embed.config import EmbedConfig
from sleuth.embed.other_trainers import check_trainer, train_other
from sleuth.embed.run import ENCODER_NAME, run_embed
from sleuth.embed.trainer import Progress
from sleuth.errors import SleuthError
from sleuth.fileio import atomic_write_text, check_out_dir, sha256_file
from sleuth.models import load_owner_key
from sleuth.models.zoo import ZOO_FILE, ZOO_FORMAT

MAX_MEMBERS = 1000


@dataclass(frozen=True)
class ZooMember:
    """One independent encoder of the zoo."""

    name: str
    seed: int
    watermarked: bool
    path: Path
    reused: bool
    trainer: str = "sleuth"  # sleuth's SimCLR by the victim's recipe, else other_trainers'

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainer": self.trainer,
            "seed": self.seed,
            "watermarked": self.watermarked,
            "path": str(self.path),
            "sha256": sha256_file(self.path / ENCODER_NAME),
            "reused": self.reused,
        }


def victim_recipe(victim: str | Path) -> EmbedConfig:
    """The training recipe recorded in a victim's owner key. A victim whose ``random`` key was
    drawn as two half-turns (before keys of several arcs) gets other owners drawn the same way
    (``random-half``): those are the ones that read widely on its predictor, the harder null."""
    key_file = Path(victim) / "owner-key.pt"
    if not key_file.is_file():
        raise SleuthError(f"--victim must be a folder with owner-key.pt: {victim}")
    key = load_owner_key(key_file)
    if not key.config:
        raise SleuthError(f"{key_file} records no training recipe (made by an older sleuth)")
    recipe = EmbedConfig.from_dict(key.config)
    drawn_halves = (
        key.watermark is not None
        and RotationWatermark.from_list(key.watermark["intervals"]).classes is None
    )
    if recipe.wm_intervals == RANDOM and drawn_halves:
        recipe = replace(recipe, wm_intervals=RANDOM_HALF)
    return recipe


def zoo_seeds(victim_seed: int, n: int, start: int) -> list[int]:
    """``n`` seeds from ``start`` on, skipping the victim's: a member never shares its draws."""
    seeds, s = [], start
    while len(seeds) < n:
        if s != victim_seed:
            seeds.append(s)
        s += 1
    return seeds


def build_zoo(
    victim: str | Path,
    out_dir: str | Path,
    *,
    n: int,
    owners: int = 3,
    seed_start: int = 1000,
    epochs: int | None = None,
    device: str = "auto",
    say: Callable[[str], None] = lambda _msg: None,
    progress: Progress | None = None,
    trainers: Sequence[str] = (),
    per_trainer: int = 2,
) -> list[ZooMember]:
    """Train (or reuse) ``n`` unwatermarked and ``owners`` watermarked encoders by the victim's
    recipe, then ``per_trainer`` encoders by each of ``trainers`` (``other_trainers.TRAINERS``,
    the recipe's architecture, data, epochs and optimiser), seeds from ``seed_start`` on; write
    ``zoo.json``. Returns every member."""
    others = len(trainers) * per_trainer
    if not 0 < n + owners + others <= MAX_MEMBERS or min(n, owners, per_trainer) < 0:
        raise SleuthError(
            f"--n, --owners and the other trainers' members must add up to 1..{MAX_MEMBERS}, "
            f"got {n} + {owners} + {others}"
        )
    for trainer in trainers:
        check_trainer(trainer)
    recipe = victim_recipe(victim)
    if epochs is not None:
        recipe = replace(recipe, epochs=epochs)
    out = Path(out_dir)
    if out.is_dir() and any(out.iterdir()) and not (out / ZOO_FILE).is_file():
        raise SleuthError(
            f"output folder {out} is not empty and holds no zoo ({ZOO_FILE}): a zoo is completed "
            "in place, any other folder is left alone (choose another --out)"
        )
    check_out_dir(out, force=True)  # a file, or nowhere to write: refused before any training
    seeds = zoo_seeds(recipe.seed, n + owners + others, seed_start)
    kinds = ["sleuth"] * (n + owners) + [t for t in trainers for _ in range(per_trainer)]
    members = []
    for i, (seed, trainer) in enumerate(zip(seeds, kinds, strict=True)):
        watermarked = n <= i < n + owners
        prefix = trainer if trainer != "sleuth" else "owner" if watermarked else "ref"
        name = f"{prefix}-{seed}"
        folder = out / name
        reused = (folder / ENCODER_NAME).is_file()
        if reused:
            say(f"{name}: reusing {folder}")
        elif trainer == "sleuth":
            say(f"training {name} ({i + 1} of {len(seeds)})")
            cfg = replace(recipe, seed=seed, watermark=watermarked)
            run_embed(cfg, folder, force=True, device=device, progress=progress)
        else:
            say(f"training {name} by {trainer} ({i + 1} of {len(seeds)})")
            train_other(trainer, recipe, seed, folder, device=device)
        members.append(ZooMember(name, seed, watermarked, folder, reused, trainer))
    record = {
        "format": ZOO_FORMAT,
        "victim": str(Path(victim).resolve()),
        "recipe": recipe.to_dict(),
        "members": [m.to_dict() for m in members],
    }
    atomic_write_text(out / ZOO_FILE, json.dumps(record, indent=2) + "\n")
    return members
