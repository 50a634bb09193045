"""Index splits: the fixed hold-out of datasets without a test part, the owner's private/public."""

from __future__ import annotations

import re
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


_HEX64 = re.compile(r"[0-9a-f]{64}")


def _indices(value: Any, name: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)):
        raise DataError(f"split {name} must be a list of indices, not a {type(value).__name__}")
    if not all(type(i) is int and 0 <= i < 1 << 63 for i in value):  # bool is not an index
        raise DataError(f"split {name} must hold non-negative 64-bit integers only")
    return tuple(value)


def _text(d: Mapping[str, Any], name: str) -> str:
    value = d[name]
    if not isinstance(value, str) or not value:
        raise DataError(f"split {name} must be a non-empty string, not a {type(value).__name__}")
    return value


@dataclass(frozen=True)
class OwnerSplit:
    """The owner key's record of a split: which indices of which data's part are private
    (trained on) and public (held out), and the fingerprint of the images they index."""

    data_spec: str  # the --data spec the owner trained with
    part: str  # the part split ("train")
    fingerprint: str  # hex SHA-256 of that part (``sleuth.data.fingerprint``)
    private: tuple[int, ...]
    public: tuple[int, ...]
    seed: int
    public_fraction: float

    @classmethod
    def of(cls, split: Split, *, data_spec: str, part: str, fingerprint: str) -> OwnerSplit:
        """``split`` of ``part`` of the data at ``data_spec``, whose fingerprint is given."""
        return cls.from_dict(
            {"data_spec": data_spec, "part": part, "fingerprint": fingerprint, **split.to_dict()}
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain lists, strings and numbers (the owner key's ``split``, docs/formats.md)."""
        return {
            "data_spec": self.data_spec,
            "part": self.part,
            "fingerprint": self.fingerprint,
            "private": list(self.private),
            "public": list(self.public),
            "seed": self.seed,
            "public_fraction": self.public_fraction,
        }

    @classmethod
    def from_dict(cls, d: Any) -> OwnerSplit:
        """Inverse of ``to_dict``, checking every field's type: a hostile record is refused in
        one line. Other keys are ignored."""
        if not isinstance(d, Mapping):
            raise DataError(f"split must be a record, not a {type(d).__name__}")
        try:
            fp = _text(d, "fingerprint")
            if not _HEX64.fullmatch(fp):
                raise DataError("split fingerprint must be 64 lowercase hex digits")
            seed, fraction = d["seed"], d["public_fraction"]
            if type(seed) is not int or seed < 0:  # bool is not a seed
                raise DataError("split seed must be a non-negative integer")
            if type(fraction) not in (int, float) or not 0 < fraction < 1:
                raise DataError("split public_fraction must be a number between 0 and 1")
            return cls(
                data_spec=_text(d, "data_spec"),
                part=_text(d, "part"),
                fingerprint=fp,
                private=_indices(d["private"], "private"),
                public=_indices(d["public"], "public"),
                seed=seed,
                public_fraction=float(fraction),
            )
        except KeyError as exc:
            raise DataError(f"split record is missing {exc}") from None


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
