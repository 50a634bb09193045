"""From test results to one defensible verdict per victim.

The rule (docs/verification.md gives the reasoning):

1. A test counts only if it ran and its assumptions held (``valid``).
2. With at least ``MIN_REFERENCES`` independent references, a test's decision p-value is the larger
   of its analytic p-value and its reference-calibrated p-value (an intersection-union test: the
   suspect must beat the test's own null *and* look unlike every independently trained encoder).
   Tests whose only meaningful null is "like the references" (distances, alignment, noise) cannot
   count without references.
3. Holm's correction runs over every counted test of every victim checked in one run, at ``alpha``.
4. ``stolen`` when rejections come from at least two families of evidence (watermark,
   dataset inference, distance, alignment, noise): no verdict rests on one kind of evidence that
   a careful thief could switch off. ``not_stolen`` when at least two families were counted and
   no test rejects even at the looser family-wise level ``CLEAR`` (0.05): a suspect with some
   evidence against it is not cleared. Anything else is ``inconclusive``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from statsmodels.stats.multitest import multipletests

from sleuth.verify import stats
from sleuth.verify.result import TestResult, finite_or_none

MIN_REFERENCES = 3
CLEAR = 0.05  # family-wise level below which evidence, even if not accusing, blocks clearing
NEEDS_REFERENCES = frozenset({"distance", "alignment", "noise"})
# Which statsmodels power model fits a test: one-sample/paired t or two-sample t.
POWER_KIND = {
    "watermark-ttest": "one-sample",
    "di-head-loss": "two-sample",
    "di-gmm": "two-sample",
    "distance-l2": "one-sample",
    "distance-cosine": "one-sample",
    "procrustes": "one-sample",
    "noise-sensitivity": "one-sample",
}
VERDICTS = ("stolen", "not_stolen", "inconclusive")
DECISION_RULE = (
    "A test counts if it ran and its assumptions held. With at least "
    f"{MIN_REFERENCES} independent references "
    "its p-value is the larger of its analytic p and its reference-calibrated p (distance, "
    "alignment and noise tests count only with references). Holm's correction runs over every "
    "counted test of every victim at alpha. stolen: rejections from at least two families of "
    f"evidence; not_stolen: at least two families counted and no adjusted p below {CLEAR}; "
    "otherwise inconclusive."
)


@dataclass
class Decision:
    """One test of one suspect against one victim, with its calibration and decision."""

    result: TestResult
    reference_scores: list[float] = field(default_factory=list)
    p_empirical: float | None = None
    p_reference: float | None = None
    counted: bool = False
    p_decision: float = 1.0
    p_adjusted: float = float("nan")
    rejected: bool = False
    power: float | None = None
    n_for_power: int | None = None
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        num = finite_or_none
        return {
            **self.result.to_dict(),
            "reference_scores": [num(s) for s in self.reference_scores],
            "p_empirical": num(self.p_empirical),
            "p_reference": num(self.p_reference),
            "counted": self.counted,
            "p_decision": num(self.p_decision),
            "p_adjusted": num(self.p_adjusted),
            "rejected": self.rejected,
            "power": num(self.power),
            "n_for_power_0.8": self.n_for_power,
            "why": self.why,
        }


def calibrate_decision(result: TestResult, reference_scores: list[float], alpha: float) -> Decision:
    """Place the suspect among references and choose the p-value that enters Holm."""
    d = Decision(result, reference_scores)
    k = len(reference_scores)
    if k:
        d.p_empirical, d.p_reference = stats.calibrate(
            result.score, reference_scores, result.direction
        )
    if not result.valid:
        d.why = f"not counted: {result.note}"
    elif k >= MIN_REFERENCES and d.p_reference is not None and not math.isnan(d.p_reference):
        d.counted, d.p_decision = True, max(result.p_value, d.p_reference)
    elif result.family in NEEDS_REFERENCES:
        d.why = f"not counted: needs at least {MIN_REFERENCES} independent references"
    else:
        d.counted, d.p_decision = True, result.p_value
        d.why = "no references: analytic null only"
    kind = POWER_KIND.get(result.name)
    if kind and result.valid and result.n > 1 and math.isfinite(result.statistic):
        # standardised effect towards stealing, recovered from the t statistic
        t = result.direction * result.statistic
        effect = t / math.sqrt(result.n if kind == "one-sample" else result.n / 2)
        d.power, d.n_for_power = stats.power_and_n(effect, result.n, alpha, kind)
    return d


def adjust(decisions: list[Decision], alpha: float) -> None:
    """Holm over every counted decision (all tests, all victims), in place."""
    counted = [d for d in decisions if d.counted]
    if not counted:
        return
    reject, adjusted, _, _ = multipletests([d.p_decision for d in counted], alpha, method="holm")
    for d, r, p in zip(counted, reject, adjusted, strict=True):
        d.rejected, d.p_adjusted = bool(r), float(p)


def verdict(decisions: list[Decision]) -> tuple[str, str]:
    """The verdict for one victim from its (already adjusted) decisions, and why."""
    counted = [d for d in decisions if d.counted]
    families = {d.result.family for d in counted}
    rejecting = sorted({d.result.family for d in counted if d.rejected})
    if len(rejecting) >= 2:
        return "stolen", f"independent evidence from {', '.join(rejecting)}"
    if rejecting:
        return "inconclusive", (
            f"only {rejecting[0]} evidence rejects; one family alone does not accuse"
        )
    suggestive = [d.result.name for d in counted if d.p_adjusted < CLEAR]
    if suggestive:
        return "inconclusive", (
            f"no test rejects at the chosen level, but {', '.join(suggestive)} would at "
            f"{CLEAR}: not enough to accuse, too much to clear"
        )
    if len(families) >= 2:
        return "not_stolen", f"no test rejects ({len(counted)} tests in {len(families)} families)"
    return "inconclusive", "too few valid tests to clear the suspect"
