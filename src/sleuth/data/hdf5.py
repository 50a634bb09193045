"""Reading HDF5 files that may be hostile: only hard links, and only data stored in the file.

A soft or external link can point anywhere (an external link to another file, read as if it
were ours), and a dataset can keep its bytes in other files (external storage, virtual
datasets); ``member`` refuses all of them with one line naming the file and the member.
"""

from __future__ import annotations

from typing import Any

import h5py

from sleuth.data.errors import DataError


def member(group: Any, name: str, where: str) -> Any:
    """``group[name]`` if it is a hard link to a group or to a dataset stored in this file."""
    link = group.get(name, getlink=True)
    if link is None:
        raise KeyError(name)
    if not isinstance(link, h5py.HardLink):
        raise DataError(
            f"{where}: {name!r} is a {type(link).__name__}; links in data files are refused"
        )
    obj = group[name]
    if isinstance(obj, h5py.Dataset) and (obj.is_virtual or obj.external):
        raise DataError(f"{where}: {name!r} keeps its data in other files; refused")
    return obj


def read_dataset(group: Any, name: str, where: str) -> Any:
    """The whole of dataset ``name`` (see ``member``)."""
    obj = member(group, name, where)
    if not isinstance(obj, h5py.Dataset):
        raise DataError(f"{where}: {name!r} is not a dataset")
    return obj[()]


def datasets(group: Any, where: str) -> list[str]:
    """The names of the group's members that are plain datasets (links are refused)."""
    return [name for name in group if isinstance(member(group, name, where), h5py.Dataset)]
