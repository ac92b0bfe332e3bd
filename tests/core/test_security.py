"""Credentials: hashing, the password policy, TOTP, recovery codes, API tokens, lockout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from qorgan.core import security


def test_passwords_hash_with_argon2id_and_verify() -> None:
    stored = security.hash_password("Tau-Samal 2026!")
    assert stored.startswith("$argon2id$")
    assert security.verify_password(stored, "Tau-Samal 2026!")
    assert not security.verify_password(stored, "tau-samal 2026!")
    assert not security.verify_password("not a hash", "x")
    assert not security.needs_rehash(stored)
    assert security.verify_nobody("anything") is False


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("Ab1!", "at least 8"),
        ("password1", "common or breached"),
        ("qwertyuiop", "common or breached"),
        ("aaaaaaaaaa", "too easy"),
        ("x" * 300, "at most"),
    ],
)
def test_policy_refuses_short_common_and_weak_passwords(password: str, problem: str) -> None:
    problems = security.password_problems(password)
    assert any(problem in p for p in problems), problems
    with pytest.raises(security.CredentialError):
        security.check_password(password)


def test_policy_uses_personal_context_and_history() -> None:
    assert security.password_problems("Kökterek-Ozen-17") == []
    assert security.password_problems(
        "aidos2026", user_inputs=["aidos.nurlanov@akimat.kz", "nurlanov", "aidos"]
    )
    old = [security.hash_password("Kökterek-Ozen-17")]
    problems = security.password_problems("Kökterek-Ozen-17", previous_hashes=old)
    assert any("reused" in p for p in problems)


def test_totp_accepts_current_and_adjacent_steps_only() -> None:
    secret = security.new_totp_secret()
    now = datetime(2026, 11, 23, 10, 0, 15, tzinfo=UTC)
    totp = pyotp.TOTP(secret)
    assert security.verify_totp(secret, totp.at(now), at=now)
    assert security.verify_totp(secret, totp.at(now - timedelta(seconds=30)), at=now)
    assert not security.verify_totp(secret, totp.at(now - timedelta(seconds=90)), at=now)
    assert not security.verify_totp(secret, "12345", at=now)
    assert not security.verify_totp(secret, "abcdef", at=now)
    uri = security.totp_uri(secret, "analyst@soc.kz")
    assert uri.startswith("otpauth://totp/Qorgan:analyst%40soc.kz?secret=")


def test_recovery_codes_and_tokens_are_random_and_stored_as_digests() -> None:
    codes = security.new_recovery_codes()
    assert len(codes) == len(set(codes)) == security.RECOVERY_CODES
    typed = codes[0].upper().replace("-", " ")
    assert security.same_digest(security.recovery_digest(typed), security.recovery_digest(codes[0]))
    token = security.new_api_token(lifetime=timedelta(days=1))
    assert token.secret.startswith(security.TOKEN_PREFIX)
    assert token.token_hash == security.digest(token.secret) != token.secret
    assert token.expires_at is not None and token.expires_at > datetime.now(UTC)
    assert security.new_api_token().secret != token.secret


@pytest.mark.parametrize(
    ("scopes", "needed", "allowed"),
    [
        (["alerts:write"], "alerts:write", True),
        (["alerts:read"], "alerts:write", False),
        (["alerts:*"], "alerts:write", True),
        (["*"], "audit:read", True),
        ([], "alerts:read", False),
    ],
)
def test_token_scopes(scopes: list[str], needed: str, allowed: bool) -> None:
    assert security.token_allows(scopes, needed) is allowed


def test_lockout_grows_and_is_capped() -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    assert security.lockout_after(security.MAX_FAILED_LOGINS - 1, now) is None
    first = security.lockout_after(security.MAX_FAILED_LOGINS, now)
    second = security.lockout_after(security.MAX_FAILED_LOGINS + 1, now)
    assert first == now + security.LOCKOUT
    assert second == now + 2 * security.LOCKOUT
    assert security.lockout_after(100, now) == now + security.MAX_LOCKOUT
