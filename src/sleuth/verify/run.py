"""``sleuth verify``: one suspect against one or more victims, calibrated against references."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from sleuth.device import resolve_device
from sleuth.errors import SleuthError
from sleuth.fileio import sha256_file
from sleuth.manifest import environment
from sleuth.models import Encoder, OwnerKey, load_encoder, load_owner_key
from sleuth.models.zoo import zoo_members
from sleuth.verify.asking import RemoteAnswers, SuspectAPI
from sleuth.verify.cache import AnswerCache, images_digest
from sleuth.verify.challenge import (
    Challenge,
    ChallengeSettings,
    asked,
    build_challenge,
    check_challenge,
    indices,
    key_path,
    read_answers,
    read_challenge_key,
    write_answers,
    write_challenge_key,
)
from sleuth.verify.evidence import GROUPS, TEST_INFO, Owner, shared_work
from sleuth.verify.verdict import (
    MIN_REFERENCES,
    Decision,
    adjust,
    calibrate_decision,
    verdict,
    verdict_p,
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
    queries: int  # images of this victim's challenge the verdict used (the suspect's queries)
    owner_key_digest: str = ""
    looks: list[dict[str, Any]] = field(default_factory=list)  # sequential mode: every round

    @property
    def p_verdict(self) -> float | None:
        """The smallest alpha at which this victim's verdict would be ``stolen`` (its margin)."""
        return verdict_p(self.decisions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "victim": self.victim,
            "victim_digest": self.victim_digest,
            "owner_key_digest": self.owner_key_digest,
            "verdict": self.verdict,
            "reason": self.reason,
            "p_verdict": self.p_verdict,
            "queries": self.queries,
            "looks": self.looks,
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
    budget: int | None = None  # sequential mode: the most queries the suspect could be asked
    inputs: dict[str, Any] = field(default_factory=dict)  # run_verify's arguments, to re-run
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def queries_used(self) -> int:
        """Images the suspect had to answer for these verdicts, over all victims."""
        return sum(v.queries for v in self.victims)

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
            "queries_used": self.queries_used,
            "budget": self.budget,
            "seconds": round(self.seconds, 3),
            "inputs": self.inputs,
            "command": self.command,
            "created": self.created,
            "environment": environment(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"


def _resolved(path: Path) -> Path:
    """``path`` made absolute through its links; a link loop is a one-line refusal."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as exc:
        raise SleuthError(f"cannot resolve {path}: {exc}") from None


def _absolute(path: str | None) -> str | None:
    """Paths are recorded absolute, so that a report can be re-run from anywhere."""
    return None if path is None else str(_resolved(Path(path)))


def _victim_files(victim: str) -> tuple[Path, Path]:
    path = Path(victim)
    enc, key = path / "encoder.pt", path / "owner-key.pt"
    if not path.is_dir() or not enc.exists() or not key.exists():
        raise SleuthError(f"--victim must be a folder with encoder.pt and owner-key.pt: {victim}")
    return enc, key


def _encoder_file(path: str) -> Path:
    """The file a model path names: the path itself, or an artifact folder's encoder.pt."""
    p = Path(path)
    return _resolved(p / "encoder.pt" if p.is_dir() else p)


def _load_model(path: str, arch: str | None = None) -> Encoder:
    return load_encoder(_encoder_file(path), arch=arch)


def is_rotation_aware(path: str) -> bool:
    """Whether a reference was trained with a rotation watermark of its own (another owner's
    encoder): an artifact folder whose manifest records a watermarked training, as `sleuth
    embed` and `sleuth references` write it (0.3 ms a folder, where loading its owner key takes
    60). A bare encoder file, or a folder without a readable manifest, says nothing of how it was
    trained, so it is not counted as one."""
    manifest = Path(path) / "manifest.json"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
        return json.loads(manifest.read_text())["details"]["config"]["watermark"] is True
    return False


def expand_references(references: Sequence[str]) -> list[str]:
    """Each reference as given, with a zoo folder (``sleuth references``) standing for all of
    its members, in the zoo's order; the same model named twice is refused."""
    expanded: list[str] = []
    for ref in references:
        members = zoo_members(ref)
        expanded += [str(m) for m in members] if members is not None else [ref]
    files = [_encoder_file(r) for r in expanded]
    if len(set(files)) != len(files):
        raise SleuthError("the same reference is given twice (directly or through a zoo)")
    return expanded


def testable(answers: np.ndarray, who: str) -> np.ndarray:
    """``answers`` if every test can read them: finite, and not one representation for every
    image (NaN or all-zero weights give such answers, and every statistic is undefined)."""
    if not np.isfinite(answers).all():
        raise SleuthError(f"{who} gives NaN or infinite representations: nothing can be tested")
    if answers.size == 0 or float(np.ptp(answers, axis=0).max()) == 0.0:
        raise SleuthError(f"{who} gives the same representation for every image: nothing to test")
    return answers


Answers = np.ndarray | Callable[[Challenge], np.ndarray]
"""A suspect's answers to a whole challenge, or what asks a suspect API a round's images."""


def answered(answers: Answers, ch: Challenge, who: str) -> np.ndarray:
    """``answers`` to the images ``ch`` asks (asking an API for the ones it still needs),
    refused when any of those images is unanswered (a NaN row of a file from a verification
    that stopped earlier) or the answers cannot be tested."""
    full = answers(ch) if callable(answers) else answers
    rows = indices(ch)
    missing = int(np.isnan(full[rows]).all(axis=1).sum())
    if missing:
        raise SleuthError(
            f"{who} left {missing} of the {len(rows)} images this verification needs unanswered"
        )
    testable(full[rows], who)
    return full


def _comparable(suspect: Encoder | None, refs: list[Encoder]) -> list[int]:
    """Indices of the references to calibrate against: those of the suspect's architecture when
    there are at least ``MIN_REFERENCES`` of them (the null is "an independent model like this
    one"), else all (a black-box suspect's architecture is unknown)."""
    if suspect is not None:
        same = [i for i, r in enumerate(refs) if r.config.arch == suspect.config.arch]
        if len(same) >= MIN_REFERENCES:
            return same
    return list(range(len(refs)))


def owner_for(victim: Encoder, key: OwnerKey, images) -> Owner:
    """The victim's answers to a challenge's images, with its private heads."""
    return owner_of(victim.represent(images).numpy(), key)


def owner_of(reps: np.ndarray, key: OwnerKey) -> Owner:
    """The victim's answers (``reps``, to a challenge's images), with its key's private heads."""
    return Owner(
        reps=reps,
        predictor=key.augmentation_predictor() if key.predictor is not None else None,
        head=key.projection_head(),
        n_classes=int(key.predictor["n_classes"]) if key.predictor is not None else 2,
    )


def decide(
    owner: Owner,
    ch: Challenge,
    suspect: np.ndarray,
    refs: list[np.ndarray],
    tests: Sequence[str],
    alpha: float,
    *,
    rotation_aware: int,
) -> list[Decision]:
    """Every chosen test of one suspect's answers, each reference scored the same way against
    the others; calibrated, not yet adjusted (``adjust`` runs over all victims).
    ``rotation_aware``: how many of ``refs`` carry a rotation watermark of their own.

    The statistics are many small matrix operations (a 128 × 128 SVD per model pair), which
    multi-threaded BLAS runs far slower than one thread does (measured: 144 ms against 6 ms for
    that SVD on 2 busy cores), so BLAS runs single-threaded here."""
    with threadpool_limits(limits=1, user_api="blas"), shared_work():
        return _decide(owner, ch, suspect, refs, tests, alpha, rotation_aware)


def _decide(owner, ch, suspect, refs, tests, alpha, rotation_aware) -> list[Decision]:
    decisions = []
    for name in tests:
        fn = GROUPS[name].fn
        results = fn(owner, ch, suspect, refs)
        victim_p = (
            {r.name: r.p_value for r in fn(owner, ch, owner.reps, [])}
            if any(i.needs_victim_effect for i in GROUPS[name].tests)
            else {}
        )
        ref_results = [
            {r.name: r for r in fn(owner, ch, ref, refs[:j] + refs[j + 1 :])}
            for j, ref in enumerate(refs)
        ]
        for res in results:
            scores = [
                rr[res.name].score
                for rr in ref_results
                if res.name in rr and rr[res.name].valid and np.isfinite(rr[res.name].score)
            ]
            info = TEST_INFO[res.name]
            decisions.append(
                calibrate_decision(
                    res, scores, alpha, info, rotation_aware, victim_p=victim_p.get(res.name)
                )
            )
    return decisions


FIRST_LOOK = 10  # samples in the first round of a sequential verification


def looks_for(ch: Challenge, budget: int) -> list[tuple[Challenge, bool]]:
    """The rounds of a sequential verification, nested prefixes of ``ch`` within ``budget``
    queries in all: lean rounds of 10, 20, 40, ... samples (private images only, one query a
    sample), the last of them as large as the budget allows; then, if the budget still allows,
    one full round (every role: watermark, dataset inference, noise) as large as fits. Each
    round comes with whether it is lean."""
    full = len(ch.roles["private"])
    first = ch.prefix(min(FIRST_LOOK, full), lean=True)
    if first.queries > budget:
        raise SleuthError(f"--budget {budget} is too small: the first round asks {first.queries}")

    def largest(cap: int, lean: bool) -> int:
        """The most samples (at most ``cap``) of a round that keeps every round within budget."""
        lo, hi = 0, cap
        while lo < hi:
            mid = (lo + hi + 1) // 2
            fits = asked(*rounds, ch.prefix(mid, lean=lean)) <= budget
            lo, hi = (mid, hi) if fits else (lo, mid - 1)
        return lo

    rounds = [first]
    n = len(first.roles["private"])
    while n < full:
        nxt = largest(min(2 * n, full), lean=True)
        if nxt <= n:
            break
        rounds.append(ch.prefix(nxt, lean=True))
        n = nxt
    looks = [(r, True) for r in rounds]
    last = largest(full, lean=False)
    if last >= FIRST_LOOK:
        looks.append((ch.prefix(last), False))
    return looks


def sequential(
    owner: Owner,
    ch: Challenge,
    suspect: Answers,
    refs: list[np.ndarray],
    tests: Sequence[str],
    alpha: float,
    budget: int,
    *,
    rotation_aware: int,
) -> tuple[list[Decision], int, list[dict[str, Any]]]:
    """Verify in rounds (``looks_for``), stopping at the first ``stolen``.

    Round r of n_r samples is judged at alpha · n_r / Σ n (alpha spent in proportion to each
    round's samples; the levels add up to alpha), so by the union bound the chance of accusing
    an independent model at *any* round is at most alpha, whatever the stopping time and however
    the rounds depend on each other. Measured against an equal split (alpha / R each): the same
    false-accusation bound, and StolenEncoder and infonce copies found within 100 queries
    instead of 160, since the tiny first rounds rarely decide anything. Returns the deciding
    round's decisions (adjusted), the distinct images asked up to it, and a record of every
    round. A suspect API (``suspect`` callable) is asked each round's new images only when the
    round comes."""
    looks = looks_for(ch, budget)
    rounds = [sub for sub, _ in looks]
    samples = [len(sub.roles["private"]) for sub in rounds]
    record: list[dict[str, Any]] = []
    for r, (sub, lean) in enumerate(looks):
        level = alpha * samples[r] / sum(samples)
        answers = answered(suspect, sub, "the suspect")
        decisions = decide(owner, sub, answers, refs, tests, level, rotation_aware=rotation_aware)
        adjust(decisions, level)
        label, _ = verdict(decisions)
        counted = [d.p_adjusted for d in decisions if d.counted]
        queries = asked(*rounds[: r + 1])
        record.append(
            {
                "samples": samples[r],
                "lean": lean,
                "queries": queries,
                "alpha": level,
                "verdict": label,
                "smallest_p_adjusted": min(counted) if counted else None,
                "p_verdict": verdict_p(decisions),
            }
        )
        if label == "stolen":
            break
    return decisions, queries, record


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
    budget: int | None = None,
    cache: str | Path | None = None,
    device: str = "cpu",
    suspect_api: SuspectAPI | None = None,
    answers_out: str | Path | None = None,
) -> VerifyResult:
    """Verify a white-box (``suspect``), black-box (``suspect_reps``: answers to an exported
    challenge) or remote (``suspect_api``) suspect.

    ``cache``: a folder keeping the references' and the victims' answers to each challenge
    (``verify.cache``), so that verifying many suspects against the same references and victim
    asks them once. ``device`` runs the models' forward passes (``auto``, ``cpu``, ``cuda``,
    ``cuda:N``); the statistics run on the CPU either way. A remote suspect is asked the
    challenge itself, round by round with a ``budget``; the answers it gave are written to
    ``answers_out`` (never-asked images as NaN rows) with the challenge key beside it, and the
    result is recorded as the black-box verification of that file, which ``sleuth report
    rerun`` replays without the API."""
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
        "budget": budget,
    }
    say = progress or (lambda _msg: None)
    if sum(x is not None for x in (suspect, suspect_reps, suspect_api)) != 1:
        raise SleuthError("give one suspect: an encoder file, --suspect-reps or --suspect-url")
    if suspect_api is not None:
        if len(victims) != 1:
            raise SleuthError("a suspect API is asked one victim's challenge: give one --victim")
        if answers_out is None:
            raise SleuthError("a suspect API's answers are evidence: give --answers-out FILE.h5")
        inputs["suspect_url"] = suspect_api.name
    key_record = None
    if suspect_reps is not None:
        if len(victims) != 1:
            raise SleuthError(
                "black-box answers belong to one victim's challenge: give one --victim"
            )
        if challenge_key is None:
            raise SleuthError("black-box answers need the challenge key: --challenge FILE.key.json")
        key_record = read_challenge_key(challenge_key)
        settings = ChallengeSettings.from_record(key_record["settings"])
    if not victims:
        raise SleuthError("give at least one --victim folder")
    if not 0 < alpha < 1:
        raise SleuthError(f"--alpha must be in (0, 1), got {alpha}")
    if budget is not None and len(victims) != 1:
        raise SleuthError("--budget verifies against one --victim at a time")
    if budget is not None and budget < 1:
        raise SleuthError(f"--budget must be a positive number of queries, got {budget}")
    chosen = list(tests or GROUPS)
    unknown = [t for t in chosen if t not in GROUPS]
    if unknown:
        raise SleuthError(f"unknown test {unknown[0]!r} (known: {', '.join(GROUPS)})")
    references = expand_references(references)
    inputs["references"] = [_absolute(r) for r in references]
    suspect_file = (
        _encoder_file(suspect)
        if suspect is not None
        else _resolved(Path(suspect_reps or answers_out))  # answers_out: written below
    )
    dev = resolve_device(device)
    suspect_model = _load_model(suspect, arch).to(dev) if suspect is not None else None
    ref_models = [_load_model(r).to(dev) for r in references]
    digests = {r: sha256_file(_encoder_file(r)) for r in references}
    answers = AnswerCache.at(cache)
    used = _comparable(suspect_model, ref_models)
    ref_models = [ref_models[i] for i in used]
    aware = {r: is_rotation_aware(r) for r in references}
    n_aware = sum(aware[references[i]] for i in used)
    reports: list[VictimReport] = []
    all_decisions: list[Decision] = []
    for victim in victims:
        enc_file, key_file = _victim_files(victim)
        key = load_owner_key(key_file)
        say(f"challenge for {victim}")
        ch = build_challenge(key, settings)
        if key_record is not None:
            check_challenge(ch, key_record, challenge_key)
        say(f"representations of {len(ch.images)} images")
        suspect_out: Answers
        if suspect_model is not None:
            suspect_out = testable(suspect_model.represent(ch.images).numpy(), "the suspect")
        elif suspect_api is not None:
            suspect_out = RemoteAnswers(suspect_api, ch.images)
        else:
            suspect_out = read_answers(suspect_reps, len(ch.images))
        asked_digest = images_digest(ch.images)
        victim_digest = sha256_file(enc_file)
        owner = owner_of(
            answers.answers(
                victim_digest,
                asked_digest,
                len(ch.images),
                lambda f=enc_file, x=ch.images: load_encoder(f).to(dev).represent(x).numpy(),
            ),
            key,
        )
        refs = [
            testable(
                answers.answers(
                    digests[r],
                    asked_digest,
                    len(ch.images),
                    lambda m=m, x=ch.images: m.represent(x).numpy(),
                ),
                f"reference {r}",
            )
            for m, r in zip(ref_models, [references[i] for i in used], strict=True)
        ]
        say("tests")
        looks: list[dict[str, Any]] = []
        queries = ch.queries
        if budget is None:
            suspect_answers = answered(suspect_out, ch, "the suspect")
            decisions = decide(
                owner, ch, suspect_answers, refs, chosen, alpha, rotation_aware=n_aware
            )
        else:
            decisions, queries, looks = sequential(
                owner, ch, suspect_out, refs, chosen, alpha, budget, rotation_aware=n_aware
            )
        if isinstance(suspect_out, RemoteAnswers):
            key_file = _keep_answers(suspect_out, ch, Path(answers_out))
            inputs |= {"suspect_reps": _absolute(answers_out), "challenge_key": str(key_file)}
            challenge_key = str(key_file)
        all_decisions += decisions
        reports.append(
            VictimReport(
                victim,
                victim_digest,
                "",
                "",
                decisions,
                queries,
                owner_key_digest=sha256_file(key_file),
                looks=looks,
            )
        )
    if budget is None:
        adjust(all_decisions, alpha)
    for report in reports:
        report.verdict, report.reason = verdict(report.decisions)
    return VerifyResult(
        suspect=suspect or (suspect_api.name if suspect_api else str(suspect_reps)),
        suspect_digest=sha256_file(suspect_file),
        suspect_file=str(suspect_file),
        references=[
            {
                "path": r,
                "file": str(_encoder_file(r)),
                "sha256": digests[r],
                "used": i in used,
                "rotation_aware": aware[r],
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
        budget=budget,
    )


def _keep_answers(remote: RemoteAnswers, ch: Challenge, path: Path) -> Path:
    """Write what a suspect API answered (images never asked as NaN rows) and the challenge's
    key beside it, as ``sleuth challenge`` would have: the black-box record of the run."""
    key_file = write_challenge_key(ch, key_path(path))
    write_answers(path, remote.answers)
    return _resolved(key_file)
