"""The verification queries: which images every model (suspect, victim, references) is asked about.

One challenge serves white-box and black-box suspects alike. It holds the owner's private
(trained-on) and public (held-out) images, one privately rotated view per watermark class of some
private images, two augmented views of private and public images for dataset inference on the
projection head, noisy copies of some private images for noise sensitivity, and photometrically
shifted copies of some private images (``SHIFTS``), which only a clearance reads. Its images are
shuffled, so a black-box suspect answering them cannot tell which is which; the roles stay with the
investigator (``ChallengeKey``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.nn import functional as F

from sleuth.data import fingerprint, load_images, to_float
from sleuth.data.augment import SimCLRAugment
from sleuth.data.hdf5 import read_dataset
from sleuth.data.watermark import RotationWatermark
from sleuth.errors import SleuthError
from sleuth.fileio import atomic_write, atomic_write_text
from sleuth.models import OwnerKey
from sleuth.verify.stats import MIN_SAMPLES

CHALLENGE_FORMAT = "sleuth-challenge"

# Shifts of private images off the victim's distribution, one role each. A thief who queried with
# unlike images (inverted ones, say) made a copy that is a copy there and an ordinary encoder on
# the victim's own images (docs/verification.md); these parts can only withhold a clearance. The
# set is the common corruptions (a negative, contrast, blur, noise), not the bench thief's alone.
SHIFTS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "inverted": lambda x, gen: 1 - x,
    "contrast": lambda x, gen: ((x - 0.5) * 2 + 0.5).clamp(0, 1),
    "blur": lambda x, gen: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False),
    "noise": lambda x, gen: (x + 0.15 * torch.randn(x.shape, generator=gen)).clamp(0, 1),
}
SHIFT_ROLES: dict[str, str] = {name: f"shifted:{name}" for name in SHIFTS}


@dataclass(frozen=True)
class ChallengeSettings:
    """How many images of each kind to ask about."""

    samples: int = 1000  # private and public images each
    wm_samples: int | None = None  # private images rotated per class (default: samples)
    di_samples: int | None = None  # private and public images with two views (default: samples/2)
    noise_points: int = 100
    noise_draws: int = 10
    noise_radius: float = 0.05  # per-pixel uniform noise in [-r, r] on [0, 1] images
    seed: int = 0
    # private images per shift in SHIFTS (default: a fifth of samples, at least 10; 0: none)
    shift_samples: int | None = None

    def __post_init__(self) -> None:
        if self.samples < 10:
            raise SleuthError(f"--samples must be at least 10, got {self.samples}")
        if not 0 < self.noise_radius <= 1 or self.noise_draws < 2 or self.noise_points < 2:
            raise SleuthError("noise settings need radius in (0, 1], >= 2 points and draws")
        if self.shift_samples is not None and 0 < self.shift_samples < MIN_SAMPLES:
            raise SleuthError(
                f"--shift-samples must be 0 or at least {MIN_SAMPLES}, got {self.shift_samples}"
            )

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ChallengeSettings:
        """Settings as a challenge key or a report recorded them; one recorded before shifted
        images existed had none, and rebuilding it must give the same images."""
        return cls(**{"shift_samples": 0, **record})

    def shifted(self, n: int) -> int:
        """Private images per shift in a challenge of ``n`` private images."""
        if self.shift_samples is not None:
            return min(self.shift_samples, n)
        return min(max(n // 5, MIN_SAMPLES), n)


@dataclass(frozen=True)
class Challenge:
    """Shuffled images plus, for the investigator only, the role of every image."""

    images: torch.Tensor  # float32 [0, 1] (T, C, H, W)
    roles: dict[str, np.ndarray]  # role -> indices into images, in role order
    wm_labels: np.ndarray  # watermark class of each "rotated" image (role order)
    settings: ChallengeSettings
    data_fingerprint: str
    sources: dict[str, np.ndarray]  # dataset indices of the private and public images

    def role_reps(self, reps: np.ndarray, role: str) -> np.ndarray:
        return reps[self.roles[role]]

    @property
    def queries(self) -> int:
        """Distinct images this challenge asks about (a prefix asks about fewer than it holds)."""
        return asked(self)

    def prefix(self, samples: int, *, lean: bool = False) -> Challenge:
        """The same challenge cut to its first ``samples`` private and public images, with the
        rotated views, dataset-inference views and noise points that belong to them: prefixes are
        nested, so a larger one re-asks every image of a smaller one. Noise points shrink in
        proportion and are dropped below the noise test's minimum (they would only cost queries).
        ``lean`` keeps the private images only (one query a sample: the distance and similarity
        tests, whose fitted maps are cross-fitted on the private images themselves), which is
        where a small query budget buys most evidence.
        """
        n_full = len(self.roles["private"])
        n = min(samples, n_full)
        if n < 1:
            raise SleuthError(f"a challenge prefix needs at least one sample, got {samples}")
        none = np.zeros(0, np.int64)
        roles = {
            "private": self.roles["private"][:n],
            "public": none if lean else self.roles["public"][:n],
        }
        labels = self.wm_labels[:0]
        if "rotated" in self.roles and not lean:
            classes = np.unique(self.wm_labels)
            per = len(self.wm_labels) // max(len(classes), 1)
            keep = np.concatenate([np.arange(c * per, c * per + min(n, per)) for c in classes])
            roles["rotated"], labels = self.roles["rotated"][keep], self.wm_labels[keep]
        elif "rotated" in self.roles:
            roles["rotated"] = none
        n_di = len(self.roles["di_private"])
        m = 0 if lean else min(n_di, max(n // 2, 5))
        keep = np.concatenate([np.arange(m), np.arange(n_di, n_di + m)]).astype(np.int64)
        for view in ("di_view1", "di_view2"):
            roles[view] = self.roles[view][keep]
        roles["di_private"], roles["di_public"] = np.arange(m), np.arange(m, 2 * m)
        points = len(self.roles["noisy_clean"])
        draws = len(self.roles["noisy"]) // max(points, 1)
        q = 0 if lean else round(points * n / n_full)
        q = q if q >= MIN_SAMPLES else 0
        roles["noisy"], roles["noisy_clean"] = (
            self.roles["noisy"][: q * draws],
            roles["private"][:q],
        )
        for role in SHIFT_ROLES.values():
            if role in self.roles:  # shifted copies of the first private images, cut likewise
                m = 0 if lean else round(len(self.roles[role]) * n / n_full)
                roles[role] = self.roles[role][: m if m >= MIN_SAMPLES else 0]
        sources = {k: v[: len(roles[k])] for k, v in self.sources.items()}
        return replace(self, roles=roles, wm_labels=labels, sources=sources)

    def key_dict(self) -> dict[str, Any]:
        return {
            "format": CHALLENGE_FORMAT,
            "roles": {k: v.tolist() for k, v in self.roles.items()},
            "wm_labels": self.wm_labels.tolist(),
            "settings": self.settings.__dict__,
            "data_fingerprint": self.data_fingerprint,
            "sources": {k: v.tolist() for k, v in self.sources.items()},
        }


POSITIONS = ("di_private", "di_public")  # roles that index the di views, not images


def indices(*challenges: Challenge) -> np.ndarray:
    """The distinct images (indices into ``images``) one or more rounds of a challenge ask."""
    used = [v for c in challenges for k, v in c.roles.items() if k not in POSITIONS]
    return np.unique(np.concatenate(used)) if used else np.zeros(0, np.int64)


def asked(*challenges: Challenge) -> int:
    """Distinct images asked over one or more rounds (prefixes) of one challenge."""
    return len(indices(*challenges))


def build_challenge(key: OwnerKey, settings: ChallengeSettings) -> Challenge:
    """Draw the challenge from the owner's split (seeded): same key and settings, same images."""
    split = key.split
    data = load_images(split.data_spec, split.part)
    if fingerprint(data) != split.fingerprint:
        raise SleuthError(
            f"the data at {split.data_spec} is not what the victim was trained on "
            "(fingerprint mismatch)"
        )
    rng = np.random.default_rng(settings.seed)
    private = rng.permutation(np.asarray(split.private))[: settings.samples]
    public = rng.permutation(np.asarray(split.public))[: settings.samples]
    n = min(len(private), len(public))
    private, public = private[:n], public[:n]
    gen = torch.Generator().manual_seed(settings.seed)
    x_priv, x_pub = to_float(data.images[private]), to_float(data.images[public])
    parts: dict[str, torch.Tensor] = {"private": x_priv, "public": x_pub}
    wm_labels = np.zeros(0, np.int64)
    if key.watermark is not None:
        wm = RotationWatermark.from_list(key.watermark["intervals"])
        views, labels = wm.views(x_priv[: settings.wm_samples or n], gen)
        parts["rotated"], wm_labels = views, labels.numpy()
    n_di = settings.di_samples or max(n // 2, 5)
    di = torch.cat([x_priv[:n_di], x_pub[:n_di]])
    augment = SimCLRAugment()
    parts["di_view1"], parts["di_view2"] = augment(di, gen), augment(di, gen)
    points = x_priv[: settings.noise_points]
    r = settings.noise_radius
    noise = (
        torch.rand((len(points), settings.noise_draws, *points.shape[1:]), generator=gen) * 2 - 1
    ) * r
    parts["noisy"] = (points[:, None] + noise).clamp(0, 1).flatten(0, 1)
    m = settings.shifted(n)
    if m:
        parts |= {SHIFT_ROLES[name]: shift(x_priv[:m], gen) for name, shift in SHIFTS.items()}
    sizes = {name: len(t) for name, t in parts.items()}
    order = torch.randperm(sum(sizes.values()), generator=gen)
    stacked = torch.cat(list(parts.values()))
    images = torch.empty_like(stacked)
    images[order] = stacked
    roles, start = {}, 0
    for name, size in sizes.items():
        roles[name] = order[start : start + size].numpy()
        start += size
    roles["di_private"] = np.arange(n_di)  # positions within the di views, not images
    roles["di_public"] = np.arange(n_di, 2 * n_di)
    roles["noisy_clean"] = roles["private"][: len(points)]
    sources = {"private": private, "public": public}
    return Challenge(images, roles, wm_labels, settings, split.fingerprint, sources)


def key_path(path: str | Path) -> Path:
    """Where the investigator's key of a challenge (or of answers to one) goes: FILE.key.json
    beside FILE.h5."""
    path = Path(path)
    return path.with_name(path.stem + ".key.json")


def write_challenge_key(challenge: Challenge, path: str | Path) -> Path:
    """The investigator's key (roles, settings, sources) as ``read_challenge_key`` reads it."""
    return atomic_write_text(path, json.dumps(challenge.key_dict()) + "\n")


def export_challenge(challenge: Challenge, out: str | Path) -> tuple[Path, Path]:
    """Write the images to send (``out``) and the investigator's private key beside it."""
    out = Path(out)

    def dump(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = CHALLENGE_FORMAT
            f.attrs["instructions"] = (
                "Return an HDF5 file with dataset 'answers' (N, D) float32: the representation of "
                "every image in 'x', in the same order."
            )
            f.create_dataset("x", data=challenge.images.numpy(), compression="gzip")

    atomic_write(out, dump)
    return out, write_challenge_key(challenge, key_path(out))


def read_challenge_key(path: str | Path) -> dict[str, Any]:
    """The investigator's key of an exported challenge (settings and roles)."""
    path = Path(path)
    if not path.is_file():
        raise SleuthError(f"challenge key not found: {path}")
    try:
        key = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # bad JSON, nesting or a number too long
        raise SleuthError(f"{path} is not a sleuth challenge key ({type(exc).__name__})") from None
    problem = _key_problem(key)
    if problem:
        raise SleuthError(f"{path} is not a sleuth challenge key: {problem}")
    return key


def _index_lists(value: Any) -> bool:
    """A JSON object of lists of non-negative integers (a key's roles and sources)."""
    return isinstance(value, dict) and all(
        isinstance(v, list)
        and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v)
        for v in value.values()
    )


def _key_problem(key: Any) -> str | None:
    """What is wrong with a parsed challenge key, or None: every field is checked for its type
    before anything reads it (a key comes back from wherever the challenge went)."""
    if not isinstance(key, dict) or key.get("format") != CHALLENGE_FORMAT:
        return f"format is not {CHALLENGE_FORMAT!r}"
    if not isinstance(key.get("settings"), dict):
        return "settings is not an object"
    try:
        ChallengeSettings.from_record(key["settings"])
    except (TypeError, ValueError, SleuthError) as exc:
        return f"bad settings ({exc})"
    for field in ("roles", "sources"):
        if not _index_lists(key.get(field)):
            return f"{field} is not an object of index lists"
    labels = key.get("wm_labels")
    if not isinstance(labels, list) or not all(isinstance(i, int) for i in labels):
        return "wm_labels is not a list of integers"
    if not isinstance(key.get("data_fingerprint"), str):
        return "data_fingerprint is not a string"
    return None


def check_challenge(challenge: Challenge, key: dict[str, Any], path: str | Path) -> None:
    """Refuse answers to another challenge: the rebuilt roles must equal the exported ones."""
    recorded = {**key["roles"], **{f"source:{k}": v for k, v in key["sources"].items()}}
    rebuilt = {**challenge.roles, **{f"source:{k}": v for k, v in challenge.sources.items()}}
    same = challenge.data_fingerprint == key["data_fingerprint"] and all(
        k in rebuilt and np.array_equal(rebuilt[k], np.asarray(v)) for k, v in recorded.items()
    )
    if not same:
        raise SleuthError(
            f"{path} was exported for another victim or data: answers would not match"
        )


def write_answers(path: str | Path, answers: np.ndarray) -> Path:
    """A suspect's answers to a challenge, in challenge order, as ``read_answers`` reads them;
    rows of NaN are images it was never asked (a sequential verification that stopped early)."""

    def dump(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = "sleuth-answers"
            f.create_dataset("answers", data=np.asarray(answers, np.float32), compression="gzip")

    return atomic_write(path, dump)


def read_answers(path: str | Path, expected: int) -> np.ndarray:
    """A black-box suspect's answers to a challenge, in challenge order. A row entirely NaN is
    an image never asked (``write_answers``); a verification that needs it refuses it."""
    path = Path(path)
    if not path.is_file():
        raise SleuthError(f"answers file not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            with np.errstate(over="ignore"):  # values beyond float32 become inf, refused below
                answers = np.asarray(read_dataset(f, "answers", str(path)), np.float32)
    except (OSError, KeyError) as exc:
        raise SleuthError(f"cannot read answers from {path}: {exc}") from None
    if answers.ndim != 2 or len(answers) != expected:
        raise SleuthError(f"{path}: expected answers of shape ({expected}, D), got {answers.shape}")
    unasked = np.isnan(answers).all(axis=1)
    if not np.isfinite(answers[~unasked]).all():
        raise SleuthError(f"{path}: answers contain NaN or infinite values")
    return answers
