"""The training recipe of ``sleuth embed`` and its named presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from sleuth.errors import SleuthError
from sleuth.models import DEFAULT_ARCH


@dataclass(frozen=True)
class EmbedConfig:
    """SimCLR plus the rotation watermark. ``batch_size`` is global: DDP splits it over ranks."""

    data: str = "demo"
    arch: str = DEFAULT_ARCH
    arch_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {"cifar_stem": False}
    rep_dim: int | None = None
    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-6
    temperature: float = 0.5
    seed: int = 0
    watermark: bool = True
    wm_weight: float = 1.0
    wm_intervals: str = "random"  # secret arcs drawn per owner (sleuth.data.watermark)
    wm_fraction: float = 0.125
    public_fraction: float = 0.5
    proj_dim: int = 64
    predictor_hidden: int = 64

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 2,
            "lr": self.lr > 0,
            "temperature": self.temperature >= 1e-8,
            "seed": 0 <= self.seed < 2**63,  # torch seeds are 64-bit signed
            "wm_weight": self.wm_weight >= 0,
            "wm_fraction": 0 < self.wm_fraction <= 1,
            "public_fraction": 0 < self.public_fraction < 1,
            "rep_dim": self.rep_dim is None or self.rep_dim >= 2,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise SleuthError(f"invalid training settings: {values}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EmbedConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


PRESETS: dict[str, dict[str, Any]] = {
    # Fits the 4-minute budget on 2 CPU cores with the embedded data (docs/benchmarks.md).
    "demo": {"arch": DEFAULT_ARCH, "epochs": 30, "batch_size": 256, "lr": 1e-3},
    # 000 §4.1: ResNet18, 200 epochs, batch 256, Adam 3e-4 with cosine annealing.
    "paper": {"arch": "resnet18", "epochs": 200, "batch_size": 256, "lr": 3e-4},
}


def from_preset(preset: str | None, **overrides: Any) -> EmbedConfig:
    """A preset's recipe with explicit settings (those not None) on top."""
    if preset is not None and preset not in PRESETS:
        raise SleuthError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    base = dict(PRESETS.get(preset, {})) if preset else {}
    base.update({k: v for k, v in overrides.items() if v is not None})
    return replace(EmbedConfig(), **base)
