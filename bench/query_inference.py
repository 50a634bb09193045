"""Is a copy closer to its victim on the images its thief sent? (issue 15, measured before built)

An API's owner keeps what each account sent. A copy is trained to answer like the victim on
exactly those images, so it may sit nearer the victim there than on other images of the same
kind, even when nothing else tells it from an independent encoder (a weak copy whose thief
rotated his outputs). This measures, on the demo recipe, per model and per copy's query set Q:
the gap between its distance to the victim on public images the thief never sent (C) and on Q,
each read after whitening and an alignment cross-fitted within the set (invariant to a rotation,
a permutation, a scale and a shift of the outputs), three ways (aligned cosine, linear fit,
nearest-neighbour overlap). Each model's gap is placed among the zoo's (in the zoo's sds; each
zoo member against the other members), beside two nulls the test would have to survive: encoders
trained by the victim's recipe on Q itself (a customer who trains his own encoder on the images
he also sent the API), and the demo's independent and untrained encoders.

Needs the demo, its zoo and bench/verdict.py's copies (runs/demo, runs/zoo).

    python bench/query_inference.py [--demo runs/demo] [--zoo runs/zoo] [--n 500]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from basis import leave_one_out_z  # bench/basis.py, beside this script

from sleuth.bench.runner import machine
from sleuth.data import load_images
from sleuth.embed.config import EmbedConfig
from sleuth.embed.run import run_embed
from sleuth.fileio import atomic_write_text
from sleuth.models import load_encoder, load_owner_key
from sleuth.models.zoo import zoo_members
from sleuth.steal import StealConfig
from sleuth.steal.run import attacker_images
from sleuth.verify import stats

KNN = 10


def digests(x: torch.Tensor) -> list[str]:
    return [hashlib.sha256(row.numpy().tobytes()).hexdigest() for row in x]


def gaps(victim: dict[str, np.ndarray], model: dict[str, np.ndarray]) -> dict[str, float]:
    """Per statistic, how much nearer the victim the model is on Q than on C (positive: nearer
    on the queried images)."""
    per_set = {}
    for name in ("Q", "C"):
        v, m = stats.whitened(victim[name]), stats.whitened(model[name])
        aligned = stats.cross_fitted(m, v, stats.fit_alignment)
        cosine = stats.pairwise_distances(v, aligned)["cosine"]
        sv = (victim[name] - victim[name].mean(0)) / victim[name].std()
        sm = (model[name] - model[name].mean(0)) / model[name].std()
        linear = ((stats.cross_fitted(sm, sv, stats.fit_linear_map) - sv) ** 2).sum(1)
        knn = stats.knn_overlap(v, m, k=KNN)
        per_set[name] = {"cosine": cosine.mean(), "linear": linear.mean(), "knn": knn.mean()}
    q, c = per_set["Q"], per_set["C"]
    return {
        "cosine": float(c["cosine"] - q["cosine"]),
        "linear": float(c["linear"] - q["linear"]),
        "knn": float(q["knn"] - c["knn"]),
    }


def short(name: str) -> str:
    """A model's name for the printed table."""
    return "same/" + name.rsplit("/", 1)[1] if name.startswith("same-data-") else name


def same_data_nulls(recipe: EmbedConfig, queried: torch.Tensor, out: Path, seeds) -> list[Path]:
    """Encoders by the victim's recipe trained on the queried images themselves."""
    out.mkdir(parents=True, exist_ok=True)
    data = out / "queried.npz"
    if not data.exists():
        np.savez(data, x=queried.numpy(), x_test=queried[:0].numpy())
    folders = []
    for seed in seeds:
        folder = out / f"seed{seed}"
        if not (folder / "encoder.pt").exists():
            cfg = replace(
                recipe,
                data=f"npz:{data}",
                watermark=False,
                seed=seed,
                public_fraction=0.02,
                # as many steps as the victim's training
                epochs=max(recipe.epochs, round(recipe.epochs * 5000 / len(queried))),
            )
            run_embed(cfg, folder, device="cpu")
        folders.append(folder)
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demo", default="runs/demo")
    parser.add_argument("--zoo", default="runs/zoo")
    parser.add_argument("--n", type=int, default=500, help="images per set (Q and C)")
    parser.add_argument("--results", default="bench/results/query-inference.json")
    args = parser.parse_args()
    start = time.perf_counter()
    demo = Path(args.demo)
    victim_dir = demo / "victim"
    key = load_owner_key(victim_dir / "owner-key.pt")
    recipe = EmbedConfig.from_dict(
        json.loads((victim_dir / "manifest.json").read_text())["details"]["config"]
    )
    split = key.split
    public = load_images(split.data_spec, split.part).images[torch.as_tensor(split.public)]
    public_digests = digests(public)
    order = np.random.default_rng(7).permutation(len(public))
    zoo = [Path(p) for p in zoo_members(args.zoo)]
    others = sorted(demo.glob("independent-*")) + sorted(demo.glob("untrained-*"))
    copies = sorted(demo.glob("stolen-*"))
    encoders = {
        p.name: load_encoder(p / "encoder.pt") for p in [victim_dir, *zoo, *others, *copies]
    }
    rows = []
    for copy in copies:
        cfg = StealConfig(**json.loads((copy / "manifest.json").read_text())["details"]["config"])
        queried = attacker_images(cfg, str(victim_dir))[1].images
        sent = set(digests(queried))
        queried = queried[: args.n]
        control = public[[i for i in order if public_digests[i] not in sent][: args.n]]
        nulls = []
        if cfg.public_split and cfg.queries in (500, 2000) and cfg.loss == "mse":
            nulls = same_data_nulls(recipe, queried, demo / f"same-data-{copy.name}", (1, 2))
            encoders |= {
                f"same-data-{copy.name}/{p.name}": load_encoder(p / "encoder.pt") for p in nulls
            }
        reps = {
            name: {
                "Q": e.represent(queried).double().numpy(),
                "C": e.represent(control).double().numpy(),
            }
            for name, e in encoders.items()
            if name == copy.name
            or not name.startswith("stolen-")
            and (not name.startswith("same-data-") or name.startswith(f"same-data-{copy.name}/"))
        }
        g = {name: gaps(reps["victim"], r) for name, r in reps.items() if name != "victim"}
        zoo_names = [p.name for p in zoo]
        for stat in ("cosine", "linear", "knn"):
            ref = np.array([g[n][stat] for n in zoo_names])
            loo = leave_one_out_z(ref)
            z = {n: (g[n][stat] - ref.mean()) / ref.std(ddof=1) for n in g if n not in zoo_names}
            row = {
                "copy": copy.name,
                "queried": len(sent),
                "statistic": stat,
                "copy_z": z[copy.name],
                "zoo_loo_z_max": max(loo),
                "zoo_loo_z": loo,
                "others_z": {n: float(v) for n, v in z.items() if n != copy.name},
            }
            rows.append(row)
            beside = " ".join(f"{short(n)}={v:.1f}" for n, v in row["others_z"].items())
            print(
                f"{copy.name:28s} {stat:7s} copy {row['copy_z']:7.1f}  "
                f"zoo max {row['zoo_loo_z_max']:5.1f}  {beside}",
                flush=True,
            )
    result = {
        "command": "python bench/query_inference.py",
        "machine": machine(),
        "n": args.n,
        "rows": rows,
        "seconds": round(time.perf_counter() - start, 1),
    }
    atomic_write_text(Path(args.results), json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
