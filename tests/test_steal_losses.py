"""Stealing losses against slow, loop-by-loop references of their definitions and hand-worked
numbers; gradients reach the stolen side only; hyper-parameters and the registry are checked."""

from __future__ import annotations

import math

import pytest
import torch

from sleuth.errors import SleuthError
from sleuth.steal.losses import (
    LOSSES,
    barlow,
    cosine,
    get_loss,
    infonce,
    l1,
    mse,
    softnn,
    supcon,
    symmetrized,
    wasserstein,
)

ALL = sorted(LOSSES)


def _rand(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)


def _labels(n: int, seed: int, classes: int = 3) -> torch.Tensor:
    return torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(seed))


def _call(name: str, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    labels = _labels(s.shape[0], 0) if LOSSES[name].needs_labels else None
    return LOSSES[name].fn(s, v, labels=labels)


# --- slow references: plain Python loops over rows and entries, in float64 -------------------


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


def ref_mse(s, v):
    s, v = s.double(), v.double()
    return (
        sum(float(s[i, j] - v[i, j]) ** 2 for i in range(len(s)) for j in range(s.shape[1]))
        / s.numel()
    )


def ref_l1(s, v):
    s, v = s.double(), v.double()
    return (
        sum(abs(float(s[i, j] - v[i, j])) for i in range(len(s)) for j in range(s.shape[1]))
        / s.numel()
    )


def ref_cosine(s, v):
    s, v = s.double(), v.double()
    return 1 - sum(_cos(s[i], v[i]) for i in range(len(s))) / len(s)


def ref_infonce(s, v, t):
    z = torch.cat([s, v]).double()
    m, n = len(z), len(s)
    total = 0.0
    for a in range(m):
        p = (a + n) % m
        den = sum(math.exp(_cos(z[a], z[k]) / t) for k in range(m) if k != a)
        total += -math.log(math.exp(_cos(z[a], z[p]) / t) / den)
    return total / m


def ref_softnn(s, v, t):
    z = torch.cat([s, v]).double()
    m, n = len(z), len(s)
    total = 0.0
    for a in range(m):
        num = den = 0.0
        for b in range(m):
            if b == a:
                continue
            e = math.exp(-float(((z[a] - z[b]) ** 2).sum()) / t)
            den += e
            if b % n == a % n:
                num += e
        total += -math.log(num / den)
    return total / m


def ref_wasserstein(s, v):
    s, v = s.double(), v.double()
    total = 0.0
    for i in range(len(s)):
        ms, mv = float(s[i].abs().sum()), float(v[i].abs().sum())
        cs = cv = dist = 0.0
        for j in range(s.shape[1]):
            cs += float(s[i, j]) / ms
            cv += float(v[i, j]) / mv
            dist += abs(cs - cv)
        total += dist
    return total / len(s)


def ref_barlow(s, v, lam, eps=1e-5):
    s, v = s.double(), v.double()
    n, d = s.shape

    def std(x, j):
        col = [float(x[i, j]) for i in range(n)]
        mu = sum(col) / n
        sd = math.sqrt(sum((c - mu) ** 2 for c in col) / n + eps)
        return [(c - mu) / sd for c in col]

    zs = [std(s, j) for j in range(d)]
    zv = [std(v, j) for j in range(d)]
    total = 0.0
    for a in range(d):
        for b in range(d):
            c = sum(zs[a][i] * zv[b][i] for i in range(n)) / n
            total += (1 - c) ** 2 if a == b else lam * c**2
    return total


def ref_supcon(s, v, labels, t):
    z = torch.cat([s, v]).double()
    lab = [int(x) for x in labels] * 2
    m = len(z)
    total = 0.0
    for a in range(m):
        den = sum(math.exp(_cos(z[a], z[k]) / t) for k in range(m) if k != a)
        pos = [p for p in range(m) if p != a and lab[p] == lab[a]]
        total += -sum(math.log(math.exp(_cos(z[a], z[p]) / t) / den) for p in pos) / len(pos)
    return total / m


def ref_symmetrized(s, v):
    s, v = s.double(), v.double()
    return -sum(_cos(s[i], v[i]) for i in range(len(s))) / len(s)


SIZES = [(2, 3), (5, 8), (8, 4)]


@pytest.mark.parametrize("n,d", SIZES)
@pytest.mark.parametrize(
    "fn,ref",
    [
        (mse, ref_mse),
        (l1, ref_l1),
        (cosine, ref_cosine),
        (wasserstein, ref_wasserstein),
        (symmetrized, ref_symmetrized),
    ],
)
def test_plain_losses_match_reference(fn, ref, n, d):
    s, v = _rand(n, d, n * 31 + d)
    assert fn(s, v).item() == pytest.approx(ref(s, v), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("n,d", SIZES)
def test_wasserstein_matches_reference_on_non_negative_features(n, d):
    s, v = _rand(n, d, 7 * n + d)
    s, v = s.abs(), v.relu() + 0.01  # the authors' setting: post-ReLU features
    assert wasserstein(s, v).item() == pytest.approx(ref_wasserstein(s, v), rel=1e-5)


@pytest.mark.parametrize("n,d", SIZES)
@pytest.mark.parametrize("t", [0.07, 0.5, 2.0])
def test_infonce_matches_reference(n, d, t):
    s, v = _rand(n, d, n + 13 * d)
    assert infonce(s, v, temperature=t).item() == pytest.approx(ref_infonce(s, v, t), rel=1e-4)


@pytest.mark.parametrize("n,d", SIZES)
@pytest.mark.parametrize("t", [0.5, 3.0, 100.0])
def test_softnn_matches_reference(n, d, t):
    s, v = _rand(n, d, 3 * n + d)
    assert softnn(s, v, temperature=t).item() == pytest.approx(ref_softnn(s, v, t), rel=1e-4)


@pytest.mark.parametrize("n,d", SIZES)
@pytest.mark.parametrize("t", [0.07, 0.5])
def test_supcon_matches_reference(n, d, t):
    s, v = _rand(n, d, 5 * n + d)
    labels = _labels(n, n + d)
    got = supcon(s, v, labels=labels, temperature=t).item()
    assert got == pytest.approx(ref_supcon(s, v, labels, t), rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("n,d", SIZES)
@pytest.mark.parametrize("lam", [0.0, 5e-3, 0.5])
def test_barlow_matches_reference(n, d, lam):
    s, v = _rand(n, d, 11 * n + d)
    got = barlow(s, v, lam=lam).item()
    assert got == pytest.approx(ref_barlow(s, v, lam), rel=1e-4, abs=1e-5)


# --- hand-worked numbers ---------------------------------------------------------------------


def test_quadratic_losses_by_hand():
    s = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    v = torch.tensor([[1.0, 0.0], [0.0, 4.0]])
    # differences 0, 2, 3, 0: MSE (0 + 4 + 9 + 0) / 4 = 3.25, L1 (0 + 2 + 3 + 0) / 4 = 1.25
    assert mse(s, v).item() == pytest.approx(3.25)
    assert l1(s, v).item() == pytest.approx(1.25)
    # cos([1,2],[1,0]) = 1/sqrt(5) = 0.4472; cos([3,4],[0,4]) = 16/20 = 0.8
    # cosine = 1 - (0.4472 + 0.8) / 2 = 0.37639; symmetrized = -(0.4472 + 0.8) / 2 = -0.62361
    assert cosine(s, v).item() == pytest.approx(0.376393, abs=1e-6)
    assert symmetrized(s, v).item() == pytest.approx(-0.623607, abs=1e-6)


def test_softnn_by_hand():
    # 1-d points: stolen a=0, b=2; victim c=1, d=2; classes {a, c} and {b, d}; T = 1.
    # squared distances: ab 4, ac 1, ad 4, bc 1, bd 0, cd 1.
    # a: -log(e^-1 / (e^-4 + e^-1 + e^-4)) = log(1 + 2e^-3)      = 0.09492
    # b: -log(1 / (e^-4 + e^-1 + 1))       = log(1 + e^-1 + e^-4) = 0.32656
    # c: -log(e^-1 / (3 e^-1))             = log 3                = 1.09861
    # d: same as b                                                 = 0.32656
    # mean = (0.09492 + 2 * 0.32656 + 1.09861) / 4 = 0.46167
    s, v = torch.tensor([[0.0], [2.0]]), torch.tensor([[1.0], [2.0]])
    assert softnn(s, v, temperature=1.0).item() == pytest.approx(0.46167, abs=1e-5)


def test_wasserstein_by_hand():
    # stolen: half the mass on features 0 and 1, victim: on 2 and 3; CDFs (.5, 1, 1, 1) and
    # (0, 0, .5, 1), W1 = .5 + 1 + .5 + 0 = 2 (each half unit of mass moves two places).
    s, v = torch.tensor([[1.0, 1.0, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, 3.0, 3.0]])
    assert wasserstein(s, v).item() == pytest.approx(2.0)
    # scale does not matter, only the shape of the histogram
    assert wasserstein(5 * s, s).item() == pytest.approx(0.0, abs=1e-6)


def test_barlow_by_hand():
    # N = 2, D = 1: stolen (1, 3) standardises to (-1, 1) (variance 1, up to eps).
    # victim = stolen: C = ((-1)(-1) + 1 * 1) / 2 = 1, loss (1 - 1)^2 = 0.
    # victim = -stolen: C = -1, loss (1 - (-1))^2 = 4.
    s = torch.tensor([[1.0], [3.0]])
    assert barlow(s, s.clone()).item() == pytest.approx(0.0, abs=1e-4)
    assert barlow(s, -s).item() == pytest.approx(4.0, abs=1e-4)


def test_infonce_is_nt_xent_by_hand():
    # N = 1: the only other point is the positive, so the loss is log(1) = 0 whatever T is.
    s, v = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    assert infonce(s, v, temperature=0.1).item() == pytest.approx(0.0, abs=1e-6)


# --- behaviour -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mse", "l1", "cosine", "wasserstein"])
def test_zero_when_identical(name):
    s, _ = _rand(6, 5, 1)
    assert _call(name, s, s.clone()).item() == pytest.approx(0.0, abs=1e-6)


def test_symmetrized_minimal_when_identical():
    s, v = _rand(6, 5, 1)
    assert symmetrized(s, s.clone()).item() == pytest.approx(-1.0, abs=1e-6)
    assert symmetrized(s, v).item() > -1.0 + 1e-3


@pytest.mark.parametrize("name", ["infonce", "softnn", "supcon", "barlow"])
def test_identical_beats_shuffled(name):
    # distinct, well-spread rows so matching is unambiguous
    g = torch.Generator().manual_seed(2)
    s = torch.randn(8, 16, generator=g) * 3
    perm = torch.roll(torch.arange(8), 1)
    kw = {"temperature": 10.0} if name == "softnn" else {}
    labels = torch.arange(8) if name == "supcon" else None
    same = LOSSES[name].fn(s, s.clone(), labels=labels, **kw).item()
    shuffled = LOSSES[name].fn(s, s[perm], labels=labels, **kw).item()
    assert same < shuffled - 1e-3


@pytest.mark.parametrize("name", ALL)
def test_gradient_reaches_stolen_not_victim(name):
    s, v = _rand(6, 5, 3)
    s.requires_grad_(True)
    v.requires_grad_(True)
    loss = _call(name, s, v)
    assert loss.dim() == 0
    loss.backward()
    assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    assert v.grad is None


@pytest.mark.parametrize("name", ALL)
def test_ignores_or_uses_labels_without_crashing(name):
    s, v = _rand(4, 3, 4)
    out = LOSSES[name].fn(s, v, labels=torch.tensor([0, 1, 0, 1]))
    assert torch.isfinite(out)


def test_supcon_labels_matter_and_pair_is_always_positive():
    s, v = _rand(6, 4, 5)
    a = supcon(s, v, labels=torch.arange(6)).item()  # only the stolen/victim pair is positive
    b = supcon(s, v, labels=torch.zeros(6, dtype=torch.long)).item()
    assert a != pytest.approx(b)
    # all-distinct labels: SupCon reduces to InfoNCE with one positive per anchor
    assert a == pytest.approx(infonce(s, v, temperature=0.07).item(), rel=1e-5)


def test_softnn_stable_for_far_points():
    s, v = _rand(5, 4, 6)
    out = softnn(1e3 * s, 1e3 * v, temperature=1.0)
    assert torch.isfinite(out)


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["infonce", "softnn", "supcon"])
@pytest.mark.parametrize("t", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_temperature(name, t):
    s, v = _rand(4, 3, 0)
    with pytest.raises(ValueError, match="temperature"):
        LOSSES[name].fn(s, v, labels=torch.arange(4), temperature=t)


def test_bad_barlow_hyper_parameters():
    s, v = _rand(4, 3, 0)
    with pytest.raises(ValueError, match="lam"):
        barlow(s, v, lam=-0.1)
    with pytest.raises(ValueError, match="eps"):
        barlow(s, v, eps=0.0)
    with pytest.raises(ValueError, match="at least 2 rows"):
        barlow(s[:1], v[:1])


@pytest.mark.parametrize("name", ALL)
def test_shape_mismatch(name):
    s, v = _rand(4, 3, 0)
    with pytest.raises(ValueError, match="shape"):
        LOSSES[name].fn(s, v[:, :2], labels=torch.arange(4))
    with pytest.raises(ValueError, match="shape"):
        LOSSES[name].fn(s[0], v[0], labels=torch.arange(4))


def test_supcon_needs_labels():
    s, v = _rand(4, 3, 0)
    with pytest.raises(ValueError, match="labels"):
        supcon(s, v)
    with pytest.raises(ValueError, match="labels"):
        supcon(s, v, labels=torch.arange(3))


def test_get_loss():
    assert get_loss("softnn") is LOSSES["softnn"]
    with pytest.raises(SleuthError) as err:
        get_loss("nope")
    for name in LOSSES:
        assert name in str(err.value)


def test_registry():
    assert set(LOSSES) == {
        "mse",
        "l1",
        "cosine",
        "infonce",
        "softnn",
        "wasserstein",
        "barlow",
        "supcon",
        "symmetrized",
    }
    assert {k for k, v in LOSSES.items() if v.needs_labels} == {"supcon"}
    assert {k for k, v in LOSSES.items() if v.two_views} == {"barlow", "supcon", "symmetrized"}
    for entry in LOSSES.values():
        assert entry.description and "\n" not in entry.description


def test_temperature_is_bound_only_where_a_loss_has_one():
    """--temperature reaches infonce/softnn/supcon (the same value as calling them with it) and
    is refused for a loss without one."""
    from sleuth.steal.losses import get_loss, infonce

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    bound = get_loss("infonce", 0.1).fn(a, b)
    assert torch.allclose(bound, infonce(a, b, temperature=0.1))
    assert not torch.allclose(bound, get_loss("infonce").fn(a, b))
    with pytest.raises(SleuthError, match="infonce, softnn, supcon"):
        get_loss("mse", 0.1)
    with pytest.raises(SleuthError, match="temperature"):
        get_loss("infonce", 0.0)
