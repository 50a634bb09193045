"""An encoder is a backbone plus the input contract it was trained with.

``Encoder.forward`` takes images already adapted to its input spec (float in [0, 1]) and normalises
them itself, so every caller (embedding, stealing, verification, the API) feeds it the same way.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sleuth.data import InputSpec, adapt, normalise
from sleuth.errors import SleuthError
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
        """Inverse of ``to_dict``, every field type-checked and bounded (a header comes from a
        file, and its sizes decide what gets allocated): a user error names the field."""
        if not isinstance(d, Mapping):
            raise SleuthError(f"encoder metadata is a {type(d).__name__}, not an object")
        missing = [k for k in ("arch", "input_spec", "rep_dim") if k not in d]
        if missing:
            raise SleuthError(f"encoder metadata lacks {', '.join(missing)}")
        arch, rep_dim, kwargs = d["arch"], d["rep_dim"], d.get("arch_kwargs", {})
        if not isinstance(arch, str):
            raise SleuthError(f"encoder metadata: arch is {brief(arch)}, not a name")
        get_architecture(arch)
        check_rep_dim(rep_dim)
        if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
            raise SleuthError("encoder metadata: arch_kwargs is not an object of named arguments")
        return cls(arch, InputSpec.from_dict(d["input_spec"]), rep_dim, dict(kwargs))


MAX_REP_DIM = 1 << 16
# the most numbers (weights and buffers) an encoder may hold, 1 GiB in float32: ResNet50 holds
# 26M. Checked on the meta device before anything is allocated, for options and file headers
MAX_NUMBERS = 1 << 28


def brief(value: Any, width: int = 40) -> str:
    """A value for a one-line message: its repr, cut (a hostile int may not even print)."""
    try:
        text = repr(value)
    except ValueError:  # an int beyond Python's digit limit
        return f"an integer of {value.bit_length()} bits"
    return text if len(text) <= width else text[: width - 1] + "…"


def check_rep_dim(rep_dim: Any, name: str = "rep_dim") -> int:
    """A representation size: an integer from 1 to ``MAX_REP_DIM`` (28.7 is not 28)."""
    ok = isinstance(rep_dim, numbers.Integral) and not isinstance(rep_dim, bool)
    if not ok or not 1 <= rep_dim <= MAX_REP_DIM:
        raise SleuthError(
            f"{name} must be an integer from 1 to {MAX_REP_DIM}, got {brief(rep_dim)}"
        )
    return int(rep_dim)


def skeleton(config: EncoderConfig) -> Encoder:
    """The encoder of ``config`` on the meta device: every shape, no memory; refused (one line)
    when it would hold more than ``MAX_NUMBERS`` numbers."""
    with torch.device("meta"):
        encoder = Encoder(config)
    numbers_held = sum(t.numel() for t in encoder.state_dict().values())
    if numbers_held > MAX_NUMBERS:
        raise SleuthError(
            f"a {config.arch} encoder with {brief(dict(config.arch_kwargs))} and rep_dim "
            f"{config.rep_dim} would hold {numbers_held:,} numbers, more than the "
            f"{MAX_NUMBERS:,} allowed"
        )
    return encoder


def encoder_config(
    arch: str, input_spec: InputSpec, rep_dim: int | None = None, **overrides: Any
) -> EncoderConfig:
    """A config with the architecture's defaults for this input; ``rep_dim=None`` is native.
    Its size is checked without allocating (``skeleton``)."""
    kwargs = {**get_architecture(arch).kwargs_for_input(input_spec.size), **overrides}
    if rep_dim is None:
        with torch.device("meta"):
            rep_dim = Backbone(arch, input_spec.channels, None, kwargs).rep_dim
    config = EncoderConfig(arch, input_spec, check_rep_dim(rep_dim), kwargs)
    skeleton(config)
    return config


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
