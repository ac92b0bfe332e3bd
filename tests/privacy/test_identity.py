"""How a citizen proves who they are: the IIN and password provider gives an unknown IIN and a
wrong password the same answer after the same work, counts failures towards the lockout, and
leads to the second factor; another provider finds accounts by its own subject identifier."""

from __future__ import annotations

from datetime import date

import pytest

from qorgan.core import accounts, security
from qorgan.core.db import unit_of_work
from qorgan.core.identifiers import IdentifierError
from qorgan.core.models import User
from qorgan.privacy import citizens, identity
from qorgan.privacy.models import CitizenAccount

from .conftest import Registry
from .examples import iin

CITIZEN = iin(date(1992, 2, 29), female=True)
PASSWORD = "Zhetisu-Kolsai-Citizen-8"


def test_the_password_provider(privacy_registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = privacy_registry
    with unit_of_work(reg.factory) as session:
        user_id = citizens.register(
            session=session,
            protection=reg.keys,
            iin=CITIZEN,
            email="dana@example.kz",
            display_name="Dana",
            password=PASSWORD,
        ).id
    checks: list[str] = []
    real = security.verify_password

    def counted(hashed: str, password: str) -> bool:
        checks.append(password)
        return real(hashed, password)

    monkeypatch.setattr(security, "verify_password", counted)

    def identify(number: str, password: str) -> accounts.SignIn:
        with unit_of_work(reg.factory) as session:
            return identity.PASSWORD.identify(
                session=session, protection=reg.keys, proof={"iin": number, "password": password}
            )

    unknown = identify(iin(date(1970, 1, 1)), PASSWORD)
    wrong = identify(CITIZEN, "not the password")
    assert unknown.outcome is wrong.outcome is accounts.Outcome.bad_credentials
    assert unknown.user is wrong.user is None
    assert len(checks) == 2  # one Argon2 check each
    with pytest.raises(IdentifierError, match="check digit"):
        identify(CITIZEN[:-1] + str((int(CITIZEN[-1]) + 1) % 10), PASSWORD)
    assert len(checks) == 2  # a malformed IIN is refused before any account is looked at
    right = identify(f" {CITIZEN} ", PASSWORD)
    assert right.outcome is accounts.Outcome.enrolment_needed  # citizens need a second factor
    assert right.user is not None and right.user.id == user_id
    with unit_of_work(reg.factory) as session:
        user = session.get(User, user_id)
        assert user is not None and user.failed_logins == 1  # the wrong password counted


def test_another_provider_finds_accounts_by_its_own_identifier(
    privacy_registry: Registry,
) -> None:
    reg = privacy_registry
    with unit_of_work(reg.factory) as session:
        user = citizens.register(
            session=session,
            protection=reg.keys,
            iin=CITIZEN,
            email="dana@example.kz",
            display_name="Dana",
            password=PASSWORD,
        )
        account = session.get(CitizenAccount, user.id)
        assert account is not None and account.provider == identity.PASSWORD.name
        account.provider, account.provider_subject = "egov", "egov-sub-123"
        user_id = user.id
    with unit_of_work(reg.factory) as session:

        def find(provider: str, subject: str) -> int | None:
            found = identity.account_by_provider(
                session=session, provider=provider, subject=subject
            )
            return found.id if found is not None else None

        assert find("egov", "egov-sub-123") == user_id
        assert find("egov", "x") is None
        assert find("password", "egov-sub-123") is None
