"""How a citizen proves who they are before the portal shows their record.

An :class:`IdentityProvider` turns what the citizen gave it (a form's fields, or the
parameters an OpenID Connect callback brought back) into the outcome of a sign-in to their
account (:class:`qorgan.core.accounts.SignIn`). What follows is the same whichever provider
it was, and lives in one place (``qorgan.web.routes.auth.begin_citizen_session``): the second
factor or its enrolment, then the session.

``password`` is the provider today: the IIN (checked by its check digit, date and century
digit, then found through its keyed hash) and the password, with the lockout and audit of
every sign-in. eGov's OpenID Connect would be a second provider, named ``egov``:

1. a page redirects to eGov's authorisation endpoint with a state and a nonce bound to the
   visitor's pre-session;
2. the callback gives its ``code`` and ``state`` to ``EgovProvider.identify``, which exchanges
   the code, checks the ID token (issuer, audience, expiry, nonce, signature against eGov's
   published keys) and finds the account with :func:`account_by_provider` (``provider`` is
   ``egov``, ``provider_subject`` the token's ``sub``; linked once by the IIN claim);
3. it returns ``SignIn(Outcome.ok, user)`` or ``second_factor_needed``, and the route hands it
   to ``begin_citizen_session`` like the password form does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar, Protocol

from sqlalchemy import select

from qorgan.core import accounts
from qorgan.core.identifiers import parse_iin
from qorgan.core.models import Role, User
from qorgan.privacy import citizens
from qorgan.privacy.models import CitizenAccount

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qorgan.privacy.protection import Protection


class IdentityProvider(Protocol):
    """One way for a citizen to prove who they are. ``name`` is what
    :attr:`CitizenAccount.provider` records for accounts it established; :meth:`identify`
    checks the proof and returns the sign-in's outcome (failures counted towards the lockout,
    in ``session``, which the caller commits)."""

    name: ClassVar[str]

    def identify(
        self, *, session: Session, protection: Protection, proof: Mapping[str, str]
    ) -> accounts.SignIn: ...


class PasswordProvider:
    """The IIN and a password. A malformed IIN raises :class:`IdentifierError` (the reason
    names no account: it is the number's arithmetic); an unknown IIN and a wrong password give
    the same answer in the same time (one Argon2 check each)."""

    name: ClassVar[str] = "password"

    def identify(
        self, *, session: Session, protection: Protection, proof: Mapping[str, str]
    ) -> accounts.SignIn:
        iin = parse_iin(proof.get("iin", "")).value
        user = citizens.account_by_iin(session=session, protection=protection, iin=iin)
        return accounts.sign_in_account(session=session, user=user, password=proof["password"])


PASSWORD = PasswordProvider()


def account_by_provider(*, session: Session, provider: str, subject: str) -> User | None:
    """The citizen whose account ``provider`` established with its own identifier
    ``subject`` (an OpenID Connect ``sub``), or None."""
    return session.scalar(
        select(User)
        .join(CitizenAccount, CitizenAccount.user_id == User.id)
        .where(
            CitizenAccount.provider == provider,
            CitizenAccount.provider_subject == subject,
            User.role == Role.citizen,
        )
    )
