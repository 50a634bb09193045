"""Shared fixtures: tiny synthetic datasets, so tests never need the network or ../shared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


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
