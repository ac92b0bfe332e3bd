"""How the service protects the personal data it holds itself: IINs become keyed hashes
(pseudonyms), contacts are encrypted at rest.

- **Pseudonyms**: HMAC-SHA256 of the IIN under ``QORGAN_PRIVACY_HASH_KEY``. Without the key,
  the 10^11 possible IINs could be hashed and matched in minutes; with it they cannot. The key
  is never rotated in place: every subject is found by it (a new key means re-hashing from clear
  IINs, which the service does not keep).
- **Encryption**: Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``) under
  ``QORGAN_PRIVACY_DATA_KEYS``, a comma-separated list: the first key encrypts, every key
  decrypts (``MultiFernet``), so a key is rotated by putting a new one first and re-encrypting
  (docs/privacy.md).

In development, keys left unset are made once and kept in ``var_dir`` (mode 0600), like the
session key; in production they must be set.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from qorgan.core.errors import QorganError
from qorgan.core.settings import Environment, Settings, var_secret


class ProtectionError(QorganError):
    """The keys are missing or wrong, or a value cannot be decrypted."""


@dataclass(frozen=True)
class Protection:
    """The service's keys, ready to use."""

    hash_key: bytes
    cipher: MultiFernet

    def pseudonym(self, iin: str) -> str:
        """The subject's stable pseudonym (hex): what the tables hold instead of the IIN."""
        return hmac.new(self.hash_key, iin.encode("ascii"), hashlib.sha256).hexdigest()

    def encrypt(self, text: str) -> bytes:
        return self.cipher.encrypt(text.encode("utf-8"))

    def decrypt(self, token: bytes) -> str:
        try:
            return self.cipher.decrypt(token).decode("utf-8")
        except InvalidToken as exc:
            raise ProtectionError(
                "a value cannot be decrypted with the configured data keys"
            ) from exc


def _fernet_keys(value: str) -> list[Fernet]:
    keys = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            keys.append(Fernet(part.encode("ascii")))
        except (ValueError, UnicodeEncodeError) as exc:
            raise ProtectionError(
                "QORGAN_PRIVACY_DATA_KEYS holds a value that is not a Fernet key "
                "(32 url-safe base64-encoded bytes)"
            ) from exc
    return keys


def protection(settings: Settings) -> Protection:
    """The keys from the settings (made and kept in ``var_dir`` in development)."""
    hash_key = settings.privacy_hash_key.get_secret_value()
    data_keys = settings.privacy_data_keys.get_secret_value()
    if settings.environment is Environment.production and not (hash_key and data_keys):
        raise ProtectionError(
            "production needs QORGAN_PRIVACY_HASH_KEY and QORGAN_PRIVACY_DATA_KEYS"
        )
    if not hash_key:
        hash_key = var_secret(settings, "privacy_hash_key", lambda: secrets.token_urlsafe(48))
    if not data_keys:
        data_keys = var_secret(
            settings, "privacy_data_key", lambda: Fernet.generate_key().decode("ascii")
        )
    return _keys(hash_key, data_keys)


@functools.lru_cache(maxsize=8)
def _keys(hash_key: str, data_keys: str) -> Protection:
    """Built once per pair of keys: every decision needs them."""
    keys = _fernet_keys(data_keys)
    if not keys:
        raise ProtectionError("QORGAN_PRIVACY_DATA_KEYS names no key")
    if len(hash_key) < 32:
        raise ProtectionError("QORGAN_PRIVACY_HASH_KEY must have at least 32 characters")
    return Protection(hash_key.encode("utf-8"), MultiFernet(keys))


def new_data_key() -> str:
    """A fresh Fernet key, for ``QORGAN_PRIVACY_DATA_KEYS``."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")
