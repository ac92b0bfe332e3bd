"""Retention: the service's own records are deleted when their legal term ends, and the
deletion itself is recorded (an audit entry with what was deleted, by count).

One term, ``QORGAN_PRIVACY_RETENTION_YEARS`` (5 by default, the limitation period for claims
about the processing), counted from when a record stopped mattering: an access-log entry from
its time (a hidden one from the end of its hiding), a complaint from its answer, a consent from
its end once its data's deletion is confirmed. A subject with nothing left (no consent, log
entry, complaint or account) goes too. :func:`housekeeping` runs this with the consents' sweep;
the console runs it on its notification schedule and ``qorgan privacy sweep`` runs it once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, exists, or_
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import audit
from qorgan.core.db import unit_of_work
from qorgan.core.settings import Settings
from qorgan.privacy import consents
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

    @property
    def total(self) -> int:
        return self.access_log + self.complaints + self.consents + self.subjects


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
    subjects = session.execute(
        delete(Subject).where(
            Subject.created_at < cutoff,
            ~exists().where(Consent.subject_id == Subject.id),
            ~exists().where(AccessRecord.subject_id == Subject.id),
            ~exists().where(Complaint.subject_id == Subject.id),
            ~exists().where(CitizenAccount.subject_id == Subject.id),
        )
    ).rowcount
    purged = Purged(log, complaints, ended, subjects)
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
