"""The default test suite's wall time (issue 18, item 5): README's test command, timed.

Runs `python -m pytest -q` as README gives it (pyproject's options: parallel workers, a file per
worker) in a subprocess, with `--durations` and a JUnit XML report to read the slowest tests
and the counts from, and records the wall time, the CPU time of the run and its children, and
the machine. Goal: at most 5 minutes on 2 cores.

    python bench/suite_time.py

Writes bench/results/suite-time.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from sleuth.bench.runner import machine

ROOT = Path(__file__).resolve().parent.parent
SLOWEST = 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(ROOT / "bench" / "results" / "suite-time.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        start = time.perf_counter()
        done = subprocess.run(
            [*command, f"--junitxml={xml}"], cwd=ROOT, capture_output=True, text=True
        )
        wall = time.perf_counter() - start
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            sys.exit(f"the suite failed (exit {done.returncode}):\n{done.stdout[-3000:]}")
        suite = ET.parse(xml).getroot().find("testsuite")
        cases = [
            (float(c.get("time", 0)), f"{c.get('classname')}::{c.get('name')}")
            for c in suite.iter("testcase")
        ]
    cases.sort(reverse=True)
    result = {
        "machine": machine("cpu"),
        "command": " ".join(["python", "-m", "pytest", "-q"]),
        "cores": os.cpu_count(),  # pyproject runs a worker per core, at most 4
        "wall_s": wall,
        "cpu_s": children.ru_utime + children.ru_stime,
        "tests": int(suite.get("tests")),
        "skipped": int(suite.get("skipped")),
        "failures": int(suite.get("failures")) + int(suite.get("errors")),
        # JUnit's time of a test includes its setup (a module fixture's cost lands on its first)
        "slowest": [{"test": name, "seconds": t} for t, name in cases[:SLOWEST]],
    }
    Path(args.results).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
