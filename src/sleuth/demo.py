"""``sleuth demo``: the whole story on the embedded data, in minutes on a CPU.

An owner trains a watermarked victim; independent encoders are trained by the victim's own
recipe with other seeds (so that the calibration compares like with like); a thief steals two
copies from the victim's public images; an investigator verifies each copy and one more
independent encoder, and writes a signed report for each, which is then checked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sleuth.data.watermark import RANDOM
from sleuth.embed import EmbedConfig, run_embed
from sleuth.errors import SleuthError
from sleuth.fileio import check_out_dir
from sleuth.reports import (
    Evidence,
    check_report,
    generate_keypair,
    load_private_key,
    load_public_key,
    write_report,
)
from sleuth.reports.keys import PRIVATE_NAME, PUBLIC_NAME
from sleuth.steal import StealConfig, run_steal
from sleuth.verify import ChallengeSettings, VerifyResult, run_verify
from sleuth.verify.verdict import MIN_ROTATION_AWARE

# The last independent encoder is verified against the others: clearing it needs 5 references
# (with fewer, no test could see a copy 10 reference sds away; sleuth.verify.verdict).
MIN_INDEPENDENT = 6

# progress(kind) -> a context manager yielding the callback that a stage ("embed" or "steal")
# reports its events to (sleuth.progress: EmbedStep; TrainStep and StageStep).
ProgressFactory = Callable[[str], AbstractContextManager[Callable[[Any], None] | None]]


@dataclass(frozen=True)
class DemoPlan:
    """How big the demo is: sized for 10 minutes on 2 CPU cores (docs/benchmarks.md)."""

    recipe: EmbedConfig = EmbedConfig(data="demo", epochs=6)  # victim's; others change the seed
    # Independent encoders (the victim's recipe, other seeds). The copies are calibrated against
    # all of them; the last is also verified itself, against the others.
    independent: int = MIN_INDEPENDENT
    # Other owners: the victim's recipe, watermarked with secret intervals of their own. They
    # join every suspect's references, so that the watermark tests count (MIN_ROTATION_AWARE).
    owners: int = MIN_ROTATION_AWARE
    # Their watermark intervals (``--wm-intervals`` specs), one per owner; empty: each draws a
    # secret of its own, as a real owner does.
    owner_intervals: tuple[str, ...] = ()
    losses: tuple[str, ...] = ("mse", "infonce")
    attack: StealConfig = StealConfig(data="demo", public_split=True, queries=2000, epochs=20)
    challenge: ChallengeSettings = ChallengeSettings(samples=500)


@dataclass(frozen=True)
class DemoRow:
    """One verified suspect: how it was made and what the investigator concluded."""

    suspect: str
    made: str
    expected: str
    verdict: str
    strongest: str  # the counted test with the smallest adjusted p
    report: str
    check: str  # "ok" or the first problem `sleuth report check` found
    verify_seconds: float
    report_seconds: float

    @property
    def as_expected(self) -> bool:
        return self.verdict == self.expected and self.check == "ok"


@dataclass
class DemoResult:
    out_dir: Path
    rows: list[DemoRow]
    public_key: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(row.as_expected for row in self.rows)


def _strongest(result: VerifyResult) -> str:
    counted = [d for v in result.victims for d in v.decisions if d.counted]
    if not counted:
        return "-"
    best = min(counted, key=lambda d: d.p_adjusted)
    return f"{best.result.name} (adjusted p {best.p_adjusted:.2g})"


def run_demo(
    out_dir: str | Path,
    plan: DemoPlan = DemoPlan(),
    *,
    force: bool = False,
    resume: bool = False,
    device: str = "auto",
    say: Callable[[str], None] = lambda _msg: None,
    progress: ProgressFactory = lambda _kind: nullcontext(None),
) -> DemoResult:
    """Train, steal, verify and report; ``resume`` reuses every model already on disk."""
    start = time.perf_counter()
    if plan.independent < MIN_INDEPENDENT:
        raise SleuthError(f"the demo needs at least {MIN_INDEPENDENT} independent encoders")
    if plan.owner_intervals and len(plan.owner_intervals) != plan.owners:
        raise SleuthError(
            f"the demo has {plan.owners} other owners: give as many intervals, "
            f"got {len(plan.owner_intervals)}"
        )
    out = check_out_dir(out_dir, force=force, resume=resume)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def stage(folder: Path, what: str, make: Callable[[], Any]) -> str:
        if resume and (folder / "encoder.pt").exists():
            say(f"{what}: reusing {folder}")
            return str(folder)
        say(what)
        t = time.perf_counter()
        make()
        timings[folder.name] = round(time.perf_counter() - t, 1)
        return str(folder)

    def embed(name: str, seed: int, watermark: bool, intervals: str | None = None) -> str:
        cfg = replace(plan.recipe, seed=seed, watermark=watermark)
        cfg = replace(cfg, wm_intervals=intervals) if intervals else cfg
        what = f"training {name} ({'watermarked' if watermark else 'independent'}, seed {seed})"

        def make() -> None:
            with progress("embed") as cb:
                run_embed(cfg, out / name, force=True, device=device, progress=cb)

        return stage(out / name, what, make)

    seed = plan.recipe.seed
    victim = embed("victim", seed, True)
    references = [
        embed(f"independent-{s}", s, False) for s in range(seed + 1, seed + 1 + plan.independent)
    ]
    first_owner = seed + 1 + plan.independent
    owner_intervals = plan.owner_intervals or (RANDOM,) * plan.owners
    owners = [
        embed(f"owner-{first_owner + i}", first_owner + i, True, owner_intervals[i])
        for i in range(plan.owners)
    ]
    suspects = []
    for loss in plan.losses:
        cfg = replace(plan.attack, loss=loss)

        def make(cfg: StealConfig = cfg, loss: str = loss) -> None:
            with progress("steal") as cb:
                run_steal(
                    cfg, victim, out / f"stolen-{loss}", force=True, device=device, progress=cb
                )

        what = f"stolen with {loss}, {cfg.queries:,} queries of the victim's public images"
        folder = stage(out / f"stolen-{loss}", f"stealing: {what}", make)
        suspects.append((folder, what, "stolen", references + owners))
    others = (
        f"independent (victim's recipe), against the other {len(references) - 1} and "
        f"{len(owners)} other owners"
    )
    # seven references cannot tell a suspect 4 sds from them apart from one of them: the
    # independent encoder is not accused and not cleared (verify.verdict.CLEAR_MAX_ATYPICAL)
    suspects.append((references[-1], others, "inconclusive", references[:-1] + owners))

    keys = out / "keys"
    if not (keys / PRIVATE_NAME).exists():
        generate_keypair(keys, force=True)
    private_key = load_private_key(keys / PRIVATE_NAME)
    public_key = load_public_key(keys / PUBLIC_NAME)
    rows = []
    for suspect, made, expected, refs in suspects:
        name = Path(suspect).name
        say(f"verifying {name}")
        result = run_verify([victim], suspect=suspect, references=refs, settings=plan.challenge)
        report_dir = out / "reports" / name
        written = write_report(
            Evidence.from_result(result), report_dir, private_key=private_key, force=True
        )
        check = check_report(report_dir, public_key)
        rows.append(
            DemoRow(
                suspect=name,
                made=made,
                expected=expected,
                verdict=result.verdict,
                strongest=_strongest(result),
                report=str(report_dir),
                check="ok" if check.ok else check.problems[0],
                verify_seconds=round(result.seconds, 1),
                report_seconds=round(written.seconds, 1),
            )
        )
    timings["total"] = round(time.perf_counter() - start, 1)
    return DemoResult(out, rows, keys / PUBLIC_NAME, timings)
