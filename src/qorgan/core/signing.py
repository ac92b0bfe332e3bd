"""The installation's Ed25519 keys: made, stored, read, and named by a fingerprint.

One place for what every signed artefact needs (legal-referral packages, consent receipts, ...),
so each keeps one key per installation and recipients learn one kind of fingerprint. What is
signed, and how the signature travels, stays with each artefact's own module.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from qorgan.core.errors import QorganError

#: Sizes of a raw Ed25519 public key and signature.
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


class SigningError(QorganError):
    """A key cannot be written or read: the message says what to fix, ``source`` the file."""


def generate_signing_key() -> Ed25519PrivateKey:
    """A new Ed25519 signing key (keep one per installation and purpose: the fingerprint is
    what recipients learn to trust)."""
    return Ed25519PrivateKey.generate()


def save_signing_key(key: Ed25519PrivateKey, path: Path) -> None:
    """Write ``key`` as an unencrypted PKCS#8 PEM, readable by its owner only (mode 0600).

    Refuses to overwrite: replacing the key silently would make everything signed earlier look
    signed by a stranger."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise SigningError("a signing key already exists; not replaced", source=str(path)) from exc
    except OSError as exc:
        raise SigningError(
            f"cannot write the signing key: {exc.strerror}", source=str(path)
        ) from exc
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)  # whatever the umask
        handle.write(pem)


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """Read a key written by :func:`save_signing_key` (PEM PKCS#8, Ed25519, unencrypted)."""
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise SigningError(
            f"cannot read the signing key: {exc.strerror}", source=str(path)
        ) from exc
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningError("not an unencrypted PEM private key", source=str(path)) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError("the signing key is not an Ed25519 key", source=str(path))
    return key


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """The installation's signing key: read from ``path``, or created there on first use (two
    processes starting at once end with the same key: creation is exclusive)."""
    if not path.exists():
        try:
            save_signing_key(generate_signing_key(), path)
        except SigningError:
            if not path.exists():
                raise
    return load_signing_key(path)


def public_key_bytes(key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key, as signatures carry it."""
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_pem(key: Ed25519PrivateKey) -> bytes:
    """The public key as PEM (SubjectPublicKeyInfo), to publish for ``--public-key``."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(path: Path) -> bytes:
    """A public key to pin, from a PEM file or a file holding the base64 of the raw key."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"cannot read the public key: {exc.strerror}", source=str(path)) from exc
    if b"-----BEGIN PUBLIC KEY-----" in data:
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise SigningError("malformed PEM public key", source=str(path)) from exc
        if not isinstance(key, Ed25519PublicKey):
            raise SigningError("the public key is not an Ed25519 key", source=str(path))
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    raw = decode_base64(data.strip(), PUBLIC_KEY_BYTES)
    if raw is None:
        raise SigningError(
            "expected a PEM public key or the base64 of a 32-byte Ed25519 key", source=str(path)
        )
    return raw


def fingerprint(public_key: bytes) -> str:
    """SHA-256 of the raw public key, first 16 bytes in hex: short enough to read aloud."""
    return hashlib.sha256(public_key).hexdigest()[:32]


def decode_base64(text: bytes, length: int) -> bytes | None:
    """Decode canonical base64 of exactly ``length`` bytes, else None: two spellings of one value
    would let a changed byte of a signature or key go unnoticed."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        return None
    return raw if len(raw) == length and base64.b64encode(raw) == text else None
