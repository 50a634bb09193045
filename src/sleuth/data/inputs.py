"""What an encoder takes as input, and the conversions that feed any images to any encoder."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from sleuth.data.errors import DataError
from sleuth.data.images import ImageSet
from sleuth.data.lazy import LazyImages

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights of R, G, B
_STATS_CHUNK = 1024
MIN_SIZE, MAX_SIZE = 8, 1024  # an encoder's input side in pixels (a file's header is bounded too)


def _whole(value: Any) -> Any:
    """An integer (numpy's too) as int; anything else unchanged, for the check to refuse."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return value


@dataclass(frozen=True)
class InputSpec:
    """Channels, square side and per-channel mean/std (of [0, 1] pixels) an encoder expects."""

    channels: int
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", _whole(self.channels))
        object.__setattr__(self, "size", _whole(self.size))
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in self.mean):
            raise DataError(f"bad input spec: mean must be numbers, got {self.mean!r}"[:200])
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in self.std):
            raise DataError(f"bad input spec: std must be numbers, got {self.std!r}"[:200])
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        whole = isinstance(self.channels, int) and isinstance(self.size, int)
        if not whole:  # 28.7 is not silently 28
            raise DataError(
                f"bad input spec: channels and size must be integers, got {self.channels!r} "
                f"and {self.size!r}"
            )
        problems = [
            (self.channels not in (1, 3), f"channels must be 1 or 3, got {self.channels}"),
            (
                not MIN_SIZE <= self.size <= MAX_SIZE,
                f"size must be from {MIN_SIZE} to {MAX_SIZE} pixels, got {self.size}",
            ),
            (
                len(self.mean) != self.channels or len(self.std) != self.channels,
                f"mean and std need one value per channel ({self.channels})",
            ),
            (not all(map(math.isfinite, self.mean + self.std)), "mean and std must be finite"),
            (not all(s > 0 for s in self.std), "std must be positive"),
        ]
        for failed, message in problems:
            if failed:
                raise DataError(f"bad input spec: {message}")

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers and lists, for JSON headers and weights-only checkpoints."""
        return {
            "channels": self.channels,
            "size": self.size,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InputSpec:
        """Inverse of ``to_dict``, validating the values (they come from a file)."""
        if not isinstance(d, Mapping):
            raise DataError(f"bad input spec: not an object but {type(d).__name__}")
        try:
            mean, std = d["mean"], d["std"]
            if not isinstance(mean, list | tuple) or not isinstance(std, list | tuple):
                raise DataError("bad input spec: mean and std must be lists")
            return cls(d["channels"], d["size"], tuple(mean), tuple(std))
        except KeyError as exc:
            raise DataError(f"bad input spec: missing {exc}") from None
        except (TypeError, ValueError, OverflowError) as exc:
            raise DataError(f"bad input spec: {exc}") from None


def input_spec_for(data: ImageSet, max_images: int = 10000) -> InputSpec:
    """The data's channels and side, with mean/std measured on up to ``max_images`` spread images.

    A std is floored at one grey level (1/255), so a constant channel still normalises finitely.
    """
    if data.height != data.width:
        raise DataError(
            f"{data.spec} has {data.height}x{data.width} images but encoders take square ones: "
            "resize them (e.g. folder:DIR?size=N)"
        )
    idx = torch.from_numpy(np.linspace(0, len(data) - 1, min(len(data), max_images)).round())
    total = torch.zeros(data.channels, dtype=torch.float64)
    squares = torch.zeros(data.channels, dtype=torch.float64)
    for chunk in idx.long().split(_STATS_CHUNK):
        x = data.images[chunk].to(torch.float64) / 255
        total += x.sum((0, 2, 3))
        squares += x.square().sum((0, 2, 3))
    count = len(idx) * data.height * data.width
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt().clamp_min(1 / 255)
    return InputSpec(data.channels, data.height, tuple(mean.tolist()), tuple(std.tolist()))


def to_float(images: torch.Tensor | LazyImages) -> torch.Tensor:
    """uint8 images as float32 in [0, 1]; float images are returned unchanged; streamed images
    are read (all of them: index them first for a few)."""
    if isinstance(images, LazyImages):
        images = images.load()
    if images.dtype == torch.uint8:
        return images.to(torch.float32) / 255
    if images.is_floating_point():
        return images
    raise TypeError(f"images must be uint8 or floating point, got {images.dtype}")


def _grey_to_rgb(x: torch.Tensor) -> torch.Tensor:
    return x.repeat(1, 3, 1, 1)


def _rgb_to_grey(x: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


_CHANNEL_CONVERSIONS: dict[tuple[int, int], Callable[[torch.Tensor], torch.Tensor]] = {
    (1, 3): _grey_to_rgb,
    (3, 1): _rgb_to_grey,
}


def _with_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    if x.shape[1] == channels:
        return x
    convert = _CHANNEL_CONVERSIONS.get((x.shape[1], channels))
    if convert is None:
        raise DataError(f"cannot convert {x.shape[1]}-channel images to {channels} channels")
    return convert(x)


def adapt(images: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """uint8 or [0, 1] float (N, C, H, W) as float32 [0, 1] with the spec's channels and side.

    Grey becomes RGB by repetition and RGB grey by BT.601 luma; sizes change by antialiased
    bilinear resampling. The result stays on the input's device and is not normalised.
    """
    x = to_float(images).float()
    if x.shape[1] > spec.channels:  # drop channels before resampling, add them after: less work
        x = _with_channels(x, spec.channels)
    if x.shape[-2:] != (spec.size, spec.size):
        x = F.interpolate(
            x, size=(spec.size, spec.size), mode="bilinear", antialias=True, align_corners=False
        )
    return _with_channels(x, spec.channels)


def normalise(x: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """(x - mean) / std per channel, with the statistics on ``x``'s device and dtype."""
    mean = torch.tensor(spec.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std
