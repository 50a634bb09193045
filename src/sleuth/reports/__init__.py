"""Signed evidence reports: Ed25519 keys, in-toto statements in DSSE envelopes, the evidence
file with every per-sample array, a self-contained HTML page (and PDF), and their checks."""

from sleuth.reports.check import ReportCheck, check_report, read_statement
from sleuth.reports.evidence import Evidence, read_evidence, write_evidence
from sleuth.reports.keys import (
    fingerprint,
    generate_keypair,
    load_private_key,
    load_public_key,
    private_key_is_encrypted,
)
from sleuth.reports.make import ReportWritten, write_report
from sleuth.reports.rerun import (
    Reproduction,
    compare,
    replay,
    rerun_inputs,
    verification_predicate,
)

__all__ = [
    "Evidence",
    "ReportCheck",
    "ReportWritten",
    "Reproduction",
    "check_report",
    "compare",
    "replay",
    "rerun_inputs",
    "verification_predicate",
    "fingerprint",
    "generate_keypair",
    "load_private_key",
    "load_public_key",
    "private_key_is_encrypted",
    "read_evidence",
    "read_statement",
    "write_evidence",
    "write_report",
]
