"""Victim oracles: whatever returns representations for a batch of images, behind a strict meter.

An ``Oracle`` answers float [0, 1] images (N, C, H, W) with (N, D) float32 representations. Three
kinds: a local encoder file (with victim-side defences), an HTTP endpoint, and precomputed answers
in HDF5. ``MeteredOracle`` wraps any of them with the query budget and the answer cache: every
image sent is one query, augmented views included, and a query that would exceed the budget is
refused before anything is sent.

HTTP protocol (what ``sleuth serve`` implements): ``GET {url}/info`` returns JSON with at least
``rep_dim``; ``POST {url}/represent`` with an ``.npy`` body of float32 (N, C, H, W) images in
[0, 1] returns an ``.npy`` float32 (N, D). ``SLEUTH_API_KEY`` in the environment is sent as a
bearer token.
"""

from __future__ import annotations

import io
import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from sleuth.data import to_float
from sleuth.data.answers import AnswerStore, query_keys
from sleuth.errors import SleuthError
from sleuth.fileio import sha256_file
from sleuth.models import Encoder, load_encoder, load_owner_key
from sleuth.steal.defences import Defence, apply_defences


class Oracle(Protocol):
    """Returns the victim's answers; knows nothing of budgets."""

    rep_dim: int
    digest: str  # identifies the victim (file hash or URL) in manifests and answer files

    def answer(self, images: torch.Tensor) -> torch.Tensor: ...


@dataclass
class LocalOracle:
    """A victim encoder on this machine, optionally answering with its projection head's output
    (the "access head" setting) and perturbing answers with victim-side defences."""

    encoder: Encoder
    digest: str
    defences: Sequence[Defence] = ()
    head: nn.Module | None = None
    seed: int = 0
    batch_size: int = 512
    gen: torch.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.gen = torch.Generator().manual_seed(self.seed)
        self.rep_dim = self.encoder.rep_dim
        if self.head is not None:
            self.head.eval()
            with torch.no_grad():
                self.rep_dim = int(self.head(torch.zeros(1, self.encoder.rep_dim)).shape[1])

    @torch.no_grad()
    def answer(self, images: torch.Tensor) -> torch.Tensor:
        x = to_float(images)
        reps = self.encoder.represent(x, self.batch_size)
        if self.head is not None:
            reps = self.head(reps)
        return apply_defences(self.defences, reps, x, self.gen)


@dataclass
class HTTPOracle:
    """A victim behind an HTTP API (see the module docstring for the protocol)."""

    url: str
    timeout: float = 60.0

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        self.digest = self.url
        info = json.loads(self._request("/info", None).decode())
        self.rep_dim = int(info["rep_dim"])

    def _request(self, path: str, body: bytes | None) -> bytes:
        headers = {"Content-Type": "application/octet-stream"}
        if key := os.environ.get("SLEUTH_API_KEY"):
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(self.url + path, data=body, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            raise SleuthError(
                f"victim API {self.url}{path} answered {exc.code} {exc.reason}"
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise SleuthError(f"cannot reach victim API {self.url}{path}: {exc}") from None

    def answer(self, images: torch.Tensor) -> torch.Tensor:
        buf = io.BytesIO()
        np.save(buf, to_float(images).cpu().numpy().astype(np.float32), allow_pickle=False)
        raw = self._request("/represent", buf.getvalue())
        try:
            reps = np.load(io.BytesIO(raw), allow_pickle=False)
        except ValueError as exc:
            raise SleuthError(f"victim API {self.url} sent a malformed answer: {exc}") from None
        if reps.shape != (len(images), self.rep_dim):
            raise SleuthError(
                f"victim API {self.url} answered shape {reps.shape}, "
                f"expected ({len(images)}, {self.rep_dim})"
            )
        return torch.from_numpy(reps.astype(np.float32))


@dataclass
class PrecomputedOracle:
    """Answers looked up in an answers file; a query it does not hold is an error, not a guess."""

    store: AnswerStore
    digest: str

    def __post_init__(self) -> None:
        if not self.store.rep_dim:
            raise SleuthError("the answers file holds no answers")
        self.rep_dim = int(self.store.rep_dim)

    def answer(self, images: torch.Tensor) -> torch.Tensor:
        keys = query_keys(images)
        rows = [self.store.get(k) for k in keys]
        missing = sum(r is None for r in rows)
        if missing:
            raise SleuthError(
                f"{missing} of {len(keys)} queries are not in the precomputed answers "
                "(they only cover the exact images they were computed for: no augmented views)"
            )
        return torch.from_numpy(np.stack(rows))


class BudgetExceeded(SleuthError):
    """A query would take the attack past its budget."""


@dataclass
class MeteredOracle:
    """The attack's only door to the victim: counts every image, enforces the budget, caches.

    ``used`` counts answers the attack consumed (whether sent or taken from the cache), so a
    cached re-run follows the same path as the first run; ``sent`` counts what reached the victim.
    """

    oracle: Oracle
    budget: int
    cache: AnswerStore | None = None
    used: int = 0
    sent: int = 0
    cache_hits: int = 0

    @property
    def rep_dim(self) -> int:
        return self.oracle.rep_dim

    @property
    def remaining(self) -> int:
        return self.budget - self.used

    def query(self, images: torch.Tensor) -> torch.Tensor:
        n = len(images)
        if self.used + n > self.budget:
            raise BudgetExceeded(
                f"{n} more queries would exceed the budget of {self.budget} ({self.used} used)"
            )
        if self.cache is None:
            out = self.oracle.answer(images)
            self.sent += n
        else:
            keys = query_keys(images)
            rows = [self.cache.get(k) for k in keys]
            todo = [i for i, r in enumerate(rows) if r is None]
            if todo:
                fresh = self.oracle.answer(images[todo])
                self.cache.put([keys[i] for i in todo], fresh)
                for i, row in zip(todo, fresh.numpy(), strict=True):
                    rows[i] = row
            self.sent += len(todo)
            self.cache_hits += n - len(todo)
            out = torch.from_numpy(np.stack(rows))
        self.used += n
        return out


@dataclass(frozen=True)
class Victim:
    """What the attacker knows of the victim: the oracle, and for local files the encoder."""

    oracle: Oracle
    encoder: Encoder | None  # None for an API or precomputed answers


def open_victim(
    victim: str,
    *,
    defences: Sequence[Defence] = (),
    access_head: bool = False,
    seed: int = 0,
) -> Victim:
    """A victim from a URL, an answers ``.h5`` file, an artifact folder or an encoder file."""
    if victim.startswith(("http://", "https://")):
        if defences or access_head:
            raise SleuthError("defences and the access head are the API's business, not ours")
        return Victim(HTTPOracle(victim), None)
    path = Path(victim)
    if path.suffix in (".h5", ".hdf5"):
        if defences or access_head:
            raise SleuthError("precomputed answers cannot be defended or projected after the fact")
        return Victim(PrecomputedOracle(AnswerStore.read(path), sha256_file(path)), None)
    file = path / "encoder.pt" if path.is_dir() else path
    encoder = load_encoder(file)
    head = None
    if access_head:
        key_file = path / "owner-key.pt" if path.is_dir() else path.with_name("owner-key.pt")
        if not key_file.exists():
            raise SleuthError(f"--method access-head needs the victim's owner key: {key_file}")
        head = load_owner_key(key_file).projection_head()
    oracle = LocalOracle(encoder, sha256_file(file), defences, head, seed)
    return Victim(oracle, encoder)
