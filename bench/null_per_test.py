"""Every recorded verification of an independent model, test by test (issue 15): which counted
tests rejected one at Holm-adjusted α, and what one alternative calibration of the watermark
would have cost.

The verdict accuses only on two families, so a test that rejects an independent model alone
changes no verdict; it still says how well that test's null is known. This reads the suites'
recorded verifications (each independent model judged against the others) and the demo
recipe's leave-one-out null (bench/verdict.py; its files record adjusted p-values only, under
the rule of their day), and counts, per file and per test, the
independent models a counted test rejected, with Clopper-Pearson intervals. The files judge
overlapping models (the full suite's models at 1,000 and 2,000 samples), so their sum is a
count of verifications, not of independent replicates.

``--pooled-watermark-spread`` decides the suites' recorded evidence again with each counted
watermark reading's spread floored at the larger of both counted readings' reference sds (the
two read one predictor on the same trials): what it would cost the copies to calibrate the
matched reading by the between-model spread the raw reading shows.

    python bench/null_per_test.py [--pooled-watermark-spread] [--results FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from redecide import ALPHA, decisions_of, kind, victim_p_values
from statsmodels.stats.proportion import proportion_confint

from sleuth.fileio import atomic_write_text
from sleuth.verify import stats
from sleuth.verify.verdict import Decision, adjust, verdict, verdict_p

RESULTS = Path("bench/results")
SUITES = ("full.json", "full-rejudged.json", "full-rejudged-2000.json", "quick.json")
SUITES += ("quick-rejudged.json",)
NULLS = ("verdict.json", "verdict-half.json", "verdict-key-b.json", "verdict-key-c.json")
NULLS += ("verdict-key-d.json",)
WATERMARK = ("watermark-binomial", "watermark-matched")


def suite_nulls(bench: dict[str, Any]) -> list[tuple[str, dict[str, float]]]:
    """(suspect, {counted test: adjusted p}) of every independent model a suite verified, its
    recorded evidence decided under today's rule (``redecide.decisions_of``)."""
    out, own = [], victim_p_values(bench)
    for key, cell in bench["cells"].items():
        result = cell.get("result", {})
        if cell.get("group") != "verify" or "tests" not in result or kind(key) != "independent":
            continue
        decisions = decisions_of(result["tests"], today=True, victim_p=own)
        out.append((key, {d.result.name: d.p_adjusted for d in decisions if d.counted}))
    return out


def verdict_nulls(bench: dict[str, Any]) -> list[tuple[str, dict[str, float]]]:
    """The same for bench/verdict.py's leave-one-out null (its tests record adjusted p only)."""
    return [
        (name, {t: v["p_adjusted"] for t, v in row["tests"].items() if v["p_adjusted"] is not None})
        for name, row in bench["null"].items()
    ]


def rate(k: int, n: int) -> dict[str, Any]:
    lo, hi = proportion_confint(k, n, alpha=0.05, method="beta") if n else (0.0, 1.0)
    return {"k": k, "n": n, "ci95": [float(lo), float(hi)]}


def count(nulls: list[tuple[str, dict[str, float]]]) -> dict[str, Any]:
    rejected = {
        name: [t for t, p in tests.items() if p is not None and p <= ALPHA] for name, tests in nulls
    }
    per_test: dict[str, int] = {}
    for tests in rejected.values():
        for t in tests:
            per_test[t] = per_test.get(t, 0) + 1
    every = sorted({t for _, tests in nulls for t in tests})
    return {
        "verifications": len(nulls),
        "any_test": rate(sum(bool(t) for t in rejected.values()), len(nulls)),
        "per_test": {t: rate(per_test.get(t, 0), len(nulls)) for t in every},
        "rejected": {name: tests for name, tests in rejected.items() if tests},
    }


def spread(d: Decision) -> float:
    refs = np.asarray([r for r in d.reference_scores if math.isfinite(r)])
    return float(refs.std(ddof=1)) if len(refs) > 2 else 0.0


def pooled(tests: list[dict[str, Any]], own: dict[str, float]) -> list[Decision]:
    """Today's decisions with each counted watermark reading calibrated on the pooled spread."""
    decisions = decisions_of(tests, today=True, victim_p=own)
    readings = [d for d in decisions if d.result.name in WATERMARK and d.counted]
    floor = max((spread(d) for d in readings), default=0.0)
    for d in readings:  # decisions_of set each reading's trial floor
        d.spread_floor = max(d.spread_floor, floor)
        _, d.p_reference = stats.calibrate(
            d.result.score, d.reference_scores, d.result.direction, spread_floor=d.spread_floor
        )
        d.p_decision = max(d.result.p_value, d.p_reference)
    adjust(decisions, ALPHA)
    return decisions


def pooled_cost(bench: dict[str, Any]) -> dict[str, Any]:
    """Verdicts and margins today and under the pooled spread, for every verification."""
    totals = {w: {"copies_stolen": 0, "independent_accused": 0} for w in ("today", "pooled")}
    changed, margins, nulls = {}, [], []
    own = victim_p_values(bench)
    for key, cell in bench["cells"].items():
        result = cell.get("result", {})
        if cell.get("group") != "verify" or "tests" not in result or kind(key) == "victim":
            continue
        today = decisions_of(result["tests"], today=True, victim_p=own)
        other = pooled(result["tests"], own)
        labels = {"today": verdict(today)[0], "pooled": verdict(other)[0]}
        for which, label in labels.items():
            if label == "stolen":
                bucket = "copies_stolen" if kind(key) == "copy" else "independent_accused"
                totals[which][bucket] += 1
        if labels["today"] != labels["pooled"]:
            changed[key] = [labels["today"], labels["pooled"]]
        if kind(key) == "copy" and labels["today"] == labels["pooled"] == "stolen":
            margins.append(math.log10(verdict_p(other)) - math.log10(verdict_p(today)))
        if kind(key) == "independent":
            nulls.append((key, {d.result.name: d.p_adjusted for d in other if d.counted}))
    null = count(nulls)
    return {
        "totals": totals,
        "changed": changed,
        "median_margin_decades_lost": float(np.median(margins)) if margins else None,
        "null": null,
        "null_rejected": null["rejected"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS / "null-per-test.json")
    parser.add_argument("--pooled-watermark-spread", action="store_true")
    args = parser.parse_args()
    files: dict[str, Any] = {}
    every: list[tuple[str, dict[str, float]]] = []
    for name in SUITES + NULLS:
        bench = json.loads((RESULTS / name).read_text())
        nulls = suite_nulls(bench) if name in SUITES else verdict_nulls(bench)
        every += [(f"{name}:{suspect}", tests) for suspect, tests in nulls]
        files[name] = count(nulls)
        if args.pooled_watermark_spread and name in SUITES:
            files[name]["pooled_watermark_spread"] = pooled_cost(bench)
    out = {
        "format": "sleuth-null-per-test",
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "alpha": ALPHA,
        "files": files,
        "all": count(every),
    }
    atomic_write_text(args.results, json.dumps(out, indent=1) + "\n")
    summary = {
        name: {
            "verifications": f["verifications"],
            "rejected": f["rejected"],
            **(
                {"pooled": {k: v for k, v in f["pooled_watermark_spread"].items() if k != "null"}}
                if "pooled_watermark_spread" in f
                else {}
            ),
        }
        for name, f in files.items()
    }
    summary["all"] = {k: out["all"][k] for k in ("verifications", "any_test")}
    print(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
