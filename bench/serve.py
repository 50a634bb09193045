"""Defended API benchmark (issue 16): Bucks for Buckets (Dubinski et al., NeurIPS 2023) and
calibrated proof-of-work behind a real `sleuth serve`, attacked over loopback by `sleuth steal`.

Needs a finished demo (`sleuth demo --out runs/demo`: the victim and its independent encoders)
and Fashion-MNIST (`../shared/data/fashion-mnist`). At the embedded data's scale:

1. coverage against queries for a legitimate user with one downstream task (the footwear
   classes), an in-distribution thief (every class) and an out-of-distribution thief
   (Fashion-MNIST inverted and turned by multiples of 90 degrees: white backgrounds the victim
   never saw), for 2^8, 2^10 and 2^12 buckets (B4B Fig. 3 and Fig. 10), and the cost curve;
2. Table 1's shape through real servers (undefended; B4B with per-user affine transforms):
   the legitimate user's probe accuracy, single-account thieves' SA at equal budget, sybils
   with 2 and 4 accounts; proof-of-work as the solving time of the thief and of the user;
3. whether `sleuth verify` still finds each copy stolen;
4. load: 8 concurrent clients x 200 requests on loopback with SQLite and with PostgreSQL (two
   workers), throughput and p50/p99 latency, then a SIGKILL mid-run and a restart: the
   accounting after must equal the accounting before plus what was answered.

Writes bench/results/serve.json, docs/b4b-coverage.png and prints the tables.

    python bench/serve.py [--demo runs/demo] [--out runs/bench-serve] [--queries 4000]
"""

from __future__ import annotations

import argparse
import io
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sleuth.bench.runner import machine
from sleuth.data import load_images, to_float
from sleuth.fileio import atomic_write_text
from sleuth.models import load_encoder
from sleuth.probe import linear_probe, probe_accuracy
from sleuth.serve.process import Postgres, Server
from sleuth.serve.store import Store
from sleuth.steal import StealConfig, run_steal
from sleuth.steal.b4b import RandomHyperplaneLSH, b4b_sigma, lsh_center
from sleuth.steal.oracle import HTTPOracle
from sleuth.verify import run_verify

FMNIST = "fmnist:../shared/data/fashion-mnist"
FOOTWEAR = (5, 7, 9)  # sandal, sneaker, ankle boot: the legitimate user's task
BUCKET_BITS = (8, 10, 12)
# the setting used end to end, calibrated as B4B Sec. 4.2 calibrates its own on Fig. 3: 2^8
# buckets (at a few thousand queries 2^12 cannot fill: 4,000 answers occupy at most 4,000 of
# 4,096 buckets), beta at the in-distribution thief's coverage at its full budget (0.61 of 256
# buckets after 4,000 queries in the coverage curves), the paper's lam and alpha
B4B = "b4b:buckets=256,lam=1e-6,alpha=1,beta=0.6"
# the same with beta past the thief's coverage: the cost curve's other end, gentle on the user
B4B_GENTLE = "b4b:buckets=256,lam=1e-6,alpha=1,beta=0.75"
TRANSFORM = "transform:kinds=affine"
POW = "pow:base=4,top=14,beta=0.6,buckets=256"


def footwear(part: str, n: int) -> tuple[torch.Tensor, np.ndarray]:
    data = load_images(FMNIST, part)
    idx = torch.isin(data.labels, torch.tensor(FOOTWEAR)).nonzero().squeeze(1)[:n]
    return to_float(data.images[idx]), data.labels[idx].numpy()


def out_of_distribution(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    turns = torch.randint(0, 4, (len(images),), generator=torch.Generator().manual_seed(seed))
    out = torch.stack(
        [torch.rot90(x, int(k), dims=(1, 2)) for x, k in zip(images, turns, strict=True)]
    )
    return 1.0 - out


def thief_images(n: int, seed: int = 0) -> torch.Tensor:
    data = load_images(FMNIST, "train")
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    return to_float(data.images[pick])


# --- 1. coverage -----------------------------------------------------------------------------

STEPS = (100, 250, 500, 1000, 2000, 4000, 8000)


def coverage_curves(victim: str) -> dict[str, Any]:
    encoder = load_encoder(victim)
    center = lsh_center(encoder, FMNIST)
    users = {
        "legitimate (footwear)": footwear("train", 8000)[0],
        "thief, in distribution": thief_images(8000),
        "thief, out of distribution": out_of_distribution(thief_images(8000, seed=1)),
    }
    curves: dict[str, Any] = {}
    for name, images in users.items():
        reps = encoder.represent(images)
        curves[name] = {}
        for bits in BUCKET_BITS:
            lsh = RandomHyperplaneLSH(b"bench-secret" * 3, bits, center)
            buckets = lsh(reps)
            curves[name][str(1 << bits)] = [
                len(set(buckets[:n].tolist())) / (1 << bits) for n in STEPS if n <= len(reps)
            ]
    return {"steps": list(STEPS), "curves": curves}


def plot_coverage(coverage: dict[str, Any], path: Path) -> None:
    fig = Figure(figsize=(13, 3.8), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 4)
    steps = coverage["steps"]
    for ax, bits in zip(axes, BUCKET_BITS, strict=False):
        for name, by in coverage["curves"].items():
            ys = by[str(1 << bits)]
            ax.plot(steps[: len(ys)], ys, marker=".", label=name)
        ax.set_xscale("log")
        ax.set_title(f"2^{bits} buckets")
        ax.set_xlabel("queries")
        ax.set_ylabel("fraction of buckets occupied")
    axes[0].legend(fontsize="x-small")
    c = np.linspace(0, 0.7, 200)
    axes[3].plot(c, [b4b_sigma(x, 1e-6, 1.0, 0.6) for x in c], label="beta 0.6 (used)")
    axes[3].plot(c, [b4b_sigma(x, 1e-6, 1.0, 0.8) for x in c], label="beta 0.8 (paper)")
    axes[3].set_yscale("log")
    axes[3].set_title("cost sigma (Eq. 1)")
    axes[3].set_xlabel("coverage")
    axes[3].legend(fontsize="x-small")
    fig.tight_layout()
    fig.savefig(path)


# --- 2. users and thieves through real servers ------------------------------------------------


def legitimate_user(url: str, key: str) -> dict[str, Any]:
    """Query the footwear task's 3,000 train and 1,000 test images; probe the answers."""
    oracle = HTTPOracle(url, api_key=key)
    (train_x, train_y), (test_x, test_y) = footwear("train", 3000), footwear("test", 1000)
    start = time.perf_counter()
    answers = [oracle.answer(batch) for batch in torch.split(torch.cat([train_x, test_x]), 250)]
    reps = torch.cat(answers).numpy()
    seconds = time.perf_counter() - start
    acc, _ = probe_accuracy(reps[:3000], train_y, reps[3000:], test_y)
    return {"probe_acc": acc, "queries": len(reps), "seconds": seconds, "pow_s": oracle.work_s}


def steal_through(url: str, keys: list[str], out: Path, queries: int, **cfg: Any) -> dict:
    settings = StealConfig(
        **{
            "data": FMNIST,
            "queries": queries,
            "epochs": 30,
            "batch_size": 64,
            "seed": 0,
            "sybils": len(keys),
            **cfg,
        }
    )
    result = run_steal(settings, url, out, api_keys=keys, force=True)
    copy = load_encoder(out / "encoder.pt")
    return {
        "copy": str(out),
        "SA": linear_probe(copy, "demo").accuracy,
        "queries": result.queries_used,
        "pow_s": result.metrics["pow_work_s"],
        "remap_error": result.metrics.get("remap_error"),
        "seconds": result.timings["total"],
    }


class OODSteal:
    """The out-of-distribution thief's data: written once as an .npz for `run_steal`."""

    @staticmethod
    def data(out: Path, n: int) -> str:
        path = out / "ood.npz"
        if not path.exists():
            x = (out_of_distribution(thief_images(n, seed=1)) * 255).round().to(torch.uint8)
            np.savez(path, x=x.numpy())
        return f"npz:{path}"


# --- 4. load and SIGKILL ----------------------------------------------------------------------


def _post(url: str, key: str, body: bytes) -> int:
    req = urllib.request.Request(
        url + "/represent", data=body, headers={"Authorization": f"Bearer {key}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return -1


def load(
    url: str,
    key: str,
    clients: int = 8,
    requests: int = 200,
    batch: int = 16,
    stop_after: float | None = None,
) -> dict[str, Any]:
    """``clients`` threads each sending ``requests`` batches; latencies of every answer."""
    x = load_images("demo", "test").images[: clients * batch]
    bodies = []
    for i in range(clients):
        buf = io.BytesIO()
        np.save(buf, to_float(x[i * batch : (i + 1) * batch]).numpy())
        bodies.append(buf.getvalue())
    latencies: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        for _ in range(requests):
            t = time.perf_counter()
            status = _post(url, key, bodies[i])
            with lock:
                statuses.append(status)
                if status == 200:
                    latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ok = sum(s == 200 for s in statuses)
    return {
        "clients": clients,
        "requests": clients * requests,
        "batch": batch,
        "answered": ok,
        "errors": len(statuses) - ok,
        "seconds": wall,
        "requests_per_s": ok / wall,
        "images_per_s": ok * batch / wall,
        "p50_ms": 1000 * float(np.percentile(latencies, 50)) if latencies else None,
        "p99_ms": 1000 * float(np.percentile(latencies, 99)) if latencies else None,
    }


def killed_mid_run(victim: str, db: str, out: Path, tag: str) -> dict[str, Any]:
    """Clients running, SIGKILL after 3 s, restart: accounting before + answered == after
    (a batch committed whose answer the kill stopped is counted by the owner, never lost)."""
    key = Store(db).add_user(f"kill-{tag}")
    args = [victim, "--db", db, "--workers", "2", "--defence", B4B, "--lsh-data", FMNIST]
    server = Server(args, out / f"serve-{tag}.log", timeout=180)
    before = _row(db, f"kill-{tag}")
    result: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: result.update(load(server.url, key, requests=100)))
    runner.start()
    time.sleep(3.0)
    server.kill()
    runner.join()
    after = _row(db, f"kill-{tag}")
    server = Server(args, out / f"serve-{tag}.log", timeout=180)
    again = _post(server.url, key, _body())
    server.stop()
    answered = result["answered"] * result["batch"]
    return {
        "answered_queries": answered,
        "before": before["queries"],
        "after": after["queries"],
        "committed_unanswered": after["queries"] - before["queries"] - answered,
        "restart_answers": again == 200,
        "after_restart": _row(db, f"kill-{tag}")["queries"],
    }


def _body() -> bytes:
    buf = io.BytesIO()
    np.save(buf, to_float(load_images("demo", "test").images[:16]).numpy())
    return buf.getvalue()


def _row(db: str, name: str) -> dict[str, Any]:
    return next(u for u in Store(db).users_summary(4096) if u["name"] == name)


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", default="runs/demo")
    parser.add_argument("--out", default="runs/bench-serve")
    parser.add_argument("--queries", type=int, default=4000)
    parser.add_argument("--results", default="bench/results/serve.json")
    args = parser.parse_args()
    demo, out = Path(args.demo), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    victim = str(demo / "victim" / "encoder.pt")
    references = sorted(str(p) for p in demo.glob("independent-*"))
    start = time.perf_counter()
    results: dict[str, Any] = {
        "machine": machine("cpu"),
        "queries": args.queries,
        "settings": {"b4b": B4B, "b4b-gentle": B4B_GENTLE, "transform": TRANSFORM, "pow": POW},
    }

    print("coverage curves", flush=True)
    results["coverage"] = coverage_curves(victim)
    plot_coverage(results["coverage"], Path("docs/b4b-coverage.png"))

    settings = {
        "none": [],
        "b4b": [B4B, TRANSFORM],
        "b4b-gentle": [B4B_GENTLE, TRANSFORM],
        "pow": [POW],
    }
    ood = {"data": OODSteal.data(out, 2 * args.queries)}  # its train part (80 %) covers the budget
    jobs = {  # setting -> (row label, thief data, accounts); "legit" is the legitimate user
        "none": [("legit", None, ["legit"]), ("thief", {}, ["thief"]), ("ood", ood, ["ood"])],
        "b4b": [
            ("legit", None, ["legit"]),
            ("thief", {}, ["thief"]),
            ("ood", ood, ["ood"]),
            ("sybil x2", {}, ["s2-0", "s2-1"]),
            ("sybil x4", {}, ["s4-0", "s4-1", "s4-2", "s4-3"]),
        ],
        "b4b-gentle": [("legit", None, ["legit"]), ("thief", {}, ["thief"])],
        "pow": [("legit", None, ["legit"]), ("thief", {}, ["thief"])],
    }
    rows: list[dict[str, Any]] = []
    (out / "rows").mkdir(exist_ok=True)
    for name, defences in settings.items():
        todo = [j for j in jobs[name] if not (out / "rows" / f"{name}-{j[0]}.json").exists()]
        server = None
        if todo:  # fresh accounts (a key is shown once): a resumed run names them anew
            db = f"sqlite:///{out / f'{name}.db'}"
            store = Store(db)
            run = str(int(time.time()))
            keys = {a: (f"{a}-{run}", store.add_user(f"{a}-{run}")) for j in todo for a in j[2]}
            flags = [
                victim,
                "--db",
                db,
                "--lsh-data",
                FMNIST,
                "--max-batch",
                "512",
                "--buckets",
                "256",
            ]
            for d in defences:
                flags += ["--defence", d]
            server = Server(flags, out / f"serve-{name}.log", timeout=180)
        try:
            for label, data, accounts in jobs[name]:
                path = out / "rows" / f"{name}-{label}.json"
                if path.exists():
                    row = json.loads(path.read_text())
                else:
                    print(f"[{name}] {label}", flush=True)
                    account_keys = [keys[a][1] for a in accounts]
                    if data is None:
                        row = legitimate_user(server.url, account_keys[0])
                    else:
                        copy = out / f"{name}-{label.replace(' ', '')}"
                        row = steal_through(server.url, account_keys, copy, args.queries, **data)
                    summary = {u["name"]: u for u in store.users_summary(256)}
                    row["coverage_256"] = [summary[keys[a][0]]["coverage"] for a in accounts]
                    row["cost"] = [summary[keys[a][0]]["cost"] for a in accounts]
                    atomic_write_text(path, json.dumps(row))
                rows.append({"user": label, "defence": name, **row})
        finally:
            if server is not None:
                server.stop()
    results["table1"] = rows

    print("verify the copies", flush=True)
    for row in rows:
        if "copy" in row:
            res = run_verify(
                [str(demo / "victim")],
                suspect=str(Path(row["copy"]) / "encoder.pt"),
                references=references,
            )
            counted = [d for v in res.victims for d in v.decisions if d.counted]
            row["verdict"] = res.verdict
            row["strongest_p"] = min(d.p_adjusted for d in counted) if counted else None

    print("load", flush=True)
    results["load"] = {}
    pg = Postgres() if Postgres.missing() is None else None
    dbs = {"sqlite": f"sqlite:///{out / 'load.db'}"}
    (out / "load.db").unlink(missing_ok=True)
    if pg is not None:
        dbs["postgresql"] = pg.database()
    try:
        for kind, db in dbs.items():
            key = Store(db).add_user("load")
            args_ = [victim, "--db", db, "--workers", "2", "--defence", B4B, "--lsh-data", FMNIST]
            server = Server(args_, out / f"serve-load-{kind}.log", timeout=180)
            try:
                results["load"][kind] = load(server.url, key)
            finally:
                server.stop()
            results["load"][kind]["counted"] = _row(db, "load")["queries"]
            print(f"[{kind}] kill", flush=True)
            results["load"][kind]["kill"] = killed_mid_run(victim, db, out, kind)
    finally:
        if pg is not None:
            pg.stop()
    results["seconds"] = time.perf_counter() - start
    atomic_write_text(Path(args.results), json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k != "coverage"}, indent=2))


if __name__ == "__main__":
    main()
