"""Loaded image sets: read a spec's part into uint8 tensors (or stream it), take subsets,
fingerprint them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from sleuth.data import lazy
from sleuth.data.arrays import Arrays, Parts
from sleuth.data.errors import DataError
from sleuth.data.lazy import LazyImages
from sleuth.data.loaders import LOADERS, LazyPart
from sleuth.data.spec import DataSpec, parse_spec
from sleuth.data.split import holdout


@dataclass(frozen=True)
class ImageSet:
    """uint8 images (N, C, H, W), optional int64 labels, and the spec and part they came from.

    ``images`` is a tensor in memory, or ``LazyImages`` (streamed data) that read the rows they
    are indexed with: index it (``images[idx]``, ``images[a:b]``) rather than use it whole.
    """

    images: torch.Tensor | LazyImages
    labels: torch.Tensor | None
    spec: str
    part: str

    def __post_init__(self) -> None:
        x, y = self.images, self.labels
        if (
            x.dtype != torch.uint8
            or x.ndim != 4
            or x.shape[1] not in (1, 3)
            or not (isinstance(x, LazyImages) or x.is_contiguous())
        ):
            raise ValueError(
                f"images must be contiguous uint8 (N, 1|3, H, W), got {x.dtype} {tuple(x.shape)}"
            )
        if y is not None and (y.dtype != torch.int64 or tuple(y.shape) != (len(x),)):
            raise ValueError(
                f"labels must be int64 of shape ({len(x)},), got {y.dtype} {tuple(y.shape)}"
            )

    def __len__(self) -> int:
        return len(self.images)

    @property
    def streaming(self) -> bool:
        """Whether the images stay in their files (read by index) rather than in memory."""
        return isinstance(self.images, LazyImages)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def height(self) -> int:
        return self.images.shape[2]

    @property
    def width(self) -> int:
        return self.images.shape[3]

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> ImageSet:
        """The images (and labels) at ``indices``, in that order."""
        idx = torch.from_numpy(np.asarray(indices, dtype=np.int64).reshape(-1))
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= len(self)):
            raise DataError(
                f"indices out of range for the {len(self)} images of {self.spec} ({self.part})"
            )
        labels = None if self.labels is None else self.labels[idx]
        x = self.images
        images = x.subset(idx) if isinstance(x, LazyImages) else x[idx]
        return ImageSet(images, labels, self.spec, self.part)


def _as_spec(spec: str | DataSpec) -> DataSpec:
    return spec if isinstance(spec, DataSpec) else parse_spec(spec)


def _held_out(read_all: Parts, part: str) -> Arrays:
    images, labels = read_all["train"]()
    keep = holdout(len(images), labels)[part == "test"]
    return images[keep], None if labels is None else labels[keep]


def _held_out_lazy(opened: dict[str, LazyPart], part: str) -> tuple[LazyImages, np.ndarray | None]:
    images, labels = opened["train"]()
    keep = holdout(len(images), labels)[part == "test"]
    return images.subset(keep), None if labels is None else labels[keep]


def _lazy_parts(spec: DataSpec) -> dict[str, LazyPart] | None:
    """The parts of a streamable kind as unread views (with the fixed hold-out), else None."""
    opener = LOADERS[spec.kind].lazy
    if opener is None:
        return None
    opened = opener(Path(spec.location).expanduser(), spec.options)
    if "test" in opened:
        return opened
    return {part: partial(_held_out_lazy, opened, part) for part in ("train", "test")}


def _parts(spec: DataSpec, download: bool) -> Parts:
    """The loader's parts, with the fixed hold-out as test part when the dataset has none."""
    path = None if spec.location is None else Path(spec.location).expanduser()
    parts = LOADERS[spec.kind].read(path, spec.options, download)
    if "test" in parts:
        return parts
    return {part: partial(_held_out, parts, part) for part in ("train", "test")}


def available_parts(spec: str | DataSpec) -> tuple[str, ...]:
    """The part names ``load_images`` accepts for this spec."""
    return tuple(_parts(_as_spec(spec), download=False))


def load_images(spec: str | DataSpec, part: str = "train", *, download: bool = False) -> ImageSet:
    """Read one part of a dataset into memory (torchvision datasets are fetched only if asked),
    or, for ``folder:`` and ``h5:`` data larger than ``lazy.STREAM_BYTES`` decoded or asked for
    with ``stream=1``, open it for reading by index (``ImageSet.streaming``)."""
    spec = _as_spec(spec)
    parts = _lazy_parts(spec) or _parts(spec, download)
    if part not in parts:
        raise DataError(f"{spec} has no part {part!r} (available: {', '.join(parts)})")
    images, labels = parts[part]()
    if isinstance(images, LazyImages):
        if len(images) and lazy.streams(spec.options.get("stream"), images.nbytes):
            labels = None if labels is None else torch.from_numpy(labels)
            named = images.named(f"{spec.kind}|{_content(spec)}|{part}")
            return ImageSet(named, labels, str(spec), part)
        images = images.numpy()
    if len(images) == 0:
        raise DataError(f"{spec} has no images in its {part} part")
    return ImageSet(
        torch.from_numpy(np.require(images, np.uint8, ["C", "W"])),
        None if labels is None else torch.from_numpy(np.require(labels, np.int64, ["C", "W"])),
        str(spec),
        part,
    )


def _content(spec: DataSpec) -> str:
    """The spec's options that change the images (not ``stream``, which changes how they are
    read), for the fingerprint cache's key."""
    return "&".join(f"{k}={v}" for k, v in spec.options.items() if k != "stream")


def _digest(
    shape: tuple[int, ...], chunks: Iterable[torch.Tensor], labels: torch.Tensor | None
) -> str:
    digest = hashlib.sha256(b"sleuth-imageset-v1")
    digest.update(repr(tuple(shape)).encode())
    for chunk in chunks:
        digest.update(np.ascontiguousarray(chunk.cpu().numpy()))
    if labels is None:
        digest.update(b"unlabelled")
    else:
        digest.update(b"labels")
        digest.update(labels.cpu().numpy().astype("<i8"))
    return digest.hexdigest()


def fingerprint(data: ImageSet, workers: int | None = None) -> str:
    """Hex SHA-256 of the images' shape and bytes and of the labels: same data, same hash.

    Streamed images are hashed in order as they are read (by ``workers`` DataLoader processes,
    default ``lazy.default_workers()``), giving the in-memory hash; a whole part's hash is kept
    in the fingerprint cache (``sleuth.data.lazy``) and read back while its files are unchanged.
    """
    shape = tuple(data.images.shape)
    if not isinstance(data.images, LazyImages):
        return _digest(shape, [data.images], data.labels)
    images = data.images
    n = lazy.default_workers() if workers is None else workers
    return lazy.cached_fingerprint(images, lambda: _digest(shape, images.chunks(n), data.labels))
