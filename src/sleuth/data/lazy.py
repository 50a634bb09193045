"""Images left in their files and read by index: data larger than memory.

A ``LazyImages`` is a view of some rows of a source (an image folder's files, an HDF5 dataset's
rows). Indexing it reads only those rows and gives a uint8 tensor with the bytes the in-memory
path would hold, so a consumer that indexes (a verification challenge, ``Encoder.represent``'s
batches, a steal's queries) works on either. ``folder:`` and ``h5:`` parts stream when they would
take more than ``STREAM_BYTES`` decoded in memory, or when the spec says ``stream=1``;
``stream=0`` keeps them in memory at any size.

Training reads its batches through a torch ``DataLoader`` whose workers decode them
(``BatchReader``): the trainer's own seeded order, each rank reading only its slice of each
global batch (what a ``DistributedSampler`` does, with batches identical to the in-memory path).

A streamed part's fingerprint is the in-memory one (the same SHA-256 over the same bytes, read in
order) and is computed once: it is kept in the user's cache folder (``$SLEUTH_CACHE/fingerprints``,
else ``$XDG_CACHE_HOME/sleuth/fingerprints``, else ``~/.cache/sleuth/fingerprints``) under a key
of the part, the resolved paths and every file's size, mtime, ctime and inode. Not beside the
data: data folders are often read-only or shared, and a fingerprint shipped with the data would
be the data's owner's word, not ours. ctime cannot be set back by a user, so a file rewritten
in any way (even with its old mtime restored) misses the cache and is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from sleuth.data.errors import DataError
from sleuth.errors import SleuthError
from sleuth.fileio import atomic_write_text

STREAM_BYTES = 2 << 30  # a part larger than this decoded (2 GiB) streams unless stream=0
CHUNK = 1024  # rows per read when a whole part is read in order (fingerprint, load)
_CACHE_FORMAT = "sleuth-fingerprint-cache-v1"
_HEX64 = re.compile(r"[0-9a-f]{64}")


class RowSource(Protocol):
    """Images stored somewhere, read by row."""

    shape: tuple[int, int, int, int]  # all rows, (N, C, H, W)

    def read(self, rows: np.ndarray) -> np.ndarray:
        """uint8 (len(rows), C, H, W) of ``rows`` (any order, repeats allowed)."""
        ...

    def identity(self) -> str:
        """Where the rows are and what every file's stat says: changes when any file does."""
        ...


def stat_line(path: str | Path) -> str:
    """A file's path, size, mtime, ctime and inode, for cache keys."""
    st = os.stat(path)
    return f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\n"


class PathList:
    """File paths in one bytes buffer plus offsets: a few bytes per path, and nothing that a
    forked DataLoader worker's reference counting would copy page by page (a list of str is)."""

    def __init__(self, paths: Sequence[str]) -> None:
        encoded = [os.fsencode(p) for p in paths]
        self.offsets = np.zeros(len(encoded) + 1, np.int64)
        np.cumsum([len(e) for e in encoded], out=self.offsets[1:])
        self.blob = np.frombuffer(b"".join(encoded), np.uint8)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        return os.fsdecode(self.blob[self.offsets[i] : self.offsets[i + 1]].tobytes())


class LazyImages:
    """uint8 images (N, C, H, W) of ``source`` at ``rows``, read when indexed.

    ``images[index]`` (an int, a slice, or integer indices as a list, array or tensor) reads
    those rows and returns a tensor, as indexing the in-memory tensor would; ``subset`` narrows
    the view without reading. ``part`` names a whole loaded part (None for a subset): only then
    is the fingerprint cached.
    """

    dtype = torch.uint8
    ndim = 4

    def __init__(
        self, source: RowSource, rows: np.ndarray | None = None, part: str | None = None
    ) -> None:
        self.source = source
        n = source.shape[0]
        self.rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
        self.part = part

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.rows), *self.source.shape[1:]))

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"LazyImages({tuple(self.shape)}, {type(self.source).__name__})"

    def _rows(self, index: Any) -> np.ndarray:
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        elif isinstance(index, list):
            index = np.asarray(index, np.int64)
        return self.rows[index]

    def __getitem__(self, index: Any) -> torch.Tensor:
        rows = self._rows(index)
        if np.ndim(rows) == 0:
            return self.read(rows.reshape(1))[0]
        return self.read(rows)

    def read(self, rows: np.ndarray) -> torch.Tensor:
        """The source's ``rows`` (not this view's positions) as a contiguous uint8 tensor."""
        if len(rows) == 0:
            return torch.empty((0, *self.source.shape[1:]), dtype=torch.uint8)
        return torch.from_numpy(np.ascontiguousarray(self.source.read(rows), np.uint8))

    def subset(self, index: Any) -> LazyImages:
        """The images at ``index`` (positions in this view), still unread."""
        return LazyImages(self.source, self._rows(index).reshape(-1))

    def named(self, part: str) -> LazyImages:
        """This view as the whole part ``part`` (a description of spec and part)."""
        return LazyImages(self.source, self.rows, part)

    def chunks(self, workers: int = 0, size: int = CHUNK) -> Iterator[torch.Tensor]:
        """Every image in order, ``size`` at a time, decoded by ``workers`` processes."""
        batches = [torch.arange(i, min(i + size, len(self))) for i in range(0, len(self), size)]
        yield from BatchReader(self, torch.device("cpu"), workers)(batches)

    def load(self) -> torch.Tensor:
        """Every image, in memory."""
        out = torch.empty(tuple(self.shape), dtype=torch.uint8)
        start = 0
        for chunk in self.chunks():
            out[start : start + len(chunk)] = chunk
            start += len(chunk)
        return out

    def numpy(self) -> np.ndarray:
        """Every image, in memory, as an array."""
        return self.load().numpy()

    def cache_key(self) -> str | None:
        """The fingerprint cache's key: the part, the source's identity and the rows."""
        if self.part is None:
            return None
        digest = hashlib.sha256(f"{_CACHE_FORMAT}\0{self.part}\0".encode())
        digest.update(self.source.identity().encode())
        digest.update(self.rows.astype("<i8").tobytes())
        return digest.hexdigest()


def streams(option: str | None, nbytes: int) -> bool:
    """Whether a part streams: ``stream=1`` or ``0`` decides, else its decoded size does."""
    return nbytes > STREAM_BYTES if option is None else option == "1"


def default_workers(world: int = 1) -> int:
    """DataLoader workers per process: the cores left after one per training process, up to 4,
    and none with two cores or fewer per process, where a worker takes its core from torch's
    threads (measured on 2 cores: streamed training at 0.73× the in-memory speed with one worker,
    0.91× decoding in the training process; docs/benchmarks.md)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    per_process = cores // world
    return min(4, per_process - 1) if per_process > 2 else 0


class _Rows(Dataset):
    """A DataLoader's view of lazy images: each item is one batch of positions, read at once.
    A read error comes back as its message (a DataError raised in a worker would reach the
    caller as a multi-line traceback text) and is raised again as one line by ``BatchReader``."""

    def __init__(self, images: LazyImages) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, positions: np.ndarray) -> torch.Tensor | str:
        try:
            return self.images[positions]
        except DataError as exc:
            return str(exc)


class _Plan:
    """The batches of the coming pass, set before each one (a persistent DataLoader keeps its
    workers between passes and asks its sampler again)."""

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class BatchReader:
    """Batches of images by positions, on ``device``: indexed from memory (the tensor is moved
    to the device once), or read by a DataLoader with ``workers`` processes (pinned memory and
    a non-blocking copy on CUDA), in the order asked."""

    def __init__(self, images: torch.Tensor | LazyImages, device: torch.device, workers: int):
        self.device = device
        if isinstance(images, torch.Tensor):
            self.images: torch.Tensor | None = images.to(device)
            return
        self.images = None
        self.plan = _Plan()
        self.loader = DataLoader(
            _Rows(images),
            batch_size=None,
            sampler=self.plan,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            persistent_workers=workers > 0,
        )

    def __call__(self, batches: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        if self.images is not None:
            for idx in batches:
                yield self.images[idx.to(self.device)]
            return
        self.plan.batches = [np.asarray(idx.cpu(), np.int64) for idx in batches]
        for item in self.loader:
            if isinstance(item, str):
                raise DataError(item)
            yield item.to(self.device, non_blocking=True)


def cache_dir() -> Path:
    """Where streamed parts' fingerprints are kept (see the module's docstring)."""
    if root := os.environ.get("SLEUTH_CACHE"):
        return Path(root).expanduser() / "fingerprints"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "sleuth" / "fingerprints"


def cached_fingerprint(images: LazyImages, compute: Callable[[], str]) -> str:
    """``compute()``, or what it gave before for the same part with unchanged files."""
    key = images.cache_key()
    if key is None:
        return compute()
    path = cache_dir() / f"{key}.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("key") == key and _HEX64.fullmatch(str(record.get("fingerprint"))):
            return record["fingerprint"]
    except (OSError, ValueError, AttributeError):
        pass
    value = compute()
    record = {"key": key, "part": images.part, "images": len(images), "fingerprint": value}
    try:
        atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    except (OSError, SleuthError):  # an unwritable cache costs time, not correctness
        pass
    return value
