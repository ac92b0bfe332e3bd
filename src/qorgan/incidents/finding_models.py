"""Tables of the AI models' findings and of what people decided about them (migration 0016).

A finding (:class:`AnomalyFinding`) is what an anomaly model proposes; it is not an alert. It
becomes one (:class:`~qorgan.incidents.models.StoredAlert`) only when an analyst confirms it
with a reason; a rejection with a reason records the pattern (:class:`RejectedPattern`) that the
detectors then stop reporting and take into their baselines. An objection by a person
(:class:`AnomalyExclusion`) keeps that person's identifiers out of the models, and the register
(:class:`ModelRecord`) says which models an organisation runs, trained on what, approved by
whom. Statuses are plain strings checked by the service, like the incident tables'.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from qorgan.core.db import Base, UTCDateTime, utcnow

#: A finding's statuses: pending until a person decides, then confirmed or rejected for good.
FINDING_STATUSES = ("pending", "confirmed", "rejected")


class AnomalyFinding(Base):
    """One finding of an AI model, with a person's decision once there is one.

    ``body`` is the finding as its detector made it (``Finding.to_dict()``); the columns beside
    it are copies that lists and the decision need. ``dedup_key`` (SHA-256 of the fingerprint
    and the event time) is unique per organisation: the same pattern at the same moment, seen
    again by a repeated hunt, is stored once.
    """

    __tablename__ = "anomaly_findings"
    __table_args__ = (
        UniqueConstraint("organisation_id", "dedup_key"),
        # The findings page: pending first (the service orders by a CASE on status), newest
        # first; the index serves the per-status counts and the newest-first read.
        Index("ix_anomaly_findings_organisation_id_status", "organisation_id", "status", "id"),
        Index("ix_anomaly_findings_organisation_id_fingerprint", "organisation_id", "fingerprint"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    dedup_key: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))
    detector: Mapped[str] = mapped_column(String(100))
    score: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    #: The anomalous event's time (UTC), when the detector knew it.
    time: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    decided_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    #: The alert a confirmation made (None until confirmed).
    alert_id: Mapped[int | None] = mapped_column(
        ForeignKey("alerts.id", ondelete="SET NULL"), default=None
    )
    #: The hunt whose run found it (None: live monitoring).
    hunt_id: Mapped[int | None] = mapped_column(
        ForeignKey("hunts.id", ondelete="SET NULL"), index=True, default=None
    )
    body: Mapped[dict[str, Any]] = mapped_column(JSON)


class RejectedPattern(Base):
    """A pattern a person rejected: the detectors stop reporting it and learn it as normal."""

    __tablename__ = "anomaly_rejected_patterns"
    __table_args__ = (UniqueConstraint("organisation_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    fingerprint: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    pattern: Mapped[str] = mapped_column(Text)
    #: The finding whose rejection recorded the pattern (its body feeds the baselines).
    finding_id: Mapped[int] = mapped_column(
        ForeignKey("anomaly_findings.id", ondelete="CASCADE"), index=True
    )
    rejected_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    rejected_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    reason: Mapped[str] = mapped_column(Text)


class AnomalyExclusion(Base):
    """A person's objection: one of their identifiers, kept out of every model from then on.

    ``identifier_hash`` is the HMAC-SHA256 of the normalised identifier under the privacy
    service's key (``QORGAN_PRIVACY_HASH_KEY``): the table proves an objection was recorded
    without holding the IIN, e-mail or phone in clear, and without the key the 10^11 possible
    IINs cannot be hashed and matched. ``organisation_id`` None: an objection made through the
    citizen portal, which holds for every organisation.
    """

    __tablename__ = "anomaly_exclusions"
    __table_args__ = (
        UniqueConstraint("organisation_id", "identifier_hash"),
        Index("ix_anomaly_exclusions_identifier_hash", "identifier_hash"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), default=None
    )
    identifier_hash: Mapped[str] = mapped_column(String(64))
    #: ``citizen`` (the person, through the portal) or ``request`` (recorded on their request).
    origin: Mapped[str] = mapped_column(String(16))
    #: Who recorded it: a user id.
    recorded_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: The request's reference (a letter's number, a ticket), or the portal's own.
    request_ref: Mapped[str] = mapped_column(String(200))


class ModelRecord(Base):
    """A model an organisation runs: what it is for, what it reads, what it learned from, how
    well it does on the benchmarks, who approved it and when it was last retrained."""

    __tablename__ = "anomaly_models"
    __table_args__ = (UniqueConstraint("organisation_id", "name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[str] = mapped_column(Text)
    #: The inputs it reads (log sources, event fields), as a list of texts.
    inputs: Mapped[list[str]] = mapped_column(JSON)
    training_from: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    training_to: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    #: Benchmark figures by name (``{"hdfs_recall": 0.93, ...}``).
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    approved_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    retrained_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
