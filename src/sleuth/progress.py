"""Progress events: what a long run tells whoever watches it (the CLI's bars), as values.

Training, stealing and the benchmarks call a callback with one of these; the CLI draws them.
Steps and epochs count from 1.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainStep:
    """A training step ended: step ``step`` of ``steps`` in epoch ``epoch`` of ``epochs`` of a
    stage ("train", or an attack's "head")."""

    stage: str
    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float

    @property
    def done(self) -> int:
        """Steps done over all epochs."""
        return (self.epoch - 1) * self.steps + self.step

    @property
    def total(self) -> int:
        """Steps over all epochs."""
        return self.epochs * self.steps


@dataclass(frozen=True)
class EmbedStep(TrainStep):
    """A step of ``sleuth embed``'s training, with the watermark's running accuracy this epoch
    (0 without a watermark) and the images trained on per second."""

    wm_acc: float
    images_per_s: float


@dataclass(frozen=True)
class StageStep:
    """``done`` of ``total`` units of a stage: an attack's queries, a bench cell's steps."""

    stage: str
    done: int
    total: int


@dataclass(frozen=True)
class CellsPlanned:
    """A bench is about to go through ``total`` cells."""

    total: int


@dataclass(frozen=True)
class CellReused:
    """The bench's cell number ``index`` was already done: its result is reused."""

    key: str
    index: int


@dataclass(frozen=True)
class CellStarted:
    """The bench starts its cell number ``index``; ``StageStep`` events follow while it runs."""

    key: str
    index: int
    label: str | None = None


@dataclass(frozen=True)
class CellDone:
    """The bench's cell number ``index`` finished after ``seconds``."""

    key: str
    index: int
    seconds: float


BenchEvent = CellsPlanned | CellReused | CellStarted | StageStep | CellDone
