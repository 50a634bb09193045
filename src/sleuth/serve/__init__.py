"""``sleuth serve``: the encoder as an HTTP API with accounts, per-user state in a database, and
the online defences (B4B, per-user transformations, calibrated proof-of-work).

Needs the optional extra ``sleuth[serve]`` (FastAPI, uvicorn, SQLAlchemy, psycopg);
``require_extra`` turns its absence into one line naming it.
"""

from __future__ import annotations

import importlib.util

from sleuth.errors import SleuthError

EXTRA_MODULES = ("fastapi", "uvicorn", "sqlalchemy", "psycopg")


def require_extra() -> None:
    """Raise a one-line SleuthError when the ``serve`` extra is not installed."""
    missing = [m for m in EXTRA_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise SleuthError(
            f"sleuth serve needs the 'serve' extra ({', '.join(missing)} missing): "
            "pip install 'sleuth[serve]'"
        )
