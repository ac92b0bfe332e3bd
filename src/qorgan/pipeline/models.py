"""Tables of the pipeline: hunt jobs run in the background over uploaded or server-side logs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String
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
