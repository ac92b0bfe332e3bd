"""Access decisions: may system S read categories C of subject X for purpose P under basis B,
on behalf of official U? Every decision, and every access a system reports, goes into the
subject's access log with those facts; the caller answers only after the transaction that
holds it has committed, so an acknowledged decision is never lost.

The rules, in order (the first that fails gives the reason):

1. the purpose, the basis and every category must be registered for the system;
2. under ``consent``, an active consent of the subject to that system must cover the purpose
   and every category, and its term must not have ended; the reason names what is missing
   (none, withdrawn, expired);
3. under another basis, access is allowed and recorded with the basis claimed (the law, not
   the subject, permits it; the log lets the subject and the DPO see it was claimed).

An access hidden by law (``hidden_until``: only under ``law_enforcement``) is recorded with
its grounds and who may see it meanwhile; the subject's log shows it from that date on.
A request may carry the system's own ``request_id``: asked again (a retry after a lost answer),
the recorded decision is returned, not made twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Row, Select, bindparam, select
from sqlalchemy import insert as sa_insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from qorgan.core.errors import QorganError
from qorgan.privacy.identifiers import IdentifierError, parse_iin
from qorgan.privacy.models import (
    AccessRecord,
    Consent,
    ConsentStatus,
    DataCategory,
    InformationSystem,
    LegalBasis,
    Outcome,
    Subject,
)
from qorgan.privacy.protection import Protection

#: The longest an access may stay hidden from its subject in one go.
MAX_HIDDEN = timedelta(days=5 * 366)

#: Each reason's plain-language explanation (pages translate them by code).
REASONS = {
    "consent": "the subject's consent covers this purpose and these data",
    "legal_basis": "the law permits this access without consent on the basis claimed",
    "no_consent": "the subject has not consented to this system using these data for this purpose",
    "consent_withdrawn": "the subject withdrew their consent",
    "consent_expired": "the subject's consent has ended",
    "purpose_not_registered": "the purpose is not registered for this system",
    "basis_not_registered": "the legal basis is not registered for this system",
    "category_not_registered": "the system is not registered to hold these categories of data",
    "reported": "the system reported this access",
    "staff_read": "a member of the organisation's staff read your record in this service",
}


class DecisionError(QorganError):
    """The request cannot be decided as sent; the message is fit for the caller."""


@dataclass(frozen=True)
class AccessRequest:
    subject_iin: str
    categories: Sequence[str]
    purpose: str
    legal_basis: str
    official: str
    request_id: str | None = None
    hidden_until: date | None = None
    hidden_because: str | None = None
    hidden_visible_to: str | None = None


@dataclass(frozen=True)
class Decision:
    record_id: int
    outcome: Outcome
    reason: str
    at: datetime
    consent_id: int | None

    @property
    def explanation(self) -> str:
        return REASONS[self.reason]


def subject_for(*, session: Session, protection: Protection, iin: str) -> Subject:
    """The subject with this IIN (checked), made on first sight; safe against a concurrent
    first sight of the same person."""
    try:
        parsed = parse_iin(iin)
    except IdentifierError as exc:
        raise DecisionError(str(exc)) from exc
    pseudonym = protection.pseudonym(parsed.value)
    found = session.scalar(select(Subject).where(Subject.iin_hash == pseudonym))
    if found is not None:
        return found
    try:
        with session.begin_nested():
            found = Subject(iin_hash=pseudonym)
            session.add(found)
    except IntegrityError:
        found = session.scalar(select(Subject).where(Subject.iin_hash == pseudonym))
        assert found is not None
    return found


def _clean(value: str, what: str, size: int) -> str:
    value = " ".join(value.split())
    if not value or len(value) > size:
        raise DecisionError(f"{what} has 1 to {size} characters")
    return value


def _request(request: AccessRequest, today: date) -> AccessRequest:
    """The request with its values checked and normalised."""
    try:
        basis = LegalBasis(request.legal_basis)
        categories = sorted({DataCategory(c).value for c in request.categories})
    except ValueError as exc:
        raise DecisionError(f"unknown legal basis or data category: {exc}") from None
    if not categories:
        raise DecisionError("name at least one data category")
    hidden_until = request.hidden_until
    if hidden_until is not None:
        if basis is not LegalBasis.law_enforcement:
            raise DecisionError("only an access under law_enforcement may be hidden")
        if not today < hidden_until <= today + MAX_HIDDEN:
            raise DecisionError("hidden_until must be a date within five years from today")
        if not (request.hidden_because and request.hidden_visible_to):
            raise DecisionError("a hidden access needs its grounds and who may see it")
    return AccessRequest(
        subject_iin=request.subject_iin,
        categories=categories,
        purpose=_clean(request.purpose, "a purpose", 200),
        legal_basis=basis.value,
        official=_clean(request.official, "the official", 200),
        request_id=_clean(request.request_id, "a request id", 100) if request.request_id else None,
        hidden_until=hidden_until,
        hidden_because=_clean(request.hidden_because, "the grounds", 500) if hidden_until else None,
        hidden_visible_to=_clean(request.hidden_visible_to, "who may see it", 300)
        if hidden_until
        else None,
    )


def _registered(system: InformationSystem, request: AccessRequest) -> tuple[Outcome, str] | None:
    """Rule 1 and rule 3: what the registry alone decides, or None when consent must."""
    if request.purpose not in system.purposes:
        return Outcome.deny, "purpose_not_registered"
    if request.legal_basis not in system.legal_bases:
        return Outcome.deny, "basis_not_registered"
    if not set(request.categories) <= set(system.categories):
        return Outcome.deny, "category_not_registered"
    if request.legal_basis != LegalBasis.consent:
        return Outcome.allow, "legal_basis"
    return None


def _consent_reason(
    consents: Sequence[Row[Any]], request: AccessRequest, today: date
) -> tuple[str, int | None]:
    """Rule 2 over the subject's consents to the system, newest first (``id``, ``purposes``,
    ``categories``, ``status``, ``term_until``)."""
    covering = [
        c
        for c in consents
        if request.purpose in c.purposes and set(request.categories) <= set(c.categories)
    ]
    for consent in covering:
        ended = consent.term_until is not None and consent.term_until < today
        if consent.status is ConsentStatus.active and not ended:
            return "consent", consent.id
    if not covering:
        return "no_consent", None
    newest = covering[0]
    if newest.status is ConsentStatus.withdrawn:
        return "consent_withdrawn", newest.id
    return "consent_expired", newest.id


def _recorded(session: Session, system: InformationSystem, request_id: str) -> Decision | None:
    row = session.scalar(
        select(AccessRecord).where(
            AccessRecord.system_id == system.id, AccessRecord.request_id == request_id
        )
    )
    if row is None:
        return None
    return Decision(row.id, Outcome(row.outcome), row.reason, row.at, row.consent_id)


def _lookup_statement(earlier: bool, consents: bool) -> Select[Any]:
    columns: list[Any] = [Subject.id.label("subject_id")]
    if earlier:
        recorded = select(AccessRecord.id).where(
            AccessRecord.system_id == bindparam("system_id"),
            AccessRecord.request_id == bindparam("request_id"),
        )
        columns.append(recorded.scalar_subquery().label("earlier"))
    if not consents:
        return select(*columns).where(Subject.iin_hash == bindparam("pseudonym"))
    return (
        select(
            *columns,
            Consent.id,
            Consent.purposes,
            Consent.categories,
            Consent.status,
            Consent.term_until,
        )
        .select_from(Subject)
        .outerjoin(
            Consent,
            (Consent.subject_id == Subject.id) & (Consent.system_id == bindparam("system_id")),
        )
        .where(Subject.iin_hash == bindparam("pseudonym"))
        .order_by(Consent.given_at.desc(), Consent.id.desc())
    )


#: The lookup of every decision, by (request id given, consents needed): built once, so each
#: decision only binds its values (building and keying a statement costs more than running it).
_LOOKUPS = {(e, c): _lookup_statement(e, c) for e in (False, True) for c in (False, True)}
_LOG = AccessRecord.__table__
_INSERTS = {
    "postgresql": postgresql.insert(_LOG)
    .on_conflict_do_nothing(index_elements=["system_id", "request_id"])
    .returning(_LOG.c.id),
    "sqlite": sqlite.insert(_LOG)
    .on_conflict_do_nothing(index_elements=["system_id", "request_id"])
    .returning(_LOG.c.id),
}
_PLAIN_INSERT = sa_insert(_LOG).returning(_LOG.c.id)


def _lookup(
    session: Session,
    system: InformationSystem,
    pseudonym: str,
    request_id: str | None,
    consents: bool,
) -> Sequence[Row[Any]]:
    """In one round trip, on the session's connection (the ORM's per-statement work cost four
    times the query, bench/decisions.py): the subject's id, whether the system's request id is
    recorded already and, with ``consents``, the subject's consents to the system, newest
    first (one row each, or one row of nulls). No row: the subject is seen for the first
    time."""
    statement = _LOOKUPS[request_id is not None, consents]
    parameters = {"pseudonym": pseudonym, "system_id": system.id, "request_id": request_id}
    return session.connection().execute(statement, parameters).all()


def _insert(session: Session, values: dict[str, Any], request_id: str | None) -> int | None:
    """Add the entry to the log; None when the system's request id is there already (a retry
    that raced this one). One statement: the database settles the race, no savepoint."""
    connection = session.connection()
    if request_id is None:
        return connection.execute(_PLAIN_INSERT, values).scalar_one()
    statement = _INSERTS.get(connection.dialect.name)
    if statement is not None:
        return connection.execute(statement, values).scalar()
    try:  # another database: the unique constraint, behind a savepoint
        with session.begin_nested():
            return connection.execute(_PLAIN_INSERT, values).scalar_one()
    except IntegrityError:
        return None


def record(
    *,
    session: Session,
    protection: Protection,
    system: InformationSystem,
    request: AccessRequest,
    reported: bool = False,
    now: datetime | None = None,
) -> Decision:
    """Decide ``request`` for ``system`` (or, ``reported``, record an access it made) and add
    it to the subject's access log; the caller commits before answering."""
    now = now or datetime.now(UTC)
    today = now.date()
    request = _request(request, today)
    request_id = request.request_id
    try:
        pseudonym = protection.pseudonym(parse_iin(request.subject_iin).value)
    except IdentifierError as exc:
        earlier = _recorded(session, system, request_id) if request_id else None
        if earlier is not None:  # a retry is answered as it was, whatever it now says
            return earlier
        raise DecisionError(str(exc)) from exc
    decided = (Outcome.reported, "reported") if reported else _registered(system, request)
    rows = _lookup(session, system, pseudonym, request_id, consents=decided is None)
    if rows and request_id is not None and rows[0].earlier is not None:
        earlier = _recorded(session, system, request_id)
        assert earlier is not None
        return earlier
    if rows:
        subject_id = rows[0].subject_id
    else:
        earlier = _recorded(session, system, request_id) if request_id else None
        if earlier is not None:
            return earlier
        subject_id = subject_for(session=session, protection=protection, iin=request.subject_iin).id
    consent_id = None
    if decided is not None:
        outcome, reason = decided
    else:
        consents = [r for r in rows if r.id is not None]
        reason, consent_id = _consent_reason(consents, request, today)
        outcome = Outcome.allow if reason == "consent" else Outcome.deny
    record_id = _insert(
        session,
        {
            "subject_id": subject_id,
            "system_id": system.id,
            "at": now,
            "outcome": outcome,
            "reason": reason,
            "official": request.official,
            "purpose": request.purpose,
            "legal_basis": LegalBasis(request.legal_basis),
            "categories": list(request.categories),
            "consent_id": consent_id,
            "hidden_until": request.hidden_until,
            "hidden_because": request.hidden_because,
            "hidden_visible_to": request.hidden_visible_to,
            "request_id": request_id,
        },
        request_id,
    )
    if record_id is None:
        # The same request_id, recorded by a concurrent retry: its decision is the answer.
        earlier = _recorded(session, system, request_id or "")
        assert earlier is not None
        return earlier
    return Decision(record_id, outcome, reason, now, consent_id)


def subject_log(*, session: Session, subject_id: int, today: date) -> list[AccessRecord]:
    """The subject's access log as they may read it, newest first: entries hidden by law
    appear once their date has come."""
    return list(
        session.scalars(
            select(AccessRecord)
            .where(
                AccessRecord.subject_id == subject_id,
                (AccessRecord.hidden_until.is_(None)) | (AccessRecord.hidden_until <= today),
            )
            .order_by(AccessRecord.at.desc(), AccessRecord.id.desc())
        )
    )
