"""The in-toto Statement of a verification: what was tested (subjects, each with its SHA-256)
and what was found (a predicate of sleuth's own type).

Subjects are the victim's encoder and owner key, the suspect (its file, or the black-box answers
and the challenge key), every reference, and the evidence files written into the report folder.
A subject inside the report folder is named by its file name; any other by its absolute path.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sleuth.fileio import sha256_file
from sleuth.manifest import environment
from sleuth.reports.evidence import Evidence
from sleuth.verify.verdict import DECISION_RULE

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://github.com/sleuth-forensics/sleuth/verification/v1"


def subject(name: str, sha256: str, role: str) -> dict[str, Any]:
    """An in-toto ResourceDescriptor: a name, its digest, and what part it played."""
    return {"name": name, "digest": {"sha256": sha256}, "annotations": {"role": role}}


def input_subjects(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Subjects for every input of a verification, with the digests taken when it ran."""
    inputs = result["inputs"]
    subjects = []
    for path, victim in zip(inputs["victims"], result["victims"], strict=True):
        subjects.append(subject(str(Path(path) / "encoder.pt"), victim["victim_digest"], "victim"))
        subjects.append(
            subject(str(Path(path) / "owner-key.pt"), victim["owner_key_digest"], "owner-key")
        )
    if inputs["suspect"] is not None:
        subjects.append(subject(result["suspect_file"], result["suspect_digest"], "suspect"))
    else:
        subjects.append(
            subject(result["suspect_file"], result["suspect_digest"], "suspect-answers")
        )
        subjects.append(
            subject(inputs["challenge_key"], result["challenge_key_digest"], "challenge-key")
        )
    for ref in result["references"]:
        subjects.append(subject(ref["file"], ref["sha256"], "reference"))
    return subjects


def evidence_subjects(report_dir: Path, names: list[str]) -> list[dict[str, Any]]:
    """Subjects for the files written into the report folder (hashed now)."""
    return [subject(name, sha256_file(report_dir / name), "evidence") for name in names]


def build_statement(
    evidence: Evidence,
    subjects: list[dict[str, Any]],
    *,
    signer: str | None,
    report_seconds: float,
) -> dict[str, Any]:
    """The statement: subjects plus a predicate with the whole verification and how it was made."""
    result = evidence.result
    predicate = {
        "verdict": result["verdict"],
        "suspect": result["suspect"],
        "suspect_digest": result["suspect_digest"],
        "challenge_key_digest": result["challenge_key_digest"],
        "alpha": result["alpha"],
        "decision_rule": DECISION_RULE,
        "victims": result["victims"],
        "tests": result["tests"],
        "references": result["references"],
        "settings": result["settings"],
        "seeds": {
            "challenge": result["settings"]["seed"],
            "dataset_inference_gmm": result["settings"]["seed"],
        },
        "inputs": result["inputs"],
        "verification": {
            "command": result["command"],
            "created": result["created"],
            "seconds": result["seconds"],
            "environment": result["environment"],
        },
        "report": {
            "command": list(sys.argv),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(report_seconds, 3),
            "environment": environment(),
            "signer": signer,
        },
    }
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }
