"""Dataset kinds by name: adding one is one reader function and one line in ``LOADERS``.

A loader maps a spec's location, options and the download flag to the dataset's parts, each read
only when called (STL-10's unlabelled part is 2.7 GB). A loader without a "test" part gets the
fixed hold-out of ``sleuth.data.split.holdout``. Kinds that can stream (``folder``, ``h5``) also
give their parts as ``LazyImages`` over a row source (``Loader.lazy``); their in-memory parts are
those same rows read whole, so both paths hold the same bytes.
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
from sleuth.data.hdf5 import datasets, member, read_dataset
from sleuth.data.idx import read_idx
from sleuth.data.lazy import LazyImages, PathList, stat_line

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

DEMO_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
_IDX_PREFIX = {"train": "train", "test": "t10k"}
_READ_ERRORS = (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error)

LazyPart = Callable[[], tuple[LazyImages, np.ndarray | None]]  # reads labels, not images


@dataclass(frozen=True)
class Loader:
    """One dataset kind: how to read its parts, what its location names, which options it takes.

    An option's function returns the value's canonical form or raises ValueError.
    """

    read: Callable[[Path | None, Mapping[str, str], bool], Parts]  # (path, options, download)
    location: str | None  # "DIR", "ROOT" or "FILE" in usage strings; None: takes no location
    options: Mapping[str, Callable[[str], str]] = field(default_factory=dict)  # value -> canonical
    lazy: Callable[[Path, Mapping[str, str]], dict[str, LazyPart]] | None = None  # streamable

    def usage(self, kind: str) -> str:
        """How a spec of this kind is written, e.g. ``folder:DIR[?size=SIZE&stream=STREAM]``."""
        where = f":{self.location}" if self.location else ""
        query = "&".join(f"{name}={name.upper()}" for name in self.options)
        return kind + where + (f"[?{query}]" if query else "")


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


class FolderRows:
    """An image folder's files (torchvision's ImageFolder order), each read as RGB resized to
    ``size`` (the same bytes as the in-memory path)."""

    def __init__(self, root: Path, files: list[str], size: int) -> None:
        self.root = str(root.resolve())
        self.files = PathList(files)
        self.size = size
        self.shape = (len(files), 3, size, size)

    def read(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), self.size, self.size, 3), np.uint8)
        for i, row in enumerate(rows):
            out[i] = _read_image(self.files[int(row)], self.size)
        return out.transpose(0, 3, 1, 2)

    def identity(self) -> str:
        files = (self.files[i] for i in range(len(self.files)))
        try:
            return f"folder\0{self.root}\0{self.size}\n" + "".join(map(stat_line, files))
        except OSError as exc:
            raise DataError(f"cannot use image folder {self.root}: {exc}") from None


def _folder_rows(root: Path, size: int) -> tuple[LazyImages, np.ndarray]:
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    try:
        samples = make_dataset(root, find_classes(root)[1], IMG_EXTENSIONS)
    except OSError as exc:
        raise DataError(f"cannot use image folder {root}: {exc}") from None
    source = FolderRows(root, [file for file, _ in samples], size)
    return LazyImages(source), np.array([label for _, label in samples], np.int64)


def _folder(path: Path, options: Mapping[str, str]) -> dict[str, LazyPart]:
    _require(path, "image folder")
    return {"train": partial(_folder_rows, path, int(options.get("size", "32")))}


def _whole(lazy: Callable[[Path, Mapping[str, str]], dict[str, LazyPart]]):
    """The in-memory reader of a streamable kind: every row of each lazy part, read in order."""

    def read(path: Path, options: Mapping[str, str], download: bool) -> Parts:
        def load(part: LazyPart) -> Arrays:
            images, labels = part()
            return images.numpy(), labels

        return {name: partial(load, part) for name, part in lazy(path, options).items()}

    return read


MAX_SIDE = 1024  # larger images would take gigabytes for a few thousand of them in memory


def _size_option(value: str) -> str:
    if not value.isdigit() or not 8 <= int(value) <= MAX_SIDE:
        raise ValueError(f"size must be a whole number of pixels from 8 to {MAX_SIDE}")
    return str(int(value))


def _stream_option(value: str) -> str:
    if value not in ("0", "1"):
        raise ValueError("stream must be 1 (read by index from the files) or 0 (into memory)")
    return value


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


def _h5_block(dataset, rows: np.ndarray) -> np.ndarray:
    """Sorted distinct ``rows`` of an h5py dataset: one slice when they are dense, else a
    point selection."""
    lo, hi = int(rows[0]), int(rows[-1]) + 1
    if hi - lo <= 4 * len(rows):
        return dataset[lo:hi][rows - lo]
    return dataset[rows]


class H5Rows:
    """The rows of images ``key`` of an HDF5 file, read through ``hdf5.member`` (no links, no
    data in other files) on every read: no handle is held, so forked workers open their own."""

    def __init__(self, path: Path, key: str) -> None:
        import h5py

        self.path, self.key, self.where = path.resolve(), key, f"{path}[{key}]"
        with _reading(path, "HDF5 file"), h5py.File(path, "r") as f:
            dataset = member(f, key, str(path))
            if not isinstance(dataset, h5py.Dataset):
                raise DataError(f"{path}: {key!r} is not a dataset")
            # the checks of the in-memory path on an array of the file's shape and dtype that
            # takes no memory
            shaped = np.broadcast_to(np.zeros((), dataset.dtype), dataset.shape)
            self.shape = tuple(as_images(shaped, self.where).shape)

    def read(self, rows: np.ndarray) -> np.ndarray:
        import h5py

        distinct, inverse = np.unique(rows, return_inverse=True)
        with _reading(self.path, "HDF5 file"), h5py.File(self.path, "r") as f:
            block = _h5_block(member(f, self.key, str(self.path)), distinct)
        return as_images(block[inverse.reshape(-1)], self.where)

    def identity(self) -> str:
        with _reading(self.path, "HDF5 file"):
            return f"h5\0{self.key}\n" + stat_line(self.path)


def _h5_rows(path: Path, x_key: str, y_key: str | None) -> tuple[LazyImages, np.ndarray | None]:
    images = LazyImages(H5Rows(path, x_key))
    if y_key is None:
        return images, None
    return images, as_labels(_h5_array(path, y_key), len(images), f"{path}[{y_key}]")


def _h5(path: Path, options: Mapping[str, str]) -> dict[str, LazyPart]:
    import h5py

    with _reading(_require(path, "HDF5 file"), "HDF5 file"), h5py.File(path, "r") as f:
        keys = set(datasets(f, str(path)))
    if "x" not in keys:
        raise DataError(
            f"{path} has no images 'x' (it has: {', '.join(sorted(keys)) or 'nothing'})"
        )
    parts = {"train": ("x", "y"), "test": ("x_test", "y_test")}
    return {
        part: partial(_h5_rows, path, x_key, y_key if y_key in keys else None)
        for part, (x_key, y_key) in parts.items()
        if x_key in keys
    }


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
    "folder": Loader(
        _whole(_folder), "DIR", {"size": _size_option, "stream": _stream_option}, _folder
    ),
    "npz": Loader(_npz, "FILE"),
    "h5": Loader(_whole(_h5), "FILE", {"stream": _stream_option}, _h5),
}
