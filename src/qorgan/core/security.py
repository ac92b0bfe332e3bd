"""Credentials: password hashing and policy, TOTP second factor, recovery codes, API tokens, and
login throttling. Pure functions (no database): services store what they return.

Choices: Argon2id via ``argon2-cffi`` (the house plan; parameters are the library's RFC 9106
defaults, re-hashed when they change); TOTP via ``pyotp`` (RFC 6238, 30 s, 6 digits, one step of
clock drift); the common-password list and strength estimate of ``zxcvbn`` (30,000 passwords
from public breach corpora, shipped inside the package, so nothing is fetched at run time).
API tokens and recovery codes are random secrets shown once and stored as SHA-256 digests: they
carry enough entropy that a slow hash adds nothing, and a digest allows lookup by token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from qorgan.core.errors import QorganError

#: The national guidance: at least 8 characters.
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256
#: How many earlier passwords may not be reused.
PASSWORD_HISTORY = 5
#: zxcvbn score (0-4) a password must reach.
MIN_STRENGTH = 2
RECOVERY_CODES = 10
TOKEN_PREFIX = "qgn_"
#: Failed logins before a lockout, and how the lockout grows.
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
MAX_LOCKOUT = timedelta(hours=24)


class CredentialError(QorganError):
    """A credential was refused; the message says why, fit for the user."""


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(stored: str, password: str) -> bool:
    """Constant-time check; a malformed stored hash counts as a mismatch."""
    try:
        return _hasher().verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    try:
        return _hasher().check_needs_rehash(stored)
    except InvalidHashError:
        return True


@cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_hex(16))


def verify_nobody(password: str) -> bool:
    """Spend one Argon2 check when a login names no known user, so that response time does not
    tell whether an account exists. Always False."""
    verify_password(_dummy_hash(), password)
    return False


@cache
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problems(
    password: str,
    *,
    user_inputs: Sequence[str] = (),
    previous_hashes: Iterable[str] = (),
) -> list[str]:
    """Why ``password`` is refused (empty when it is acceptable)."""
    from zxcvbn import zxcvbn

    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"at least {MIN_PASSWORD_LENGTH} characters are required")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"at most {MAX_PASSWORD_LENGTH} characters are allowed")
        return problems
    if password.lower() in _common_passwords():
        problems.append("this password is in a list of common or breached passwords")
    elif zxcvbn(password, user_inputs=list(user_inputs))["score"] < MIN_STRENGTH:
        problems.append("this password is too easy to guess")
    if any(verify_password(old, password) for old in previous_hashes):
        problems.append(f"one of the last {PASSWORD_HISTORY} passwords may not be reused")
    return problems


def generate_password() -> str:
    """A password for a new account, handed over once and changed by its user: 96 random bits,
    and it passes the policy."""
    return "Qrg-" + secrets.token_urlsafe(12)


def check_password(
    password: str, *, user_inputs: Sequence[str] = (), previous_hashes: Iterable[str] = ()
) -> None:
    problems = password_problems(password, user_inputs=user_inputs, previous_hashes=previous_hashes)
    if problems:
        raise CredentialError("; ".join(problems))


# -- second factor ----------------------------------------------------------------------------


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, account: str, issuer: str = "Qorgan") -> str:
    """The otpauth:// URI an authenticator app scans (shown as a QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def verify_totp(secret: str, code: str, *, at: datetime | None = None) -> bool:
    """A 6-digit code for now, or one 30 s step before or after (clock drift)."""
    return totp_step(secret, code, at=at) is not None


def totp_step(secret: str, code: str, *, at: datetime | None = None) -> int | None:
    """The 30 s time step whose code ``code`` is (now, or one step either side), else None.
    Callers remember the last step used, so a code seen once is never accepted again."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    moment = at or datetime.now(UTC)
    now_step = totp.timecode(moment)
    for step in (now_step, now_step - 1, now_step + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_codes(count: int = RECOVERY_CODES) -> list[str]:
    """Codes shown once at enrolment, each usable once instead of a TOTP code."""
    return [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(count)]


def digest(secret: str) -> str:
    """SHA-256 digest under which a random secret (an API token) is stored."""
    return hashlib.sha256(secret.strip().encode()).hexdigest()


def recovery_digest(code: str) -> str:
    """Digest of a recovery code, as typed in any case and with or without its dash."""
    return digest(code.strip().lower().replace("-", "").replace(" ", ""))


def same_digest(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)


# -- API tokens -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewToken:
    """A freshly made token: ``secret`` is shown once, ``token_hash`` is stored."""

    secret: str
    token_hash: str
    expires_at: datetime | None


def new_api_token(*, lifetime: timedelta | None = timedelta(days=90)) -> NewToken:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + lifetime if lifetime else None
    return NewToken(secret=secret, token_hash=digest(secret), expires_at=expires)


def token_allows(scopes: Iterable[str], needed: str) -> bool:
    """Scopes are ``resource:action`` (``alerts:write``); ``resource:*`` and ``*`` grant more."""
    resource = needed.split(":", 1)[0]
    granted = set(scopes)
    return bool({needed, f"{resource}:*", "*"} & granted)


# -- throttling -------------------------------------------------------------------------------


def lockout_after(failed_logins: int, now: datetime | None = None) -> datetime | None:
    """When an account that has failed ``failed_logins`` times in a row unlocks (None: not
    locked). Each further failure past the limit doubles the lockout, up to a day."""
    if failed_logins < MAX_FAILED_LOGINS:
        return None
    now = now or datetime.now(UTC)
    doublings = min(failed_logins - MAX_FAILED_LOGINS, 10)
    return now + min(LOCKOUT * (2**doublings), MAX_LOCKOUT)
