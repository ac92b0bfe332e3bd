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

from sqlalchemy import select
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


def _consent_reason(
    session: Session, subject: Subject, system: InformationSystem, request: AccessRequest, today
) -> tuple[str, int | None]:
    consents = session.scalars(
        select(Consent)
        .where(Consent.subject_id == subject.id, Consent.system_id == system.id)
        .order_by(Consent.given_at.desc(), Consent.id.desc())
    ).all()
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


def _decide(
    session: Session, subject: Subject, system: InformationSystem, request: AccessRequest, today
) -> tuple[Outcome, str, int | None]:
    if request.purpose not in system.purposes:
        return Outcome.deny, "purpose_not_registered", None
    if request.legal_basis not in system.legal_bases:
        return Outcome.deny, "basis_not_registered", None
    if not set(request.categories) <= set(system.categories):
        return Outcome.deny, "category_not_registered", None
    if request.legal_basis != LegalBasis.consent:
        return Outcome.allow, "legal_basis", None
    reason, consent_id = _consent_reason(session, subject, system, request, today)
    return (Outcome.allow if reason == "consent" else Outcome.deny), reason, consent_id


def _recorded(session: Session, system: InformationSystem, request_id: str) -> Decision | None:
    row = session.scalar(
        select(AccessRecord).where(
            AccessRecord.system_id == system.id, AccessRecord.request_id == request_id
        )
    )
    if row is None:
        return None
    return Decision(row.id, Outcome(row.outcome), row.reason, row.at, row.consent_id)


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
    if request.request_id is not None:
        earlier = _recorded(session, system, request.request_id)
        if earlier is not None:
            return earlier
    subject = subject_for(session=session, protection=protection, iin=request.subject_iin)
    if reported:
        outcome, reason, consent_id = Outcome.reported, "reported", None
    else:
        outcome, reason, consent_id = _decide(session, subject, system, request, today)
    row = AccessRecord(
        subject_id=subject.id,
        system_id=system.id,
        at=now,
        outcome=outcome,
        reason=reason,
        official=request.official,
        purpose=request.purpose,
        legal_basis=LegalBasis(request.legal_basis),
        categories=list(request.categories),
        consent_id=consent_id,
        hidden_until=request.hidden_until,
        hidden_because=request.hidden_because,
        hidden_visible_to=request.hidden_visible_to,
        request_id=request.request_id,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        # The same request_id, recorded by a concurrent retry: its decision is the answer.
        earlier = _recorded(session, system, request.request_id or "")
        if earlier is None:
            raise
        return earlier
    return Decision(row.id, outcome, reason, now, consent_id)


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
