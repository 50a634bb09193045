"""Atomic writes, digests and output folders: nothing half-written is ever left behind."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from sleuth.errors import SleuthError


def umask() -> int:
    """The process's umask (read without changing it for longer than an instant)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(
    path: str | Path, write: Callable[[Path], None], *, mode: int | None = None
) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place.

    The file gets ``mode`` (set before anything is written), else the usual permissions under
    the umask (a temporary file alone would be readable by its owner only).
    """
    path = Path(path)
    if path.is_dir():
        raise SleuthError(f"cannot write {path}: it is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise SleuthError(f"cannot write {path} ({exc.strerror or exc})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    wanted = mode if mode is not None else 0o666 & ~umask()
    try:
        os.chmod(tmp, wanted)
        write(tmp)
        os.chmod(tmp, wanted)  # a writer may have replaced the file (safetensors does)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a folder put there meanwhile: one line, no temp file
        raise SleuthError(f"cannot write {path} ({exc.strerror or exc})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_writable(path: str | Path) -> None:
    """Refuse a path that cannot be created, before anything is computed for it: one under a
    file, or where nothing can be written (``/proc``, a read-only or foreign folder). The
    nearest existing folder is probed with a temporary folder, removed at once (as root,
    permission bits alone say nothing)."""
    path = Path(path)
    start = path if path.is_dir() else path.parent
    ancestor = start
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise SleuthError(f"cannot write {path}: {ancestor} is a file, not a folder")
    try:
        tempfile.TemporaryDirectory(prefix=".sleuth-probe.", dir=ancestor).cleanup()
    except OSError as exc:
        raise SleuthError(
            f"cannot write {path}: {ancestor} is not writable ({exc.strerror})"
        ) from None


def check_out_file(path: str | Path, *, force: bool, option: str = "") -> Path:
    """Refuse an existing file unless ``force``, a folder always, and a path that cannot be
    written; create nothing. ``option`` names it in the message (e.g. ``--save``)."""
    path = Path(path)
    name = f"{option} {path}" if option else str(path)
    if path.is_dir():
        raise SleuthError(f"{name} is a folder: give a file name")
    if path.exists() and not force:
        raise SleuthError(f"{name} exists (use --force to overwrite it)")
    check_writable(path)
    return path


def check_out_dir(path: str | Path, *, force: bool, resume: bool = False) -> Path:
    """Refuse a non-empty existing folder unless ``force`` or ``resume``, and a path that cannot
    be written; create nothing yet."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SleuthError(f"output path exists and is not a folder: {path}")
    if path.is_dir() and any(path.iterdir()) and not (force or resume):
        raise SleuthError(f"output folder {path} is not empty (use --force to overwrite)")
    check_writable(path)
    return path


def prepare_out_dir(path: str | Path, *, force: bool, resume: bool = False) -> Path:
    """``check_out_dir``, then create the folder."""
    path = check_out_dir(path, force=force, resume=resume)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SleuthError(f"cannot make {path} ({exc.strerror or exc})") from None
    return path
