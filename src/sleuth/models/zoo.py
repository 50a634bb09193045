"""A zoo of reference encoders on disk: a folder of model folders listed in ``zoo.json``.

``sleuth references`` writes it; ``sleuth verify --reference ZOO`` reads it as all its members.
Only the member names are read here, as plain folder names inside the zoo (a hostile record
cannot point elsewhere); the members themselves load like any suspect file.
"""

from __future__ import annotations

import json
from pathlib import Path

from sleuth.errors import SleuthError

ZOO_FORMAT = "sleuth-zoo"
ZOO_FILE = "zoo.json"


def zoo_members(path: str | Path) -> list[Path] | None:
    """The member folders of a zoo folder (one with ``zoo.json``), or None if it is not one."""
    record_file = Path(path) / ZOO_FILE
    if not record_file.is_file():
        return None
    try:
        record = json.loads(record_file.read_text(encoding="utf-8"))
        names = [m["name"] for m in record["members"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SleuthError(f"{record_file} is not a sleuth zoo record ({exc})") from None
    if record.get("format") != ZOO_FORMAT or not all(isinstance(n, str) for n in names):
        raise SleuthError(f"{record_file} is not a sleuth zoo record")
    if any(Path(name).name != name or name in ("", ".", "..") for name in names):
        raise SleuthError(f"{record_file}: member names must be plain folder names")
    return [Path(path) / name for name in names]
