"""Shared fixtures: tiny synthetic datasets, so tests never need the network or ../shared."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    # pytest-xdist runs the files on parallel workers: each worker (and every process it starts)
    # gets its share of the cores, not all of them, or the workers' thread pools fight
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    _threads = max(1, (_cores or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ["OMP_NUM_THREADS"] = str(_threads)
    torch.set_num_threads(_threads)


def synthetic_images(n: int = 96, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Grey images: a class-dependent stripe pattern, a top-to-bottom brightness ramp (so that
    rotations are visible, as in natural images) and noise: (N, H, W) uint8, labels."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    yy, xx = np.mgrid[:size, :size]
    patterns = np.stack([(xx // 2) % 2, (yy // 2) % 2, ((xx + yy) // 3) % 2]).astype(np.float64)
    ramp = yy / (size - 1) * 60
    x = patterns[y] * 120 + ramp + rng.uniform(0, 70, size=(n, size, size))
    return x.clip(0, 255).astype(np.uint8), y.astype(np.int64)


@pytest.fixture
def tiny_npz(tmp_path: Path) -> str:
    """``npz:`` spec of 96 labelled 16x16 grey images."""
    x, y = synthetic_images()
    path = tmp_path / "tiny.npz"
    np.savez(path, x=x, y=y)
    return f"npz:{path}"


@pytest.fixture(scope="session")
def make_images():
    """The synthetic image generator, for tests that build their own files."""
    return synthetic_images


REF_SEEDS = (1, 2, 3, 4, 5)


@pytest.fixture(scope="session")
def zoo(tmp_path_factory):
    """Two watermarked victims and five independent references on synthetic data (seconds)."""
    from sleuth.embed import EmbedConfig, run_embed

    root = tmp_path_factory.mktemp("zoo")
    x, y = synthetic_images(n=300, seed=3)
    np.savez(root / "data.npz", x=x, y=y)
    spec = f"npz:{root / 'data.npz'}"
    # explicit intervals: the default draws a secret per owner, and these tests must reproduce
    base = dict(
        data=spec,
        epochs=8,
        batch_size=32,
        lr=3e-3,
        rep_dim=16,
        wm_fraction=0.5,
        wm_intervals="half",
    )
    for name, kw in {
        "victim": {},
        "victim2": {"seed": 7},
        **{f"ref{s}": {"seed": s, "watermark": False} for s in REF_SEEDS},
    }.items():
        run_embed(EmbedConfig(**{**base, **kw}), root / name, device="cpu")
    return root


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the session. Skipped only where none can start here, saying
    why; CI sets SLEUTH_REQUIRE_SERVICES=1 (after installing the server), where that fails."""
    import os

    from sleuth.serve.process import Postgres

    why = Postgres.missing()
    if why:
        if os.environ.get("SLEUTH_REQUIRE_SERVICES") == "1":
            pytest.fail(f"SLEUTH_REQUIRE_SERVICES=1 but {why}")
        pytest.skip(why)
    server = Postgres()
    yield server
    server.stop()


@pytest.fixture
def require_browser():
    """Headless Chromium, skipped only where none is installed (failing under
    SLEUTH_REQUIRE_SERVICES=1, as in CI, which installs it)."""
    import os

    from sleuth.reports.pdf import find_browser

    if find_browser() is None:
        if os.environ.get("SLEUTH_REQUIRE_SERVICES") == "1":
            pytest.fail("SLEUTH_REQUIRE_SERVICES=1 but no Chromium is installed")
        pytest.skip("no Chromium installed (apt-get install chromium)")


@pytest.fixture(scope="session")
def cli_walk(tmp_path_factory):
    """Every command that produces a result, run once through the CLI with --json at the
    smallest settings, each on the previous ones' output (owner, thief, investigator, report):
    a ``Walk`` of the folder and each command's CliRunner result. The demo's and the bench's
    computations are stand-ins (the demo's own test runs it; bench cells are instant), so the
    walk checks what those commands print, in seconds."""
    from typer.testing import CliRunner

    from sleuth.cli import app

    root = tmp_path_factory.mktemp("walk")
    x, y = synthetic_images(n=96)
    np.savez(root / "tiny.npz", x=x, y=y)
    w = Walk(root, f"npz:{root / 'tiny.npz'}", {})
    p = w.path
    tiny = ["--epochs", "1", "--device", "cpu", "--json"]
    db = ["--db", f"sqlite:///{root / 'serve.db'}", "--json"]
    pub = ["--pub", p("keys/sleuth-signing.pub"), "--json"]
    steps = {
        "archs": ["archs", "--json"],
        "embed": ["embed", "--data", w.spec, "--out", p("victim"), *tiny, *w.embed_options],
        "references": ["references", "--victim", p("victim"), "--n", "1", "--out", p("zoo")],
        "steal": ["steal", "--victim", p("victim"), "--data", w.spec, "--public-split"],
        "evaluate": ["evaluate", p("copy/encoder.pt"), "--task", w.spec, "--json"],
        "convert": ["convert", p("copy/encoder.pt"), p("copy.safetensors"), "--json"],
        "challenge": ["challenge", "--victim", p("victim"), "--out", p("ch.h5"), "--samples", "10"],
        "keys init": ["keys", "init", "--out", p("keys"), "--json"],
        "verify": [*w.verify, "--save", p("saved.h5"), "--out", p("report"), "--no-pdf", "--json"],
        "report make": ["report", "make", p("saved.h5"), "--out", p("report2"), "--no-pdf"],
        "report check": ["report", "check", p("report"), *pub],
        "report show": ["report", "show", p("report"), *pub],
        "report rerun": ["report", "rerun", p("report"), *pub],
        "demo": ["demo", "--out", p("demo"), "--json"],
        "bench": ["bench", "--only", "embed", "--out", p("bench"), "--json"],
        "serve users add": ["serve", "users", "add", "alice", *db],
        "serve users list": ["serve", "users", "list", *db],
    }
    steps["references"] += tiny
    steps["steal"] += ["--queries", "32", "--out", p("copy"), *tiny]
    steps["challenge"] += ["--json"]
    steps["verify"] += ["--sign-key", p("keys/sleuth-signing.key")]
    steps["report make"] += ["--json"]
    runner = CliRunner()
    with pytest.MonkeyPatch.context() as mp:
        _instant_demo_and_bench(mp, root)
        for name, args in steps.items():
            w.results[name] = runner.invoke(app, args)
    return w


@dataclass
class Walk:
    """The folder of ``cli_walk``: tiny data, a victim with its zoo, a copy, a report."""

    root: Path
    spec: str
    results: dict

    embed_options = ("--batch-size", "16", "--rep-dim", "8", "--wm-intervals", "half")

    def path(self, name: str) -> str:
        return str(self.root / name)

    @property
    def verify(self) -> list[str]:
        """verify's arguments for the copy, without an output."""
        p = self.path
        return ["verify", p("copy"), "--victim", p("victim"), "--reference", p("zoo"),
                "--samples", "10"]  # fmt: skip


def _instant_demo_and_bench(mp: pytest.MonkeyPatch, root: Path) -> None:
    """An instant demo (it still says what it does and opens its progress bars) and instant
    bench cells and tables."""
    from sleuth import demo
    from sleuth.bench import plots, runner, tables

    def fake_demo(out_dir, *, force, resume, device, say, progress):
        say("training victim")
        with progress("embed"), progress("steal"):
            pass
        row = demo.DemoRow("stolen-mse", "mse", "stolen", "stolen", "-", "r", "ok", 1.0, 1.0)
        return demo.DemoResult(Path(out_dir), [row], root / "keys", {"total": 1.0})

    mp.setattr(demo, "run_demo", fake_demo)
    mp.setattr(runner, "KINDS", {k: (lambda ctx, cell: {"n": 1}) for k in runner.KINDS})
    mp.setattr(tables, "render", lambda results, **options: "tables")
    mp.setattr(plots, "scaling_plot", lambda results, path: None)
