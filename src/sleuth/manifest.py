"""manifest.json: what was made, from what, by which versions, how long it took, how well it did."""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from sleuth import __version__
from sleuth.fileio import atomic_write_text, sha256_file

MANIFEST_NAME = "manifest.json"


def environment() -> dict[str, str]:
    """Versions that decide whether a result can be reproduced."""
    return {
        "sleuth": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_manifest(
    out_dir: str | Path,
    files: Iterable[str],
    *,
    kind: str,
    seed: int | None,
    timings: Mapping[str, float],
    metrics: Mapping[str, Any],
    details: Mapping[str, Any],
    argv: list[str] | None = None,
) -> Path:
    """Hash ``files`` (names inside ``out_dir``) and write the manifest atomically."""
    out_dir = Path(out_dir)
    manifest = {
        "kind": kind,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": list(sys.argv if argv is None else argv),
        "seed": seed,
        "environment": environment(),
        "files": {name: {"sha256": sha256_file(out_dir / name)} for name in files},
        "timings_s": {k: round(float(v), 3) for k, v in timings.items()},
        "metrics": dict(metrics),
        "details": dict(details),
    }
    return atomic_write_text(out_dir / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    """The manifest of an artifact folder (empty when there is none)."""
    path = Path(out_dir) / MANIFEST_NAME
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
