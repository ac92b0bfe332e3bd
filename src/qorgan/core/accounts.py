"""Accounts: organisations, users, sign-in with a second factor, lockout, API tokens.

Service functions take ``*, session`` and never commit (the caller's unit of work does). Every
change and every sign-in attempt is written to the audit trail, without personal data: users
appear by id, never by e-mail or name.

Sign-in counters and one-time credentials change by atomic conditional updates, never by
read-change-write in Python, so requests sent at the same instant cannot each see the old
value: failures add one to ``failed_logins`` in the database (``RETURNING`` the new count), a
TOTP time step is claimed only if it is newer than the last one, a recovery code is spent only
if still unused. The row count says who won. Rows are updated before the audit entry is
appended (whose lock is taken last), so concurrent sign-ins always lock in the same order.

An e-mail address is unique within an organisation only; a sign-in tries every account that
holds the address and, when the password opens several, asks which organisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

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
from qorgan.core.roles import ROLE_PERMISSIONS

#: Roles that handle incidents or personal data must sign in with a second factor.
MFA_ROLES = frozenset(
    {
        Role.administrator,
        Role.soc_analyst,
        Role.cert_coordinator,
        Role.dpo,
        Role.auditor,
        Role.citizen,  # a citizen's record holds who read their data, and their complaints
    }
)


class AccountError(QorganError):
    """An account operation was refused; the message is fit for the user."""


class SecondFactorFailed(AccountError):
    """A second-factor code was wrong (or the account is locked). The failure is already
    recorded in the session and counts towards the lockout: commit it, never roll it back.
    ``result`` says whether the account is now locked."""

    def __init__(self, message: str, result: SignIn) -> None:
        super().__init__(message)
        self.result = result


class Outcome(StrEnum):
    ok = "ok"
    bad_credentials = "bad_credentials"  # also for unknown users: never tell which
    locked = "locked"
    second_factor_needed = "second_factor_needed"
    enrolment_needed = "enrolment_needed"  # the role needs a second factor not yet set up
    #: The password opens accounts in several organisations: ask which (``organisations``).
    choose_organisation = "choose_organisation"


@dataclass(frozen=True, slots=True)
class SignIn:
    outcome: Outcome
    user: User | None = None
    locked_until: datetime | None = None
    #: (id, name) of the organisations to choose from, for ``choose_organisation`` only.
    organisations: tuple[tuple[int, str], ...] = ()


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
    email = normal_email(email)
    if "@" not in email:
        raise AccountError("an e-mail address is required")
    # Within the organisation only: an address used elsewhere must not show (the unique
    # constraint is per organisation too).
    taken = select(User.id).where(User.organisation_id == organisation_id, User.email == email)
    if session.scalar(taken) is not None:
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


def normal_email(email: str) -> str:
    return email.strip().lower()


def member(*, session: Session, organisation_id: int, email: str) -> User | None:
    """The organisation's member with this e-mail address (the command line acts as one)."""
    return session.scalar(
        select(User).where(
            User.organisation_id == organisation_id, User.email == normal_email(email)
        )
    )


def change_password(*, session: Session, user: User, old: str, new: str) -> int:
    """Change the user's password; the user's API tokens are revoked (a stolen password may
    have made them). Returns how many tokens were revoked."""
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
    return revoke_all_tokens(session=session, user=user, reason="password change")


def start_totp(user: User) -> tuple[str, str]:
    """A new secret and its otpauth:// URI (for the QR code); nothing is saved until confirmed."""
    secret = security.new_totp_secret()
    return secret, security.totp_uri(secret, user.email)


WRONG_CODE = "the code does not match: check the authenticator app's clock"


def confirm_totp(
    *, session: Session, user: User, secret: str, code: str, now: datetime | None = None
) -> list[str]:
    """Turn the second factor on once the user proves the app works; returns recovery codes,
    shown once (only their digests are kept). A wrong code counts towards the lockout
    (:class:`SecondFactorFailed`); a second factor set up meanwhile refuses (AccountError)."""
    now = now or datetime.now(UTC)
    _refuse_if_locked(session, user, now)
    step = security.totp_step(secret, code, at=now)
    if step is None:
        raise SecondFactorFailed(WRONG_CODE, _failed(session, [user], now, "enrolment code"))
    # Only the first of two enrolments sent together turns the second factor on.
    claimed = session.execute(
        update(User)
        .where(User.id == user.id, User.totp_secret.is_(None))
        .values(totp_secret=secret, totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(claimed) != 1:
        raise AccountError(WRONG_CODE)
    set_committed_value(user, "totp_secret", secret)
    set_committed_value(user, "totp_last_step", step)
    codes = _replace_recovery_codes(session, user)
    _audit(session, "user.totp_enrol", user)
    return codes


def renew_recovery_codes(
    *, session: Session, user: User, code: str, now: datetime | None = None
) -> list[str]:
    """New recovery codes (the old ones stop working), after a fresh TOTP code proves the user
    holds the second factor; shown once. A wrong code counts towards the lockout like any
    second-factor check (:class:`SecondFactorFailed`)."""
    now = now or datetime.now(UTC)
    if not user.totp_secret:
        raise AccountError("the second factor is not set up")
    _refuse_if_locked(session, user, now)
    step = security.totp_step(user.totp_secret, code, at=now)
    if step is None or not _claim_totp_step(session, user, user.totp_secret, step):
        raise SecondFactorFailed(
            WRONG_CODE, _failed(session, [user], now, "recovery codes renewal")
        )
    codes = _replace_recovery_codes(session, user)
    _audit(session, "user.recovery_codes", user)
    return codes


def _locked(user: User, now: datetime) -> bool:
    return user.locked_until is not None and user.locked_until > now


def _refuse_if_locked(session: Session, user: User, now: datetime) -> None:
    if _locked(user, now):
        _audit(session, "auth.refused_locked", user)
        raise SecondFactorFailed(WRONG_CODE, SignIn(Outcome.locked, locked_until=user.locked_until))


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
    organisation_id: int | None = None,
    now: datetime | None = None,
) -> SignIn:
    """Check a sign-in: password, lockout, then the second factor (a TOTP code or a recovery
    code) where the role needs one. Failures count towards the lockout.

    Every account holding the address is a candidate and its password is checked (one Argon2
    check each, or one on a dummy hash when there is none, so the time taken does not tell
    whether the address is known). When none matches, a failure counts on each. When the
    password opens accounts in several organisations, the answer is ``choose_organisation``
    with their names, and the caller asks again with ``organisation_id``; organisations are
    never named before a password matched.
    """
    now = now or datetime.now(UTC)
    candidates = session.scalars(
        select(User).where(User.email == normal_email(email)).order_by(User.id)
    ).all()
    if not candidates:
        security.verify_nobody(password)
        audit.record(
            "auth.failure",
            session=session,
            actor="anonymous",
            details={"reason": "unknown account"},
        )
        return SignIn(Outcome.bad_credentials)
    # Every candidate is checked, locked or not, so the time taken tells nothing either.
    matched = [u for u in candidates if security.verify_password(u.password_hash, password)]
    if not matched:
        return _failed(session, candidates, now, "password")
    if len(matched) > 1:
        chosen = [u for u in matched if u.organisation_id == organisation_id]
        if not chosen:
            return SignIn(
                Outcome.choose_organisation,
                organisations=tuple((u.organisation_id, u.organisation.name) for u in matched),
            )
        matched = chosen
    return _password_matched(session, matched[0], password, second_factor, now)


def sign_in_account(
    *, session: Session, user: User | None, password: str, now: datetime | None = None
) -> SignIn:
    """Check a sign-in to one account found by another identifier than the e-mail address (a
    citizen's IIN): the same password check, lockout, second-factor stage and audit as
    :func:`sign_in`. ``None`` (nobody has that identifier) costs one Argon2 check too and
    gives the same answer as a wrong password."""
    now = now or datetime.now(UTC)
    if user is None:
        security.verify_nobody(password)
        audit.record(
            "auth.failure",
            session=session,
            actor="anonymous",
            details={"reason": "unknown account"},
        )
        return SignIn(Outcome.bad_credentials)
    if not security.verify_password(user.password_hash, password):
        return _failed(session, [user], now, "password")
    return _password_matched(session, user, password, None, now)


def _password_matched(
    session: Session, user: User, password: str, second_factor: str | None, now: datetime
) -> SignIn:
    """The rest of a sign-in once ``password`` opened ``user``: lockout, second factor."""
    if _locked(user, now):
        _audit(session, "auth.refused_locked", user)
        return SignIn(Outcome.locked, locked_until=user.locked_until)
    if user.role in MFA_ROLES or user.totp_secret:
        if not user.totp_secret:
            return SignIn(Outcome.enrolment_needed, user)
        if not second_factor:
            return SignIn(Outcome.second_factor_needed, user)
        if not _second_factor_ok(session, user, second_factor, now):
            return _failed(session, [user], now, "second factor")
    if security.needs_rehash(user.password_hash):
        user.password_hash = security.hash_password(password)
    return signed_in(session, user, now=now)


def complete_second_factor(
    *, session: Session, user: User, code: str, now: datetime | None = None
) -> SignIn:
    """The second step of a sign-in whose password was accepted (``second_factor_needed``):
    a TOTP code or an unused recovery code. Failures count towards the lockout."""
    now = now or datetime.now(UTC)
    if _locked(user, now):
        _audit(session, "auth.refused_locked", user)
        return SignIn(Outcome.locked, locked_until=user.locked_until)
    if not user.totp_secret or not _second_factor_ok(session, user, code, now):
        return _failed(session, [user], now, "second factor")
    return signed_in(session, user, now=now)


def _second_factor_ok(session: Session, user: User, code: str, now: datetime) -> bool:
    """A TOTP code not used before (a replayed code fails, RFC 6238 section 5.2), or an unused
    recovery code."""
    assert user.totp_secret is not None
    step = security.totp_step(user.totp_secret, code, at=now)
    if step is not None:
        return _claim_totp_step(session, user, user.totp_secret, step)
    return _spend_recovery_code(session, user, code, now)


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _claim_totp_step(session: Session, user: User, secret: str, step: int) -> bool:
    """Record ``step`` as the last TOTP step used, if it is newer than the last one and the
    secret is still the user's; False when another request claimed it (or a later one) first."""
    result = session.execute(
        update(User)
        .where(
            User.id == user.id,
            User.totp_secret == secret,
            or_(User.totp_last_step.is_(None), User.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(result) != 1:
        return False
    set_committed_value(user, "totp_last_step", step)
    return True


def _spend_recovery_code(session: Session, user: User, code: str, now: datetime) -> bool:
    wanted = security.recovery_digest(code)
    unused = session.execute(
        select(RecoveryCode.id, RecoveryCode.code_hash).where(
            RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
        )
    ).all()
    for row in unused:
        if security.same_digest(row.code_hash, wanted):
            spent = session.execute(
                update(RecoveryCode)
                .where(RecoveryCode.id == row.id, RecoveryCode.used_at.is_(None))
                .values(used_at=now)
                .execution_options(synchronize_session=False)
            )
            return _rowcount(spent) == 1
    return False


def signed_in(session: Session, user: User, *, now: datetime | None = None) -> SignIn:
    """Record a completed sign-in: the failure count resets, the trail says so. Refused
    (``locked``) when concurrent failures locked the account after it was read."""
    now = now or datetime.now(UTC)
    result = session.execute(
        update(User)
        .where(User.id == user.id, or_(User.locked_until.is_(None), User.locked_until <= now))
        .values(failed_logins=0, locked_until=None)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(result) != 1:
        until = session.scalar(select(User.locked_until).where(User.id == user.id))
        set_committed_value(user, "locked_until", until)
        _audit(session, "auth.refused_locked", user)
        return SignIn(Outcome.locked, locked_until=until)
    set_committed_value(user, "failed_logins", 0)
    set_committed_value(user, "locked_until", None)
    _audit(session, "auth.login", user)
    return SignIn(Outcome.ok, user)


def _until(user: User) -> datetime:
    assert user.locked_until is not None
    return user.locked_until


def _failed(session: Session, users: Sequence[User], now: datetime, what: str) -> SignIn:
    """Count a failure on each of ``users`` (in id order) that is not locked already; the
    answer is ``locked`` when all of them are locked afterwards."""
    counted = []
    for user in sorted(users, key=lambda u: u.id):
        if _locked(user, now):
            continue
        count = session.execute(
            update(User)
            .where(User.id == user.id)
            .values(failed_logins=User.failed_logins + 1)
            .returning(User.failed_logins)
            .execution_options(synchronize_session=False)
        ).scalar_one()
        set_committed_value(user, "failed_logins", count)
        until = security.lockout_after(count, now)
        if until is not None:
            session.execute(
                update(User)
                .where(User.id == user.id)
                .values(locked_until=until)
                .execution_options(synchronize_session=False)
            )
            set_committed_value(user, "locked_until", until)
        counted.append(user)
    # The trail last: its lock is taken after the rows', in every transaction.
    for user in users:
        if user in counted:
            _audit(session, "auth.failure", user, reason=what,
                   failed_logins=user.failed_logins, locked=_locked(user, now))  # fmt: skip
        else:
            _audit(session, "auth.refused_locked", user)
    if all(_locked(u, now) for u in users):
        return SignIn(Outcome.locked, locked_until=min(_until(u) for u in users))
    return SignIn(Outcome.bad_credentials)


def issue_token(
    *,
    session: Session,
    user: User,
    name: str,
    scopes: list[str],
    lifetime: timedelta = timedelta(days=90),
) -> str:
    """A new API token for ``user``; the secret is returned once, only its digest is kept.

    A scope names a permission of the user's role, or a wildcard (``alerts:*``, ``*``), which
    grants no more than the role either: a token acts with its user's role narrowed to its
    scopes (:func:`qorgan.core.roles.allows`). Anything else is a ValueError (callers offer
    only the role's permissions)."""
    allowed = {str(p) for p in ROLE_PERMISSIONS[user.role]}
    resources = {p.split(":", 1)[0] for p in allowed}
    beyond = sorted(
        s
        for s in set(scopes)
        if s != "*" and s not in allowed and s not in {f"{r}:*" for r in resources}
    )
    if not scopes or beyond:
        raise ValueError(f"scopes {beyond} are beyond the user's role")
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


def revoke_all_tokens(
    *, session: Session, user: User, reason: str, actor: str | None = None
) -> int:
    """Delete every API token of ``user`` (after a password change or a second-factor reset),
    each audited with ``reason``; returns how many."""
    revoked = session.scalars(
        delete(ApiToken).where(ApiToken.user_id == user.id).returning(ApiToken.id)
    ).all()
    for token_id in sorted(revoked):
        _audit(session, "token.revoke", user, actor=actor, token_id=token_id, reason=reason)
    return len(revoked)


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


def reset_second_factor(*, session: Session, actor: User, user: User) -> int:
    """Turn a user's second factor off (a lost phone, perhaps stolen): recovery codes are
    deleted, the API tokens revoked, and the user enrols again at the next sign-in if the role
    needs a second factor. Returns how many tokens were revoked."""
    _same_organisation(actor, user)
    user.totp_secret = None
    user.totp_last_step = None
    _delete_recovery_codes(session, user)
    _audit(session, "user.totp_reset", user, actor=str(actor.id))
    return revoke_all_tokens(
        session=session, user=user, reason="second factor reset", actor=str(actor.id)
    )


def unlock(*, session: Session, actor: User, user: User) -> None:
    """Lift a lockout before it ends."""
    _same_organisation(actor, user)
    user.failed_logins = 0
    user.locked_until = None
    _audit(session, "user.unlock", user, actor=str(actor.id))


def _same_organisation(actor: User, user: User) -> None:
    if actor.organisation_id != user.organisation_id:
        raise AccountError("no such user in your organisation")
