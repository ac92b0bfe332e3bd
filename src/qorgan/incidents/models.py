"""Tables of the alert store: one row per alert an organisation received, deduplicated.

An alert's full JSON (``docs/alerts.md``, validated by
:class:`~qorgan.incidents.schemas.AlertIn`) is kept in ``body``; the columns beside it are
copies of what lists, filters and groupings need, indexed per organisation.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from qorgan.core.db import Base, UTCDateTime, utcnow
from qorgan.core.models import _enum


class AlertLevel(StrEnum):
    """A rule's level, lowest first (the order of ``qorgan.detection.alerts.LEVELS``)."""

    informational = "informational"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


#: Levels lowest first, and each level's rank (higher is more severe).
LEVELS: tuple[str, ...] = tuple(level.value for level in AlertLevel)
LEVEL_RANK: dict[str, int] = {level: rank for rank, level in enumerate(LEVELS)}


class AlertStatus(StrEnum):
    """Where an analyst's triage has got to."""

    new = "new"
    acknowledged = "acknowledged"
    false_positive = "false_positive"


class StoredAlert(Base):
    """An alert received by an organisation, from a hunt or from the ingestion API.

    ``fingerprint`` (SHA-256 of the alert's canonical JSON) is unique per organisation, so the
    same alert ingested twice is stored once. ``organisation_id`` is indexed by that unique
    constraint and by the filter indexes, all of which lead with it.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("organisation_id", "fingerprint"),
        # No index holds the status (or anything triage changes but the assignee): PostgreSQL
        # then rewrites an acknowledged alert in place (a HOT update, in the page room left by
        # the table's fill factor, migration 0006) instead of adding an entry to every index,
        # the trigram index's hundreds among them; SQLite leaves the indexes alone too. A view
        # narrowed by status reads these in order and skips the other statuses' alerts.
        # The inbox's orders (event time, received time, level); event time sorts newest first
        # with untimed alerts last on both databases.
        Index(
            "ix_alerts_organisation_id_time",
            "organisation_id",
            "time",
            "id",
            postgresql_ops={"time": "DESC NULLS LAST", "id": "DESC"},
        ),
        Index("ix_alerts_organisation_id_received_at", "organisation_id", "received_at"),
        Index("ix_alerts_organisation_id_severity", "organisation_id", "severity", "time"),
        # Pivots and groupings: a value's alerts in time order, which gives a pivot's page
        # without sorting and a group's first and last alert in two index probes.
        Index("ix_alerts_organisation_id_rule_id", "organisation_id", "rule_id", "time"),
        Index("ix_alerts_organisation_id_host", "organisation_id", "host", "time"),
        Index("ix_alerts_organisation_id_user_name", "organisation_id", "user_name", "time"),
        Index("ix_alerts_organisation_id_source_ip", "organisation_id", "source_ip", "time"),
        Index("ix_alerts_organisation_id_destination_ip", "organisation_id", "destination_ip"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    fingerprint: Mapped[str] = mapped_column(String(64))
    rule_id: Mapped[str] = mapped_column(String(200))
    rule_title: Mapped[str] = mapped_column(String(500))
    level: Mapped[AlertLevel] = mapped_column(_enum(AlertLevel, "alert_level"))
    #: The level's rank (0 informational ... 4 critical), so "most severe first" uses an index.
    severity: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    #: The KZ-CERT incident class (``classification.kz_cert``), when the rule is classified.
    kz_cert_class: Mapped[str | None] = mapped_column(String(64), default=None)
    host: Mapped[str | None] = mapped_column(String(255), default=None)
    #: Observables taken from the event (``qorgan.incidents.observables``) for pivots.
    user_name: Mapped[str | None] = mapped_column(String(255), default=None)
    source_ip: Mapped[str | None] = mapped_column(String(64), default=None)
    destination_ip: Mapped[str | None] = mapped_column(String(64), default=None)
    #: The event's time (UTC); None when the source recorded none.
    time: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[AlertStatus] = mapped_column(
        _enum(AlertStatus, "alert_status"), default=AlertStatus.new
    )
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True, default=None
    )
    #: The hunt that found the alert (None: ingested through the API). The table is
    #: :class:`qorgan.pipeline.models.Hunt`'s, named here only by the foreign key.
    hunt_id: Mapped[int | None] = mapped_column(
        ForeignKey("hunts.id", ondelete="SET NULL"), index=True, default=None
    )
    #: The validated alert as documented in docs/alerts.md.
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: What the search box matches: rule title, host, observables and the event's values.
    #: Indexed for substring search outside the model (migration 0006): an FTS5 trigram
    #: table on SQLite; on PostgreSQL a copy in ``alerts_search`` with a pg_trgm GIN index,
    #: apart from the alerts so that an alert's triage never touches the trigram index.
    search_text: Mapped[str] = mapped_column(Text, default="", server_default="")


#: The groupings :class:`AlertTally` counts by, and the alert column (or expression) each
#: reads: ``hour`` is the event time's UTC hour as ``YYYY-MM-DD HH``.
TALLY_DIMENSIONS = ("rule", "host", "user", "address", "class", "hour", "rulehost")


class AlertTally(Base):
    """How many of an organisation's alerts have one value of a grouping, per status and level.

    Kept by database triggers on ``alerts`` (migration 0006), in the same transaction as the
    change, so the inbox counts, groups and charts its default view from a few thousand rows
    instead of reading a million alerts. ``key`` is ``"="`` and the value, or ``""`` when the
    alert has none (no host, no event time), so an absent value is a key like any other. Rows
    whose count fell to zero are kept (and skipped by readers).
    """

    __tablename__ = "alert_tallies"

    organisation_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dimension: Mapped[str] = mapped_column(String(8), primary_key=True)
    key: Mapped[str] = mapped_column(String(520), primary_key=True)
    status: Mapped[str] = mapped_column(String(32), primary_key=True)
    severity: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    #: How many alerts; may fall to zero.
    alerts: Mapped[int] = mapped_column(Integer)


class AlertComment(Base):
    """An analyst's note on an alert; comments are never edited, only added."""

    __tablename__ = "alert_comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    text: Mapped[str] = mapped_column(Text)


class SavedSearch(Base):
    """A user's named inbox search: the query string of the inbox URL (filters, sort, group)."""

    __tablename__ = "saved_searches"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    query: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
