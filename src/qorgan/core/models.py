"""Tables of the core: organisations, users and their credentials, and the audit trail.

Passwords, TOTP secrets, recovery codes and API tokens are stored as hashes or as produced by
:mod:`qorgan.core.security`; this module only defines where they live.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qorgan.core.db import Base, UTCDateTime, utcnow


class OrganisationKind(StrEnum):
    akimat = "akimat"
    ministry = "ministry"
    bank = "bank"
    soc = "soc"
    cert = "cert"
    other = "other"


class Role(StrEnum):
    administrator = "administrator"
    soc_analyst = "soc_analyst"
    cert_coordinator = "cert_coordinator"
    partner = "partner"
    dpo = "dpo"
    auditor = "auditor"
    citizen = "citizen"


def _enum(cls: type[StrEnum], name: str) -> Enum:
    # Stored as text with a CHECK constraint (not a native PostgreSQL enum), so adding a value
    # is a plain migration on both backends.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Organisation(Base):
    """A body using Qorgan; every record belongs to one."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[OrganisationKind] = mapped_column(_enum(OrganisationKind, "organisation_kind"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    users: Mapped[list[User]] = relationship(back_populates="organisation")


class User(Base):
    """A person who signs in; ``email`` is stored lower-cased by the account service."""

    __tablename__ = "users"
    #: Addresses are unique within an organisation only: a global constraint would tell an
    #: administrator that an address exists elsewhere.
    __table_args__ = (
        UniqueConstraint("organisation_id", "email", name="uq_users_organisation_id_email"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    email: Mapped[str] = mapped_column(String(320), index=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(_enum(Role, "user_role"))
    totp_secret: Mapped[str | None] = mapped_column(String(255), default=None)
    #: The time step of the last TOTP code accepted: a code is good for one sign-in only.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, default=None)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    language: Mapped[str] = mapped_column(String(8), default="kk", server_default="kk")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    organisation: Mapped[Organisation] = relationship(back_populates="users")


class PasswordHistory(Base):
    """Earlier password hashes of a user, so a password is not reused."""

    __tablename__ = "password_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiToken(Base):
    """A machine client's credential: only its hash is kept; scoped and expiring."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(255), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class RecoveryCode(Base):
    """A one-time second-factor recovery code (hashed); ``used_at`` set when spent."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(255))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class AuditEntry(Base):
    """One link of the tamper-evident audit trail; written only by :func:`qorgan.core.audit.record`.

    ``id`` is assigned by the writer (previous id + 1), not by the database, so ids have no
    gaps and a deleted entry shows. ``organisation_id`` has no foreign key on purpose: the
    trail outlives what it describes, and must never be cascaded or block a deletion.
    """

    __tablename__ = "audit_entries"
    #: An alert's (or user's...) history is read by target within the organisation.
    __table_args__ = (
        Index("ix_audit_entries_target", "organisation_id", "target_type", "target_id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(200))
    organisation_id: Mapped[int | None] = mapped_column(Integer, index=True, default=None)
    action: Mapped[str] = mapped_column(String(100), index=True)
    target_type: Mapped[str | None] = mapped_column(String(100), default=None)
    target_id: Mapped[str | None] = mapped_column(String(200), default=None)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class SessionStage(StrEnum):
    """How far a browser session has got: only ``full`` sessions act as the user."""

    second_factor = "second_factor"  # password accepted, TOTP or recovery code awaited
    enrolment = "enrolment"  # password accepted, the role needs a second factor set up first
    full = "full"


class WebSession(Base):
    """A browser session; the cookie holds a random token, only its digest is stored here, so
    signing out (or an administrator) ends it at once and a copy of the table is useless."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    stage: Mapped[SessionStage] = mapped_column(_enum(SessionStage, "session_stage"))
    #: The TOTP secret being enrolled, kept only until the user confirms a code.
    pending_totp: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class OrganisationShare(Base):
    """``owner`` lets ``partner`` read its records of one kind (``resource``: "alerts", ...).

    Reading only: a partner never changes another organisation's records."""

    __tablename__ = "organisation_shares"
    __table_args__ = (UniqueConstraint("owner_id", "partner_id", "resource"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    partner_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    resource: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
