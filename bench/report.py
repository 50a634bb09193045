"""Report benchmark (issue 5): how long a signed report takes beyond the verification itself.

Needs a finished demo (`sleuth demo --out runs/demo`): verifies its mse copy at the default
1,000 samples, then writes the signed report several times, with and without the PDF.
Writes bench/results/report.json.

    python bench/report.py [--demo runs/demo] [--samples 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from sleuth.bench.runner import machine
from sleuth.fileio import atomic_write_text
from sleuth.reports import (
    Evidence,
    check_report,
    generate_keypair,
    load_private_key,
    load_public_key,
    write_report,
)
from sleuth.reports.pdf import find_browser
from sleuth.verify import ChallengeSettings, run_verify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demo", default="runs/demo")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--results", default="bench/results/report.json")
    args = parser.parse_args()
    demo = Path(args.demo)
    refs = sorted(str(p) for p in demo.glob("independent-*"))
    result = run_verify(
        [str(demo / "victim")],
        suspect=str(demo / "stolen-mse"),
        references=refs,
        settings=ChallengeSettings(samples=args.samples),
    )
    with tempfile.TemporaryDirectory() as tmp:
        private, public, _ = generate_keypair(Path(tmp) / "keys")
        key, pub = load_private_key(private), load_public_key(public)
        runs: dict[str, list[float]] = {}
        sizes: dict[str, int] = {}
        for pdf in (False, True) if find_browser() else (False,):
            label = "with PDF" if pdf else "without PDF"
            for i in range(args.repeat):
                out = Path(tmp) / f"r-{label}-{i}"
                start = time.perf_counter()
                write_report(Evidence.from_result(result), out, private_key=key, pdf=pdf)
                runs.setdefault(label, []).append(time.perf_counter() - start)
                sizes = {p.name: p.stat().st_size for p in out.iterdir()}
            start = time.perf_counter()
            assert check_report(out, pub).ok
            runs.setdefault(f"check ({label})", []).append(time.perf_counter() - start)
    hw = machine()
    record = {
        "machine": f"{hw['cpu']}, {hw['cores']} cores, torch {hw['torch']}",
        "demo": args.demo,
        "samples": args.samples,
        "verify_seconds": round(result.seconds, 2),
        "verdict": result.verdict,
        "report_seconds": {k: [round(x, 3) for x in v] for k, v in runs.items()},
        "report_median_seconds": {k: round(statistics.median(v), 3) for k, v in runs.items()},
        "file_bytes": sizes,
    }
    atomic_write_text(Path(args.results), json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
