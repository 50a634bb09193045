"""``sleuth report rerun``: does re-running the recorded verification give the recorded result?

The comparison is of values, not bytes: the verdict of every victim must match exactly, and every
test's statistic and p-values must agree within a relative tolerance (floating-point results can
differ in the last digits between machines and library builds).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleuth.errors import SleuthError
from sleuth.reports.check import read_statement
from sleuth.verify import ChallengeSettings, run_verify

COMPARED = ("statistic", "p_value", "p_reference", "p_decision", "p_adjusted", "score")


@dataclass
class Reproduction:
    """Whether a re-run reproduced a recorded verification, and every difference found."""

    verdict_reproduced: bool
    statistics_reproduced: bool
    inputs_unchanged: bool
    differences: list[str] = field(default_factory=list)
    max_relative_difference: float = 0.0

    @property
    def reproduced(self) -> bool:
        return self.verdict_reproduced and self.statistics_reproduced

    def to_dict(self) -> dict[str, Any]:
        return {
            "reproduced": self.reproduced,
            "verdict_reproduced": self.verdict_reproduced,
            "statistics_reproduced": self.statistics_reproduced,
            "inputs_unchanged": self.inputs_unchanged,
            "max_relative_difference": self.max_relative_difference,
            "differences": self.differences,
        }


def _relative(a: float | None, b: float | None) -> float:
    """|a - b| relative to the larger magnitude; both missing (NaN as None) counts as equal."""
    if a is None or b is None:
        return 0.0 if a is None and b is None else math.inf
    scale = max(abs(a), abs(b))
    return 0.0 if scale == 0 else abs(a - b) / scale


def _digests(result: dict[str, Any]) -> list[str | None]:
    return [
        result["suspect_digest"],
        result.get("challenge_key_digest"),
        *(v["victim_digest"] for v in result["victims"]),
        *(v["owner_key_digest"] for v in result["victims"]),
        *(r["sha256"] for r in result["references"]),
    ]


def compare(recorded: dict[str, Any], rerun: dict[str, Any], rtol: float = 1e-6) -> Reproduction:
    """Compare a recorded predicate (or result) with the result of re-running it."""
    rep = Reproduction(True, True, _digests(recorded) == _digests(rerun))
    if not rep.inputs_unchanged:
        rep.differences.append("input files differ from the recorded digests")
    for old, new in zip(recorded["victims"], rerun["victims"], strict=True):
        if old["verdict"] != new["verdict"]:
            rep.verdict_reproduced = False
            rep.differences.append(
                f"{old['victim']}: verdict {old['verdict']} recorded, {new['verdict']} now"
            )
        new_tests = {t["name"]: t for t in new["tests"]}
        for test in old["tests"]:
            now = new_tests.get(test["name"])
            if now is None:
                rep.statistics_reproduced = False
                rep.differences.append(f"{test['name']}: not run again")
                continue
            for key in COMPARED:
                diff = _relative(test[key], now[key])
                if math.isfinite(diff):
                    rep.max_relative_difference = max(rep.max_relative_difference, diff)
                if diff > rtol:
                    rep.statistics_reproduced = False
                    rep.differences.append(
                        f"{test['name']} {key}: {test[key]} recorded, {now[key]} now"
                    )
    return rep


INPUT_TYPES: dict[str, tuple[type, ...]] = {  # run_verify's keyword arguments, as recorded
    "suspect": (str, type(None)),
    "suspect_reps": (str, type(None)),
    "challenge_key": (str, type(None)),
    "arch": (str, type(None)),
    "references": (list,),
    "tests": (list, type(None)),
    "alpha": (float, int),
    "settings": (dict,),
    "budget": (int, type(None)),
    "suspect_url": (str, type(None)),  # informational: a replay reads the answers it gave
}
RECORD_ONLY = ("suspect_url",)


def rerun_inputs(predicate: Any) -> tuple[list[str], dict[str, Any]]:
    """(victims, keyword arguments) of the recorded verification, every field type-checked: a
    statement's inputs are as hostile as any file and are never splatted into a call unread."""
    inputs = predicate.get("inputs") if isinstance(predicate, dict) else None
    if not isinstance(inputs, dict):
        raise SleuthError("the statement records no verification inputs")
    victims = inputs.get("victims")
    if not isinstance(victims, list) or not victims or not all(isinstance(v, str) for v in victims):
        raise SleuthError("the statement's inputs name no victims")
    unknown = sorted(set(inputs) - set(INPUT_TYPES) - {"victims"})
    if unknown:
        raise SleuthError(f"the statement's inputs hold unknown fields: {unknown!r}"[:300])
    kwargs: dict[str, Any] = {}
    for name, types in INPUT_TYPES.items():
        value = inputs.get(name)
        if not isinstance(value, types) or isinstance(value, bool):
            raise SleuthError(f"the statement's input {name!r} is {type(value).__name__}")
        if name not in RECORD_ONLY:
            kwargs[name] = value
    for name in ("references", "tests"):
        if kwargs[name] is not None and not all(isinstance(v, str) for v in kwargs[name]):
            raise SleuthError(f"the statement's input {name!r} is not a list of names")
    try:
        kwargs["settings"] = ChallengeSettings.from_record(kwargs["settings"])
    except (TypeError, ValueError, SleuthError) as exc:
        detail = " ".join(str(exc).split())[:200]  # a key may hold a line break
        raise SleuthError(f"the statement's challenge settings are not valid ({detail})") from None
    return victims, kwargs


def verification_predicate(report_dir: Path, statement: Any) -> dict[str, Any]:
    """The statement's predicate, if the statement is an object holding one."""
    predicate = statement.get("predicate") if isinstance(statement, dict) else None
    shapes = {"victims": list, "report": dict, "verification": dict}
    if not isinstance(predicate, dict) or not all(
        isinstance(predicate.get(k), t) for k, t in shapes.items()
    ):
        raise SleuthError(f"{report_dir}: the statement holds no verification predicate")
    return predicate


def replay(
    report_dir: Path,
    *,
    rtol: float = 1e-6,
    device: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> Reproduction:
    """Run the verification a report records again, from its type-checked inputs, and compare
    the result with the record. Whether the statement is signed is the caller's to check first."""
    predicate = verification_predicate(report_dir, read_statement(report_dir))
    victims, inputs = rerun_inputs(predicate)
    result = run_verify(victims, **inputs, progress=progress, device=device)
    try:
        return compare(predicate, result.to_dict(), rtol=rtol)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        detail = " ".join(str(exc).split())[:120]
        raise SleuthError(
            f"{report_dir}: malformed statement ({type(exc).__name__}: {detail})"
        ) from None
