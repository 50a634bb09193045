"""From representations to test results: every test of one suspect against one victim.

Each model (victim, suspect, references) answers the same challenge; each test reads the roles it
needs. A test's *score* is computed the same way for the suspect and for every independent
reference, so the suspect can be placed among the references (``stats.calibrate``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sleuth.verify import stats
from sleuth.verify.challenge import Challenge
from sleuth.verify.result import TestResult, invalid


@dataclass(frozen=True)
class Owner:
    """The victim's side of a verification: its answers and its private heads."""

    reps: np.ndarray  # the victim encoder's answers to the challenge
    predictor: nn.Module | None  # augmentation predictor (None: no watermark)
    head: nn.Module  # SimCLR projection head
    n_classes: int


@torch.no_grad()
def _wm_correct(owner: Owner, ch: Challenge, reps: np.ndarray) -> np.ndarray:
    logits = owner.predictor(torch.from_numpy(ch.role_reps(reps, "rotated")))
    return (logits.argmax(1).numpy() == ch.wm_labels).astype(bool)


@torch.no_grad()
def head_losses(owner: Owner, ch: Challenge, reps: np.ndarray, temperature: float = 0.5):
    """Per-sample InfoNCE of the two views through the victim's head, negatives from all samples
    (private and public mixed, so both roles face the same negatives): (private, public)."""
    z1 = F.normalize(owner.head(torch.from_numpy(ch.role_reps(reps, "di_view1"))), dim=1)
    z2 = F.normalize(owner.head(torch.from_numpy(ch.role_reps(reps, "di_view2"))), dim=1)
    logits = z1 @ z2.T / temperature
    loss = F.cross_entropy(logits, torch.arange(len(z1)), reduction="none").numpy()
    return loss[ch.roles["di_private"]], loss[ch.roles["di_public"]]


def _spreads(ch: Challenge, reps: np.ndarray) -> np.ndarray:
    clean = ch.role_reps(reps, "noisy_clean")
    noisy = ch.role_reps(reps, "noisy").reshape(len(clean), -1, reps.shape[1])
    return stats.noise_spreads(clean, noisy)


def _same_dim(owner: Owner, reps: np.ndarray) -> bool:
    return reps.shape[1] == owner.reps.shape[1]


# Each test: (owner, challenge, suspect reps, reference reps) -> result. Scores of references are
# obtained by calling the same function with a reference as the suspect and no references.
TestFn = Callable[[Owner, Challenge, np.ndarray, list[np.ndarray]], list[TestResult]]


def watermark(owner: Owner, ch: Challenge, reps, refs) -> list[TestResult]:
    if owner.predictor is None:
        return [invalid("watermark-binomial", "watermark", "the victim has no watermark")]
    if not _same_dim(owner, reps):
        return [
            invalid(
                "watermark-binomial",
                "watermark",
                "suspect's representation size differs from the victim's predictor input",
            )
        ]
    return stats.watermark_tests(_wm_correct(owner, ch, reps), chance=1 / owner.n_classes)


def di_head(owner: Owner, ch: Challenge, reps, refs) -> list[TestResult]:
    if not _same_dim(owner, reps):
        return [
            invalid(
                "di-head-loss",
                "dataset-inference",
                "suspect's representation size differs from the victim's head input",
            )
        ]
    return [stats.dataset_inference_loss(*head_losses(owner, ch, reps))]


def di_gmm(owner: Owner, ch: Challenge, reps, refs) -> list[TestResult]:
    private, public = ch.role_reps(reps, "private"), ch.role_reps(reps, "public")
    return [stats.dataset_inference_gmm(private, public, seed=ch.settings.seed)]


def _standardised_private(ch: Challenge, reps: np.ndarray) -> np.ndarray:
    """Private representations centred on the model's public mean and divided by its public RMS
    spread: a thief can shift and rescale his outputs for free, and models of other
    architectures live on other scales, so raw coordinates would measure scale, not theft."""
    public = ch.role_reps(reps, "public").astype(np.float64)
    centre = public.mean(axis=0)
    spread = float(np.sqrt(((public - centre) ** 2).sum(axis=1).mean())) or 1.0
    return (ch.role_reps(reps, "private") - centre) / spread


def distance(owner: Owner, ch: Challenge, reps, refs) -> list[TestResult]:
    """ℓ2 and cosine distance to the victim on private images (standardised coordinates, same
    dimensions only), per sample, against the references' distances on the same images."""
    if not _same_dim(owner, reps):
        note = "sizes differ: raw distances are undefined (alignment tests still compare)"
        return [
            invalid("distance-l2", "distance", note),
            invalid("distance-cosine", "distance", note),
        ]
    victim = _standardised_private(ch, owner.reps)
    own = stats.pairwise_distances(victim, _standardised_private(ch, reps))
    others = [
        stats.pairwise_distances(victim, _standardised_private(ch, r))
        for r in refs
        if _same_dim(owner, r)
    ]
    return [
        stats.distance_test(
            own[kind],
            [o[kind] for o in others],
            name=f"distance-{kind}",
            direction=-1,
            what=f"{kind} distance to the victim, private images",
        )
        for kind in ("l2", "cosine")
    ]


def _aligned(owner: Owner, ch: Challenge, reps: np.ndarray) -> np.ndarray:
    return stats.procrustes_alignment(
        ch.role_reps(owner.reps, "public"),
        ch.role_reps(reps, "public"),
        ch.role_reps(owner.reps, "private"),
        ch.role_reps(reps, "private"),
    )[1]


def alignment(owner: Owner, ch: Challenge, reps, refs) -> list[TestResult]:
    """Similarity up to rotation and scale (Procrustes fitted on public, scored on private)."""
    own = _aligned(owner, ch, reps)
    others = [_aligned(owner, ch, r) for r in refs]
    return [
        stats.distance_test(
            own,
            others,
            name="procrustes",
            direction=1,
            family="alignment",
            what="cosine similarity after orthogonal alignment, private",
        )
    ]


def noise(owner: Owner, ch: Challenge, reps, refs) -> list[TestResult]:
    return [stats.noise_sensitivity(_spreads(ch, owner.reps), _spreads(ch, reps))]


TESTS: dict[str, TestFn] = {
    "watermark": watermark,
    "di-head": di_head,
    "di-gmm": di_gmm,
    "distance": distance,
    "alignment": alignment,
    "noise": noise,
}
