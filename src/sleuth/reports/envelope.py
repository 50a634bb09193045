"""DSSE envelopes around in-toto statements, signed with Ed25519 (``securesystemslib.dsse``).

DSSE signs the exact payload bytes (through its pre-authentication encoding), so no JSON
canonicalisation is involved: the statement is serialised once, and those bytes are what is
signed and what is stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey

from sleuth.reports.keys import fingerprint

PAYLOAD_TYPE = "application/vnd.in-toto+json"


class EnvelopeError(Exception):
    """The envelope is malformed, unsigned, signed by another key, or its signature fails."""


def _sslib_key(public_key: Ed25519PublicKey) -> SSlibKey:
    return SSlibKey.from_crypto(public_key, keyid=fingerprint(public_key))


def serialise(envelope: dict[str, Any]) -> str:
    """The one way an envelope is written to disk (so any altered byte is detectable)."""
    return json.dumps(envelope, indent=2) + "\n"


def seal(statement: dict[str, Any], private_key: Ed25519PrivateKey | None) -> dict[str, Any]:
    """The statement in a DSSE envelope, signed when a key is given (else with no signatures)."""
    payload = json.dumps(statement, indent=2, allow_nan=False).encode("utf-8")
    envelope = Envelope(payload, PAYLOAD_TYPE, {})
    if private_key is not None:
        signer = CryptoSigner(private_key, _sslib_key(private_key.public_key()))
        envelope.sign(signer)
    return envelope.to_dict()


@dataclass(frozen=True)
class Opened:
    """What an envelope holds, and who (if anyone checked) signed it."""

    statement: dict[str, Any]
    keyids: list[str]  # the key ids its signatures claim
    verified_by: str | None  # fingerprint of the key that verified it; None if not checked


def open_envelope(text: str, public_key: Ed25519PublicKey | None = None) -> Opened:
    """Parse an envelope written by ``serialise``; verify its signature with ``public_key``.

    Raises ``EnvelopeError`` naming the problem: not sleuth's serialisation (any byte altered),
    wrong payload type, unsigned, signed by another key, or a signature that does not verify.
    """
    try:
        raw = json.loads(text)
        envelope = Envelope.from_dict(json.loads(text))  # from_dict alters its argument
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise EnvelopeError(f"not a DSSE envelope ({type(exc).__name__}: {exc})") from None
    if not isinstance(raw, dict) or serialise(raw) != text or serialise(envelope.to_dict()) != text:
        raise EnvelopeError("altered: its bytes are not those sleuth wrote")
    if envelope.payload_type != PAYLOAD_TYPE:
        raise EnvelopeError(f"payload type {envelope.payload_type!r}, expected {PAYLOAD_TYPE!r}")
    try:
        statement = json.loads(envelope.payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"its payload is not JSON ({exc})") from None
    keyids = list(envelope.signatures)
    verified_by = None
    if public_key is not None:
        wanted = fingerprint(public_key)
        if not keyids:
            raise EnvelopeError("not signed")
        if wanted not in keyids:
            raise EnvelopeError(
                f"signed by key {', '.join(k[:16] for k in keyids)}…, not by the given key "
                f"{wanted[:16]}… (wrong key, or the envelope was altered)"
            )
        try:
            envelope.verify([_sslib_key(public_key)], 1)
        except VerificationError:
            raise EnvelopeError(
                "the signature does not match the statement (the envelope was altered)"
            ) from None
        verified_by = wanted
    return Opened(statement, keyids, verified_by)
