"""The foundation benchmark (issue 2) as a suite: what embedding a watermark costs and gives.

A victim per interval split (the paper's ``half`` and ``flip``), the same recipe and seed
without the watermark (its time and utility overhead) and independent references by other
seeds; every encoder is then scored on each victim's augmentation predictor (chance 0.5) and on
the linear probe of ``--task``. Its cells are the papers' suites' embed cells, run, resumed and
reused by the same runner (``sleuth bench --suite foundation``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sleuth.bench.cells import Context, victim_watermark
from sleuth.bench.plan import Cell, Plan
from sleuth.bench.runner import (
    RESULTS_FILE,
    CellStore,
    Progress,
    bench_identity,
    check_folder,
    claim_folder,
    run_cells,
)
from sleuth.data import load_images
from sleuth.embed import EmbedConfig, from_preset
from sleuth.errors import SleuthError
from sleuth.fileio import atomic_write_text
from sleuth.manifest import environment
from sleuth.models import load_encoder

FORMAT = "sleuth-foundation"


@dataclass(frozen=True)
class FoundationSuite:
    """The recipe (its data replaced by --data), the interval splits a victim is trained with
    and the number of independent references (seeds ``recipe.seed + 1 ..``)."""

    name: str
    description: str
    recipe: EmbedConfig
    splits: tuple[str, ...] = ("half", "flip")
    references: int = 3

    def runs(self, data: str) -> dict[str, EmbedConfig]:
        """Every encoder on ``data``, by name; the first is the victim the others are measured
        against."""
        recipe = replace(self.recipe, data=data)
        seed = recipe.seed
        runs = {f"victim-{s}": replace(recipe, watermark=True, wm_intervals=s) for s in self.splits}
        runs[f"plain-seed{seed}"] = replace(recipe, watermark=False)
        for i in range(1, self.references + 1):
            runs[f"ref-seed{seed + i}"] = replace(recipe, watermark=False, seed=seed + i)
        return runs


FOUNDATION_SUITES: dict[str, FoundationSuite] = {
    "foundation": FoundationSuite(
        name="foundation",
        description="the demo preset's cost, watermark strength and utility on the embedded "
        "data: two victims, their recipe without the watermark and three references, about "
        "12 minutes on 2 CPU cores",
        recipe=from_preset("demo"),
    ),
}


@dataclass
class FoundationResult:
    """Where the results are, what they say and which cells ran."""

    path: Path
    results: dict[str, Any]
    ran: list[str]
    reused: list[str]


def _cells(suite: FoundationSuite, data: str, task: str) -> list[Cell]:
    runs = suite.runs(data)
    first = f"embed/{next(iter(runs))}"
    cells = []
    for name, cfg in runs.items():
        key = f"embed/{name}"
        params = {"config": cfg.to_dict(), "task": task, "victim": first}
        label = f"{name}: {'watermarked' if cfg.watermark else 'no watermark'}, seed {cfg.seed}"
        cells.append(Cell(key, "embed", "embed", label, params, () if key == first else (first,)))
    return cells


def run_foundation(
    suite_name: str,
    out_dir: str | Path,
    *,
    data: str | None = None,
    task: str | None = None,
    device: str = "auto",
    progress: Progress = lambda _event: None,
    suite: FoundationSuite | None = None,
) -> FoundationResult:
    """Train (or reuse) the suite's encoders in ``out_dir``, score each on every victim's
    predictor and write ``results.json`` there. ``suite`` replaces the registered one (tests)."""
    if suite is None:
        try:
            suite = FOUNDATION_SUITES[suite_name]
        except KeyError:
            raise SleuthError(f"unknown foundation suite {suite_name!r}") from None
    data = data or "demo"
    task = task or data
    load_images(data, "train")  # a bad spec is refused before --out is made
    if load_images(task, "train").labels is None:
        raise SleuthError(f"--task {task} has no labels: the linear probe needs them")
    out = Path(out_dir)
    marker = bench_identity(suite.name, data, task)
    check_folder(out, marker)
    claim_folder(out, marker, device)
    store = CellStore(out)
    plan = Plan()  # parameters in the JSON-normal form the records hold
    for cell in _cells(suite, data, task):
        plan.add(cell)
    cells = list(plan.cells.values())
    ran, reused, hardware = run_cells(store, cells, device=device, progress=progress)
    ctx = Context(out, device)
    runs: dict[str, Any] = {}
    for cell in cells:
        record = store.record(cell.key)
        if record is None:
            raise SleuthError(f"{store.cell_file(cell.key)}: unreadable after its cell ran")
        result = record["result"]
        manifest = json.loads((ctx.model(cell.key) / "manifest.json").read_text())
        runs[cell.key.removeprefix("embed/")] = {
            "train_s": result["train_s"],
            "wall_s": manifest["timings_s"]["wall_this_run"],
            "images_per_s": result["images_per_s"],
            "own_watermark_accuracy": result["own_watermark"],
            "probe_accuracy": result["accuracy"],
        }
    victims = [c.key for c in cells if c.params["config"]["watermark"]]
    encoders = {c.key: load_encoder(ctx.model(c.key) / "encoder.pt") for c in cells}
    for victim in victims:
        runs[victim.removeprefix("embed/")]["scored_on_predictor"] = {
            key.removeprefix("embed/"): victim_watermark(ctx, victim, enc)
            for key, enc in encoders.items()
        }
    results = {
        **marker,
        "format": FORMAT,
        "description": suite.description,
        "recipe": suite.recipe.to_dict(),
        "machine": hardware,
        "environment": environment(),
        "command": list(sys.argv),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "runs": runs,
    }
    path = atomic_write_text(out / RESULTS_FILE, json.dumps(results, indent=2) + "\n")
    return FoundationResult(path, results, ran, reused)
