"""Tables of notifications: what a user is told about incidents (assigned to them, a deadline
due soon or passed, reported to the national coordinator, answered by it), in the console and
by e-mail, and each user's choice of which kinds reach them by which channel.

A notification is written in the same unit of work as the change it tells of, so nothing the
console acknowledged goes untold; its e-mail is then sent by the notifier
(:mod:`qorgan.incidents.notifications`), retried until the SMTP server accepts it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, SmallInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from qorgan.core.db import Base, UTCDateTime, utcnow


class Notification(Base):
    """One thing one user is told about one incident.

    ``dedup_key`` (``overdue:<incident>:<measure>:<due time>``) makes a deadline's "due soon"
    and "overdue" notifications unique per user, so a sweep repeated (or run by two processes)
    tells nobody twice; notifications of single events have none. ``console`` is False when
    the user wants this kind by e-mail only. ``email_state`` is ``none`` (not wanted),
    ``pending`` (to send at ``email_next_at``, after ``email_attempts`` tries, the last
    failing with ``email_error``), ``sent`` or ``failed`` (given up).
    """

    __tablename__ = "notifications"
    __table_args__ = (
        # Led by the key: a sweep looks its keys up for every user at once.
        UniqueConstraint("dedup_key", "user_id"),
        # The header's unread count and the list page, per user.
        Index("ix_notifications_user_id_console_read_at", "user_id", "console", "read_at"),
        Index("ix_notifications_user_id_created_at", "user_id", "created_at"),
        # The notifier's queue: pending e-mails by when they are next due.
        Index("ix_notifications_email_state_email_next_at", "email_state", "email_next_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    #: ``assigned``, ``due_soon``, ``overdue``, ``reported`` or ``answered``.
    kind: Mapped[str] = mapped_column(String(16))
    #: What the page and the e-mail say beyond the kind (the deadline, the message's kind).
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dedup_key: Mapped[str | None] = mapped_column(String(120), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    console: Mapped[bool] = mapped_column(default=True)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    email_state: Mapped[str] = mapped_column(String(16), default="none")
    email_attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    email_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    emailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    email_error: Mapped[str | None] = mapped_column(String(500), default=None)


class NotificationPreference(Base):
    """A user's choice for one kind of notification on one channel (``console``, ``email``);
    without a row the default of ``qorgan.incidents.notifications.DEFAULTS`` applies."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    enabled: Mapped[bool] = mapped_column()
