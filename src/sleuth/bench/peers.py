"""``sleuth bench --suite peers``: sleuth's SimCLR trainer beside lightly's (issue 18).

For each network of a suite, three trainers run on the same images with the same seed, batch
size, epochs, optimiser, views and threads (``sleuth.bench.peer_trainers`` says how the work is
made equal): ``sleuth embed``'s trainer without the watermark (``sleuth``) and with it
(``sleuth+wm``), and the same SimCLR written the way lightly's documentation writes it
(``lightly``). Each trainer runs in a process of its own, so that its peak resident memory is
its own; it reports images/s over its training steps, that peak, and the linear-probe accuracy
of its encoder. A suite of several seeds repeats the comparison under each (another split,
initial weights and data order), so that a gap in accuracy can be told from the seed's.

The cores may be shared with other work whose load comes and goes by the minute, so trainers
run one after another would each meet another load. Here the three processes of a network run
in lockstep instead: this process grants them turns of one training step each, in a round
(A B C, then C B A, ...), and each is timed over its own turns only. Only one trains at any
moment, and over a run every trainer meets the same load: their ratios are measured side by side.

lightly is a benchmark-only dependency: ``pip install -e '.[peers]'``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from scipy.stats import t as t_dist

from sleuth.errors import SleuthError
from sleuth.fileio import atomic_write_text
from sleuth.progress import BenchEvent, CellDone, CellsPlanned, CellStarted, StageStep

FORMAT = "sleuth-peers"
MARKER = "peers-bench.json"
RESULTS_FILE = "results.json"
TRAINERS_FILE = Path(__file__).with_name("peer_trainers.py")
TRAINER_NAMES = ("sleuth", "sleuth+wm", "lightly")
UNWATERMARKED, WATERMARKED, PEER = TRAINER_NAMES
EXTRA = "pip install -e '.[peers]'"
PUBLIC_FRACTION = 0.5  # sleuth embed's default; the trainers take the other, private, part
Progress = Callable[[BenchEvent], None]
# a trainer's process loads peer_trainers.py by path, not through the sleuth.bench package
_WORKER = (
    "import importlib.util, sys; "
    "spec = importlib.util.spec_from_file_location('sleuth.bench.peer_trainers', sys.argv[1]); "
    "mod = importlib.util.module_from_spec(spec); sys.modules[spec.name] = mod; "
    "spec.loader.exec_module(mod); mod.worker_main(*sys.argv[2:])"
)


@dataclass(frozen=True)
class PeerRun:
    """One network of a suite: how many of the private images it trains on, for how long."""

    arch: str
    images: int | None  # None: the whole private part
    epochs: int
    probe_images: int | None = None  # probe training images (None: the task's whole train part)


@dataclass(frozen=True)
class PeerSuite:
    """The networks compared, the recipe every trainer shares, and the seeds it is run under."""

    description: str
    runs: tuple[PeerRun, ...]
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-6
    temperature: float = 0.5
    proj_dim: int = 64
    # each seed a replicate of the whole comparison: another split, initial weights and order
    seeds: tuple[int, ...] = (0,)
    trainers: tuple[str, ...] = TRAINER_NAMES  # lightly's is the base of every ratio
    # lightly's DataLoader workers: 0, the augmentation in the training process as sleuth's;
    # workers would prefetch during the other trainers' turns, work the clock would not see
    workers: int = 0
    threads: int | None = None  # torch threads of every trainer; None: the machine's cores

    def __post_init__(self) -> None:
        unknown = [t for t in self.trainers if t not in TRAINER_NAMES]
        if unknown or PEER not in self.trainers or UNWATERMARKED not in self.trainers:
            raise SleuthError(
                f"a peers suite trains {UNWATERMARKED} and {PEER} (and may add {WATERMARKED}), "
                f"not {', '.join(self.trainers)}"
            )
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise SleuthError(f"a peers suite needs distinct seeds, not {self.seeds}")


# the peers comparison's work: smallresnet to convergence on the demo recipe, resnet18 briefly
_PEER_RUNS = (
    PeerRun("smallresnet", None, 10, probe_images=4000),
    PeerRun("resnet18", 768, 2, probe_images=2000),
)

PEER_SUITES: dict[str, PeerSuite] = {
    "peers-quick": PeerSuite(
        "smallresnet, 2,048 of the demo recipe's private images, 1 epoch (minutes)",
        runs=(PeerRun("smallresnet", 2048, 1, probe_images=1000),),
    ),
    "peers": PeerSuite(
        "smallresnet on the demo recipe's 4,000 private images for 10 epochs, resnet18 on 768 "
        "of them for 2 (20-30 minutes on 2 shared cores)",
        runs=_PEER_RUNS,
    ),
    "peers-seeds": PeerSuite(
        "peers' work for sleuth and lightly without the watermark under seeds 0-4: how far the "
        "probes' gap and the speed ratio move with the seed (about an hour on 2 cores)",
        runs=_PEER_RUNS,
        seeds=(0, 1, 2, 3, 4),
        trainers=(UNWATERMARKED, PEER),
    ),
}


def get_peer_suite(name: str) -> PeerSuite:
    try:
        return PEER_SUITES[name]
    except KeyError:
        raise SleuthError(
            f"unknown peers suite {name!r} (known: {', '.join(PEER_SUITES)})"
        ) from None


def require_lightly() -> str:
    """lightly's version, or a one-line refusal naming the extra that installs it."""
    if importlib.util.find_spec("lightly") is None:
        raise SleuthError(f"the peers benchmark needs lightly, an optional extra: {EXTRA}")
    return version("lightly")


@dataclass(frozen=True)
class PeersResult:
    """The results (the JSON written to ``path``) and where they are."""

    results: dict[str, Any]
    path: Path


def _prepare(out: Path, identity: dict[str, Any]) -> None:
    """A folder serves one peers bench: refuse one that holds anything else."""
    if out.exists() and not out.is_dir():
        raise SleuthError(f"--out exists and is not a folder: {out}")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise SleuthError(f"{out} is not empty and holds no peers bench: give another --out")
    (out / "trainers").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / MARKER, json.dumps(identity, indent=1) + "\n")


def _spawn(spec: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Start one trainer's process with a pipe each way for its turns."""
    name = f"{spec['arch']}-{spec['trainer']}-seed{spec['seed']}"
    paths = {k: folder / f"{name}{ext}" for k, ext in (("spec", ".spec.json"), ("result", ".json"))}
    paths["log"] = folder / f"{name}.log"
    paths["spec"].write_text(json.dumps(spec, indent=1), encoding="utf-8")
    paths["result"].unlink(missing_ok=True)
    from_parent, to_child = os.pipe()  # parent writes "go"
    from_child, to_parent = os.pipe()  # child writes "ready" / "done"
    with paths["log"].open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WORKER,
                str(TRAINERS_FILE),
                str(paths["spec"]),
                str(paths["result"]),
                str(from_parent),
                str(to_parent),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(from_parent, to_parent),
        )
    os.close(from_parent)
    os.close(to_parent)
    return {"name": name, "proc": proc, "go": to_child, "said": from_child, **paths}


def _hear(worker: dict[str, Any]) -> bytes:
    """What a trainer says next (blocks while it trains); its death is a refusal naming its log."""
    said = os.read(worker["said"], 1)
    if said not in (b"r", b"d"):
        rc = worker["proc"].wait()
        raise SleuthError(f"trainer {worker['name']} failed (exit {rc}): see {worker['log']}")
    return said


def run_lockstep(
    specs: list[dict[str, Any]], folder: Path, on_round: Callable[[int], None] | None = None
) -> list[dict[str, Any]]:
    """Run one network's trainers in lockstep (a turn of one step each, in a round, in order
    and then in reverse, until all are done), then let each measure its memory and probe alone;
    their results, in order."""
    workers = [_spawn(spec, folder) for spec in specs]
    try:
        for w in workers:  # each loads its imports and data, then says ready
            _hear(w)
        training, rounds = list(workers), 0
        while training:  # the order turns every round: a load that grows or fades evens out
            for w in training[:: 1 if rounds % 2 == 0 else -1]:
                os.write(w["go"], b"g")
                if _hear(w) == b"d":
                    training.remove(w)
            rounds += 1
            if on_round:
                on_round(rounds)
        results = []
        for w in workers:
            os.write(w["go"], b"g")
            rc = w["proc"].wait()
            if rc != 0 or not w["result"].exists():
                raise SleuthError(f"trainer {w['name']} failed (exit {rc}): see {w['log']}")
            results.append(json.loads(w["result"].read_text(encoding="utf-8")))
        return results
    finally:
        for w in workers:
            if w["proc"].poll() is None:
                w["proc"].kill()
                w["proc"].wait()
            for fd in (w["go"], w["said"]):
                with contextlib.suppress(OSError):
                    os.close(fd)


def summarise(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Each trainer's row with ``ratio``, its images/s over lightly's on the same network and
    seed; per network, the ratios the issue's goals are stated in, per seed and over the seeds
    (``summarise_seeds``)."""
    trainers = [
        {"name": r["trainer"], **{k: v for k, v in r.items() if k != "trainer"}} for r in rows
    ]
    by = {(t["arch"], t.get("seed"), t["name"]): t for t in trainers}
    for t in trainers:
        peer = by.get((t["arch"], t.get("seed"), PEER))
        t["ratio"] = None if peer is None else t["images_per_s"] / peer["images_per_s"]
    ratios: dict[str, Any] = {}
    for arch in dict.fromkeys(t["arch"] for t in trainers):
        per_seed = []
        for seed in dict.fromkeys(t.get("seed") for t in trainers if t["arch"] == arch):
            plain, peer = by.get((arch, seed, UNWATERMARKED)), by.get((arch, seed, PEER))
            if plain is not None and peer is not None:
                per_seed.append(_seed_ratios(seed, plain, peer, by.get((arch, seed, WATERMARKED))))
        if per_seed:
            ratios[arch] = summarise_seeds(per_seed)
    return trainers, ratios


def _seed_ratios(
    seed: int | None, plain: dict[str, Any], peer: dict[str, Any], wm: dict[str, Any] | None
) -> dict[str, Any]:
    """One seed's ratios: sleuth over lightly, and the watermark's cost where it was trained."""
    median = "median_step_images_per_s"
    gap = None
    if plain["probe_acc"] is not None and peer["probe_acc"] is not None:
        gap = 100 * (plain["probe_acc"] - peer["probe_acc"])
    out: dict[str, Any] = {
        "seed": seed,
        "sleuth_over_lightly": plain["ratio"],
        # the same ratios from each trainer's median step
        "median_sleuth_over_lightly": _ratio(plain.get(median), peer.get(median)),
        "probe_gap_pt": gap,
        "rss_sleuth_over_lightly": plain["peak_rss_mb"] / peer["peak_rss_mb"],
    }
    if wm is not None:
        out["sleuth_wm_over_lightly"] = wm["ratio"]
        out["watermark_time_ratio"] = plain["images_per_s"] / wm["images_per_s"]
        out["median_watermark_time_ratio"] = _ratio(plain.get(median), wm.get(median))
    return out


def summarise_seeds(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """A network's ratios over its seeds: the median of each ratio, the mean probe gap and,
    from two seeds on, the gap's standard deviation and 95 % t interval (the seeds' runs are
    independent replicates; the two trainers of a seed share weights and images, so the gap is
    paired within a seed). The goals are judged on the median ratio and the mean gap."""
    out: dict[str, Any] = {}
    for key in per_seed[0]:
        values = [s[key] for s in per_seed]
        if key not in ("seed", "probe_gap_pt"):
            out[key] = None if None in values else statistics.median(values)
    gaps = [s["probe_gap_pt"] for s in per_seed]
    gap = None if None in gaps else statistics.fmean(gaps)
    out["probe_gap_pt"] = gap
    out["probe_gap_sd_pt"] = out["probe_gap_ci95_pt"] = None
    if gap is not None and len(gaps) > 1:
        sd = statistics.stdev(gaps)
        out["probe_gap_sd_pt"] = sd
        half = float(t_dist.ppf(0.975, len(gaps) - 1)) * sd / math.sqrt(len(gaps))
        out["probe_gap_ci95_pt"] = [gap - half, gap + half]
    out["probe_within_half_pt"] = gap is not None and abs(gap) <= 0.5
    # no slower than lightly, and not less accurate by more than half a point
    out["goal_speed_met"] = out["sleuth_over_lightly"] >= 1.0 and gap is not None and gap >= -0.5
    if "watermark_time_ratio" in out:
        out["goal_watermark_met"] = out["watermark_time_ratio"] <= 1.05
    out["seeds"] = per_seed
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a / b


def command(suite: str, data: str, task: str, out: Path, device: str) -> str:
    task_opt = "" if task == data else f" --task {task}"
    dev = "" if device == "auto" else f" --device {device}"
    return f"sleuth bench --suite {suite} --data {data}{task_opt}{dev} --out {out}"


def run_peers(
    suite_name: str,
    out_dir: str | Path,
    *,
    data: str | None = None,
    task: str | None = None,
    device: str = "auto",
    progress: Progress | None = None,
    run_network: Callable[..., list[dict[str, Any]]] | None = None,
) -> PeersResult:
    """Run a peers suite, write ``results.json`` into ``out_dir`` and return it. Each network's
    trainers run through ``run_network`` (default: ``run_lockstep``)."""
    from sleuth.bench.runner import machine
    from sleuth.data import load_images
    from sleuth.device import resolve_device
    from sleuth.manifest import environment

    suite = get_peer_suite(suite_name)
    lightly_version = require_lightly()
    data = data or "demo"
    task = task or data
    n_train = len(load_images(data, "train"))  # a bad spec is refused before --out is made
    n_private = n_train - round(n_train * PUBLIC_FRACTION)
    out = Path(out_dir)
    dev = str(resolve_device(device))
    threads = suite.threads or os.cpu_count() or 1
    start = time.perf_counter()
    _prepare(out, {"format": FORMAT, "suite": suite_name, "data": data, "task": task})
    emit = progress or (lambda ev: None)
    run_network = run_network or run_lockstep
    cells = [(seed, run) for seed in suite.seeds for run in suite.runs]
    emit(CellsPlanned(len(cells)))
    rows: list[dict[str, Any]] = []
    for i, (seed, run) in enumerate(cells, 1):
        images = n_private if run.images is None else min(run.images, n_private)
        steps = run.epochs * (images // suite.batch_size)
        if steps == 0:
            raise SleuthError(f"{images} images are fewer than one batch of {suite.batch_size}")
        label = run.arch if len(suite.seeds) == 1 else f"{run.arch}, seed {seed}"
        emit(CellStarted(f"{label}: {', '.join(suite.trainers)}", i))
        t0 = time.perf_counter()
        specs = [
            {
                "trainer": name,
                "arch": run.arch,
                "data": data,
                "task": task,
                "images": run.images,
                "epochs": run.epochs,
                "batch_size": suite.batch_size,
                "lr": suite.lr,
                "weight_decay": suite.weight_decay,
                "temperature": suite.temperature,
                "proj_dim": suite.proj_dim,
                "seed": seed,
                "threads": threads,
                "workers": suite.workers,
                "probe": True,
                "probe_images": run.probe_images,
                "device": dev,
            }
            for name in suite.trainers
        ]
        rows += run_network(
            specs,
            out / "trainers",
            # the last round only says "done"
            lambda done, total=steps + 1: emit(StageStep("rounds", done, total)),
        )
        emit(CellDone(label, i, time.perf_counter() - t0))
    trainers, ratios = summarise(rows)
    results = {
        "format": FORMAT,
        "suite": suite_name,
        "data": data,
        "task": task,
        "command": command(suite_name, data, task, out, device),
        "argv": sys.argv,
        "machine": machine(device),
        "versions": {**environment(), "lightly": lightly_version},
        "seeds": {k: list(suite.seeds) for k in ("train", "split", "loader")},
        "settings": {
            "runs": [vars(run) for run in suite.runs],
            "batch_size": suite.batch_size,
            "views": 2,
            "optimiser": f"Adam lr {suite.lr:g} weight decay {suite.weight_decay:g}, cosine",
            "temperature": suite.temperature,
            "proj_dim": suite.proj_dim,
            "threads": threads,
            "lightly_workers": suite.workers,
            "trainers": list(suite.trainers),
            "schedule": "lockstep: one step per trainer in turn",
            "device": dev,
        },
        "trainers": trainers,
        "ratios": ratios,
        "seconds": time.perf_counter() - start,
    }
    path = out / RESULTS_FILE
    atomic_write_text(path, json.dumps(results, indent=1) + "\n")
    return PeersResult(results, path)
