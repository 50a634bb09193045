"""The sybil attack on per-user defences (Dubinski et al., NeurIPS 2023, Sec. 4.3 and App. D).

A thief splits the budget over K accounts, so that each account's coverage (and so its B4B noise
or proof-of-work price) stays low. Each account answers in its own transformed space, so the
thief first sends the same ``overlap`` images through every account and learns a mapper from
account k's answers to account 0's (linear least squares, or a small MLP), then sends each
further batch split over the accounts and pools the answers in account 0's space.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from sleuth.errors import SleuthError
from sleuth.steal.oracle import Oracle


def fit_linear(
    source: torch.Tensor, target: torch.Tensor, *, seed: int = 0
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Least-squares affine map from ``source`` rows to ``target`` rows, with a 1e-6 ridge so an
    overlap smaller than the answer size still fits (deterministic: ``seed`` is not used)."""
    x = torch.cat([source.double(), torch.ones(len(source), 1, dtype=torch.float64)], dim=1)
    gram = x.T @ x + 1e-6 * torch.eye(x.shape[1], dtype=torch.float64)
    weights = torch.linalg.solve(gram, x.T @ target.double())

    def mapper(answers: torch.Tensor) -> torch.Tensor:
        ones = torch.ones(len(answers), 1, dtype=torch.float64)
        return (torch.cat([answers.double(), ones], dim=1) @ weights).float()

    return mapper


def fit_mlp(
    source: torch.Tensor, target: torch.Tensor, *, seed: int = 0, epochs: int = 300
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A one-hidden-layer MLP (width 2 x the target's size) trained with MSE on the overlap;
    inputs and outputs standardised by the overlap's statistics."""
    torch.manual_seed(seed)
    mu_s, sd_s = source.mean(0), source.std(0).clamp_min(1e-6)
    mu_t, sd_t = target.mean(0), target.std(0).clamp_min(1e-6)
    net = nn.Sequential(
        nn.Linear(source.shape[1], 2 * target.shape[1]),
        nn.ReLU(),
        nn.Linear(2 * target.shape[1], target.shape[1]),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xs, ys = (source - mu_s) / sd_s, (target - mu_t) / sd_t
    for _ in range(epochs):
        opt.zero_grad()
        loss = nn.functional.mse_loss(net(xs), ys)
        loss.backward()
        opt.step()
    net.eval()

    def mapper(answers: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return net((answers - mu_s) / sd_s) * sd_t + mu_t

    return mapper


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean of 1 - cos(a_i, b_i) over rows."""
    return float((1 - nn.functional.cosine_similarity(a, b)).mean())


MAPPERS: dict[str, Callable[..., Callable[[torch.Tensor], torch.Tensor]]] = {
    "linear": fit_linear,
    "mlp": fit_mlp,
}


@dataclass
class SybilOracle:
    """K accounts seen as one oracle answering in account 0's space (see the module docstring).

    ``calibrate`` must run first; ``remap_error`` is then B4B's Fig. 5 metric: the mean cosine
    distance between account 0's answers and another account's remapped ones, on a held-out
    fifth of the overlap that a mapper fitted on the rest never saw (the mappers used are then
    refitted on all of it)."""

    accounts: Sequence[Oracle]
    mapper: str = "linear"
    seed: int = 0
    maps: list[Callable[[torch.Tensor], torch.Tensor]] = field(default_factory=list)
    remap_error: float | None = None
    HELD_OUT = 0.2

    def __post_init__(self) -> None:
        if len(self.accounts) < 2:
            raise SleuthError("a sybil attack needs at least 2 accounts")
        if self.mapper not in MAPPERS:
            raise SleuthError(f"unknown mapper {self.mapper!r} (known: {', '.join(MAPPERS)})")
        self.rep_dim = self.accounts[0].rep_dim
        self.digest = "sybil:" + ",".join(a.digest for a in self.accounts)

    def calibrate(self, images: torch.Tensor) -> None:
        """Send ``images`` through every account and fit the mappers onto account 0."""
        base = self.accounts[0].answer(images)
        cut = max(1, int(len(images) * (1 - self.HELD_OUT)))
        self.maps = [lambda a: a]
        errors = []
        for k, account in enumerate(self.accounts[1:], start=1):
            theirs = account.answer(images)
            fit = MAPPERS[self.mapper]
            if cut < len(images):
                held = fit(theirs[:cut], base[:cut], seed=self.seed + k)(theirs[cut:])
                errors.append(cosine_distance(held, base[cut:]))
            self.maps.append(fit(theirs, base, seed=self.seed + k))
        self.remap_error = sum(errors) / len(errors) if errors else None

    def answer(self, images: torch.Tensor) -> torch.Tensor:
        if not self.maps:
            raise SleuthError("the sybil oracle answers only after calibrate()")
        parts = torch.arange(len(images)) % len(self.accounts)
        out = torch.empty(len(images), self.rep_dim)
        for k, (account, mapper) in enumerate(zip(self.accounts, self.maps, strict=True)):
            idx = (parts == k).nonzero().squeeze(1)
            if len(idx):
                out[idx] = mapper(account.answer(images[idx]))
        return out
