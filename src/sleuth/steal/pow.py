"""Calibrated proof-of-work (Dziedzic et al., ICLR 2022; discussed for encoders in Dziedzic et
al., ICML 2022, Sec. 5.5), with B4B's coverage as the leakage signal (Dubinski et al., NeurIPS
2023, App. C).

Before a batch is answered the user solves a HashCash puzzle: find a suffix such that
SHA-256(challenge ":" suffix) starts with ``bits`` zero bits (2**bits hashes expected). The
difficulty grows with the user's coverage c of the embedding space: log2 of the work per query
rises linearly from ``base`` at c = 0 to ``top`` at c = ``beta``, so a legitimate user with one
downstream task (small coverage) pays little and a thief covering the space pays exponentially
more; a batch of n queries costs n times a query's work.

A challenge is signed by the server (HMAC with its secret) and names the user, the batch size,
the difficulty and an expiry, so any worker can check it without shared memory; the server
records spent challenges so none is used twice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass

import torch

from sleuth.steal.accounts import Account
from sleuth.steal.b4b import lsh_bits
from sleuth.steal.params import Described, check, integer, number, store

PROOF_HEADER = "X-Sleuth-Proof"
MAX_BITS = 60


def leading_zero_bits(digest: bytes) -> int:
    """How many leading bits of ``digest`` are zero."""
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def solves(challenge: str, suffix: str, bits: int) -> bool:
    """Whether ``suffix`` solves ``challenge`` at ``bits`` bits."""
    digest = hashlib.sha256(f"{challenge}:{suffix}".encode()).digest()
    return leading_zero_bits(digest) >= bits


def solve(challenge: str, bits: int) -> str:
    """The first decimal suffix that solves ``challenge`` (2**bits hashes expected)."""
    check(0 <= bits <= MAX_BITS, f"bits must be in 0..{MAX_BITS}, got {bits}")
    prefix = hashlib.sha256(f"{challenge}:".encode())
    limit = 1 << (256 - bits)
    n = 0
    while True:
        h = prefix.copy()
        h.update(str(n).encode())
        if int.from_bytes(h.digest(), "big") < limit:
            return str(n)
        n += 1


def _mac(secret: bytes, body: str) -> str:
    tag = hmac.new(secret, b"pow\x1f" + body.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(tag).decode().rstrip("=")


def _user_tag(user: str) -> str:
    return hashlib.sha256(user.encode()).hexdigest()[:16]


def issue(secret: bytes, user: str, n: int, bits: int, expires: int) -> str:
    """A signed challenge for ``user``'s batch of ``n`` queries at ``bits`` bits."""
    body = f"v1.{_user_tag(user)}.{n}.{bits}.{expires}.{secrets.token_hex(8)}"
    return f"{body}.{_mac(secret, body)}"


@dataclass(frozen=True)
class Proof:
    """A solved challenge as the client sends it: ``challenge:suffix``."""

    challenge: str
    suffix: str

    @property
    def bits(self) -> int:
        """The difficulty the challenge names (0 for a malformed one, which never verifies)."""
        parts = self.challenge.split(".")
        return int(parts[3]) if len(parts) == 7 and parts[3].isdigit() else 0

    @classmethod
    def parse(cls, header: str) -> Proof:
        challenge, sep, suffix = header.strip().rpartition(":")
        if not sep or not challenge or not suffix.isdigit() or len(suffix) > 24:
            raise ValueError("a proof is CHALLENGE:SUFFIX with a decimal suffix")
        return cls(challenge, suffix)

    def problem(self, secret: bytes, user: str, n: int, required: int, now: float) -> str | None:
        """Why this proof does not pay for ``user``'s batch of ``n`` at ``required`` bits now,
        or None when it does (single use is the server's store's business)."""
        parts = self.challenge.split(".")
        if len(parts) != 7 or parts[0] != "v1":
            return "malformed challenge"
        body, tag = ".".join(parts[:6]), parts[6]
        if not hmac.compare_digest(tag, _mac(secret, body)):
            return "challenge not issued by this server"
        _, who, count, bits, expires, _ = parts[:6]
        if not hmac.compare_digest(who, _user_tag(user)):
            return "challenge issued to another user"
        if count != str(n):
            return f"challenge is for a batch of {count}, not {n}"
        if int(expires) < now:
            return "challenge expired"
        if int(bits) < required:
            return f"challenge asks {bits} bits; this batch now needs {required}"
        if not solves(self.challenge, self.suffix, int(bits)):
            return "suffix does not solve the challenge"
        return None


@dataclass(frozen=True, kw_only=True, eq=False)
class ProofOfWork(Described):
    """The calibrated proof-of-work gate (see the module docstring): ``bits(n, c)`` is the
    difficulty of a batch of n at coverage c (the same bucket table B4B uses when both run with
    the same ``buckets``); the answers pass through it unchanged."""

    base: float = 8.0
    top: float = 20.0
    beta: float = 0.8
    buckets: int = 4096
    name = "pow"
    per_user = True
    covers = True
    gate = True

    def __post_init__(self) -> None:
        for key in ("base", "top", "beta"):
            store(self, key, number(key, getattr(self, key)))
        store(self, "buckets", integer("buckets", self.buckets))
        lsh_bits(self.buckets)
        check(0 <= self.base <= self.top, f"need 0 <= base <= top, got {self.base}, {self.top}")
        check(self.top <= 40, f"top must be <= 40 bits per query, got {self.top}")
        check(0 < self.beta <= 1, f"beta must be in (0, 1], got {self.beta}")

    def bits(self, n: int, coverage: float) -> int:
        per_query = self.base + (self.top - self.base) * min(coverage / self.beta, 1.0)
        return min(MAX_BITS, math.ceil(math.log2(max(n, 1)) + per_query))

    def price(self, n: int, account: Account) -> int:
        """The bits a batch of ``n`` from ``account`` needs now."""
        return self.bits(n, account.coverage(self.buckets))

    def __call__(
        self, reps: torch.Tensor, images: torch.Tensor, gen: torch.Generator, account: Account
    ) -> torch.Tensor:
        return reps
