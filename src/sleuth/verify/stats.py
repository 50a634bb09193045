"""The statistics of ``sleuth verify``: pure functions from numpy arrays to test results.

No models and no torch here: :mod:`sleuth.verify.evidence` turns encoders' answers into arrays,
these functions turn arrays into :class:`~sleuth.verify.result.TestResult` values, and
:mod:`sleuth.verify.verdict` combines them. Every p-value is one-sided, small meaning evidence that
the suspect was derived from the victim. Each docstring states H0, H1 and the assumptions a reader
must accept for the p-value to mean what it says.

A false accusation of an independently trained encoder is the worst error this module can make, so
a test whose input cannot support it returns :func:`~sleuth.verify.result.invalid` (which never
counts towards an accusation) rather than a p-value.

The tests follow the papers: the watermark t-test of 000 §5.1 (Table 4), dataset inference on
projection-head losses of 000 §5.4 (Table 20) and on representations with a Gaussian mixture
(Dziedzic et al., NeurIPS 2022), ℓ2 distances to the victim (000 App. E.3, Table 18) and noise
sensitivity (000 App. F, Table 19). Analytic tests here compare the suspect with *chance* or with
the victim; whether an independently trained encoder would look just as suspicious is answered by
placing the suspect's score among independent reference encoders' scores with :func:`calibrate`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import linalg, stats
from scipy.optimize import linear_sum_assignment
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler
from statsmodels.robust.scale import qn_scale
from statsmodels.stats.power import NormalIndPower, TTestIndPower, TTestPower

from sleuth.verify.result import TestResult, invalid

MIN_SAMPLES = 10  # below this a t-test's normal approximation is not worth reporting
MIN_GMM_ROWS = 20  # per side (fitting half, held-out private, public) for the mixture test
_EPS = 1e-12


def _vector(x: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {a.shape}")
    return a


def _matrix(x: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{what} must be two-dimensional (rows, dims), got shape {a.shape}")
    return a


def _check_direction(direction: int) -> None:
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction}")


def _alternative(direction: int) -> Literal["greater", "less"]:
    return "greater" if direction == 1 else "less"


# --- watermark (000 §5.1, Table 4) -------------------------------------------------------------


def watermark_tests(correct: np.ndarray, chance: float) -> list[TestResult]:
    """Does the suspect carry the victim's watermark? Two tests of one vector of trials.

    ``correct[i]`` says whether the victim's augmentation predictor, applied to the suspect's
    representation of the i-th privately rotated image, recovered the private rotation class.

    - ``watermark-binomial`` (exact): H0: P(correct) = ``chance``; H1: P(correct) > ``chance``;
      ``scipy.stats.binomtest(alternative="greater")``.
    - ``watermark-ttest`` (the paper's, Table 4): one-sample t-test of the 0/1 correctness against
      ``chance``, one-sided greater. Normal approximation to a Bernoulli mean; with all answers
      identical it is undefined and returned invalid (the binomial test still answers).

    Both report score = accuracy and effect = accuracy − chance (the paper's Δμ), direction +1.

    Assumptions: the trials are independent (distinct images; the predictor is fixed, never fitted
    on these images) and an independently trained encoder's accuracy is exactly ``chance``. The
    latter can fail: natural images carry orientation cues, so an honest encoder may decode the
    rotation above chance. That is why the verdict also places the accuracy among independent
    references' accuracies (:func:`calibrate`). Invalid when fewer than 10 trials or ``chance``
    is not in (0, 1).
    """
    names = ("watermark-binomial", "watermark-ttest")
    c = np.asarray(correct)
    if c.ndim != 1:
        raise ValueError(f"correct must be one-dimensional, got shape {c.shape}")
    n = len(c)
    if not (0.0 < chance < 1.0) or not math.isfinite(chance):
        return [
            invalid(m, "watermark", f"chance must be in (0, 1), got {chance}", n=n) for m in names
        ]
    if n < MIN_SAMPLES:
        note = f"only {n} watermark trials (need at least {MIN_SAMPLES})"
        return [invalid(m, "watermark", note, n=n) for m in names]
    if not np.isin(c, (0, 1)).all():
        raise ValueError("correct must hold booleans (or 0/1)")
    c = c.astype(bool)
    k = int(c.sum())
    acc = k / n
    compared = (
        f"victim's augmentation predictor on the suspect's representations of {n} privately "
        f"rotated images vs chance {chance:.4g}"
    )
    alternative = f"accuracy > chance {chance:.4g}"
    common = dict(
        family="watermark",
        effect=acc - chance,
        effect_name="accuracy - chance (Δμ)",
        n=n,
        alternative=alternative,
        compared=compared,
        score=acc,
        direction=1,
        samples={"correct": c},
    )
    binom = stats.binomtest(k, n, chance, alternative="greater")
    results = [
        TestResult(
            name=names[0],
            statistic=float(k),
            p_value=float(binom.pvalue),
            note=f"exact binomial: {k} of {n} correct (statistic = number correct)",
            **common,
        )
    ]
    if k in (0, n):
        results.append(
            invalid(
                names[1],
                "watermark",
                f"all {n} answers {'correct' if k else 'wrong'}: zero variance, the t-test is "
                "undefined (the exact binomial test answers)",
                n=n,
            )
        )
    else:
        t = stats.ttest_1samp(c.astype(np.float64), chance, alternative="greater")
        results.append(
            TestResult(
                name=names[1],
                statistic=float(t.statistic),
                p_value=float(t.pvalue),
                note="one-sample t-test of 0/1 correctness vs chance (000 Table 4)",
                **common,
            )
        )
    return results


# --- dataset inference (000 §5.4, Table 20; Dziedzic et al. 2022) ------------------------------


def _welch_greater(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float]:
    """One-sided Welch test of H1: mean(a) > mean(b). Returns (t, p, Δμ = mean(a) − mean(b),
    Cohen's d with the two variances averaged)."""
    res = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
    delta = float(a.mean() - b.mean())
    pooled = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    return float(res.statistic), float(res.pvalue), delta, delta / pooled if pooled else math.nan


def _per_group_n(n1: int, n2: int) -> int:
    """The equal group size with the same standard error as sizes n1, n2 (harmonic mean)."""
    return int(round(2 / (1 / n1 + 1 / n2)))


def dataset_inference_loss(private_loss: np.ndarray, public_loss: np.ndarray) -> TestResult:
    """Dataset inference on projection-head losses (000 §5.4, Table 20): ``di-head-loss``.

    Per-sample contrastive loss of the victim's projection head on the suspect's representations of
    the victim's private (training) images and of public images from the same distribution.

    H0: mean private loss ≥ mean public loss. H1: mean private loss < mean public loss (the suspect
    has learned the victim's training data better than unseen data). One-sided Welch t-test
    (``scipy.stats.ttest_ind(equal_var=False)``). effect = score = mean(public) − mean(private)
    (the paper's Δμ), direction +1; Cohen's d (pooled by the mean of the two variances) is in the
    note. ``n`` is the per-group size (the harmonic mean when the groups differ).

    Assumptions: the samples are independent, and private and public images are drawn from the
    same distribution; if the public images differ in kind (another dataset, another resolution),
    every encoder shows a gap and the analytic p-value is meaningless: the reference calibration is
    what protects against that. The paper found this signal weak for SSL encoders.
    Invalid with fewer than 10 samples per group, non-finite losses, or no variation at all.
    """
    name, family = "di-head-loss", "dataset-inference"
    priv, pub = _vector(private_loss, "private_loss"), _vector(public_loss, "public_loss")
    n = min(len(priv), len(pub))
    if n < MIN_SAMPLES:
        return invalid(name, family, f"only {n} samples per group (need {MIN_SAMPLES})", n=n)
    if not (np.isfinite(priv).all() and np.isfinite(pub).all()):
        return invalid(name, family, "non-finite losses", n=n)
    if priv.var() == 0 and pub.var() == 0:
        return invalid(name, family, "losses do not vary: the t-test is undefined", n=n)
    t, p, delta, d = _welch_greater(pub, priv)
    return TestResult(
        name=name,
        family=family,
        statistic=t,
        p_value=p,
        effect=delta,
        effect_name="mean public loss - mean private loss (Δμ)",
        n=_per_group_n(len(priv), len(pub)),
        alternative="mean private loss < mean public loss",
        compared=(
            f"victim-head contrastive loss on the suspect's representations: {len(priv)} private "
            f"vs {len(pub)} public images"
        ),
        score=delta,
        direction=1,
        note=f"one-sided Welch t-test; Cohen's d = {d:.3f}",
        samples={"private_loss": priv, "public_loss": pub},
    )


def dataset_inference_gmm(
    private_reps: np.ndarray,
    public_reps: np.ndarray,
    *,
    n_components: int = 10,
    seed: int = 0,
) -> TestResult:
    """Dataset inference on representations with a Gaussian mixture (Dziedzic et al., NeurIPS
    2022): ``di-gmm``.

    The owner's private rows are split in half (seeded). A diagonal-covariance
    ``sklearn.mixture.GaussianMixture`` (seeded, ``reg_covar=1e-3``) is fitted on the suspect's
    representations of the first half, after standardising with a ``StandardScaler`` fitted on that
    half only. The log-likelihood (``score_samples``) of the held-out private rows is compared with
    that of the public rows; the larger group is subsampled (seeded) so both have the same size m.

    H0: mean held-out private log-likelihood ≤ mean public log-likelihood. H1: it is larger (the
    suspect's representation maps the victim's private data to a region like the fitting half, as
    an encoder trained on the victim's outputs for that data would). One-sided Welch t-test.
    effect = score = difference of the mean log-likelihoods, direction +1. ``n`` = m.

    Assumptions: conditional on the fitted mixture, held-out private and public rows are
    independent draws; private and public images come from the same distribution (otherwise any
    encoder separates them, and only the reference calibration protects the verdict). The mixture
    need not fit well: neither tested group was used to fit it, so a poor fit costs power, not
    validity. ``n_components`` is reduced to one per 10 fitting rows when rows are few.
    Invalid with fewer than 20 rows per side (fitting half, held-out half, public).
    """
    name, family = "di-gmm", "dataset-inference"
    priv, pub = _matrix(private_reps, "private_reps"), _matrix(public_reps, "public_reps")
    if priv.shape[1] != pub.shape[1]:
        raise ValueError(f"private and public dims differ: {priv.shape[1]} vs {pub.shape[1]}")
    n_fit = len(priv) // 2
    m = min(len(priv) - n_fit, len(pub))
    if n_fit < MIN_GMM_ROWS or m < MIN_GMM_ROWS:
        return invalid(
            name,
            family,
            f"{len(priv)} private and {len(pub)} public rows: need at least {MIN_GMM_ROWS} per "
            "side (fitting half, held-out half, public)",
            n=max(m, 0),
        )
    if not (np.isfinite(priv).all() and np.isfinite(pub).all()):
        return invalid(name, family, "non-finite representations", n=m)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(priv))
    fit_rows = priv[order[:n_fit]]
    held = priv[order[n_fit:]]
    held = held[rng.choice(len(held), size=m, replace=False)] if len(held) > m else held
    pub = pub[rng.choice(len(pub), size=m, replace=False)] if len(pub) > m else pub
    scaler = StandardScaler().fit(fit_rows)
    k = max(1, min(n_components, n_fit // 10))
    gmm = GaussianMixture(
        n_components=k, covariance_type="diag", reg_covar=1e-3, random_state=seed, max_iter=200
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        gmm.fit(scaler.transform(fit_rows))
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    ll_priv = gmm.score_samples(scaler.transform(held))
    ll_pub = gmm.score_samples(scaler.transform(pub))
    if not (np.isfinite(ll_priv).all() and np.isfinite(ll_pub).all()):
        return invalid(name, family, "non-finite log-likelihoods", n=m)
    if ll_priv.var() == 0 and ll_pub.var() == 0:
        return invalid(name, family, "log-likelihoods do not vary: the t-test is undefined", n=m)
    t, p, delta, d = _welch_greater(ll_priv, ll_pub)
    note = (
        f"one-sided Welch t-test; {k}-component diagonal mixture fitted on {n_fit} private rows; "
        f"Cohen's d = {d:.3f}" + ("" if converged else "; the mixture fit did not converge")
    )
    return TestResult(
        name=name,
        family=family,
        statistic=t,
        p_value=p,
        effect=delta,
        effect_name="mean log-likelihood, held-out private - public",
        n=m,
        alternative="held-out private log-likelihood > public log-likelihood",
        compared=(
            f"Gaussian mixture of the suspect's representations of {n_fit} private images: "
            f"{m} held-out private vs {m} public images"
        ),
        score=delta,
        direction=1,
        note=note,
        samples={"private_loglik": ll_priv, "public_loglik": ll_pub},
    )


# --- representation distance (000 App. E.3, Table 18), alignment and similarity -----------------


def _row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of row i of a and b; a zero row has similarity 0 with anything."""
    num = np.einsum("ij,ij->i", a, b)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return num / np.maximum(den, _EPS)


def pairwise_distances(victim: np.ndarray, suspect: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample distances between row i of ``victim`` and row i of ``suspect`` (same images).

    Returns ``{"l2": ‖v_i − s_i‖₂, "cosine": 1 − cos(v_i, s_i)}`` (a zero row has cosine
    distance 1). Raw distances only mean something in one shared coordinate system: shapes must
    match, else ``ValueError`` (map one model onto the other first with :func:`fit_alignment`).
    """
    v, s = _matrix(victim, "victim"), _matrix(suspect, "suspect")
    if v.shape != s.shape:
        raise ValueError(f"victim and suspect shapes differ: {v.shape} vs {s.shape}")
    return {"l2": np.linalg.norm(v - s, axis=1), "cosine": 1.0 - _row_cosine(v, s)}


@dataclass(frozen=True)
class Alignment:
    """The map x ↦ scale · (x − src_mean) @ rotation + dst_mean fitted by :func:`fit_alignment`."""

    rotation: np.ndarray  # (d_src, d_dst), orthonormal rows
    scale: float
    src_mean: np.ndarray
    dst_mean: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.scale * (np.asarray(x, np.float64) - self.src_mean) @ self.rotation + (
            self.dst_mean
        )


def fit_alignment(src_fit: np.ndarray, dst_fit: np.ndarray) -> Alignment:
    """Undo what a thief can do to his outputs for free: a shift, a rotation (or permutation, or
    reflection) and a global scale, fitted by least squares on the same images seen by two models.

    Both sides are centred on their own mean over the fit rows; the rotation is the orthogonal
    Procrustes solution (``scipy.linalg.orthogonal_procrustes``), or, when the source is narrower
    than the destination, the isometric embedding W = U Vᵀ from the SVD of the cross-covariance
    (orthonormal rows, exact least squares: nothing is stretched and nothing discarded). The scale
    is Σσ / ‖src‖², which makes the fitted map the least-squares similarity transform.

    A source wider than its destination is refused (``ValueError``): projecting it onto its
    best-matching subspace is extra freedom that would flatter independent encoders, so callers
    map the narrower model into the wider one instead. Deliberately not a general linear map
    (that is :func:`fit_linear_map`, a test of its own): measured while planning, a fitted linear
    map (R² ≈ 0.95) made independent SimCLR encoders look as close to the victim as stolen copies
    in absolute terms, whereas orthogonal maps kept stolen copies (≈ 0.98 cosine) apart from
    independent encoders (≤ 0.88). Fit on rows other than those you score.
    """
    src, dst = _matrix(src_fit, "src_fit"), _matrix(dst_fit, "dst_fit")
    if len(src) != len(dst) or len(src) < 2:
        raise ValueError(f"need the same rows (at least 2) on both sides: {len(src)}, {len(dst)}")
    if src.shape[1] > dst.shape[1]:
        raise ValueError(
            f"source wider than destination ({src.shape[1]} > {dst.shape[1]}): map the narrower "
            "model into the wider one"
        )
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - src_mean, dst - dst_mean
    if a.shape[1] == b.shape[1]:
        rotation, sv_sum = linalg.orthogonal_procrustes(a, b)
    else:
        u, sv, vt = np.linalg.svd(a.T @ b, full_matrices=False)
        rotation, sv_sum = u @ vt, float(sv.sum())
    norm2 = float((a**2).sum())
    return Alignment(rotation, sv_sum / norm2 if norm2 > 0 else 1.0, src_mean, dst_mean)


WHITENING_FLOOR = 0.1  # variance floor of whitening, as a share of the largest direction's


def whitened(x: np.ndarray, floor: float = WHITENING_FLOOR) -> np.ndarray:
    """``x`` centred and rotated onto its principal axes, each axis divided by its spread, with
    every variance floored at ``floor`` times the largest one.

    A model's representation is dominated by a few directions of large variance that every
    encoder trained on the same data shares; whitening gives the rest, where a copy's
    resemblance to its victim also lives, an equal say, and undoes a stretch of the coordinates
    (Barlow Twins' loss whitens a copy's outputs). The floor keeps directions of almost no
    variance (noise, or the rows' own rank deficit when rows are few) from being blown up. The
    result does not change when ``x`` is rotated, shifted or rescaled, except for the arbitrary
    orientation of its axes, which the tests reading it (nearest neighbours, CKA, orthogonal
    alignment) ignore.
    """
    a = _matrix(x, "x")
    if not 0 < floor <= 1:
        raise ValueError(f"floor must be in (0, 1], got {floor}")
    centred = a - a.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    if sv.size == 0 or sv[0] == 0:
        return centred
    spread = np.maximum(sv, sv[0] * math.sqrt(floor))
    return centred @ vt.T / spread * math.sqrt(len(a))


@dataclass(frozen=True)
class LinearMap:
    """The map x ↦ (x − src_mean) @ weights + dst_mean fitted by :func:`fit_linear_map`."""

    weights: np.ndarray  # (d_src, d_dst)
    src_mean: np.ndarray
    dst_mean: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) - self.src_mean) @ self.weights + self.dst_mean


RIDGE = 0.1  # ridge penalty, as a multiple of the source's mean variance per dimension


def fit_linear_map(src_fit: np.ndarray, dst_fit: np.ndarray, ridge: float = RIDGE) -> LinearMap:
    """The least-squares affine map from one model's representations to another's on the same
    images, with a ridge penalty of ``ridge`` times the source's mean variance per dimension.

    Unlike :func:`fit_alignment` it may stretch and mix coordinates, so it also undoes what a
    thief's loss does without his choosing: Barlow Twins' whitening, a predictor network's
    roughly linear layer. The penalty is relative to the source's own spread, so the fitted
    predictions do not change when the source is shifted, rotated, permuted or rescaled (the
    free transformations). More freedom flatters independent encoders too; that is why every
    reference is fitted the same way and a test built on it is calibrated against them.
    """
    src, dst = _matrix(src_fit, "src_fit"), _matrix(dst_fit, "dst_fit")
    if len(src) != len(dst) or len(src) < 2:
        raise ValueError(f"need the same rows (at least 2) on both sides: {len(src)}, {len(dst)}")
    if ridge <= 0:
        raise ValueError(f"ridge must be positive, got {ridge}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - src_mean, dst - dst_mean
    gram = a.T @ a
    penalty = ridge * max(float(np.trace(gram)) / a.shape[1], _EPS)
    weights = linalg.solve(gram + penalty * np.eye(a.shape[1]), a.T @ b, assume_a="pos")
    return LinearMap(weights, src_mean, dst_mean)


def cross_fitted(
    src: np.ndarray,
    dst: np.ndarray,
    fit: Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]],
    folds: int = 2,
) -> np.ndarray:
    """Each row of ``src`` mapped into ``dst``'s space by a map ``fit`` on the other folds' rows
    (row i is in fold i mod ``folds``): no row is scored by a map that saw it, so a fitted map
    cannot flatter the rows it is judged on, and no images beyond the scored ones are needed."""
    s, d = _matrix(src, "src"), _matrix(dst, "dst")
    if len(s) != len(d) or len(s) < 2 * folds:
        raise ValueError(f"need the same rows (at least {2 * folds}): {len(s)}, {len(d)}")
    fold = np.arange(len(s)) % folds
    out = np.empty((len(s), d.shape[1]))
    for f in range(folds):
        out[fold == f] = fit(s[fold != f], d[fold != f])(s[fold == f])
    return out


@dataclass(frozen=True)
class CoordinateMatching:
    """The map fitted by :func:`fit_coordinate_matching`: each source coordinate standardised,
    sign-flipped and moved onto its matched destination coordinate at that one's mean and
    spread (destination coordinates left unmatched stay at their mean)."""

    src: np.ndarray  # matched source coordinates
    dst: np.ndarray  # the destination coordinate each goes to
    signs: np.ndarray
    src_mean: np.ndarray
    src_sd: np.ndarray
    dst_mean: np.ndarray
    dst_sd: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, np.float64) - self.src_mean) / self.src_sd
        out = np.zeros((len(z), len(self.dst_mean)))
        out[:, self.dst] = z[:, self.src] * self.signs
        return out * self.dst_sd + self.dst_mean


def fit_coordinate_matching(src_fit: np.ndarray, dst_fit: np.ndarray) -> CoordinateMatching:
    """Undo a permutation of coordinates, a sign flip and a shift and scale of each: match each
    source coordinate to a destination coordinate, one to one, maximising the summed absolute
    correlation on the same images (the assignment problem,
    ``scipy.optimize.linear_sum_assignment``). Unlike :func:`fit_alignment` it mixes no
    coordinates, so it keeps what a rotation destroys: which coordinate holds what."""
    src, dst = _matrix(src_fit, "src_fit"), _matrix(dst_fit, "dst_fit")
    if len(src) != len(dst) or len(src) < 2:
        raise ValueError(f"need the same rows (at least 2) on both sides: {len(src)}, {len(dst)}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_sd = np.maximum(src.std(axis=0), _EPS)
    dst_sd = np.maximum(dst.std(axis=0), _EPS)
    corr = ((src - src_mean) / src_sd).T @ ((dst - dst_mean) / dst_sd) / len(src)
    rows, cols = linear_sum_assignment(-np.abs(corr))
    signs = np.where(corr[rows, cols] < 0, -1.0, 1.0)
    return CoordinateMatching(rows, cols, signs, src_mean, src_sd, dst_mean, dst_sd)


def coordinate_skewness(x: np.ndarray) -> np.ndarray:
    """Per coordinate, the absolute skewness of its values over the rows (``scipy.stats.skew``);
    NaN for a coordinate that does not vary. A coordinate of a trained network's output is a
    unit of its own, often lopsided (a ReLU's, a sparse feature's); a thief's secret rotation
    makes every output coordinate a mix of many, near-symmetric as a sum of many is."""
    a = _matrix(x, "x")
    skew = np.full(a.shape[1], np.nan)
    varies = a.std(axis=0) > 0
    with warnings.catch_warnings():  # a nearly dead unit: scipy warns of lost precision
        warnings.simplefilter("ignore", RuntimeWarning)
        skew[varies] = np.abs(stats.skew(a[:, varies], axis=0))
    return skew


def knn_overlap(x: np.ndarray, y: np.ndarray, k: int = 10) -> np.ndarray:
    """Per row i, the share of its ``k`` nearest neighbours (cosine similarity among the other
    rows, each model centred on its own mean over these rows) that two representations agree on.

    Invariant to everything a thief does to his outputs for free (a shift, a rotation or
    permutation, a global scale) and robust to small output noise, because it only reads which
    images each model puts next to each other. Works for different dims. 1 for identical
    neighbourhoods; about k / (n − 1) for unrelated ones.
    """
    a, b = _matrix(x, "x"), _matrix(y, "y")
    if len(a) != len(b):
        raise ValueError(f"x and y need the same rows, got {len(a)} and {len(b)}")
    if not 1 <= k < len(a):
        raise ValueError(f"k must be in [1, rows), got {k} for {len(a)} rows")

    def neighbours(m: np.ndarray) -> np.ndarray:
        m = m - m.mean(axis=0)
        m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), _EPS)
        sim = m @ m.T
        np.fill_diagonal(sim, -np.inf)
        return np.argpartition(-sim, k - 1, axis=1)[:, :k]

    na, nb = neighbours(a), neighbours(b)
    hits = (na[:, :, None] == nb[:, None, :]).any(axis=2).sum(axis=1)
    return hits / k


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear centred kernel alignment (Kornblith et al., 2019) of two representations of the
    same rows: ‖Yᵀ X‖²_F / (‖Xᵀ X‖_F ‖Yᵀ Y‖_F) after centring the columns.

    In [0, 1]; 1 for identical representations; invariant to orthogonal maps and isotropic
    scaling of either side (not to general linear maps); works for different dims. NaN when one
    side has no variation.
    """
    a, b = _matrix(x, "x"), _matrix(y, "y")
    if len(a) != len(b):
        raise ValueError(f"x and y need the same rows, got {len(a)} and {len(b)}")
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    if len(a) < max(a.shape[1], b.shape[1]):  # Gram form is cheaper with few rows
        ka, kb = a @ a.T, b @ b.T
        hsic, na, nb = (ka * kb).sum(), np.linalg.norm(ka), np.linalg.norm(kb)
    else:
        hsic = np.linalg.norm(b.T @ a) ** 2
        na, nb = np.linalg.norm(a.T @ a), np.linalg.norm(b.T @ b)
    den = na * nb
    return float(hsic / den) if den > 0 else float("nan")


def distance_test(
    suspect_per_sample: np.ndarray,
    reference_per_sample: list[np.ndarray],
    *,
    name: str,
    direction: int,
    what: str,
    family: str = "distance",
) -> TestResult:
    """Is the suspect closer to the victim than independent encoders are, image by image?

    ``suspect_per_sample[i]`` is a per-image value for the suspect (e.g. its ℓ2 distance to the
    victim on private image i, ``direction=-1``: smaller is more suspicious; or the share of its
    nearest neighbours shared with the victim, ``direction=+1``); ``reference_per_sample`` holds the
    same value for each independent reference encoder on the SAME images. The images are shared,
    so the test is paired: differences d_i = suspect_i − mean over references of reference_i.

    H0: E[d] = 0 (the suspect is as close as the references' mean); H1: E[d] < 0
    (``direction=-1``) or > 0 (``direction=+1``). One-sided one-sample t-test of d against 0
    (``scipy.stats.ttest_1samp``). score = mean of the suspect's per-sample values (placed among
    the references' scores by :func:`calibrate`); effect = direction × mean(d), positive when the
    suspect is on the suspicious side.

    Assumptions, honestly: the images are independent, and this per-sample test treats the
    references' mean as fixed. It does not see that two independently trained encoders differ
    from each other as whole models (a reference happening to sit far from the victim makes any
    suspect look close), so on its own it overstates the evidence. The between-model variation is
    handled separately by :func:`calibrate` on the scores, and the verdict requires both.
    Invalid without references, with fewer than 10 images, or non-finite values.
    ``family`` lets another test (nearest-neighbour overlap) report under its own family.
    """
    _check_direction(direction)
    s = _vector(suspect_per_sample, "suspect_per_sample")
    n = len(s)
    if not reference_per_sample:
        return invalid(name, family, "no independent references", n=n, direction=direction)
    refs = [_vector(r, "reference_per_sample") for r in reference_per_sample]
    if any(len(r) != n for r in refs):
        raise ValueError("every reference needs one value per image of the suspect")
    if n < MIN_SAMPLES:
        note = f"only {n} images (need {MIN_SAMPLES})"
        return invalid(name, family, note, n=n, direction=direction)
    ref_mean = np.mean(refs, axis=0)
    if not (np.isfinite(s).all() and np.isfinite(ref_mean).all()):
        return invalid(name, family, "non-finite values", n=n, direction=direction)
    diff = s - ref_mean
    if diff.var() == 0:
        note = "paired differences do not vary: the t-test is undefined"
        return invalid(name, family, note, n=n, direction=direction)
    res = stats.ttest_1samp(diff, 0.0, alternative=_alternative(direction))
    side = "smaller" if direction == -1 else "larger"
    return TestResult(
        name=name,
        family=family,
        statistic=float(res.statistic),
        p_value=float(res.pvalue),
        effect=float(direction * diff.mean()),
        effect_name=f"mean paired difference to the references' mean, towards stealing ({what})",
        n=n,
        alternative=f"suspect's {what} {side} than the references' mean",
        compared=f"suspect vs mean of {len(refs)} independent references, {n} paired images",
        score=float(s.mean()),
        direction=direction,
        note="paired one-sided t-test; between-model variation is left to the calibration",
        samples={"suspect": s, "reference_mean": ref_mean, "difference": diff},
    )


# --- noise sensitivity (000 App. F, Table 19) --------------------------------------------------


def noise_spreads(clean: np.ndarray, noisy: np.ndarray, *, relative: bool = True) -> np.ndarray:
    """Per point i, the standard deviation over noise draws j of ‖f(x_i + δ_j) − f(x_i)‖₂.

    ``clean`` is (N, D), ``noisy`` (N, J, D) with J ≥ 2 draws per point (sample std, ddof=1).

    Two different networks' spreads live on different scales: a network with representations ten
    times longer has spreads ten times larger, so the paper's raw comparison can fail (or
    succeed) for reasons unrelated to stealing. ``relative=True`` (the default) divides by the
    root-mean-square distance of this model's clean representations from their mean, which makes
    the spreads free of scale and shift (a thief's free output transformations);
    ``relative=False`` is the paper's raw quantity.
    """
    c = np.asarray(clean, dtype=np.float64)
    z = np.asarray(noisy, dtype=np.float64)
    if c.ndim != 2 or z.ndim != 3 or z.shape[0] != c.shape[0] or z.shape[2] != c.shape[1]:
        raise ValueError(f"need clean (N, D) and noisy (N, J, D), got {c.shape} and {z.shape}")
    if z.shape[1] < 2:
        raise ValueError("need at least two noise draws per point")
    spread = np.linalg.norm(z - c[:, None, :], axis=2).std(axis=1, ddof=1)
    if relative:
        scale = float(np.sqrt(((c - c.mean(axis=0)) ** 2).sum(axis=1).mean()))
        if not scale > 0:
            raise ValueError("clean representations do not vary: relative spreads are undefined")
        spread = spread / scale
    return spread


def noise_sensitivity(victim_spread: np.ndarray, suspect_spread: np.ndarray) -> TestResult:
    """Does the suspect react less to small input noise than the victim (000 App. F)?

    Inputs are per-point spreads σ_i (see :func:`noise_spreads`) of the victim and the suspect on
    the same private points. H0: E[σ_suspect] ≥ E[σ_victim]; H1: E[σ_suspect] < E[σ_victim]
    (a copy trained on the victim's outputs is smoother around the victim's training points).
    The paper uses "a t-test"; since both models see the same points, this is the paired
    one-sided t-test (``scipy.stats.ttest_rel``). effect = mean(σ_v) − mean(σ_s);
    score = mean(σ_s) / mean(σ_v), direction −1.

    Assumptions: points are independent; an independently trained encoder's mean spread equals the
    victim's. That second assumption is weak (architectures, training and representation scale
    all change the spread), so this test only counts after calibration against independent
    references. Use scale-free spreads (``noise_spreads(relative=True)``) for both models.
    Invalid with fewer than 10 points, different lengths, or non-finite values.
    """
    name, family = "noise-sensitivity", "noise"
    v, s = _vector(victim_spread, "victim_spread"), _vector(suspect_spread, "suspect_spread")
    n = len(s)
    if len(v) != n:
        note = f"victim and suspect spreads on different points ({len(v)} vs {n})"
        return invalid(name, family, note, n=n, direction=-1)
    if n < MIN_SAMPLES:
        return invalid(name, family, f"only {n} points (need {MIN_SAMPLES})", n=n, direction=-1)
    if not (np.isfinite(v).all() and np.isfinite(s).all()):
        return invalid(name, family, "non-finite spreads", n=n, direction=-1)
    if (s - v).var() == 0 or v.mean() <= 0:
        note = "spreads do not vary (or the victim has none): the test is undefined"
        return invalid(name, family, note, n=n, direction=-1)
    res = stats.ttest_rel(s, v, alternative="less")
    return TestResult(
        name=name,
        family=family,
        statistic=float(res.statistic),
        p_value=float(res.pvalue),
        effect=float(v.mean() - s.mean()),
        effect_name="mean spread, victim - suspect",
        n=n,
        alternative="E[σ_suspect] < E[σ_victim]",
        compared=f"std of representation change under input noise, {n} paired private points",
        score=float(s.mean() / v.mean()),
        direction=-1,
        note="paired one-sided t-test (same points for both models)",
        samples={"victim_spread": v, "suspect_spread": s},
    )


# --- calibration against independent references and power --------------------------------------


def calibrate(
    score: float, reference_scores: Sequence[float], direction: int, *, spread_floor: float = 0.0
) -> tuple[float, float]:
    """Where does the suspect's score fall among independent reference encoders' scores?

    H0: the suspect is one more independently trained encoder, exchangeable with the references.
    H1: it is more suspicious than such an encoder (larger score if ``direction`` is +1, smaller if
    −1). Returns ``(p_empirical, p_prediction)``:

    - empirical: (1 + #references at least as suspicious) / (1 + k). Valid under exchangeability
      alone (ties count against the suspect), but with k references it can never fall below
      1/(k + 1): with 3 references, never below 0.25.
    - prediction interval (parametric): with references' mean m and sd s (ddof=1), under H0
      (score − m) / (s·sqrt(1 + 1/k)) follows Student's t with k − 1 degrees of freedom, provided
      the references' scores are normal. That normality is the assumption a reader must accept in
      exchange for p-values below 1/(k + 1). One-sided in the suspicious direction. Needs k ≥ 3
      (else NaN).

    ``spread_floor`` is the finest the score can be measured (the caller's sampling sd of it;
    for a proportion of n trials, sqrt(0.25 / n)): s is taken as at least that much, since
    references that vary less say nothing about how far the next one may sit. Measured: when a
    victim's predictor read all but one of 32 independent encoders at exactly 0.5, a copy at
    0.502 got p = 8e-13 without it. It only ever raises p, and it applies alike when the
    references do not vary at all (a predictor that reads every encoder blind to its rotations
    at exactly 0.5), so that p is continuous as the last reference moves onto the others.
    Without a floor, references that do not vary carry no information about between-model
    variation; rather than divide by zero, the prediction p is then the empirical p.
    Non-finite reference scores are dropped; a non-finite score gives (NaN, NaN).
    """
    _check_direction(direction)
    if not math.isfinite(score):
        return float("nan"), float("nan")
    refs = np.asarray([r for r in reference_scores if math.isfinite(r)], dtype=np.float64)
    k = len(refs)
    p_emp = (1 + int(np.sum(direction * refs >= direction * score))) / (1 + k)
    if k < 3:
        return p_emp, float("nan")
    sd = max(float(refs.std(ddof=1)), spread_floor)
    if sd == 0:
        return p_emp, p_emp
    t = direction * (score - float(refs.mean())) / (sd * math.sqrt(1 + 1 / k))
    return p_emp, float(stats.t.sf(t, k - 1))


def typicality(score: float, reference_scores: Sequence[float]) -> float:
    """Is the suspect's score where an independent encoder's would be? A two-sided
    prediction-interval p-value: evidence *for* independence needs the suspect among the
    references, not merely "not more suspicious" (a copy may be atypical in the other direction:
    measured, a symmetrized copy sat 88 reference sds *less* aligned with the victim than any
    independent encoder, and was cleared by the one-sided rule).

    H0: the suspect is one more independent encoder (scores normal, as in :func:`calibrate`);
    small p: it is unlike the references, in either direction. With k references, the statistic
    (score − m) / (s·sqrt(1 + 1/k)) is Student's t on k − 1 degrees of freedom under H0, where s
    is the smaller of the standard deviation and Rousseeuw and Croux's Qn scale (statsmodels):
    a few references unlike the rest (another architecture, an epoch of training) widen the
    standard deviation and would let a copy pass as typical (measured: a rotated StolenEncoder
    copy 6 sds from fourteen references of the victim's recipe sat 2.6 sds from all sixteen once
    two resnet18 references joined), while on normal references the two agree (the rate of
    p ≤ 0.05 stays within 0.05-0.057 for 6 to 20 references, tests/test_verify_stats.py); the
    smaller scale can only withhold a clearance, never accuse.
    NaN with fewer than 3 finite references or a non-finite score; when the references do not
    vary, 1 if the score equals theirs and 0 otherwise.
    """
    refs = np.asarray([r for r in reference_scores if math.isfinite(r)], dtype=np.float64)
    k = len(refs)
    if not math.isfinite(score) or k < 3:
        return float("nan")
    sd = float(refs.std(ddof=1))
    robust = float(qn_scale(refs))
    scale = min(sd, robust) if robust > 0 else sd
    if scale == 0:
        return 1.0 if score == float(refs[0]) else 0.0
    t = abs(score - float(refs.mean())) / (scale * math.sqrt(1 + 1 / k))
    return float(min(1.0, 2 * stats.t.sf(t, k - 1)))


def holm(p_values: Sequence[float], alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down correction: which of ``p_values`` reject at family-wise level ``alpha``
    and their adjusted p-values (the running maximum of (m − i)·p₍ᵢ₎ in ascending order, at most
    1); a test rejects exactly when its adjusted p is at most ``alpha``. The same numbers as
    statsmodels' ``multipletests(method="holm")`` (tests/test_verify_stats.py), which calls
    ``gc.collect()`` on every use: a quarter of a second in a process holding a zoo of models,
    measured at half the time of a small bench.
    """
    p = _vector(np.asarray(p_values, dtype=np.float64), "p_values")
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(p[order] * np.arange(len(p), 0, -1))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted <= alpha, adjusted


def detectable_shift(k: int, level: float) -> float:
    """How far (in the references' standard deviations) a suspect's score must sit from their
    mean for the one-sided prediction-interval p of :func:`calibrate` to fall below ``level``
    with ``k`` references: t⁻¹(1 − level; k − 1) · sqrt(1 + 1/k). The smaller, the more power;
    with 3 references and level 0.001 it is 26 sds, with 20 it is 3.7. Infinite for k < 3.
    """
    if k < 3:
        return math.inf
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return float(stats.t.isf(level, k - 1) * math.sqrt(1 + 1 / k))


MOST_REFERENCES = 10_000  # the largest zoo :func:`references_needed` considers


def references_needed(
    score: float,
    reference_scores: Sequence[float],
    direction: int,
    level: float,
    *,
    spread_floor: float = 0.0,
) -> int | None:
    """The fewest references, spread as these are (their mean and sd, floored as in
    :func:`calibrate`), at which this score's prediction-interval p would fall to ``level``:
    what a larger zoo could do for it, and what none could. It is a projection, not evidence:
    it assumes the next references sit as these do. The p falls as references are added only
    because Student's t on k − 1 degrees of freedom narrows towards the normal, so a score
    whose normal tail p is above ``level`` gets None, as does one with fewer than 3 finite
    references or no spread; otherwise an integer in [3, ``MOST_REFERENCES``]."""
    _check_direction(direction)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    refs = np.asarray([r for r in reference_scores if math.isfinite(r)], dtype=np.float64)
    if len(refs) < 3 or not math.isfinite(score):
        return None
    sd = max(float(refs.std(ddof=1)), spread_floor)
    if sd == 0:
        return None
    z = direction * (score - float(refs.mean())) / sd

    def p(k: int) -> float:
        return float(stats.t.sf(z / math.sqrt(1 + 1 / k), k - 1))

    if p(MOST_REFERENCES) > level:
        return None
    lo, hi = 3, MOST_REFERENCES  # p falls with k (for z > 0, the only case left): bisect
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if p(mid) <= level else (mid + 1, hi)
    return lo


def power_and_n(
    effect_size_d: float,
    n: int,
    alpha: float,
    kind: Literal["one-sample", "two-sample"],
) -> tuple[float, int | None]:
    """Achieved power of a one-sided t-test at standardised effect d, and the n for power 0.8.

    ``statsmodels.stats.power``: ``TTestPower`` for one-sample and paired tests (n = pairs),
    ``TTestIndPower`` with equal groups for two-sample tests (n = per group), both
    ``alternative="larger"``. This is post-hoc power at the observed effect, useful to say "this
    test could not have seen it with this many samples", not as evidence in itself. The n is None
    when the effect is ≤ 0, not finite, or no n reaches 0.8.
    """
    if kind not in ("one-sample", "two-sample"):
        raise ValueError(f"kind must be 'one-sample' or 'two-sample', got {kind!r}")
    d = float(effect_size_d)
    if math.isnan(d) or n < 2:
        return float("nan"), None
    if math.isinf(d):
        return (1.0 if d > 0 else 0.0), None
    # TTestPower takes nobs, TTestIndPower nobs1 (per group): both second positional arguments.
    model = TTestPower() if kind == "one-sample" else TTestIndPower()
    normal = NormalIndPower()  # fallback where the noncentral t fails numerically (huge d)
    ratio = 0.0 if kind == "one-sample" else 1.0  # ratio 0: statsmodels' one-sample normal case

    def power_at(m: float) -> float:
        p = float(model.power(d, m, alpha, alternative="larger"))
        return p if math.isfinite(p) else float(normal.power(d, m, alpha, ratio, "larger"))

    power = power_at(n)
    if d <= 0:
        return power, None
    if power_at(2) >= 0.8:
        return power, 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            needed = float(np.squeeze(model.solve_power(d, None, alpha, 0.8, alternative="larger")))
    except (ValueError, RuntimeError, ArithmeticError):
        return power, None
    if not math.isfinite(needed) or needed <= 0:
        return power, None
    return power, max(2, math.ceil(needed))
