"""manifest.json: what was made, from what, by which versions, how long it took, how well it did."""

from __future__ import annotations

import ast
import functools
import hashlib
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


PACKAGE_DIR = Path(__file__).resolve().parent


@functools.cache
def source_digest(exclude: tuple[str, ...] = ()) -> str:
    """SHA-256 of what sleuth's code does: every module's syntax tree without docstrings, so that
    a comment, a docstring or reformatting leaves it unchanged and any change of behaviour does
    not; ``exclude`` holds the modules left out, as paths inside the package or their prefixes
    (``cli.py``, ``reports/``).
    A development checkout's version string cannot tell its commits apart; this can."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        name = path.relative_to(PACKAGE_DIR).as_posix()
        if name.startswith(exclude):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (
                isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                and body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
        digest.update(f"{name}\n{ast.dump(tree)}\n".encode())
    return digest.hexdigest()


def environment() -> dict[str, str]:
    """Versions that decide whether a result can be reproduced."""
    return {
        "sleuth": __version__,
        "sleuth_source": source_digest()[:16],
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
