"""Sign-ins at the same instant (SQLite and PostgreSQL): each thread has its own session and
waits at a barrier, so the requests reach the database together. Failures all count, and a TOTP
code or a recovery code is accepted once however many requests carry it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pyotp
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import accounts, audit, security
from qorgan.core.db import unit_of_work
from qorgan.core.models import AuditEntry, OrganisationKind, RecoveryCode, Role, User

PASSWORD = "Bayterek-Esil-2026"
EMAIL = "race@akimat.kz"
T = TypeVar("T")


def _user(factory: sessionmaker[Session]) -> tuple[int, str, list[str]]:
    """An analyst with a second factor; returns its id, TOTP secret and recovery codes."""
    with unit_of_work(factory) as session:
        organisation = accounts.create_organisation(
            session=session, actor="t", name="Race akimat", kind=OrganisationKind.akimat
        )
        user = accounts.create_user(
            session=session,
            actor="t",
            organisation_id=organisation.id,
            email=EMAIL,
            display_name="Race Test",
            role=Role.soc_analyst,
            password=PASSWORD,
        )
        secret, _uri = accounts.start_totp(user)
        earlier = datetime.now(UTC) - timedelta(minutes=5)
        codes = accounts.confirm_totp(
            session=session,
            user=user,
            secret=secret,
            code=pyotp.TOTP(secret).at(earlier),
            now=earlier,
        )
        return user.id, secret, codes


def at_once(factory: sessionmaker[Session], n: int, work: Callable[[Session], T]) -> list[T]:
    """``work`` in ``n`` threads released together, each in its own unit of work."""
    barrier = threading.Barrier(n, timeout=30)

    def run(_index: int) -> T:
        with unit_of_work(factory) as session:
            barrier.wait()
            return work(session)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_parallel_wrong_passwords_all_count_and_lock(factory: sessionmaker[Session]) -> None:
    user_id, _secret, _codes = _user(factory)
    n = security.MAX_FAILED_LOGINS
    outcomes = at_once(
        factory,
        n,
        lambda s: accounts.sign_in(session=s, email=EMAIL, password="Wrong-Guess-2026").outcome,
    )
    assert set(outcomes) <= {accounts.Outcome.bad_credentials, accounts.Outcome.locked}
    with unit_of_work(factory) as session:
        user = session.get(User, user_id)
        assert user is not None
        assert user.failed_logins == n
        assert user.locked_until is not None and user.locked_until > datetime.now(UTC)
        # Locked now: even the right password and a fresh code are refused.
        refused = accounts.sign_in(
            session=session,
            email=EMAIL,
            password=PASSWORD,
            second_factor=pyotp.TOTP(_secret).now(),
        )
        assert refused.outcome is accounts.Outcome.locked
        failures = session.scalars(
            select(AuditEntry.details).where(AuditEntry.action == "auth.failure")
        ).all()
        assert sorted(d["failed_logins"] for d in failures) == list(range(1, n + 1))
        assert audit.verify(session=session) == []


def test_one_totp_code_sent_twice_at_once_signs_in_once(factory: sessionmaker[Session]) -> None:
    _user_id, secret, _codes = _user(factory)
    code = pyotp.TOTP(secret).now()
    outcomes = at_once(
        factory,
        2,
        lambda s: (
            accounts.sign_in(session=s, email=EMAIL, password=PASSWORD, second_factor=code).outcome
        ),
    )
    assert sorted(outcomes) == sorted([accounts.Outcome.ok, accounts.Outcome.bad_credentials])


def test_one_totp_code_at_the_second_step_at_once_is_accepted_once(
    factory: sessionmaker[Session],
) -> None:
    user_id, secret, _codes = _user(factory)
    code = pyotp.TOTP(secret).now()

    def second_step(session: Session) -> accounts.Outcome:
        user = session.get(User, user_id)
        assert user is not None
        return accounts.complete_second_factor(session=session, user=user, code=code).outcome

    outcomes = at_once(factory, 4, second_step)
    assert outcomes.count(accounts.Outcome.ok) == 1, outcomes


def test_one_recovery_code_sent_at_once_is_spent_once(factory: sessionmaker[Session]) -> None:
    user_id, _secret, codes = _user(factory)

    def second_step(session: Session) -> accounts.Outcome:
        user = session.get(User, user_id)
        assert user is not None
        return accounts.complete_second_factor(session=session, user=user, code=codes[0]).outcome

    outcomes = at_once(factory, 4, second_step)
    assert outcomes.count(accounts.Outcome.ok) == 1, outcomes
    with unit_of_work(factory) as session:
        spent = session.scalars(
            select(RecoveryCode.used_at).where(
                RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_not(None)
            )
        ).all()
        assert len(spent) == 1
