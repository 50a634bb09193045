"""Verification benchmark (issue 4): stolen suspects, careful thieves, references as suspects.

Needs the foundation runs (victim, references) and the steal benchmark's 2,000-query copies.
Resumable: stolen/thief copies already on disk are reused. Writes bench/results/verify.json.

    python bench/verify.py [--samples 1000] [--fewest 25,50,100,200,400]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import thief  # bench/thief.py, beside this script
import torch

from sleuth.data import load_images
from sleuth.steal import StealConfig, run_steal
from sleuth.verify import ChallengeSettings, run_verify

FOUNDATION = Path("runs/bench-foundation")
VICTIM = FOUNDATION / "victim-half"
REFERENCES = [FOUNDATION / f"ref-seed{s}" for s in (1, 2, 3, 4)] + [FOUNDATION / "ref-resnet18"]
LOSSES = ["mse", "infonce", "softnn", "stolenencoder"]


def steal_cfg(loss: str, queries: int, **kw) -> StealConfig:
    method = "stolenencoder" if loss == "stolenencoder" else "direct"
    return StealConfig(
        method=method,
        loss="mse" if method != "direct" else loss,
        queries=queries,
        **{"data": "demo", "public_split": True, **kw},
    )


def ensure(folder: Path, make) -> str:
    if not (folder / "encoder.pt").exists():
        start = time.perf_counter()
        make(folder)
        print(f"made {folder}: {time.perf_counter() - start:.0f} s", flush=True)
    return str(folder / "encoder.pt")


def suspects(out: Path) -> dict[str, tuple[str, str]]:
    """name -> (encoder path, how it was made)."""
    made: dict[str, tuple[str, str]] = {}
    for loss in LOSSES:
        made[f"{loss}-2000"] = (
            str(Path("runs/bench-steal") / f"loss-{loss}" / "encoder.pt"),
            f"{loss}, 2,000 queries",
        )
        made[f"{loss}-500"] = (
            ensure(
                out / f"{loss}-500",
                lambda f, loss=loss: run_steal(
                    steal_cfg(loss, 500), str(VICTIM), f, force=True, device="cpu"
                ),
            ),
            f"{loss}, 500 queries",
        )
    mse = made["mse-2000"][0]
    made["mse-pruned"] = (
        ensure(out / "mse-pruned", lambda f: thief.prune(mse, str(f / "encoder.pt"), 0.5)),
        "mse copy, 50 % of weights pruned",
    )
    made["mse-finetuned"] = (
        ensure(
            out / "mse-finetuned",
            lambda f: thief.finetune(mse, str(f / "encoder.pt"), "demo", 5, 1e-4, 0),
        ),
        "mse copy, 5 epochs of SimCLR fine-tuning on other data",
    )
    made["se-rotation-invariant"] = (
        ensure(
            out / "se-rotinv",
            lambda f: run_steal(
                steal_cfg("stolenencoder", 2000, rotate=True),
                str(VICTIM),
                f,
                force=True,
                device="cpu",
            ),
        ),
        "stolenencoder trained invariant to rotations",
    )
    inverted = out / "inverted.npz"
    if not inverted.exists():
        train = load_images("fmnist:../shared/data/fashion-mnist", "train")
        out.mkdir(parents=True, exist_ok=True)
        np.savez(inverted, x=255 - train.images[:5000, 0].numpy())
    made["mse-other-data"] = (
        ensure(
            out / "mse-other-data",
            lambda f: run_steal(
                StealConfig(queries=2000, data=f"npz:{inverted}"),
                str(VICTIM),
                f,
                force=True,
                device="cpu",
            ),
        ),
        "mse, 2,000 queries of inverted Fashion-MNIST (unlike the victim's data)",
    )
    return made


def summary(res) -> dict:
    v = res.victims[0]
    return {
        "verdict": v.verdict,
        "reason": v.reason,
        "queries": v.queries,
        "seconds": res.seconds,
        "tests": [d.to_dict() for d in v.decisions],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench-verify"))
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--fewest", default="25,50,100,200,400")
    args = ap.parse_args()
    refs = [str(r) for r in REFERENCES]
    settings = ChallengeSettings(samples=args.samples)
    results: dict = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}",
        "samples": args.samples,
        "references": refs,
        "suspects": {},
        "references_as_suspects": {},
    }
    path = Path("bench/results/verify.json")

    def save() -> None:
        path.write_text(json.dumps(results, indent=2) + "\n")

    results["victim_self"] = summary(
        run_verify([str(VICTIM)], suspect=str(VICTIM), references=refs, settings=settings)
    )
    save()
    for j, ref in enumerate(refs):
        others = refs[:j] + refs[j + 1 :]
        results["references_as_suspects"][Path(ref).name] = summary(
            run_verify([str(VICTIM)], suspect=ref, references=others, settings=settings)
        )
        save()
    for name, (enc, how) in suspects(args.out).items():
        row = summary(run_verify([str(VICTIM)], suspect=enc, references=refs, settings=settings))
        row["how"] = how
        row["fewest_samples_stolen"] = None
        if name.split("-")[-1] in ("500", "2000"):
            for n in [int(s) for s in args.fewest.split(",")]:
                r = run_verify(
                    [str(VICTIM)],
                    suspect=enc,
                    references=refs,
                    settings=ChallengeSettings(samples=n),
                )
                if r.victims[0].verdict == "stolen":
                    row["fewest_samples_stolen"] = {"samples": n, "queries": r.victims[0].queries}
                    break
        results["suspects"][name] = row
        save()
        print(name, row["verdict"], flush=True)


if __name__ == "__main__":
    main()
