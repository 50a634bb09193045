"""Checks that turn arrays from a user's file into (N, C, H, W) uint8 images and int64 labels."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sleuth.data.errors import DataError

Arrays = tuple[np.ndarray, np.ndarray | None]  # images (N, C, H, W) uint8, labels (N,) int64
Parts = dict[str, Callable[[], Arrays]]  # part name -> reads that part when called


def as_images(x: np.ndarray, where: str) -> np.ndarray:
    """(N, H, W), channels-last (N, H, W, C) or (N, C, H, W) uint8 with C in {1, 3}, as NCHW."""
    if x.dtype != np.uint8:
        raise DataError(f"{where}: images must be uint8, got {x.dtype}")
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[3] in (1, 3):
        return x.transpose(0, 3, 1, 2)
    if x.ndim == 4 and x.shape[1] in (1, 3):
        return x
    raise DataError(
        f"{where}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W) with C 1 or 3, "
        f"got shape {x.shape}"
    )


def as_labels(y: np.ndarray, n: int, where: str) -> np.ndarray:
    """One integer label per image, as int64."""
    if y.ndim != 1 or len(y) != n or y.dtype.kind not in "iu":
        raise DataError(f"{where}: labels must be {n} integers, got {y.dtype} of shape {y.shape}")
    return y.astype(np.int64)
