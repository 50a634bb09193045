"""Architectures by name: adding one is one builder and one line in ``ARCHITECTURES``.

Every architecture is a *trunk* (image -> pooled features of its native width) followed by an
optional linear ``proj`` to the requested representation size, so that any architecture can
produce any ``rep_dim`` and a bare state dict tells which sizes it was built with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sleuth.errors import SleuthError
from sleuth.models.resnet import build_resnet
from sleuth.models.smallresnet import SmallResNet


@dataclass(frozen=True)
class Architecture:
    """How to build one trunk, and how to recognise its arguments from its weights."""

    description: str
    build: Callable[..., nn.Module]  # (in_channels, **kwargs) -> module with ``out_dim``
    kwargs_for_input: Callable[[int], dict[str, Any]]  # input size -> default kwargs
    kwargs_from_state: Callable[[Mapping[str, torch.Tensor]], dict[str, Any]]


def _small_kwargs_from_state(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    widths = tuple(int(state[f"trunk.layer{i}.conv1.weight"].shape[0]) for i in (1, 2, 3))
    return {"widths": list(widths)}


def _resnet_kwargs_from_state(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    return {"cifar_stem": int(state["trunk.conv1.weight"].shape[-1]) == 3}


def _resnet(name: str) -> Architecture:
    return Architecture(
        description=f"torchvision {name} (3x3 CIFAR stem when the input is 64 pixels or less)",
        build=lambda in_channels, cifar_stem: build_resnet(name, in_channels, cifar_stem),
        kwargs_for_input=lambda size: {"cifar_stem": size <= 64},
        kwargs_from_state=_resnet_kwargs_from_state,
    )


ARCHITECTURES: dict[str, Architecture] = {
    "smallresnet": Architecture(
        description="3-stage ResNet, ~300k parameters, the CPU-fast default",
        build=lambda in_channels, widths=(32, 64, 128): SmallResNet(in_channels, tuple(widths)),
        kwargs_for_input=lambda size: {"widths": [32, 64, 128]},
        kwargs_from_state=_small_kwargs_from_state,
    ),
    "resnet18": _resnet("resnet18"),
    "resnet34": _resnet("resnet34"),
    "resnet50": _resnet("resnet50"),
}
DEFAULT_ARCH = "smallresnet"


def get_architecture(name: str) -> Architecture:
    """The registered architecture ``name``, or a one-line error listing the known ones."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise SleuthError(f"unknown architecture {name!r} (known: {known})") from None


class Backbone(nn.Module):
    """A trunk plus an optional linear map to ``rep_dim``; the module whose weights are saved."""

    def __init__(self, arch: str, in_channels: int, rep_dim: int | None, kwargs: Mapping) -> None:
        super().__init__()
        try:
            self.trunk = get_architecture(arch).build(in_channels, **kwargs)
        except (TypeError, ValueError) as exc:
            raise SleuthError(f"bad arguments for architecture {arch}: {exc}") from None
        native = int(self.trunk.out_dim)
        self.rep_dim = native if rep_dim is None else int(rep_dim)
        self.proj: nn.Module = (
            nn.Identity() if self.rep_dim == native else nn.Linear(native, self.rep_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.trunk(x))
