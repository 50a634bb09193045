"""sleuth.verify.stats: known answers, p-values calibrated under the null, and refusals.

Null simulations use seeded generators and small samples; a test's rejection rate at α = 0.05 must
stay below α + 3·sqrt(α(1 − α)/draws) (and, where the test is exact, not far below its exact size).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from sleuth.verify import stats

ALPHA = 0.05


def upper_bound(draws: int) -> float:
    return ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / draws)


def rate(p_values) -> float:
    return float(np.mean(np.asarray(p_values) <= ALPHA))


def orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


# --- null simulations (also imported to report the measured rates) -----------------------------


def null_watermark(chance: float, draws: int = 500, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    res = [stats.watermark_tests(rng.random(n) < chance, chance) for _ in range(draws)]
    return np.array([r[0].p_value for r in res]), np.array([r[1].p_value for r in res])


def null_di_loss(draws: int = 500) -> np.ndarray:
    rng = np.random.default_rng(12)
    # Same skewed loss distribution for private and public, unequal group sizes.
    return np.array(
        [
            stats.dataset_inference_loss(rng.gamma(2.0, 1.0, 30), rng.gamma(2.0, 1.0, 45)).p_value
            for _ in range(draws)
        ]
    )


def null_di_gmm(draws: int = 300) -> np.ndarray:
    rng = np.random.default_rng(13)
    centres = np.array([[0.0, 0.0, 0.0], [3.0, 1.0, -2.0]])

    def rows(m: int) -> np.ndarray:
        return centres[rng.integers(0, 2, m)] + rng.normal(size=(m, 3))

    return np.array(
        [
            stats.dataset_inference_gmm(rows(80), rows(60), n_components=2, seed=i).p_value
            for i in range(draws)
        ]
    )


def null_distance(direction: int, draws: int = 500, n: int = 30) -> np.ndarray:
    rng = np.random.default_rng(14 + direction)
    out = []
    for _ in range(draws):
        image = rng.gamma(3.0, 1.0, n)  # per-image difficulty, shared by every model
        suspect = image + rng.normal(0, 0.5, n)
        refs = [image + rng.normal(0, 0.5, n) for _ in range(4)]
        out.append(
            stats.distance_test(suspect, refs, name="d", direction=direction, what="x").p_value
        )
    return np.array(out)


def null_noise(draws: int = 500, n: int = 30) -> np.ndarray:
    rng = np.random.default_rng(15)
    out = []
    for _ in range(draws):
        point = rng.normal(-3, 0.5, n)  # per-point sensitivity shared by both models
        victim = np.exp(point + rng.normal(0, 0.3, n))
        suspect = np.exp(point + rng.normal(0, 0.3, n))
        out.append(stats.noise_sensitivity(victim, suspect).p_value)
    return np.array(out)


def null_calibrate(direction: int, k: int = 5, draws: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(16 + direction)
    scores = rng.normal(0.7, 0.05, size=(draws, k + 1))
    res = np.array([stats.calibrate(s[0], s[1:], direction) for s in scores])
    return res[:, 0], res[:, 1]


# --- watermark -----------------------------------------------------------------------------------


def test_watermark_known_answers():
    rng = np.random.default_rng(0)
    correct = np.zeros(200, bool)
    correct[rng.choice(200, 180, replace=False)] = True  # 90% of 200
    binom, ttest = stats.watermark_tests(correct, 0.5)
    assert (binom.name, ttest.name) == ("watermark-binomial", "watermark-ttest")
    assert binom.family == ttest.family == "watermark"
    assert binom.p_value < 1e-10 and ttest.p_value < 1e-10
    assert binom.score == pytest.approx(0.9) and binom.effect == pytest.approx(0.4)
    assert binom.direction == 1 and binom.valid and binom.n == 200
    assert binom.samples["correct"].sum() == 180

    half = np.arange(200) % 2 == 0  # exactly chance
    assert all(r.p_value > 0.4 for r in stats.watermark_tests(half, 0.5))


def test_watermark_binomial_by_hand_and_ttest_formula():
    correct = np.array([1] * 8 + [0] * 2, bool)
    binom, ttest = stats.watermark_tests(correct, 0.5)
    # P(X >= 8 | n=10, p=1/2) = (C(10,8) + C(10,9) + C(10,10)) / 2^10 = 56/1024
    assert binom.p_value == pytest.approx(56 / 1024)
    assert binom.statistic == 8
    # t = (0.8 - 0.5) / (s / sqrt(10)) with s the sample sd of eight ones and two zeros
    s = math.sqrt((8 * 0.2**2 + 2 * 0.8**2) / 9)
    assert ttest.statistic == pytest.approx(0.3 / (s / math.sqrt(10)))
    assert ttest.p_value == pytest.approx(st.t.sf(ttest.statistic, 9))
    # below chance is evidence of nothing
    assert stats.watermark_tests(~correct, 0.5)[0].p_value > 0.9


def test_watermark_invalid():
    few = stats.watermark_tests(np.ones(9, bool), 0.5)
    assert len(few) == 2 and not any(r.valid for r in few) and all(r.p_value == 1 for r in few)
    for chance in (0.0, 1.0, 1.5):
        assert not any(r.valid for r in stats.watermark_tests(np.ones(50, bool), chance))
    binom, ttest = stats.watermark_tests(np.ones(50, bool), 0.25)  # all correct
    assert binom.valid and binom.p_value == pytest.approx(0.25**50)
    assert not ttest.valid and "zero variance" in ttest.note
    with pytest.raises(ValueError):
        stats.watermark_tests(np.full(20, 2), 0.5)


@pytest.mark.parametrize("chance", [0.5, 0.25])
def test_watermark_null_calibrated(chance):
    p_binom, p_t = null_watermark(chance)
    draws, n = len(p_binom), 60
    assert rate(p_binom) <= upper_bound(draws)
    assert rate(p_t) <= upper_bound(draws)
    # the binomial test is exact: its rejection rate matches its exact (discrete) size
    ks = np.arange(n + 1)
    size = st.binom.pmf(ks, n, chance)[st.binom.sf(ks - 1, n, chance) <= ALPHA].sum()
    assert 0.02 < size <= ALPHA  # discreteness: 0.030 at chance 0.25, 0.046 at 0.5
    assert rate(p_binom) >= size - 3 * math.sqrt(size * (1 - size) / draws)


# --- dataset inference ---------------------------------------------------------------------------


def test_di_loss_direction_welch_and_effect():
    rng = np.random.default_rng(1)
    private, public = rng.normal(1.0, 0.5, 40), rng.normal(1.5, 1.0, 60)
    r = stats.dataset_inference_loss(private, public)
    assert r.name == "di-head-loss" and r.family == "dataset-inference" and r.valid
    assert r.p_value < 0.01 and r.direction == 1
    assert r.effect == pytest.approx(public.mean() - private.mean()) and r.score == r.effect
    welch = r.effect / math.sqrt(private.var(ddof=1) / 40 + public.var(ddof=1) / 60)
    assert r.statistic == pytest.approx(welch)  # unequal variances, not the pooled t
    assert r.n == 48  # per-group size with the same standard error: 2 / (1/40 + 1/60)
    assert "Cohen's d" in r.note
    reverse = stats.dataset_inference_loss(public, private)  # wrong way round: no evidence
    assert reverse.p_value == pytest.approx(1 - r.p_value) and reverse.effect < 0


def test_di_loss_invalid():
    assert not stats.dataset_inference_loss(np.ones(9), np.ones(30)).valid
    assert not stats.dataset_inference_loss(np.ones(30), np.ones(30)).valid
    assert not stats.dataset_inference_loss(np.r_[np.nan, np.ones(29)], np.ones(30)).valid


def test_di_loss_null_calibrated():
    p = null_di_loss()
    assert rate(p) <= upper_bound(len(p))
    assert rate(p) > 0.01  # not absurdly conservative


def test_di_gmm_known_answers():
    rng = np.random.default_rng(2)
    private = rng.normal(size=(200, 8))
    r = stats.dataset_inference_gmm(private, rng.normal(size=(150, 8)) + 1.0, seed=3)
    assert r.name == "di-gmm" and r.valid and r.p_value < 1e-6 and r.effect > 0
    assert r.n == 100 and len(r.samples["private_loglik"]) == len(r.samples["public_loglik"])
    same = stats.dataset_inference_gmm(private, rng.normal(size=(150, 8)), seed=3)
    assert same.valid and same.p_value > 0.05


def test_di_gmm_is_deterministic_and_reduces_components():
    rng = np.random.default_rng(4)
    private, public = rng.normal(size=(60, 4)), rng.normal(size=(40, 4))
    a = stats.dataset_inference_gmm(private, public, seed=5)
    b = stats.dataset_inference_gmm(private, public, seed=5)
    assert a.p_value == b.p_value and a.statistic == b.statistic
    assert "3-component" in a.note  # 30 fitting rows: at most one component per 10 rows


def test_di_gmm_invalid():
    rng = np.random.default_rng(5)
    assert not stats.dataset_inference_gmm(rng.normal(size=(39, 3)), rng.normal(size=(50, 3))).valid
    assert not stats.dataset_inference_gmm(rng.normal(size=(80, 3)), rng.normal(size=(19, 3))).valid
    with pytest.raises(ValueError):
        stats.dataset_inference_gmm(rng.normal(size=(80, 3)), rng.normal(size=(80, 4)))


def test_di_gmm_null_calibrated():
    p = null_di_gmm()
    assert rate(p) <= upper_bound(len(p))


# --- distances, alignment, similarity ----------------------------------------------------------


def test_pairwise_distances_by_hand_and_mismatch():
    victim = np.array([[3.0, 4.0], [1.0, 0.0]])
    suspect = np.array([[0.0, 0.0], [0.0, 2.0]])
    d = stats.pairwise_distances(victim, suspect)
    np.testing.assert_allclose(d["l2"], [5.0, math.sqrt(5)])
    np.testing.assert_allclose(d["cosine"], [1.0, 1.0])  # zero row; orthogonal rows
    d2 = stats.pairwise_distances(victim, 2 * victim)
    np.testing.assert_allclose(d2["cosine"], [0.0, 0.0], atol=1e-12)
    with pytest.raises(ValueError):
        stats.pairwise_distances(np.ones((5, 3)), np.ones((5, 4)))
    with pytest.raises(ValueError):
        stats.pairwise_distances(np.ones((5, 3)), np.ones((6, 3)))


def _aligned_cosine(src, dst, fit=150):
    """Mean cosine of the held-out rows after an alignment fitted on the first ``fit`` rows."""
    mapped = stats.fit_alignment(src[:fit], dst[:fit])(src[fit:])
    a, b = mapped - dst[:fit].mean(0), dst[fit:] - dst[:fit].mean(0)
    return float(np.mean(np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))


def test_alignment_undoes_rotation_scale_translation_permutation():
    rng = np.random.default_rng(6)
    victim = rng.normal(size=(300, 16))
    rotated = 3 * victim @ orthogonal(16, rng) + 5.0
    fitted = stats.fit_alignment(rotated[:150], victim[:150])
    np.testing.assert_allclose(fitted(rotated[150:]), victim[150:], atol=1e-8)  # exact inverse
    noisy = rotated + 0.01 * rng.normal(size=rotated.shape)
    assert _aligned_cosine(noisy, victim) > 0.999
    permuted = -2 * victim[:, rng.permutation(16)] - 1
    assert _aligned_cosine(permuted, victim) > 0.999
    assert abs(_aligned_cosine(rng.normal(size=(300, 16)), victim)) < 0.15


def test_alignment_is_not_a_general_linear_map():
    rng = np.random.default_rng(7)
    victim = rng.normal(size=(400, 8))
    stretch = np.diag([10.0, 5, 2, 1, 1, 0.5, 0.2, 0.1])  # invertible, far from orthogonal
    suspect = victim @ stretch @ orthogonal(8, rng)
    assert _aligned_cosine(suspect, victim, fit=200) < 0.9  # a linear fit would give 1.0


def test_alignment_rectangular():
    rng = np.random.default_rng(8)
    narrow = rng.normal(size=(300, 8))
    wide = np.hstack([narrow, np.zeros((300, 8))]) @ orthogonal(16, rng) * 2 + 1
    assert _aligned_cosine(narrow, wide) > 0.999  # an isometric embedding
    full = rng.normal(size=(300, 16))
    # half of the information: the wider model's extra dims count as disagreement
    assert 0.55 < _aligned_cosine(full[:, :8], full) < 0.8
    with pytest.raises(ValueError, match="wider"):
        stats.fit_alignment(wide, narrow)
    with pytest.raises(ValueError):
        stats.fit_alignment(full[:10], full[:11])


def test_coordinate_matching_undoes_a_permutation_flips_and_per_coordinate_scales():
    """Exact on a permutation with sign flips, shifts and scales of each coordinate (fitted on
    half, applied to the other half); a rotation it cannot undo: matched, a rotated copy is as
    far from its source as an unrelated encoder is, which is what makes the basis test see it."""
    rng = np.random.default_rng(33)
    src = rng.normal(size=(400, 12)) * rng.uniform(0.5, 3, 12)
    perm, signs = rng.permutation(12), rng.choice([-1.0, 1.0], 12)
    dst = src[:, perm] * signs * rng.uniform(0.2, 5, 12) + rng.normal(0, 5, 12)
    fitted = stats.fit_coordinate_matching(src[:200], dst[:200])
    np.testing.assert_allclose(fitted(src[200:]), dst[200:], atol=1e-6 * np.abs(dst).max())
    np.testing.assert_array_equal(perm[fitted.dst], fitted.src)  # dst column j holds src perm[j]
    wide = rng.normal(size=(400, 64))

    def far(x):
        return np.mean((stats.cross_fitted(x, wide, stats.fit_coordinate_matching) - wide) ** 2)

    assert far(wide[:, rng.permutation(64)] * -3) < 1e-12
    assert far(wide @ orthogonal(64, rng)) > 0.7 * far(rng.normal(size=wide.shape))
    with pytest.raises(ValueError):
        stats.fit_coordinate_matching(src[:10], dst[:11])


def test_coordinate_skewness_by_hand_and_under_rotation():
    """|skewness| per coordinate as scipy computes it, NaN where a coordinate is constant; ReLU
    units (a half-normal has skewness 0.995) are lopsided and a random rotation of 64 of them
    is nearly symmetric: the trace of a thief's rotation."""
    rng = np.random.default_rng(34)
    x = np.abs(rng.normal(size=(2000, 64)))
    skew = stats.coordinate_skewness(x)
    np.testing.assert_allclose(skew, np.abs(st.skew(x, axis=0)))
    assert skew.mean() == pytest.approx(0.995, abs=0.1)
    assert stats.coordinate_skewness(x @ orthogonal(64, rng)).mean() < 0.25
    constant = np.hstack([x[:, :3], np.ones((2000, 1))])
    assert np.isnan(stats.coordinate_skewness(constant)[3])
    assert np.isfinite(stats.coordinate_skewness(constant)[:3]).all()


def test_linear_map_by_hand_and_invariant_to_free_transformations():
    """Exact on a noiseless affine relation (up to the small ridge shrinkage); its predictions
    do not move when the source is rotated, rescaled or shifted; a stretch it undoes, which the
    similarity transform cannot."""
    rng = np.random.default_rng(31)
    src = rng.normal(size=(400, 8))
    a, b = rng.normal(size=(8, 5)), rng.normal(size=5)
    dst = src @ a + b
    fitted = stats.fit_linear_map(src, dst, ridge=1e-9)
    np.testing.assert_allclose(fitted(src), dst, atol=1e-6)
    np.testing.assert_allclose(fitted.weights, a, atol=1e-6)
    shrunk = stats.fit_linear_map(src, dst)  # penalty 0.1 x mean variance ~ 40 against ~400
    assert 0.8 < np.abs(shrunk.weights).sum() / np.abs(a).sum() < 1.0
    moved = 7.0 * src @ orthogonal(8, rng) - 3.0
    np.testing.assert_allclose(stats.fit_linear_map(moved, dst)(moved), shrunk(src), atol=1e-9)
    # a stretch (Barlow Twins' whitening is one): undone up to the shrinkage of the directions
    # whose variance is small against the penalty
    stretched = src @ np.diag([3.0, 2, 1.5, 1, 1, 0.8, 0.6, 0.5]) @ orthogonal(8, rng)
    held = stats.cross_fitted(stretched, src, stats.fit_linear_map)
    assert np.mean(np.sum((held - src) ** 2, 1)) < 0.1 * np.mean(np.sum(src**2, 1))
    rotated = stats.cross_fitted(stretched, src, stats.fit_alignment)
    assert np.mean(np.sum((rotated - src) ** 2, 1)) > 0.2 * np.mean(np.sum(src**2, 1))
    with pytest.raises(ValueError):
        stats.fit_linear_map(src, dst, ridge=0)
    with pytest.raises(ValueError):
        stats.fit_linear_map(src[:1], dst[:1])


def test_cross_fitting_never_scores_a_row_with_a_map_that_saw_it():
    """Pure noise maps onto pure noise perfectly in-sample with enough freedom; cross-fitted it
    predicts nothing. Row i is scored by the map of the other folds (checked by hand)."""
    rng = np.random.default_rng(32)
    src, dst = rng.normal(size=(40, 30)), rng.normal(size=(40, 3))
    fit = lambda a, b: stats.fit_linear_map(a, b, ridge=1e-9)  # noqa: E731
    in_sample = fit(src, dst)(src)
    held = stats.cross_fitted(src, dst, fit)
    assert np.mean((in_sample - dst) ** 2) < 0.5 * np.mean((held - dst) ** 2)
    odd = np.arange(40) % 2 == 1
    np.testing.assert_allclose(held[odd], fit(src[~odd], dst[~odd])(src[odd]))
    with pytest.raises(ValueError):
        stats.cross_fitted(src[:3], dst[:3], fit)


def test_knn_overlap_invariances_and_chance():
    """1 for any free transformation of the outputs; about k / (n - 1) for unrelated ones."""
    rng = np.random.default_rng(21)
    x = rng.normal(size=(200, 16))
    moved = 4 * x[:, rng.permutation(16)] @ orthogonal(16, rng) - 3
    np.testing.assert_allclose(stats.knn_overlap(x, moved, k=10), 1.0)
    unrelated = stats.knn_overlap(x, rng.normal(size=(200, 16)), k=10)
    assert unrelated.mean() == pytest.approx(10 / 199, abs=0.02)
    noisy = stats.knn_overlap(x, x + 0.1 * x.std() * rng.normal(size=x.shape), k=10)
    assert noisy.mean() > 0.6  # robust to output noise of 10 % of the spread
    assert stats.knn_overlap(x, x[:, :4], k=5).shape == (200,)  # other dims
    with pytest.raises(ValueError):
        stats.knn_overlap(x, x[:50])
    with pytest.raises(ValueError):
        stats.knn_overlap(x[:5], x[:5], k=5)


def test_typicality_two_sided_and_detectable_shift():
    refs = [0.9, 1.1, 1.0, 0.95, 1.05]
    assert stats.typicality(1.0, refs) == pytest.approx(1.0, abs=0.01)
    # symmetric: far below is as atypical as far above
    assert stats.typicality(0.2, refs) == pytest.approx(stats.typicality(1.8, refs))
    m, s, k = np.mean(refs), np.std(refs, ddof=1), len(refs)
    t = (1.3 - m) / (s * math.sqrt(1 + 1 / k))  # here the sd is smaller than Qn: it is the scale
    assert stats.typicality(1.3, refs) == pytest.approx(2 * st.t.sf(t, k - 1))
    assert math.isnan(stats.typicality(1.0, refs[:2]))
    assert stats.typicality(1.0, [1.0, 1.0, 1.0]) == 1.0
    assert stats.typicality(1.1, [1.0, 1.0, 1.0]) == 0.0
    # a score exactly detectable_shift sds from the mean has one-sided p = level
    shift = stats.detectable_shift(k, 0.001)
    score = m + shift * s
    assert stats.calibrate(score, refs, 1)[1] == pytest.approx(0.001)
    assert stats.detectable_shift(20, 0.001) < 4 < 20 < stats.detectable_shift(3, 0.001)
    assert math.isinf(stats.detectable_shift(2, 0.001))


def test_references_needed_is_the_fewest_that_reach_the_level():
    """H0 of the calibration: the suspect's score is one more draw of the references'
    distribution. With the references' mean and sd held, the prediction p falls only as
    Student's t narrows towards the normal, so the projection is the smallest k whose p is at
    most the level (checked against scipy at k and k − 1), and None where the normal tail itself
    stays above it, where the score is on the unsuspicious side, or where there is no spread."""
    refs = np.array([0.9, 1.1, 1.0, 0.95, 1.05, 1.02, 0.98, 1.01])
    m, s = refs.mean(), refs.std(ddof=1)

    def p(z: float, k: int) -> float:
        return st.t.sf(z / math.sqrt(1 + 1 / k), k - 1)

    level = 0.01 / 9  # Holm's first step over nine counted tests
    for z in (3.3, 4.0, 6.0):
        k = stats.references_needed(m + z * s, refs, 1, level)
        assert k is not None and p(z, k) <= level < p(z, k - 1)
    assert stats.references_needed(m + 3.3 * s, refs, 1, level) > len(refs)  # more than these
    assert stats.references_needed(m - 4 * s, refs, -1, level) == stats.references_needed(
        m + 4 * s, refs, 1, level
    )
    assert st.norm.sf(2.9) > level and stats.references_needed(m + 2.9 * s, refs, 1, level) is None
    assert stats.references_needed(m - 6 * s, refs, 1, level) is None
    assert stats.references_needed(1.0, [1.0, 1.0, 1.0], 1, level) is None
    assert stats.references_needed(1.5, refs[:2], 1, level) is None
    # a floored spread: the score is as far as the floor allows, not as the references' sd says
    floored = stats.references_needed(m + 4 * s, refs, 1, level, spread_floor=2 * s)
    assert floored is None  # 2 floors away: the normal tail is 0.023


def test_holm_by_hand_and_equal_to_statsmodels(monkeypatch):
    """Holm's step-down: (m − i)·p₍ᵢ₎ made monotone and capped at 1; a test rejects exactly when
    its adjusted p is at most alpha; the same numbers as statsmodels' multipletests."""
    import gc

    from statsmodels.stats.multitest import multipletests

    # what stats.holm is written to avoid: multipletests collects garbage at every call (over a
    # minute for these 200 calls in a worker of this suite); the collection changes no number
    monkeypatch.setattr(gc, "collect", lambda *args: 0)

    reject, adjusted = stats.holm([0.04, 0.01, 0.03, 0.5], 0.05)
    # sorted 0.01, 0.03, 0.04, 0.5: times 4, 3, 2, 1 = 0.04, 0.09, 0.08, 0.5; made monotone
    assert adjusted.tolist() == pytest.approx([0.09, 0.04, 0.09, 0.5])
    assert reject.tolist() == [False, True, False, False]
    assert stats.holm([0.9, 0.6], 0.05)[1].tolist() == [1.0, 1.0]  # 2 * 0.6 capped at 1
    # a NaN p-value (no evidence computed) never rejects, and still counts as a test
    reject, adjusted = stats.holm([float("nan"), 0.001], 0.05)
    assert reject.tolist() == [False, True] and math.isnan(adjusted[0]) and adjusted[1] == 0.002
    rng = np.random.default_rng(5)
    for m in (1, 2, 9, 30):
        for _ in range(50):
            p = rng.random(m) ** rng.uniform(1, 6)  # many small p-values, and ties below
            p[rng.random(m) < 0.2] = p[0]
            ours = stats.holm(p, ALPHA)
            theirs = multipletests(p, ALPHA, method="holm")
            assert ours[0].tolist() == theirs[0].tolist()
            assert ours[1] == pytest.approx(theirs[1], rel=1e-12)


@pytest.mark.parametrize("k", [6, 14])
def test_typicality_null_rate(k):
    """H0: the suspect is one more normal draw like the references: the two-sided p is close to
    uniform (the smaller of the sd and Qn makes it slightly anti-conservative, which withholds a
    clearance and never accuses)."""
    rng = np.random.default_rng(22)
    draws = [rng.normal(size=k + 1) for _ in range(2000)]
    p = [stats.typicality(d[0], d[1:]) for d in draws]
    assert rate(p) <= upper_bound(len(p)) + 0.01
    assert rate(p) > 0.03


def test_a_few_unlike_references_do_not_make_a_copy_typical():
    """H1: the suspect sits 6 sds from fourteen like references; two references of another kind
    (8 sds away on the other side) inflate the standard deviation 3x. The robust scale keeps the
    suspect atypical where the sd alone would call it typical, by a factor of two at least."""
    rng = np.random.default_rng(5)
    like = rng.normal(size=14)
    like = (like - like.mean()) / like.std(ddof=1)
    refs = [*like, 8.0, 8.5]
    m, sd, k = np.mean(refs), np.std(refs, ddof=1), len(refs)
    by_sd = 2 * st.t.sf(abs(-6.0 - m) / (sd * math.sqrt(1 + 1 / k)), k - 1)
    assert by_sd > 0.05 / 9  # typical by the sd alone, at Holm's first step over nine tests
    assert stats.typicality(-6.0, refs) < 0.05 / 9 / 2
    assert stats.typicality(0.0, refs) > 0.5  # one of the fourteen stays typical


def test_linear_cka_invariances():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(100, 12)) @ rng.normal(size=(12, 12))
    assert stats.linear_cka(x, x) == pytest.approx(1.0)
    assert stats.linear_cka(x, 3 * x @ orthogonal(12, rng) + 2) == pytest.approx(1.0)
    y = rng.normal(size=(100, 5))
    assert stats.linear_cka(x, y) == pytest.approx(stats.linear_cka(0.1 * x, 7 * y))
    assert stats.linear_cka(x, y) == pytest.approx(stats.linear_cka(y, x))
    assert stats.linear_cka(x, y) < 0.3
    assert stats.linear_cka(x, x @ np.diag(np.arange(1.0, 13))) < 0.99  # not linear-invariant
    wide = rng.normal(size=(20, 50))  # fewer rows than dims: the Gram form
    assert stats.linear_cka(wide, wide @ orthogonal(50, rng)) == pytest.approx(1.0)
    assert math.isnan(stats.linear_cka(np.ones((10, 3)), y[:10]))
    with pytest.raises(ValueError):
        stats.linear_cka(x, y[:50])


def test_distance_test_known_answers():
    rng = np.random.default_rng(10)
    victim = rng.normal(size=(60, 16))
    refs = [stats.pairwise_distances(victim, rng.normal(size=(60, 16)))["l2"] for _ in range(4)]
    copy = stats.pairwise_distances(victim, victim + 0.05 * rng.normal(size=(60, 16)))["l2"]
    r = stats.distance_test(copy, refs, name="distance-l2", direction=-1, what="l2")
    assert r.valid and r.family == "distance" and r.direction == -1
    assert r.p_value < 1e-10 and r.effect > 0 and r.score == pytest.approx(copy.mean())
    np.testing.assert_allclose(r.samples["difference"], copy - np.mean(refs, axis=0))
    # the same values read as a similarity (larger = suspicious) give no evidence
    assert stats.distance_test(copy, refs, name="x", direction=1, what="x").p_value > 0.999
    independent = stats.pairwise_distances(victim, rng.normal(size=(60, 16)))["l2"]
    r_ind = stats.distance_test(independent, refs, name="distance-l2", direction=-1, what="l2")
    assert r_ind.valid and r_ind.p_value > 0.05
    fam = stats.distance_test(
        copy, refs, name="knn-overlap", direction=-1, what="x", family="similarity"
    )
    assert fam.family == "similarity"


def test_distance_test_invalid():
    none = stats.distance_test(np.ones(30), [], name="distance-l2", direction=-1, what="l2")
    assert not none.valid and none.p_value == 1 and "references" in none.note
    assert not stats.distance_test(np.ones(5), [np.zeros(5)], name="d", direction=-1, what="").valid
    with pytest.raises(ValueError):
        stats.distance_test(np.ones(30), [np.zeros(29)], name="d", direction=-1, what="")
    with pytest.raises(ValueError):
        stats.distance_test(np.ones(30), [np.zeros(30)], name="d", direction=0, what="")


@pytest.mark.parametrize("direction", [-1, 1])
def test_distance_test_null_calibrated(direction):
    p = null_distance(direction)
    assert rate(p) <= upper_bound(len(p))
    assert rate(p) > 0.01


def test_per_sample_test_alone_overstates_but_calibration_protects():
    """Independent models differ as whole models: the per-sample test does not see that (its
    documented assumption); the reference calibration does, and the verdict needs both."""
    rng = np.random.default_rng(17)
    draws, n, k = 300, 40, 5
    alone, both = [], []
    for _ in range(draws):
        image = rng.gamma(3.0, 1.0, n)
        models = [image + rng.normal(0, 0.5) + rng.normal(0, 0.3, n) for _ in range(k + 1)]
        r = stats.distance_test(models[0], models[1:], name="d", direction=-1, what="x")
        p_ref = stats.calibrate(r.score, [m.mean() for m in models[1:]], -1)[1]
        alone.append(r.p_value)
        both.append(max(r.p_value, p_ref))
    assert rate(alone) > 0.2
    assert rate(both) <= upper_bound(draws)


# --- noise sensitivity ---------------------------------------------------------------------------


def test_noise_spreads_by_hand_and_scale_free():
    clean = np.array([[3.0, 4.0], [-3.0, -4.0]])  # mean 0, both 5 from it
    steps = np.array([1.0, 2.0, 3.0])  # distances per draw; sample sd = 1
    noisy = clean[:, None, :] + steps[None, :, None] * np.array([1.0, 0.0])
    np.testing.assert_allclose(stats.noise_spreads(clean, noisy, relative=False), [1.0, 1.0])
    np.testing.assert_allclose(stats.noise_spreads(clean, noisy), [0.2, 0.2])
    np.testing.assert_allclose(stats.noise_spreads(7 * clean, 7 * noisy), [0.2, 0.2])
    np.testing.assert_allclose(stats.noise_spreads(clean + 9, noisy + 9), [0.2, 0.2])  # shift
    np.testing.assert_allclose(stats.noise_spreads(7 * clean, 7 * noisy, relative=False), [7, 7])
    with pytest.raises(ValueError):
        stats.noise_spreads(clean, noisy[:, :1])
    with pytest.raises(ValueError):
        stats.noise_spreads(clean, noisy[:1])


def test_noise_sensitivity_known_answers():
    rng = np.random.default_rng(18)
    victim = rng.uniform(0.05, 0.1, 40)
    suspect = 0.5 * victim + rng.normal(0, 0.002, 40)
    r = stats.noise_sensitivity(victim, suspect)
    assert r.name == "noise-sensitivity" and r.family == "noise" and r.direction == -1
    assert r.valid and r.p_value < 1e-10
    assert r.score == pytest.approx(suspect.mean() / victim.mean())
    assert r.effect == pytest.approx(victim.mean() - suspect.mean())
    paired = (suspect - victim).mean() / ((suspect - victim).std(ddof=1) / math.sqrt(40))
    assert r.statistic == pytest.approx(paired)  # paired, not two-sample
    assert stats.noise_sensitivity(suspect, victim).p_value > 0.999  # suspect reacts more


def test_noise_sensitivity_invalid():
    assert not stats.noise_sensitivity(np.ones(9), np.ones(9)).valid
    assert not stats.noise_sensitivity(np.ones(20), np.ones(19)).valid
    assert not stats.noise_sensitivity(np.ones(20), np.ones(20)).valid


def test_noise_sensitivity_null_calibrated():
    p = null_noise()
    assert rate(p) <= upper_bound(len(p))
    assert rate(p) > 0.01


# --- calibration against references and power ----------------------------------------------------


def test_calibrate_by_hand():
    refs = [1.0, 2.0, 3.0, 4.0]
    p_emp, p_pred = stats.calibrate(3.5, refs, 1)
    assert p_emp == pytest.approx(2 / 5)  # (1 + one reference >= 3.5) / (1 + 4)
    t = (3.5 - 2.5) / (np.std(refs, ddof=1) * math.sqrt(1 + 1 / 4))
    assert p_pred == pytest.approx(st.t.sf(t, 3))
    assert stats.calibrate(3.5, refs, -1)[0] == pytest.approx(4 / 5)
    assert stats.calibrate(3.0, refs, 1)[0] == pytest.approx(3 / 5)  # ties count against


def test_calibrate_inside_and_beyond():
    refs = [0.80, 0.84, 0.86, 0.88, 0.83]
    p_emp, p_pred = stats.calibrate(0.85, refs, 1)
    assert p_emp > 0.3 and p_pred > 0.3
    p_emp, p_pred = stats.calibrate(1.1, refs, 1)
    assert p_emp == pytest.approx(1 / 6) and p_pred < 1e-3  # empirical floor 1/(k+1)
    assert stats.calibrate(1.1, refs, -1)[1] > 0.999
    assert stats.calibrate(0.6, refs, -1)[1] < 1e-3


def test_calibrate_edge_cases():
    p_emp, p_pred = stats.calibrate(5.0, [1.0, 2.0], 1)
    assert p_emp == pytest.approx(1 / 3) and math.isnan(p_pred)
    # no variation among references: floored at the empirical p, not a division by ~0
    assert stats.calibrate(5.0, [1.0, 1.0, 1.0], 1) == pytest.approx((0.25, 0.25))
    assert all(math.isnan(p) for p in stats.calibrate(float("nan"), [1.0, 2.0, 3.0], 1))
    assert stats.calibrate(5.0, [1.0, float("nan"), 2.0, 3.0], 1)[0] == pytest.approx(0.25)
    with pytest.raises(ValueError):
        stats.calibrate(1.0, [1.0, 2.0, 3.0], 0)


def test_calibrate_spread_floor_only_raises_p():
    """References that vary less than a score can be measured (all but one encoder read at
    exactly chance) do not make a chance-level suspect overwhelming evidence: with 1,000 trials
    the sd is taken as at least sqrt(0.25 / 1000), by hand; a wide spread is left alone."""
    refs = [0.5] * 31 + [0.501]
    floor = math.sqrt(0.25 / 1000)
    assert stats.calibrate(0.502, refs, 1)[1] < 1e-10  # without the floor
    p = stats.calibrate(0.502, refs, 1, spread_floor=floor)[1]
    t = (0.502 - np.mean(refs)) / (floor * math.sqrt(1 + 1 / 32))
    assert p == pytest.approx(st.t.sf(t, 31)) and p > 0.4
    assert stats.calibrate(0.7, refs, 1, spread_floor=floor)[1] < 1e-12  # a copy still stands out
    wide = [0.45, 0.5, 0.55, 0.6]
    assert stats.calibrate(0.7, wide, 1, spread_floor=floor) == stats.calibrate(0.7, wide, 1)


def test_calibrate_spread_floor_when_references_do_not_vary():
    """H0: the suspect is one more independent encoder. When every reference reads exactly 0.5
    (a predictor that reads encoders blind to its rotations at chance), the floor is their sd,
    by hand, as when all but one do: p does not jump as the last reference moves onto the
    others, a copy at 0.7 of 1,000 trials stands out, a suspect at chance is no evidence, and
    without a floor the prediction p is still the empirical one."""
    floor = math.sqrt(0.25 / 1000)
    same = [0.5] * 20
    t = 0.2 / (floor * math.sqrt(1 + 1 / 20))
    assert stats.calibrate(0.7, same, 1, spread_floor=floor)[1] == pytest.approx(st.t.sf(t, 19))
    assert stats.calibrate(0.7, same, 1, spread_floor=floor)[1] < 1e-9
    assert stats.calibrate(0.5, same, 1, spread_floor=floor)[1] == pytest.approx(0.5)
    assert stats.calibrate(0.52, same, 1, spread_floor=floor)[1] > 0.05
    almost = [0.5] * 19 + [0.5 + 1e-9]
    assert stats.calibrate(0.55, almost, 1, spread_floor=floor)[1] == pytest.approx(
        stats.calibrate(0.55, same, 1, spread_floor=floor)[1], rel=1e-6
    )
    assert stats.calibrate(0.7, same, 1) == pytest.approx((1 / 21, 1 / 21))


@pytest.mark.parametrize("direction", [1, -1])
def test_calibrate_null_calibrated(direction):
    p_emp, p_pred = null_calibrate(direction)
    draws = len(p_pred)
    se = math.sqrt(ALPHA * (1 - ALPHA) / draws)
    assert ALPHA - 3 * se <= rate(p_pred) <= upper_bound(draws)  # exact under normality
    # with k = 19 the empirical p reaches 0.05 exactly when the suspect is the most suspicious
    p_emp19, _ = null_calibrate(direction, k=19, draws=1000)
    assert ALPHA - 3 * se <= rate(p_emp19) <= upper_bound(1000)


def test_power_and_n():
    power, n = stats.power_and_n(0.5, 30, 0.05, "one-sample")
    assert 0.8 < power < 0.9 and 25 <= n <= 28  # normal approx ((1.645 + 0.842)/0.5)^2 ≈ 25
    power2, n2 = stats.power_and_n(0.5, 30, 0.05, "two-sample")
    assert power2 < power and 49 <= n2 <= 52  # per group, about twice the one-sample n
    assert stats.power_and_n(0.0, 30, 0.05, "one-sample") == (pytest.approx(0.05), None)
    assert stats.power_and_n(-0.3, 30, 0.05, "two-sample")[1] is None
    assert stats.power_and_n(math.inf, 30, 0.05, "one-sample") == (1.0, None)
    assert stats.power_and_n(20.0, 30, 0.05, "two-sample") == (pytest.approx(1.0), 2)
    with pytest.raises(ValueError):
        stats.power_and_n(0.5, 30, 0.05, "paired")  # type: ignore[arg-type]
