"""Tables of the alert store (one row per alert an organisation received, deduplicated) and
of incidents (alerts grouped, classified and worked to closure; below the alert tables).

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
    BigInteger,
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


# --- Incidents -------------------------------------------------------------------------------
# An incident groups alerts (or a report, or an analyst's finding) and is worked through the
# lifecycle of ``qorgan.incidents.lifecycle``. Statuses, TLP and the rest are stored as plain
# strings checked by the service (the lifecycle's enums), like the alert tables' class columns.


#: The columns of incidents that a period's figures read (``qorgan.incidents.stats``).
STATS_COLUMNS = (
    "kz_cert_class",
    "status",
    "severity",
    "started_at",
    "acknowledged_at",
    "contained_at",
    "closed_at",
)


class Incident(Base):
    """An incident of an organisation, with its classification, clocks and deadlines.

    The clock moments (``acknowledged_at``, ``contained_at``, ``closed_at``) are set by the
    first move that reaches them and kept on later moves; ``*_due_at`` are computed from the
    organisation's deadlines when the incident is created or reclassified, and stored so that
    "overdue" is an indexed comparison rather than working-hour arithmetic per row.
    """

    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_organisation_id_status", "organisation_id", "status", "created_at"),
        # A period's figures (qorgan.incidents.stats) read only STATS_COLUMNS: on PostgreSQL the
        # period indexes carry them, so a year of incidents is an index-only scan (0010).
        Index(
            "ix_incidents_organisation_id_created_at",
            "organisation_id",
            "created_at",
            postgresql_include=STATS_COLUMNS,
        ),
        Index(
            "ix_incidents_reported_to_id",
            "reported_to_id",
            "reported_at",
            postgresql_include=("organisation_id", *STATS_COLUMNS),
        ),
        Index("ix_incidents_reported_to_id_status", "reported_to_id", "status", "reported_at"),
        Index(
            "ix_incidents_organisation_id_kz_cert_class",
            "organisation_id",
            "kz_cert_class",
            "severity",
        ),
        # And, on PostgreSQL only, ix_incidents_title_trgm for the title search (0010).
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    kz_cert_class: Mapped[str | None] = mapped_column(String(64), default=None)
    rsit_class: Mapped[str | None] = mapped_column(String(64), default=None)
    rsit_type: Mapped[str | None] = mapped_column(String(64), default=None)
    #: 1 low ... 4 critical; ``severity_reason`` is set when a person overrode the derived one.
    severity: Mapped[int] = mapped_column(SmallInteger, default=1)
    severity_reason: Mapped[str | None] = mapped_column(String(1000), default=None)
    tlp: Mapped[str] = mapped_column(String(16), default="amber")
    pap: Mapped[str] = mapped_column(String(16), default="amber")
    status: Mapped[str] = mapped_column(String(16), default="new")
    resolution: Mapped[str | None] = mapped_column(String(32), default=None)
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True, default=None
    )
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: The incident involves personal data: the breach report to the authorised body is due
    #: one working day after detection.
    personal_data: Mapped[bool] = mapped_column(default=False)
    #: How it began: ``alerts``, ``report`` (public form) or ``manual``.
    origin: Mapped[str] = mapped_column(String(16), default="manual")
    #: Candidate Criminal Code articles ("205", ...), from the alerts' rules or the coordinator.
    criminal_code: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: The moment the clocks count from: the first event, alert or report.
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    contained_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    acknowledge_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    contain_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    close_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    breach_report_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    breach_reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    #: The next deadline still open (the earliest of the due times not yet met), indexed, so
    #: lists find overdue and soon-due incidents with one range scan.
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True, default=None)
    #: Merged into another incident (this one is then closed as a duplicate).
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), default=None
    )
    #: Reported to the national coordinator (KZ-CERT's organisation), and when.
    reported_to_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), default=None
    )
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    #: The rules of its alerts (ids), for similarity; a short list.
    rule_ids: Mapped[list[str]] = mapped_column(JSON, default=list)


class IncidentAlert(Base):
    """An alert's link to its incident: an alert belongs to one incident at most."""

    __tablename__ = "incident_alerts"

    alert_id: Mapped[int] = mapped_column(
        ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True
    )
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    added_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    added_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


class IncidentEvent(Base):
    """One entry of an incident's timeline: created, moved, assigned, a note, a task done, an
    alert added, merged, split, evidence added, reported, a message. Never edited; the audit
    trail holds the same changes hash-chained."""

    __tablename__ = "incident_events"
    __table_args__ = (Index("ix_incident_events_incident_id_at", "incident_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    kind: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class IncidentTask(Base):
    """A task of one phase of an incident, from a template or added by hand."""

    __tablename__ = "incident_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    phase: Mapped[str] = mapped_column(String(16))
    position: Mapped[int] = mapped_column(Integer, default=0)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    #: ``open``, ``done`` or ``skipped``.
    status: Mapped[str] = mapped_column(String(16), default="open")
    template_id: Mapped[str | None] = mapped_column(String(64), default=None)
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    done_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


class IncidentNote(Base):
    """A note (Markdown) on an incident or on one of its tasks; never edited, only added."""

    __tablename__ = "incident_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    task_id: Mapped[int | None] = mapped_column(
        ForeignKey("incident_tasks.id", ondelete="CASCADE"), default=None
    )
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    text: Mapped[str] = mapped_column(Text)


class TaskTemplate(Base):
    """An organisation's copy of a task template (``qorgan.incidents.task_templates``): the
    built-in ones until it edits them, stored as the template's data."""

    __tablename__ = "task_templates"
    __table_args__ = (UniqueConstraint("organisation_id", "template_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    template_id: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Asset(Base):
    """An asset or information system of an organisation, with its owner and criticality.

    ``names`` are the host names and addresses its alerts carry (matched against an alert's
    host), so an incident's affected assets are found from its alerts."""

    __tablename__ = "assets"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32), default="host")
    owner: Mapped[str] = mapped_column(String(200), default="")
    #: 1 low ... 4 critical.
    criticality: Mapped[int] = mapped_column(SmallInteger, default=2)
    #: Critical information and communication infrastructure (ОКИИ / АКИИ).
    critical_infrastructure: Mapped[bool] = mapped_column(default=False)
    names: Mapped[list[str]] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class IncidentAsset(Base):
    """An asset affected by an incident."""

    __tablename__ = "incident_assets"

    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    asset_id: Mapped[int] = mapped_column(
        ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class IncidentObservable(Base):
    """An observable of an incident (address, domain, URL, hash, account, e-mail, file name),
    taken from its alerts or added by hand; indexed per organisation for pivots."""

    __tablename__ = "incident_observables"
    __table_args__ = (
        UniqueConstraint("incident_id", "kind", "value"),
        Index("ix_incident_observables_lookup", "organisation_id", "kind", "value"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(500))
    #: ``alert`` (extracted) or ``manual``.
    origin: Mapped[str] = mapped_column(String(16), default="alert")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Deadline(Base):
    """An organisation's deadline for one measure (acknowledge, contain, close) of incidents of
    one KZ-CERT class (``*``: any class without its own), in ``unit``: ``hours`` (calendar),
    ``working_hours`` or ``working_days``."""

    __tablename__ = "incident_deadlines"

    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True
    )
    kz_cert_class: Mapped[str] = mapped_column(String(64), primary_key=True)
    measure: Mapped[str] = mapped_column(String(16), primary_key=True)
    amount: Mapped[int] = mapped_column(Integer)
    unit: Mapped[str] = mapped_column(String(16))


class SimilarIncident(Base):
    """A bounded list of an incident's most similar earlier incidents (at most
    ``qorgan.incidents.similar.KEEP`` per incident), with the score and what they share."""

    __tablename__ = "similar_incidents"

    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    similar_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    score: Mapped[int] = mapped_column(Integer)
    shared: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Evidence(Base):
    """An evidence file of an incident: the content lives once under the data directory at
    its SHA-256 (``qorgan.incidents.evidence``); who added and who opened it is in the audit
    trail (the chain of custody)."""

    __tablename__ = "incident_evidence"
    __table_args__ = (UniqueConstraint("incident_id", "sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="RESTRICT"), index=True
    )
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(100), default="application/octet-stream")
    description: Mapped[str] = mapped_column(String(2000), default="")
    added_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    added_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class IncidentMessage(Base):
    """A message in the thread between a reporting organisation and the national coordinator
    about a reported incident: a question, a recommendation or an answer; both sides see it."""

    __tablename__ = "incident_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    #: The organisation of the author (the reporter's or the coordinator's).
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    #: ``question``, ``recommendation`` or ``message``.
    kind: Mapped[str] = mapped_column(String(16), default="message")
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# --- Public reports --------------------------------------------------------------------------
# Appended as a block (with its own import) so that other tables can be appended after it.
from datetime import date  # noqa: E402


class PublicReport(Base):
    """A report sent through the public form (no account) by a citizen or an organisation; it
    opened ``incident_id`` in the national coordinator's organisation (``organisation_id``).

    The reporter's name and contacts live here only: never in the incident's title, the audit
    trail or the logs. ``tracking`` (``QR-XXXX-XXXX-XXXX``, 60 random bits) is the reporter's
    key to the status page; the status shown is the incident's. ``challenge`` is the id of
    the proof-of-work challenge the form solved, unique, so a solved challenge is spent once.
    The supporting files sent with it are the incident's evidence (:class:`Evidence`).
    """

    __tablename__ = "public_reports"
    __table_args__ = (
        Index("ix_public_reports_organisation_id_created_at", "organisation_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tracking: Mapped[str] = mapped_column(String(17), unique=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="RESTRICT"), index=True
    )
    #: The national coordinator's organisation, which received it.
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    #: ``incident``, ``phishing-site``, ``fraud-site``, ``pyramid-scheme`` or ``other``.
    kind: Mapped[str] = mapped_column(String(32))
    reporter_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254), default=None)
    phone: Mapped[str | None] = mapped_column(String(32), default=None)
    #: The organisation the report is about (a bank, a shop, a body), as the reporter wrote it.
    organisation_involved: Mapped[str] = mapped_column(String(300), default="")
    url: Mapped[str | None] = mapped_column(String(2000), default=None)
    period_from: Mapped[date | None] = mapped_column(default=None)
    period_to: Mapped[date | None] = mapped_column(default=None)
    description: Mapped[str] = mapped_column(Text)
    #: The interface language the report was written in (kk, ru, en).
    language: Mapped[str] = mapped_column(String(8))
    challenge: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
