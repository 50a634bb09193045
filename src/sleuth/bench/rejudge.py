"""A finished bench's models judged again with today's `sleuth verify`, at another challenge size.

A bench's verification cells record what the verification code of their day decided at the
suite's challenge size. Training a suite again takes hours; judging its models takes minutes.
This runs every ``verify`` and ``transformed`` cell of a bench folder again, with the current
code and the bench's own cell functions (``sleuth.bench.cells.KINDS``), at ``samples``. It
reads the bench's models and shares its reference answer cache (keyed by file and challenge),
and writes what a cell writes beside its model (a transformed copy's challenge and answers)
under ``work``, never into the bench. The bench's results are written with those cells
replaced, the other verification cells (fewest, sequential: judged by the code of their day)
left out, the suite's ``samples`` set to the new size and a ``rejudged`` record (samples, code,
machine, when), so that ``sleuth.bench.tables`` renders them as any bench's.

``bench/rejudge.py`` is its command line.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from sleuth.bench.cells import KINDS, Context
from sleuth.bench.plan import Cell
from sleuth.bench.runner import RESULTS_FILE, machine
from sleuth.manifest import source_digest

REDONE = ("verify", "transformed")
LEFT_OUT = ("fewest", "sequential", "time-verify")  # judged by the code of their day


def workspace(bench: Path, work: Path) -> Context:
    """A bench context under ``work`` whose models are the bench's (linked, group by group) and
    whose answer cache is the bench's; ``transformed/`` cells write into ``work`` alone."""
    models = work / "models"
    models.mkdir(parents=True, exist_ok=True)
    for group in (bench / "models").iterdir():
        link = models / group.name
        if group.name != "transformed" and not link.exists():
            link.symlink_to(group.resolve(), target_is_directory=True)
    cache = work / "answer-cache"
    if not cache.exists():
        cache.symlink_to((bench / "answer-cache").resolve(), target_is_directory=True)
    return Context(out=work, device="cpu")


def rejudge(bench: Path, work: Path, samples: int, add: tuple[str, ...] = ()) -> dict:
    """The bench's results with every verify and transformed cell judged again at ``samples``,
    with the bench's models ``add`` (cell keys, such as other owners) among every cell's
    references but its own suspect's."""
    results = json.loads((bench / RESULTS_FILE).read_text())
    cells = results["cells"]
    ctx = workspace(bench, work)
    keys = [k for k, c in cells.items() if c["kind"] in REDONE]
    for i, key in enumerate(keys, 1):
        c = cells[key]
        p = c["params"]
        extra = [r for r in add if r not in p["references"] and r != p["suspect"]]
        params = {**p, "samples": samples, "references": [*p["references"], *extra]}
        cell = Cell(key, c["kind"], c["group"], c["label"], params)
        start = time.perf_counter()
        result = KINDS[c["kind"]](ctx, cell)
        cells[key] = {
            **c,
            "params": params,
            "result": result,
            "seconds": time.perf_counter() - start,
            "machine": machine("cpu"),
        }
        print(f"{i}/{len(keys)} {key}: {result['verdict']}", flush=True)
    for key in [k for k, c in cells.items() if c["kind"] in LEFT_OUT]:
        del cells[key]
    results["suite_definition"] = {**results["suite_definition"], "samples": samples}
    results["rejudged"] = {
        "samples": samples,
        "added_references": list(add),
        "cells": len(keys),
        "sleuth_source": source_digest()[:16],
        "machine": machine("cpu"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return results
