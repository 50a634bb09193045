"""Render docs/benchmarks.md from bench/results/*.json, with the papers' numbers beside ours.

The suites' tables come from ``sleuth.bench.tables`` (the same as each bench's tables.md); the
foundation, report and demo sections from their own scripts' results.

python bench/render.py > docs/benchmarks.md
"""

from __future__ import annotations

import json
from pathlib import Path

from sleuth.bench.plots import scaling_plot
from sleuth.bench.tables import machine_line, pct, render

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs"


def load(name: str) -> dict:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def foundation() -> list[str]:
    f = load("foundation")
    if not f:
        return ["*(not run yet: `python bench/foundation.py`)*"]
    runs = f["runs"]
    out = [
        f"Machine: {f['machine']}.",
        "",
        "Command: `python bench/foundation.py --refs 3` (demo preset: smallresnet, 30 epochs, "
        "batch 256, Adam 1e-3 cosine; 4,000 private training images of the embedded data).",
        "",
        "| encoder | train s | images/s | own watermark acc. | linear probe (demo) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, r in runs.items():
        wm = r["own_watermark_accuracy"]
        out.append(
            f"| {name} | {r['train_s']:.1f} | {r['images_per_s']:.0f} | "
            f"{'–' if wm is None else f'{wm:.3f}'} | {pct(r['probe_accuracy'])} |"
        )
    out += [
        "",
        "Accuracy of every encoder's representations on each victim's augmentation "
        "predictor (rotated private images; chance 0.5):",
        "",
        "| encoder | " + " | ".join(k for k in runs if "scored_on_predictor" in runs[k]) + " |",
        "| --- |" + " ---: |" * sum("scored_on_predictor" in r for r in runs.values()),
    ]
    victims = [k for k in runs if "scored_on_predictor" in runs[k]]
    for name in runs:
        out.append(
            f"| {name} | "
            + " | ".join(f"{runs[v]['scored_on_predictor'][name]:.3f}" for v in victims)
            + " |"
        )
    half, plain = runs["victim-half"], runs["plain-seed0"]
    out += [
        "",
        "Acceptance (issue 2):",
        f"- `sleuth embed --data demo --preset demo`: {half['wall_s']:.0f} s wall (limit 240 s).",
        f"- victim watermark accuracy {half['own_watermark_accuracy']:.3f} (`half`, the paper's "
        f"split) and {runs['victim-flip']['own_watermark_accuracy']:.3f} (`flip`); limit ≥ 0.90.",
        f"- linear probe with and without watermark (same seed): {pct(half['probe_accuracy'])} vs "
        f"{pct(plain['probe_accuracy'])}: {100 * (half['probe_accuracy'] - plain['probe_accuracy']):+.2f}"
        " points (limit ±1.5).",
        f"- training-time overhead of the watermark: {half['train_s'] / plain['train_s']:.3f}× "
        "(limit 1.15×).",
    ]
    return out


def report() -> list[str]:
    r = load("report")
    if not r:
        return ["*(not run yet: `python bench/report.py`)*"]
    med = r["report_median_seconds"]
    rows = [
        f"| {label} | {med[label]:.2f} | {', '.join(f'{x:.2f}' for x in r['report_seconds'][label])} |"
        for label in med
    ]
    return [
        f"Machine: {r['machine']}. The demo's mse copy verified at {r['samples']} samples "
        f"({r['verify_seconds']:.1f} s, verdict {r['verdict']}), then its signed report written "
        "(evidence.h5, plots, report.html, optionally report.pdf through headless Chromium, "
        "statement, signature) and checked.",
        "",
        f"Command: `python bench/report.py --demo {r['demo']}` (after `sleuth demo --out "
        f"{r['demo']}`).",
        "",
        "| step | median s | runs (s) |",
        "| --- | ---: | --- |",
        *rows,
        "",
        "Sizes (bytes): " + ", ".join(f"{k} {v:,}" for k, v in r["file_bytes"].items()) + ".",
        "",
        f"Acceptance (issue 5): a report in at most 10 s beyond the verification: "
        f"{max(v for k, v in med.items() if not k.startswith('check')):.1f} s.",
    ]


def demo() -> list[str]:
    d = load("demo")
    if not d:
        return ["*(not run yet: `sleuth demo --json`)*"]
    rows = [
        f"| {r['suspect']} | {r['made']} | {r['verdict']} | {r['strongest']} | "
        f"{r['verify_seconds']:.1f} | {r['report_seconds']:.1f} | {r['check']} |"
        for r in d["rows"]
    ]
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in d["timings_s"].items() if k != "total")
    return [
        f"Machine: {d['machine']}. Command: `{d['command']}` on a fresh folder.",
        "",
        "| suspect | how it was made | verdict | strongest test | verify s | report s | check |",
        "| --- | --- | --- | --- | ---: | ---: | --- |",
        *rows,
        "",
        f"Wall time {d['wall_seconds']:.0f} s (limit 600 s); stages: {stages}.",
    ]


def verdict() -> list[str]:
    """The verdict benchmark (bench/verdict.py): the default secret intervals, then the old
    shared ``half`` intervals, each with its own zoo."""
    from verdict import render as verdict_tables  # bench/verdict.py, beside this script

    out = []
    for name, what, made in (
        ("verdict", "a victim with secret intervals (the default since issue 15)", ""),
        (
            "verdict-half",
            "a victim with the shared `half` intervals (the default before)",
            " Made with an earlier state of this change (commit 5517ee2), in which the aligned "
            "watermark counted and sequential rounds spent α equally; kept for the other "
            "owners' watermark scores and as a second victim.",
        ),
    ):
        r = load(name)
        if not r:
            out += [
                f"*(not run yet: `python bench/verdict.py --results bench/results/{name}.json`)*"
            ]
            continue
        s = r["settings"]
        out += [
            f"### {what.capitalize()}",
            "",
            f"Machine: {machine_line(r['machine'])}. {s['samples']} challenge samples ({s['queries']:,} "
            f"queries), α = {s['alpha']}, {r['seconds'] / 60:.0f} minutes in all.{made}",
            "",
            *verdict_tables(r).splitlines(),
            "",
        ]
    return out


def speeds() -> str:
    """How fast the same victim recipe trained in each section's run."""
    parts = []
    if f := load("foundation"):
        parts.append(
            f"the foundation's victim trained at {f['runs']['victim-half']['images_per_s']:,.0f} "
            "images/s"
        )
    for name in ("full", "quick"):
        if victim := load(name).get("cells", {}).get("embed/victim"):
            parts.append(f"the {name} suite's at {victim['result']['images_per_s']:,.0f} images/s")
    return ", ".join(parts) + " with the same code"


def suite(name: str) -> list[str]:
    """Every table of a ``sleuth bench`` suite, from bench/results/NAME.json, and its scaling
    plot drawn again from the same results into docs/."""
    results = load(name)
    if not results:
        return [f"*(not run yet: `sleuth bench --suite {name}`)*"]
    plot = scaling_plot(results, DOCS / f"scaling-{name}.png")
    return render(
        results, out_dir=f"runs/bench-{name}", level=3, plot=plot and plot.name
    ).splitlines()


def main() -> None:
    lines = [
        "# Benchmarks",
        "",
        "Every figure here is regenerated by the command beside it, then rendered with "
        "`python bench/render.py > docs/benchmarks.md`. Raw results: `bench/results/*.json` "
        "(a bench's `results.json` is copied there: `cp runs/bench-full/results.json "
        "bench/results/full.json`).",
        "Times are wall-clock seconds on the machine each section names. Machines of one kind "
        f"differ in speed ({speeds()}): compare times within a section.",
        "",
        "## Verdicts with margin: zoo, free transformations, sequential, the null (issue 15)",
        "",
        "Command: `sleuth demo --out runs/demo-r`, `sleuth references --victim "
        "runs/demo-r/victim --n 17 --owners 3 --out runs/zoo-r`, then `python bench/verdict.py "
        "--demo runs/demo-r --zoo runs/zoo-r` (it steals the extra copies itself). Copies are "
        "judged against the zoo (17 unwatermarked encoders by the victim's recipe and 3 "
        "watermarked other owners) and against the demo's six independent encoders; "
        "transformed copies as black-box answers against the zoo; under the null every zoo "
        "member against the other 19 and every demo independent against the zoo. The reasoning "
        "is in docs/verification.md.",
        "",
        *verdict(),
        "## The papers' tables at CPU scale: `sleuth bench --suite full` (issue 6)",
        "",
        "These suites ran before issue 15 changed the tests and the rule (alignment first, the "
        "similarity family, clearing only with evidence of independence, secret intervals): "
        "their verdict tables show the old rule, the section above the new one.",
        "",
        *suite("full"),
        "",
        "## The quick suite: every table at toy scale (issue 6)",
        "",
        *suite("quick"),
        "",
        "## Foundation: embedding (issue 2)",
        "",
        *foundation(),
        "",
        "## Signed reports (issue 5)",
        "",
        *report(),
        "",
        "## The demo (issue 6)",
        "",
        *demo(),
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
