"""Loaded image sets: read a spec's part into uint8 tensors, take subsets, fingerprint them."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from sleuth.data.arrays import Arrays, Parts
from sleuth.data.errors import DataError
from sleuth.data.loaders import LOADERS
from sleuth.data.spec import DataSpec, parse_spec
from sleuth.data.split import holdout


@dataclass(frozen=True)
class ImageSet:
    """uint8 images (N, C, H, W), optional int64 labels, and the spec and part they came from."""

    images: torch.Tensor
    labels: torch.Tensor | None
    spec: str
    part: str

    def __post_init__(self) -> None:
        x, y = self.images, self.labels
        if (
            x.dtype != torch.uint8
            or x.ndim != 4
            or x.shape[1] not in (1, 3)
            or not x.is_contiguous()
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
        return ImageSet(self.images[idx], labels, self.spec, self.part)


def _as_spec(spec: str | DataSpec) -> DataSpec:
    return spec if isinstance(spec, DataSpec) else parse_spec(spec)


def _held_out(read_all: Parts, part: str) -> Arrays:
    images, labels = read_all["train"]()
    keep = holdout(len(images), labels)[part == "test"]
    return images[keep], None if labels is None else labels[keep]


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
    """Read one part of a dataset into memory (torchvision datasets are fetched only if asked)."""
    spec = _as_spec(spec)
    parts = _parts(spec, download)
    if part not in parts:
        raise DataError(f"{spec} has no part {part!r} (available: {', '.join(parts)})")
    images, labels = parts[part]()
    if len(images) == 0:
        raise DataError(f"{spec} has no images in its {part} part")
    return ImageSet(
        torch.from_numpy(np.require(images, np.uint8, ["C", "W"])),
        None if labels is None else torch.from_numpy(np.require(labels, np.int64, ["C", "W"])),
        str(spec),
        part,
    )


def fingerprint(data: ImageSet) -> str:
    """Hex SHA-256 of the images' shape and bytes and of the labels: same data, same hash."""
    digest = hashlib.sha256(b"sleuth-imageset-v1")
    digest.update(repr(tuple(data.images.shape)).encode())
    digest.update(data.images.cpu().numpy())
    if data.labels is None:
        digest.update(b"unlabelled")
    else:
        digest.update(b"labels")
        digest.update(data.labels.cpu().numpy().astype("<i8"))
    return digest.hexdigest()
