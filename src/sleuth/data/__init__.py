"""Datasets for sleuth: specs, loaders, splits, fingerprints and input adapters.

A spec names a dataset: ``demo`` (the embedded Fashion-MNIST test split), ``fmnist:DIR``,
``mnist:DIR``, ``cifar10:ROOT``, ``cifar100:ROOT``, ``svhn:ROOT``, ``stl10:ROOT``,
``folder:DIR[?size=N]``, ``npz:FILE`` or ``h5:FILE``. Loading gives a part as uint8 (N, C, H, W),
in memory or, for ``folder:`` and ``h5:`` data above ``lazy.STREAM_BYTES`` or with ``stream=1``,
as ``LazyImages`` read by index from the files (``sleuth.data.lazy``).

Parts: datasets published with a test split have "train" and "test" (STL-10 also "unlabeled").
Datasets without one (demo, folder, npz/h5 lacking ``x_test``) get a fixed hold-out: "test" is 20%
of each class (of all images when unlabelled) drawn with seed 0, "train" the rest, so the parts
never change between runs or machines. Nothing is cached on disk but streamed parts'
fingerprints (``sleuth.data.lazy``).
"""

from sleuth.data.errors import DataError
from sleuth.data.images import ImageSet, available_parts, fingerprint, load_images
from sleuth.data.inputs import InputSpec, adapt, input_spec_for, normalise, to_float
from sleuth.data.lazy import BatchReader, LazyImages, default_workers
from sleuth.data.loaders import LOADERS, Loader
from sleuth.data.spec import DataSpec, parse_spec
from sleuth.data.split import OwnerSplit, Split, make_split

__all__ = [
    "LOADERS",
    "BatchReader",
    "DataError",
    "DataSpec",
    "ImageSet",
    "InputSpec",
    "LazyImages",
    "Loader",
    "OwnerSplit",
    "Split",
    "adapt",
    "available_parts",
    "default_workers",
    "fingerprint",
    "input_spec_for",
    "load_images",
    "make_split",
    "normalise",
    "parse_spec",
    "to_float",
]
