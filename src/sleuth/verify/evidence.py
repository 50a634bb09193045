"""From representations to test results, and the one registry of verification tests.

Each model (victim, suspect, references) answers the same challenge; each test reads the roles it
needs. A test's *score* is computed the same way for the suspect and for every independent
reference, so the suspect can be placed among the references (``stats.calibrate``).

A thief can shift, rotate, permute and rescale his outputs for free. So the tests that read the
suspect's outputs through the victim's projection head or compare coordinates also run on the
suspect's outputs *after* the similarity transform that best maps them onto the victim's, fitted
on public images (``stats.fit_alignment``); every reference goes through the same fitting, so
the calibrated null accounts for it. The watermark is the measured exception: its aligned version is
shown but does not count (see ``watermark``). The shifted-image tests never accuse: they can only
withhold a clearance (``shifted``). The similarity family (CKA and
nearest-neighbour overlap) needs no fitting: it is invariant to those transformations by
construction.

``GROUPS`` is the registry: one entry per ``--tests`` name, holding the function that computes its
tests and, for each test, everything the verdict, the reports and the bench need to know about it
(family, power model, whether it counts, plain-words meaning, per-sample arrays). Adding a test
is adding an entry here plus its statistic in ``stats``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sleuth.verify import stats
from sleuth.verify.challenge import SHIFT_ROLES, Challenge
from sleuth.verify.result import TestResult, invalid

KNN_K = 10  # neighbours per image for the nearest-neighbour overlap
T = TypeVar("T")


@dataclass(frozen=True)
class Owner:
    """The victim's side of a verification: its answers and its private heads."""

    reps: np.ndarray  # the victim encoder's answers to the challenge
    predictor: nn.Module | None  # augmentation predictor (None: no watermark)
    head: nn.Module  # SimCLR projection head
    n_classes: int


@dataclass(frozen=True)
class TestInfo:
    """What every part of sleuth knows about one test, in one place."""

    name: str
    family: str  # the kind of evidence; "stolen" needs rejections in two families
    meaning: str  # what it asks, in words an investigator can repeat to a non-statistician
    arrays: dict[str, str] = field(default_factory=dict)  # per-sample array -> what it holds
    power: Literal["one-sample", "two-sample"] | None = None  # statsmodels model, None: none
    proportion: bool = False  # its effect is a proportion's distance from chance (binomial trials)
    counted: bool = True  # False: shown beside a counted test of the same evidence, never in Holm
    clears_only: bool = False  # never accuses; its typicality can withhold a clearance
    calibrated_only: bool = False  # no analytic p: its decision p is the calibrated p alone
    # counts only beside rotation-aware references (other owners' watermarked encoders): its null
    # is what a model trained on a rotation task of its own scores, wider than plain encoders'
    needs_rotation_aware: bool = False
    # counts only where the victim itself, read by the same test, rejects at alpha: a test that
    # cannot tell the victim's training images from others in the victim cannot in a copy
    needs_victim_effect: bool = False


# Each group: (owner, challenge, suspect reps, reference reps) -> results. Scores of references
# are obtained by calling the same function with a reference as the suspect and no references.
TestFn = Callable[[Owner, Challenge, np.ndarray, list[np.ndarray]], list[TestResult]]


@dataclass(frozen=True)
class Group:
    """One ``--tests`` name: the function computing its tests and their descriptions."""

    fn: TestFn
    tests: tuple[TestInfo, ...]


# --- work shared within one verification --------------------------------------------------------
#
# A reference's per-image values are needed once as evidence against the suspect and once more for
# every other reference placed among the rest: k² computations of k values. Within
# ``shared_work()`` each (function, challenge, model answers) is computed once.

_MEMO: ContextVar[dict[tuple[Any, ...], Any] | None] = ContextVar(
    "sleuth_verify_memo", default=None
)


@contextmanager
def shared_work() -> Iterator[None]:
    """Compute each model's per-image values once within the block (the arrays must stay alive
    in it: they are keyed by identity)."""
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


def _once(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, computed once per ``shared_work`` block for the same argument objects."""
    memo = _MEMO.get()
    if memo is None:
        return fn(*args)
    key = (fn, *map(id, args))
    if key not in memo:
        memo[key] = (fn(*args), args)  # keeps the arguments alive, so their ids stay theirs
    return memo[key][0]


# --- alignment into the victim's coordinates -----------------------------------------------------
#
# Every fit reads the private images only, which every round of a verification asks (a lean round
# asks nothing else): a map that is scored on images is fitted on the *other* images of the same
# round (``stats.cross_fitted``), so it never flatters the rows it is judged on.


def _private(ch: Challenge, reps: np.ndarray) -> np.ndarray:
    return ch.role_reps(reps, "private").astype(np.float64)


def _whitened_role(ch: Challenge, reps: np.ndarray, role: str) -> np.ndarray:
    return stats.whitened(ch.role_reps(reps, role).astype(np.float64))


def _white(ch: Challenge, reps: np.ndarray, role: str = "private") -> np.ndarray:
    """A model's representations of one role's images whitened (``stats.whitened``), once per
    verification."""
    return _once(_whitened_role, ch, reps, role)


def _spread(x: np.ndarray) -> float:
    """The RMS distance of the rows from their mean."""
    return float(np.sqrt(((x - x.mean(axis=0)) ** 2).sum(axis=1).mean()))


def _standardised(x: np.ndarray) -> np.ndarray:
    """Centred on its mean and divided by its RMS spread: free of a shift and a global scale."""
    return (x - x.mean(axis=0)) / (_spread(x) or 1.0)


def to_victim(owner: Owner, ch: Challenge, reps: np.ndarray) -> np.ndarray | None:
    """The suspect's answers mapped onto the victim's coordinates by the similarity transform
    fitted on the private images, for the victim's predictor and head, which read other images
    (rotated views, augmented views); None for a suspect wider than the victim (mapping it down
    would choose a subspace, freedom that flatters independent encoders)."""
    if reps.shape[1] > owner.reps.shape[1]:
        return None
    return stats.fit_alignment(_private(ch, reps), _private(ch, owner.reps))(reps)


def _common(
    owner: Owner, ch: Challenge, reps: np.ndarray, role: str = "private"
) -> tuple[np.ndarray, ...]:
    """Victim and suspect representations of one role's images in one coordinate system, each
    whitened: the narrower model mapped into the wider one's space by a similarity transform,
    cross-fitted on those images."""
    victim, suspect = _white(ch, owner.reps, role), _white(ch, reps, role)
    if suspect.shape[1] <= victim.shape[1]:
        return victim, stats.cross_fitted(suspect, victim, stats.fit_alignment)
    return stats.cross_fitted(victim, suspect, stats.fit_alignment), suspect


def _narrowed(x: np.ndarray, width: int) -> np.ndarray:
    """``x`` on its ``width`` principal axes when it is wider: a wider model would get more
    freedom from a fitted linear map than the victim-sized references get."""
    if x.shape[1] <= width:
        return x
    _, _, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
    return x @ vt[:width].T


def linear_residuals(owner: Owner, ch: Challenge, reps: np.ndarray) -> np.ndarray:
    """Per private image, the squared error of the victim's standardised representation
    predicted from the suspect's by a ridge map fitted on the other images (cross-fitted)."""
    victim = _standardised(_private(ch, owner.reps))
    suspect = _narrowed(_standardised(_private(ch, reps)), victim.shape[1])
    predicted = stats.cross_fitted(suspect, victim, stats.fit_linear_map)
    return ((predicted - victim) ** 2).sum(axis=1)


WIDER = "the suspect's representation is wider than the victim's: it cannot be mapped onto the "
WIDER += "victim's {} without choosing a subspace (the distance and similarity tests still compare)"


# --- the groups --------------------------------------------------------------------------------


def matched(owner: Owner, ch: Challenge, reps: np.ndarray) -> np.ndarray:
    """The suspect's answers moved to the victim's per-coordinate means and scaled to its RMS
    spread on the private images: a thief's shift and global scale undone without mixing any
    coordinates, so, unlike the alignment, no other encoder's rotation features are mapped onto
    the victim's (see ``watermark``)."""
    s, v = _private(ch, reps), _private(ch, owner.reps)
    spread = _spread(s)
    scale = _spread(v) / spread if spread > 0 else 1.0
    return (reps - s.mean(axis=0)) * scale + v.mean(axis=0)


@torch.no_grad()
def _wm_correct(owner: Owner, ch: Challenge, reps: np.ndarray) -> np.ndarray:
    logits = owner.predictor(torch.from_numpy(ch.role_reps(reps, "rotated").astype(np.float32)))
    return (logits.argmax(1).numpy() == ch.wm_labels).astype(bool)


def watermark(owner: Owner, ch: Challenge, reps, refs) -> list[TestResult]:
    """The paper's tests on the suspect's outputs as they are; the binomial test again on them
    moved to the victim's means and spread (``matched``: a thief's shift and scale do not hide
    the watermark from it; counted beside the first, since a copy may carry the watermark at its
    raw offset only: measured, a SupCon copy of the demo victim does); and again on its aligned
    outputs (shown, not counted: measured, once aligned, other owners whose secret offset fell
    near the victim's score above the copies, a null no zoo makes normal)."""
    chance = 1 / owner.n_classes
    names = ("watermark-binomial", "watermark-matched", "watermark-aligned")
    if owner.predictor is None:
        return [invalid(n, "watermark", "the victim has no watermark") for n in names]
    if reps.shape[1] == owner.reps.shape[1]:
        results = stats.watermark_tests(_wm_correct(owner, ch, reps), chance=chance)
        again = stats.watermark_tests(_wm_correct(owner, ch, matched(owner, ch, reps)), chance)[0]
        results.append(replace(again, name="watermark-matched", note=again.note + "; matched"))
    else:
        note = "sizes differ: the victim's predictor reads the aligned outputs only"
        results = [invalid(n, "watermark", note) for n in names[:2]]
    aligned = to_victim(owner, ch, reps)
    if aligned is None:
        return [*results, invalid("watermark-aligned", "watermark", WIDER.format("predictor"))]
    again = stats.watermark_tests(_wm_correct(owner, ch, aligned), chance=chance)[0]
    return [*results, replace(again, name="watermark-aligned", note=again.note + "; aligned")]


@torch.no_grad()
def head_losses(owner: Owner, ch: Challenge, reps: np.ndarray, temperature: float = 0.5):
    """Per-sample InfoNCE of the two views through the victim's head, negatives from all samples
    (private and public mixed, so both roles face the same negatives): (private, public)."""
    view1, view2 = (ch.role_reps(reps, v).astype(np.float32) for v in ("di_view1", "di_view2"))
    z1 = F.normalize(owner.head(torch.from_numpy(view1)), dim=1)
    z2 = F.normalize(owner.head(torch.from_numpy(view2)), dim=1)
    logits = z1 @ z2.T / temperature
    loss = F.cross_entropy(logits, torch.arange(len(z1)), reduction="none").numpy()
    return loss[ch.roles["di_private"]], loss[ch.roles["di_public"]]


def di_head(owner: Owner, ch: Challenge, reps, refs) -> list[TestResult]:
    aligned = to_victim(owner, ch, reps)
    if aligned is None:
        return [invalid("di-head-loss", "dataset-inference", WIDER.format("head"))]
    return [stats.dataset_inference_loss(*head_losses(owner, ch, aligned))]


def di_gmm(owner: Owner, ch: Challenge, reps, refs) -> list[TestResult]:
    private, public = ch.role_reps(reps, "private"), ch.role_reps(reps, "public")
    return [stats.dataset_inference_gmm(private, public, seed=ch.settings.seed)]


def _raw_distances(owner: Owner, ch: Challenge, reps: np.ndarray) -> dict[str, np.ndarray]:
    victim = _standardised(_private(ch, owner.reps))
    return stats.pairwise_distances(victim, _standardised(_private(ch, reps)))


def _aligned_cosine(
    owner: Owner, ch: Challenge, reps: np.ndarray, role: str = "private"
) -> np.ndarray:
    return stats.pairwise_distances(*_common(owner, ch, reps, role))["cosine"]


def distance(owner: Owner, ch: Challenge, reps, refs) -> list[TestResult]:
    """Distance to the victim on private images, per image, against the references' distances
    on the same images: in each model's own standardised coordinates (the paper's distance, free
    of shift and scale; a rotation of the outputs hides a copy from it), after the similarity
    transform that undoes a rotation too (``aligned-cosine``), and after a fitted linear map
    that also undoes a stretch (``linear-fit``)."""
    results = []
    same = [r for r in refs if r.shape[1] == owner.reps.shape[1]]
    if reps.shape[1] == owner.reps.shape[1]:
        own = _once(_raw_distances, owner, ch, reps)
        others = [_once(_raw_distances, owner, ch, r) for r in same]
        for kind in ("l2", "cosine"):
            results.append(
                stats.distance_test(
                    own[kind],
                    [o[kind] for o in others],
                    name=f"distance-{kind}",
                    direction=-1,
                    what=f"{kind} distance to the victim, standardised coordinates, private images",
                )
            )
    else:
        note = "sizes differ: coordinates cannot be compared unaligned (aligned-cosine does)"
        results += [invalid(f"distance-{k}", "distance", note) for k in ("l2", "cosine")]
    for name, fn, what in (
        ("aligned-cosine", _aligned_cosine, "cosine distance to the victim after alignment"),
        ("linear-fit", linear_residuals, "squared error of the victim predicted linearly"),
    ):
        results.append(
            stats.distance_test(
                _once(fn, owner, ch, reps),
                [_once(fn, owner, ch, r) for r in refs],
                name=name,
                direction=-1,
                what=f"{what}, private images",
            )
        )
    return results


def _cka(owner: Owner, ch: Challenge, reps: np.ndarray) -> float:
    return stats.linear_cka(_white(ch, owner.reps), _white(ch, reps))


def _knn(owner: Owner, ch: Challenge, reps: np.ndarray) -> np.ndarray:
    victim, suspect = _white(ch, owner.reps), _white(ch, reps)
    return stats.knn_overlap(victim, suspect, k=min(KNN_K, len(victim) - 1))


def similarity(owner: Owner, ch: Challenge, reps, refs) -> list[TestResult]:
    """Representation similarity over private images that no free output transformation
    changes, each model whitened first (``stats.whitened``: the few directions every encoder
    shares no longer drown the rest): linear CKA (one score per model, calibrated only) and the
    per-image overlap of nearest neighbours (paired against the references, then calibrated)."""
    n = len(ch.roles["private"])
    score = _once(_cka, owner, ch, reps)
    cka = TestResult(
        name="cka",
        family="similarity",
        statistic=score,
        p_value=float("nan"),
        effect=score - float(np.mean([_once(_cka, owner, ch, r) for r in refs]))
        if refs
        else np.nan,
        effect_name="CKA minus the references' mean",
        n=n,
        alternative="CKA with the victim larger than an independent encoder's",
        compared=f"linear CKA of the suspect's and the victim's whitened representations of {n} "
        "private images",
        score=score,
        direction=1,
        note="no analytic null: placed among the references only",
    )
    if not np.isfinite(score):
        cka = invalid("cka", "similarity", "a representation does not vary: CKA is undefined", n=n)
    knn = stats.distance_test(
        _once(_knn, owner, ch, reps),
        [_once(_knn, owner, ch, r) for r in refs],
        name="knn-overlap",
        direction=1,
        family="similarity",
        what=f"share of each private image's {KNN_K} nearest neighbours shared with the victim",
    )
    return [cka, knn]


def _spreads(ch: Challenge, reps: np.ndarray) -> np.ndarray:
    clean = ch.role_reps(reps, "noisy_clean")
    noisy = ch.role_reps(reps, "noisy").reshape(len(clean), -1, reps.shape[1])
    return stats.noise_spreads(clean, noisy)


def noise(owner: Owner, ch: Challenge, reps, refs) -> list[TestResult]:
    if not len(ch.roles["noisy_clean"]):
        return [invalid("noise-sensitivity", "noise", "no noise points in this challenge", n=0)]
    return [stats.noise_sensitivity(_spreads(ch, owner.reps), _spreads(ch, reps))]


def shifted(owner: Owner, ch: Challenge, reps, refs) -> list[TestResult]:
    """Off the victim's distribution: per shift in ``challenge.SHIFTS``, the aligned cosine
    distance to the victim on shifted private images (the alignment cross-fitted on them), paired
    against the references'. These tests never accuse (``clears_only``): their shifts are the
    investigator's guess at where a thief may have queried, so they only ask whether the suspect
    is *typical* of the references there, and a suspect atypical on any is not cleared."""
    results = []
    for name, role in SHIFT_ROLES.items():
        test = f"shift-{name}"
        if len(ch.roles.get(role, ())) < stats.MIN_SAMPLES:
            note = "no shifted images in this challenge (a lean round, or --shift-samples 0)"
            results.append(invalid(test, "shift", note, direction=-1))
            continue
        results.append(
            stats.distance_test(
                _once(_aligned_cosine, owner, ch, reps, role),
                [_once(_aligned_cosine, owner, ch, r, role) for r in refs],
                name=test,
                direction=-1,
                family="shift",
                what=f"cosine distance to the victim after alignment, {name} private images",
            )
        )
    return results


def _skewness(ch: Challenge, reps: np.ndarray) -> np.ndarray:
    return stats.coordinate_skewness(_private(ch, reps))


def _skew_score(ch: Challenge, reps: np.ndarray) -> float:
    skew = _once(_skewness, ch, reps)
    return float(np.nanmean(skew)) if np.isfinite(skew).any() else float("nan")


def _matched_distances(owner: Owner, ch: Challenge, reps: np.ndarray) -> np.ndarray:
    """Per private image, the distance to the victim with the suspect's coordinates matched to
    the victim's one to one (cross-fitted), in the victim's per-coordinate spread."""
    victim = _private(ch, owner.reps)
    mapped = stats.cross_fitted(_private(ch, reps), victim, stats.fit_coordinate_matching)
    spread = np.maximum(victim.std(axis=0), 1e-12)
    return np.linalg.norm((mapped - victim) / spread, axis=1)


def basis(owner: Owner, ch: Challenge, reps, refs) -> list[TestResult]:
    """Did the suspect hide its coordinate system? The tests that compare coordinates are the
    strongest against a weak copy, and a thief switches them off for free: a secret rotation
    (measured: a StolenEncoder copy of 200 queries, rotated or permuted, sat among independent
    encoders in every other test and was cleared). A rotation leaves a trace of its own, output
    coordinates that no longer look like a trained network's units (``basis-skew``); a
    permutation, coordinates that still match the victim's one to one (``basis-matched``). Both
    only guard a clearance (``clears_only``): a suspect atypical in either is not cleared."""
    n = len(ch.roles["private"])
    score = _skew_score(ch, reps)
    skew = TestResult(
        name="basis-skew",
        family="basis",
        statistic=score,
        p_value=float("nan"),
        effect=score - float(np.mean([_skew_score(ch, r) for r in refs])) if refs else np.nan,
        effect_name="mean absolute skewness of the output coordinates minus the references' mean",
        n=n,
        alternative="output coordinates less lopsided than a trained encoder's (a rotated basis)",
        compared=f"mean absolute skewness over {reps.shape[1]} output coordinates, {n} private "
        "images",
        score=score,
        direction=-1,
        note="no analytic null: placed among the references only, to guard a clearance",
        samples={"coordinates": _once(_skewness, ch, reps)},
    )
    if not np.isfinite(score):
        skew = invalid("basis-skew", "basis", "no output coordinate varies", n=n, direction=-1)
    if reps.shape[1] != owner.reps.shape[1]:
        note = "sizes differ: coordinates cannot be matched one to one"
        return [skew, invalid("basis-matched", "basis", note, n=n, direction=-1)]
    matched = stats.distance_test(
        _once(_matched_distances, owner, ch, reps),
        [_once(_matched_distances, owner, ch, r) for r in refs],
        name="basis-matched",
        direction=-1,
        family="basis",
        what="distance to the victim, coordinates matched one to one, private images",
    )
    return [skew, matched]


_SHIFT_WORDS = {
    "inverted": "negatives of its training images",
    "contrast": "its training images at twice the contrast",
    "blur": "its training images blurred",
    "noise": "its training images with strong noise",
}
_PAIRED = {
    "suspect": "per private image: the suspect's value",
    "reference_mean": "per private image: the mean of the references' values on the same image",
    "difference": "per private image: suspect minus the references' mean (the paired t-test's "
    "input)",
}
_WM_ARRAYS = {
    "correct": "per privately rotated image: 1 if the victim's augmentation predictor recovered "
    "the private rotation class from the suspect's representation",
}
_HEAD_ARRAYS = {
    "private_loss": "per private (trained-on) image: contrastive loss of its two views through "
    "the victim's projection head",
    "public_loss": "per public (held-out) image: contrastive loss of its two views through the "
    "victim's projection head",
}
_GMM_ARRAYS = {
    "private_loglik": "per held-out private image: log-likelihood under a Gaussian mixture fitted "
    "on the suspect's representations of the other private images",
    "public_loglik": "per public image: log-likelihood under the same Gaussian mixture",
}
_NOISE_ARRAYS = {
    "victim_spread": "per private point: spread of the victim's representation under small input "
    "noise, relative to its representation spread",
    "suspect_spread": "per private point: the same spread for the suspect",
}

GROUPS: dict[str, Group] = {
    "watermark": Group(
        watermark,
        (
            TestInfo(
                "watermark-binomial",
                "watermark",
                "The owner trained the victim to recognise secret rotations of its images. A "
                "copy made from the victim's outputs inherits that skill; an independent model "
                "should not have it. This counts how often the victim's secret classifier, "
                "reading the suspect's outputs, recovers the rotation, against chance (exact "
                "binomial test) and against independent models.",
                _WM_ARRAYS,
                power="one-sample",
                proportion=True,
                needs_rotation_aware=True,
            ),
            TestInfo(
                "watermark-ttest",
                "watermark",
                "The same watermark trials as above, tested as the paper does (one-sample "
                "t-test of correct answers against chance); shown, not counted twice.",
                _WM_ARRAYS,
                power="one-sample",
                proportion=True,
                counted=False,
            ),
            TestInfo(
                "watermark-matched",
                "watermark",
                "The same count after moving and scaling the suspect's outputs to the victim's "
                "average and spread, so that a thief cannot hide the watermark by shifting or "
                "rescaling them; no output coordinate is mixed with another.",
                _WM_ARRAYS,
                power="one-sample",
                proportion=True,
                needs_rotation_aware=True,
            ),
            TestInfo(
                "watermark-aligned",
                "watermark",
                "The binomial test again after undoing any shift, rotation and scale of the "
                "suspect's outputs, so that a thief's rotation cannot hide the watermark; "
                "shown, not counted: another owner whose secret rotations happen to lie near "
                "the victim's passes it as well as a copy does.",
                _WM_ARRAYS,
                power="one-sample",
                proportion=True,
                counted=False,
            ),
        ),
    ),
    "di-head": Group(
        di_head,
        (
            TestInfo(
                "di-head-loss",
                "dataset-inference",
                "Dataset inference: a model derived from the victim should find the victim's "
                "training images more familiar than images it never saw. Familiarity is "
                "measured by the victim's own contrastive loss on the suspect's aligned "
                "outputs, lower on familiar images.",
                _HEAD_ARRAYS,
                power="two-sample",
                needs_victim_effect=True,
            ),
        ),
    ),
    "di-gmm": Group(
        di_gmm,
        (
            TestInfo(
                "di-gmm",
                "dataset-inference",
                "Dataset inference without the victim's head: a density model of the suspect's "
                "outputs on some training images should rate other training images as more "
                "likely than images the victim never saw.",
                _GMM_ARRAYS,
                power="two-sample",
                needs_victim_effect=True,
            ),
        ),
    ),
    "distance": Group(
        distance,
        (
            TestInfo(
                "distance-l2",
                "distance",
                "A copy answers like the victim. This compares how far the suspect's outputs "
                "are from the victim's (Euclidean distance, after removing offset and scale) "
                "with how far independently trained models are.",
                _PAIRED,
                power="one-sample",
            ),
            TestInfo(
                "distance-cosine",
                "distance",
                "The same comparison with the angle between outputs (cosine distance); shown, "
                "the Euclidean distance above counts.",
                _PAIRED,
                power="one-sample",
                counted=False,
            ),
            TestInfo(
                "aligned-cosine",
                "distance",
                "A thief could rotate or permute his outputs to hide the resemblance. This "
                "first evens out each model's directions (whitening), finds the best shift, "
                "rotation and scale on half of the training images, then measures the angle "
                "between the suspect's and the victim's outputs on the other half, against "
                "independent models aligned the same way.",
                _PAIRED,
                power="one-sample",
            ),
            TestInfo(
                "linear-fit",
                "distance",
                "A copy trained with another loss may answer with its coordinates stretched or "
                "mixed (Barlow Twins whitens them). This learns the best linear translation from "
                "the suspect's outputs to the victim's on half of the training images and "
                "measures how well it predicts the victim on the other half, against "
                "independent models translated the same way.",
                _PAIRED,
                power="one-sample",
            ),
        ),
    ),
    "similarity": Group(
        similarity,
        (
            TestInfo(
                "cka",
                "similarity",
                "How alike is the whole geometry of the suspect's outputs to the victim's on "
                "the victim's training images (linear CKA, each model's directions evened out "
                "first)? Rotating, permuting, rescaling or shifting outputs does not change it, "
                "so a thief cannot hide behind them. Compared with independent models only.",
                calibrated_only=True,
            ),
            TestInfo(
                "knn-overlap",
                "similarity",
                "Which training images does each model put next to each other? For every image "
                "this counts how many of its 10 nearest neighbours (each model's directions "
                "evened out first) the suspect shares with the victim, against independent "
                "models; free transformations of the outputs do not change neighbours.",
                _PAIRED,
                power="one-sample",
            ),
        ),
    ),
    "noise": Group(
        noise,
        (
            TestInfo(
                "noise-sensitivity",
                "noise",
                "A copy trained on the victim's outputs tends to react less to tiny changes of "
                "the victim's training images than the victim itself. This compares how much "
                "the outputs move under small noise, against independent models. It never "
                "accuses: an encoder trained by the victim's recipe on fewer images reacts as "
                "little (measured); a suspect unlike every independent model here is not "
                "cleared.",
                _NOISE_ARRAYS,
                power="one-sample",
                counted=False,
                clears_only=True,
            ),
        ),
    ),
    "shift": Group(
        shifted,
        tuple(
            TestInfo(
                f"shift-{name}",
                "shift",
                f"A thief may have asked the victim about unlike images ({how}) and made a copy "
                "that answers like the victim there and like any other model on the victim's "
                "own images. This measures, on such images, the angle between the suspect's and "
                "the victim's outputs after alignment, against independent models. It never "
                "accuses; a suspect unlike every independent model here is not cleared.",
                _PAIRED,
                counted=False,
                clears_only=True,
            )
            for name, how in ((name, _SHIFT_WORDS[name]) for name in SHIFT_ROLES)
        ),
    ),
    "basis": Group(
        basis,
        (
            TestInfo(
                "basis-skew",
                "basis",
                "A thief can rotate his outputs for free, which hides every comparison of "
                "coordinates. The coordinates a trained network outputs are lopsided one by one; "
                "rotated ones are mixtures, nearly symmetric. This compares how lopsided the "
                "suspect's output coordinates are with independent models'. It never accuses; a "
                "suspect unlike every independent model here is not cleared.",
                {
                    "coordinates": "per output coordinate: the absolute skewness of its values "
                    "over the private images"
                },
                counted=False,
                clears_only=True,
            ),
            TestInfo(
                "basis-matched",
                "basis",
                "A thief can also shuffle his output coordinates. This pairs each of the "
                "suspect's coordinates with the victim's it follows most closely (one to one, on "
                "half of the training images), then measures the distance to the victim on the "
                "other half, against independent models paired the same way. It never accuses; "
                "a suspect unlike every independent model here is not cleared.",
                _PAIRED,
                counted=False,
                clears_only=True,
            ),
        ),
    ),
}

TEST_INFO: dict[str, TestInfo] = {t.name: t for g in GROUPS.values() for t in g.tests}
"""Every test by name, in table order."""
