"""Tables of the pipeline: hunt jobs run in the background over uploaded or server-side logs,
and the registry of live log sources with the collector's figures."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from qorgan.core.db import Base, UTCDateTime, utcnow
from qorgan.core.models import _enum


class HuntStatus(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"


class HuntSource(StrEnum):
    """Where the hunted files came from."""

    upload = "upload"  # uploaded through the web console, kept under Qorgan's own folder
    server = "server"  # already on the server, named by path


class Hunt(Base):
    """One hunt job: which files, how far it has got, and what it found.

    Counters are written by the worker as it goes (``done_bytes`` of ``total_bytes``), so a
    page can show progress; ``alerts_new`` counts alerts not already in the store.
    """

    __tablename__ = "hunts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True, default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    status: Mapped[HuntStatus] = mapped_column(
        _enum(HuntStatus, "hunt_status"), index=True, default=HuntStatus.queued
    )
    source: Mapped[HuntSource] = mapped_column(_enum(HuntSource, "hunt_source"))
    #: The files and directories hunted, as given.
    paths: Mapped[list[str]] = mapped_column(JSON, default=list)
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    done_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    events: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    alerts_found: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    alerts_new: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    quarantined: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(String(1000), default=None)
    #: Whether the organisation's approved AI models scored the events too.
    anomaly: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Findings the models proposed and the store kept (pending, linked to this hunt).
    findings: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Transport(StrEnum):
    """How a log source reaches the collector."""

    udp = "udp"  # syslog over UDP: no acknowledgement, losses counted
    tcp = "tcp"  # syslog over TCP, octet-counted or newline-framed
    tls = "tls"  # syslog over TLS (RFC 5425), optionally with client certificates
    relp = "relp"  # RELP (rsyslog's reliable delivery), plain or TLS
    http = "http"  # HTTP ingest: NDJSON or JSON arrays with the source's own token


class Overflow(StrEnum):
    """What intake does with a source's events while detection is behind past its limit."""

    wait = "wait"  # stop reading (TCP, RELP), answer 429 (HTTP); UDP can only drop
    drop = "drop"  # keep reading and drop, counting every drop and raising an alert


class LogSource(Base):
    """A registered sender of live logs: who it is, how it sends and what it sends.

    A network sender is recognised by its transport and address (``senders``: addresses or
    networks; empty means any) and, over TLS, by the common name of its client certificate
    (``certificate_cn``, required when set); an HTTP sender by its token (only its SHA-256 is
    kept). The counters are the collector's, flushed every few seconds.
    """

    __tablename__ = "log_sources"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    transport: Mapped[Transport] = mapped_column(_enum(Transport, "log_transport"))
    #: The format its messages are read in (``qorgan.telemetry.formats``).
    format: Mapped[str] = mapped_column(String(32))
    #: For messages that give local times without a zone.
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Almaty")
    senders: Mapped[list[str]] = mapped_column(JSON, default=list)
    certificate_cn: Mapped[str | None] = mapped_column(String(255), default=None)
    token_hash: Mapped[str | None] = mapped_column(String(64), default=None, unique=True)
    #: Seconds without an event after which the source counts as silent (and is alerted on).
    expected_interval: Mapped[int] = mapped_column(Integer, default=900)
    overflow: Mapped[Overflow] = mapped_column(
        _enum(Overflow, "log_overflow"), default=Overflow.wait
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    # ---- the collector's figures
    last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    #: The receipt time of the newest message detection has analysed.
    analysed_through: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    events: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    received_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    malformed: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    parse_failures: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    dropped: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    #: When the silence alert was raised; cleared when events come again.
    silent_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class SourceRate(Base):
    """A source's counts in one ten-second bucket: the live chart and rates."""

    __tablename__ = "log_source_rates"

    source_id: Mapped[int] = mapped_column(
        ForeignKey("log_sources.id", ondelete="CASCADE"), primary_key=True
    )
    bucket: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    events: Mapped[int] = mapped_column(Integer, default=0)
    received_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    dropped: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)


class SourceProblem(Base):
    """A message of a source that could not be read or was refused, with the reason: the
    newest few per source, for the Sources page."""

    __tablename__ = "log_source_problems"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(
        ForeignKey("log_sources.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    reason: Mapped[str] = mapped_column(String(300))
    excerpt: Mapped[str] = mapped_column(String(300))
