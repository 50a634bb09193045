"""Write a report folder: evidence.h5, report.html, report.pdf (optional), verdict.json (signed).

Everything is written into a temporary folder beside the target and renamed into place at the
end, so an interrupted or failed report leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sleuth.errors import SleuthError
from sleuth.fileio import atomic_write_text, check_out_dir, umask
from sleuth.reports.envelope import seal, serialise
from sleuth.reports.evidence import Evidence, write_evidence
from sleuth.reports.html import render_html
from sleuth.reports.keys import fingerprint
from sleuth.reports.pdf import find_browser, html_to_pdf
from sleuth.reports.statement import build_statement, evidence_subjects, input_subjects

VERDICT_NAME = "verdict.json"
EVIDENCE_NAME = "evidence.h5"
HTML_NAME = "report.html"
PDF_NAME = "report.pdf"


@dataclass(frozen=True)
class ReportWritten:
    """Where the report went, who signed it, and how long it took."""

    out_dir: Path
    files: list[str]
    signer: str | None
    pdf: bool
    seconds: float


def write_report(
    evidence: Evidence,
    out_dir: str | Path,
    *,
    private_key: Ed25519PrivateKey | None = None,
    pdf: bool | None = None,
    force: bool = False,
) -> ReportWritten:
    """Write the report of ``evidence`` into ``out_dir``.

    ``pdf``: True requires a browser to print it, None prints it when one is found, False skips it.
    """
    start = time.perf_counter()
    out_dir = check_out_dir(out_dir, force=force)
    browser = find_browser() if pdf is not False else None
    if pdf and browser is None:
        raise SleuthError("--pdf needs Chromium on PATH (e.g. apt install chromium)")
    signer = fingerprint(private_key.public_key()) if private_key is not None else None
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp's folder is private; a report is to be shared
        write_evidence(evidence, tmp / EVIDENCE_NAME)
        inputs = input_subjects(evidence.result)
        shown = inputs + evidence_subjects(tmp, [EVIDENCE_NAME])
        atomic_write_text(tmp / HTML_NAME, render_html(evidence, shown, signer))
        files = [EVIDENCE_NAME, HTML_NAME]
        if browser is not None and html_to_pdf(tmp / HTML_NAME, tmp / PDF_NAME, browser):
            files.append(PDF_NAME)
        statement = build_statement(
            evidence,
            inputs + evidence_subjects(tmp, files),
            signer=signer,
            report_seconds=time.perf_counter() - start,
        )
        atomic_write_text(tmp / VERDICT_NAME, serialise(seal(statement, private_key)))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return ReportWritten(
        out_dir, [VERDICT_NAME, *files], signer, PDF_NAME in files, time.perf_counter() - start
    )
