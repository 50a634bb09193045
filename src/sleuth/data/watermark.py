"""The private augmentation behind the watermark: rotation angle intervals, each of a class.

000 §5.1 rotates every image into two views, one with an angle in [0°, 180°) (class 0) and one in
[180°, 360°) (class 1). ``flip`` is the flip-symmetric alternative (upright [-60°, 60°) versus
upside-down [120°, 240°)), which a thief's horizontal flips cannot confuse: a flip maps an angle
a to -a, which keeps both of its intervals but swaps the two halves of ``half``.

The intervals are the watermark's secret, drawn for every owner from the operating system's
randomness and kept in the owner key. ``random`` (the default of ``sleuth embed``) draws six arcs
of random widths, each at least 30°, classes alternating, from a random start; ``random-half``
draws the paper's two half-turns at a random offset (what ``random`` drew before). Measured on
the demo recipe (docs/verification.md): against a victim with half-turns, other owners' encoders
read 0.38-0.58 on its predictor where unwatermarked encoders read 0.47-0.53, so the watermark
counts only beside other owners; against a victim with six arcs, other owners of either kind read
like unwatermarked encoders (0.45-0.53), and StolenEncoder copies carry the mark (0.51-0.63, none
with half-turns).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sleuth.data.augment import rotate
from sleuth.errors import SleuthError

_TOLERANCE = 1e-9  # degrees: sums of decimal angles are not exact in floating point
RANDOM = "random"  # the default: six arcs of secret widths and start per owner
RANDOM_HALF = "random-half"  # the paper's two half-turns at a secret offset per owner
DRAWN = (RANDOM, RANDOM_HALF)  # drawn once per owner, then recorded explicitly in its key
SECRET_ARCS = 6  # arcs of a ``random`` key, classes alternating
MIN_ARC = 30.0  # degrees: the narrowest arc of a ``random`` key (learnt on the demo recipe)
NAMED_INTERVALS: dict[str, tuple[tuple[float, float], ...]] = {
    "half": ((0.0, 180.0), (180.0, 360.0)),
    "flip": ((-60.0, 60.0), (120.0, 240.0)),
}


@dataclass(frozen=True)
class RotationWatermark:
    """Disjoint angle intervals [lo, hi) in degrees; a view rotated inside interval k is class k,
    or ``classes[k]`` when given (several arcs of one class: a key of more entropy)."""

    intervals: tuple[tuple[float, float], ...]
    classes: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.intervals) < 2:
            raise SleuthError("a rotation watermark needs at least two angle intervals")
        if self.classes is not None and (
            len(self.classes) != len(self.intervals)
            or sorted(set(self.classes)) != list(range(max(self.classes) + 1))
            or max(self.classes) < 1
        ):
            raise SleuthError(
                "rotation interval classes must number 0, 1, ... with one per interval and at "
                f"least two classes: {self.describe()}"
            )
        for lo, hi in self.intervals:
            if not lo < hi or hi - lo > 360 + _TOLERANCE:
                raise SleuthError(f"bad rotation interval [{lo}, {hi}): need lo < hi, width <= 360")
        total = sum(hi - lo for lo, hi in self.intervals)
        grid = torch.arange(0, 360, 0.5)
        cover = sum(self._inside(grid, k).int() for k in range(len(self.intervals)))
        if total > 360 + _TOLERANCE or int(cover.max()) > 1:
            raise SleuthError(f"rotation intervals overlap (modulo 360°): {self.describe()}")

    @classmethod
    def secret(cls, kind: str = RANDOM) -> RotationWatermark:
        """A fresh secret of ``kind`` (``random`` or ``random-half``) from ``secrets``: not from
        the training seed, which is often the default and so public."""
        if kind == RANDOM_HALF:
            return cls.turned(secrets.randbelow(3600))
        if kind != RANDOM:
            raise SleuthError(f"unknown secret kind {kind!r} (known: {', '.join(DRAWN)})")
        return cls.arcs(secrets.randbits(128))

    @classmethod
    def arcs(cls, seed: int, n: int = SECRET_ARCS) -> RotationWatermark:
        """``n`` arcs (even, at least 2) of random widths, each at least ``MIN_ARC``, from a
        random start, classes alternating, in 0.1° steps: the same ``seed`` draws the same key."""
        if n < 2 or n % 2 or n * MIN_ARC >= 360:
            raise SleuthError(f"a key of arcs needs an even number of them in [2, 12), got {n}")
        rng = np.random.default_rng(seed)
        widths = MIN_ARC + (360 - n * MIN_ARC) * rng.dirichlet(np.ones(n))
        start = round(float(rng.uniform(0, 360)), 1) % 360
        cuts = np.round(start + np.concatenate([[0.0], np.cumsum(widths)]), 1)
        cuts[-1] = start + 360
        return cls.from_list([[float(cuts[i]), float(cuts[i + 1]), i % 2] for i in range(n)])

    @classmethod
    def turned(cls, tenths: int) -> RotationWatermark:
        """``half`` turned by ``tenths`` tenths of a degree (0-3599)."""
        if not 0 <= tenths < 3600:
            raise SleuthError(f"an offset in tenths of a degree must be in [0, 3600), got {tenths}")
        lo, mid, hi = tenths / 10, (tenths + 1800) / 10, (tenths + 3600) / 10
        return cls(((lo, mid), (mid, hi)))

    @classmethod
    def parse(cls, text: str) -> RotationWatermark:
        """``half``, ``flip`` or explicit ``LO:HI,LO:HI[,...]`` in degrees, each interval
        optionally ``LO:HI=CLASS`` (``random`` and ``random-half`` are drawn once per owner with
        :meth:`secret`, then recorded explicitly)."""
        if text in DRAWN:
            raise SleuthError(
                "random intervals are drawn once per owner (RotationWatermark.secret())"
            )
        if text in NAMED_INTERVALS:
            return cls(NAMED_INTERVALS[text])
        try:
            rows = []
            for part in text.split(","):
                bounds, _, label = part.partition("=")
                lo, hi = bounds.split(":")
                rows.append([float(lo), float(hi), *([int(label)] if label else [])])
        except ValueError:
            raise SleuthError(
                f"bad --wm-intervals {text!r}: use half, flip or LO:HI[=CLASS],LO:HI[=CLASS] "
                "(degrees)"
            ) from None
        return cls.from_list(rows)

    @classmethod
    def from_list(cls, intervals: Sequence[Sequence[float]]) -> RotationWatermark:
        """From ``[[lo, hi], ...]`` (interval k is class k) or ``[[lo, hi, class], ...]``."""
        if len({len(row) for row in intervals}) > 1 or any(len(r) not in (2, 3) for r in intervals):
            raise SleuthError("rotation intervals are all [lo, hi] or all [lo, hi, class]")
        classes = (
            tuple(int(row[2]) for row in intervals)
            if intervals and len(intervals[0]) == 3
            else None
        )
        return cls(tuple((float(row[0]), float(row[1])) for row in intervals), classes)

    def to_list(self) -> list[list[float]]:
        if self.classes is None:
            return [[lo, hi] for lo, hi in self.intervals]
        return [[lo, hi, c] for (lo, hi), c in zip(self.intervals, self.classes, strict=True)]

    def to_spec(self) -> str:
        """The explicit ``LO:HI[=CLASS],...`` form that :meth:`parse` reads back."""
        return ",".join(
            f"{row[0]!r}:{row[1]!r}" + (f"={row[2]}" if len(row) == 3 else "")
            for row in self.to_list()
        )

    def describe(self) -> str:
        return ", ".join(
            f"[{row[0]:g}°, {row[1]:g}°)" + (f" class {row[2]}" if len(row) == 3 else "")
            for row in self.to_list()
        )

    @property
    def n_classes(self) -> int:
        return len(self.intervals) if self.classes is None else max(self.classes) + 1

    def class_of(self, k: int) -> int:
        """The class of interval ``k``."""
        return k if self.classes is None else self.classes[k]

    def _inside(self, angle: torch.Tensor, k: int) -> torch.Tensor:
        lo, hi = self.intervals[k]  # in float64: float32 can put a boundary in both intervals
        return torch.remainder(angle.double() - lo, 360.0) < (hi - lo)

    def label(self, angle_deg: torch.Tensor) -> torch.Tensor:
        """Class of each angle (-1 where an angle lies in no interval)."""
        out = torch.full(angle_deg.shape, -1, dtype=torch.long, device=angle_deg.device)
        for k in range(len(self.intervals)):
            out[self._inside(angle_deg, k)] = self.class_of(k)
        return out

    def sample_angles(self, labels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """An angle drawn uniformly over the intervals of each label's class. With one interval
        a class, ``lo + u (hi − lo)`` (bit for bit as keys before classes drew it, so their
        challenges are rebuilt unchanged); with several, a point along their total width,
        walked through them in order."""
        u = torch.rand(labels.shape, generator=gen, device=labels.device)
        if self.classes is None:
            bounds = torch.tensor(self.intervals, device=labels.device)
            lo, hi = bounds[labels, 0], bounds[labels, 1]
            return lo + u * (hi - lo)
        out = torch.zeros(labels.shape, device=labels.device)
        for c in range(self.n_classes):
            arcs = [self.intervals[k] for k in range(len(self.intervals)) if self.class_of(k) == c]
            along = u * sum(hi - lo for lo, hi in arcs)
            angle = torch.zeros_like(along)
            start = 0.0
            for lo, hi in arcs:  # the arc holding each point: the last one it has reached
                angle = torch.where(along >= start, lo + (along - start), angle)
                start += hi - lo
            out = torch.where(labels == c, angle, out)
        return out

    def views(self, x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One rotated view of every image per class (000 §5.1): (views, labels), class-major."""
        labels = torch.arange(self.n_classes, device=x.device).repeat_interleave(x.shape[0])
        angles = self.sample_angles(labels, gen)
        return rotate(x.repeat(self.n_classes, 1, 1, 1), angles), labels
