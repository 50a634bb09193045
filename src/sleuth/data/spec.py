"""Dataset specs: ``KIND[:LOCATION][?key=value&...]``, parsed once and printed canonically."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sleuth.data.errors import DataError
from sleuth.data.loaders import LOADERS


def valid_specs() -> str:
    """Every kind as it is written, for error messages and help."""
    return ", ".join(loader.usage(kind) for kind, loader in LOADERS.items())


@dataclass(frozen=True)
class DataSpec:
    """A validated dataset spec; ``parse_spec(str(spec)) == spec``."""

    kind: str
    location: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        loader = LOADERS.get(self.kind)
        if loader is None:
            raise DataError(f"unknown dataset kind {self.kind!r} in {self}; valid: {valid_specs()}")
        if (loader.location is None) != (self.location is None):
            raise DataError(
                f"bad dataset spec {self}: write it as {loader.usage(self.kind)} "
                f"(valid: {valid_specs()})"
            )
        unknown = sorted(set(self.options) - set(loader.options))
        if unknown:
            allowed = ", ".join(loader.options) or "none"
            raise DataError(
                f"unknown option {unknown[0]!r} in {self} (options of {self.kind}: {allowed})"
            )
        canonical = {}
        for key, value in sorted(self.options.items()):
            try:
                canonical[key] = loader.options[key](value)
            except ValueError as exc:
                raise DataError(f"bad option {key}={value!r} in {self}: {exc}") from None
        object.__setattr__(self, "options", MappingProxyType(canonical))

    def __str__(self) -> str:
        where = "" if self.location is None else f":{self.location}"
        query = "&".join(f"{key}={value}" for key, value in self.options.items())
        return self.kind + where + (f"?{query}" if query else "")

    def __hash__(self) -> int:
        return hash(str(self))


def _options(query: str, spec: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in query.split("&"):
        key, eq, value = item.partition("=")
        if not key or not eq or key in options:
            raise DataError(
                f"bad option {item!r} in dataset spec {spec!r}: expected key=value once"
            )
        options[key] = value
    return options


def parse_spec(spec: str) -> DataSpec:
    """Parse ``KIND[:LOCATION][?key=value&...]``; anything malformed raises DataError."""
    text = spec.strip()
    head, question, query = text.rpartition("?") if "?" in text else (text, "", "")
    kind, _, location = head.partition(":")
    return DataSpec(kind, location or None, _options(query, spec) if question else {})
