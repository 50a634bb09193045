"""``evidence.h5``: a verification result with the raw per-sample arrays behind every test.

It is both the report's evidence file and the saved form of a verification (``sleuth verify
--save``), from which ``sleuth report make`` builds a report later. Layout:

- root attributes: ``format``, ``format_version``, ``result`` (the verification's JSON);
- one group per victim (``victim-0``, …) with its verdict, then one group per test holding the
  per-sample arrays (gzip) and ``reference_scores``, each with a ``description`` attribute.

Written without HDF5 timestamps, so the same result gives the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sleuth.data.hdf5 import datasets, member, read_dataset
from sleuth.errors import SleuthError
from sleuth.fileio import atomic_write
from sleuth.verify import VerifyResult
from sleuth.verify.evidence import TEST_INFO

EVIDENCE_FORMAT = "sleuth-evidence"
EVIDENCE_VERSION = 1

REFERENCE_SCORES = (
    "per independent reference: its score on this test, computed exactly as the suspect's (the "
    "calibration's null sample)"
)


@dataclass
class Evidence:
    """A verification result as plain data: its JSON and, per (victim index, test), arrays."""

    result: dict[str, Any]
    arrays: dict[tuple[int, str], dict[str, np.ndarray]]

    @classmethod
    def from_result(cls, result: VerifyResult) -> Evidence:
        arrays = {
            (i, d.result.name): {
                **{k: np.asarray(v) for k, v in d.result.samples.items()},
                "reference_scores": np.asarray(d.reference_scores, np.float64),
            }
            for i, victim in enumerate(result.victims)
            for d in victim.decisions
        }
        return cls(result.to_dict(), arrays)

    def tests(self, victim: int) -> list[dict[str, Any]]:
        """The decisions (as dicts) of one victim, in order."""
        return self.result["victims"][victim]["tests"]


def _meaning(test: str, array: str) -> str:
    """What one per-sample array of one test holds, from the test registry."""
    if array == "reference_scores":
        return REFERENCE_SCORES
    info = TEST_INFO.get(test)
    return info.arrays.get(array, array) if info else array


def write_evidence(evidence: Evidence, path: str | Path) -> Path:
    """Write ``evidence`` atomically to ``path`` (HDF5)."""

    def dump(tmp: Path) -> None:
        with h5py.File(tmp, "w", track_order=True) as f:
            f.attrs["format"] = EVIDENCE_FORMAT
            f.attrs["format_version"] = EVIDENCE_VERSION
            f.attrs["result"] = json.dumps(evidence.result, allow_nan=False)
            for i, victim in enumerate(evidence.result["victims"]):
                group = f.create_group(f"victim-{i}", track_order=True)
                group.attrs["victim"] = victim["victim"]
                group.attrs["verdict"] = victim["verdict"]
                group.attrs["reason"] = victim["reason"]
                for test in victim["tests"]:
                    tg = group.create_group(test["name"], track_order=True)
                    tg.attrs["family"] = test["family"]
                    tg.attrs["alternative"] = test["alternative"]
                    tg.attrs["compared"] = test["compared"]
                    if test["score"] is not None:
                        tg.attrs["suspect_score"] = test["score"]
                    for name, values in evidence.arrays.get((i, test["name"]), {}).items():
                        data = values.astype(np.uint8) if values.dtype == bool else values
                        ds = tg.create_dataset(
                            name, data=data, compression="gzip", track_times=False
                        )
                        ds.attrs["description"] = _meaning(test["name"], name)

    return atomic_write(path, dump)


def read_evidence(path: str | Path) -> Evidence:
    """Read an evidence file written by ``write_evidence``; anything else is refused."""
    path = Path(path)
    if not path.is_file():
        raise SleuthError(f"evidence file not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != EVIDENCE_FORMAT:
                raise SleuthError(f"{path} is not a sleuth evidence file")
            version = int(f.attrs.get("format_version", 0))
            if version > EVIDENCE_VERSION:
                raise SleuthError(f"{path}: evidence format {version} is newer than this sleuth")
            result = json.loads(f.attrs["result"])
            problem = result_problem(result)
            if problem:
                raise SleuthError(f"{path}: its result is not a verification ({problem})")
            where = str(path)
            arrays = {}
            for i, victim in enumerate(result["victims"]):
                for test in victim["tests"]:
                    group = member(member(f, f"victim-{i}", where), test["name"], where)
                    arrays[(i, test["name"])] = {
                        name: read_dataset(group, name, where) for name in datasets(group, where)
                    }
    except (OSError, KeyError, ValueError, RecursionError) as exc:
        raise SleuthError(f"cannot read evidence from {path}: {exc}") from None
    return Evidence(result, arrays)


# what a report reads of a verification's result, by type: a saved result is hostile input
_RESULT_FIELDS = {
    "verdict": str,
    "suspect": str,
    "alpha": (int, float),
    "victims": list,
    "tests": list,
    "references": list,
    "settings": dict,
    "inputs": dict,
    "created": str,
    "environment": dict,
}
_VICTIM_FIELDS = {"victim": str, "verdict": str, "reason": str, "tests": list}
_TEST_FIELDS = {"name": str, "family": str, "alternative": str, "compared": str}


def _wrong_fields(d: Any, fields: dict[str, Any], where: str) -> str | None:
    if not isinstance(d, dict):
        return f"{where} is a {type(d).__name__}, not an object"
    for key, kind in fields.items():
        if not isinstance(d.get(key), kind):
            return f"{where}.{key} is missing or not a {getattr(kind, '__name__', 'number')}"
    return None


def result_problem(result: Any) -> str | None:
    """What keeps ``result`` (a verification's dict form, read from a file) from being written
    as a report, or None: the fields the evidence file, page and statement read, by type."""
    problem = _wrong_fields(result, _RESULT_FIELDS, "result")
    for i, victim in enumerate([] if problem else result["victims"]):
        problem = problem or _wrong_fields(victim, _VICTIM_FIELDS, f"victims[{i}]")
        for j, test in enumerate([] if problem else victim["tests"]):
            problem = problem or _wrong_fields(test, _TEST_FIELDS, f"victims[{i}].tests[{j}]")
    return problem
