"""Batched image augmentations on tensors, driven by an explicit ``torch.Generator``.

Everything runs on the images' device in a handful of tensor operations per batch (no per-image
Python loop), so the same code is fast on a CPU and a GPU, and a seed fixes every random draw.
Geometry (crop, flip, rotation) is one affine resampling; colour follows torchvision's
ColorJitter/RandomGrayscale semantics with a fixed order of operations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

_LUMA = (0.299, 0.587, 0.114)


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) * (hi - lo) + lo


def affine_resample(
    x: torch.Tensor, angle_deg: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor
) -> torch.Tensor:
    """Resample each image: output point p reads input point R(angle) diag(scale) p + shift.

    Coordinates are normalised to [-1, 1]; ``scale`` is (N, 2) (a negative x-scale flips),
    ``shift`` is (N, 2). Outside the image reads zero.
    """
    rad = torch.deg2rad(angle_deg.to(x.dtype))
    cos, sin = torch.cos(rad), torch.sin(rad)
    sx, sy = scale[:, 0].to(x.dtype), scale[:, 1].to(x.dtype)
    theta = torch.stack(
        [
            torch.stack([cos * sx, -sin * sy, shift[:, 0].to(x.dtype)], dim=1),
            torch.stack([sin * sx, cos * sy, shift[:, 1].to(x.dtype)], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def rotate(x: torch.Tensor, angle_deg: torch.Tensor) -> torch.Tensor:
    """Rotate each image of ``x`` (N, C, H, W) about its centre by its own angle in degrees."""
    n = x.shape[0]
    ones = torch.ones(n, 2, device=x.device)
    return affine_resample(x, angle_deg.to(x.device), ones, torch.zeros(n, 2, device=x.device))


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma, one channel (N, 1, H, W); a grey input is returned as it is."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor(_LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def _blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """factor * a + (1 - factor) * b, per image, clamped to [0, 1] as torchvision does."""
    f = factor.view(-1, 1, 1, 1)
    return (f * a + (1 - f) * b).clamp(0, 1)


def _hue_shift(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate chroma in YIQ space by ``shift`` turns (a close, vectorised stand-in for HSV hue)."""
    to_yiq = torch.tensor(
        [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
        device=x.device,
        dtype=x.dtype,
    )
    yiq = torch.einsum("ij,njhw->nihw", to_yiq, x)
    ang = 2 * math.pi * shift.to(x.dtype)
    cos, sin = torch.cos(ang).view(-1, 1, 1), torch.sin(ang).view(-1, 1, 1)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], dim=1)
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(to_yiq), yiq).clamp(0, 1)


@dataclass(frozen=True)
class SimCLRAugment:
    """SimCLR's view generator: random resized crop, flip, colour jitter, random grayscale.

    Defaults follow SimCLR's CIFAR recipe (no blur for small images). Inputs and outputs are
    float images in [0, 1] of shape (N, C, H, W); grey images skip the chromatic parts.
    """

    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale_p: float = 0.2

    def __post_init__(self) -> None:
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")
        for name in ("flip_p", "jitter_p", "grayscale_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability, got {getattr(self, name)}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")

    def crop_flip(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Random resized crop (area fraction and aspect ratio as torchvision's) and h-flip."""
        n, dev = x.shape[0], x.device
        area = _uniform(n, *self.crop_scale, gen, dev)
        log_r = _uniform(n, math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1]), gen, dev)
        ratio = torch.exp(log_r)
        w = torch.sqrt(area * ratio).clamp(max=1.0)
        h = torch.sqrt(area / ratio).clamp(max=1.0)
        cx = (torch.rand(n, generator=gen, device=dev) * 2 - 1) * (1 - w)
        cy = (torch.rand(n, generator=gen, device=dev) * 2 - 1) * (1 - h)
        flip = torch.rand(n, generator=gen, device=dev) < self.flip_p
        sx = torch.where(flip, -w, w)
        angle = torch.zeros(n, device=dev)
        return affine_resample(x, angle, torch.stack([sx, h], 1), torch.stack([cx, cy], 1))

    def colour(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Colour jitter with probability ``jitter_p``, then grayscale with ``grayscale_p``."""
        n, dev = x.shape[0], x.device
        out = _blend(
            x, torch.zeros_like(x), _uniform(n, 1 - self.brightness, 1 + self.brightness, gen, dev)
        )
        mean = grayscale(out).mean(dim=(1, 2, 3), keepdim=True).expand_as(out)
        out = _blend(out, mean, _uniform(n, 1 - self.contrast, 1 + self.contrast, gen, dev))
        if x.shape[1] == 3:
            grey = grayscale(out).expand_as(out)
            sat = _uniform(n, 1 - self.saturation, 1 + self.saturation, gen, dev)
            out = _hue_shift(_blend(out, grey, sat), _uniform(n, -self.hue, self.hue, gen, dev))
        jitter = (torch.rand(n, generator=gen, device=dev) < self.jitter_p).view(-1, 1, 1, 1)
        out = torch.where(jitter, out, x)
        grey = (torch.rand(n, generator=gen, device=dev) < self.grayscale_p).view(-1, 1, 1, 1)
        return torch.where(grey, grayscale(out).expand_as(out), out)

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return self.colour(self.crop_flip(x, gen), gen)
