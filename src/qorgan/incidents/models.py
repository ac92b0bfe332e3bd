"""Tables of the alert store: one row per alert an organisation received, deduplicated.

An alert's full JSON (``docs/alerts.md``, validated by
:class:`~qorgan.incidents.schemas.AlertIn`) is kept in ``body``; the columns beside it are
copies of what lists, filters and groupings need, indexed per organisation.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
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
    constraint and by the four filter indexes, all of which lead with it.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("organisation_id", "fingerprint"),
        Index("ix_alerts_organisation_id_time", "organisation_id", "time"),
        Index("ix_alerts_organisation_id_rule_id", "organisation_id", "rule_id"),
        Index("ix_alerts_organisation_id_host", "organisation_id", "host"),
        Index("ix_alerts_organisation_id_status", "organisation_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    fingerprint: Mapped[str] = mapped_column(String(64))
    rule_id: Mapped[str] = mapped_column(String(200))
    rule_title: Mapped[str] = mapped_column(String(500))
    level: Mapped[AlertLevel] = mapped_column(_enum(AlertLevel, "alert_level"))
    #: The KZ-CERT incident class (``classification.kz_cert``), when the rule is classified.
    kz_cert_class: Mapped[str | None] = mapped_column(String(64), default=None)
    host: Mapped[str | None] = mapped_column(String(255), default=None)
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
