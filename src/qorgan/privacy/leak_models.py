"""The tables of personal-data leaks: the holder's report (what leaked, when, what was done,
who answers for it), the subjects it affected, and the outbox of notices to them.

Since 1 July 2024 a holder reports a leak to the authorised body within one working day of
finding it (Law 94-V, Art. 20-1) and notifies the subjects. A subject is known here by the
keyed hash of their IIN (:class:`~qorgan.privacy.models.Subject`); their name and address are
kept encrypted, only to word and send the notice; the report shows the IIN masked.

The outbox holds one row per subject, report and channel, unique: whoever queues a notice
again (a report submitted twice, two submits at once) adds nothing, so nobody is told twice
by queueing. How sending stays single is :mod:`qorgan.privacy.outbox`'s part.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from qorgan.core.db import Base, UTCDateTime, utcnow
from qorgan.core.models import _enum


class LeakStatus(StrEnum):
    draft = "draft"  # being written; subjects may be uploaded
    submitted = "submitted"  # reported; its subjects' notices are queued


class ContactChannel(StrEnum):
    """How a subject is reached: the kind of address the holder gave."""

    email = "email"
    sms = "sms"


class NoticeStatus(StrEnum):
    pending = "pending"  # due at ``next_attempt_at``
    sending = "sending"  # claimed by a sender until ``lease_until``
    sent = "sent"
    failed = "failed"  # given up after too many attempts


class LeakReport(Base):
    """A holder's report of a personal-data leak, with what the authorised body asks for: the
    holder and its BIN, the system, the categories and a description of what leaked, when it
    happened (if known) and when it was found, the measures taken, and the responsible person
    with their contacts (encrypted). ``due_at`` is one Kazakh working day after detection."""

    __tablename__ = "privacy_leaks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    system_id: Mapped[int | None] = mapped_column(
        ForeignKey("privacy_systems.id", ondelete="RESTRICT"), default=None, index=True
    )
    holder_name: Mapped[str] = mapped_column(String(300))
    holder_bin: Mapped[str] = mapped_column(String(12))
    #: :class:`~qorgan.privacy.models.DataCategory` values.
    categories: Mapped[list[str]] = mapped_column(JSON)
    #: What leaked, in the holder's words (which data, how many records, how).
    description: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime())
    measures: Mapped[str] = mapped_column(Text)
    responsible_person: Mapped[str] = mapped_column(String(200))
    #: The responsible person's contacts, encrypted (:mod:`qorgan.privacy.protection`).
    contacts: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[LeakStatus] = mapped_column(
        _enum(LeakStatus, "privacy_leak_status"), default=LeakStatus.draft
    )
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    #: The incident the leak opened or was linked to (same organisation).
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


class LeakSubject(Base):
    """A subject affected by a leak, once per report however often they are uploaded: their
    masked IIN for the report, and their name and address (encrypted) for the notice."""

    __tablename__ = "privacy_leak_subjects"
    __table_args__ = (UniqueConstraint("leak_id", "subject_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    leak_id: Mapped[int] = mapped_column(ForeignKey("privacy_leaks.id", ondelete="CASCADE"))
    subject_id: Mapped[int] = mapped_column(
        ForeignKey("privacy_subjects.id", ondelete="CASCADE"), index=True
    )
    #: ``********1234``: enough for the report and for a person to recognise their number.
    iin_masked: Mapped[str] = mapped_column(String(12))
    name: Mapped[bytes] = mapped_column(LargeBinary)
    channel: Mapped[ContactChannel] = mapped_column(
        _enum(ContactChannel, "privacy_contact_channel")
    )
    address: Mapped[bytes] = mapped_column(LargeBinary)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LeakNotice(Base):
    """One notice to send: a subject of a report, by one channel. Unique per (report, subject,
    channel), so queueing again never adds a second. A sender claims it (``sending`` until
    ``lease_until``), sends, and marks it ``sent``; a failure waits for ``next_attempt_at``.
    ``last_error`` never holds an address or a number (:func:`qorgan.privacy.outbox.scrub`)."""

    __tablename__ = "privacy_leak_notices"
    __table_args__ = (
        UniqueConstraint("leak_id", "subject_id", "channel"),
        Index("ix_privacy_leak_notices_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    leak_id: Mapped[int] = mapped_column(ForeignKey("privacy_leaks.id", ondelete="CASCADE"))
    subject_id: Mapped[int] = mapped_column(
        ForeignKey("privacy_subjects.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[ContactChannel] = mapped_column(_enum(ContactChannel, "privacy_notice_channel"))
    status: Mapped[NoticeStatus] = mapped_column(
        _enum(NoticeStatus, "privacy_notice_status"), default=NoticeStatus.pending
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
