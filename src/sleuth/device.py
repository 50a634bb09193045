"""Device names as users type them: ``auto`` means CUDA when there is one."""

from __future__ import annotations

import torch

from sleuth.errors import SleuthError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise SleuthError(f"unknown device {name!r} (auto, cpu, cuda, cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SleuthError(f"device {name} asked for, but CUDA is not available here")
    return dev
