"""From test results to one defensible verdict per victim.

The rule (docs/verification.md gives the reasoning):

1. A test counts only if it ran, its assumptions held (``valid``) and the registry counts it (a
   second view of the same trials, such as the watermark's t-test beside its binomial test, is
   shown but never enters the correction twice).
2. With at least ``MIN_REFERENCES`` independent references, a test's decision p-value is the larger
   of its analytic p-value and its reference-calibrated p-value (an intersection-union test: the
   suspect must beat the test's own null *and* look unlike every independently trained encoder);
   a test with no analytic null (CKA) uses the calibrated p. Every test counts only with
   references; the watermark's, only with at least ``MIN_ROTATION_AWARE`` references trained
   with rotation watermarks of their own; dataset inference's (``needs_victim_effect``), only
   where the victim itself, judged by the same test, rejects at the level the tests run at: a
   test that cannot see the victim's training set in the victim has no power against a copy,
   and only adds a factor to Holm's correction. (Dataset inference once counted without
   references on its analytic p; with the gate it cannot, since the victim and the suspect are
   scored on the same images and the gate would select the suspect's analytic p too.)
3. Holm's correction runs over every counted test of every victim checked in one run, at ``alpha``.
4. ``stolen`` when rejections come from at least two families of evidence: no verdict rests on
   one kind of evidence that a careful thief could switch off. ``not_stolen`` only with evidence
   of independence: nothing below the looser family-wise level ``CLEAR``, the suspect's score
   typical of the references in every counted test (two-sided, so a copy that is *unlike* every
   independent model is not cleared) with references enough to have seen a suspect
   ``CLEAR_MAX_ATYPICAL`` sds away, and tests in two families that would have seen a copy.
   Tests that only guard a clearance (``clears_only``: the shifted images, the basis tests
   that see a thief's rotation or permutation of his outputs, and noise sensitivity, whose H1
   an encoder trained on fewer images also shows) join the typicality check and
   never accuse, and a clearance needs at least one shifted-image test to have run. Anything
   else is ``inconclusive``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sleuth.verify import stats
from sleuth.verify.evidence import TestInfo
from sleuth.verify.result import TestResult, finite_or_none

MIN_REFERENCES = 3
# The watermark tests count only with at least this many rotation-aware references (encoders
# trained with a rotation watermark of their own: other owners). Measured on the full suite:
# another owner's encoder sits 3-4 plain references' sds above them on the victim's predictor,
# and against plain references alone it was accused at 2,000 samples; with two other owners
# among the references it was not (docs/verification.md).
MIN_ROTATION_AWARE = 2
CLEAR = 0.05  # family-wise level below which evidence, even if not accusing, blocks clearing
# A cleared suspect must have faced tests that would have seen a copy: in at least two families a
# counted test must reject a score this many reference sds from the references' mean. The bench's
# weakest caught copies sit at 20 or more sds in their strongest test (docs/verification.md).
CLEAR_MAX_SHIFT = 10.0
# ... and the typicality check must have been able to see a suspect this many reference sds from
# the references, in either direction: the bench's copy least like the victim (symmetrized, demo
# recipe) sits 3.5 sds from twenty references and 4.4 from six in its most atypical test, and
# six references cannot flag anything nearer than 5 sds (eight counted tests, noise sensitivity,
# four shifted and two of the basis: at least 11 references needed).
CLEAR_MAX_ATYPICAL = 4.0
VERDICTS = ("stolen", "not_stolen", "inconclusive")
DECISION_RULE = (
    "A test counts if it ran, its assumptions held and it is not a duplicate of another test's "
    f"evidence. With at least {MIN_REFERENCES} independent references its p-value is the larger "
    "of its analytic p and its reference-calibrated p (tests without an analytic null use the "
    "calibrated p; every test counts only with references; "
    f"the watermark tests count only with at least {MIN_ROTATION_AWARE} references that carry a "
    "rotation watermark of their own; the dataset-inference tests only where the victim itself, "
    "as the suspect, rejects at alpha). "
    "Holm's correction runs over every counted test of every victim at alpha. stolen: "
    "rejections from at least two families of evidence. not_stolen: no adjusted p below "
    f"{CLEAR}, the suspect's score typical of the references in every counted test (two-sided, "
    f"on the smaller of their standard deviation and a robust scale, Holm at {CLEAR}) with "
    f"enough references that a score {CLEAR_MAX_ATYPICAL:g} reference standard deviations away "
    "would have been atypical, and in at least two families a test that would have rejected a "
    f"score {CLEAR_MAX_SHIFT:g} reference standard deviations away; tests on shifted images, "
    "of the output basis (a rotated or permuted basis) and of noise sensitivity never accuse "
    "and join the typicality "
    "check, and at least one shifted-image test must have run. Otherwise inconclusive."
)


@dataclass
class Decision:
    """One test of one suspect against one victim, with its calibration and decision."""

    result: TestResult
    reference_scores: list[float] = field(default_factory=list)
    p_empirical: float | None = None
    p_reference: float | None = None
    p_typical: float | None = None  # two-sided: is the suspect among the references?
    shift_needed: float | None = None  # reference sds from their mean that would reject
    shift_atypical: float | None = None  # reference sds, either way, that would be atypical
    spread_floor: float = 0.0  # the finest the score is measured (a proportion's trials)
    # references spread as these that would make it reject at Holm's first step (None: none would)
    references_needed: int | None = None
    victim_p: float | None = None  # the same test with the victim as the suspect (its gate)
    counted: bool = False
    guards: bool = False  # never accuses; its typicality joins the clearance check
    p_decision: float = 1.0
    p_adjusted: float = float("nan")
    rejected: bool = False
    atypical: bool = False
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
            "p_typical": num(self.p_typical),
            "shift_needed": num(self.shift_needed),
            "shift_atypical": num(self.shift_atypical),
            "references_needed": self.references_needed,
            "victim_p": num(self.victim_p),
            "counted": self.counted,
            "guards": self.guards,
            "p_decision": num(self.p_decision),
            "p_adjusted": num(self.p_adjusted),
            "rejected": self.rejected,
            "atypical": self.atypical,
            "power": num(self.power),
            "n_for_power_0.8": self.n_for_power,
            "why": self.why,
        }


def trial_floor(info: TestInfo, n: int) -> float:
    """The finest a test's score is measured: for a proportion of n trials, a coin-flipping
    model's sd sqrt(0.25 / n); otherwise 0 (the references' spread alone)."""
    return math.sqrt(0.25 / n) if info.proportion and n > 0 else 0.0


def calibrate_decision(
    result: TestResult,
    reference_scores: list[float],
    alpha: float,
    info: TestInfo,
    rotation_aware: int,
    *,
    victim_p: float | None = None,
) -> Decision:
    """Place the suspect among references and choose the p-value that enters Holm;
    ``rotation_aware``: how many of the references are watermarked encoders; ``victim_p``: the
    same test's p with the victim as the suspect (for a test that ``needs_victim_effect``)."""
    d = Decision(result, reference_scores, victim_p=victim_p)
    k = len(reference_scores)
    if k:
        d.spread_floor = trial_floor(info, result.n)
        d.p_empirical, d.p_reference = stats.calibrate(
            result.score, reference_scores, result.direction, spread_floor=d.spread_floor
        )
        d.p_typical = stats.typicality(result.score, reference_scores)
    calibrated = k >= MIN_REFERENCES and d.p_reference is not None and math.isfinite(d.p_reference)
    if not result.valid:
        d.why = f"not counted: {result.note}"
    elif info.clears_only and calibrated:
        d.guards = True
        d.why = "never accuses: a suspect atypical of the references here is not cleared"
    elif info.clears_only:
        d.why = f"not used: needs at least {MIN_REFERENCES} independent references"
    elif not info.counted:
        d.why = "shown, not counted: the same evidence as another counted test"
    elif info.needs_rotation_aware and rotation_aware < MIN_ROTATION_AWARE:
        d.why = (
            f"shown, not counted: needs at least {MIN_ROTATION_AWARE} references trained with a "
            "rotation watermark of their own (other owners, `sleuth references --owners`), "
            "against which another owner's encoder is judged; plain encoders score too narrowly"
        )
    elif info.needs_victim_effect and not (victim_p is not None and victim_p <= alpha):
        gives = (
            "no p-value"
            if victim_p is None or not math.isfinite(victim_p)
            else f"p {victim_p:.2g}, above alpha"
        )
        d.why = (
            f"not counted: on the victim itself this test gives {gives}: it cannot tell the "
            "victim's training images from others there, so not in a copy either"
        )
    elif calibrated:
        d.counted = True
        d.p_decision = d.p_reference if info.calibrated_only else max(result.p_value, d.p_reference)
    else:
        d.why = f"not counted: needs at least {MIN_REFERENCES} independent references"
    if info.power and result.valid and result.n > 1 and math.isfinite(result.statistic):
        if info.proportion:  # standardised distance of the proportion from chance
            effect = result.effect / math.sqrt(max(result.score * (1 - result.score), 1e-12))
        else:  # standardised effect towards stealing, recovered from the t statistic
            t = result.direction * result.statistic
            effect = t / math.sqrt(result.n if info.power == "one-sample" else result.n / 2)
        d.power, d.n_for_power = stats.power_and_n(effect, result.n, alpha, info.power)
    return d


def adjust(decisions: list[Decision], alpha: float) -> None:
    """Holm over every counted decision (all tests, all victims), in place; then, per decision,
    how far from the references a score would have to be to reject (at Holm's first step) and,
    with Holm at ``CLEAR`` over the two-sided typicality p-values of the counted and guarding
    decisions, whether it is atypical."""
    counted = [d for d in decisions if d.counted]
    if not counted:
        return
    reject, adjusted = stats.holm([d.p_decision for d in counted], alpha)
    for d, r, p in zip(counted, reject, adjusted, strict=True):
        d.rejected, d.p_adjusted = bool(r), float(p)
    level = alpha / len(counted)
    for d in counted:
        k = sum(math.isfinite(s) for s in d.reference_scores)
        d.shift_needed = stats.detectable_shift(k, level)
        analytic = d.result.p_value  # the decision p is never below it (NaN: it has none)
        d.references_needed = None
        if not d.rejected and not (math.isfinite(analytic) and analytic > level):
            d.references_needed = stats.references_needed(
                d.result.score,
                d.reference_scores,
                d.result.direction,
                level,
                spread_floor=d.spread_floor,
            )
    typical = [
        d
        for d in decisions
        if (d.counted or d.guards) and d.p_typical is not None and math.isfinite(d.p_typical)
    ]
    if typical:
        atypical = stats.holm([d.p_typical for d in typical], CLEAR)[0]
        for d, a in zip(typical, atypical, strict=True):
            d.atypical = bool(a)
            k = sum(math.isfinite(s) for s in d.reference_scores)
            d.shift_atypical = stats.detectable_shift(k, CLEAR / len(typical) / 2)


def verdict(decisions: list[Decision]) -> tuple[str, str]:
    """The verdict for one victim from its (already adjusted) decisions, and why."""
    counted = [d for d in decisions if d.counted]
    if not counted:
        return "inconclusive", (
            f"no test counted, so nothing accuses and nothing clears (with fewer than "
            f"{MIN_REFERENCES} independent references none can; each test says why)"
        )
    rejecting = sorted({d.result.family for d in counted if d.rejected})
    if len(rejecting) >= 2:
        return "stolen", f"independent evidence from {', '.join(rejecting)}"
    if rejecting:
        return "inconclusive", (
            f"only {rejecting[0]} evidence rejects; one family alone does not accuse"
            + _larger_zoo(d for d in counted if d.result.family != rejecting[0])
        )
    suggestive = [d.result.name for d in counted if d.p_adjusted < CLEAR]
    if suggestive:
        return "inconclusive", (
            f"no test rejects at the chosen level, but {', '.join(suggestive)} would at "
            f"{CLEAR}: not enough to accuse, too much to clear"
        )
    judged = counted + [d for d in decisions if d.guards]
    atypical = [d.result.name for d in judged if d.atypical]
    if atypical:
        return "inconclusive", (
            f"nothing accuses, but the suspect is unlike every independent reference in "
            f"{', '.join(atypical)}: no evidence of independence"
        )
    blind = [
        d.result.name
        for d in judged
        if d.shift_atypical is None or d.shift_atypical > CLEAR_MAX_ATYPICAL
    ]
    if blind:
        return "inconclusive", (
            f"nothing accuses, but with these references {', '.join(blind)} could not tell a "
            f"suspect {CLEAR_MAX_ATYPICAL:g} reference sds away from one of them: no evidence "
            "of independence (more references, a zoo from `sleuth references`, can give it)"
        )
    powered = {
        d.result.family
        for d in counted
        if d.shift_needed is not None and d.shift_needed <= CLEAR_MAX_SHIFT
    }
    if not any(d.result.family == "shift" for d in judged if d.guards):
        return "inconclusive", (
            "nothing accuses, but the suspect was not asked about shifted images (a lean round, "
            "--shift-samples 0 or --tests without shift): a copy made from unlike queries looks "
            "independent on the victim's own images, so no evidence of independence"
        )
    if len(powered) >= 2:
        return "not_stolen", (
            f"no test rejects and the suspect is typical of the references in all "
            f"{len(judged)} tests ({len(powered)} families with the power to see a copy)"
        )
    return "inconclusive", (
        "too few references or valid tests to clear the suspect: fewer than two families could "
        f"have rejected a score {CLEAR_MAX_SHIFT:g} reference sds away"
    )


def _projectable(d: Decision) -> bool:
    """Whether ``stats.references_needed`` could place this decision's score: three finite
    reference scores and a spread (a None then means that no number of them would)."""
    refs = [s for s in d.reference_scores if math.isfinite(s)]
    return len(refs) >= 3 and (d.spread_floor > 0 or max(refs) > min(refs))


def _larger_zoo(others: Iterable[Decision]) -> str:
    """What more references could do for the families that do not reject: the test that the
    fewest references spread as these would make reject, that none would, or that these
    references are too few to say. A second verification against a larger zoo is a second look
    at this suspect, so the reason says that its α adds to this one's."""
    others = list(others)
    needing = [d for d in others if d.references_needed is not None]
    if needing:
        d = min(needing, key=lambda d: d.references_needed or 0)
        return (
            f"; with {d.references_needed} references spread as these, {d.result.name} "
            f"({d.result.family}) would reject too (a second look: its alpha adds to this one's)"
        )
    if any(_projectable(d) for d in others):
        return (
            f"; no zoo of up to {stats.MOST_REFERENCES:,} references spread as these would make "
            "another family reject"
        )
    return "; too few references to say what a larger zoo could do"


def verdict_p(decisions: list[Decision]) -> float | None:
    """The smallest alpha at which these decisions are judged ``stolen``: the second smallest of
    the families' best Holm-adjusted p-values (a stolen verdict needs rejections from two
    families, and Holm's adjusted p-values do not depend on alpha). This is the margin of a
    verdict: how far under alpha its weaker family of evidence sits. None with fewer than two
    families counted."""
    return weaker_family_p((d.result.family, d.p_adjusted) for d in decisions if d.counted)


def weaker_family_p(counted: Iterable[tuple[str, float]]) -> float | None:
    """``verdict_p`` from (family, Holm-adjusted p) of the counted tests."""
    best: dict[str, float] = {}
    for family, p in counted:
        if p is not None and math.isfinite(p):
            best[family] = min(best.get(family, 1.0), p)
    return sorted(best.values())[1] if len(best) >= 2 else None
