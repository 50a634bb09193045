"""Victim oracles: whatever returns representations for a batch of images, behind a strict meter.

An ``Oracle`` answers float [0, 1] images (N, C, H, W) with (N, D) float32 representations. Three
kinds: a local encoder file (with victim-side defences), an HTTP endpoint, and precomputed answers
in HDF5. ``MeteredOracle`` wraps any of them with the query budget and the answer cache: every
image sent is one query, augmented views included, and a query that would exceed the budget is
refused before anything is sent.

HTTP protocol (what ``sleuth serve`` implements): ``GET {url}/info`` returns JSON with at least
``rep_dim``; ``POST {url}/represent`` with an ``.npy`` body of float32 (N, C, H, W) images in
[0, 1] returns an ``.npy`` float32 (N, D). The API key (``--api-key`` or ``SLEUTH_API_KEY``) is
sent as a bearer token; a 428 answer carries a proof-of-work puzzle (``steal.pow``), solved and
sent back in the ``X-Sleuth-Proof`` header.
"""

from __future__ import annotations

import io
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from sleuth.data import to_float
from sleuth.data.answers import AnswerStore, query_keys
from sleuth.errors import SleuthError
from sleuth.fileio import sha256_file
from sleuth.models import Encoder, load_encoder, load_owner_key
from sleuth.steal.accounts import MemoryAccount, local_secret
from sleuth.steal.b4b import lsh_center
from sleuth.steal.defences import Defence, answer_dim, apply_defences, gates
from sleuth.steal.pow import PROOF_HEADER, issue, solve


class Oracle(Protocol):
    """Returns the victim's answers; knows nothing of budgets."""

    rep_dim: int
    digest: str  # identifies the victim (file hash or URL) in manifests and answer files

    def answer(self, images: torch.Tensor) -> torch.Tensor: ...


@dataclass
class LocalOracle:
    """A victim encoder on this machine, optionally answering with its projection head's output
    (the "access head" setting) and perturbing answers with victim-side defences.

    Per-user defences see one account, ``user``, whose state lives in memory; a proof-of-work
    gate is paid here, by the attacker's CPU, before each batch (``work_s`` sums the time)."""

    encoder: Encoder
    digest: str
    defences: Sequence[Defence] = ()
    head: nn.Module | None = None
    seed: int = 0
    batch_size: int = 512
    user: str = "attacker"
    secret: bytes | None = None  # the stand-in server's secret; None: from ``seed``
    center: torch.Tensor | None = None  # the coverage LSH's center (``b4b.lsh_center``)
    gen: torch.Generator = field(init=False)
    account: MemoryAccount = field(init=False)
    work_s: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.gen = torch.Generator().manual_seed(self.seed)
        self.account = MemoryAccount(self.user, self.secret or local_secret(self.seed), self.center)
        dim = self.encoder.rep_dim
        if self.head is not None:
            self.head.eval()
            with torch.no_grad():
                dim = int(self.head(torch.zeros(1, self.encoder.rep_dim)).shape[1])
        self.rep_dim = answer_dim(self.defences, dim)

    def _pay(self, n: int) -> None:
        for gate in gates(self.defences):
            bits = gate.price(n, self.account)
            start = time.perf_counter()
            solve(issue(self.account.secret, self.user, n, bits, 0), bits)
            self.work_s += time.perf_counter() - start
            self.account.charge(gate.name, float(2**bits))

    @torch.no_grad()
    def answer(self, images: torch.Tensor) -> torch.Tensor:
        x = to_float(images)
        self._pay(len(x))
        reps = self.encoder.represent(x, self.batch_size)
        if self.head is not None:
            reps = self.head(reps)
        return apply_defences(self.defences, reps, x, self.gen, self.account)


@dataclass
class HTTPOracle:
    """A victim behind an HTTP API (see the module docstring for the protocol).

    ``api_key`` (else ``SLEUTH_API_KEY``) is sent as a bearer token. A server that asks for
    proof of work (428 with a puzzle) gets it solved here, on the attacker's CPU, and the batch
    sent again; ``work_s`` sums the time spent solving."""

    url: str
    timeout: float = 60.0
    api_key: str | None = None
    role: str = "victim"  # whose API, in messages (verification asks a suspect's)
    work_s: float = field(init=False, default=0.0)
    MAX_PUZZLES = 4  # a batch whose price keeps rising past this many puzzles is an error

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        self.digest = self.url
        if self.api_key is None:
            self.api_key = os.environ.get("SLEUTH_API_KEY") or None
        info = json.loads(self._request("/info", None).decode())
        self.rep_dim = int(info["rep_dim"])

    def _request(self, path: str, body: bytes | None, proof: str | None = None) -> bytes:
        headers = {"Content-Type": "application/octet-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if proof is not None:
            headers[PROOF_HEADER] = proof
        req = urllib.request.Request(self.url + path, data=body, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            detail = _detail(exc)
            if exc.code == 428 and isinstance(detail, dict) and "puzzle" in detail:
                raise _PuzzleAsked(detail["puzzle"]) from None
            message = detail.get("message") if isinstance(detail, dict) else None
            raise SleuthError(
                f"{self.role} API {self.url}{path} answered {exc.code} {exc.reason}"
                + (f": {message}" if message else "")
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise SleuthError(f"cannot reach {self.role} API {self.url}{path}: {exc}") from None

    def _represent(self, body: bytes) -> bytes:
        proof = None
        for _ in range(self.MAX_PUZZLES + 1):
            try:
                return self._request("/represent", body, proof)
            except _PuzzleAsked as asked:
                challenge, bits = str(asked.puzzle["challenge"]), int(asked.puzzle["bits"])
                start = time.perf_counter()
                proof = f"{challenge}:{solve(challenge, bits)}"
                self.work_s += time.perf_counter() - start
        raise SleuthError(f"{self.role} API {self.url} kept raising its proof-of-work price")

    def answer(self, images: torch.Tensor) -> torch.Tensor:
        buf = io.BytesIO()
        np.save(buf, to_float(images).cpu().numpy().astype(np.float32), allow_pickle=False)
        raw = self._represent(buf.getvalue())
        try:
            reps = np.load(io.BytesIO(raw), allow_pickle=False)
        except ValueError as exc:
            raise SleuthError(
                f"{self.role} API {self.url} sent a malformed answer: {exc}"
            ) from None
        if reps.shape != (len(images), self.rep_dim):
            raise SleuthError(
                f"{self.role} API {self.url} answered shape {reps.shape}, "
                f"expected ({len(images)}, {self.rep_dim})"
            )
        return torch.from_numpy(reps.astype(np.float32))


class _PuzzleAsked(Exception):
    """The server wants proof of work before it answers (HTTP 428 with a puzzle)."""

    def __init__(self, puzzle: dict[str, Any]) -> None:
        super().__init__("proof of work asked")
        self.puzzle = puzzle


def _detail(exc: urllib.error.HTTPError) -> Any:
    """The ``detail`` of a JSON error body, or None."""
    try:
        return json.loads(exc.read().decode()).get("detail")
    except (ValueError, AttributeError, OSError):
        return None


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

    def spend(self, n: int) -> None:
        """Count ``n`` queries sent outside ``query`` (a sybil attack's overlap), or refuse."""
        if self.used + n > self.budget:
            raise BudgetExceeded(
                f"{n} more queries would exceed the budget of {self.budget} ({self.used} used)"
            )
        self.used += n
        self.sent += n

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
    accounts: tuple[Oracle, ...] = ()  # every account opened (the first is ``oracle``)

    @property
    def work_s(self) -> float:
        """Seconds the attacker's CPU spent on proof-of-work puzzles, all accounts together."""
        return sum(getattr(a, "work_s", 0.0) for a in self.accounts)


def open_victim(
    victim: str,
    *,
    defences: Sequence[Defence] = (),
    access_head: bool = False,
    seed: int = 0,
    api_keys: Sequence[str] = (),
    accounts: int = 1,
    defence_data: str | None = None,
) -> Victim:
    """A victim from a URL, an answers ``.h5`` file, an artifact folder or an encoder file.

    ``accounts`` > 1 opens that many accounts (``Victim.accounts``): an API key each for a URL,
    users ``sybil-0``, ``sybil-1``, ... of the per-user defences for a local file, whose coverage
    LSH is centred on the victim's mean representation of ``defence_data`` when given."""
    if victim.startswith(("http://", "https://")):
        if defences or access_head or defence_data:
            raise SleuthError("defences and the access head are the API's business, not ours")
        keys: list[str | None] = list(api_keys) or [None]
        if len(keys) != accounts and not (accounts == 1 and len(keys) == 1):
            raise SleuthError(f"{accounts} account(s) need as many --api-key, got {len(keys)}")
        oracles = [HTTPOracle(victim, api_key=key) for key in keys]
        return Victim(oracles[0], None, tuple(oracles))
    if api_keys:
        raise SleuthError("--api-key is for a victim behind an http(s):// API")
    path = Path(victim)
    if path.suffix in (".h5", ".hdf5"):
        if defences or access_head or accounts > 1:
            raise SleuthError(
                "precomputed answers cannot be defended, projected or split over accounts"
            )
        oracle = PrecomputedOracle(AnswerStore.read(path), sha256_file(path))
        return Victim(oracle, None, (oracle,))
    file = path / "encoder.pt" if path.is_dir() else path
    encoder = load_encoder(file)
    head = None
    if access_head:
        key_file = path / "owner-key.pt" if path.is_dir() else path.with_name("owner-key.pt")
        if not key_file.exists():
            raise SleuthError(f"--method access-head needs the victim's owner key: {key_file}")
        head = load_owner_key(key_file).projection_head()
    digest = sha256_file(file)
    center = lsh_center(encoder, defence_data) if defence_data else None
    secret = local_secret(seed)  # one stand-in server for every account
    users = ["attacker"] if accounts == 1 else [f"sybil-{k}" for k in range(accounts)]
    local = tuple(
        LocalOracle(
            encoder, digest, defences, head, seed + k, user=user, secret=secret, center=center
        )
        for k, user in enumerate(users)
    )
    return Victim(local[0], encoder, local)
