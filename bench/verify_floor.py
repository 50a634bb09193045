"""Verification against its floor (issue 18, item 2), as ratios measured in one run.

The least work a verification needs is one forward pass of every model involved (victim,
suspect, references) over the challenge's images. This measures, on the demo's models:

1. that floor and `run_verify`'s in-process wall time at 100, 500 and 4,000 samples, and the
   whole `sleuth verify` process (imports included) at the same sizes, each measured
   ``--repeats`` times in turn (floor, in process, process), the least of each kept;
2. a process start: `sleuth --version` (import to first output);
3. ten suspects verified against the same references, without and with `--cache`.

Needs a finished demo (`sleuth demo --out runs/demo`). Writes bench/results/verify-floor.json.

    python bench/verify_floor.py [--demo runs/demo] [--repeats 3]
    python bench/verify_floor.py --ten-only --results bench/results/verify-floor-ten.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from sleuth.bench.runner import machine
from sleuth.fileio import atomic_write_text
from sleuth.models import load_encoder, load_owner_key
from sleuth.verify import ChallengeSettings, build_challenge, run_verify

SIZES = (100, 500, 4000)


def floor_seconds(models: list[Path], key: Path, settings: ChallengeSettings) -> float:
    """One forward pass of every model over the challenge (the challenge built outside)."""
    images = build_challenge(load_owner_key(key), settings).images
    encoders = [load_encoder(m) for m in models]
    start = time.perf_counter()
    with torch.no_grad():
        for encoder in encoders:
            encoder.represent(images)
    return time.perf_counter() - start


def cli(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sleuth", *args], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", default="runs/demo")
    parser.add_argument("--results", default="bench/results/verify-floor.json")
    parser.add_argument(
        "--repeats", type=int, default=3, help="measurements of each, the least kept"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--no-ten", action="store_true", help="skip the ten-suspect case")
    parser.add_argument("--ten-only", action="store_true", help="only the ten-suspect case")
    args = parser.parse_args()
    load_before = os.getloadavg()
    demo = Path(args.demo)
    victim = demo / "victim"
    references = sorted(demo.glob("independent-*"))[:5]
    refs = [str(r) for r in references]
    suspect = demo / "stolen-mse"
    models = [
        victim / "encoder.pt",
        suspect / "encoder.pt",
        *(r / "encoder.pt" for r in references),
    ]
    rows = []
    for samples in [] if args.ten_only else args.sizes:
        settings = ChallengeSettings(samples=samples)
        command = [
            "verify",
            str(suspect),
            "--victim",
            str(victim),
            "--samples",
            str(samples),
            "--quiet",
            "--json",
        ]
        for r in refs:
            command += ["--reference", r]
        floors, insides, wholes = [], [], []
        for _ in range(args.repeats):  # interleaved, so that a load that comes and goes hits all
            floors.append(floor_seconds(models, victim / "owner-key.pt", settings))
            start = time.perf_counter()
            run_verify([str(victim)], suspect=str(suspect), references=refs, settings=settings)
            insides.append(time.perf_counter() - start)
            wholes.append(cli(command))
        floor, inside, whole = min(floors), min(insides), min(wholes)
        rows.append(
            {
                "samples": samples,
                "floor_s": floor,
                "in_process_s": inside,
                "process_s": whole,
                "ratio_in_process": inside / floor,
                "ratio_process": whole / floor,
                "all_s": {"floor": floors, "in_process": insides, "process": wholes},
            }
        )
        print(rows[-1], flush=True)
    start_s = min(cli(["--version"]) for _ in range(3))
    result = {"machine": machine("cpu"), "repeats": args.repeats, "sizes": rows}
    result["created"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["process_start_s"] = start_s
    if not args.no_ten:
        result["ten_suspects"] = ten_suspects(demo, references, refs)
    result["load_average"] = [load_before, os.getloadavg()]
    atomic_write_text(Path(args.results), json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def ten_suspects(demo: Path, references: list[Path], refs: list[str]) -> dict:
    """Ten suspects verified one process each against the same references, without and with
    the answer cache (the references' and the victim's answers)."""
    victim = demo / "victim"
    suspects = sorted(
        p
        for p in demo.iterdir()
        if (p / "encoder.pt").exists()
        and p.name.startswith(("stolen-", "independent-"))
        and p not in references
    )[:10]
    cache = Path(tempfile.mkdtemp(prefix="sleuth-cache-"))
    ten = {}
    for label, extra in (("no cache", []), ("cache", ["--cache", str(cache)])):
        start = time.perf_counter()
        for s in suspects:
            command = [
                "verify",
                str(s),
                "--victim",
                str(victim),
                "--samples",
                "500",
                "--quiet",
                "--json",
                *extra,
            ]
            for r in refs:
                command += ["--reference", r]
            cli(command)
        ten[label] = time.perf_counter() - start
    shutil.rmtree(cache, ignore_errors=True)
    return {"suspects": len(suspects), **ten, "ratio": ten["no cache"] / ten["cache"]}


if __name__ == "__main__":
    main()
