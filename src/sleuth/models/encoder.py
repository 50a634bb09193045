"""An encoder is a backbone plus the input contract it was trained with.

``Encoder.forward`` takes images already adapted to its input spec (float in [0, 1]) and normalises
them itself, so every caller (embedding, stealing, verification, the API) feeds it the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sleuth.data import InputSpec, adapt, normalise
from sleuth.models.registry import Backbone, get_architecture


@dataclass(frozen=True)
class EncoderConfig:
    """Everything needed to rebuild an encoder's module before loading its weights."""

    arch: str
    input_spec: InputSpec
    rep_dim: int
    arch_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "arch_kwargs": dict(self.arch_kwargs),
            "input_spec": self.input_spec.to_dict(),
            "rep_dim": self.rep_dim,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EncoderConfig:
        get_architecture(str(d["arch"]))
        return cls(
            arch=str(d["arch"]),
            input_spec=InputSpec.from_dict(d["input_spec"]),
            rep_dim=int(d["rep_dim"]),
            arch_kwargs=dict(d.get("arch_kwargs", {})),
        )


def encoder_config(
    arch: str, input_spec: InputSpec, rep_dim: int | None = None, **overrides: Any
) -> EncoderConfig:
    """A config with the architecture's defaults for this input; ``rep_dim=None`` is native."""
    kwargs = {**get_architecture(arch).kwargs_for_input(input_spec.size), **overrides}
    if rep_dim is None:
        rep_dim = Backbone(arch, input_spec.channels, None, kwargs).rep_dim
    return EncoderConfig(arch, input_spec, int(rep_dim), kwargs)


class Encoder(nn.Module):
    """Image -> representation, with normalisation built in."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        spec = config.input_spec
        self.backbone = Backbone(config.arch, spec.channels, config.rep_dim, config.arch_kwargs)

    @property
    def rep_dim(self) -> int:
        return self.config.rep_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(normalise(x, self.config.input_spec))

    @torch.no_grad()
    def represent(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Representations (on CPU, float32) of raw images of any size/channels, in eval mode."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        out = [
            self(adapt(images[i : i + batch_size].to(device), self.config.input_spec)).float().cpu()
            for i in range(0, len(images), batch_size)
        ]
        self.train(was_training)
        return torch.cat(out) if out else torch.empty(0, self.rep_dim)
