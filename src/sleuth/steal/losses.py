"""The stealing losses of 000 §3.3 (Tables 2 and 5): one pure function per loss, one registry.

Every loss is ``fn(stolen, victim, labels=None, *, <hyper-parameters>) -> scalar tensor``:

* ``stolen`` is the attacker's output, shape (N, D), with gradients;
* ``victim`` is the victim's answers, shape (N, D); it is a constant, so every loss detaches it
  (an input with ``requires_grad=True`` never receives a gradient);
* row i of ``stolen`` and row i of ``victim`` come from the same image (or from two views of it);
* ``labels`` (N,) are the labels of the attacker's query data; only ``supcon`` uses them, the
  others accept and ignore them, so the attacks can pass them unconditionally.

The papers' starred (*) losses are :attr:`StealLoss.two_views`: the attacker queries the victim on
two augmented views per image and the batch is stacked as [view-1 rows; view-2 rows] (N = 2M, rows
i and i + M are two views of one image). The losses themselves do not rely on that layout beyond
what each docstring says; it is the caller's contract.

Hyper-parameters are keyword-only with the defaults stated in each docstring and are validated on
every call (``ValueError``). Where the paper's public code (``cleverhans-lab/ssl-attacks-defenses``,
files ``simclr.py`` (``SimCLR.steal``), ``loss.py`` and ``steal.py`` (argparse defaults)) defines a
loss, the docstring says what it does and where we match or depart from it.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch.nn import functional as F

from sleuth.errors import SleuthError
from sleuth.models.losses import nt_xent

__all__ = [
    "LOSSES",
    "StealLoss",
    "barlow",
    "cosine",
    "get_loss",
    "infonce",
    "l1",
    "mse",
    "softnn",
    "supcon",
    "symmetrized",
    "wasserstein",
]


@dataclass(frozen=True)
class StealLoss:
    """A registered stealing loss and what the attack must provide for it."""

    fn: Callable[..., torch.Tensor]  # fn(stolen, victim, labels=None) -> scalar tensor
    description: str  # one line, for --help and docs
    needs_labels: bool = False  # supcon: labels of the attacker's query data
    two_views: bool = False  # the papers' (*) losses: two augmented views queried per image


# ---------------------------------------------------------------------------------------------
# validation helpers


def _pair(stolen: torch.Tensor, victim: torch.Tensor, min_rows: int = 1) -> torch.Tensor:
    """Check the (N, D) convention and return the victim's answers detached."""
    if stolen.dim() != 2 or stolen.shape != victim.shape:
        raise ValueError(
            f"expected stolen and victim of one (N, D) shape, got {tuple(stolen.shape)} "
            f"and {tuple(victim.shape)}"
        )
    if stolen.shape[0] < min_rows:
        raise ValueError(f"this loss needs at least {min_rows} rows, got {stolen.shape[0]}")
    return victim.detach().to(dtype=stolen.dtype, device=stolen.device)


def _temperature(value: float) -> float:
    if not math.isfinite(value) or value < 1e-8:
        raise ValueError(f"temperature must be positive, finite and not tiny, got {value}")
    return float(value)


def _non_negative(name: str, value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and non-negative, got {value}")
    return float(value)


def _positive(name: str, value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be finite and positive, got {value}")
    return float(value)


def _sq_dists(z: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances of the rows of ``z`` (clamped at 0 against rounding)."""
    sq = (z * z).sum(dim=1)
    return (sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)).clamp_min(0.0)


# ---------------------------------------------------------------------------------------------
# quadratic and distance losses


def mse(
    stolen: torch.Tensor, victim: torch.Tensor, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared error over all N·D entries (``F.mse_loss``, the authors' ``nn.MSELoss``)."""
    return F.mse_loss(stolen, _pair(stolen, victim))


def l1(
    stolen: torch.Tensor, victim: torch.Tensor, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean absolute error over all N·D entries (``F.l1_loss``)."""
    return F.l1_loss(stolen, _pair(stolen, victim))


def cosine(
    stolen: torch.Tensor,
    victim: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    eps: float = 1e-8,
) -> torch.Tensor:
    """1 − mean over rows of cos(stolen_i, victim_i); in [0, 2], 0 when the directions agree.

    ``eps`` guards the norms of all-zero rows (as in ``F.cosine_similarity``)."""
    eps = _positive("eps", eps)
    return 1.0 - F.cosine_similarity(stolen, _pair(stolen, victim), dim=1, eps=eps).mean()


def wasserstein(
    stolen: torch.Tensor,
    victim: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    eps: float = 1e-12,
) -> torch.Tensor:
    """Per-row 1-Wasserstein distance between the two representations read as histograms over the
    D feature indices, averaged over the N rows.

    This is the semantics of the authors' ``wasserstein_loss`` (``loss.py``:
    ``torch_wasserstein_loss`` → ``torch_cdf_loss(p=1)``, called as ``criterion(features,
    query_features)`` in ``simclr.py``): each row is normalised to unit mass, its CDF over the
    feature index is a cumulative sum, and W1 = Σ_d |CDF_stolen(d) − CDF_victim(d)| (unit spacing
    between indices). It is *not* a distance between the two batches' distributions in R^D, which
    explains its poor accuracy in Tables 2 and 5.

    One departure, for signed inputs only: the authors divide by the plain row sum, which is the
    mass only for non-negative features (a ResNet's pooled post-ReLU output) and can be ~0 or
    negative for signed ones (a projected or noised answer), blowing the loss up. We divide by the
    L1 mass Σ_d |x_d| (clamped at ``eps``): identical for non-negative rows, bounded otherwise.
    """
    eps = _positive("eps", eps)
    victim = _pair(stolen, victim)

    def cdf(x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(x / x.abs().sum(dim=1, keepdim=True).clamp_min(eps), dim=1)

    return (cdf(stolen) - cdf(victim)).abs().sum(dim=1).mean()


# ---------------------------------------------------------------------------------------------
# contrastive losses


def infonce(
    stolen: torch.Tensor,
    victim: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    temperature: float = 0.5,
) -> torch.Tensor:
    """InfoNCE between stolen and victim rows: ``nt_xent(stolen, victim, temperature)``.

    The 2N points are {stolen_i} ∪ {victim_i}; the positive of stolen_i is victim_i and vice versa,
    every other of the 2N − 2 points is a negative; cosine similarities over ``temperature``,
    cross-entropy averaged over all 2N anchors (victim anchors still pull on the stolen rows).

    This is exactly what the authors' code does (``simclr.py``, ``SimCLR.steal`` with ``losstype
    infonce``): it concatenates ``[features, query_features]`` and feeds it to SimCLR's
    ``info_nce_loss``, whose labels ``arange(batch_size)`` repeated twice make rows i and i + N the
    only positive pair, with L2-normalised features and ``CrossEntropyLoss``. Their temperature is
    ``args.temperature``, default 0.07 in ``steal.py``; ours defaults to 0.5 (the project's
    NT-Xent default); pass ``temperature=0.07`` to reproduce theirs.
    """
    temperature = _temperature(temperature)
    return nt_xent(stolen, _pair(stolen, victim), temperature)


def softnn(
    stolen: torch.Tensor,
    victim: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    temperature: float = 100.0,
) -> torch.Tensor:
    """Soft Nearest Neighbour loss (Frosst et al., 2019) over the 2N points {stolen_i} ∪ {victim_i},
    the "class" of a point being its image index i:

        L = −mean_a log( Σ_{b≠a, class(b)=class(a)} exp(−d_ab/T) / Σ_{k≠a} exp(−d_ak/T) )

    with squared Euclidean distances d and temperature T, computed with ``logsumexp``.

    Matches the authors' ``soft_nn_loss`` as called in ``simclr.py`` (``SimCLR.steal``):
    ``[features, query_features]`` with labels ``arange(batch_size)`` repeated, distances from
    ``pairwise_euclid_distance`` (squared, no square root; its stability epsilons cancel), the
    diagonal masked out of both sums, mean over all 2N points. Their temperature is
    ``--temperaturesn``, default 100 in ``steal.py`` (the function's own default of 10000 is
    overridden), hence our default T = 100. Differences: they compute in float64 as
    ``log(1e-9 + ratio)`` of plain exponentials, which underflows for distances ≫ T; the
    log-sum-exp form here is exact in float32 too.
    """
    temperature = _temperature(temperature)
    victim = _pair(stolen, victim)
    n = stolen.shape[0]
    z = torch.cat([stolen, victim])
    logits = -_sq_dists(z) / temperature
    not_self = ~torch.eye(2 * n, dtype=torch.bool, device=z.device)
    index = torch.arange(n, device=z.device).repeat(2)
    same = (index[:, None] == index[None, :]) & not_self
    minus_inf = torch.finfo(logits.dtype).min
    log_num = torch.logsumexp(logits.masked_fill(~same, minus_inf), dim=1)
    log_den = torch.logsumexp(logits.masked_fill(~not_self, minus_inf), dim=1)
    return (log_den - log_num).mean()


def supcon(
    stolen: torch.Tensor,
    victim: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    temperature: float = 0.07,
) -> torch.Tensor:
    """Supervised Contrastive loss (Khosla et al., 2020, L_out) over the 2N points
    {stolen_i} ∪ {victim_i}, point stolen_i and victim_i both carrying ``labels[i]``:

        L = mean_a −(1/|P(a)|) Σ_{p∈P(a)} log( exp(z_a·z_p/T) / Σ_{k≠a} exp(z_a·z_k/T) )

    with L2-normalised z and P(a) every other point of a's label (so at least a's stolen/victim
    partner, plus the other view of the same image in a two-view batch). ``labels`` (N,) are
    required: ``ValueError`` without them.

    Matches the authors' use (``simclr.py``, ``SimCLR.steal``): normalised ``[features,
    query_features]`` as two "views" of the ``SupConLoss`` (a copy of Khosla et al.'s
    ``contrast_mode='all'``) with ``truelabels.repeat(2)``; temperature ``args.temperature``,
    default 0.07 in ``steal.py``, which we take. Their extra factor temperature/base_temperature
    is 0.07/0.07 = 1 at those defaults, so it is left out.
    """
    temperature = _temperature(temperature)
    victim = _pair(stolen, victim)
    n = stolen.shape[0]
    if labels is None:
        raise ValueError("supcon needs the labels of the attacker's query data, got None")
    labels = torch.as_tensor(labels, device=stolen.device)
    if labels.shape != (n,):
        raise ValueError(f"expected labels of shape ({n},), got {tuple(labels.shape)}")
    z = F.normalize(torch.cat([stolen, victim]), dim=1)
    logits = z @ z.T / temperature
    not_self = ~torch.eye(2 * n, dtype=torch.bool, device=z.device)
    both = labels.repeat(2)
    positive = (both[:, None] == both[None, :]) & not_self
    log_prob = (
        logits - torch.logsumexp(logits.masked_fill(~not_self, float("-inf")), dim=1)[:, None]
    )
    mean_pos = (log_prob * positive).sum(dim=1) / positive.sum(dim=1)
    return -mean_pos.mean()


# ---------------------------------------------------------------------------------------------
# two-view, non-contrastive losses


def barlow(
    stolen: torch.Tensor,
    victim: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    lam: float = 5e-3,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Barlow Twins (Zbontar et al., 2021) between the stolen and the victim batch.

    Each batch is standardised along the batch dimension (mean 0, biased variance + ``eps``, as an
    affine-free ``BatchNorm1d`` in training mode), C = stolen_stdᵀ victim_std / N is their D×D
    cross-correlation, and L = Σ_i (1 − C_ii)² + ``lam``·Σ_{i≠j} C_ij². Needs N ≥ 2.

    In a two-view batch the caller passes stolen = f_a([view1; view2]) and victim = the answers for
    [view2; view1], so C correlates each stolen view with the victim's other view.
    Departure from the authors' code (``simclr.py``, ``losstype barlow``): they stack
    P1 = [f_a(view1); f_v(view1)] and P2 = [f_a(view2); f_v(view2)] and correlate P1 with P2, so the
    stolen rows are only ever matched to stolen rows (self-supervised Barlow Twins with the
    victim's rows sharing the batch statistics), which may be why it reaches only ~26% in Table 2.
    Their λ is 0.0051 (the Barlow Twins repository's); ours is the paper's 5e-3.
    """
    lam = _non_negative("lam", lam)
    eps = _positive("eps", eps)
    victim = _pair(stolen, victim, min_rows=2)
    n = stolen.shape[0]

    def standardise(x: torch.Tensor) -> torch.Tensor:
        return (x - x.mean(dim=0)) / torch.sqrt(x.var(dim=0, unbiased=False) + eps)

    c = standardise(stolen).T @ standardise(victim) / n
    diag = torch.diagonal(c)
    on = (1.0 - diag).pow(2).sum()
    off = c.pow(2).sum() - diag.pow(2).sum()
    return on + lam * off


def symmetrized(
    stolen: torch.Tensor,
    victim: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    eps: float = 1e-8,
) -> torch.Tensor:
    """SimSiam's symmetrized negative cosine similarity with stop-gradient on the victim side:
    −mean_i cos(stolen_i, victim_i.detach()), in [−1, 1].

    What the caller must pass for a two-view batch of M images: ``stolen`` = the attacker's
    predictor output h(f_a(·)) for [view1; view2] and ``victim`` = the victim's answers for
    [view2; view1] (already swapped), so the mean over the 2M rows is SimSiam's
    ½·D(p1, z2) + ½·D(p2, z1). The authors (``simclr.py``, ``losstype symmetrized``) compute the
    same −½(cos(p1, z2) + cos(p2, z1)), with z the victim's representation passed through the
    attacker's own projection layer (trained, not stopped); here z is the victim's answer itself.
    """
    eps = _positive("eps", eps)
    return -F.cosine_similarity(stolen, _pair(stolen, victim), dim=1, eps=eps).mean()


LOSSES: dict[str, StealLoss] = {
    "mse": StealLoss(mse, "mean squared error between stolen and victim representations"),
    "l1": StealLoss(l1, "mean absolute error between stolen and victim representations"),
    "cosine": StealLoss(cosine, "1 - mean cosine similarity of stolen and victim representations"),
    "infonce": StealLoss(
        infonce, "InfoNCE/NT-Xent: (stolen_i, victim_i) positives, other rows negatives (T=0.5)"
    ),
    "softnn": StealLoss(
        softnn, "soft nearest neighbour loss, class = image, squared L2 distances (T=100)"
    ),
    "wasserstein": StealLoss(
        wasserstein, "per-row W1 between representations read as histograms (authors' version)"
    ),
    "barlow": StealLoss(
        barlow,
        "Barlow Twins cross-correlation of stolen and victim batches (lambda=5e-3), two views",
        two_views=True,
    ),
    "supcon": StealLoss(
        supcon,
        "supervised contrastive loss over stolen+victim points, needs labels (T=0.07), two views",
        needs_labels=True,
        two_views=True,
    ),
    "symmetrized": StealLoss(
        symmetrized,
        "SimSiam negative cosine, predictor output vs the victim's other view, two views",
        two_views=True,
    ),
}


def get_loss(name: str, temperature: float | None = None) -> StealLoss:
    """The registered loss called ``name`` (with ``temperature`` bound, for the losses that have
    one); ``SleuthError`` listing the known names otherwise."""
    try:
        loss = LOSSES[name]
    except KeyError:
        raise SleuthError(f"unknown loss {name!r} (known: {', '.join(LOSSES)})") from None
    if temperature is None:
        return loss
    if "temperature" not in inspect.signature(loss.fn).parameters:
        with_t = [
            n for n, v in LOSSES.items() if "temperature" in inspect.signature(v.fn).parameters
        ]
        raise SleuthError(f"--temperature is for the losses {', '.join(with_t)}, not {name}")
    try:
        _temperature(temperature)
    except ValueError as exc:
        raise SleuthError(str(exc)) from None
    return replace(loss, fn=functools.partial(loss.fn, temperature=temperature))
