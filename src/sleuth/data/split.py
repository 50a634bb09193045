"""Index splits: the fixed hold-out of datasets without a test part, the owner's private/public."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sleuth.data.errors import DataError

HOLDOUT_FRACTION = 0.2
HOLDOUT_SEED = 0


def holdout(n: int, labels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) indices: 20% of each class (of all, unlabelled) drawn with seed 0."""
    rng = np.random.default_rng(HOLDOUT_SEED)
    groups = (
        [np.arange(n)]
        if labels is None
        else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    )
    test = np.zeros(n, bool)
    for group in groups:
        test[rng.permutation(group)[: round(HOLDOUT_FRACTION * len(group))]] = True
    return np.flatnonzero(~test), np.flatnonzero(test)


@dataclass(frozen=True, eq=False)
class Split:
    """The owner's split of a train part: private (trained on) and public (held out) indices."""

    private: np.ndarray  # int64, sorted
    public: np.ndarray  # int64, sorted
    seed: int
    public_fraction: float

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Split)
            and np.array_equal(self.private, other.private)
            and np.array_equal(self.public, other.public)
            and (self.seed, self.public_fraction) == (other.seed, other.public_fraction)
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers, for JSON and ``torch.save`` read back with weights_only."""
        return {
            "private": self.private.tolist(),
            "public": self.public.tolist(),
            "seed": self.seed,
            "public_fraction": self.public_fraction,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Split:
        """Inverse of ``to_dict``; other keys (such as the data spec) are ignored."""
        try:
            return cls(
                np.asarray(d["private"], np.int64).reshape(-1),
                np.asarray(d["public"], np.int64).reshape(-1),
                int(d["seed"]),
                float(d["public_fraction"]),
            )
        except KeyError as exc:
            raise DataError(f"split record is missing {exc}") from None
        except (TypeError, ValueError) as exc:
            raise DataError(f"bad split record: {exc}") from None


def make_split(n: int, public_fraction: float, seed: int) -> Split:
    """Split ``range(n)`` by a seeded permutation: the same arguments, the same split anywhere."""
    if not 0 < public_fraction < 1:
        raise DataError(f"public fraction must be strictly between 0 and 1, got {public_fraction}")
    if seed < 0:
        raise DataError(f"seed must be non-negative, got {seed}")
    n_public = round(n * public_fraction)
    if not 0 < n_public < n:
        raise DataError(
            f"cannot split {n} images into non-empty private and public parts "
            f"at public fraction {public_fraction}"
        )
    order = np.random.default_rng(seed).permutation(n)
    return Split(np.sort(order[n_public:]), np.sort(order[:n_public]), seed, float(public_fraction))
