"""The intel store's tables: API roots (constituencies) and who belongs to them, the TLP
audiences (clients, named RED recipients), collections and their grants, STIX objects (one row
per version) and the status resources of writes.

Every object row keeps the JSON exactly as received (``body``, text) next to the few columns the
TAXII filters, the TLP rule and the indicator matcher need, so a page is served by joining the
stored texts: no object is parsed or rebuilt on the way out.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
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

#: Row ids: 64-bit on PostgreSQL; SQLite's INTEGER PRIMARY KEY is already 64-bit (and only
#: that exact type is the rowid, which keeps inserts cheap).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class ApiRoot(Base):
    """A TAXII API root: one constituency (``kz-cert``), whose members are the TLP GREEN
    community of the collections under it."""

    __tablename__ = "intel_api_roots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RootMember(Base):
    """An organisation's membership of a constituency (its TLP community)."""

    __tablename__ = "intel_root_members"

    api_root_id: Mapped[int] = mapped_column(
        ForeignKey("intel_api_roots.id", ondelete="CASCADE"), primary_key=True
    )
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Client(Base):
    """``client_id`` is a client of ``organisation_id``: it receives that organisation's AMBER."""

    __tablename__ = "intel_clients"

    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class RedRecipient(Base):
    """``recipient_id`` is named by ``sender_id`` as a recipient of its RED objects."""

    __tablename__ = "intel_red_recipients"

    sender_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True
    )
    recipient_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Collection(Base):
    """A TAXII collection under an API root, owned by one organisation.

    ``default_tlp`` (a :attr:`qorgan.core.tlp.Tlp.rank`) governs objects that carry no TLP
    marking; ``redaction_policy`` names the policy applied to what leaves it."""

    __tablename__ = "intel_collections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    taxii_id: Mapped[str] = mapped_column(String(36), unique=True)
    api_root_id: Mapped[int] = mapped_column(
        ForeignKey("intel_api_roots.id", ondelete="RESTRICT"), index=True
    )
    owner_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    alias: Mapped[str | None] = mapped_column(String(100), default=None)
    redaction_policy: Mapped[str | None] = mapped_column(String(64), default=None)
    default_tlp: Mapped[int] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Grant(Base):
    """What an organisation may do with a collection (the owner may always read and write)."""

    __tablename__ = "intel_grants"

    collection_id: Mapped[int] = mapped_column(
        ForeignKey("intel_collections.id", ondelete="CASCADE"), primary_key=True
    )
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    can_read: Mapped[bool] = mapped_column(Boolean, default=False)
    can_write: Mapped[bool] = mapped_column(Boolean, default=False)


class StixObject(Base):
    """One version of a STIX object in a collection.

    ``version`` is the object's ``modified`` (``created`` when absent; the date added for an
    object with neither) exactly as written; ``version_at`` the same instant, for ordering and
    for sameness: two versions are the same when their instants are (STIX compares timestamps
    as instants), so ``...00Z`` and ``...00.000Z`` are one version. ``date_added`` strictly
    increases per collection in ``id`` order, which the pagination relies on. ``tlp`` and
    ``pap`` are ranks (:attr:`qorgan.core.tlp.Tlp.rank`)."""

    __tablename__ = "intel_objects"
    __table_args__ = (
        UniqueConstraint("collection_id", "stix_id", "version_at", name="uq_intel_objects_version"),
        Index("ix_intel_objects_collection_added", "collection_id", "date_added"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("intel_collections.id", ondelete="CASCADE")
    )
    stix_id: Mapped[str] = mapped_column(String(300))
    type: Mapped[str] = mapped_column(String(250))
    spec_version: Mapped[str] = mapped_column(String(8))
    version: Mapped[str] = mapped_column(String(40))
    version_at: Mapped[datetime] = mapped_column(UTCDateTime())
    date_added: Mapped[datetime] = mapped_column(UTCDateTime())
    sender_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"))
    tlp: Mapped[int] = mapped_column(SmallInteger)
    pap: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    confidence: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    body: Mapped[str] = mapped_column(Text)


class WriteStatus(Base):
    """A TAXII status resource: the outcome of one POST of objects, for its sender to read.

    ``successes``, ``failures`` and ``pending`` are lists of the spec's status details
    (``id``, ``version``, and ``message`` for failures)."""

    __tablename__ = "intel_statuses"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("intel_collections.id", ondelete="CASCADE"), index=True
    )
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    request_timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    total_count: Mapped[int] = mapped_column(Integer)
    success_count: Mapped[int] = mapped_column(Integer)
    failure_count: Mapped[int] = mapped_column(Integer)
    pending_count: Mapped[int] = mapped_column(Integer)
    successes: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    failures: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    pending: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)


class Feed(Base):
    """An external source an organisation subscribes to (a TAXII collection, a MISP feed, a
    list of addresses, domains or hashes), polled on a schedule into one of its collections.

    Credentials are never stored: ``credential_env`` names the environment variable holding the
    token (or ``user:password`` for HTTP Basic). ``state`` is where the last poll stopped (the
    TAXII cursor, or the MISP manifest timestamps seen), saved with the objects it delivered, so
    a restart neither loses nor repeats. ``default_tlp`` is a rank; ``confidence`` the trust
    given to indicators that state none."""

    __tablename__ = "intel_feeds"
    __table_args__ = (UniqueConstraint("organisation_id", "name", name="uq_intel_feeds_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("intel_collections.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(String(2000))
    remote_collection: Mapped[str | None] = mapped_column(String(100), default=None)
    credential_env: Mapped[str | None] = mapped_column(String(100), default=None)
    confidence: Mapped[int] = mapped_column(SmallInteger)
    default_tlp: Mapped[int] = mapped_column(SmallInteger)
    lifetime_days: Mapped[int] = mapped_column(Integer)
    poll_minutes: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    state: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    next_poll_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    #: The last poll's error, in the feed's own words (never a credential), or None.
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    last_objects: Mapped[int] = mapped_column(Integer, default=0)
    last_refused: Mapped[int] = mapped_column(Integer, default=0)
    objects_total: Mapped[int] = mapped_column(BigId, default=0)
