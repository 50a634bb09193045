"""User accounts as the online defences see them: who asks, and what that user has been given.

B4B (Dubinski et al., NeurIPS 2023) and calibrated proof-of-work price each query by the user's
history, so a per-user defence is handed an ``Account``: the user's stable id, keys derived from
the server's secret for that user, and the coverage of the embedding space the user's answers
occupy so far. ``MemoryAccount`` keeps that state in memory for a local victim (``sleuth steal``
against a file); ``sleuth serve`` keeps it in its database behind the same protocol.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import torch


def derive_seed(secret: bytes, *parts: str) -> int:
    """A 63-bit seed from HMAC-SHA256(secret, parts): the same for the same secret and parts on
    every host and worker, unpredictable without the secret."""
    mac = hmac.new(secret, "\x1f".join(parts).encode(), hashlib.sha256).digest()
    return int.from_bytes(mac[:8], "big") >> 1


class Account(Protocol):
    """One user's view of the server's state (see the module docstring)."""

    user: str
    secret: bytes  # the server's secret: per-user keys are derived from it and ``user``
    center: torch.Tensor | None  # where the coverage LSH's hyperplanes pass (None: the origin)

    def coverage(self, total: int) -> float:
        """Fraction of a ``total``-bucket hash table the user's answers occupy so far."""
        ...

    def cover(self, buckets: Iterable[int], total: int) -> float:
        """Record the buckets of answers about to be returned; the coverage after them."""
        ...

    def charge(self, defence: str, cost: float) -> None:
        """Add to the user's accumulated cost under ``defence`` (B4B: the noise sigma summed over
        the answers; proof-of-work: the hashes its puzzles asked for)."""
        ...


@dataclass
class MemoryAccount:
    """An ``Account`` held in memory: one attacker account against a local victim."""

    user: str
    secret: bytes
    center: torch.Tensor | None = None
    buckets: dict[int, set[int]] = field(default_factory=dict)  # table size -> occupied buckets
    costs: dict[str, float] = field(default_factory=dict)  # defence -> accumulated cost

    def coverage(self, total: int) -> float:
        return len(self.buckets.get(total, ())) / total

    def cover(self, buckets: Iterable[int], total: int) -> float:
        self.buckets.setdefault(total, set()).update(int(b) for b in buckets)
        return self.coverage(total)

    def charge(self, defence: str, cost: float) -> None:
        self.costs[defence] = self.costs.get(defence, 0.0) + float(cost)


def local_secret(seed: int) -> bytes:
    """The stand-in server secret of a local victim: from its seed, so that runs reproduce."""
    return hashlib.sha256(f"sleuth-local-victim-{seed}".encode()).digest()
