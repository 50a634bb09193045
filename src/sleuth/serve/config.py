"""What a ``sleuth serve`` process needs to know, as one value every worker can rebuild."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from sleuth.errors import SleuthError

CONFIG_ENV = "SLEUTH_SERVE_CONFIG"  # how uvicorn's worker processes receive it
NPY_HEADER_BYTES = 4096  # an .npy header is at most a few hundred bytes; generous


@dataclass(frozen=True)
class ServeConfig:
    """The encoder file, the defences (specs, applied in order to every user's answers), the
    database URL and the limits on what one request may send."""

    encoder: str
    defences: tuple[str, ...] = ()
    db: str = "sqlite:///serve.db"
    max_batch: int = 256
    max_side: int = 96
    buckets: int = 4096  # the coverage table every answer is recorded in (users list, /admin)
    puzzle_ttl: float = 300.0  # seconds a proof-of-work challenge stays valid
    lsh_data: str | None = None  # the owner's data: the coverage LSH is centred on its mean
    cost_alert: float | None = None  # the owner's page flags accounts nearing this total cost

    def __post_init__(self) -> None:
        object.__setattr__(self, "defences", tuple(self.defences))
        if self.max_batch < 1:
            raise SleuthError(f"--max-batch must be at least 1, got {self.max_batch}")
        if self.max_side < 8:
            raise SleuthError(f"--max-side must be at least 8 pixels, got {self.max_side}")

    @property
    def max_body(self) -> int:
        """The largest body: a full batch of 3-channel float32 images at the largest side."""
        return self.max_batch * 3 * self.max_side**2 * 4 + NPY_HEADER_BYTES

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        return cls(**json.loads(text))
