"""The data package's user error: a bad spec, a missing path or a corrupt file."""

from __future__ import annotations

from sleuth.errors import SleuthError


class DataError(SleuthError):
    """A dataset spec or file we cannot use; the one-line message names the spec or path."""
