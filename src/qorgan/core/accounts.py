"""Accounts: organisations, users, sign-in with a second factor, lockout, API tokens.

Service functions take ``*, session`` and never commit (the caller's unit of work does). Every
change and every sign-in attempt is written to the audit trail, without personal data: users
appear by id, never by e-mail or name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from qorgan.core import audit, security
from qorgan.core.errors import QorganError
from qorgan.core.models import (
    ApiToken,
    Organisation,
    OrganisationKind,
    OrganisationShare,
    PasswordHistory,
    RecoveryCode,
    Role,
    User,
)

#: Roles that handle incidents or personal data must sign in with a second factor.
MFA_ROLES = frozenset(
    {Role.administrator, Role.soc_analyst, Role.cert_coordinator, Role.dpo, Role.auditor}
)


class AccountError(QorganError):
    """An account operation was refused; the message is fit for the user."""


class Outcome(StrEnum):
    ok = "ok"
    bad_credentials = "bad_credentials"  # also for unknown users: never tell which
    locked = "locked"
    second_factor_needed = "second_factor_needed"
    enrolment_needed = "enrolment_needed"  # the role needs a second factor not yet set up


@dataclass(frozen=True, slots=True)
class SignIn:
    outcome: Outcome
    user: User | None = None
    locked_until: datetime | None = None


def _audit(
    session: Session, action: str, user: User, *, actor: str | None = None, **details: object
) -> None:
    """An audit entry about ``user``, by the user unless ``actor`` says otherwise."""
    audit.record(
        action,
        session=session,
        actor=actor or str(user.id),
        organisation_id=user.organisation_id,
        target_type="user",
        target_id=user.id,
        details=details or None,
    )


def create_organisation(
    *, session: Session, actor: str, name: str, kind: OrganisationKind
) -> Organisation:
    organisation = Organisation(name=name.strip(), kind=kind)
    session.add(organisation)
    session.flush()
    audit.record(
        "organisation.create",
        session=session,
        actor=actor,
        organisation_id=organisation.id,
        target_type="organisation",
        target_id=organisation.id,
        details={"kind": str(kind)},
    )
    return organisation


def create_user(
    *,
    session: Session,
    actor: str,
    organisation_id: int,
    email: str,
    display_name: str,
    role: Role,
    password: str,
    language: str = "kk",
) -> User:
    email = email.strip().lower()
    if "@" not in email:
        raise AccountError("an e-mail address is required")
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise AccountError("a user with this e-mail address exists")
    security.check_password(password, user_inputs=[email, *display_name.split()])
    user = User(
        organisation_id=organisation_id,
        email=email,
        display_name=display_name.strip(),
        password_hash=security.hash_password(password),
        role=role,
        language=language,
    )
    session.add(user)
    session.flush()
    session.add(PasswordHistory(user_id=user.id, password_hash=user.password_hash))
    _audit(session, "user.create", user, actor=actor, role=str(role))
    return user


def change_password(*, session: Session, user: User, old: str, new: str) -> None:
    if not security.verify_password(user.password_hash, old):
        raise AccountError("the current password is wrong")
    recent = session.scalars(
        select(PasswordHistory.password_hash)
        .where(PasswordHistory.user_id == user.id)
        .order_by(PasswordHistory.id.desc())
        .limit(security.PASSWORD_HISTORY)
    ).all()
    security.check_password(
        new, user_inputs=[user.email, *user.display_name.split()], previous_hashes=recent
    )
    user.password_hash = security.hash_password(new)
    session.add(PasswordHistory(user_id=user.id, password_hash=user.password_hash))
    _audit(session, "user.password_change", user)


def start_totp(user: User) -> tuple[str, str]:
    """A new secret and its otpauth:// URI (for the QR code); nothing is saved until confirmed."""
    secret = security.new_totp_secret()
    return secret, security.totp_uri(secret, user.email)


def confirm_totp(
    *, session: Session, user: User, secret: str, code: str, now: datetime | None = None
) -> list[str]:
    """Turn the second factor on once the user proves the app works; returns recovery codes,
    shown once (only their digests are kept)."""
    step = security.totp_step(secret, code, at=now)
    if step is None:
        raise AccountError("the code does not match: check the authenticator app's clock")
    user.totp_secret = secret
    user.totp_last_step = step
    codes = _replace_recovery_codes(session, user)
    _audit(session, "user.totp_enrol", user)
    return codes


def renew_recovery_codes(
    *, session: Session, user: User, code: str, now: datetime | None = None
) -> list[str]:
    """New recovery codes (the old ones stop working), after a fresh TOTP code proves the user
    holds the second factor; shown once."""
    now = now or datetime.now(UTC)
    if not user.totp_secret:
        raise AccountError("the second factor is not set up")
    step = security.totp_step(user.totp_secret, code, at=now)
    if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
        raise AccountError("the code does not match: check the authenticator app's clock")
    user.totp_last_step = step
    codes = _replace_recovery_codes(session, user)
    _audit(session, "user.recovery_codes", user)
    return codes


def _delete_recovery_codes(session: Session, user: User) -> None:
    for old in session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)):
        session.delete(old)


def _replace_recovery_codes(session: Session, user: User) -> list[str]:
    _delete_recovery_codes(session, user)
    codes = security.new_recovery_codes()
    session.add_all(
        RecoveryCode(user_id=user.id, code_hash=security.recovery_digest(c)) for c in codes
    )
    return codes


def sign_in(
    *,
    session: Session,
    email: str,
    password: str,
    second_factor: str | None = None,
    now: datetime | None = None,
) -> SignIn:
    """Check a sign-in: password, lockout, then the second factor (a TOTP code or a recovery
    code) where the role needs one. Failures count towards the lockout."""
    now = now or datetime.now(UTC)
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        security.verify_nobody(password)
        audit.record(
            "auth.failure",
            session=session,
            actor="anonymous",
            details={"reason": "unknown account"},
        )
        return SignIn(Outcome.bad_credentials)
    if user.locked_until is not None and user.locked_until > now:
        _audit(session, "auth.refused_locked", user)
        return SignIn(Outcome.locked, locked_until=user.locked_until)
    if not security.verify_password(user.password_hash, password):
        return _failed(session, user, now, "password")
    if user.role in MFA_ROLES or user.totp_secret:
        if not user.totp_secret:
            return SignIn(Outcome.enrolment_needed, user)
        if not second_factor:
            return SignIn(Outcome.second_factor_needed, user)
        if not _second_factor_ok(session, user, second_factor, now):
            return _failed(session, user, now, "second factor")
    if security.needs_rehash(user.password_hash):
        user.password_hash = security.hash_password(password)
    return signed_in(session, user)


def complete_second_factor(
    *, session: Session, user: User, code: str, now: datetime | None = None
) -> SignIn:
    """The second step of a sign-in whose password was accepted (``second_factor_needed``):
    a TOTP code or an unused recovery code. Failures count towards the lockout."""
    now = now or datetime.now(UTC)
    if user.locked_until is not None and user.locked_until > now:
        _audit(session, "auth.refused_locked", user)
        return SignIn(Outcome.locked, locked_until=user.locked_until)
    if not user.totp_secret or not _second_factor_ok(session, user, code, now):
        return _failed(session, user, now, "second factor")
    return signed_in(session, user)


def _second_factor_ok(session: Session, user: User, code: str, now: datetime) -> bool:
    """A TOTP code not used before (a replayed code fails, RFC 6238 section 5.2), or an unused
    recovery code."""
    assert user.totp_secret is not None
    step = security.totp_step(user.totp_secret, code, at=now)
    if step is not None:
        if user.totp_last_step is not None and step <= user.totp_last_step:
            return False
        user.totp_last_step = step
        return True
    return _spend_recovery_code(session, user, code, now)


def signed_in(session: Session, user: User) -> SignIn:
    """Record a completed sign-in: the failure count resets, the trail says so."""
    user.failed_logins = 0
    user.locked_until = None
    _audit(session, "auth.login", user)
    return SignIn(Outcome.ok, user)


def _failed(session: Session, user: User, now: datetime, what: str) -> SignIn:
    user.failed_logins += 1
    user.locked_until = security.lockout_after(user.failed_logins, now)
    _audit(
        session,
        "auth.failure",
        user,
        reason=what,
        failed_logins=user.failed_logins,
        locked=user.locked_until is not None,
    )
    if user.locked_until is not None:
        return SignIn(Outcome.locked, locked_until=user.locked_until)
    return SignIn(Outcome.bad_credentials)


def _spend_recovery_code(session: Session, user: User, code: str, now: datetime) -> bool:
    wanted = security.recovery_digest(code)
    for row in session.scalars(
        select(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    ):
        if security.same_digest(row.code_hash, wanted):
            row.used_at = now
            return True
    return False


def issue_token(
    *,
    session: Session,
    user: User,
    name: str,
    scopes: list[str],
    lifetime: timedelta = timedelta(days=90),
) -> str:
    """A new API token for ``user``; the secret is returned once, only its digest is kept."""
    token = security.new_api_token(lifetime=lifetime)
    row = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=token.token_hash,
        scopes=scopes,
        expires_at=token.expires_at,
    )
    session.add(row)
    session.flush()
    audit.record(
        "token.issue",
        session=session,
        actor=str(user.id),
        organisation_id=user.organisation_id,
        target_type="api_token",
        target_id=row.id,
        details={"scopes": sorted(scopes)},
    )
    return token.secret


def token_user(
    *, session: Session, secret: str, needed: str, now: datetime | None = None
) -> User | None:
    """The user a token acts for when it is known, unexpired and has the ``needed`` scope."""
    found = resolve_token(session=session, secret=secret, now=now)
    if found is None or not security.token_allows(found[1], needed):
        return None
    return found[0]


def revoke_token(*, session: Session, user: User, token_id: int) -> bool:
    """Delete one of ``user``'s tokens; False when the user has no such token."""
    row = session.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        return False
    session.delete(row)
    _audit(session, "token.revoke", user, token_id=token_id)
    return True


def resolve_token(
    *, session: Session, secret: str, now: datetime | None = None
) -> tuple[User, list[str]] | None:
    """The user a known, unexpired token acts for, and the token's scopes."""
    now = now or datetime.now(UTC)
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == security.digest(secret)))
    if row is None or row.expires_at <= now:
        return None
    user = session.get(User, row.user_id)
    if user is None:
        return None
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        row.last_used_at = now
    return user, list(row.scopes)


# -- sharing between organisations ---------------------------------------------------------------

#: Kinds of records an organisation can share for reading.
SHAREABLE = frozenset({"alerts", "hunts"})


def share(*, session: Session, actor: str, owner_id: int, partner_id: int, resource: str) -> None:
    """Let organisation ``partner_id`` read ``owner_id``'s records of kind ``resource``."""
    if resource not in SHAREABLE:
        raise AccountError(f"records of kind {resource!r} cannot be shared")
    if owner_id == partner_id:
        raise AccountError("an organisation already sees its own records")
    if session.get(Organisation, partner_id) is None:
        raise AccountError("no such partner organisation")
    exists = session.scalar(
        select(OrganisationShare.id).where(
            OrganisationShare.owner_id == owner_id,
            OrganisationShare.partner_id == partner_id,
            OrganisationShare.resource == resource,
        )
    )
    if exists is None:
        session.add(OrganisationShare(owner_id=owner_id, partner_id=partner_id, resource=resource))
        audit.record(
            "organisation.share",
            session=session,
            actor=actor,
            organisation_id=owner_id,
            target_type="organisation",
            target_id=partner_id,
            details={"resource": resource},
        )


def visible_organisations(*, session: Session, organisation_id: int, resource: str) -> list[int]:
    """Organisations whose ``resource`` records a member of ``organisation_id`` may read: its
    own, then those that shared them with it."""
    shared = session.scalars(
        select(OrganisationShare.owner_id).where(
            OrganisationShare.partner_id == organisation_id,
            OrganisationShare.resource == resource,
        )
    ).all()
    return [organisation_id, *sorted(set(shared) - {organisation_id})]


# -- administration ----------------------------------------------------------------------------


def set_role(*, session: Session, actor: User, user: User, role: Role) -> None:
    """An administrator changes the role of a user of the same organisation."""
    _same_organisation(actor, user)
    if user.id == actor.id and role is not Role.administrator:
        raise AccountError("administrators cannot take their own administrator role away")
    if user.role is not role:
        previous = user.role
        user.role = role
        _audit(session, "user.role", user, actor=str(actor.id), role_from=str(previous),
               role_to=str(role))  # fmt: skip


def reset_second_factor(*, session: Session, actor: User, user: User) -> None:
    """Turn a user's second factor off (a lost phone): recovery codes are deleted and the user
    enrols again at the next sign-in if the role needs a second factor."""
    _same_organisation(actor, user)
    user.totp_secret = None
    user.totp_last_step = None
    _delete_recovery_codes(session, user)
    _audit(session, "user.totp_reset", user, actor=str(actor.id))


def unlock(*, session: Session, actor: User, user: User) -> None:
    """Lift a lockout before it ends."""
    _same_organisation(actor, user)
    user.failed_logins = 0
    user.locked_until = None
    _audit(session, "user.unlock", user, actor=str(actor.id))


def _same_organisation(actor: User, user: User) -> None:
    if actor.organisation_id != user.organisation_id:
        raise AccountError("no such user in your organisation")
