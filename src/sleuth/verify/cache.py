"""The references' and the victim's answers to a challenge, kept on disk between verifications.

Verifying ten suspects against the same references and victim asks the references and the
victim the same challenge ten times; their answers depend only on the encoder file and the
challenge's images, so they are stored under both digests (SHA-256 of the file's bytes, and of
the images' bytes and shape) and read back instead of recomputed. A changed file or challenge
has another digest, so a stale answer is never read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sleuth.fileio import atomic_write


def images_digest(images: torch.Tensor) -> str:
    """SHA-256 of a challenge's images (shape, dtype and bytes)."""
    array = np.ascontiguousarray(images.detach().cpu().numpy())
    digest = hashlib.sha256(f"{array.shape}{array.dtype}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class AnswerCache:
    """Answers by (model digest, images digest) under ``root``; None keeps nothing."""

    root: Path | None

    @classmethod
    def at(cls, root: str | Path | None) -> AnswerCache:
        return cls(Path(root) if root is not None else None)

    def answers(
        self, model_digest: str, images: str, rows: int, compute: Callable[[], np.ndarray]
    ) -> np.ndarray:
        """The cached answers of the model to the images, else ``compute()`` (then kept)."""
        if self.root is None:
            return compute()
        path = self.root / f"{model_digest}-{images}.npy"
        if path.is_file():
            try:
                cached = np.load(path, allow_pickle=False)
            except (ValueError, OSError):
                cached = None
            if cached is not None and cached.ndim == 2 and len(cached) == rows:
                return cached
        fresh = compute()

        def dump(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.save(f, fresh, allow_pickle=False)

        atomic_write(path, dump)
        return fresh
