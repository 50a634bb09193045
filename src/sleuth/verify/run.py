"""``sleuth verify``: one suspect against one or more victims, calibrated against references."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sleuth.errors import SleuthError
from sleuth.fileio import sha256_file
from sleuth.manifest import environment
from sleuth.models import Encoder, load_encoder, load_owner_key
from sleuth.verify.challenge import (
    ChallengeSettings,
    build_challenge,
    check_challenge,
    read_answers,
    read_challenge_key,
)
from sleuth.verify.evidence import TESTS, Owner
from sleuth.verify.verdict import (
    MIN_REFERENCES,
    Decision,
    adjust,
    calibrate_decision,
    verdict,
)

Progress = Callable[[str], None]


@dataclass
class VictimReport:
    """The verdict on one victim and every decision behind it."""

    victim: str
    victim_digest: str
    verdict: str
    reason: str
    decisions: list[Decision]
    queries: int  # images in this victim's challenge (what a black-box suspect is asked)
    owner_key_digest: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "victim": self.victim,
            "victim_digest": self.victim_digest,
            "owner_key_digest": self.owner_key_digest,
            "verdict": self.verdict,
            "reason": self.reason,
            "queries": self.queries,
            "tests": [d.to_dict() for d in self.decisions],
        }


@dataclass
class VerifyResult:
    """Everything a report needs: inputs with digests, settings, verdicts, timings."""

    suspect: str
    suspect_digest: str
    references: list[dict[str, str]]
    alpha: float
    settings: ChallengeSettings
    tests: list[str]
    victims: list[VictimReport]
    seconds: float
    suspect_file: str = ""  # absolute path of the file hashed: encoder file or answers
    challenge_key_digest: str | None = None  # black-box: the investigator's challenge key
    inputs: dict[str, Any] = field(default_factory=dict)  # run_verify's arguments, to re-run
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def verdict(self) -> str:
        """Over all victims: stolen from any, else inconclusive if any, else not stolen."""
        verdicts = {v.verdict for v in self.victims}
        for v in ("stolen", "inconclusive"):
            if v in verdicts:
                return v
        return "not_stolen"

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "suspect": self.suspect,
            "suspect_digest": self.suspect_digest,
            "suspect_file": self.suspect_file,
            "references": self.references,
            "challenge_key_digest": self.challenge_key_digest,
            "alpha": self.alpha,
            "settings": asdict(self.settings),
            "tests": self.tests,
            "victims": [v.to_dict() for v in self.victims],
            "seconds": round(self.seconds, 3),
            "inputs": self.inputs,
            "command": self.command,
            "created": self.created,
            "environment": environment(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"


def _absolute(path: str | None) -> str | None:
    """Paths are recorded absolute, so that a report can be re-run from anywhere."""
    return None if path is None else str(Path(path).resolve())


def _victim_files(victim: str) -> tuple[Path, Path]:
    path = Path(victim)
    enc, key = path / "encoder.pt", path / "owner-key.pt"
    if not path.is_dir() or not enc.exists() or not key.exists():
        raise SleuthError(f"--victim must be a folder with encoder.pt and owner-key.pt: {victim}")
    return enc, key


def _encoder_file(path: str) -> Path:
    """The file a model path names: the path itself, or an artifact folder's encoder.pt."""
    p = Path(path)
    return (p / "encoder.pt" if p.is_dir() else p).resolve()


def _load_model(path: str, arch: str | None = None) -> Encoder:
    return load_encoder(_encoder_file(path), arch=arch)


def _comparable(suspect: Encoder | None, refs: list[Encoder]) -> list[int]:
    """Indices of the references to calibrate against: those of the suspect's architecture when
    there are at least ``MIN_REFERENCES`` of them (the null is "an independent model like this
    one"), else all (a black-box suspect's architecture is unknown)."""
    if suspect is not None:
        same = [i for i, r in enumerate(refs) if r.config.arch == suspect.config.arch]
        if len(same) >= MIN_REFERENCES:
            return same
    return list(range(len(refs)))


def _decide(owner, ch, suspect: np.ndarray, refs: list[np.ndarray], tests, alpha) -> list[Decision]:
    decisions = []
    for name in tests:
        results = TESTS[name](owner, ch, suspect, refs)
        ref_results = [
            {r.name: r for r in TESTS[name](owner, ch, ref, refs[:j] + refs[j + 1 :])}
            for j, ref in enumerate(refs)
        ]
        for res in results:
            scores = [
                rr[res.name].score
                for rr in ref_results
                if res.name in rr and rr[res.name].valid and np.isfinite(rr[res.name].score)
            ]
            decisions.append(calibrate_decision(res, scores, alpha))
    return decisions


def run_verify(
    victims: Sequence[str],
    *,
    suspect: str | None = None,
    suspect_reps: str | None = None,
    challenge_key: str | None = None,
    arch: str | None = None,
    references: Sequence[str] = (),
    tests: Sequence[str] | None = None,
    alpha: float = 0.01,
    settings: ChallengeSettings | None = None,
    progress: Progress | None = None,
) -> VerifyResult:
    """Verify a white-box (``suspect``) or black-box (``suspect_reps``) suspect."""
    start = time.perf_counter()
    settings = settings or ChallengeSettings()
    inputs = {
        "victims": [_absolute(v) for v in victims],
        "suspect": _absolute(suspect),
        "suspect_reps": _absolute(suspect_reps),
        "challenge_key": _absolute(challenge_key),
        "arch": arch,
        "references": [_absolute(r) for r in references],
        "tests": list(tests) if tests is not None else None,
        "alpha": alpha,
        "settings": asdict(settings),
    }
    say = progress or (lambda _msg: None)
    if (suspect is None) == (suspect_reps is None):
        raise SleuthError("give either a suspect encoder file or --suspect-reps, not both")
    key_record = None
    if suspect_reps is not None:
        if len(victims) != 1:
            raise SleuthError(
                "black-box answers belong to one victim's challenge: give one --victim"
            )
        if challenge_key is None:
            raise SleuthError("black-box answers need the challenge key: --challenge FILE.key.json")
        key_record = read_challenge_key(challenge_key)
        settings = ChallengeSettings(**key_record["settings"])
    if not victims:
        raise SleuthError("give at least one --victim folder")
    if not 0 < alpha < 1:
        raise SleuthError(f"--alpha must be in (0, 1), got {alpha}")
    chosen = list(tests or TESTS)
    unknown = [t for t in chosen if t not in TESTS]
    if unknown:
        raise SleuthError(f"unknown test {unknown[0]!r} (known: {', '.join(TESTS)})")
    suspect_file = _encoder_file(suspect) if suspect is not None else Path(suspect_reps).resolve()
    suspect_model = _load_model(suspect, arch) if suspect is not None else None
    ref_models = [_load_model(r) for r in references]
    used = _comparable(suspect_model, ref_models)
    ref_models = [ref_models[i] for i in used]
    reports: list[VictimReport] = []
    all_decisions: list[Decision] = []
    for victim in victims:
        enc_file, key_file = _victim_files(victim)
        victim_model, key = load_encoder(enc_file), load_owner_key(key_file)
        say(f"challenge for {victim}")
        ch = build_challenge(key, settings)
        if key_record is not None:
            check_challenge(ch, key_record, challenge_key)
        say(f"representations of {len(ch.images)} images")
        if suspect_model is not None:
            suspect_out = suspect_model.represent(ch.images).numpy()
        else:
            suspect_out = read_answers(suspect_reps, len(ch.images))
        owner = Owner(
            reps=victim_model.represent(ch.images).numpy(),
            predictor=key.augmentation_predictor() if key.predictor is not None else None,
            head=key.projection_head(),
            n_classes=int(key.predictor["n_classes"]) if key.predictor is not None else 2,
        )
        refs = [m.represent(ch.images).numpy() for m in ref_models]
        say("tests")
        decisions = _decide(owner, ch, suspect_out, refs, chosen, alpha)
        all_decisions += decisions
        reports.append(
            VictimReport(
                victim,
                sha256_file(enc_file),
                "",
                "",
                decisions,
                len(ch.images),
                owner_key_digest=sha256_file(key_file),
            )
        )
    adjust(all_decisions, alpha)
    for report in reports:
        report.verdict, report.reason = verdict(report.decisions)
    return VerifyResult(
        suspect=suspect or str(suspect_reps),
        suspect_digest=sha256_file(suspect_file),
        suspect_file=str(suspect_file),
        references=[
            {
                "path": r,
                "file": str(_encoder_file(r)),
                "sha256": sha256_file(_encoder_file(r)),
                "used": i in used,
            }
            for i, r in enumerate(references)
        ],
        alpha=alpha,
        settings=settings,
        tests=chosen,
        victims=reports,
        seconds=time.perf_counter() - start,
        challenge_key_digest=sha256_file(challenge_key) if challenge_key else None,
        inputs=inputs,
    )
