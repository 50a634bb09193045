"""Bucks for Buckets (B4B; Dubinski et al., NeurIPS 2023), online and per user.

Three building blocks (its Sec. 3.2-3.4):

- ``RandomHyperplaneLSH``: the coverage of the embedding space a user's answers occupy, as the
  fraction of 2^k buckets of a random-hyperplane LSH (k hyperplanes through the origin, drawn from
  the server's secret; 2^12 buckets by default, as its Sec. 4.1 chose);
- ``b4b_sigma``: the exponential cost of Eq. 1, sigma = lam * (exp(ln(alpha/lam) * c / beta) - 1),
  mapping coverage c to the standard deviation of the Gaussian noise added to the answers
  (defaults lam = 1e-6, alpha = 1, beta = 0.8 of its Sec. 4.2 and Table 1);
- ``UserTransform``: per-user transformations of the answers (affine, pad, shuffle, binary; its
  Sec. 3.4 and App. C.3) derived from the server's secret and the user id, so that a sybil's
  accounts answer in different spaces and must be remapped before their answers can be pooled.

Both defences are per-user: they are called with the user's ``Account`` (see ``accounts``), which
holds the coverage (in memory for a local victim, in ``sleuth serve``'s database online).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from sleuth.data import load_images, to_float
from sleuth.steal.accounts import Account, derive_seed
from sleuth.steal.params import Described, check, integer, number, randn, store

MAX_LSH_BITS = 24


@lru_cache(maxsize=64)
def _hyperplanes(secret: bytes, dim: int, bits: int) -> torch.Tensor:
    rng = np.random.default_rng(derive_seed(secret, "lsh", str(dim), str(bits)))
    return torch.from_numpy(rng.standard_normal((dim, bits)).astype(np.float32))


@dataclass(frozen=True)
class RandomHyperplaneLSH:
    """Sign-of-projection LSH (Charikar, STOC 2002): answers at a small angle from ``center``
    share a bucket.

    ``bits`` hyperplanes through ``center`` give ``2**bits`` buckets; their directions come from
    ``secret`` alone, so every worker and host of a server hashes alike and a user cannot know
    them. Representations after a ReLU all lie in the positive orthant, where hyperplanes through
    the origin barely separate anything (on the demo victim 4,000 images fill 1.6 % of 4,096
    buckets uncentred, 8.7 % centred): the owner centres them on the mean representation of
    data of its own (``lsh_center``); without a center they pass through the origin, as in B4B.
    """

    secret: bytes
    bits: int
    center: torch.Tensor | None = None

    @property
    def total(self) -> int:
        return 1 << self.bits

    def __call__(self, reps: torch.Tensor) -> np.ndarray:
        """The bucket (0 .. 2**bits - 1) of each row of ``reps``."""
        planes = _hyperplanes(self.secret, int(reps.shape[1]), self.bits)
        x = reps.detach().float().cpu()
        if self.center is not None:
            x = x - self.center.to(x)
        weights = torch.tensor([1 << i for i in range(self.bits)], dtype=torch.int64)
        return ((x @ planes > 0).to(torch.int64) * weights).sum(dim=1).numpy()


def lsh_center(encoder: Any, data: str, n: int = 2048, seed: int = 0) -> torch.Tensor:
    """The mean representation of up to ``n`` images of the owner's ``data`` (a dataset spec):
    the point the coverage hyperplanes pass through."""
    images = load_images(data, "train")
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    return encoder.represent(to_float(images.subset(pick).images)).mean(0)


def b4b_sigma(coverage: float, lam: float = 1e-6, alpha: float = 1.0, beta: float = 0.8) -> float:
    """B4B's Eq. 1: the noise sigma at ``coverage`` (0 at 0, alpha - lam at ``beta``)."""
    return lam * (math.exp(math.log(alpha / lam) * coverage / beta) - 1.0)


def lsh_bits(buckets: Any) -> int:
    """log2 of a bucket count, which must be a power of two from 2 to 2**24."""
    n = integer("buckets", buckets)
    check(
        2 <= n <= (1 << MAX_LSH_BITS) and not n & (n - 1),
        f"buckets must be a power of two from 2 to 2^{MAX_LSH_BITS}, got {n}",
    )
    return n.bit_length() - 1


def record_coverage(reps: torch.Tensor, account: Account, buckets: int) -> float:
    """Hash the answers about to be returned into the user's table; the coverage after them."""
    lsh = RandomHyperplaneLSH(account.secret, lsh_bits(buckets), account.center)
    return account.cover(lsh(reps), lsh.total)


@dataclass(frozen=True, kw_only=True, eq=False)
class B4B(Described):
    """B4B's noise defence: Gaussian noise of sigma = Eq. 1 at the user's coverage.

    ``apply_defences`` hashes each batch's clean answers into the user's bucket table first, so
    the batch is priced at the coverage it brings the user to (a batch is the unit the paper
    charges); the account is charged sigma per answer.
    """

    buckets: int = 4096
    lam: float = 1e-6
    alpha: float = 1.0
    beta: float = 0.8
    name = "b4b"
    per_user = True
    covers = True  # prices by the coverage of ``buckets`` buckets

    def __post_init__(self) -> None:
        store(self, "buckets", integer("buckets", self.buckets))
        lsh_bits(self.buckets)
        for key in ("lam", "alpha", "beta"):
            store(self, key, number(key, getattr(self, key)))
        check(self.alpha > 0, f"alpha must be > 0, got {self.alpha}")
        check(0 < self.lam < self.alpha, f"lam must be in (0, alpha), got {self.lam}")
        check(0 < self.beta <= 1, f"beta must be in (0, 1], got {self.beta}")

    def sigma(self, coverage: float) -> float:
        return b4b_sigma(coverage, self.lam, self.alpha, self.beta)

    def __call__(
        self, reps: torch.Tensor, images: torch.Tensor, gen: torch.Generator, account: Account
    ) -> torch.Tensor:
        sigma = self.sigma(account.coverage(self.buckets))
        account.charge(self.name, sigma * len(reps))
        return reps + sigma * randn(tuple(reps.shape), gen, reps)


# --- per-user transformations: one entry per kind (parameters, application, output size) -----


def _orthogonal(rng: np.random.Generator, dim: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))  # Haar-distributed (Mezzadri 2007)


def _affine(rng: np.random.Generator, dim: int, size: int) -> tuple[torch.Tensor, ...]:
    scales = np.exp(rng.uniform(-0.5, 0.5, dim))  # singular values in [e^-0.5, e^0.5]
    matrix = _orthogonal(rng, dim) * scales[None, :]
    shift = rng.standard_normal(dim)
    return torch.from_numpy(matrix.astype(np.float32)), torch.from_numpy(shift.astype(np.float32))


@dataclass(frozen=True)
class Kind:
    """One transformation: its per-user parameters, how it applies, and the size it answers."""

    params: Callable[[np.random.Generator, int, int], tuple[torch.Tensor, ...]]
    apply: Callable[[torch.Tensor, tuple[torch.Tensor, ...]], torch.Tensor]
    out_dim: Callable[[int, int], int] = lambda dim, size: dim


KINDS: dict[str, Kind] = {
    "affine": Kind(_affine, lambda x, p: x @ p[0].T.to(x) + p[1].to(x)),
    "pad": Kind(
        lambda rng, dim, size: (torch.from_numpy(rng.standard_normal(size).astype(np.float32)),),
        lambda x, p: torch.cat([x, p[0].to(x).expand(len(x), -1)], dim=1),
        lambda dim, size: dim + size,
    ),
    "shuffle": Kind(
        lambda rng, dim, size: (torch.from_numpy(rng.permutation(dim)),),
        lambda x, p: x[:, p[0].to(x.device)],
    ),
    "binary": Kind(
        lambda rng, dim, size: (
            torch.from_numpy(rng.standard_normal((dim, size)).astype(np.float32)),
        ),
        lambda x, p: (x @ p[0].to(x) > 0).to(x.dtype),
        lambda dim, size: size,
    ),
}


@lru_cache(maxsize=256)
def _user_params(secret: bytes, user: str, kind: str, dim: int, size: int) -> tuple[Any, ...]:
    """One user's parameters of ``kind`` (cached: a random orthogonal matrix per request would
    cost more than the answer)."""
    rng = np.random.default_rng(derive_seed(secret, "transform", user, kind, str(dim), str(size)))
    return KINDS[kind].params(rng, dim, size)


@dataclass(frozen=True, kw_only=True, eq=False)
class UserTransform(Described):
    """Per-user transformations of the answers, composed left to right (``kinds`` joined by
    ``+``): ``affine`` (a random well-conditioned linear map and shift), ``pad`` (``pad``
    constant features appended), ``shuffle`` (a permutation), ``binary`` (signs of ``binary``
    random projections). B4B's Table 1 uses affine; Fig. 5 finds binary the hardest to remap
    and the most costly to utility. Every parameter comes from the server's secret and the user
    id: stable across restarts and workers, different between users."""

    kinds: str = "affine+pad+shuffle"
    pad: int = 16
    binary: int = 1024
    name = "transform"
    per_user = True

    def __post_init__(self) -> None:
        names = tuple(k.strip().lower() for k in str(self.kinds).split("+"))
        unknown = [k for k in names if k not in KINDS]
        check(not unknown, f"kinds must be {'/'.join(KINDS)} joined by '+', got {self.kinds!r}")
        store(self, "kinds", "+".join(names))
        store(self, "pad", integer("pad", self.pad))
        store(self, "binary", integer("binary", self.binary))
        check(self.pad >= 1, f"pad must be >= 1, got {self.pad}")
        check(self.binary >= 1, f"binary must be >= 1, got {self.binary}")

    def _sizes(self) -> list[tuple[str, int]]:
        size = {"pad": self.pad, "binary": self.binary}
        return [(kind, size.get(kind, 0)) for kind in self.kinds.split("+")]

    def out_dim(self, dim: int) -> int:
        for kind, size in self._sizes():
            dim = KINDS[kind].out_dim(dim, size)
        return dim

    def __call__(
        self, reps: torch.Tensor, images: torch.Tensor, gen: torch.Generator, account: Account
    ) -> torch.Tensor:
        out = reps.detach().float()
        for kind, size in self._sizes():
            params = _user_params(account.secret, account.user, kind, int(out.shape[1]), size)
            out = KINDS[kind].apply(out, params)
        return out.to(reps.dtype)
