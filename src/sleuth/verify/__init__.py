"""Ownership verification: the papers' tests, calibrated against independent encoders, combined
into one verdict per victim (stolen, not_stolen or inconclusive)."""

from sleuth.verify.challenge import ChallengeSettings, build_challenge, export_challenge
from sleuth.verify.run import VerifyResult, VictimReport, run_verify
from sleuth.verify.verdict import VERDICTS

__all__ = [
    "VERDICTS",
    "ChallengeSettings",
    "VerifyResult",
    "VictimReport",
    "build_challenge",
    "export_challenge",
    "run_verify",
]
