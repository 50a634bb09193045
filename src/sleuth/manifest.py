"""manifest.json: what was made, from what, by which versions, how long it took, how well it did."""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import json
import os
import platform
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from sleuth import __version__
from sleuth.errors import SleuthError
from sleuth.fileio import atomic_write_text, sha256_file

MANIFEST_NAME = "manifest.json"


PACKAGE_DIR = Path(__file__).resolve().parent


SOURCE_CACHE_ENTRIES = 4096  # syntax-tree digests kept, the most recently written last


def _source_cache() -> Path:
    """Where the syntax-tree digests of source files are kept between processes (XDG's cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sleuth" / "source-trees.json"


def _read_tree_cache(path: Path) -> dict[str, str]:
    """The cached digests for this Python (whose ``ast.dump`` they came from); {} when the file
    is missing, unreadable, not ours or from another Python."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict) or data.get("python") != platform.python_version():
        return {}
    trees = data.get("trees")
    if not isinstance(trees, dict):
        return {}
    return {k: v for k, v in trees.items() if isinstance(k, str) and isinstance(v, str)}


def _tree_digest(text: str) -> str:
    """SHA-256 of a module's syntax tree without its docstrings."""
    tree = ast.parse(text)
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
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


@functools.cache
def source_digest(exclude: tuple[str, ...] = ()) -> str:
    """SHA-256 of what sleuth's code does: every module's syntax tree without docstrings, so that
    a comment, a docstring or reformatting leaves it unchanged and any change of behaviour does
    not; ``exclude`` holds the modules left out, as paths inside the package or their prefixes
    (``cli.py``, ``reports/``).
    A development checkout's version string cannot tell its commits apart; this can.
    Parsing every module costs 0.6-1 s a process (measured, issue 18), so each module's tree
    digest is cached by the SHA-256 of its bytes (``_source_cache``): a changed byte is a miss,
    and a cache that cannot be read or written only costs the parsing."""
    cache_path = _source_cache()
    cached = _read_tree_cache(cache_path)
    fresh: dict[str, str] = {}
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        name = path.relative_to(PACKAGE_DIR).as_posix()
        if name.startswith(exclude):
            continue
        raw = path.read_bytes()
        key = hashlib.sha256(raw).hexdigest()
        tree = cached.get(key) or fresh.get(key) or _tree_digest(raw.decode("utf-8"))
        if key not in cached:
            fresh[key] = tree
        digest.update(f"{name}\n{tree}\n".encode())
    if fresh:
        kept = list({**cached, **fresh}.items())[-SOURCE_CACHE_ENTRIES:]
        record = {"python": platform.python_version(), "trees": dict(kept)}
        with contextlib.suppress(OSError, SleuthError):  # a read-only home only costs time
            atomic_write_text(cache_path, json.dumps(record) + "\n")
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
