"""Accounts on a migrated database (SQLite, and PostgreSQL when installed): users, sign-in with
a second factor, lockout, recovery codes, API tokens, and their audit entries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import accounts, audit, roles, security
from qorgan.core.db import unit_of_work
from qorgan.core.models import AuditEntry, OrganisationKind, Role, User
from qorgan.core.roles import Permission

PASSWORD = "Bayterek-Esil-2026"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _user(factory: sessionmaker[Session], role: Role = Role.soc_analyst) -> int:
    with unit_of_work(factory) as session:
        org = accounts.create_organisation(
            session=session, actor="system", name="Astana akimat", kind=OrganisationKind.akimat
        )
        user = accounts.create_user(
            session=session,
            actor="system",
            organisation_id=org.id,
            email=" A.Nurlanov@Akimat.kz ",
            display_name="Aidos Nurlanov",
            role=role,
            password=PASSWORD,
        )
        return user.id


def test_users_are_created_with_policy_and_audit(factory: sessionmaker[Session]) -> None:
    user_id = _user(factory)
    with unit_of_work(factory) as session:
        user = session.get(User, user_id)
        assert user is not None and user.email == "a.nurlanov@akimat.kz"
        assert security.verify_password(user.password_hash, PASSWORD)
        actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
        assert actions == ["organisation.create", "user.create"]
        details = session.scalars(select(AuditEntry.details)).all()
        assert "akimat.kz" not in repr(details)  # no personal data in the trail
        with pytest.raises(accounts.AccountError, match="exists"):
            accounts.create_user(
                session=session,
                actor="system",
                organisation_id=user.organisation_id,
                email="a.nurlanov@akimat.kz",
                display_name="x",
                role=Role.auditor,
                password=PASSWORD,
            )
        with pytest.raises(security.CredentialError):
            accounts.create_user(
                session=session,
                actor="system",
                organisation_id=user.organisation_id,
                email="b@akimat.kz",
                display_name="B",
                role=Role.auditor,
                password="qwerty123",
            )


def test_sign_in_needs_totp_for_analysts_and_locks_out(factory: sessionmaker[Session]) -> None:
    user_id = _user(factory)
    email = "a.nurlanov@akimat.kz"
    with unit_of_work(factory) as session:
        result = accounts.sign_in(session=session, email=email, password=PASSWORD, now=NOW)
        assert result.outcome is accounts.Outcome.enrolment_needed
        user = session.get(User, user_id)
        secret, uri = accounts.start_totp(user)
        assert "otpauth://" in uri
        with pytest.raises(accounts.AccountError):
            accounts.confirm_totp(session=session, user=user, secret=secret, code="000000")
        codes = accounts.confirm_totp(
            session=session,
            user=user,
            secret=secret,
            code=pyotp.TOTP(secret).at(NOW - timedelta(seconds=30)),
            now=NOW,
        )
    totp = pyotp.TOTP(secret)
    with unit_of_work(factory) as session:
        needs = accounts.sign_in(session=session, email=email, password=PASSWORD, now=NOW)
        assert needs.outcome is accounts.Outcome.second_factor_needed
        ok = accounts.sign_in(
            session=session, email=email, password=PASSWORD, second_factor=totp.at(NOW), now=NOW
        )
        assert ok.outcome is accounts.Outcome.ok and ok.user is not None
        spent = accounts.sign_in(
            session=session, email=email, password=PASSWORD, second_factor=codes[0], now=NOW
        )
        assert spent.outcome is accounts.Outcome.ok
        again = accounts.sign_in(
            session=session, email=email, password=PASSWORD, second_factor=codes[0], now=NOW
        )
        assert again.outcome is accounts.Outcome.bad_credentials  # a recovery code works once
        unknown = accounts.sign_in(session=session, email="nobody@x.kz", password="x", now=NOW)
        assert unknown.outcome is accounts.Outcome.bad_credentials
    with unit_of_work(factory) as session:
        outcomes = [
            accounts.sign_in(session=session, email=email, password="wrong", now=NOW).outcome
            for _ in range(security.MAX_FAILED_LOGINS)
        ]
        assert outcomes[-1] is accounts.Outcome.locked
        locked = accounts.sign_in(
            session=session, email=email, password=PASSWORD, second_factor=totp.at(NOW), now=NOW
        )
        assert locked.outcome is accounts.Outcome.locked  # even with the right credentials
        later = NOW + security.LOCKOUT + timedelta(seconds=1)
        back = accounts.sign_in(
            session=session, email=email, password=PASSWORD, second_factor=totp.at(later), now=later
        )
        assert back.outcome is accounts.Outcome.ok
    with unit_of_work(factory) as session:
        assert audit.verify(session=session) == []
        actions = session.scalars(select(AuditEntry.action)).all()
        assert actions.count("auth.login") == 3
        assert "auth.refused_locked" in actions and "user.totp_enrol" in actions


def test_password_change_refuses_reuse(factory: sessionmaker[Session]) -> None:
    user_id = _user(factory, Role.partner)
    with unit_of_work(factory) as session:
        user = session.get(User, user_id)
        with pytest.raises(accounts.AccountError, match="current password"):
            accounts.change_password(session=session, user=user, old="x", new="Other-Pass-77a")
        accounts.change_password(session=session, user=user, old=PASSWORD, new="Zhetisu-Kolsai-8")
        with pytest.raises(security.CredentialError, match="reused"):
            accounts.change_password(
                session=session, user=user, old="Zhetisu-Kolsai-8", new=PASSWORD
            )
        # A partner has no second factor to give: the password alone signs in...
        result = accounts.sign_in(
            session=session, email=user.email, password="Zhetisu-Kolsai-8", now=NOW
        )
        assert result.outcome is accounts.Outcome.ok
    # ...while a citizen, whose record says who read their data, must enrol one.
    with unit_of_work(factory) as session:
        citizen = accounts.create_user(
            session=session,
            actor="system",
            organisation_id=session.get(User, user_id).organisation_id,
            email="citizen@example.kz",
            display_name="Dana Citizen",
            role=Role.citizen,
            password=PASSWORD,
        )
        result = accounts.sign_in(session=session, email=citizen.email, password=PASSWORD, now=NOW)
        assert result.outcome is accounts.Outcome.enrolment_needed


def test_api_tokens_are_scoped_and_expire(factory: sessionmaker[Session]) -> None:
    user_id = _user(factory)
    with unit_of_work(factory) as session:
        user = session.get(User, user_id)
        secret = accounts.issue_token(
            session=session,
            user=user,
            name="hunt uploader",
            scopes=["alerts:write"],
            lifetime=timedelta(days=1),
        )
    with unit_of_work(factory) as session:
        assert (
            accounts.token_user(session=session, secret=secret, needed="alerts:write").id == user_id
        )
        assert accounts.token_user(session=session, secret=secret, needed="audit:read") is None
        assert (
            accounts.token_user(session=session, secret=secret + "x", needed="alerts:write") is None
        )
        late = datetime.now(UTC) + timedelta(days=2)
        assert (
            accounts.token_user(session=session, secret=secret, needed="alerts:write", now=late)
            is None
        )


def test_a_totp_code_signs_in_once(factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        organisation = accounts.create_organisation(
            session=session, actor="t", name="Replay", kind=OrganisationKind.soc
        )
        user = accounts.create_user(
            session=session,
            actor="t",
            organisation_id=organisation.id,
            email="replay@soc.kz",
            display_name="Replay Test",
            role=Role.soc_analyst,
            password=PASSWORD,
        )
        secret, _uri = accounts.start_totp(user)
        now = datetime.now(UTC)
        enrolment_code = pyotp.TOTP(secret).at(now)
        accounts.confirm_totp(session=session, user=user, secret=secret, code=enrolment_code)
    with unit_of_work(factory) as session:
        # The code used to enrol is spent; so is a code once it signed in.
        replayed = accounts.sign_in(
            session=session, email="replay@soc.kz", password=PASSWORD, second_factor=enrolment_code
        )
        assert replayed.outcome is accounts.Outcome.bad_credentials
        later = now + timedelta(seconds=30)
        fresh = pyotp.TOTP(secret).at(later)
        first = accounts.sign_in(
            session=session,
            email="replay@soc.kz",
            password=PASSWORD,
            second_factor=fresh,
            now=later,
        )
        assert first.outcome is accounts.Outcome.ok
        again = accounts.sign_in(
            session=session,
            email="replay@soc.kz",
            password=PASSWORD,
            second_factor=fresh,
            now=later,
        )
        assert again.outcome is accounts.Outcome.bad_credentials


# --- one address in several organisations -------------------------------------------------------

SHARED = "shared@gov.kz"
OTHER_PASSWORD = "Kolsai-Charyn-2026"


def _namesakes(
    factory: sessionmaker[Session], passwords: tuple[str, str], role: Role = Role.partner
) -> list[tuple[int, int]]:
    """The same address in two organisations; returns (user id, organisation id) of each."""
    found = []
    with unit_of_work(factory) as session:
        for name, password in zip(("Astana akimat", "Almaty akimat"), passwords, strict=True):
            organisation = accounts.create_organisation(
                session=session, actor="t", name=name, kind=OrganisationKind.akimat
            )
            user = accounts.create_user(
                session=session,
                actor="t",
                organisation_id=organisation.id,
                email=SHARED,
                display_name="Namesake",
                role=role,
                password=password,
            )
            found.append((user.id, organisation.id))
    return found


@pytest.fixture
def argon2_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the Argon2 verifications (the real ones run)."""
    calls: list[str] = []
    real = security.verify_password

    def counted(stored: str, password: str) -> bool:
        calls.append(stored)
        return real(stored, password)

    monkeypatch.setattr(security, "verify_password", counted)
    return calls


def test_an_address_is_unique_per_organisation_only(factory: sessionmaker[Session]) -> None:
    (first, first_org), (second, second_org) = _namesakes(factory, (PASSWORD, OTHER_PASSWORD))
    assert first != second and first_org != second_org
    with unit_of_work(factory) as session, pytest.raises(accounts.AccountError, match="exists"):
        accounts.create_user(
            session=session,
            actor="t",
            organisation_id=second_org,
            email=SHARED.upper(),
            display_name="Third",
            role=Role.partner,
            password=PASSWORD,
        )


def test_sign_in_tries_every_account_holding_the_address(
    factory: sessionmaker[Session], argon2_checks: list[str]
) -> None:
    (first, _), (second, _) = _namesakes(factory, (PASSWORD, OTHER_PASSWORD))
    with unit_of_work(factory) as session:
        argon2_checks.clear()
        one = accounts.sign_in(session=session, email=SHARED, password=OTHER_PASSWORD, now=NOW)
        assert one.outcome is accounts.Outcome.ok and one.user is not None
        assert one.user.id == second
        assert len(argon2_checks) == 2  # both accounts checked, whichever matched
    with unit_of_work(factory) as session:
        argon2_checks.clear()
        none = accounts.sign_in(session=session, email=SHARED, password="Wrong-2026-x", now=NOW)
        assert none.outcome is accounts.Outcome.bad_credentials and not none.organisations
        assert len(argon2_checks) == 2
        counts = session.scalars(
            select(User.failed_logins).where(User.id.in_([first, second])).order_by(User.id)
        ).all()
        assert counts == [1, 1]  # a failure on each candidate
        argon2_checks.clear()
        nobody = accounts.sign_in(session=session, email="nobody@gov.kz", password="x", now=NOW)
        assert nobody.outcome is accounts.Outcome.bad_credentials
        assert len(argon2_checks) == 1  # verify_nobody spends one check too


def test_the_same_password_in_two_organisations_asks_which(
    factory: sessionmaker[Session],
) -> None:
    (first, first_org), (second, second_org) = _namesakes(factory, (PASSWORD, PASSWORD))
    with unit_of_work(factory) as session:
        ask = accounts.sign_in(session=session, email=SHARED, password=PASSWORD, now=NOW)
        assert ask.outcome is accounts.Outcome.choose_organisation and ask.user is None
        assert ask.organisations == ((first_org, "Astana akimat"), (second_org, "Almaty akimat"))
        chosen = accounts.sign_in(
            session=session,
            email=SHARED,
            password=PASSWORD,
            organisation_id=second_org,
            now=NOW,
        )
        assert chosen.outcome is accounts.Outcome.ok and chosen.user is not None
        assert chosen.user.id == second
        # An organisation that is not among the matches only asks again.
        forged = accounts.sign_in(
            session=session, email=SHARED, password=PASSWORD, organisation_id=10**6, now=NOW
        )
        assert forged.outcome is accounts.Outcome.choose_organisation
        # A locked account is still offered (the other one is never entered instead), and
        # choosing it answers that it is locked.
        locked = session.get(User, first)
        assert locked is not None
        locked.locked_until = NOW + timedelta(minutes=5)
        session.flush()
        still = accounts.sign_in(session=session, email=SHARED, password=PASSWORD, now=NOW)
        assert still.outcome is accounts.Outcome.choose_organisation
        assert len(still.organisations) == 2
        refused = accounts.sign_in(
            session=session, email=SHARED, password=PASSWORD, organisation_id=first_org, now=NOW
        )
        assert refused.outcome is accounts.Outcome.locked
        actions = session.scalars(select(AuditEntry.details)).all()
        assert SHARED not in repr(actions)


def test_tokens_never_exceed_the_role_and_a_password_change_revokes_them(
    factory: sessionmaker[Session],
) -> None:
    user_id = _user(factory, Role.auditor)
    with unit_of_work(factory) as session:
        user = session.get(User, user_id)
        assert user is not None
        with pytest.raises(ValueError, match="role"):
            accounts.issue_token(session=session, user=user, name="x", scopes=["alerts:write"])
        with pytest.raises(ValueError, match="role"):
            accounts.issue_token(session=session, user=user, name="x", scopes=["users:*"])
        # Wildcards are capped by the role when used: an auditor's "*" token still only reads.
        star = accounts.issue_token(session=session, user=user, name="x", scopes=["*"])
        assert accounts.token_user(session=session, secret=star, needed="audit:read") is not None
        assert not roles.allows(user.role, Permission.alerts_write, ["*"])
        secrets = [
            accounts.issue_token(session=session, user=user, name=str(i), scopes=["alerts:read"])
            for i in range(3)
        ]
        revoked = accounts.change_password(
            session=session, user=user, old=PASSWORD, new="Zhetisu-Kolsai-8"
        )
        assert revoked == 4
        assert all(accounts.resolve_token(session=session, secret=s) is None for s in secrets)
