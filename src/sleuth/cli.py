"""The ``sleuth`` command line: parse options, call the library, print results.

Results go to stdout, progress and logs to stderr. A user error (``SleuthError``) prints one line
and exits with code 2; nothing imports this module.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.errors import MarkupError, NotRenderableError
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from sleuth import __version__
from sleuth.errors import SleuthError
from sleuth.progress import (
    BenchEvent,
    CellDone,
    CellReused,
    CellsPlanned,
    CellStarted,
    EmbedStep,
    StageStep,
    TrainStep,
)

app = typer.Typer(
    name="sleuth",
    help="Forensics for stolen self-supervised encoders: watermark, steal, verify, report.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


# every character str.splitlines breaks at, written as its escape
_LINE_BREAKS = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})


def user_errors(fn: F) -> F:
    """Turn a ``SleuthError`` into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SleuthError as exc:  # one line, whatever a hostile file put in the message
            line = str(exc).translate(_LINE_BREAKS)
            err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        out.print(f"sleuth {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Forensics for stolen self-supervised encoders."""


DataOpt = Annotated[
    str,
    typer.Option(
        "--data",
        help="Dataset spec: demo | fmnist:DIR | mnist:DIR | cifar10:ROOT | cifar100:ROOT | "
        "svhn:ROOT | stl10:ROOT | folder:DIR[?size=N] | npz:FILE | h5:FILE; folder: and h5: "
        "data above 2 GiB decoded are read from the files by index, ?stream=1 forces that, "
        "?stream=0 forbids it.",
    ),
]


SignKeyOpt = Annotated[
    Path | None,
    typer.Option(
        help="Ed25519 private key (`sleuth keys init`) that signs the report; passphrase from $SLEUTH_KEY_PASSPHRASE or a prompt. Default: unsigned."
    ),
]
PdfOpt = Annotated[
    bool | None,
    typer.Option(
        "--pdf/--no-pdf",
        help="Print report.pdf with headless Chromium. Default: when Chromium is installed.",
    ),
]


class _Bars:
    """A rich Progress on stderr used as a context manager; subclasses add the bars."""

    bar: Progress

    def __enter__(self) -> Any:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)


class EmbedProgress(_Bars):
    """A rich progress bar over all training steps, on stderr."""

    def __init__(self, enabled: bool) -> None:
        self.bar = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            TextColumn("loss {task.fields[loss]:.3f}  wm-acc {task.fields[wm]:.2f}"),
            TextColumn("{task.fields[ips]:.0f} img/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=not enabled,
        )
        self.task: Any = None

    def __call__(self, ev: EmbedStep) -> None:
        fields = {
            "epoch": f"{ev.epoch}/{ev.epochs}",
            "loss": ev.loss,
            "wm": ev.wm_acc,
            "ips": ev.images_per_s,
        }
        if self.task is None:
            self.task = self.bar.add_task("embed", total=ev.total, **fields)
        self.bar.update(self.task, completed=ev.done, **fields)


def _arch_options(items: list[str]) -> dict[str, Any] | None:
    """KEY=VALUE pairs; values are read as JSON where they parse (numbers, lists, true/false)."""
    options: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key or not eq:
            raise SleuthError(f"bad --arch-option {item!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options or None


@app.command()
@user_errors
def embed(
    out_dir: Annotated[
        Path,
        typer.Option("--out", help="Output folder for encoder.pt, owner-key.pt, manifest.json."),
    ],
    data: DataOpt = "demo",
    preset: Annotated[
        str | None,
        typer.Option(
            help="Recipe to start from: demo (CPU, minutes) or paper (ResNet18, 200 epochs). Explicit options override it. Default: the demo recipe."
        ),
    ] = None,
    arch: Annotated[
        str | None,
        typer.Option(
            help="Architecture (see `sleuth archs`). Default: from the preset, smallresnet."
        ),
    ] = None,
    arch_option: Annotated[
        list[str] | None,
        typer.Option(
            "--arch-option",
            help="Architecture argument KEY=VALUE, repeatable, e.g. cifar_stem=false (resnets) "
            "or widths=[48,96,192] (smallresnet). Default: chosen from the input size.",
        ),
    ] = None,
    rep_dim: Annotated[
        int | None,
        typer.Option(help="Representation size. Default: the architecture's native width."),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Training epochs. Default: 30 (demo), 200 (paper).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Global batch size (split over DDP ranks). Default: 256.")
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            help="Adam learning rate, cosine-annealed to 0. Default: 1e-3 (demo), 3e-4 (paper)."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed for initialisation, split, data order and augmentations.")
    ] = 0,
    no_watermark: Annotated[
        bool,
        typer.Option(
            "--no-watermark",
            help="Train an independent reference encoder with the same recipe, without the watermark.",
        ),
    ] = False,
    temperature: Annotated[
        float | None,
        typer.Option(help="NT-Xent temperature of the contrastive loss. Default: 0.5."),
    ] = None,
    wm_weight: Annotated[
        float | None, typer.Option(help="Weight of the watermark loss. Default: 1.0.")
    ] = None,
    wm_intervals: Annotated[
        str | None,
        typer.Option(
            help="Private rotation intervals: random (six arcs of secret widths, at least 30° each, classes alternating, from a secret start, drawn for this owner and recorded in owner-key.pt only), random-half (the paper's two half-turns at a secret offset, drawn the same way), half ([0,180) vs [180,360), the paper's, the same for everyone), flip ([-60,60) vs [120,240)) or LO:HI,LO:HI in degrees, each optionally LO:HI=CLASS so that several arcs share a class (0, 1, ...). Default: random."
        ),
    ] = None,
    wm_fraction: Annotated[
        float | None,
        typer.Option(
            help="Watermark sub-batch as a fraction of the batch (the watermark's cost). Default: 0.125."
        ),
    ] = None,
    public_fraction: Annotated[
        float | None,
        typer.Option(
            help="Share of the data held out as the public part (not trained on). Default: 0.5."
        ),
    ] = None,
    device: Annotated[
        str, typer.Option(help="auto (CUDA when available), cpu, cuda or cuda:N.")
    ] = "auto",
    data_workers: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Processes per rank decoding streamed data (folder:/h5: above 2 GiB or with ?stream=1). Default: the cores left after one per rank, at most 4, and none with two cores or fewer per rank (a worker would take its core from torch's threads).",
        ),
    ] = None,
    download: Annotated[
        bool,
        typer.Option(
            "--download",
            help="Let torchvision download cifar10/cifar100/svhn/stl10 into ROOT if missing.",
        ),
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the checkpoint in --out (same options).")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite a non-empty --out folder.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON (no progress bar).")
    ] = False,
) -> None:
    """Train a SimCLR encoder with the rotation watermark (or, with --no-watermark, a reference)."""
    from sleuth.embed import from_preset, run_embed

    cfg = from_preset(
        preset,
        data=data,
        arch=arch,
        arch_kwargs=_arch_options(arch_option or []),
        rep_dim=rep_dim,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        watermark=not no_watermark,
        temperature=temperature,
        wm_weight=wm_weight,
        wm_intervals=wm_intervals,
        wm_fraction=wm_fraction,
        public_fraction=public_fraction,
    )
    with EmbedProgress(enabled=not (quiet or as_json)) as progress:
        result = run_embed(
            cfg,
            out_dir,
            force=force,
            resume=resume,
            device=device,
            download=download,
            progress=progress,
            workers=data_workers,
        )
    if result is None:  # a non-main DDP rank: rank 0 reports
        return
    summary = {
        "out": str(result.out_dir),
        "watermark_accuracy": result.metrics.get("watermark_accuracy"),
        "final_loss": result.metrics["final"]["loss"],
        "train_seconds": result.timings["train"],
        "train_images_per_s": result.metrics["train_images_per_s"],
        "resumed_from_epoch": result.resumed_from_epoch,
    }
    if as_json:
        out.print_json(json.dumps(summary))
        return
    _print_summary("sleuth embed", summary)


@app.command()
@user_errors
def references(
    victim: Annotated[
        Path, typer.Option("--victim", help="Victim folder whose owner key records the recipe.")
    ],
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out", help="Zoo folder: one folder per member and zoo.json (members are reused)."
        ),
    ],
    n: Annotated[
        int, typer.Option("--n", help="Unwatermarked encoders by the victim's recipe.")
    ] = 10,
    owners: Annotated[
        int,
        typer.Option(
            help="Also this many watermarked encoders (other owners, each with secret intervals of its own): rotation-aware models that were never the victim. The watermark tests count only against at least two of them (measured: against plain encoders alone, another owner's encoder was accused at 2,000 samples); three let each be judged against the other two."
        ),
    ] = 3,
    seed_start: Annotated[
        int, typer.Option(help="Seeds count up from here, skipping the victim's.")
    ] = 1000,
    epochs: Annotated[
        int | None, typer.Option(help="Override the recipe's epochs. Default: the victim's.")
    ] = None,
    trainer: Annotated[
        list[str] | None,
        typer.Option(
            "--trainer",
            help="Also encoders by another trainer, repeatable: lightly-simclr, lightly-byol, lightly-barlowtwins, lightly-moco (lightly: pip install 'sleuth[peers]') or supervised (labelled data); the recipe's architecture, data, epochs and optimiser. Default: none.",
        ),
    ] = None,
    per_trainer: Annotated[int, typer.Option(help="Encoders (seeds) per --trainer.")] = 2,
    device: Annotated[
        str, typer.Option(help="auto (CUDA when available), cpu, cuda or cuda:N.")
    ] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the members as JSON (no progress bar).")
    ] = False,
) -> None:
    """Build (or complete) a zoo of independent encoders to verify suspects against: `sleuth verify --reference ZOO` uses every member."""
    from sleuth.embed.references import build_zoo

    say = (lambda _msg: None) if (quiet or as_json) else (lambda msg: err.print(f"[dim]{msg}…[/]"))
    with EmbedProgress(enabled=not (quiet or as_json)) as progress:
        members = build_zoo(
            victim,
            out_dir,
            n=n,
            owners=owners,
            seed_start=seed_start,
            epochs=epochs,
            device=device,
            say=say,
            progress=progress,
            trainers=trainer or [],
            per_trainer=per_trainer,
        )
    rows = [m.to_dict() for m in members]
    if as_json:
        out.print_json(json.dumps({"zoo": str(out_dir), "members": rows}))
        return
    table = Table("member", "trainer", "seed", "watermarked", "reused", title=f"zoo {out_dir}")
    for r in rows:
        table.add_row(
            r["name"],
            r["trainer"],
            str(r["seed"]),
            "yes" if r["watermarked"] else "no",
            "yes" if r["reused"] else "no",
        )
    out.print(table)


class StageProgress(_Bars):
    """One rich progress bar per stage (query, head, train) of an attack, on stderr."""

    def __init__(self, enabled: bool) -> None:
        self.bar = Progress(
            TextColumn("{task.description:>6}"),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=not enabled,
        )
        self.tasks: dict[str, Any] = {}

    def __call__(self, ev: TrainStep | StageStep) -> None:
        if isinstance(ev, TrainStep):
            info = f"epoch {ev.epoch}/{ev.epochs} loss {ev.loss:.4f}"
        else:
            info = f"{ev.done} queries"
        if ev.stage not in self.tasks:
            self.tasks[ev.stage] = self.bar.add_task(ev.stage, total=ev.total, info=info)
        self.bar.update(self.tasks[ev.stage], completed=ev.done, info=info)


@app.command()
@user_errors
def steal(
    victim: Annotated[
        str,
        typer.Option(
            help="The victim: an encoder file, an artifact folder (encoder.pt, owner-key.pt), an http(s):// API, or precomputed answers (.h5)."
        ),
    ],
    out_dir: Annotated[
        Path,
        typer.Option("--out", help="Output folder for the stolen encoder.pt and manifest.json."),
    ],
    queries: Annotated[
        int,
        typer.Option(
            help="Query budget: every image sent to the victim counts, augmented views included."
        ),
    ] = 2000,
    loss: Annotated[
        str,
        typer.Option(
            help="Loss: mse, l1, cosine, infonce, softnn, wasserstein, barlow, supcon (needs labels), symmetrized."
        ),
    ] = "mse",
    method: Annotated[
        str,
        typer.Option(
            help="direct (Dziedzic et al., ICML 2022, Alg. 1), stolenencoder (Liu et al., CCS 2022, Eq. 7), recreate-head (Dziedzic et al., Alg. 2) or access-head (the victim returns projections)."
        ),
    ] = "direct",
    data: DataOpt = "demo",
    part: Annotated[
        str,
        typer.Option(
            help="Which part of --data to query with: train, test (or unlabeled for stl10)."
        ),
    ] = "train",
    public_split: Annotated[
        bool,
        typer.Option(
            "--public-split",
            help="Query only with the victim owner's public (held-out) part of --data; needs owner-key.pt beside the victim.",
        ),
    ] = False,
    arch: Annotated[
        str | None,
        typer.Option(
            help="Attacker's architecture. Default: the victim's when it is a local file, else smallresnet."
        ),
    ] = None,
    rep_dim: Annotated[
        int | None,
        typer.Option(
            help="Representation size for access-head against a remote victim. Default: the victim's."
        ),
    ] = None,
    epochs: Annotated[
        int,
        typer.Option(help="Training epochs over the stored answers (training costs no queries)."),
    ] = 60,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 64,
    lr: Annotated[float, typer.Option(help="Adam learning rate, cosine-annealed to 0.")] = 1e-3,
    temperature: Annotated[
        float | None,
        typer.Option(
            help="Temperature of the contrastive losses (infonce, softnn, supcon). Default: each loss's own (0.5, 100, 0.07)."
        ),
    ] = None,
    lam: Annotated[
        float, typer.Option("--lambda", help="StolenEncoder's λ, the weight of the augmented term.")
    ] = 20.0,
    distance: Annotated[str, typer.Option(help="StolenEncoder's distance d: l2 or cosine.")] = "l2",
    head_epochs: Annotated[
        int, typer.Option(help="recreate-head: epochs to recreate the victim's projection head.")
    ] = 30,
    seed: Annotated[
        int,
        typer.Option(
            help="Seed for the choice of queries, augmentations, initialisation and defences "
            "(the copy's initial weights come from a stream of their own: never the victim's, "
            "even when sleuth embed used the same seed)."
        ),
    ] = 0,
    rotation_invariant: Annotated[
        bool,
        typer.Option(
            "--rotation-invariant",
            help="Adaptive thief: rotate the attacker-side augmented views at random, to train "
            "the copy to be invariant to a suspected rotation watermark (stolenencoder and "
            "two-view losses).",
        ),
    ] = False,
    augment_queries: Annotated[
        bool,
        typer.Option(
            "--augment-queries",
            help="direct with a one-view loss: send one SimCLR-augmented view of each image instead of the image itself (Dziedzic et al., ICML 2022, Table 17's Standard; with --rotation-invariant, +Rotation).",
        ),
    ] = False,
    query_aug: Annotated[
        bool,
        typer.Option(
            "--query-aug",
            help="stolenencoder: also send every augmented view to the victim, 1 + epochs queries per image (Liu et al., CCS 2022, Table X's StolenEncoder-query-aug).",
        ),
    ] = False,
    defence: Annotated[
        list[str] | None,
        typer.Option(
            "--defence",
            help="Victim-side output defence, repeatable, applied in order: noise:sigma=S[,mean=M], topk:k=K, round:decimals=M, poison:eps=E,norm=l2|linf,surrogate=PATH[,lam=L,steps=N], similar:metric=cosine|l2,threshold=T[,sigma=S,mean=M,history=H,mode=replace|add], and per account b4b[:buckets=4096,lam=1e-6,alpha=1,beta=0.8], transform[:kinds=affine+pad+shuffle,pad=16,binary=1024], pow[:base=8,top=20,beta=0.8] (Dubiński et al., NeurIPS 2023). Local victims only (an API applies its own: sleuth serve --defence).",
        ),
    ] = None,
    defence_data: Annotated[
        str | None,
        typer.Option(
            help="The victim owner's data (a dataset spec): per-account defences centre their coverage hashing on the victim's mean representation of it, as sleuth serve --lsh-data does. Default: hyperplanes through the origin."
        ),
    ] = None,
    api_key: Annotated[
        list[str] | None,
        typer.Option(
            "--api-key",
            envvar="SLEUTH_API_KEY",
            help="API key of an account at an http(s):// victim, sent as a bearer token; repeat once per account with --sybils. Default: $SLEUTH_API_KEY.",
        ),
    ] = None,
    sybils: Annotated[
        int,
        typer.Option(
            help="Split the budget over this many accounts and remap their answers onto the first's (the sybil attack on per-account defences, Dubiński et al., NeurIPS 2023, §4.3). 1: one account."
        ),
    ] = 1,
    sybil_overlap: Annotated[
        int | None,
        typer.Option(
            help="Images sent through every account to learn the remapping (they count against --queries). Default: --queries / (5 × --sybils)."
        ),
    ] = None,
    sybil_mapper: Annotated[
        str,
        typer.Option(help="Remapping between accounts: linear (least squares) or mlp."),
    ] = "linear",
    cache: Annotated[
        Path | None,
        typer.Option(
            help="HDF5 file caching the victim's answers: a re-run reads it instead of querying again."
        ),
    ] = None,
    eval_task: Annotated[
        str | None,
        typer.Option(
            "--task",
            "--eval",
            help="Labelled dataset spec (the name --task as in evaluate and bench; --eval is its old name): print TA (victim), SA (stolen) and SA/TA with the linear probe of `sleuth evaluate`.",
        ),
    ] = None,
    device: Annotated[
        str, typer.Option(help="auto (CUDA when available), cpu, cuda or cuda:N.")
    ] = "auto",
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite a non-empty --out folder.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON (no progress bar).")
    ] = False,
) -> None:
    """Steal a victim encoder within a strict query budget (the attacks of Dziedzic et al., ICML 2022, and Liu et al., CCS 2022)."""
    from sleuth.steal import StealConfig, run_steal

    cfg = StealConfig(
        method=method,
        loss=loss,
        queries=queries,
        data=data,
        part=part,
        public_split=public_split,
        arch=arch,
        rep_dim=rep_dim,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        lam=lam,
        distance=distance,
        head_epochs=head_epochs,
        seed=seed,
        rotate=rotation_invariant,
        augment_queries=augment_queries,
        query_aug=query_aug,
        temperature=temperature,
        sybils=sybils,
        sybil_overlap=sybil_overlap,
        sybil_mapper=sybil_mapper,
    )
    with StageProgress(enabled=not (quiet or as_json)) as progress:
        result = run_steal(
            cfg,
            victim,
            out_dir,
            api_keys=api_key or [],
            defence_data=defence_data,
            defences=defence or [],
            cache=cache,
            eval_task=eval_task,
            force=force,
            device=device,
            progress=progress,
        )
    summary = {
        "out": str(result.out_dir),
        "queries_used": result.queries_used,
        "queries_sent": result.queries_sent,
        "cache_hits": result.cache_hits,
        "seconds": result.timings["total"],
        **{
            k: result.metrics[k]
            for k in ("TA", "SA", "SA/TA", "remap_error", "pow_work_s")
            if k in result.metrics
        },
    }
    for note in result.notes:  # never silent, even with --json (stdout holds the JSON alone)
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    if as_json:
        out.print_json(json.dumps({**summary, "notes": list(result.notes)}))
        return
    _print_summary("sleuth steal", summary)


def _print_summary(title: str, summary: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False)
    for k, v in summary.items():
        table.add_row(k, "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v))
    out.print(table)


def _print_verification(result: dict[str, Any]) -> None:
    """The test table and verdict of each victim, from a result's (or a report's) dict form."""
    from sleuth.verify.result import format_p

    colour = {"stolen": "bold red", "not_stolen": "bold green", "inconclusive": "bold yellow"}
    num = lambda x: "-" if x is None else f"{x:.4g}"  # noqa: E731
    for report in result["victims"]:  # names are escaped: a report's strings are not markup
        table = Table(title=escape(f"{result['suspect']} vs {report['victim']}"))
        for col in (
            "test",
            "score",
            "statistic",
            "p",
            "p vs refs",
            "adjusted p",
            "effect",
            "power (n for 0.8)",
            "decision",
        ):
            table.add_column(col)
        for t in report["tests"]:
            decision = (
                "reject H0" if t["rejected"] else "keep H0" if t["counted"] else "not counted"
            )
            table.add_row(
                escape(t["name"]),
                num(t["score"]),
                num(t["statistic"]),
                format_p(t["p_value"]) if t["valid"] else "-",
                format_p(t["p_reference"]),
                format_p(t["p_adjusted"]) if t["counted"] else "-",
                num(t["effect"]) if t["valid"] else escape(t["note"]),
                "-" if t["power"] is None else f"{t['power']:.2f} ({t['n_for_power_0.8'] or '-'})",
                decision,
            )
        out.print(table)
        uncounted: dict[str, list[str]] = {}  # why -> tests; duplicates and guards say nothing
        for t in report["tests"]:
            if (
                not t["counted"]
                and not t["guards"]
                and t["why"]
                and "same evidence" not in t["why"]
            ):
                uncounted.setdefault(t["why"], []).append(t["name"])
        for why, names in uncounted.items():
            out.print(f"{', '.join(names)}: {escape(why)}", highlight=False)
        for look in report.get("looks", []):
            out.print(
                f"{'lean ' if look['lean'] else 'full '}round of {look['samples']} samples "
                f"({look['queries']} queries so far) at alpha "
                f"{look['alpha']:.2g}: {escape(look['verdict'])}",
                highlight=False,
            )
        style = colour[report["verdict"]]
        out.print(f"verdict: [{style}]{report['verdict']}[/] ({escape(report['reason'])})")
        if report.get("p_verdict") is not None:
            out.print(
                f"margin: two families reject at any alpha >= {format_p(report['p_verdict'])}",
                highlight=False,
            )
        out.print(f"queries to the suspect: {report['queries']:,}", highlight=False)


class _SuspectAPI:
    """A suspect behind the HTTP protocol of ``sleuth serve``, as verification asks it."""

    def __init__(self, url: str, api_key: str | None) -> None:
        from sleuth.steal.oracle import HTTPOracle

        self._oracle = HTTPOracle(url, api_key=api_key, role="suspect")
        self.name = self._oracle.url

    def answer(self, images):
        return self._oracle.answer(images).numpy()


@app.command()
@user_errors
def verify(
    suspect: Annotated[
        str | None,
        typer.Argument(
            help="Suspect encoder file or folder (a black-box suspect: --suspect-reps with --challenge)."
        ),
    ] = None,
    victim: Annotated[
        list[str] | None,
        typer.Option(
            "--victim",
            help="Victim folder (encoder.pt, owner-key.pt); repeatable: the correction spans all victims.",
        ),
    ] = None,
    reference: Annotated[
        list[str] | None,
        typer.Option(
            "--reference",
            help="Independently trained encoder (file or folder), or a zoo folder from `sleuth references` (all its members), to calibrate against; repeatable; at least 3 for any test to count, 11 or more to clear a suspect (enough to see one 4 reference sds away as atypical).",
        ),
    ] = None,
    suspect_reps: Annotated[
        Path | None,
        typer.Option(
            help="Black-box: HDF5 with the suspect's `answers` to the challenge exported for this victim (same --samples and --seed)."
        ),
    ] = None,
    challenge: Annotated[
        Path | None,
        typer.Option(
            help="Black-box: the challenge key written by `sleuth challenge` (FILE.key.json); "
            "its settings replace --samples and --seed."
        ),
    ] = None,
    suspect_url: Annotated[
        str | None,
        typer.Option(
            help="A suspect that is only an API (http(s)://, the protocol `sleuth serve` speaks): it is asked the challenge itself, round by round with --budget, so a verification that ends early sends no more; needs --answers-out."
        ),
    ] = None,
    answers_out: Annotated[
        Path | None,
        typer.Option(
            help="With --suspect-url: where the answers the API gave are kept (HDF5, images never asked as NaN rows; the challenge key beside it as FILE.key.json), the evidence `sleuth report rerun` replays."
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="SLEUTH_API_KEY",
            help="With --suspect-url: the API key sent as a bearer token. Default: $SLEUTH_API_KEY.",
            show_default=False,
        ),
    ] = None,
    arch: Annotated[
        str | None, typer.Option(help="Architecture of a suspect given as a bare state dict.")
    ] = None,
    tests: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated tests: watermark, di-head, di-gmm, distance, similarity, noise, shift (guards a clearance), basis (guards a clearance). Default: all."
        ),
    ] = None,
    alpha: Annotated[
        float, typer.Option(help="Family-wise error rate over all tests and victims (Holm).")
    ] = 0.01,
    samples: Annotated[
        int,
        typer.Option(
            help="Private and public images each in the challenge (the verification queries scale with it)."
        ),
    ] = 1000,
    shift_samples: Annotated[
        int | None,
        typer.Option(
            help="Private images per shift (inverted, contrast, blur, noise) in the challenge; these only guard a clearance (a copy made from unlike queries looks independent on the victim's own images). Default: a fifth of --samples, at least 10; 0: none, and nothing is cleared.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the challenge (which images, rotations, views and noise).")
    ] = 0,
    budget: Annotated[
        int | None,
        typer.Option(
            help="Sequential mode: ask the suspect in rounds (10, 20, 40, ... samples, nested) within this many queries, and stop at the first round that finds it stolen; alpha is spent over the rounds in proportion to their samples, so the false-accusation rate holds whenever it stops. Default: one round of --samples."
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the machine-readable result (verdict in stolen, not_stolen, inconclusive) as JSON on stdout instead of the summary; redirect it to keep it in a file.",
        ),
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "--report",
            help="Write a report folder: verdict.json (in-toto statement in a DSSE envelope), evidence.h5, report.html, report.pdf (with Chromium); `--out` as in `report make` and every command that writes a folder (--report is its old name, kept for this release).",
        ),
    ] = None,
    sign_key: SignKeyOpt = None,
    pdf: PdfOpt = None,
    save: Annotated[
        Path | None,
        typer.Option(
            help="Save the full result with every per-sample array (HDF5) for `sleuth report make`."
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Overwrite an existing --save file or a non-empty --out folder."
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress messages.")] = False,
    cache: Annotated[
        Path | None,
        typer.Option(
            envvar="SLEUTH_CACHE",
            help="Folder keeping the references' and the victim's answers to each challenge (by the encoder file's and the challenge's SHA-256), so that verifying many suspects against the same references and victim asks them once; results are identical. Default: $SLEUTH_CACHE, else none.",
        ),
    ] = None,
    device: Annotated[
        str,
        typer.Option(
            help="Where the models' forward passes run: auto (CUDA when available), cpu, cuda or cuda:N; the statistics run on the CPU."
        ),
    ] = "auto",
) -> None:
    """Was SUSPECT stolen from the victim(s)? Hypothesis tests, calibrated, combined into a verdict.

    Exit code 0 whenever it ran, whatever the verdict; 2 on bad input.
    """
    from sleuth.fileio import check_out_dir, check_out_file
    from sleuth.verify import ChallengeSettings, run_verify

    settings = ChallengeSettings(samples=samples, seed=seed, shift_samples=shift_samples)
    if suspect == "challenge":
        raise SleuthError(
            "the black-box challenge is its own command: sleuth challenge --victim DIR --out FILE.h5"
        )
    if report is not None:  # refuse a bad folder, file or key before minutes of verification
        check_out_dir(report, force=force)
    if save is not None:
        check_out_file(save, force=force, option="--save")
    api = None
    if suspect_url is not None:
        if answers_out is None:
            raise SleuthError("--suspect-url needs --answers-out FILE.h5: its answers are evidence")
        from sleuth.verify.challenge import key_path

        for path in (answers_out, key_path(answers_out)):
            check_out_file(path, force=force, option="--answers-out")
        api = _SuspectAPI(suspect_url, api_key)
    elif answers_out is not None:
        raise SleuthError("--answers-out keeps a suspect API's answers: it needs --suspect-url")
    private_key = _signing_key(sign_key) if sign_key is not None else None
    progress = None if quiet else (lambda msg: err.print(f"[dim]{msg}…[/]"))
    result = run_verify(
        victim or [],
        suspect=suspect,
        suspect_reps=str(suspect_reps) if suspect_reps else None,
        challenge_key=str(challenge) if challenge else None,
        arch=arch,
        references=reference or [],
        tests=tests.split(",") if tests else None,
        alpha=alpha,
        settings=settings,
        progress=progress,
        budget=budget,
        cache=cache,
        device=device,
        suspect_api=api,
        answers_out=answers_out,
    )
    if as_json:
        typer.echo(result.to_json())
    else:
        _print_verification(result.to_dict())
    if save is not None or report is not None:
        from sleuth.reports import Evidence, write_evidence

        evidence = Evidence.from_result(result)
        if save is not None:
            write_evidence(evidence, save)
            err.print(f"saved the result to {save}")
        if report is not None:
            _write_report(
                evidence, report, private_key, pdf, force, console=err if as_json else out
            )


@app.command()
@user_errors
def challenge(
    victim: Annotated[Path, typer.Option("--victim", help="Victim folder (with owner-key.pt).")],
    out_file: Annotated[
        Path,
        typer.Option(
            "--out",
            help="The images to send to a black-box suspect (FILE.h5); the investigator's key goes beside it as FILE.key.json.",
        ),
    ],
    samples: Annotated[
        int, typer.Option(help="Private and public images each in the challenge.")
    ] = 1000,
    shift_samples: Annotated[
        int | None,
        typer.Option(
            help="Private images per shift (inverted, contrast, blur, noise) in the challenge; these only guard a clearance (a copy made from unlike queries looks independent on the victim's own images). Default: a fifth of --samples, at least 10; 0: none, and nothing is cleared.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the challenge (which images, rotations, views and noise).")
    ] = 0,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing FILE.h5 or FILE.key.json.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Export a black-box challenge: images to send to a suspect API, and the key to keep; the
    answers come back to `sleuth verify --suspect-reps ANSWERS.h5 --challenge FILE.key.json`."""
    from sleuth.fileio import check_out_file
    from sleuth.models import load_owner_key
    from sleuth.verify import ChallengeSettings, build_challenge, export_challenge
    from sleuth.verify.challenge import key_path

    key_file = key_path(out_file)
    for path in (out_file, key_file):
        check_out_file(path, force=force)
    key = load_owner_key(victim / "owner-key.pt")
    settings = ChallengeSettings(samples=samples, seed=seed, shift_samples=shift_samples)
    built = build_challenge(key, settings)
    path, key_path = export_challenge(built, out_file)
    if as_json:
        typer.echo(
            json.dumps({"challenge": str(path), "key": str(key_path), "images": len(built.images)})
        )
    else:
        out.print(f"wrote {path} (send it) and {key_path} (keep it)")


@app.command()
@user_errors
def evaluate(
    encoder: Annotated[Path, typer.Argument(help="Encoder file (.pt or .safetensors).")],
    task: Annotated[
        str,
        typer.Option(
            help="Labelled dataset spec whose train part fits the probe and test part scores it."
        ),
    ] = "demo",
    arch: Annotated[
        str | None,
        typer.Option(help="Architecture of a bare state dict (ignored for sleuth files)."),
    ] = None,
    download: Annotated[
        bool,
        typer.Option("--download", help="Let torchvision download the task's dataset if missing."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    device: Annotated[
        str,
        typer.Option(
            help="Where the encoder's forward passes run: auto (CUDA when available), cpu, cuda or cuda:N; the probe is fitted on the CPU."
        ),
    ] = "auto",
) -> None:
    """Linear-probe accuracy of a frozen encoder (how TA and SA are measured)."""
    from sleuth.device import resolve_device
    from sleuth.models import load_encoder
    from sleuth.probe import linear_probe

    model = load_encoder(encoder, arch=arch).to(resolve_device(device))
    with err.status(f"linear probe on {task}") if not as_json else nullcontext():
        result = linear_probe(model, task, download=download)
    if as_json:
        out.print_json(json.dumps(result.to_dict()))
        return
    out.print(
        f"linear-probe accuracy on {result.task}: [bold]{result.accuracy:.4f}[/] "
        f"(train {result.train_accuracy:.4f}; {result.n_train} train / {result.n_test} test images, "
        f"{result.rep_dim}-d representations)"
    )


@app.command()
@user_errors
def convert(
    source: Annotated[
        Path, typer.Argument(help="Encoder file to read (.pt, .safetensors or a bare state dict).")
    ],
    target: Annotated[
        Path, typer.Argument(help="File to write; .safetensors or .pt by its suffix.")
    ],
    arch: Annotated[str | None, typer.Option(help="Architecture of a bare state dict.")] = None,
    input_size: Annotated[
        int, typer.Option(help="Input side in pixels for a bare state dict.")
    ] = 32,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing target.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Convert an encoder between .pt and .safetensors (metadata kept), or wrap a bare state dict."""
    from sleuth.fileio import check_out_file
    from sleuth.models import load_encoder, save_encoder

    if target.suffix not in (".pt", ".safetensors"):
        raise SleuthError(f"target must end in .pt or .safetensors: {target}")
    check_out_file(target, force=force)
    encoder = load_encoder(source, arch=arch, input_size=input_size)
    save_encoder(encoder, target)
    if as_json:
        typer.echo(
            json.dumps({"source": str(source), "target": str(target), **encoder.config.to_dict()})
        )
    else:
        out.print(f"wrote {target}")


@app.command()
@user_errors
def archs(
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """List the registered architectures."""
    from sleuth.models import ARCHITECTURES, DEFAULT_ARCH

    if as_json:
        rows = [
            {"name": name, "description": a.description, "default": name == DEFAULT_ARCH}
            for name, a in ARCHITECTURES.items()
        ]
        typer.echo(json.dumps(rows))
        return
    table = Table("name", "description")
    for name, a in ARCHITECTURES.items():
        table.add_row(name + (" (default)" if name == DEFAULT_ARCH else ""), a.description)
    out.print(table)


@app.command()
@user_errors
def demo(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for every model, key and report of the demo.")
    ] = Path("runs/demo"),
    resume: Annotated[
        bool, typer.Option("--resume", help="Reuse the models an earlier demo left in --out.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite a non-empty --out folder.")
    ] = False,
    device: Annotated[
        str, typer.Option(help="auto (CUDA when available), cpu, cuda or cuda:N.")
    ] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON (no progress bars).")
    ] = False,
) -> None:
    """The whole story on the embedded data in under 10 minutes on 2 cores: watermark a victim,
    train independent encoders, steal two copies, verify them and an independent one, sign and
    check the reports.

    Exit 0 when every verdict is the expected one and every report checks, else 1.
    """
    from dataclasses import asdict

    from sleuth.demo import run_demo

    show = not (quiet or as_json)

    def progress(kind: str) -> Any:
        bar = EmbedProgress if kind == "embed" else StageProgress
        return bar(enabled=show)

    result = run_demo(
        out_dir,
        force=force,
        resume=resume,
        device=device,
        say=(lambda msg: err.print(f"[bold]{msg}[/]")) if show else (lambda _msg: None),
        progress=progress,
    )
    if as_json:
        summary = {
            "ok": result.ok,
            "rows": [asdict(r) for r in result.rows],
            "public_key": str(result.public_key),
            "timings_s": result.timings,
        }
        out.print_json(json.dumps(summary))
    else:
        table = Table(title=f"sleuth demo ({result.timings['total']:.0f} s)")
        for col in ("suspect", "how it was made", "verdict", "strongest test", "report", "check"):
            table.add_column(col)
        for r in result.rows:
            style = "green" if r.as_expected else "bold red"
            table.add_row(
                r.suspect, r.made, f"[{style}]{r.verdict}[/]", r.strongest, r.report, r.check
            )
        out.print(table)
        out.print(
            f"check a report yourself: sleuth report check {result.rows[0].report} "
            f"--pub {result.public_key}",
            highlight=False,
        )
    if not result.ok:
        raise typer.Exit(1)


class BenchProgress(_Bars):
    """Two bars on stderr: the suite's cells, and the steps of the cell being run."""

    def __init__(self, enabled: bool) -> None:
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err,
            disable=not enabled,
        )
        self.cells: Any = None
        self.step: Any = None

    def __call__(self, ev: BenchEvent) -> None:
        match ev:
            case CellsPlanned(total=total):
                self.cells = self.bar.add_task("cells", total=total)
            case CellReused(index=index):
                self.bar.update(self.cells, completed=index)
            case CellStarted(key=key, index=index):
                self.bar.update(self.cells, completed=index - 1, description=key)
                if self.step is None:
                    self.step = self.bar.add_task("", total=None)
                self.bar.reset(self.step, description="  starting", total=None)
            case StageStep(stage=stage, done=done, total=total):
                self.bar.update(self.step, description=f"  {stage}", total=total, completed=done)
            case CellDone(key=key, index=index, seconds=seconds):
                self.bar.update(self.cells, completed=index)
                self.bar.console.print(f"{key}: {seconds:.0f} s", highlight=False)


@app.command()
@user_errors
def bench(
    suite: Annotated[
        str,
        typer.Option(
            help="quick (every table at toy scale, minutes) or full (the papers' tables at CPU scale on Fashion-MNIST, hours); peers, peers-quick or peers-seeds (peers under five seeds): sleuth's trainer beside lightly's (needs the extra: pip install -e '.[peers]'); foundation: the demo preset's cost, watermark strength and utility (two victims, the recipe unwatermarked, three references)."
        ),
    ] = "quick",
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Dataset the victim is trained on and the thief queries (any --data spec). Default: the suite's (quick: demo; full: fmnist:../shared/data/fashion-mnist).",
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(help="Labelled dataset spec for the linear probes (TA, SA). Default: --data."),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder of the bench: cells, models, results.json, tables.md, scaling.png. Re-running resumes it. Default: runs/bench-SUITE.",
        ),
    ] = None,
    only: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated groups to run (with what they build on): embed, steal, defences, verify, scaling. Default: all."
        ),
    ] = None,
    list_cells: Annotated[
        bool,
        typer.Option("--list", help="Print every cell and whether it is done; run nothing."),
    ] = False,
    device: Annotated[
        str, typer.Option(help="auto (CUDA when available), cpu, cuda or cuda:N.")
    ] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON (no progress bars).")
    ] = False,
) -> None:
    """Reproduce the papers' tables: train, steal, defend, verify and time a suite's matrix,
    then write results.json and Markdown tables with the papers' figures beside ours.

    Finished cells are reused: an interrupted bench resumes where it stopped.
    """
    from sleuth.bench import open_bench, run_bench
    from sleuth.bench.foundation import FOUNDATION_SUITES
    from sleuth.bench.peers import PEER_SUITES

    folder = out_dir or Path(f"runs/bench-{suite}")
    if not list_cells:  # under a file or in /proc: refused before anything runs
        from sleuth.fileio import check_writable

        check_writable(folder)
    if suite in PEER_SUITES or suite in FOUNDATION_SUITES:
        if only is not None or list_cells:
            raise SleuthError(
                f"--only and --list are options of the papers' suites, not of {suite}"
            )
        _bench_beside(suite, folder, data, task, device, quiet or as_json, as_json)
        return
    groups = None if only is None else {g.strip() for g in only.split(",") if g.strip()}
    planned = open_bench(suite, folder, data=data, task=task)
    if list_cells:
        statuses = planned.statuses(groups)
        if as_json:
            rows = [
                {"key": c.key, "group": c.group, "label": c.label, "status": s} for c, s in statuses
            ]
            out.print_json(json.dumps(rows))
            return
        table = Table("cell", "group", "what", "status", title=f"suite {suite} on {planned.data}")
        for c, state in statuses:
            table.add_row(c.key, c.group, c.label, state)
        out.print(table)
        return
    with BenchProgress(enabled=not (quiet or as_json)) as progress:
        result = run_bench(planned, only=groups, device=device, progress=progress)
    summary = {
        "suite": result.suite,
        "data": result.data,
        "task": result.task,
        "ran": len(result.ran),
        "reused": len(result.reused),
        "seconds": round(result.seconds, 1),
        "cells_by_group": result.counts,
        "results": str(result.results),
        "tables": str(result.tables),
        "plot": None if result.plot is None else str(result.plot),
        "left_out": result.notes,
    }
    if as_json:
        out.print_json(json.dumps(summary))
        return
    by_group = ", ".join(f"{g} {n}" for g, n in result.counts.items())
    shown = {**summary, "seconds": f"{result.seconds / 60:.1f} min", "cells_by_group": by_group}
    _print_summary("sleuth bench", {**shown, "left_out": "; ".join(result.notes) or None})


def _bench_beside(
    suite: str,
    folder: Path,
    data: str | None,
    task: str | None,
    device: str,
    quiet: bool,
    as_json: bool,
) -> None:
    """The suites beside the papers': peers* (sleuth's trainer beside lightly's,
    sleuth.bench.peers) and foundation (the watermark's cost and strength)."""
    from sleuth.bench.foundation import FOUNDATION_SUITES, run_foundation
    from sleuth.bench.peers import run_peers

    run, table = (
        (run_foundation, _foundation_table)
        if suite in FOUNDATION_SUITES
        else (run_peers, _peers_table)
    )
    with BenchProgress(enabled=not quiet) as progress:
        result = run(suite, folder, data=data, task=task, device=device, progress=progress)
    if as_json:
        out.print_json(json.dumps(result.results))
        return
    out.print(table(result.results))
    out.print(f"results: {result.path}", highlight=False)


def _peers_table(results: dict[str, Any]) -> Table:
    table = Table("network", "seed", "trainer", "images/s", "ratio", "peak RSS MB", "probe acc.")
    for t in results["trainers"]:
        probe = "-" if t["probe_acc"] is None else f"{t['probe_acc']:.4f}"
        table.add_row(
            t["arch"],
            str(t["seed"]),
            t["name"],
            f"{t['images_per_s']:.0f}",
            f"{t['ratio']:.2f}×",
            f"{t['peak_rss_mb']:.0f}",
            probe,
        )
    return table


def _foundation_table(results: dict[str, Any]) -> Table:
    runs = results["runs"]
    victims = [name for name, r in runs.items() if "scored_on_predictor" in r]
    head = ("encoder", "train s", "images/s", "own watermark", "probe acc.")
    table = Table(*head, *(f"on {v}" for v in victims))
    for name, r in runs.items():
        own = r["own_watermark_accuracy"]
        table.add_row(
            name,
            f"{r['train_s']:.1f}",
            f"{r['images_per_s']:.0f}",
            "-" if own is None else f"{own:.3f}",
            f"{r['probe_accuracy']:.4f}",
            *(f"{runs[v]['scored_on_predictor'][name]:.3f}" for v in victims),
        )
    return table


PASSPHRASE_ENV = "SLEUTH_KEY_PASSPHRASE"


def _passphrase(confirm: bool) -> bytes:
    """From $SLEUTH_KEY_PASSPHRASE, else asked on the terminal (never echoed, never logged)."""
    import os
    import sys

    value = os.environ.get(PASSPHRASE_ENV)
    if value is None:
        if not sys.stdin.isatty():
            raise SleuthError(f"no passphrase: set ${PASSPHRASE_ENV} (no terminal to ask on)")
        value = typer.prompt("passphrase", hide_input=True, confirmation_prompt=confirm, err=True)
    return value.encode("utf-8")


def _signing_key(path: Path) -> Any:
    from sleuth.reports import load_private_key, private_key_is_encrypted

    return load_private_key(path, _passphrase(False) if private_key_is_encrypted(path) else None)


def _write_report(
    evidence: Any,
    out_dir: Path,
    key: Any,
    pdf: bool | None,
    force: bool,
    as_json: bool = False,
    console: Console = out,
) -> None:
    """Write the report; say so on ``console`` (stderr when stdout holds another JSON)."""
    from sleuth.reports import write_report

    with err.status("writing the report"):
        written = write_report(evidence, out_dir, private_key=key, pdf=pdf, force=force)
    if as_json:
        done = {"out": str(written.out_dir), "files": list(written.files), "signer": written.signer}
        typer.echo(json.dumps({**done, "pdf": bool(written.pdf), "seconds": written.seconds}))
        return
    signed = f"signed by {written.signer}" if written.signer else "[bold]unsigned[/]"
    pdf_note = "" if written.pdf or pdf is False else " (no PDF: Chromium not found)"
    console.print(
        f"report: {written.out_dir} ({', '.join(written.files)}; {signed}; "
        f"{written.seconds:.1f} s){pdf_note}"
    )


keys_app = typer.Typer(help="Signing keys for evidence reports.", no_args_is_help=True)
report_app = typer.Typer(
    help="Signed evidence reports: make, check, show, rerun.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
app.add_typer(report_app, name="report")


@keys_app.command("init")
@user_errors
def keys_init(
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out", help="Folder for sleuth-signing.key (mode 0600) and sleuth-signing.pub."
        ),
    ],
    encrypt: Annotated[
        bool,
        typer.Option(
            "--encrypt",
            help=f"Protect the private key with a passphrase (from ${PASSPHRASE_ENV}, else asked twice).",
        ),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key pair.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Create an Ed25519 key pair (PEM) for signing reports; prints the public key's fingerprint."""
    from sleuth.reports import generate_keypair

    private, public, fp = generate_keypair(
        out_dir, _passphrase(True) if encrypt else None, force=force
    )
    err.print(f"private key: {private} (keep it; mode 0600)\npublic key:  {public} (share it)")
    if as_json:
        typer.echo(json.dumps({"private": str(private), "public": str(public), "fingerprint": fp}))
    else:
        out.print(f"fingerprint: {fp}")


@report_app.command("make")
@user_errors
def report_make(
    saved: Annotated[
        Path,
        typer.Argument(
            help="A saved verification (`sleuth verify --save FILE.h5`, or a report's evidence.h5)."
        ),
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Report folder to write.")],
    sign_key: SignKeyOpt = None,
    pdf: PdfOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite a non-empty --out folder.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Write a signed report from a saved verification result."""
    from sleuth.fileio import check_out_dir
    from sleuth.reports import read_evidence

    check_out_dir(out_dir, force=force)
    evidence = read_evidence(saved)
    key = _signing_key(sign_key) if sign_key is not None else None
    with _malformed(saved, "saved verification"):  # a report writes into a temporary folder
        _write_report(evidence, out_dir, key, pdf, force, as_json)


@report_app.command("check")
@user_errors
def report_check(
    report_dir: Annotated[Path, typer.Argument(help="Report folder (with verdict.json).")],
    pub: Annotated[Path, typer.Option("--pub", help="The signer's Ed25519 public key (PEM).")],
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Fail when an input file (victim, suspect, reference) is not at its recorded path.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Verify the report's signature and re-hash every file it names. Exit 1 if anything fails."""
    from sleuth.reports import check_report, load_public_key

    check = check_report(report_dir, load_public_key(pub), strict=strict)
    if as_json:
        out.print_json(json.dumps(check.to_dict()))
    else:
        for problem in check.problems:
            out.print(f"[bold red]FAIL[/] {problem}", highlight=False)
        for warning in check.warnings:
            err.print(f"[yellow]warning:[/] {warning}", highlight=False)
        if check.ok:
            n = sum(s["status"] == "ok" for s in check.subjects)
            out.print(
                f"[bold green]OK[/] signature valid (key {check.signer}); {n} of "
                f"{len(check.subjects)} files re-hashed and unchanged",
                highlight=False,
            )
    if not check.ok:
        raise typer.Exit(1)


@report_app.command("show")
@user_errors
def report_show(
    report_dir: Annotated[Path, typer.Argument(help="Report folder (with verdict.json).")],
    pub: Annotated[
        Path | None,
        typer.Option(
            "--pub",
            help="The signer's Ed25519 public key (PEM): check the signature and every file first. Default: show the claimed signer, unchecked.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the statement's predicate as JSON.")
    ] = False,
) -> None:
    """Print a report's summary; with --pub only once its signature and files check (exit 1 if not)."""
    from sleuth.reports import read_statement, verification_predicate

    signer = _checked_signer(report_dir, pub) if pub is not None else None
    predicate = verification_predicate(report_dir, read_statement(report_dir))
    if as_json:
        out.print_json(json.dumps(predicate))
        return
    # rendered whole before anything is printed: a malformed field is one line, not half a table
    with _malformed(report_dir), out.capture() as shown:
        _print_verification(predicate)
        claimed = predicate["report"]["signer"]
        if signer is not None:
            signed = f"signature checked: signed by {signer}"
        elif claimed:
            signed = f"claimed signer {escape(str(claimed))}, not checked (give --pub to check it)"
        else:
            signed = "unsigned"
        verdict = escape(str(predicate["verdict"]))
        created = escape(str(predicate["verification"]["created"]))
        out.print(
            f"overall: [bold]{verdict}[/] at alpha {float(predicate['alpha']):g}; verified "
            f"{created}; {signed}",
            highlight=False,
        )
    typer.echo(shown.get(), nl=False)


def _checked_signer(report_dir: Path, pub: Path) -> str | None:
    """The signer of a report whose signature and files check with ``pub``; else every problem
    on stderr and exit 1."""
    from sleuth.reports import check_report, load_public_key

    check = check_report(report_dir, load_public_key(pub))
    if not check.ok:
        for problem in check.problems:
            err.print(f"[bold red]FAIL[/] {problem}", highlight=False)
        raise typer.Exit(1)
    return check.signer


@contextmanager
def _malformed(source: Path, what: str = "statement") -> Any:
    """Reading a hostile statement (or saved result): a missing or mistyped field is one line
    naming it."""
    try:
        yield
    except (
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
        IndexError,
        NotRenderableError,
        MarkupError,
    ) as exc:
        detail = " ".join(str(exc).split())[:120]
        raise SleuthError(f"{source}: malformed {what} ({type(exc).__name__}: {detail})") from None


@report_app.command("rerun")
@user_errors
def report_rerun(
    report_dir: Annotated[Path, typer.Argument(help="Report folder (with verdict.json).")],
    rtol: Annotated[
        float, typer.Option(help="Relative tolerance for statistics and p-values.")
    ] = 1e-6,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress messages.")] = False,
    pub: Annotated[
        Path | None,
        typer.Option(
            "--pub",
            help="The signer's Ed25519 public key (PEM): the signature and every file are checked before anything is replayed (exit 1 if not).",
        ),
    ] = None,
    unsigned_ok: Annotated[
        bool,
        typer.Option(
            "--unsigned-ok",
            help="Replay a statement whose signature is not checked (an unsigned report, or no key at hand).",
        ),
    ] = False,
    device: Annotated[
        str,
        typer.Option(
            help="Where the models' forward passes run: auto (CUDA when available), cpu, cuda or cuda:N (another device than the recorded one may move statistics within --rtol)."
        ),
    ] = "auto",
) -> None:
    """Re-run the recorded verification and say whether verdict and statistics are reproduced.

    Exit 0 when reproduced, 1 when not (or when --pub does not check).
    """
    from sleuth.reports import replay

    if pub is not None:
        _checked_signer(report_dir, pub)
    elif not unsigned_ok:
        raise SleuthError(
            "rerun replays a checked statement only: give --pub KEY (the signer's public key), "
            "or --unsigned-ok to replay it unchecked"
        )
    progress = None if quiet else (lambda msg: err.print(f"[dim]{msg}…[/]"))
    rep = replay(report_dir, rtol=rtol, device=device, progress=progress)
    if as_json:
        out.print_json(json.dumps(rep.to_dict()))
    else:
        for line in rep.differences:
            out.print(f"- {line}", highlight=False)
        word = "[bold green]reproduced[/]" if rep.reproduced else "[bold red]NOT reproduced[/]"
        out.print(
            f"{word}: verdict {'same' if rep.verdict_reproduced else 'different'}, statistics "
            f"{'within' if rep.statistics_reproduced else 'outside'} rtol {rtol:g} (largest relative "
            f"difference {rep.max_relative_difference:.1e}); inputs "
            f"{'unchanged' if rep.inputs_unchanged else 'CHANGED'}",
            highlight=False,
        )
    if not rep.reproduced:
        raise typer.Exit(1)


# --- sleuth serve ------------------------------------------------------------------------------


class _DefaultToRun(typer.core.TyperGroup):
    """``sleuth serve ENCODER ...`` means ``sleuth serve run ENCODER ...``; ``users`` is a group."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


serve_app = typer.Typer(
    cls=_DefaultToRun,
    help="The encoder as an HTTP API with accounts and online defences (B4B, per-user "
    "transformations, proof-of-work): `sleuth serve ENCODER`, and `sleuth serve users ...` for "
    "accounts. Needs the extra: pip install 'sleuth\\[serve]'.",
    no_args_is_help=True,
)
users_app = typer.Typer(help="API accounts: add, list, revoke.", no_args_is_help=True)
serve_app.add_typer(users_app, name="users")
app.add_typer(serve_app, name="serve")

DbOpt = Annotated[
    str,
    typer.Option(
        "--db",
        help="Database URL: sqlite:///FILE (embedded; one host, any number of workers) or "
        "postgresql://USER@HOST/DB (several hosts). A bare path means SQLite.",
    ),
]
DEFAULT_DB = "sqlite:///serve.db"


def _store(db: str) -> Any:
    from sleuth.serve import require_extra

    require_extra()
    from sleuth.serve.store import Store

    return Store(db)


@serve_app.command("run")
@user_errors
def serve_run(
    encoder: Annotated[
        Path, typer.Argument(help="The encoder file to serve (encoder.pt or .safetensors).")
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    defence: Annotated[
        list[str] | None,
        typer.Option(
            "--defence",
            help="A defence applied to every answer, in order; repeatable. Same specs as steal's "
            "--defence, plus the online ones: b4b[:buckets=4096,lam=1e-6,alpha=1,beta=0.8] "
            "(Dubiński et al., NeurIPS 2023), transform[:kinds=affine+pad+shuffle,pad=16], "
            "pow[:base=8,top=20,beta=0.8]. Default: none.",
        ),
    ] = None,
    db: DbOpt = DEFAULT_DB,
    workers: Annotated[
        int, typer.Option(help="uvicorn worker processes (state is shared through --db).")
    ] = 1,
    max_batch: Annotated[int, typer.Option(help="Most images in one request.")] = 256,
    max_side: Annotated[int, typer.Option(help="Largest image side in pixels.")] = 96,
    buckets: Annotated[
        int,
        typer.Option(
            help="LSH buckets of the coverage recorded for every account (users list, /admin)."
        ),
    ] = 4096,
    cost_alert: Annotated[
        float | None,
        typer.Option(
            help="The owner's page flags accounts nearing this accumulated cost. Default: quotas only."
        ),
    ] = None,
    lsh_data: Annotated[
        str | None,
        typer.Option(
            help="Data of the owner's (a dataset spec): at the first start the coverage hashing is centred on the encoder's mean representation of it and kept in --db. Default: hyperplanes through the origin, which barely separate all-positive representations."
        ),
    ] = None,
) -> None:
    """Serve ENCODER over HTTP until interrupted (GET /info, POST /represent, /v1/..., /health, /docs, /admin)."""
    from sleuth.serve import require_extra

    require_extra()
    import os

    import uvicorn

    from sleuth.serve.app import Service
    from sleuth.serve.config import CONFIG_ENV, ServeConfig

    cfg = ServeConfig(
        encoder=str(encoder),
        defences=tuple(defence or ()),
        db=db,
        max_batch=max_batch,
        max_side=max_side,
        buckets=buckets,
        cost_alert=cost_alert,
        lsh_data=lsh_data,
    )
    if workers < 1:
        raise SleuthError(f"--workers must be at least 1, got {workers}")
    Service(cfg).store.dispose()  # every problem with the encoder, defences or db: here, once
    os.environ[CONFIG_ENV] = cfg.to_json()
    err.print(f"serving {encoder} on http://{host}:{port} ({workers} worker(s), db {db})")
    uvicorn.run(
        "sleuth.serve.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


@users_app.command("add")
@user_errors
def users_add(
    name: Annotated[str, typer.Argument(help="The account's name (unique).")],
    db: DbOpt = DEFAULT_DB,
    quota: Annotated[
        int | None, typer.Option(help="Total queries allowed. Default: unlimited.")
    ] = None,
    rate: Annotated[
        int | None, typer.Option(help="Queries allowed per minute. Default: unlimited.")
    ] = None,
    owner: Annotated[
        bool, typer.Option("--owner", help="An owner's account: may open /admin.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print {name, key} as JSON.")] = False,
) -> None:
    """Create an account and print its API key once (it is stored only as a hash)."""
    key = _store(db).add_user(name, quota=quota, rate=rate, owner=owner)
    if as_json:
        out.print_json(json.dumps({"name": name, "key": key}))
    else:
        typer.echo(key)
        err.print(f"user {name!r} added; the key above is shown once and stored only as a hash")


@users_app.command("list")
@user_errors
def users_list(
    db: DbOpt = DEFAULT_DB,
    buckets: Annotated[
        int, typer.Option(help="The coverage table to report (the server's --buckets).")
    ] = 4096,
    as_json: Annotated[bool, typer.Option("--json", help="Print every account as JSON.")] = False,
) -> None:
    """Every account's queries, coverage of the embedding space and accumulated cost."""
    rows = _store(db).users_summary(buckets)
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("user", "queries", "quota", "coverage", "cost", "state")
    for r in rows:
        cost = "; ".join(f"{k} {v:.4g}" for k, v in r["cost"].items()) or "0"
        state = "revoked" if r["revoked"] else "owner" if r["owner"] else "active"
        table.add_row(
            r["name"],
            str(r["queries"]),
            str(r["quota"] or "-"),
            f"{r['coverage']:.4f}",
            cost,
            state,
        )
    out.print(table)


@users_app.command("revoke")
@user_errors
def users_revoke(
    name: Annotated[str, typer.Argument(help="The account to revoke.")],
    db: DbOpt = DEFAULT_DB,
) -> None:
    """Revoke an account's key at once (its history stays for the owner's page)."""
    _store(db).revoke(name)
    err.print(f"user {name!r} revoked")
