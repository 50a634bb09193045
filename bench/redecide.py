"""A finished bench's verifications decided again under today's decision rule, without the models.

Each verify cell of a bench's results.json records every test's evidence: its p-values, the
references' scores and whether it counted. Which tests count, and with that Holm's correction,
the margins and the verdicts, is the rule's, not the evidence's: this takes the tests' evidence
as recorded, asks today's registry (``sleuth.verify.evidence.TEST_INFO``) which of them count or
only guard a clearance, and runs today's ``adjust`` and ``verdict`` again. Before it changes
anything it decides every cell again under the recorded choices and checks that the recorded
verdicts and adjusted p-values come back, so that what changes is the rule's doing alone.

    python bench/redecide.py --bench bench/results/full-rejudged.json \\
        --results bench/results/full-redecided.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from sleuth.fileio import atomic_write_text
from sleuth.verify import stats
from sleuth.verify.evidence import TEST_INFO
from sleuth.verify.result import TestResult
from sleuth.verify.verdict import Decision, adjust, trial_floor, verdict, verdict_p

ALPHA = 0.01  # every suite's level
COPY_GROUPS = ("steal", "evade")


def decisions_of(
    tests: list[dict[str, Any]], *, today: bool, victim_p: dict[str, float] | None = None
) -> list[Decision]:
    """The recorded tests as decisions: as they were counted, or (``today``) as today's registry
    counts them; ``victim_p``: each test's recorded p with the victim as the suspect, which
    today's tests that ``needs_victim_effect`` count only at or below α (none recorded: they do
    not count)."""
    out = []
    for t in tests:
        result = TestResult(
            name=t["name"],
            family=t["family"],
            statistic=math.nan if t["statistic"] is None else t["statistic"],
            p_value=math.nan if t["p_value"] is None else t["p_value"],
            effect=math.nan if t["effect"] is None else t["effect"],
            effect_name="",
            n=t["n"],
            alternative="",
            compared="",
            score=math.nan if t["score"] is None else t["score"],
            valid=t["valid"],
        )
        refs = [math.nan if s is None else s for s in t["reference_scores"]]
        d = Decision(
            result,
            refs,
            p_reference=t["p_reference"],
            p_typical=stats.typicality(result.score, refs) if refs else None,
            counted=t["counted"],
            guards=t["guards"],
            p_decision=t["p_decision"] if t["p_decision"] is not None else 1.0,
        )
        info = TEST_INFO.get(t["name"])
        if info is not None:
            d.spread_floor = trial_floor(info, result.n)
        if today and info is not None and info.clears_only and d.counted:
            d.counted, d.guards, d.p_decision = False, True, 1.0
        own = (victim_p or {}).get(t["name"])
        blind = own is None or not own <= ALPHA
        if today and info is not None and info.needs_victim_effect and d.counted and blind:
            d.counted, d.p_decision = False, 1.0
        out.append(d)
    adjust(out, ALPHA)
    return out


def kind(cell: str) -> str:
    """copy, independent or victim, from the suspect's cell key (verify/<group>/<name>)."""
    group, name = cell.split("/")[1:3]
    if group in COPY_GROUPS:
        return "copy"
    return "victim" if name == "victim" else "independent"


def victim_p_values(bench: dict[str, Any]) -> dict[str, float]:
    """Each test's recorded p with the victim as the suspect (its verify cell), if it has one."""
    for key, cell in bench["cells"].items():
        if (
            key.startswith("verify/")
            and kind(key) == "victim"
            and "tests" in cell.get("result", {})
        ):
            return {
                t["name"]: t["p_value"] for t in cell["result"]["tests"] if t["p_value"] is not None
            }
    return {}


def redecide(bench: dict[str, Any]) -> dict[str, Any]:
    cells, mismatches = {}, []
    victim_p = victim_p_values(bench)
    for key, cell in bench["cells"].items():
        if cell.get("group") != "verify" or "tests" not in cell.get("result", {}):
            continue
        tests, recorded = cell["result"]["tests"], cell["result"]["verdict"]
        again = decisions_of(tests, today=False)
        back = verdict(again)[0]
        for d, t in zip(again, tests, strict=True):
            p, q = d.p_adjusted, t["p_adjusted"]
            if d.counted and not math.isclose(p, q, rel_tol=1e-9, abs_tol=1e-300):
                mismatches.append(f"{key}: {t['name']} p_adjusted {p} recorded {q}")
        if back != recorded:
            mismatches.append(f"{key}: verdict {back}, recorded {recorded}")
        now = decisions_of(tests, today=True, victim_p=victim_p)
        label, reason = verdict(now)
        cells[key] = {
            "is": kind(key),
            "recorded": {"verdict": recorded, "margin": verdict_p(again)},
            "today": {
                "verdict": label,
                "reason": reason,
                "margin": verdict_p(now),
                "counted": sum(d.counted for d in now),
                "guards": [d.result.name for d in now if d.guards],
            },
        }
    if mismatches:
        raise SystemExit("the recorded decisions did not come back:\n" + "\n".join(mismatches))

    def count(which: str, is_: str, label: str) -> int:
        return sum(c["is"] == is_ and c[which]["verdict"] == label for c in cells.values())

    totals = {
        which: {
            "copies_stolen": count(which, "copy", "stolen"),
            "copies_not_stolen": count(which, "copy", "not_stolen"),
            "independent_accused": count(which, "independent", "stolen"),
            "independent_cleared": count(which, "independent", "not_stolen"),
        }
        for which in ("recorded", "today")
    }
    totals["copies"] = sum(c["is"] == "copy" for c in cells.values())
    totals["independent"] = sum(c["is"] == "independent" for c in cells.values())
    changed = {
        k: [c["recorded"]["verdict"], c["today"]["verdict"]]
        for k, c in cells.items()
        if c["recorded"]["verdict"] != c["today"]["verdict"]
    }
    return {"totals": totals, "changed": changed, "cells": cells}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", type=Path, required=True, help="a bench's results.json")
    parser.add_argument("--results", type=Path, required=True)
    args = parser.parse_args()
    bench = json.loads(args.bench.read_text())
    out = {
        "format": "sleuth-redecided",
        "bench": str(args.bench),
        "suite": bench.get("suite"),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "alpha": ALPHA,
        **redecide(bench),
    }
    atomic_write_text(args.results, json.dumps(out, indent=1) + "\n")
    print(json.dumps({"totals": out["totals"], "changed": out["changed"]}, indent=1))


if __name__ == "__main__":
    main()
