"""Personal-data leaks: the holder writes a report, uploads the affected subjects, and submits
it, which queues a notice to each subject (:mod:`qorgan.privacy.outbox` sends them).

The law gives the holder one working day from detection to report to the authorised body
(Law 94-V, Art. 20-1), so the deadline is part of the report from the start, counted in the
Kazakh working-day calendar (:mod:`qorgan.core.workdays`), and a report not submitted by then
is overdue. Subjects found later are uploaded to the same report and it is submitted again:
subjects already listed are not added twice, and a subject already notified (or queued) gets
no second notice, since the outbox is unique per report, subject and channel and queueing
is ``INSERT ... ON CONFLICT DO NOTHING``, safe when two submits race.

Opening or linking the incident is the web layer's part (privacy may not import incidents);
:func:`link_incident` only records it. Service functions take ``*, session`` and never commit;
every change is in the audit trail, with counts, never names, IINs or addresses.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, BinaryIO

from sqlalchemy import and_, exists, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite

from qorgan.core import audit
from qorgan.core.db import utcnow
from qorgan.core.errors import QorganError
from qorgan.core.identifiers import IdentifierError, mask_iin, parse_bin
from qorgan.privacy import leak_csv
from qorgan.privacy.leak_models import (
    ContactChannel,
    LeakNotice,
    LeakReport,
    LeakStatus,
    LeakSubject,
    NoticeStatus,
)
from qorgan.privacy.models import DataCategory, InformationSystem, Subject

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qorgan.core.workdays import WorkCalendar
    from qorgan.privacy.leak_csv import SubjectRow
    from qorgan.privacy.protection import Protection

#: The law's deadline: one working day from detection to the report.
DEADLINE_WORKING_DAYS = 1
#: Rows per statement when subjects are looked up and added.
CHUNK = 500
#: A detection time this far in the future is a typo, not a clock skew.
CLOCK_SKEW = timedelta(minutes=5)
TEXT_MAX = 20_000
#: The largest record id the databases' integer keys hold (a larger one is no system's).
ID_MAX = 2**31 - 1


class LeakError(QorganError):
    """A leak report cannot be made or changed as asked; the message is fit for the user."""


class LeakNotFound(LeakError):
    """No such report in the caller's organisation (another's is not found either)."""


@dataclass(frozen=True)
class LeakIn:
    """What the holder reports. ``holder_name`` and ``holder_bin`` default to the system's
    owner when a system is named."""

    categories: Sequence[str]
    description: str
    detected_at: datetime
    measures: str
    responsible_person: str
    contacts: str
    occurred_at: datetime | None = None
    system_id: int | None = None
    holder_name: str | None = None
    holder_bin: str | None = None


@dataclass(frozen=True)
class Added:
    """What an upload did: subjects new to the report, and those it listed already."""

    added: int
    already: int


@dataclass(frozen=True)
class Submitted:
    """What a submit did: notices queued now (0 when everyone was queued before)."""

    queued: int
    first: bool


@dataclass(frozen=True)
class Deadline:
    due_at: datetime
    met_at: datetime | None
    overdue: bool  # not submitted, and the deadline has passed
    late: bool  # submitted after the deadline


@dataclass(frozen=True)
class Figures:
    """Where a report stands, as the API and the pages show it."""

    deadline: Deadline
    subjects: int
    notices: dict[str, int]  # by delivery status


def check_text(value: str, what: str, size: int = TEXT_MAX) -> str:
    """``value`` stripped, refused when empty, longer than ``size``, or not storable (NUL, a
    lone surrogate: PostgreSQL refuses both, and SQLite would keep what PostgreSQL cannot)."""
    if "\x00" in value:
        raise LeakError(f"the {what} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise LeakError(f"the {what} contains an unpaired surrogate character") from None
    value = value.strip()
    if not value or len(value) > size:
        raise LeakError(f"the {what} has 1 to {size:,} characters")
    return value


def _aware(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise LeakError(f"the {what} needs a time zone")
    return moment


def _categories(values: Sequence[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        try:
            member = DataCategory(value).value
        except ValueError:
            choices = ", ".join(c.value for c in DataCategory)
            raise LeakError(f"unknown data category; one of {choices}") from None
        if member not in out:
            out.append(member)
    if not out:
        raise LeakError("name at least one category of data that leaked")
    return out


def deadline(leak: LeakReport, now: datetime | None = None) -> Deadline:
    """The report's deadline as pages and the API show it."""
    now = now or utcnow()
    met = leak.submitted_at
    return Deadline(
        due_at=leak.due_at,
        met_at=met,
        overdue=met is None and now > leak.due_at,
        late=met is not None and met > leak.due_at,
    )


def create(
    *,
    session: Session,
    protection: Protection,
    calendar: WorkCalendar,
    organisation_id: int,
    leak: LeakIn,
    actor: str,
    created_by: int | None = None,
    now: datetime | None = None,
) -> LeakReport:
    """Start a report (a draft); its deadline is one working day after ``detected_at``."""
    now = now or utcnow()
    detected_at = _aware(leak.detected_at, "detection time")
    occurred_at = _aware(leak.occurred_at, "leak time") if leak.occurred_at else None
    if detected_at > now + CLOCK_SKEW:
        raise LeakError("the detection time is in the future")
    if occurred_at is not None and occurred_at > detected_at:
        raise LeakError("the leak cannot have happened after it was detected")
    system = None
    if leak.system_id is not None:
        # An id beyond the key's range would overflow in the driver: it is nobody's system.
        if 1 <= leak.system_id <= ID_MAX:
            system = session.get(InformationSystem, leak.system_id)
        if system is None or system.organisation_id != organisation_id:
            raise LeakError("no such information system in your organisation")
    holder_name = leak.holder_name or (system.owner_name if system else "")
    holder_bin = leak.holder_bin or (system.owner_bin if system else "")
    if not holder_bin:
        raise LeakError("name the holder's BIN, or the system whose owner holds the data")
    try:
        holder_bin = parse_bin(holder_bin).value
    except IdentifierError as exc:
        raise LeakError(f"the holder's BIN: {exc}") from None
    row = LeakReport(
        organisation_id=organisation_id,
        system_id=system.id if system else None,
        holder_name=check_text(holder_name, "holder's name", 300),
        holder_bin=holder_bin,
        categories=_categories(leak.categories),
        description=check_text(leak.description, "description of what leaked"),
        occurred_at=occurred_at,
        detected_at=detected_at,
        measures=check_text(leak.measures, "measures taken"),
        responsible_person=check_text(leak.responsible_person, "responsible person", 200),
        contacts=protection.encrypt(check_text(leak.contacts, "contacts", 500)),
        status=LeakStatus.draft,
        due_at=calendar.add_working_days(detected_at, DEADLINE_WORKING_DAYS),
        created_by=created_by,
        created_at=now,
    )
    session.add(row)
    session.flush()
    audit.record(
        "privacy.leak_create",
        session=session,
        actor=actor,
        organisation_id=organisation_id,
        target_type="privacy_leak",
        target_id=row.id,
        details={"categories": row.categories, "due_at": row.due_at.isoformat()},
    )
    return row


def get(*, session: Session, organisation_ids: Collection[int], leak_id: int) -> LeakReport:
    """The report, or :class:`LeakNotFound` when the organisations have none with that id."""
    row = session.get(LeakReport, leak_id)
    if row is None or row.organisation_id not in set(organisation_ids):
        raise LeakNotFound("no such leak report in your organisation")
    return row


def list_leaks(*, session: Session, organisation_ids: Collection[int]) -> list[LeakReport]:
    """The organisations' reports, newest first."""
    return list(
        session.scalars(
            select(LeakReport)
            .where(LeakReport.organisation_id.in_(list(organisation_ids)))
            .order_by(LeakReport.id.desc())
        )
    )


def subject_count(*, session: Session, leak_id: int) -> int:
    return int(session.scalar(select(func.count()).where(LeakSubject.leak_id == leak_id)) or 0)


def figures(*, session: Session, leak: LeakReport, now: datetime | None = None) -> Figures:
    """The report's deadline, its subjects and its notices by delivery status."""
    return Figures(
        deadline=deadline(leak, now),
        subjects=subject_count(session=session, leak_id=leak.id),
        notices=notice_counts(session=session, leak_id=leak.id),
    )


def load_subjects_csv(
    stream: BinaryIO,
    *,
    max_bytes: int = leak_csv.MAX_BYTES,
    max_rows: int = leak_csv.MAX_ROWS,
    today: date | None = None,
) -> list[SubjectRow]:
    """The uploaded CSV's subjects, every row checked; :class:`~qorgan.privacy.leak_csv.
    CsvRejected` lists each bad row (number and reason, never its values) and nothing is
    kept. Pass the result to :func:`add_subjects`."""
    return leak_csv.parse_subjects(stream, max_bytes=max_bytes, max_rows=max_rows, today=today)


def upload_subjects(
    *, session: Session, protection: Protection, leak: LeakReport, stream: BinaryIO, actor: str
) -> Added:
    """Check the uploaded CSV (:func:`load_subjects_csv`) and add its subjects to the report
    (:func:`add_subjects`); :class:`~qorgan.privacy.leak_csv.CsvRejected` keeps nothing."""
    rows = load_subjects_csv(stream)
    return add_subjects(session=session, protection=protection, leak=leak, rows=rows, actor=actor)


def _insert(session: Session, model: type) -> object:
    """An INSERT that can skip rows a unique constraint already holds, on either database."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise LeakError(f"unsupported database {dialect}")  # pragma: no cover


def _subject_ids(session: Session, hashes: list[str]) -> dict[str, int]:
    """Subject ids by pseudonym, made where missing (a concurrent first sight is skipped by
    the unique constraint and read back)."""
    found: dict[str, int] = {}
    for start in range(0, len(hashes), CHUNK):
        chunk = hashes[start : start + CHUNK]
        rows = session.execute(
            select(Subject.iin_hash, Subject.id).where(Subject.iin_hash.in_(chunk))
        )
        found.update({h: i for h, i in rows})
        missing = [h for h in chunk if h not in found]
        if missing:
            now = utcnow()
            statement = _insert(session, Subject)
            session.execute(
                statement.on_conflict_do_nothing(index_elements=["iin_hash"]),  # type: ignore[attr-defined]
                [{"iin_hash": h, "created_at": now} for h in missing],
            )
            rows = session.execute(
                select(Subject.iin_hash, Subject.id).where(Subject.iin_hash.in_(missing))
            )
            found.update({h: i for h, i in rows})
    return found


def add_subjects(
    *,
    session: Session,
    protection: Protection,
    leak: LeakReport,
    rows: Sequence[SubjectRow],
    actor: str,
) -> Added:
    """Add the checked rows (:func:`qorgan.privacy.leak_csv.parse_subjects`) to the report:
    a subject it lists already keeps their first entry. Names and addresses are encrypted."""
    audit.lock(session)  # two uploads to one report at once: one after the other
    by_hash = {protection.pseudonym(r.iin): r for r in rows}
    ids = _subject_ids(session, list(by_hash))
    listed: set[int] = set()
    wanted = list(ids.values())
    for start in range(0, len(wanted), CHUNK):
        listed.update(
            session.scalars(
                select(LeakSubject.subject_id).where(
                    LeakSubject.leak_id == leak.id,
                    LeakSubject.subject_id.in_(wanted[start : start + CHUNK]),
                )
            )
        )
    now = utcnow()
    new = [
        {
            "leak_id": leak.id,
            "subject_id": ids[pseudonym],
            "iin_masked": mask_iin(row.iin),
            "name": protection.encrypt(row.name),
            "channel": ContactChannel(row.channel),
            "address": protection.encrypt(row.address),
            "added_at": now,
        }
        for pseudonym, row in by_hash.items()
        if ids[pseudonym] not in listed
    ]
    for start in range(0, len(new), CHUNK):
        statement = _insert(session, LeakSubject)
        session.execute(
            statement.on_conflict_do_nothing(index_elements=["leak_id", "subject_id"]),  # type: ignore[attr-defined]
            new[start : start + CHUNK],
        )
    added = Added(added=len(new), already=len(by_hash) - len(new))
    audit.record(
        "privacy.leak_subjects",
        session=session,
        actor=actor,
        organisation_id=leak.organisation_id,
        target_type="privacy_leak",
        target_id=leak.id,
        details={"added": added.added, "already": added.already},
    )
    return added


def _queue(session: Session, leak_id: int, now: datetime) -> int:
    """Queue a notice for each of the report's subjects who has none yet; returns how many."""
    before = session.scalar(select(func.count()).where(LeakNotice.leak_id == leak_id)) or 0
    notice = LeakNotice.__table__
    missing = (
        select(
            LeakSubject.leak_id,
            LeakSubject.subject_id,
            LeakSubject.channel,
            literal(NoticeStatus.pending.value),
            literal(0),
            literal(now, LeakNotice.next_attempt_at.type),
            literal(now, LeakNotice.created_at.type),
        )
        .where(LeakSubject.leak_id == leak_id)
        .where(
            ~exists().where(
                and_(
                    notice.c.leak_id == LeakSubject.leak_id,
                    notice.c.subject_id == LeakSubject.subject_id,
                    notice.c.channel == LeakSubject.channel,
                )
            )
        )
    )
    statement = _insert(session, LeakNotice).from_select(  # type: ignore[attr-defined]
        ["leak_id", "subject_id", "channel", "status", "attempts", "next_attempt_at", "created_at"],
        missing,
    )
    session.execute(
        statement.on_conflict_do_nothing(index_elements=["leak_id", "subject_id", "channel"])
    )
    after = session.scalar(select(func.count()).where(LeakNotice.leak_id == leak_id)) or 0
    return int(after) - int(before)


def submit(
    *, session: Session, leak: LeakReport, actor: str, now: datetime | None = None
) -> Submitted:
    """Submit the report (again, after more subjects were uploaded): it is marked submitted
    the first time, and each subject without a notice gets one queued."""
    now = now or utcnow()
    audit.lock(session)
    session.refresh(leak)  # what a concurrent submit committed before the lock
    first = leak.status is LeakStatus.draft
    if first:
        leak.status = LeakStatus.submitted
        leak.submitted_at = now
    queued = _queue(session, leak.id, now)
    audit.record(
        "privacy.leak_submit",
        session=session,
        actor=actor,
        organisation_id=leak.organisation_id,
        target_type="privacy_leak",
        target_id=leak.id,
        details={"queued": queued, "first": first},
    )
    return Submitted(queued=queued, first=first)


def link_incident(*, session: Session, leak: LeakReport, incident_id: int, actor: str) -> None:
    """Record the incident the leak opened or was linked to (checked by the caller: same
    organisation, which privacy cannot see)."""
    if leak.incident_id == incident_id:
        return
    leak.incident_id = incident_id
    audit.record(
        "privacy.leak_incident",
        session=session,
        actor=actor,
        organisation_id=leak.organisation_id,
        target_type="privacy_leak",
        target_id=leak.id,
        details={"incident_id": incident_id},
    )


def notice_counts(*, session: Session, leak_id: int) -> dict[str, int]:
    """The report's notices by status (every status present, 0 when none)."""
    counts = {s.value: 0 for s in NoticeStatus}
    rows = session.execute(
        select(LeakNotice.status, func.count())
        .where(LeakNotice.leak_id == leak_id)
        .group_by(LeakNotice.status)
    )
    for status, count in rows:
        counts[NoticeStatus(status).value] = int(count)
    return counts
