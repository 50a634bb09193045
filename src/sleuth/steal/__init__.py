"""Encoder extraction: victim oracles with a strict query budget, the papers' losses and attacks,
and victim-side output defences."""

from sleuth.steal.config import StealConfig
from sleuth.steal.run import (
    StealResult,
    attacker_images,
    attacker_init_seed,
    run_steal,
    unqueried_images,
)

__all__ = [
    "StealConfig",
    "StealResult",
    "attacker_images",
    "attacker_init_seed",
    "run_steal",
    "unqueried_images",
]
