"""A reader for the IDX files MNIST and Fashion-MNIST are published in, gzipped or not."""

from __future__ import annotations

import gzip
import math
import zlib
from typing import TYPE_CHECKING

import numpy as np

from sleuth.data.errors import DataError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

_UBYTE = 0x08


def parse_idx(raw: bytes, name: str) -> np.ndarray:
    """An IDX file of unsigned bytes as an array, its magic number and size checked."""
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != _UBYTE or not 1 <= raw[3] <= 4:
        raise DataError(f"{name}: not an IDX file of unsigned bytes (bad magic number)")
    header = 4 + 4 * raw[3]
    if len(raw) < header:
        raise DataError(f"{name}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", raw[3], 4))
    if len(raw) - header != math.prod(shape):
        raise DataError(
            f"{name}: {len(raw) - header} data bytes but the header promises shape {shape}"
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def read_idx(path: Traversable) -> np.ndarray:
    """Read an IDX file (a path or package resource), gunzipping it when its name ends in .gz."""
    try:
        raw = path.read_bytes()
        if path.name.endswith(".gz"):
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    return parse_idx(raw, str(path))
