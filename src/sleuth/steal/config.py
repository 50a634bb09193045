"""The settings of one stealing run (``sleuth steal``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sleuth.errors import SleuthError

DISTANCES = ("l2", "cosine")


@dataclass(frozen=True)
class StealConfig:
    """Defaults are the CPU preset: 002 §V-A2's λ = 20, lr 1e-3, batch 64, with fewer epochs."""

    method: str = "direct"
    loss: str = "mse"
    queries: int = 2000
    data: str = "demo"
    part: str = "train"
    public_split: bool = False
    arch: str | None = None  # None: the victim's architecture when known, else the default
    rep_dim: int | None = None  # access-head only, when the victim's size is unknown
    epochs: int = 60
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    lam: float = 20.0  # StolenEncoder's λ
    distance: str = "l2"  # StolenEncoder's d
    head_epochs: int = 30  # recreate-head: epochs to recreate the victim's head first
    rotate: bool = False  # an adaptive thief: attacker-side views also get a random rotation
    augment_queries: bool = False  # direct, one-view losses: query an augmented view, not x
    query_aug: bool = False  # stolenencoder: query every augmented view too (002's query-aug)
    temperature: float | None = None  # contrastive losses: None keeps each loss's default
    sybils: int = 1  # accounts the budget is split over (B4B's sybil attack)
    sybil_overlap: int | None = None  # images sent through every account; None: budget/(5 K)
    sybil_mapper: str = "linear"  # how other accounts' answers are mapped onto account 0's

    def __post_init__(self) -> None:
        checks = {
            "queries": self.queries >= 2,
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 2,
            "lr": self.lr > 0,
            "seed": 0 <= self.seed < 2**63 - 64,  # torch seeds are 64-bit; sybils add their index
            "lam": self.lam >= 0,
            "distance": self.distance in DISTANCES,
            "head_epochs": self.head_epochs >= 1,
            "augment_queries": not self.augment_queries or self.method == "direct",
            "query_aug": not self.query_aug or self.method == "stolenencoder",
            "sybils": self.sybils >= 1,
            "sybil_overlap": self.sybil_overlap is None or self.sybil_overlap >= 2,
            "sybil_mapper": self.sybil_mapper in ("linear", "mlp"),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise SleuthError(f"invalid steal settings: {values}")
        if self.attack_queries < 2:
            raise SleuthError(
                f"the sybils' overlap ({self.sybils} x {self.overlap} queries) leaves "
                f"{self.attack_queries} of --queries {self.queries} to the attack"
            )

    @property
    def overlap(self) -> int:
        """Images a sybil attack sends through every account to learn its mappers (0: none)."""
        if self.sybils < 2:
            return 0
        return self.sybil_overlap or max(2, self.queries // (5 * self.sybils))

    @property
    def attack_queries(self) -> int:
        """The budget left to the attack itself once the sybils' overlap is paid."""
        return self.queries - self.overlap * self.sybils

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
