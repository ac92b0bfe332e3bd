"""The database: declarative base, engines, sessions and the unit of work.

Services take ``*, session`` and never commit; the caller wraps a piece of work in
:func:`unit_of_work`, which commits once at the end or rolls everything back. Engines are built
by :func:`make_engine` from :class:`~qorgan.core.settings.Settings`, never at import time.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from qorgan.core.errors import QorganError

if TYPE_CHECKING:
    from qorgan.core.settings import Settings

#: Constraint names fixed by convention, so migrations name them the same on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: How long a SQLite connection waits for another writer before giving up.
SQLITE_BUSY_TIMEOUT_MS = 10_000


class DatabaseError(QorganError):
    """The database cannot be reached or is not set up as Qorgan expects."""


class Base(DeclarativeBase):
    """The root of every Qorgan table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp stored in UTC and always read back aware (UTC).

    SQLite has no time zone type and hands back naive values; PostgreSQL ``timestamptz`` hands
    them back in the session's zone. Both come out as UTC here, so a value read back equals the
    value written, which the audit hash chain relies on. Naive values are refused on write.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: Qorgan stores aware times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _normalise_url(raw: str) -> Any:
    try:
        url = make_url(raw)
    except Exception as exc:  # SQLAlchemy raises ArgumentError and friends
        raise DatabaseError(f"invalid database URL: {exc}", source="QORGAN_DATABASE_URL") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.drivername == "postgresql+psycopg" and importlib.util.find_spec("psycopg") is None:
        raise DatabaseError(
            "PostgreSQL needs the psycopg driver: pip install 'psycopg[binary]'",
            source="QORGAN_DATABASE_URL",
        )
    return url


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def make_engine(settings: Settings, **kwargs: Any) -> Engine:
    """An engine for ``settings.database_url``.

    SQLite: the file's folder is created when missing; every connection enforces foreign keys,
    uses write-ahead logging (readers do not block the writer) and waits for a busy writer.
    PostgreSQL: ``postgresql://`` URLs use psycopg 3.
    """
    url = _normalise_url(settings.database_url)
    # JSON columns (alert bodies, audit details) are written with orjson: several times faster
    # than the standard library's encoder, and it refuses what JSON cannot hold.
    kwargs.setdefault("json_serializer", _json_dumps)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
        if not in_memory:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA foreign_keys = ON")
                cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
                if not in_memory:
                    cursor.execute("PRAGMA journal_mode = WAL")
            finally:
                cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine``; objects stay readable after the unit of work commits."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit when the block ends normally, roll back when it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
