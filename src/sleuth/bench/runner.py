"""``sleuth bench``: run a suite's cells, reuse the finished ones, write results and tables.

The output folder holds ``bench.json`` (which suite on which data: a folder serves one bench),
``cells/<key>.json`` (one file per finished cell, written atomically when the cell ends),
``models/<key>/`` (every encoder trained), ``results.json`` (all finished cells, the machine,
the command) and ``tables.md``. A cell is reused when its file exists, its parameters are the
plan's, the cells it builds on are the very runs it was built on and the code that runs cells is
the code it ran with; a run that is killed loses at most the cell it was in.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from sleuth.bench.cells import KINDS, NOT_KIND_CODE, Context
from sleuth.bench.plan import GROUPS, Cell, DataSizes, Plan, plan
from sleuth.bench.suites import Suite, get_suite
from sleuth.data import load_images, make_split
from sleuth.device import resolve_device
from sleuth.errors import SleuthError
from sleuth.fileio import atomic_write_text
from sleuth.manifest import environment, source_digest
from sleuth.progress import BenchEvent, CellDone, CellReused, CellsPlanned, CellStarted

FORMAT = "sleuth-bench"
BENCH_FILE = "bench.json"
RESULTS_FILE = "results.json"
TABLES_FILE = "tables.md"
PLOT_FILE = "scaling.png"
Progress = Callable[[BenchEvent], None]
# modules that plan, print or render cells without deciding a cell's result: a change to them
# reuses the finished cells (what the plan decides is in each cell's params)
NOT_CELL_CODE = (
    "__main__.py",
    "cli.py",
    "demo.py",
    "progress.py",
    "reports/",
    "bench/runner.py",
    "bench/plan.py",
    "bench/suites.py",
    "bench/tables.py",
    "bench/plots.py",
    "bench/papers.py",
    "bench/foundation.py",  # plans embed cells and scores them, as runner.py does
    "bench/peers.py",  # the peers benchmark is no cell's code (issue 18)
    "bench/peer_trainers.py",
    "bench/rejudge.py",  # runs verification cells again outside a bench run, as runner.py runs them
)


def cell_code(kind: str) -> str:
    """The digest of the code a cell of ``kind`` depends on (see ``source_digest``)."""
    return source_digest(NOT_CELL_CODE + NOT_KIND_CODE[kind])


@dataclass
class BenchResult:
    """What a bench run did and where its results are."""

    out_dir: Path
    suite: str
    data: str
    task: str
    ran: list[str]
    reused: list[str]
    notes: list[str]
    seconds: float
    results: Path
    tables: Path
    plot: Path | None = None
    counts: dict[str, int] = field(default_factory=dict)  # cells per group in the results


def machine(device: str = "auto") -> dict[str, Any]:
    """The hardware a timing was measured on."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory = float("nan")
    dev = resolve_device(device)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": round(memory, 1),
        "device": str(dev),
        "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "torch": torch.__version__,
    }


def data_sizes(data: str, suite: Suite) -> DataSizes:
    """Read the dataset once to size the plan (and to fail early on a bad spec)."""
    train = load_images(data, "train")
    split = make_split(len(train), suite.recipe.public_fraction, suite.recipe.seed)
    test = load_images(data, "test")
    return DataSizes(len(split.private), len(split.public), len(test), train.labels is not None)


def bench_identity(suite: str, data: str, task: str) -> dict[str, str]:
    """What a bench folder's marker records: the folder serves this suite on this data."""
    return {"format": FORMAT, "suite": suite, "data": data, "task": task}


def check_folder(out: Path, identity: dict[str, str]) -> None:
    """A folder serves one bench: refuse one that holds another bench or anything else."""
    if out.exists() and not out.is_dir():
        raise SleuthError(f"--out exists and is not a folder: {out}")
    if not out.is_dir() or not any(out.iterdir()):
        return
    marker = out / BENCH_FILE
    if not marker.exists():
        raise SleuthError(
            f"{out} is not empty and holds no bench ({BENCH_FILE}): give another --out"
        )
    try:
        found = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SleuthError(f"cannot read {marker}: {exc}") from None
    if {k: found.get(k) for k in identity} != identity:
        raise SleuthError(
            f"{out} holds the {found.get('suite')} suite on {found.get('data')} (task "
            f"{found.get('task')}), not {identity['suite']} on {identity['data']} (task "
            f"{identity['task']}): give another --out"
        )


def claim_folder(out: Path, identity: dict[str, str], device: str) -> None:
    """Before a run writes anything: refuse torchrun (every rank would run and write every cell;
    one process per bench, one device per cell) and a device that does not resolve, then make the
    bench folder and write its marker (once): the folder now serves this bench."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise SleuthError("sleuth bench runs as one process: start it without torchrun")
    resolve_device(device)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / BENCH_FILE).exists():
        atomic_write_text(out / BENCH_FILE, json.dumps(identity, indent=2) + "\n")


@dataclass
class CellStore:
    """Finished cells' records in a bench folder, and whether each can be reused."""

    out: Path

    def cell_file(self, key: str) -> Path:
        return self.out / "cells" / f"{key}.json"

    def record(self, key: str) -> dict[str, Any] | None:
        path = self.cell_file(key)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            return None  # unreadable: the cell runs again

    def fresh(self, cell: Cell, runs: dict[str, str]) -> dict[str, Any] | None:
        """The cell's record if it can be reused (see ``stale``)."""
        rec = self.record(cell.key)
        return rec if rec is not None and self.stale(cell, rec, runs) is None else None

    def stale(self, cell: Cell, rec: dict[str, Any], runs: dict[str, str]) -> str | None:
        """Why a finished cell's record cannot be reused, or None when it can."""
        if rec.get("params") != cell.params:
            return "its parameters changed"
        if rec.get("needs") != {k: runs.get(k) for k in cell.needs}:
            return "a cell it builds on changed"
        if rec.get("code") != cell_code(cell.kind):
            return "sleuth's code changed since it ran"
        return None


@dataclass
class Bench(CellStore):
    """A suite planned on a dataset, bound to its output folder."""

    suite: Suite
    data: str
    task: str
    plan: Plan

    def statuses(self, groups: set[str] | None = None) -> list[tuple[Cell, str]]:
        """Each cell of ``groups`` (default: all) and what it needs, with "done", "to run" or
        "to run again: <why>" (what a run would do now)."""
        runs: dict[str, str] = {}
        out = []
        wanted = {c.key for c in self.plan.select(_groups(groups))}
        for cell in self.plan.cells.values():
            rec = self.record(cell.key)
            why = None if rec is None else self.stale(cell, rec, runs)
            if rec is not None and why is None:
                runs[cell.key] = rec["run_id"]
            if cell.key in wanted:
                state = "done" if why is None else f"to run again: {why}"
                out.append((cell, "to run" if rec is None else state))
        return out


def open_bench(
    suite: str | Suite, out_dir: str | Path, *, data: str | None = None, task: str | None = None
) -> Bench:
    """Check the suite (a name or a Suite), the data, the task and the folder, and plan;
    nothing is written."""
    suite = get_suite(suite) if isinstance(suite, str) else suite
    data = data or suite.data
    task = task or data
    sizes = data_sizes(data, suite)
    if task != data and load_images(task, "train").labels is None:
        raise SleuthError(f"--task {task} has no labels: the linear probe needs them")
    if task == data and not sizes.labelled:
        raise SleuthError(f"{data} has no labels: give a labelled --task for the linear probe")
    out = Path(out_dir)
    check_folder(out, bench_identity(suite.name, data, task))
    return Bench(out, suite, data, task, plan(suite, data, task, sizes))


def _groups(only: set[str] | None) -> set[str]:
    """The groups ``--only`` names (default: all), refusing none and unknown ones."""
    if only is None:
        return set(GROUPS)
    unknown = sorted(only - set(GROUPS))
    if unknown or not only:
        what = f"unknown group {unknown[0]!r}" if unknown else "no group given"
        raise SleuthError(f"{what} (known: {', '.join(GROUPS)})")
    return only


def run_bench(
    bench: Bench,
    *,
    only: set[str] | None = None,
    device: str = "auto",
    progress: Progress = lambda _event: None,
) -> BenchResult:
    """Run every cell of ``only``'s groups (default: all) that is not done yet, then write
    results.json, tables.md and the scaling plot from every finished cell."""
    start = time.perf_counter()
    groups = _groups(only)
    claim_folder(bench.out, bench_identity(bench.suite.name, bench.data, bench.task), device)
    ran, reused, hardware = run_cells(
        bench, bench.plan.select(groups), device=device, progress=progress
    )
    return _write_outputs(bench, ran, reused, hardware, time.perf_counter() - start)


def run_cells(
    store: CellStore,
    cells: list[Cell],
    *,
    device: str = "auto",
    progress: Progress = lambda _event: None,
) -> tuple[list[str], list[str], dict[str, Any]]:
    """Run each of ``cells`` (in an order that runs a cell after those it needs) unless its
    record in ``store`` can be reused; return the keys run, the keys reused and the machine."""
    hardware = machine(device)
    ctx = Context(store.out, device, step=progress)
    runs: dict[str, str] = {}
    ran, reused = [], []
    progress(CellsPlanned(len(cells)))
    for index, cell in enumerate(cells, 1):
        rec = store.fresh(cell, runs)
        if rec is not None:
            runs[cell.key] = rec["run_id"]
            reused.append(cell.key)
            progress(CellReused(cell.key, index))
            continue
        progress(CellStarted(cell.key, index, cell.label))
        t0 = time.perf_counter()
        result = KINDS[cell.kind](ctx, cell)
        record = {
            "key": cell.key,
            "kind": cell.kind,
            "group": cell.group,
            "label": cell.label,
            "params": cell.params,
            "needs": {k: runs[k] for k in cell.needs},
            "run_id": uuid.uuid4().hex,
            "code": cell_code(cell.kind),
            "result": result,
            "seconds": round(time.perf_counter() - t0, 2),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": hardware,
        }
        atomic_write_text(store.cell_file(cell.key), json.dumps(record, indent=2) + "\n")
        runs[cell.key] = record["run_id"]
        ran.append(cell.key)
        progress(CellDone(cell.key, index, record["seconds"]))
    return ran, reused, hardware


def _write_outputs(
    bench: Bench, ran: list[str], reused: list[str], hardware: dict[str, Any], seconds: float
) -> BenchResult:
    from sleuth.bench.plots import scaling_plot
    from sleuth.bench.tables import render

    cells = {}
    runs: dict[str, str] = {}
    for cell in bench.plan.cells.values():
        rec = bench.fresh(cell, runs)
        if rec is not None:
            runs[cell.key] = rec["run_id"]
            cells[cell.key] = {k: rec[k] for k in ("kind", "group", "params", "result")}
            cells[cell.key]["label"] = cell.label  # words may improve; the params are the cell
            cells[cell.key]["seconds"] = rec["seconds"]
            cells[cell.key]["machine"] = rec["machine"]
    results = {
        **bench_identity(bench.suite.name, bench.data, bench.task),
        "description": bench.suite.description,
        "suite_definition": asdict(bench.suite),
        "machine": hardware,
        "environment": environment(),
        "command": list(sys.argv),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "notes": bench.plan.notes,
        "cells": cells,
    }
    out = bench.out
    results_file = atomic_write_text(out / RESULTS_FILE, json.dumps(results, indent=2) + "\n")
    plot = scaling_plot(results, out / PLOT_FILE)
    text = render(results, out_dir=str(out), plot=None if plot is None else PLOT_FILE)
    tables = atomic_write_text(out / TABLES_FILE, text + "\n")
    counts: dict[str, int] = {}
    for c in cells.values():
        counts[c["group"]] = counts.get(c["group"], 0) + 1
    return BenchResult(
        out,
        bench.suite.name,
        bench.data,
        bench.task,
        ran,
        reused,
        bench.plan.notes,
        seconds,
        results_file,
        tables,
        plot,
        counts,
    )
