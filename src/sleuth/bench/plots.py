"""The scaling figure: how verification, embedding and stealing time grow with their inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sleuth.bench.plan import steal_key
from sleuth.fileio import atomic_write


def _series(cells: dict[str, Any], kind: str, by: str, x: str, y: str) -> dict[str, list]:
    """{series name: sorted [(x, y)]} from the cells of ``kind``, one series per ``by`` value."""
    out: dict[str, list] = {}
    for c in cells.values():
        if c["kind"] == kind:
            r = c["result"]
            out.setdefault(r[by], []).append((r[x], r[y]))
    return {name: sorted(points) for name, points in out.items()}


def scaling_plot(results: dict[str, Any], path: Path) -> Path | None:
    """Three log-log panels (PNG); None when the bench has no scaling cells yet."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    cells = results["cells"]
    suite = results["suite_definition"]
    # the copies of the sweep only (the table's), not the surrogate-size StolenEncoder copies
    steals = {
        a: [cells[k]["result"] for b in suite["budgets"] if (k := steal_key(a, b)) in cells]
        for a in suite["sweep"]
    }
    steal_series = {
        a: sorted((r["queries_used"], r["steal_s"]) for r in rs) for a, rs in steals.items() if rs
    }
    panels = [
        (
            "verification",
            "challenge samples",
            _series(cells, "time-verify", "arch", "samples", "seconds"),
        ),
        (
            "embedding (one epoch)",
            "training images",
            _series(cells, "time-embed", "arch", "images", "epoch_s"),
        ),
        ("stealing", "queries", steal_series),
    ]
    panels = [p for p in panels if p[2]]
    if not panels:
        return None
    fig = Figure(figsize=(4.2 * len(panels), 3.4), dpi=100, layout="constrained")
    for ax, (title, xlabel, series) in zip(
        fig.subplots(1, len(panels), squeeze=False)[0], panels, strict=True
    ):
        for name, points in series.items():
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, "o-", label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        # ticks at the measured sizes, in plain numbers: the log axes' own labels collide
        ax.set_xticks(sorted({x for points in series.values() for x, _ in points}))
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(ScalarFormatter())
            axis.set_minor_formatter(NullFormatter())
        ax.tick_params(axis="x", labelrotation=45)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("seconds")
        ax.legend(fontsize="small")
    fig.suptitle(f"sleuth bench --suite {results['suite']}: time against input size")
    return atomic_write(path, lambda tmp: FigureCanvasAgg(fig).print_png(str(tmp)))
