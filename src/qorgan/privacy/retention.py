"""Retention: the service's own records are deleted when their legal term ends, and the
deletion itself is recorded (an audit entry with what was deleted, by count).

One term, ``QORGAN_PRIVACY_RETENTION_YEARS`` (5 by default, the limitation period for claims
about the processing), counted from when a record stopped mattering: an access-log entry from
its time (a hidden one from the end of its hiding), a complaint from its answer, a consent from
its end once its data's deletion is confirmed, a leak report's list of affected subjects and
its notices from the report's submission once no notice waits to be sent (the report itself,
the organisation's record of the breach, stays). A subject with nothing left (no consent, log
entry, complaint, account or place in a leak's list) goes too. :func:`housekeeping` runs this
with the consents' sweep; the console runs it on its notification schedule and ``qorgan
privacy sweep`` runs it once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import audit
from qorgan.core.db import unit_of_work
from qorgan.core.settings import Settings
from qorgan.privacy import consents
from qorgan.privacy.leak_models import LeakNotice, LeakReport, LeakSubject, NoticeStatus
from qorgan.privacy.models import (
    AccessRecord,
    CitizenAccount,
    Complaint,
    ComplaintStatus,
    Consent,
    ConsentStatus,
    Subject,
)


@dataclass(frozen=True)
class Purged:
    access_log: int
    complaints: int
    consents: int
    subjects: int
    leak_subjects: int = 0
    leak_notices: int = 0

    @property
    def total(self) -> int:
        return sum(asdict(self).values())


def purge(*, session: Session, now: datetime, years: int) -> Purged:
    """Delete what has passed its term (see the module's docstring); how many of each."""
    cutoff = now - timedelta(days=round(365.25 * years))
    log = session.execute(
        delete(AccessRecord).where(
            AccessRecord.at < cutoff,
            or_(AccessRecord.hidden_until.is_(None), AccessRecord.hidden_until < cutoff.date()),
        )
    ).rowcount
    complaints = session.execute(
        delete(Complaint).where(
            Complaint.status == ComplaintStatus.answered, Complaint.answered_at < cutoff
        )
    ).rowcount
    ended = session.execute(
        delete(Consent).where(
            Consent.status != ConsentStatus.active,
            Consent.deletion_confirmed_at.is_not(None),
            Consent.ended_at < cutoff,
            ~exists().where(AccessRecord.consent_id == Consent.id),
        )
    ).rowcount
    done = select(LeakReport.id).where(
        LeakReport.submitted_at < cutoff,
        ~exists().where(
            LeakNotice.leak_id == LeakReport.id,
            LeakNotice.status.in_([NoticeStatus.pending, NoticeStatus.sending]),
        ),
    )
    leaks_done = list(session.scalars(done))
    leak_notices = session.execute(
        delete(LeakNotice).where(LeakNotice.leak_id.in_(leaks_done))
    ).rowcount
    leak_subjects = session.execute(
        delete(LeakSubject).where(LeakSubject.leak_id.in_(leaks_done))
    ).rowcount
    subjects = session.execute(
        delete(Subject).where(
            Subject.created_at < cutoff,
            ~exists().where(Consent.subject_id == Subject.id),
            ~exists().where(AccessRecord.subject_id == Subject.id),
            ~exists().where(Complaint.subject_id == Subject.id),
            ~exists().where(CitizenAccount.subject_id == Subject.id),
            ~exists().where(LeakSubject.subject_id == Subject.id),
            ~exists().where(LeakNotice.subject_id == Subject.id),
        )
    ).rowcount
    purged = Purged(log, complaints, ended, subjects, leak_subjects, leak_notices)
    if purged.total:
        audit.record(
            "privacy.retention_purge",
            session=session,
            actor="privacy",
            details={**asdict(purged), "before": cutoff.isoformat(), "years": years},
        )
    return purged


def housekeeping(
    factory: sessionmaker[Session], settings: Settings, now: datetime | None = None
) -> tuple[int, Purged]:
    """One pass: consents whose term passed are ended, then expired records are deleted."""
    now = now or datetime.now(UTC)
    with unit_of_work(factory) as session:
        expired = consents.sweep(session=session, now=now)
    with unit_of_work(factory) as session:
        purged = purge(session=session, now=now, years=settings.privacy_retention_years)
    return expired, purged
