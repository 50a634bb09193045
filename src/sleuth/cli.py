"""The ``sleuth`` command line: parse options, call the library, print results.

Results go to stdout, progress and logs to stderr. A user error (``SleuthError``) prints one line
and exits with code 2; nothing imports this module.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from sleuth import __version__
from sleuth.errors import SleuthError

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


def user_errors(fn: F) -> F:
    """Turn a ``SleuthError`` into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SleuthError as exc:
            err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
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
        "svhn:ROOT | stl10:ROOT | folder:DIR[?size=N] | npz:FILE | h5:FILE.",
    ),
]


class EmbedProgress:
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

    def __enter__(self) -> EmbedProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, ev: dict[str, Any]) -> None:
        total = ev["epochs"] * ev["steps"]
        done = (ev["epoch"] - 1) * ev["steps"] + ev["step"]
        fields = {
            "epoch": f"{ev['epoch']}/{ev['epochs']}",
            "loss": ev["loss"],
            "wm": ev["wm_acc"],
            "ips": ev["images_per_s"],
        }
        if self.task is None:
            self.task = self.bar.add_task("embed", total=total, **fields)
        self.bar.update(self.task, completed=done, **fields)


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
    wm_weight: Annotated[
        float | None, typer.Option(help="Weight of the watermark loss. Default: 1.0.")
    ] = None,
    wm_intervals: Annotated[
        str | None,
        typer.Option(
            help="Private rotation intervals: half ([0,180) vs [180,360), the paper's), flip ([-60,60) vs [120,240)) or LO:HI,LO:HI in degrees. Default: half."
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


class StageProgress:
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

    def __enter__(self) -> StageProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, ev: dict[str, Any]) -> None:
        stage = ev["stage"]
        if stage == "query":
            total, done, info = ev["total"], ev["done"], f"{ev['done']} queries"
        else:
            total = ev["epochs"] * ev["steps"]
            done = (ev["epoch"] - 1) * ev["steps"] + ev["step"]
            info = f"epoch {ev['epoch']}/{ev['epochs']} loss {ev['loss']:.4f}"
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(stage, total=total, info=info)
        self.bar.update(self.tasks[stage], completed=done, info=info)


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
            help="direct (000 Alg. 1), stolenencoder (002 Eq. 7), recreate-head (000 Alg. 2) or access-head (the victim returns projections)."
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
            help="Seed for the choice of queries, augmentations, initialisation and defences."
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
    defence: Annotated[
        list[str] | None,
        typer.Option(
            "--defence",
            help="Victim-side output defence, repeatable, applied in order: noise:sigma=S[,mean=M], topk:k=K, round:decimals=M, poison:eps=E,norm=l2|linf,surrogate=PATH[,lam=L,steps=N], similar:metric=cosine|l2,threshold=T[,sigma=S,mean=M,history=H,mode=replace|add]. Local victims only.",
        ),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(
            help="HDF5 file caching the victim's answers: a re-run reads it instead of querying again."
        ),
    ] = None,
    eval_task: Annotated[
        str | None,
        typer.Option(
            "--eval",
            help="Labelled dataset spec: print TA (victim), SA (stolen) and SA/TA with the linear probe of `sleuth evaluate`.",
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
    """Steal a victim encoder within a strict query budget (the attacks of papers 000 and 002)."""
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
    )
    with StageProgress(enabled=not (quiet or as_json)) as progress:
        result = run_steal(
            cfg,
            victim,
            out_dir,
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
        **{k: result.metrics[k] for k in ("TA", "SA", "SA/TA") if k in result.metrics},
    }
    if as_json:
        out.print_json(json.dumps(summary))
        return
    _print_summary("sleuth steal", summary)


def _print_summary(title: str, summary: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False)
    for k, v in summary.items():
        table.add_row(k, "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v))
    out.print(table)


def _fmt_p(p: float | None) -> str:
    return "-" if p is None else f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def _print_verification(result: Any) -> None:
    colour = {"stolen": "bold red", "not_stolen": "bold green", "inconclusive": "bold yellow"}
    for report in result.victims:
        table = Table(title=f"{result.suspect} vs {report.victim}")
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
        for d in report.decisions:
            r = d.result
            decision = "reject H0" if d.rejected else "keep H0" if d.counted else "not counted"
            table.add_row(
                r.name,
                f"{r.score:.4g}",
                f"{r.statistic:.4g}",
                _fmt_p(r.p_value) if r.valid else "-",
                _fmt_p(d.p_reference),
                _fmt_p(d.p_adjusted) if d.counted else "-",
                f"{r.effect:.3g}" if r.valid else r.note,
                "-" if d.power is None else f"{d.power:.2f} ({d.n_for_power or '-'})",
                decision,
            )
        out.print(table)
        style = colour[report.verdict]
        out.print(f"verdict: [{style}]{report.verdict}[/] ({report.reason})")


@app.command()
@user_errors
def verify(
    suspect: Annotated[
        str | None,
        typer.Argument(
            help="Suspect encoder file or folder; or the word `challenge` to export a black-box challenge (with --out)."
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
            help="Independently trained encoder (file or folder) to calibrate against; repeatable; at least 3 for the distance, alignment and noise tests to count.",
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
            help="Black-box: the challenge key written by `verify challenge` (FILE.key.json); "
            "its settings replace --samples and --seed."
        ),
    ] = None,
    arch: Annotated[
        str | None, typer.Option(help="Architecture of a suspect given as a bare state dict.")
    ] = None,
    tests: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated tests: watermark, di-head, di-gmm, distance, alignment, noise. Default: all."
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
    seed: Annotated[
        int, typer.Option(help="Seed of the challenge (which images, rotations, views and noise).")
    ] = 0,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out", help="With `challenge`: where to write challenge.h5 (its key goes beside it)."
        ),
    ] = None,
    json_file: Annotated[
        Path | None,
        typer.Option(
            "--json",
            help="Write the machine-readable result (verdict in stolen, not_stolen, inconclusive) to this file.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress messages.")] = False,
) -> None:
    """Was SUSPECT stolen from the victim(s)? Hypothesis tests, calibrated, combined into a verdict.

    Exit code 0 whenever it ran, whatever the verdict; 2 on bad input.
    """
    from sleuth.fileio import atomic_write_text
    from sleuth.verify import ChallengeSettings, build_challenge, export_challenge, run_verify

    settings = ChallengeSettings(samples=samples, seed=seed)
    if suspect == "challenge":
        if out_file is None or not victim or len(victim) != 1:
            raise SleuthError("verify challenge needs one --victim and --out FILE.h5")
        from sleuth.models import load_owner_key

        key = load_owner_key(Path(victim[0]) / "owner-key.pt")
        path, key_path = export_challenge(build_challenge(key, settings), out_file)
        out.print(f"wrote {path} (send it) and {key_path} (keep it)")
        return
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
    )
    if json_file is not None:
        atomic_write_text(json_file, result.to_json())
    _print_verification(result)


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
) -> None:
    """Linear-probe accuracy of a frozen encoder (how TA and SA are measured)."""
    from sleuth.models import load_encoder
    from sleuth.models.probe import linear_probe

    with err.status(f"linear probe on {task}") if not as_json else nullcontext():
        result = linear_probe(load_encoder(encoder, arch=arch), task, download=download)
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
) -> None:
    """Convert an encoder between .pt and .safetensors (metadata kept), or wrap a bare state dict."""
    from sleuth.models import load_encoder, save_encoder

    if target.suffix not in (".pt", ".safetensors"):
        raise SleuthError(f"target must end in .pt or .safetensors: {target}")
    if target.exists() and not force:
        raise SleuthError(f"{target} exists (use --force to overwrite)")
    save_encoder(load_encoder(source, arch=arch, input_size=input_size), target)
    out.print(f"wrote {target}")


@app.command()
@user_errors
def archs() -> None:
    """List the registered architectures."""
    from sleuth.models import ARCHITECTURES, DEFAULT_ARCH

    table = Table("name", "description")
    for name, a in ARCHITECTURES.items():
        table.add_row(name + (" (default)" if name == DEFAULT_ARCH else ""), a.description)
    out.print(table)
