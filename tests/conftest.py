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
