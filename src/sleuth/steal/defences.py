"""Victim-side output defences: perturb the representations an encoder service returns.

A defence is a small callable ``defence(reps, images, gen) -> reps'`` with its parameters validated
once at construction (the shape of IBM ART's postprocessors). ``reps`` are the (N, D) float32
answers about to be returned, ``images`` the (N, C, H, W) float [0, 1] queries that produced them
(only feature poisoning looks at them) and ``gen`` the oracle's seeded ``torch.Generator``: every
random draw comes from it, never from a global RNG. A defence never modifies ``reps`` in place.
``apply_defences`` applies a list of them in order.

Defences from the literature, written as specs for ``parse_defence`` (``NAME[:key=value,...]``):

- ``noise:sigma=S[,mean=0]``: Gaussian noise on every answer (paper 000, Sec. 5.2, Tables 10-11).
- ``topk:k=K``: keep the K largest absolute features of each answer, zero the rest (002, VII-A).
- ``round:decimals=M``: round every feature to M decimals (002, VII-B).
- ``poison:surrogate=PATH,eps=E[,norm=l2,lam=20,steps=10]``: feature poisoning (002, VII-C, Eq. 10).
- ``similar:threshold=T[,metric=cosine,sigma=20,mean=1000,history=100000,mode=replace]``: perturb
  answers too close to an earlier one (000, Sec. 5.3 and App. A.3, Tables 12-15).
- ``b4b:buckets=4096,lam=1e-6,alpha=1,beta=0.8``: B4B's coverage-priced noise, per user
  (Dubinski et al., NeurIPS 2023, Sec. 3.2-3.3, Eq. 1).
- ``transform:kinds=affine+pad+shuffle,pad=16,binary=1024``: B4B's per-user transformations
  (Sec. 3.4).
- ``pow:base=8,top=20,beta=0.8,buckets=4096``: calibrated proof-of-work priced by coverage.

Per-user defences keep their state in the user's ``Account`` (``accounts``): in memory for a
local victim, in ``sleuth serve``'s database online; one registry serves ``steal --defence``
and ``serve --defence``.

Values are split on commas, so a surrogate path in a spec cannot contain one; code builds such a
defence with ``make_defence``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch.nn import functional as F

from sleuth.data import adapt
from sleuth.data.augment import SimCLRAugment
from sleuth.errors import SleuthError
from sleuth.fileio import sha256_file
from sleuth.models import Encoder, load_encoder
from sleuth.steal.accounts import Account
from sleuth.steal.b4b import B4B, UserTransform, record_coverage
from sleuth.steal.params import Described, check, choice, integer, number, randn, store
from sleuth.steal.pow import ProofOfWork


class Defence(Protocol):
    """Perturbs a batch of answers; ``describe()`` gives its name and parameters for manifests."""

    name: str

    def __call__(
        self, reps: torch.Tensor, images: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor: ...

    def describe(self) -> dict[str, Any]: ...


# --- the defences ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GaussianNoise(Described):
    """Adds i.i.d. N(mean, sigma^2) noise to every feature (000, Sec. 5.2 and A.5).

    Table 11 uses mean 0 and Table 10 mean 10 (a shifted mean hurt the attacker more).
    ``sigma=0, mean=0`` is the identity.
    """

    sigma: float
    mean: float = 0.0
    name = "noise"

    def __post_init__(self) -> None:
        store(self, "sigma", number("sigma", self.sigma))
        store(self, "mean", number("mean", self.mean))
        check(self.sigma >= 0, f"sigma must be >= 0, got {self.sigma}")

    def __call__(
        self, reps: torch.Tensor, images: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        return reps + (self.mean + self.sigma * randn(tuple(reps.shape), gen, reps))


@dataclass(frozen=True, kw_only=True)
class TopK(Described):
    """Keeps the k features of largest absolute value in each answer and zeroes the rest (002,
    VII-A). Exactly k are kept even when values tie; ``k >= D`` would keep everything and is
    refused rather than silently doing nothing."""

    k: int
    name = "topk"

    def __post_init__(self) -> None:
        store(self, "k", integer("k", self.k))
        check(self.k >= 1, f"k must be >= 1, got {self.k}")

    def __call__(
        self, reps: torch.Tensor, images: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        if self.k >= reps.shape[1]:
            raise SleuthError(
                f"topk:k={self.k} keeps all {reps.shape[1]} features: the defence would do nothing"
            )
        idx = reps.abs().topk(self.k, dim=1).indices
        return torch.zeros_like(reps).scatter_(1, idx, reps.gather(1, idx))


@dataclass(frozen=True, kw_only=True)
class Rounding(Described):
    """Rounds every feature to ``decimals`` decimals, e.g. 0.0123 -> 0.01 with 2 (002, VII-B).

    At most 15 decimals: float32 holds fewer significant digits, and ``torch.round`` scales by
    10**decimals, which overflows float32 for large values.
    """

    decimals: int
    name = "round"

    def __post_init__(self) -> None:
        store(self, "decimals", integer("decimals", self.decimals))
        check(0 <= self.decimals <= 15, f"decimals must be in 0..15, got {self.decimals}")

    def __call__(
        self, reps: torch.Tensor, images: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        return torch.round(reps, decimals=self.decimals)


NORMS = ("l2", "linf")


@dataclass(frozen=True, kw_only=True, eq=False)
class FeaturePoisoning(Described):
    """Feature poisoning (002, VII-C, Eq. 10): return r + delta with ||delta||_p <= eps maximising

        ||r + delta - f_s(x)||_2 + lam * ||r + delta - f_s(A(x))||_2

    for each query x, where r is the victim's answer, f_s a surrogate stolen encoder the defender
    trained itself and A the SimCLR augmentation (drawn from ``gen``), i.e. the answer that most
    increases StolenEncoder's loss (Eq. 7, with the l2 distance and lam = 20 of its defaults).
    The 002 paper assumes the strongest defender: the surrogate is stolen with exactly the
    attacker's settings (its data aside), and d, lam and A are the attacker's too.

    Solved by projected gradient ascent per query: a small random start (norm 0.1 * eps) from
    ``gen``, then ``steps`` steps of 2.5 * eps / steps along the normalised gradient (l2) or its
    sign (linf), each projected back onto the eps-ball; the best iterate is returned. The
    objective is convex, so maximising it over the ball can stop at a local maximum (with linf, a
    feature whose random start points against the gradient may end at the opposite corner).
    ``gen`` is drawn from in this order: the augmentation, then the start.
    """

    surrogate: Encoder
    eps: float
    norm: str = "l2"
    lam: float = 20.0
    steps: int = 10
    source: str | None = None  # the surrogate's file, when it came from one
    source_sha256: str | None = None
    augment: SimCLRAugment = field(default_factory=SimCLRAugment)
    name = "poison"
    START_FRACTION = 0.1
    STEP_FRACTION = 2.5

    def __post_init__(self) -> None:
        eps, norm, lam, steps = self.validate(self.eps, self.norm, self.lam, self.steps)
        for key, value in (("eps", eps), ("norm", norm), ("lam", lam), ("steps", steps)):
            store(self, key, value)

    @staticmethod
    def validate(eps: Any, norm: Any, lam: Any, steps: Any) -> tuple[float, str, float, int]:
        """The parameters coerced and checked; ValueError names the first bad one."""
        eps, lam = number("eps", eps), number("lam", lam)
        norm, steps = choice("norm", norm, NORMS), integer("steps", steps)
        check(eps > 0, f"eps must be > 0, got {eps}")
        check(lam >= 0, f"lam must be >= 0, got {lam}")
        check(steps >= 1, f"steps must be >= 1, got {steps}")
        return eps, norm, lam, steps

    @classmethod
    def from_file(
        cls,
        *,
        surrogate: str,
        eps: Any,
        norm: Any = "l2",
        lam: Any = 20.0,
        steps: Any = 10,
    ) -> FeaturePoisoning:
        """Load the surrogate encoder from ``surrogate`` (checked parameters first)."""
        eps, norm, lam, steps = cls.validate(eps, norm, lam, steps)
        path = Path(str(surrogate))
        encoder = load_encoder(path)
        return cls(
            surrogate=encoder,
            eps=eps,
            norm=norm,
            lam=lam,
            steps=steps,
            source=str(surrogate),
            source_sha256=sha256_file(path),
        )

    def __str__(self) -> str:
        return defence_spec(self)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "surrogate": self.source,
            "surrogate_sha256": self.source_sha256,
            "eps": self.eps,
            "norm": self.norm,
            "lam": self.lam,
            "steps": self.steps,
        }

    def objective(self, answers: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
        """Eq. 10's objective for each row of ``answers`` (r + delta)."""
        return (answers - s1).norm(dim=1) + self.lam * (answers - s2).norm(dim=1)

    def _gradient(self, answers: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
        u1, u2 = answers - s1, answers - s2
        g1 = u1 / u1.norm(dim=1, keepdim=True).clamp_min(1e-12)
        g2 = u2 / u2.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return g1 + self.lam * g2

    def _project(self, delta: torch.Tensor) -> torch.Tensor:
        if self.norm == "linf":
            return delta.clamp(-self.eps, self.eps)
        scale = (self.eps / delta.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
        return delta * scale

    def _direction(self, grad: torch.Tensor) -> torch.Tensor:
        if self.norm == "linf":
            return grad.sign()
        return grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def _start(
        self, shape: tuple[int, ...], gen: torch.Generator, like: torch.Tensor
    ) -> torch.Tensor:
        size = self.START_FRACTION * self.eps
        if self.norm == "linf":
            u = torch.rand(shape, generator=gen, device=gen.device)
            return ((u * 2 - 1) * size).to(like)
        return self._direction(randn(shape, gen, like)) * size

    @torch.no_grad()
    def __call__(
        self, reps: torch.Tensor, images: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        n, dim = reps.shape
        if self.surrogate.rep_dim != dim:
            raise SleuthError(
                f"feature poisoning: the surrogate encoder gives {self.surrogate.rep_dim}-"
                f"dimensional representations but the victim answers {dim}-dimensional ones"
            )
        if len(images) != n:
            raise ValueError(f"{len(images)} images for {n} answers")
        x = adapt(images, self.surrogate.config.input_spec).to(gen.device)
        r = reps.detach().float()
        s1 = self.surrogate.represent(x).to(r.device)
        s2 = self.surrogate.represent(self.augment(x, gen)).to(r.device)
        delta = self._project(self._start((n, dim), gen, r))
        best, best_value = delta, self.objective(r + delta, s1, s2)
        step = self.STEP_FRACTION * self.eps / self.steps
        for _ in range(self.steps):
            grad = self._gradient(r + delta, s1, s2)
            delta = self._project(delta + step * self._direction(grad))
            value = self.objective(r + delta, s1, s2)
            better = value > best_value
            best = torch.where(better[:, None], delta, best)
            best_value = torch.where(better, value, best_value)
        return (r + best).to(reps.dtype)


METRICS = ("cosine", "l2")
MODES = ("replace", "add")


@dataclass
class _History:
    """SimilarQuery's mutable state: a ring buffer of comparison keys and the counters."""

    buffer: torch.Tensor | None = None  # (rows <= capacity, D); grows until it holds capacity
    next: int = 0  # the slot the next key goes to (the oldest one once full)
    stored: int = 0
    seen: int = 0
    flagged: int = 0


@dataclass(frozen=True, kw_only=True, eq=False)
class SimilarQuery(Described):
    """The similar-query defence (000, Sec. 5.3 and App. A.3; Tables 12-15).

    Keeps the ``history`` most recent clean answers it has seen; an answer whose maximum cosine
    similarity to them is above ``threshold`` (``metric=cosine``), or whose minimum l2 distance is
    below it (``metric=l2``), is flagged as a likely second augmentation of an earlier query.
    Earlier rows of the same batch count as history, exactly as if the rows came one at a time.
    A flagged answer is replaced by N(mean, sigma^2) noise (``mode=replace``, as A.3 says: "replaced
    by random Gaussian noise with a high mean and variance"; Table 12 uses mean 1000), or gets that
    noise added (``mode=add``). Every answer, flagged or not, enters the history.

    The paper compares the head's projections z when the victim has a head (it found lower error
    rates that way, Tables 13-14); this defence compares whatever it is given, so put the head's
    outputs through it to follow the paper. ``flagged`` / ``seen`` counts the flagged queries:
    on legitimate queries, that is the false-positive rate. The state is per instance: one
    instance per user account, as the paper's history is per user.
    """

    threshold: float
    metric: str = "cosine"
    sigma: float = 20.0
    mean: float = 1000.0
    history: int = 100_000
    mode: str = "replace"
    _state: _History = field(default_factory=_History, init=False, repr=False)
    name = "similar"
    CHUNK_ELEMENTS = 1 << 22  # bound on the similarity matrix computed at once

    def __post_init__(self) -> None:
        store(self, "metric", choice("metric", self.metric, METRICS))
        store(self, "mode", choice("mode", self.mode, MODES))
        for key in ("threshold", "sigma", "mean"):
            store(self, key, number(key, getattr(self, key)))
        store(self, "history", integer("history", self.history))
        if self.metric == "cosine":
            check(-1 <= self.threshold <= 1, f"threshold must be in [-1, 1], got {self.threshold}")
        else:
            check(self.threshold >= 0, f"threshold must be >= 0, got {self.threshold}")
        check(self.sigma >= 0, f"sigma must be >= 0, got {self.sigma}")
        check(self.history >= 1, f"history must be >= 1, got {self.history}")

    @property
    def flagged(self) -> int:
        """Queries flagged as similar so far."""
        return self._state.flagged

    @property
    def seen(self) -> int:
        """Queries answered so far."""
        return self._state.seen

    @property
    def stored(self) -> int:
        """Entries in the history (at most ``history``)."""
        return self._state.stored

    def memory(self) -> torch.Tensor:
        """A copy of the history's keys, oldest first (unit vectors when the metric is cosine)."""
        h = self._state
        if h.buffer is None:
            return torch.empty(0, 0)
        held = h.buffer[: h.stored]
        return torch.cat([held[h.next :], held[: h.next]]) if h.stored == self.history else held

    def _keys(self, reps: torch.Tensor) -> torch.Tensor:
        keys = reps.detach().float()
        return F.normalize(keys, dim=1) if self.metric == "cosine" else keys.clone()

    def _closeness(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Larger is closer: cosine similarity, or minus the l2 distance."""
        return a @ b.T if self.metric == "cosine" else -torch.cdist(a, b)

    def _flags(self, keys: torch.Tensor) -> torch.Tensor:
        h, cap, n = self._state, self.history, len(keys)
        held = h.buffer[: h.stored] if h.buffer is not None else keys[:0]
        # position of each held key in the stream (oldest 0); the query at stream position
        # stored + i sees the positions in [stored + i - cap, stored + i)
        slots = torch.arange(h.stored, device=keys.device)
        pos = (slots - h.next) % max(h.stored, 1)
        cut = -self.threshold if self.metric == "l2" else self.threshold
        flags = torch.zeros(n, dtype=torch.bool, device=keys.device)
        chunk = max(1, self.CHUNK_ELEMENTS // (h.stored + n))
        cols = torch.arange(n, device=keys.device)[None, :]
        for start in range(0, n, chunk):
            rows = keys[start : start + chunk]
            i = torch.arange(start, start + len(rows), device=keys.device)[:, None]
            near = self._closeness(rows, keys)
            near = near.masked_fill(~((cols < i) & (cols >= i - cap)), -math.inf)
            best = near.max(dim=1).values
            if h.stored:
                old = self._closeness(rows, held)
                old = old.masked_fill(pos[None, :] < h.stored + i - cap, -math.inf)
                best = torch.maximum(best, old.max(dim=1).values)
            flags[start : start + len(rows)] = best > cut
        return flags

    def _remember(self, keys: torch.Tensor) -> None:
        h, cap, n = self._state, self.history, len(keys)
        if n >= cap:
            h.buffer, h.next, h.stored = keys[-cap:].clone(), 0, cap
            return
        need = min(cap, h.stored + n)
        if h.buffer is None or len(h.buffer) < need:
            size = min(cap, max(need, 2 * (0 if h.buffer is None else len(h.buffer))))
            grown = keys.new_empty(size, keys.shape[1])
            if h.buffer is not None:
                grown[: h.stored] = h.buffer[: h.stored]
            h.buffer = grown
        slots = (h.next + torch.arange(n, device=keys.device)) % cap
        h.buffer[slots] = keys
        h.next, h.stored = (h.next + n) % cap, need

    @torch.no_grad()
    def __call__(
        self, reps: torch.Tensor, images: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        h = self._state
        if h.buffer is not None and h.buffer.shape[1] != reps.shape[1]:
            raise SleuthError(
                f"similar-query defence: answers changed size from {h.buffer.shape[1]} "
                f"to {reps.shape[1]} features"
            )
        if h.buffer is not None and h.buffer.device != reps.device:
            h.buffer = h.buffer.to(reps.device)
        keys = self._keys(reps)
        flags = self._flags(keys)
        self._remember(keys)
        out = reps.clone()
        idx = flags.nonzero().squeeze(1)
        if len(idx):
            noise = self.mean + self.sigma * randn((len(idx), reps.shape[1]), gen, reps)
            out[idx] = noise if self.mode == "replace" else reps[idx] + noise
        h.seen += len(reps)
        h.flagged += len(idx)
        return out


# --- registry, specs and application --------------------------------------------------------

DEFENCES: dict[str, Callable[..., Defence]] = {
    "noise": GaussianNoise,
    "topk": TopK,
    "round": Rounding,
    "poison": FeaturePoisoning.from_file,
    "similar": SimilarQuery,
    "b4b": B4B,
    "transform": UserTransform,
    "pow": ProofOfWork,
}


def defence_parameters(name: str) -> tuple[list[str], list[str]]:
    """(all, required) keyword parameters of a defence's factory, in signature order."""
    params = [
        p
        for p in inspect.signature(DEFENCES[name]).parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return [p.name for p in params], [p.name for p in params if p.default is p.empty]


def defence_usage(name: str) -> str:
    """How a defence is written, e.g. ``noise:sigma=..,mean=0.0``."""
    params = inspect.signature(DEFENCES[name]).parameters.values()
    items = [p.name + ("=.." if p.default is p.empty else f"={p.default}") for p in params]
    return f"{name}:{','.join(items)}"


def _valid_defences() -> str:
    return "; ".join(defence_usage(name) for name in DEFENCES)


def defence_spec(defence: Defence) -> str:
    """The canonical spec of a defence: ``parse_defence(defence_spec(d))`` describes the same."""
    described = defence.describe()
    name = described["name"]
    names = defence_parameters(name)[0] if name in DEFENCES else []
    items = [f"{k}={described[k]}" for k in names if described.get(k) is not None]
    return name + (":" + ",".join(items) if items else "")


def parse_defence(spec: str) -> Defence:
    """A defence from ``NAME[:key=value,...]``; any problem is a one-line SleuthError."""
    name, _, rest = spec.strip().partition(":")
    params: dict[str, str] = {}
    for item in rest.split(",") if rest.strip() else ():
        key, eq, value = item.partition("=")
        key = key.strip()
        if not key or not eq or key in params:
            raise SleuthError(
                f"bad defence spec {spec!r}: expected key=value once each, got {item.strip()!r}"
            )
        params[key] = value.strip()
    return make_defence(name.strip(), params, spec=spec)


def make_defence(name: str, params: Mapping[str, Any], *, spec: str | None = None) -> Defence:
    """The defence ``name`` with ``params`` (strings from a spec or values from code), checked as
    ``parse_defence`` checks a spec: code whose values may hold a comma (a surrogate's path) calls
    this rather than writing a spec."""
    shown = spec if spec is not None else f"{name}:{dict(params)}"
    if name not in DEFENCES:
        raise SleuthError(f"unknown defence {name!r} in {shown!r} (valid: {_valid_defences()})")
    allowed, required = defence_parameters(name)
    unknown = [key for key in params if key not in allowed]
    if unknown:
        raise SleuthError(
            f"unknown parameter {unknown[0]!r} in defence spec {shown!r} "
            f"(parameters of {name}: {', '.join(allowed)})"
        )
    missing = [key for key in required if key not in params]
    if missing:
        raise SleuthError(
            f"defence spec {shown!r} is missing {missing[0]}= (write it as {defence_usage(name)})"
        )
    try:
        return DEFENCES[name](**params)
    except (ValueError, TypeError, SleuthError) as exc:
        raise SleuthError(f"bad defence spec {shown!r}: {exc}") from None


def apply_defences(
    defences: Sequence[Defence],
    reps: torch.Tensor,
    images: torch.Tensor,
    gen: torch.Generator,
    account: Account | None = None,
) -> torch.Tensor:
    """Apply ``defences`` in order (each sees the previous one's output); ``reps`` is untouched.
    Per-user defences (B4B, transformations, proof-of-work) are given ``account``; the coverage
    they price by is recorded first, on the encoder's own answers, whatever the order."""
    tables = coverage_tables(defences)
    if tables and account is None:
        raise SleuthError("coverage-priced defences are per user: they need an account")
    for buckets in sorted(tables):
        record_coverage(reps, account, buckets)  # type: ignore[arg-type]
    out = reps
    for defence in defences:
        if getattr(defence, "per_user", False):
            if account is None:
                raise SleuthError(f"the {defence.name} defence is per user: it needs an account")
            out = defence(out, images, gen, account)  # type: ignore[call-arg]
        else:
            out = defence(out, images, gen)
    return out


def coverage_tables(defences: Sequence[Defence]) -> set[int]:
    """The bucket-table sizes whose coverage the defences price by."""
    return {d.buckets for d in defences if getattr(d, "covers", False)}  # type: ignore[attr-defined]


def answer_dim(defences: Sequence[Defence], dim: int) -> int:
    """The size of the answers ``defences`` return for ``dim``-dimensional representations."""
    for defence in defences:
        out_dim = getattr(defence, "out_dim", None)
        dim = out_dim(dim) if out_dim is not None else dim
    return dim


def gates(defences: Sequence[Defence]) -> list[ProofOfWork]:
    """The defences a user must pay before a batch is answered (proof-of-work)."""
    return [d for d in defences if getattr(d, "gate", False)]  # type: ignore[misc]
