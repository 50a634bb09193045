"""Candidate evidence for the weakest copies (issue 15): three statistics invariant to what a
thief does to his outputs for free, measured on the full suite's models before any was built.

The full suite's copies left `inconclusive` are seen in one family only (raw-coordinate distance,
which a rotation of the outputs switches off). Each statistic below reads the private images of
a 1,000-sample challenge; every reference is scored against the other references (leave one
out), every other model against all of them, and each score is shown in sds of the references'
scores (positive: more like the victim):

- ``residual``: the victim's idiosyncratic part (its outputs minus the best cross-fitted linear
  prediction from the references' mean, each reference aligned into the victim's coordinates
  on public images) and the share of it a cross-fitted linear map from the suspect explains.
- ``rare-neighbours``: of the victim's 10 nearest neighbours per image (whitened, cosine), the
  pairs at most a fifth of the references share; the share of them the suspect also has.
- ``relative-cka`` / ``relative-knn``: the suspect's similarity to the victim minus its mean
  similarity to the references (CKA and neighbour overlap, whitened).

Then a pooled per-image test, the kind whose p would shrink with the challenge and not with the
number of references: each reference's aligned cosine distance to the victim per private image
against the other references' mean distance on the same image (one-sided Wilcoxon signed-rank,
"nearer"), and how many independent references it would reject at 0.01.

    python bench/weak_copies.py [--models runs/bench-full/models] [--samples 1000]

Prints one table row per model; docs/verification.md ("Invariant evidence for the weakest
copies") reads it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import stats as scipy_stats

from sleuth.models import load_encoder, load_owner_key
from sleuth.verify import ChallengeSettings, build_challenge, stats

K = 10
RARE = 0.2  # a victim neighbour pair is rare when at most this share of references has it
REFERENCES = (
    [f"embed/ref-{i}" for i in range(1, 16)]
    + ["embed/resnet18-ref-1", "embed/resnet18-ref-2"]
    + [f"embed/owner-{i}" for i in range(1, 4)]
)
OTHERS = ("embed/untrained-smallresnet", "embed/untrained-resnet18")
VICTIM = "embed/victim"


def neighbours(x: np.ndarray) -> np.ndarray:
    m = stats.whitened(x)
    m = m / np.linalg.norm(m, axis=1, keepdims=True)
    sim = m @ m.T
    np.fill_diagonal(sim, -np.inf)
    return np.argpartition(-sim, K - 1, axis=1)[:, :K]


def shared(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per (image, neighbour of a): whether b has that neighbour too."""
    return (a[:, :, None] == b[:, None, :]).any(axis=2)


class Statistics:
    def __init__(self, private: dict[str, np.ndarray], public: dict[str, np.ndarray]) -> None:
        self.private, self.public = private, public
        self.nn = {m: neighbours(x) for m, x in private.items()}
        self.white = {m: stats.whitened(x) for m, x in private.items()}

    def residual(self, m: str, pool: list[str]) -> float:
        v = self.private[VICTIM]
        aligned = [
            stats.fit_alignment(self.public[r], self.public[VICTIM])(self.private[r]) for r in pool
        ]
        e = v - stats.cross_fitted(np.mean(aligned, axis=0), v, stats.fit_linear_map)
        fit = stats.cross_fitted(self.private[m], e, stats.fit_linear_map)
        return float(1 - ((e - fit) ** 2).sum() / ((e - e.mean(axis=0)) ** 2).sum())

    def rare_neighbours(self, m: str, pool: list[str]) -> float:
        v = self.nn[VICTIM]
        common = np.mean([shared(v, self.nn[r]) for r in pool], axis=0)
        return float(shared(v, self.nn[m])[common <= RARE].mean())

    def _relative(self, sim: Callable[[str, str], float], m: str, pool: list[str]) -> float:
        return sim(m, VICTIM) - float(np.mean([sim(m, r) for r in pool]))

    def relative_cka(self, m: str, pool: list[str]) -> float:
        return self._relative(lambda a, b: stats.linear_cka(self.white[a], self.white[b]), m, pool)

    def relative_knn(self, m: str, pool: list[str]) -> float:
        return self._relative(lambda a, b: float(shared(self.nn[a], self.nn[b]).mean()), m, pool)


def aligned_cosine(private: dict, public: dict, m: str) -> np.ndarray:
    """Per private image: cosine distance to the victim after the similarity transform fitted on
    the public images (both centred on the victim's public mean)."""
    centre = public[VICTIM].mean(axis=0)
    x = stats.fit_alignment(public[m], public[VICTIM])(private[m]) - centre
    v = private[VICTIM] - centre
    return 1 - (x * v).sum(axis=1) / np.linalg.norm(x, axis=1) / np.linalg.norm(v, axis=1)


def paired_images(private: dict, public: dict) -> list[tuple[str, float, float]]:
    """(reference, mean per-image difference, Wilcoxon p) for each reference against the rest."""
    d = {r: aligned_cosine(private, public, r) for r in REFERENCES}
    rows = []
    for r in REFERENCES:
        rest = np.mean([d[q] for q in REFERENCES if q != r], axis=0)
        p = scipy_stats.wilcoxon(d[r], rest, alternative="less").pvalue
        rows.append((r, float((d[r] - rest).mean()), float(p)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="runs/bench-full/models")
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()
    root = Path(args.models)
    key = load_owner_key(root / VICTIM / "owner-key.pt")
    ch = build_challenge(key, ChallengeSettings(samples=args.samples))
    names = [VICTIM, *REFERENCES, *OTHERS]
    names += sorted(
        f"{p.parent.name}/{p.name}"
        for kind in ("steal", "evade", "pretrain")
        for p in (root / kind).iterdir()
        if (p / "encoder.pt").exists()
    )
    reps = {n: load_encoder(root / n / "encoder.pt").represent(ch.images).numpy() for n in names}
    private = {n: ch.role_reps(r, "private").astype(np.float64) for n, r in reps.items()}
    public = {n: ch.role_reps(r, "public").astype(np.float64) for n, r in reps.items()}
    s = Statistics(private, public)
    measures = {
        "residual": s.residual,
        "rare-neighbours": s.rare_neighbours,
        "relative-cka": s.relative_cka,
        "relative-knn": s.relative_knn,
    }
    z: dict[str, dict[str, float]] = {n: {} for n in names[1:]}
    for label, fn in measures.items():
        own = {r: fn(r, [q for q in REFERENCES if q != r]) for r in REFERENCES}
        for r in REFERENCES:
            rest = [own[q] for q in REFERENCES if q != r]
            z[r][label] = (own[r] - np.mean(rest)) / np.std(rest, ddof=1)
        scores = np.array(list(own.values()))
        for n in names[1 + len(REFERENCES) :]:
            z[n][label] = (fn(n, REFERENCES) - scores.mean()) / scores.std(ddof=1)
    print("| model | " + " | ".join(measures) + " |")
    print("|---|" + "---:|" * len(measures))
    for n, row in z.items():
        print(f"| {n} | " + " | ".join(f"{row[m]:+.1f}" for m in measures) + " |")
    rows = paired_images(private, public)
    print("\n| reference | mean per-image difference | Wilcoxon p (nearer) |\n|---|---:|---:|")
    for r, diff, p in rows:
        print(f"| {r} | {diff:+.4f} | {p:.1e} |")
    rejected = sum(p < 0.01 for _, _, p in rows)
    print(f"\nreferences rejected at 0.01 by the pooled test: {rejected} of {len(rows)}")


if __name__ == "__main__":
    main()
