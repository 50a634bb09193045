"""What a verification test returns: a value, not a printout.

Reports serialise these, the verdict combines them and tests assert on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TestResult:
    """One hypothesis test of "the suspect was derived from the victim".

    ``p_value`` is one-sided, small meaning evidence of stealing. ``direction`` says which way the
    statistic points to stealing (+1: larger is more suspicious, -1: smaller), so the suspect's
    statistic can be placed among independent references' (``sleuth.verify.calibrate``).
    ``valid`` is False when an assumption of the test failed or it could not run; such a test
    never counts towards an accusation (``note`` says why).
    """

    __test__ = False  # not a pytest test class, despite the name

    name: str  # e.g. "watermark-binomial"
    family: str  # "watermark" | "dataset-inference" | "distance" | "noise"
    statistic: float  # the value the p-value is computed from (t, z, accuracy, ...)
    p_value: float
    effect: float  # effect size in the units named by effect_name
    effect_name: str
    n: int  # sample size behind the test
    alternative: str  # H1 in words
    compared: str  # what was compared with what
    score: float  # the per-model summary placed among references (accuracy, mean distance, ...)
    direction: int = 1
    valid: bool = True
    note: str = ""
    samples: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN becomes null), without the per-sample arrays (those go to evidence)."""
        return {
            "name": self.name,
            "family": self.family,
            "statistic": finite_or_none(self.statistic),
            "p_value": finite_or_none(self.p_value),
            "effect": finite_or_none(self.effect),
            "effect_name": self.effect_name,
            "n": int(self.n),
            "alternative": self.alternative,
            "compared": self.compared,
            "score": finite_or_none(self.score),
            "direction": self.direction,
            "valid": self.valid,
            "note": self.note,
        }


def finite_or_none(x: float | None) -> float | None:
    """A float for JSON: NaN and infinities (which JSON cannot hold) become None."""
    return None if x is None or not math.isfinite(x) else float(x)


def format_p(p: float | None) -> str:
    """A p-value for people: scientific below 0.001, three decimals above, "-" when missing."""
    return "-" if p is None else f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def invalid(name: str, family: str, note: str, *, n: int = 0, direction: int = 1) -> TestResult:
    """A test that could not run or whose assumptions failed: it never supports an accusation."""
    nan = float("nan")
    return TestResult(
        name=name,
        family=family,
        statistic=nan,
        p_value=1.0,
        effect=nan,
        effect_name="",
        n=n,
        alternative="",
        compared="",
        score=nan,
        direction=direction,
        valid=False,
        note=note,
    )
