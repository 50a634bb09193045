"""``sleuth report check``: is this report what its signer wrote, about the files it names?

The signature over the statement is verified first (DSSE, Ed25519): an unsigned report fails.
Then every subject is re-hashed. Files inside the report folder must be present and unchanged.
Inputs outside it (victim, suspect, references) are re-hashed where they exist at their recorded
path; one that is absent is reported as not re-hashed, and fails the check only with ``strict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sleuth.errors import SleuthError
from sleuth.fileio import sha256_file
from sleuth.reports.envelope import EnvelopeError, open_envelope
from sleuth.reports.make import VERDICT_NAME


@dataclass
class ReportCheck:
    """The outcome of checking one report folder."""

    ok: bool
    signature: str  # "valid" or why not
    signer: str | None
    subjects: list[dict[str, str]] = field(default_factory=list)  # name, role, status
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    statement: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "signature": self.signature,
            "signer": self.signer,
            "subjects": self.subjects,
            "problems": self.problems,
            "warnings": self.warnings,
        }


def read_statement(report_dir: str | Path) -> dict[str, Any]:
    """The statement of a report, unverified (for ``show`` and ``rerun``)."""
    try:
        return open_envelope(_envelope_text(Path(report_dir))).statement
    except EnvelopeError as exc:
        raise SleuthError(f"{Path(report_dir) / VERDICT_NAME}: {exc}") from None


def _envelope_text(report_dir: Path) -> str:
    path = report_dir / VERDICT_NAME
    if not path.is_file():
        raise SleuthError(f"{report_dir} is not a sleuth report (no {VERDICT_NAME})")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return path.read_bytes().decode("utf-8", errors="replace")


def _subject_path(report_dir: Path, subject: dict[str, Any]) -> Path:
    inside = subject.get("annotations", {}).get("role") == "evidence"
    return report_dir / subject["name"] if inside else Path(subject["name"])


def check_report(
    report_dir: str | Path, public_key: Ed25519PublicKey, *, strict: bool = False
) -> ReportCheck:
    """Verify the signature with ``public_key``, then re-hash every subject."""
    report_dir = Path(report_dir)
    text = _envelope_text(report_dir)
    try:
        opened = open_envelope(text, public_key)
    except EnvelopeError as exc:
        return ReportCheck(False, str(exc), None, problems=[f"{VERDICT_NAME}: {exc}"])
    check = ReportCheck(True, "valid", opened.verified_by, statement=opened.statement)
    recorded = set()
    for subject in opened.statement.get("subject", []):
        path = _subject_path(report_dir, subject)
        role = subject.get("annotations", {}).get("role", "")
        recorded.add(path.resolve())
        if not path.is_file():
            status = "missing"
            if role == "evidence" or strict:
                check.problems.append(f"{subject['name']}: missing")
            else:
                check.warnings.append(f"{subject['name']} ({role}) not found: not re-hashed")
        elif sha256_file(path) != subject["digest"]["sha256"]:
            status = "changed"
            check.problems.append(f"{subject['name']} ({role}): changed since it was signed")
        else:
            status = "ok"
        check.subjects.append({"name": subject["name"], "role": role, "status": status})
    extra = [
        p.name
        for p in sorted(report_dir.iterdir())
        if p.name != VERDICT_NAME and p.resolve() not in recorded
    ]
    if extra:
        check.warnings.append(f"files not covered by the signature: {', '.join(extra)}")
    check.ok = not check.problems
    return check
