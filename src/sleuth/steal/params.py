"""Defence parameters: strings from a spec or numbers from code, coerced and checked once.

Every defence (``defences`` and the online ones of ``b4b`` and ``pow``) validates its parameters
with these in ``__post_init__``; a bad value is a ValueError naming the parameter, which the
registry turns into a one-line error naming the spec.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

import torch


def number(name: str, value: Any) -> float:
    """A finite float (not a bool)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return x


def integer(name: str, value: Any) -> int:
    """An int, from an int, an integral float or its text (not a bool)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (case and surrounding space ignored)."""
    text = str(value).strip().lower()
    if text not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return text


def check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def store(obj: Any, name: str, value: Any) -> None:
    """Store a coerced value on a frozen dataclass (only ever from ``__post_init__``)."""
    object.__setattr__(obj, name, value)


def randn(shape: tuple[int, ...], gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """Standard normal draws from ``gen`` (on its device), moved to ``like``'s device and dtype."""
    out = torch.randn(shape, generator=gen, device=gen.device, dtype=torch.float32)
    return out.to(device=like.device, dtype=like.dtype)


class Described:
    """``describe()`` from the dataclass's init fields, and ``str()`` as the canonical spec
    (``NAME:key=value,...`` in field order, which is the factory's signature order)."""

    name: str
    per_user = False  # per-user defences are called with the user's Account

    def describe(self) -> dict[str, Any]:
        params = {f.name: getattr(self, f.name) for f in fields(self) if f.init}  # type: ignore[arg-type]
        return {"name": self.name, **params}

    def __str__(self) -> str:
        described = self.describe()
        items = [f"{k}={v}" for k, v in described.items() if k != "name" and v is not None]
        return self.name + (":" + ",".join(items) if items else "")
