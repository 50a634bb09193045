"""Data larger than memory (issue 18, item 3): peak memory and speed of streamed training.

Generates image folders of 32x32 PNGs (10 classes) under runs/streaming/ (not committed), then:

1. memory: runs one epoch of `sleuth embed --public-fraction 0.9` (a tenth of the train part
   trained on; all of it loaded, or listed, and fingerprinted) in a subprocess on each folder,
   streamed (`?stream=1`) and in memory (`?stream=0`), recording the peak RSS of the largest
   process (getrusage of the waited child: `sleuth embed` or one of its DataLoader workers,
   whichever peaked higher), the peak summed PSS of the process tree sampled every 0.2 s (PSS
   splits the pages a forked worker shares with its parent, so this is the memory the run
   really holds), the manifest's training images per second and the process's wall time, and
   that both runs recorded the same split and fingerprint;
2. speed: in one process, trains on the same private images of the least folder in memory,
   streamed, and streamed without workers, a few steps at a time, the modes alternating for
   several rounds; on a machine shared with other work the per-round ratios, taken between
   neighbouring runs, are what can be compared (their median is reported); and the least of
   alternating measurements of one training step and of decoding one batch, the costs that
   the machine's load disturbs least;
3. the streamed fingerprint of the largest folder, cold and from its cache.

    python bench/streaming.py [--sizes 10000 100000] [--rounds 6] [--steps 10] [--workers N]
    python bench/streaming.py --speed-only [--rounds 4 --steps 6]   # part 2 again

Writes bench/results/streaming.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from sleuth.bench.runner import machine
from sleuth.data import default_workers
from sleuth.fileio import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
CLASSES = 10
SIDE = 32


def _write_images(job: tuple[str, int, int]) -> None:
    from PIL import Image

    root, start, stop = job
    rng = np.random.default_rng(start)
    yy, xx = np.mgrid[:SIDE, :SIDE]
    for i in range(start, stop):
        c = i % CLASSES
        base = (np.sin(xx / (2 + c)) + np.cos(yy / (3 + c))) * 50 + 128
        pixels = base[..., None] + rng.normal(0, 25, (SIDE, SIDE, 3)) + [c * 10, 0, -c * 10]
        image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
        image.save(Path(root) / f"class{c}" / f"{i:07d}.png")


def make_folder(root: Path, n: int) -> Path:
    """``n`` PNGs in ``root``/classK/, made once (a marker records that all were written)."""
    marker = root / ".complete"
    if marker.exists() and marker.read_text() == str(n):
        return root
    shutil.rmtree(root, ignore_errors=True)
    for c in range(CLASSES):
        (root / f"class{c}").mkdir(parents=True)
    step = 2000
    with Pool(os.cpu_count() or 1) as pool:
        pool.map(_write_images, [(str(root), i, min(i + step, n)) for i in range(0, n, step)])
    marker.write_text(str(n))
    return root


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                pass
    return found


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(args: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run a command; its wall time, peak RSS (getrusage) and sampled peak tree PSS in MiB."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak_pss = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_pss
        while not done.is_set():
            peak_pss = max(peak_pss, sum(_pss_kib(p) for p in _descendants(proc.pid)))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{stderr.decode()[-2000:]}")
    return {"wall_s": wall, "peak_tree_pss_mib": peak_pss / 1024, "stdout": stdout.decode()}


def embed(spec: str, out: Path, public: float, workers: int | None, env: dict[str, str]) -> dict:
    """One epoch of ``sleuth embed`` with ``public`` of the train part held out."""
    args = [sys.executable, "-m", "sleuth", "embed", "--data", spec, "--preset", "demo"]
    args += ["--epochs", "1", "--public-fraction", str(public), "--out", str(out), "--force"]
    args += ["--json", "--device", "cpu"]
    args += ["--wm-intervals", "half"]
    args += [] if workers is None else ["--data-workers", str(workers)]
    measured = run(args, env)
    manifest = json.loads((out / "manifest.json").read_text())
    key = _split(out)
    return {
        "wall_s": measured["wall_s"],
        # the largest waited descendant so far: called in a fresh interpreter per run (``one``)
        "peak_rss_mib": _children_maxrss() / 1024,
        "peak_tree_pss_mib": measured["peak_tree_pss_mib"],
        "images_per_s": manifest["metrics"]["train_images_per_s"],
        "train_s": manifest["timings_s"]["train"],
        "streamed": manifest["details"]["streamed"],
        "fingerprint": manifest["details"]["data_fingerprint"],
        "split_digest": key,
    }


def _children_maxrss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux


def _split(out: Path) -> str:
    import hashlib

    from sleuth.models import load_owner_key

    split = load_owner_key(out / "owner-key.pt").split.to_dict()
    record = {k: split[k] for k in ("private", "public", "seed", "public_fraction", "fingerprint")}
    return hashlib.sha256(json.dumps(record).encode()).hexdigest()


def one(spec: str, out: Path, public: float, workers: int | None, env: dict[str, str]) -> dict:
    """One embed in a fresh interpreter of its own, so that getrusage sees it alone."""
    code = (
        "import json, sys; sys.path.insert(0, 'bench'); import streaming; "
        f"print(json.dumps(streaming.embed({spec!r}, __import__('pathlib').Path({str(out)!r}), "
        f"{public}, {workers!r}, dict(__import__('os').environ))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def fingerprint_times(spec: str, env: dict[str, str]) -> dict[str, float]:
    """Seconds to open the folder (list and stat its files) and to fingerprint it, cold (the
    cache emptied by the caller) and then from the cache; imports are not counted."""
    code = (
        "import time, torchvision.datasets.folder; from sleuth.data import fingerprint, "
        f"load_images; t = time.perf_counter(); d = load_images({spec!r}); "
        "u = time.perf_counter(); fingerprint(d); print(u - t, time.perf_counter() - u)"
    )
    times = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr[-2000:])
        times.append([float(v) for v in out.stdout.split()[-2:]])
    return {"open_s": times[1][0], "cold_s": times[0][1], "cached_s": times[1][1]}


def paired(folder: str, rounds: int, steps: int, workers: int | None) -> dict:
    """Training images per second on the same private images, in memory and streamed, the
    modes alternating round by round (run in a fresh interpreter by ``main``)."""
    from dataclasses import replace

    from sleuth.data import input_spec_for, load_images, make_split
    from sleuth.embed import from_preset
    from sleuth.embed.distributed import setup
    from sleuth.embed.trainer import train

    cfg = from_preset("demo", epochs=1, wm_intervals="half")
    images = steps * cfg.batch_size
    modes = {"memory": (0, 0), "stream": (1, workers), "stream, no workers": (1, 0)}
    sets = {}
    for mode, (stream, _) in modes.items():
        data = load_images(f"folder:{folder}?stream={stream}")
        split = make_split(len(data), cfg.public_fraction, cfg.seed)
        sets[mode] = data.subset(split.private[:images])
    spec = input_spec_for(sets["memory"])
    info = setup("cpu")
    rates: dict[str, list[float]] = {mode: [] for mode in modes}
    cpu: dict[str, list[float]] = {mode: [] for mode in modes}
    for r in range(rounds):
        for mode in list(modes) if r % 2 == 0 else list(modes)[::-1]:
            before = time.process_time()  # this process's threads: decoding too, without workers
            out = train(replace(cfg, data=folder), sets[mode], spec, info, workers=modes[mode][1])
            cpu[mode].append(1000 * (time.process_time() - before) / images)
            rates[mode].append(images / out.state.elapsed)
    return {
        "images": images,
        "rounds": rounds,
        "workers": default_workers() if workers is None else workers,
        "images_per_s": rates,
        "cpu_ms_per_image": cpu,
    }


def costs(folder: str, reps: int) -> dict:
    """The least of ``reps`` alternating measurements of one training step on a batch in
    memory and of decoding a batch of the folder's images (the least is the one other work
    disturbed least): what streaming adds per image, whatever the machine's load."""
    from dataclasses import replace

    import numpy as np

    from sleuth.data import input_spec_for, load_images, make_split
    from sleuth.embed import from_preset
    from sleuth.embed.distributed import setup
    from sleuth.embed.trainer import train

    cfg = from_preset("demo", epochs=1, wm_intervals="half")
    data = load_images(f"folder:{folder}?stream=1")
    split = make_split(len(data), cfg.public_fraction, cfg.seed)
    memory = load_images(f"folder:{folder}?stream=0").subset(split.private[: cfg.batch_size])
    spec, info = input_spec_for(memory), setup("cpu")
    rng = np.random.default_rng(0)
    step, decode = [], []
    for _ in range(reps):
        out = train(replace(cfg, data=folder), memory, spec, info, workers=0)
        step.append(1000 * out.state.elapsed / cfg.batch_size)
        rows = rng.choice(split.private, cfg.batch_size, replace=False)
        start = time.perf_counter()
        data.images[rows]
        decode.append(1000 * (time.perf_counter() - start) / cfg.batch_size)
    return {
        "reps": reps,
        "train_ms_per_image": min(step),
        "decode_ms_per_image": min(decode),
        "train_ms_per_image_all": step,
        "decode_ms_per_image_all": decode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=6, help="speed: rounds of every mode")
    parser.add_argument("--steps", type=int, default=10, help="speed: steps per run")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--reps", type=int, default=15, help="speed: least-of measurements")
    parser.add_argument(
        "--public-fraction",
        type=float,
        default=0.9,
        help="memory runs: held out of the train part (the rest is trained on for one epoch)",
    )
    parser.add_argument("--work", default="runs/streaming")
    parser.add_argument("--results", default="bench/results/streaming.json")
    parser.add_argument(
        "--speed-only", action="store_true", help="measure the speed again into existing results"
    )
    args = parser.parse_args()
    work = ROOT / args.work
    cache = work / "cache"
    env = dict(os.environ, SLEUTH_CACHE=str(cache))
    started = time.time()
    load_before = os.getloadavg()
    runs = []
    for n in [] if args.speed_only else args.sizes:
        t = time.perf_counter()
        folder = make_folder(work / f"images-{n}", n)
        print(f"{n:,} images ready in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        for mode, stream in (("stream", 1), ("memory", 0)):
            shutil.rmtree(cache, ignore_errors=True)  # every streamed run pays its hash
            spec = f"folder:{folder}?stream={stream}"
            result = one(spec, work / f"out-{n}-{mode}", args.public_fraction, args.workers, env)
            used = default_workers() if args.workers is None else args.workers
            row = {"images": n, "mode": mode, "workers": used if stream else 0}
            runs.append(row | result)
            print(json.dumps(runs[-1]), file=sys.stderr)
    least = work / f"images-{min(args.sizes)}"
    code = (
        "import json, sys; sys.path.insert(0, 'bench'); import streaming; "
        f"print(json.dumps(streaming.paired({str(least)!r}, {args.rounds}, {args.steps}, "
        f"{args.workers!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    speed = json.loads(done.stdout.strip().splitlines()[-1])
    code = (
        "import json, sys; sys.path.insert(0, 'bench'); import streaming; "
        f"print(json.dumps(streaming.costs({str(least)!r}, {args.reps})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    speed["costs"] = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(speed), file=sys.stderr)
    path = ROOT / args.results
    if args.speed_only:
        results = json.loads(path.read_text())
        speed["command"] = "python bench/streaming.py " + " ".join(sys.argv[1:])
        results |= {"speed": speed, "speed_measured": time.strftime("%Y-%m-%d %H:%M")}
        results["speed"]["load_average"] = [load_before, os.getloadavg()]
        atomic_write_text(path, json.dumps(results, indent=1) + "\n")
        print(path)
        return
    largest = max(args.sizes)
    shutil.rmtree(cache, ignore_errors=True)
    fp = fingerprint_times(f"folder:{work / f'images-{largest}'}?stream=1", env)
    fp["images"] = largest
    print(json.dumps(fp), file=sys.stderr)
    results = {
        "machine": machine(),
        "command": "python bench/streaming.py " + " ".join(sys.argv[1:]),
        "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(started)),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "image_side": SIDE,
        "classes": CLASSES,
        "public_fraction": args.public_fraction,
        "runs": runs,
        "speed": speed,
        "fingerprint": fp,
    }
    atomic_write_text(path, json.dumps(results, indent=1) + "\n")
    print(path)


if __name__ == "__main__":
    main()
