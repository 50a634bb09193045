"""Ed25519 signing keys for evidence reports: PEM files, a private file only its owner can read.

A key's fingerprint (and the DSSE ``keyid`` of its signatures) is the SHA-256 of its 32 raw
public-key bytes, in hex: anyone holding the public PEM can recompute it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sleuth.errors import SleuthError
from sleuth.fileio import atomic_write, check_out_file

PRIVATE_NAME = "sleuth-signing.key"
PUBLIC_NAME = "sleuth-signing.pub"


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """Hex SHA-256 of the raw public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def generate_keypair(
    out_dir: str | Path, passphrase: bytes | None = None, *, force: bool = False
) -> tuple[Path, Path, str]:
    """A new Ed25519 key pair in ``out_dir``: (private PEM, public PEM, fingerprint).

    The private key is PKCS#8, encrypted with ``passphrase`` when one is given.
    """
    out_dir = Path(out_dir)
    private_path, public_path = out_dir / PRIVATE_NAME, out_dir / PUBLIC_NAME
    if out_dir.exists() and not out_dir.is_dir():
        raise SleuthError(f"output path exists and is not a folder: {out_dir}")
    if not force and (private_path.exists() or public_path.exists()):
        raise SleuthError(f"{out_dir} already holds a sleuth key (use --force to replace it)")
    for path in (private_path, public_path):
        check_out_file(path, force=True)  # a folder in the way, or nowhere to write: refused now
    if passphrase is not None and not passphrase:
        raise SleuthError("the passphrase is empty")
    key = Ed25519PrivateKey.generate()
    encryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # mode 0600 before the first byte: the private key is never readable by others, even briefly
    atomic_write(private_path, lambda tmp: tmp.write_bytes(private_pem), mode=0o600)
    atomic_write(public_path, lambda tmp: tmp.write_bytes(public_pem))
    return private_path, public_path, fingerprint(key.public_key())


def private_key_is_encrypted(path: str | Path) -> bool:
    """Whether the PEM at ``path`` needs a passphrase (so the CLI knows to ask for one)."""
    try:
        return b"ENCRYPTED PRIVATE KEY" in Path(path).read_bytes()
    except OSError as exc:
        raise SleuthError(f"cannot read signing key {path}: {exc.strerror}") from None


def load_private_key(path: str | Path, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """The Ed25519 private key in PEM file ``path``; a wrong passphrase or key type is refused."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SleuthError(f"cannot read signing key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=passphrase or None)
    except TypeError:
        raise SleuthError(
            f"{path} is encrypted: give its passphrase (SLEUTH_KEY_PASSPHRASE)"
            if not passphrase
            else f"{path} is not encrypted, but a passphrase was given"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise SleuthError(
            f"cannot load signing key {path}: wrong passphrase or not a PEM private key"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SleuthError(f"{path} is not an Ed25519 key (sleuth signs with Ed25519 only)")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """The Ed25519 public key in PEM file ``path``."""
    path = Path(path)
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise SleuthError(f"cannot read public key {path}: {exc.strerror}") from None
    except (ValueError, UnsupportedAlgorithm):
        raise SleuthError(f"{path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SleuthError(f"{path} is not an Ed25519 public key")
    return key
