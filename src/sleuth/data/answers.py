"""Victim answers on disk: an HDF5 file of query keys and the representations returned for them.

One format serves both the attacker's cache (``--cache``, so a re-run does not query again) and
precomputed answers (a victim given as ``answers.h5``). A query's key is the SHA-256 of its image
as float32 in [0, 1] (N, C, H, W), so the same view always finds the same answer. A file is tied to
one victim: its ``victim`` attribute must match, or it is refused.

Layout: ``keys`` (N,) ASCII hex strings, ``answers`` (N, D) float32, optional ``x`` (the queries),
attributes ``victim`` (digest of the victim) and ``format = "sleuth-answers"``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import torch

from sleuth.data.hdf5 import read_dataset
from sleuth.data.inputs import to_float
from sleuth.errors import SleuthError
from sleuth.fileio import atomic_write

ANSWERS_FORMAT = "sleuth-answers"


def query_keys(images: torch.Tensor) -> list[str]:
    """SHA-256 of each query as float32 in [0, 1]."""
    x = to_float(images).detach().float().cpu().contiguous().numpy()
    return [hashlib.sha256(row.tobytes()).hexdigest() for row in x]


class AnswerStore:
    """An in-memory key -> answer map, read from and written to the HDF5 layout above."""

    def __init__(self, victim: str, rep_dim: int | None = None) -> None:
        self.victim = victim
        self.rep_dim = rep_dim
        self._answers: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: str) -> np.ndarray | None:
        return self._answers.get(key)

    def put(self, keys: list[str], answers: torch.Tensor) -> None:
        rows = answers.detach().float().cpu().numpy()
        if self.rep_dim is None:
            self.rep_dim = rows.shape[1]
        for key, row in zip(keys, rows, strict=True):
            self._answers[key] = row

    @classmethod
    def read(cls, path: str | Path, victim: str | None = None) -> AnswerStore:
        """Load a file; ``victim`` (when given) must match the file's, else it is refused."""
        path = Path(path)
        if not path.is_file():
            raise SleuthError(f"answers file not found: {path}")
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("format") != ANSWERS_FORMAT:
                    raise SleuthError(f"{path} is not a sleuth answers file")
                owner = str(f.attrs.get("victim", ""))
                with np.errstate(over="ignore", invalid="ignore"):  # refused below, in one line
                    answers = np.asarray(read_dataset(f, "answers", str(path)), np.float32)
                if "keys" in f:
                    raw = read_dataset(f, "keys", str(path))
                    keys = [k.decode() if isinstance(k, bytes) else str(k) for k in raw]
                else:
                    x = np.asarray(read_dataset(f, "x", str(path)))
                    if x.ndim != 4 or not (x.dtype == np.uint8 or x.dtype.kind == "f"):
                        raise SleuthError(
                            f"{path}: its queries x must be images (N, C, H, W) of uint8 or "
                            f"floats, got {x.dtype} of shape {x.shape}"
                        )
                    keys = query_keys(torch.from_numpy(x))
        except (OSError, KeyError, ValueError) as exc:
            raise SleuthError(f"cannot read answers file {path}: {exc}") from None
        if victim is not None and owner != victim:
            raise SleuthError(f"{path} holds answers of another victim ({owner[:16]}…)")
        if answers.ndim != 2 or len(keys) != len(answers):
            raise SleuthError(f"{path}: {len(keys)} keys but answers of shape {answers.shape}")
        if not np.isfinite(answers).all():
            raise SleuthError(f"{path}: answers are NaN, infinite or beyond float32's range")
        store = cls(owner, answers.shape[1])
        store._answers = dict(zip(keys, answers, strict=True))
        return store

    def write(self, path: str | Path) -> Path:
        """Write atomically (gzip-compressed answers)."""
        keys = list(self._answers)
        answers = np.stack([self._answers[k] for k in keys]) if keys else np.zeros((0, 0))

        def dump(tmp: Path) -> None:
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = ANSWERS_FORMAT
                f.attrs["victim"] = self.victim
                f.create_dataset("keys", data=np.array(keys, dtype="S64"))
                f.create_dataset("answers", data=answers.astype(np.float32), compression="gzip")

        return atomic_write(path, dump)
