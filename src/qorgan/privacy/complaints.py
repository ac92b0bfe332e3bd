"""Complaints and objections: a citizen complains to an organisation that holds their data
(with what the authorised body asks for: the organisation, the period and dates, a
description and evidence, their name and contacts), or objects to automated processing of
their data; the organisation's data-protection officer answers by a deadline counted in
Kazakh working days (:data:`ANSWER_DAYS`, on the calendar of :mod:`qorgan.core.workdays`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from qorgan.core import audit
from qorgan.core.errors import QorganError
from qorgan.core.models import Organisation, User
from qorgan.core.workdays import WorkCalendar
from qorgan.privacy.models import (
    Complaint,
    ComplaintKind,
    ComplaintStatus,
    InformationSystem,
    Subject,
)
from qorgan.privacy.protection import Protection

#: What filing each kind records in the audit trail.
AUDIT_ACTIONS = {
    ComplaintKind.complaint: "privacy.complaint_file",
    ComplaintKind.objection: "privacy.objection_file",
}
#: Working days an organisation has to answer (the Administrative Procedure Code's term for
#: an appeal, 15 working days).
ANSWER_DAYS = 15
MAX_TEXT = 10_000
#: A citizen may have this many complaints and objections open at once, and file this many in
#: a day: room for any real grievance, not for burying a data-protection officer.
MAX_OPEN = 20
MAX_PER_DAY = 5


class ComplaintError(QorganError):
    """A complaint cannot be filed or answered as asked; the message is fit for the user."""


@dataclass(frozen=True)
class ComplaintIn:
    kind: ComplaintKind
    organisation_id: int
    system_id: int | None
    name: str
    contacts: str
    period_from: date | None
    period_to: date | None
    description: str
    evidence: str | None = None


def _text(value: str | None, what: str, *, required: bool, size: int = MAX_TEXT) -> str | None:
    value = (value or "").strip()
    if not value:
        if required:
            raise ComplaintError(f"{what} is required")
        return None
    if len(value) > size:
        raise ComplaintError(f"{what} has at most {size} characters")
    if "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ComplaintError(f"{what} cannot contain NUL or unpaired surrogate characters")
    return value


def holders(*, session: Session) -> list[tuple[int, str]]:
    """Organisations a citizen can complain to: those with registered systems (id, name)."""
    return [
        (row.id, row.name)
        for row in session.scalars(
            select(Organisation)
            .where(Organisation.id.in_(select(InformationSystem.organisation_id)))
            .order_by(Organisation.name)
        )
    ]


def _within_limits(session: Session, subject: Subject, now: datetime) -> None:
    """Refuse a complaint over :data:`MAX_OPEN` or :data:`MAX_PER_DAY`. The subject's row is
    written first (an update that changes nothing: PostgreSQL locks the row, SQLite takes its
    write lock), so that two complaints sent at the same instant are counted one after the
    other, not both against the same count."""
    session.execute(update(Subject).where(Subject.id == subject.id).values(id=Subject.id))
    mine = select(func.count()).select_from(Complaint).where(Complaint.subject_id == subject.id)
    if (session.scalar(mine.where(Complaint.status == ComplaintStatus.open)) or 0) >= MAX_OPEN:
        raise ComplaintError(f"you have {MAX_OPEN} complaints open: wait for their answers")
    today = session.scalar(mine.where(Complaint.filed_at > now - timedelta(days=1))) or 0
    if today >= MAX_PER_DAY:
        raise ComplaintError(f"you filed {MAX_PER_DAY} complaints in the last day: try tomorrow")


def file(
    *,
    session: Session,
    protection: Protection,
    calendar: WorkCalendar,
    subject: Subject,
    complaint: ComplaintIn,
    now: datetime | None = None,
) -> Complaint:
    """File the citizen's complaint or objection; the answer is due in :data:`ANSWER_DAYS`
    working days."""
    now = now or datetime.now(UTC)
    if complaint.organisation_id not in {o for o, _ in holders(session=session)}:
        raise ComplaintError("choose an organisation that holds personal data")
    if complaint.system_id is not None:
        system = session.get(InformationSystem, complaint.system_id)
        if system is None or system.organisation_id != complaint.organisation_id:
            raise ComplaintError("the system is not one of the organisation's")
    start, end = complaint.period_from, complaint.period_to
    if start and end and start > end:
        raise ComplaintError("the period ends before it starts")
    if complaint.period_to and complaint.period_to > now.date():
        raise ComplaintError("the period cannot end in the future")
    name = _text(complaint.name, "your name", required=True, size=200)
    contacts = _text(complaint.contacts, "your contacts", required=True, size=300)
    _within_limits(session, subject, now)
    row = Complaint(
        kind=complaint.kind,
        subject_id=subject.id,
        organisation_id=complaint.organisation_id,
        system_id=complaint.system_id,
        contacts=protection.encrypt(f"{name}\n{contacts}"),
        period_from=complaint.period_from,
        period_to=complaint.period_to,
        description=_text(complaint.description, "a description", required=True),
        evidence=_text(complaint.evidence, "the evidence", required=False),
        filed_at=now,
        due_at=calendar.add_working_days(now, ANSWER_DAYS),
    )
    session.add(row)
    session.flush()
    audit.record(
        AUDIT_ACTIONS[complaint.kind],
        session=session,
        actor="citizen",
        organisation_id=complaint.organisation_id,
        target_type="privacy_complaint",
        target_id=row.id,
    )
    return row


def answer(
    *,
    session: Session,
    complaint: Complaint,
    staff: User,
    text: str,
    now: datetime | None = None,
) -> None:
    """The DPO's answer; a complaint is answered once (two answers at once: one is kept)."""
    if staff.organisation_id != complaint.organisation_id:
        raise ComplaintError("only the organisation complained to can answer")
    body = _text(text, "the answer", required=True)
    now = now or datetime.now(UTC)
    changed = session.execute(
        update(Complaint)
        .where(Complaint.id == complaint.id, Complaint.status == ComplaintStatus.open)
        .values(status=ComplaintStatus.answered, answer=body, answered_at=now, answered_by=staff.id)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        raise ComplaintError("this complaint is already answered")
    session.refresh(complaint)
    audit.record(
        "privacy.complaint_answer",
        session=session,
        actor=str(staff.id),
        organisation_id=complaint.organisation_id,
        target_type="privacy_complaint",
        target_id=complaint.id,
    )


def of_organisations(
    *, session: Session, organisation_ids: Collection[int], status: ComplaintStatus | None = None
) -> list[Complaint]:
    """Complaints to the organisations, the soonest due first."""
    query = select(Complaint).where(Complaint.organisation_id.in_(list(organisation_ids)))
    if status is not None:
        query = query.where(Complaint.status == status)
    return list(session.scalars(query.order_by(Complaint.due_at, Complaint.id)))


def get(
    *, session: Session, organisation_ids: Collection[int], complaint_id: int
) -> Complaint | None:
    """A complaint to one of the organisations, or None."""
    row = session.get(Complaint, complaint_id)
    if row is None or row.organisation_id not in set(organisation_ids):
        return None
    return row


def overdue(complaint: Complaint, now: datetime) -> bool:
    return complaint.status is ComplaintStatus.open and complaint.due_at < now
