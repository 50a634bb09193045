"""Benchmarks: the papers' tables reproduced at CPU scale (``sleuth bench``).

A suite (``SUITES``) is planned on a dataset into cells; ``run_bench`` runs the cells not yet
done and writes results.json, tables.md and the scaling plot.
"""

from sleuth.bench.plan import GROUPS, Cell
from sleuth.bench.runner import BenchResult, open_bench, run_bench
from sleuth.bench.suites import SUITES, Suite, get_suite
from sleuth.bench.tables import render

__all__ = [
    "GROUPS",
    "SUITES",
    "BenchResult",
    "Cell",
    "Suite",
    "get_suite",
    "open_bench",
    "render",
    "run_bench",
]
