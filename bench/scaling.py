"""Scaling (issue 6, part): verification time against the number of challenge samples.

Needs a finished demo (`sleuth demo --out runs/demo2`): verifies its mse copy against its five
independent encoders at each sample count and records wall time, queries and the verdict.
Writes bench/results/scaling.json.

    python bench/scaling.py [--demo runs/demo2] [--samples 250,500,1000,2000,4000]
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from sleuth.verify import ChallengeSettings, run_verify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demo", default="runs/demo2")
    parser.add_argument("--samples", default="250,500,1000,2000,4000")
    parser.add_argument("--results", default="bench/results/scaling.json")
    args = parser.parse_args()
    demo = Path(args.demo)
    refs = sorted(str(p) for p in demo.glob("independent-*"))
    rows = []
    for n in (int(s) for s in args.samples.split(",")):
        result = run_verify(
            [str(demo / "victim")],
            suspect=str(demo / "stolen-mse"),
            references=refs,
            settings=ChallengeSettings(samples=n),
        )
        rows.append(
            {
                "samples": n,
                "queries": result.victims[0].queries,
                "seconds": round(result.seconds, 2),
                "verdict": result.verdict,
            }
        )
        print(rows[-1], flush=True)
    record = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}",
        "models": 2 + len(refs),
        "verify": rows,
    }
    Path(args.results).write_text(json.dumps(record, indent=2) + "\n")
    plot(rows, Path("docs/scaling-verify.png"))


def plot(rows: list[dict], path: Path) -> None:
    """Verification seconds against samples, for docs/benchmarks.md."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.2), dpi=100, layout="constrained")
    ax = fig.subplots()
    ax.plot([r["samples"] for r in rows], [r["seconds"] for r in rows], "o-")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("challenge samples (private and public each)")
    ax.set_ylabel("verification seconds")
    ax.set_title("sleuth verify: suspect, victim, 5 references")
    FigureCanvasAgg(fig).print_png(str(path))


if __name__ == "__main__":
    main()
