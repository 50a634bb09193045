"""Asking a suspect that is only an API: each round of a challenge asks the images it needs that
no earlier round asked, so a sequential verification that stops early never sends the rest.

What the investigator's side needs of the API is ``SuspectAPI``; the CLI wires the HTTP client
(the protocol ``sleuth serve`` implements) into it, so verification imports no network code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from sleuth.errors import SleuthError
from sleuth.verify.challenge import Challenge, indices


class SuspectAPI(Protocol):
    """Representations of float [0, 1] images (N, C, H, W) as an (N, D) array."""

    name: str  # where it answers (a URL), for messages and the record

    def answer(self, images: torch.Tensor) -> np.ndarray: ...


@dataclass
class RemoteAnswers:
    """A suspect API's answers to one challenge, asked round by round and kept: rows of NaN are
    images not asked yet. Calling it with a round (a prefix of the challenge) asks what that
    round needs and returns every answer so far, in challenge order."""

    api: SuspectAPI
    images: torch.Tensor  # the whole challenge, in challenge order
    batch_size: int = 256
    answers: np.ndarray | None = field(default=None, init=False)

    def __call__(self, ch: Challenge) -> np.ndarray:
        need = indices(ch)
        if self.answers is not None:
            need = need[np.isnan(self.answers[need]).all(axis=1)]
        for start in range(0, len(need), self.batch_size):
            rows = need[start : start + self.batch_size]
            self._keep(rows, np.asarray(self.api.answer(self.images[rows]), np.float32))
        if self.answers is None:  # a round that needs nothing new (never the first)
            raise SleuthError("a challenge round asked no images")
        return self.answers

    def _keep(self, rows: np.ndarray, got: np.ndarray) -> None:
        if got.ndim != 2 or len(got) != len(rows):
            raise SleuthError(
                f"the suspect API {self.api.name} answered shape {got.shape} for {len(rows)} images"
            )
        if self.answers is None:
            self.answers = np.full((len(self.images), got.shape[1]), np.nan, np.float32)
        elif got.shape[1] != self.answers.shape[1]:
            raise SleuthError(
                f"the suspect API {self.api.name} changed its representation size from "
                f"{self.answers.shape[1]} to {got.shape[1]} between rounds"
            )
        if not np.isfinite(got).all():
            raise SleuthError(f"the suspect API {self.api.name} answered NaN or infinite values")
        self.answers[rows] = got

    @property
    def sent(self) -> int:
        """Images the API has been asked."""
        return 0 if self.answers is None else int((~np.isnan(self.answers).all(axis=1)).sum())
