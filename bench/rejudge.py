"""A finished bench's models judged again with today's `sleuth verify`, at another challenge size
(``sleuth.bench.rejudge``); the verdict tables of docs/benchmarks.md render its results.

    python bench/rejudge.py --bench runs/bench-full --samples 1000 \\
        --add-reference embed/owner-1 --add-reference embed/owner-2 \\
        --add-reference embed/owner-3 --results bench/results/full-rejudged.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sleuth.bench.rejudge import rejudge
from sleuth.fileio import atomic_write_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", type=Path, default=Path("runs/bench-full"))
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument(
        "--add-reference",
        action="append",
        default=[],
        help="a bench model (cell key, e.g. embed/owner-1) added to every cell's references",
    )
    parser.add_argument("--work", type=Path, help="default: runs/rejudge-<bench folder's name>")
    parser.add_argument("--results", type=Path, default=Path("bench/results/full-rejudged.json"))
    args = parser.parse_args()
    work = args.work or args.bench.parent / f"rejudge-{args.bench.name}"
    results = rejudge(args.bench, work, args.samples, tuple(args.add_reference))
    atomic_write_text(args.results, json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
