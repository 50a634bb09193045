"""Dataset kinds by name: adding one is one reader function and one line in ``LOADERS``.

A loader maps a spec's location, options and the download flag to the dataset's parts, each read
only when called (STL-10's unlabelled part is 2.7 GB). A loader without a "test" part gets the
fixed hold-out of ``sleuth.data.split.holdout``.
"""

from __future__ import annotations

import contextlib
import sys
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sleuth.data.arrays import Arrays, Parts, as_images, as_labels
from sleuth.data.errors import DataError
from sleuth.data.hdf5 import datasets, read_dataset
from sleuth.data.idx import read_idx

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

DEMO_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
_IDX_PREFIX = {"train": "train", "test": "t10k"}
_READ_ERRORS = (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error)


@dataclass(frozen=True)
class Loader:
    """One dataset kind: how to read its parts, what its location names, which options it takes.

    An option's function returns the value's canonical form or raises ValueError.
    """

    read: Callable[[Path | None, Mapping[str, str], bool], Parts]  # (path, options, download)
    location: str | None  # "DIR", "ROOT" or "FILE" in usage strings; None: takes no location
    options: Mapping[str, Callable[[str], str]] = field(default_factory=dict)  # value -> canonical

    def usage(self, kind: str) -> str:
        """How a spec of this kind is written, e.g. ``folder:DIR[?size=SIZE]``."""
        where = f":{self.location}" if self.location else ""
        return kind + where + "".join(f"[?{name}={name.upper()}]" for name in self.options)


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataError(f"{what} not found: {path}")
    return path


@contextlib.contextmanager
def _reading(path: Path, what: str) -> Iterator[None]:
    """Turn whatever a corrupt or unreadable file raises into a one-line DataError naming it."""
    try:
        yield
    except _READ_ERRORS as exc:
        raise DataError(f"cannot read {what} {path}: {exc}") from None


def _idx_pair(images_file: Traversable, labels_file: Traversable) -> Arrays:
    images, labels = read_idx(images_file), read_idx(labels_file)
    if images.ndim != 3:
        raise DataError(f"{images_file}: expected (N, H, W) images, got shape {images.shape}")
    return images[:, None], as_labels(labels, len(images), str(labels_file))


def _idx_file(directory: Path, stem: str) -> Path:
    """The gzipped file as published, else the uncompressed one."""
    gz = directory / f"{stem}.gz"
    if gz.exists() or not (directory / stem).exists():
        return _require(gz, "IDX file")
    return directory / stem


def _idx_part(directory: Path, part: str) -> Arrays:
    prefix = _IDX_PREFIX[part]
    return _idx_pair(
        _idx_file(directory, f"{prefix}-images-idx3-ubyte"),
        _idx_file(directory, f"{prefix}-labels-idx1-ubyte"),
    )


def _demo(path: None, options: Mapping[str, str], download: bool) -> Parts:
    root = resources.files("sleuth.data") / "demo"
    return {"train": partial(_idx_pair, *(root / name for name in DEMO_FILES))}


def _idx_dir(path: Path, options: Mapping[str, str], download: bool) -> Parts:
    _require(path, "IDX directory")
    return {part: partial(_idx_part, path, part) for part in _IDX_PREFIX}


def _read_image(path: str, size: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None


def _read_folder(root: Path, size: int) -> Arrays:
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    try:
        samples = make_dataset(root, find_classes(root)[1], IMG_EXTENSIONS)
    except OSError as exc:
        raise DataError(f"cannot use image folder {root}: {exc}") from None
    images = np.stack([_read_image(file, size) for file, _ in samples])
    return images.transpose(0, 3, 1, 2), np.array([label for _, label in samples], np.int64)


def _folder(path: Path, options: Mapping[str, str], download: bool) -> Parts:
    _require(path, "image folder")
    return {"train": partial(_read_folder, path, int(options.get("size", "32")))}


MAX_SIDE = 1024  # larger images would take gigabytes for a few thousand of them in memory


def _size_option(value: str) -> str:
    if not value.isdigit() or not 8 <= int(value) <= MAX_SIDE:
        raise ValueError(f"size must be a whole number of pixels from 8 to {MAX_SIDE}")
    return str(int(value))


def _array_parts(keys: set[str], get: Callable[[str], np.ndarray], where: str) -> Parts:
    """Parts from arrays ``x``/``y`` and the optional ``x_test``/``y_test``."""
    if "x" not in keys:
        raise DataError(
            f"{where} has no images 'x' (it has: {', '.join(sorted(keys)) or 'nothing'})"
        )

    def read(x_key: str, y_key: str) -> Arrays:
        images = as_images(get(x_key), f"{where}[{x_key}]")
        labels = as_labels(get(y_key), len(images), f"{where}[{y_key}]") if y_key in keys else None
        return images, labels

    test = {"test": partial(read, "x_test", "y_test")} if "x_test" in keys else {}
    return {"train": partial(read, "x", "y"), **test}


def _open_npz(path: Path) -> np.lib.npyio.NpzFile:
    with _reading(path, "npz file"):
        archive = np.load(path, allow_pickle=False)
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(
            f"{path} is a single array, not an npz archive: save it with np.savez(x=...)"
        )
    return archive


def _npz_array(path: Path, key: str) -> np.ndarray:
    with _open_npz(path) as archive, _reading(path, "npz file"):
        return archive[key]


def _npz(path: Path, options: Mapping[str, str], download: bool) -> Parts:
    with _open_npz(_require(path, "npz file")) as archive:
        keys = set(archive.files)
    return _array_parts(keys, partial(_npz_array, path), str(path))


def _h5_array(path: Path, key: str) -> np.ndarray:
    import h5py

    with _reading(path, "HDF5 file"), h5py.File(path, "r") as f:
        return np.asarray(read_dataset(f, key, str(path)))


def _h5(path: Path, options: Mapping[str, str], download: bool) -> Parts:
    import h5py

    with _reading(_require(path, "HDF5 file"), "HDF5 file"), h5py.File(path, "r") as f:
        keys = set(datasets(f, str(path)))
    return _array_parts(keys, partial(_h5_array, path), str(path))


def _cifar(cls_name: str, root: Path, part: str, download: bool) -> Arrays:
    from torchvision import datasets

    ds = getattr(datasets, cls_name)(root, train=part == "train", download=download)
    return ds.data.transpose(0, 3, 1, 2), np.asarray(ds.targets, np.int64)


def _svhn(root: Path, part: str, download: bool) -> Arrays:
    from torchvision.datasets import SVHN

    ds = SVHN(root, split=part, download=download)
    return ds.data, ds.labels.astype(np.int64)


def _stl10(root: Path, part: str, download: bool) -> Arrays:
    from torchvision.datasets import STL10

    ds = STL10(root, split=part, download=download)
    return ds.data, None if part == "unlabeled" else ds.labels.astype(np.int64)


def _read_torchvision(
    read: Callable[[Path, str, bool], Arrays], layout: str, root: Path, part: str, download: bool
) -> Arrays:
    try:
        with contextlib.redirect_stdout(sys.stderr):  # torchvision prints download notes
            return read(root, part, download)
    except (RuntimeError, OSError) as exc:
        hint = f"download failed: {exc}" if download else "pass --download to fetch it"
        raise DataError(f"no usable {layout} under {root} (missing or corrupt); {hint}") from None


def _torchvision(
    read: Callable[[Path, str, bool], Arrays],
    layout: str,
    parts: tuple[str, ...] = ("train", "test"),
) -> Loader:
    """A torchvision dataset on its standard layout, fetched only when download is asked for."""

    def load(path: Path, options: Mapping[str, str], download: bool) -> Parts:
        if not download:
            _require(path, "dataset root")
        return {
            part: partial(_read_torchvision, read, layout, path, part, download) for part in parts
        }

    return Loader(load, "ROOT")


LOADERS: dict[str, Loader] = {
    "demo": Loader(_demo, None),
    "fmnist": Loader(_idx_dir, "DIR"),
    "mnist": Loader(_idx_dir, "DIR"),
    "cifar10": _torchvision(partial(_cifar, "CIFAR10"), "cifar-10-batches-py/"),
    "cifar100": _torchvision(partial(_cifar, "CIFAR100"), "cifar-100-python/"),
    "svhn": _torchvision(_svhn, "SVHN .mat files"),
    "stl10": _torchvision(_stl10, "stl10_binary/", ("train", "test", "unlabeled")),
    "folder": Loader(_folder, "DIR", {"size": _size_option}),
    "npz": Loader(_npz, "FILE"),
    "h5": Loader(_h5, "FILE"),
}
