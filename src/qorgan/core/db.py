"""The database: declarative base, engines, sessions and the unit of work.

Services take ``*, session`` and never commit; the caller wraps a piece of work in
:func:`unit_of_work`, which commits once at the end or rolls everything back. Engines are built
by :func:`make_engine` from :class:`~qorgan.core.settings.Settings`, never at import time.
"""

from __future__ import annotations

import importlib.util
import threading
import weakref
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

#: How long a SQLite connection waits for another writer before giving up. SQLite's busy
#: handler retries on a timer rather than queueing writers, so under several concurrent
#: 500-alert writers an unlucky one waited more than 10 s (bench/ingest.py) and failed.
SQLITE_BUSY_TIMEOUT_MS = 60_000


#: Per SQLite engine: the queue its writers join in this process (see :func:`queue_writer`).
_WRITERS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
#: The key, in a pooled connection's ``info``, of the writer's place in that queue.
_QUEUED = "qorgan.writer"


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
    # ...and read with it: the standard library's decoder was 7% of an access decision's
    # server time (bench/decisions.py reads consents' purposes and categories).
    kwargs.setdefault("json_deserializer", orjson.loads)
    # A database error's message leaves out the statement's values: they are alerts' events,
    # users' names and addresses, and these messages end up in logs.
    kwargs.setdefault("hide_parameters", True)
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

        _queue_writers(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _queue_writers(engine: Engine) -> None:
    """Give a SQLite engine its writers' queue, left at the end of each transaction however it
    ends: committed, rolled back, or the connection returned to the pool or discarded."""
    _WRITERS[engine] = lock = threading.Lock()

    def leave(info: dict[Any, Any]) -> None:
        if info.pop(_QUEUED, False):
            lock.release()

    @event.listens_for(engine, "commit")
    def _committed(connection: Any) -> None:
        leave(connection.info)

    @event.listens_for(engine, "rollback")
    def _rolled_back(connection: Any) -> None:
        leave(connection.info)

    @event.listens_for(engine.pool, "reset")
    def _returned(_dbapi: Any, record: Any, _state: Any) -> None:
        leave(record.info)

    @event.listens_for(engine.pool, "invalidate")
    def _invalidated(_dbapi: Any, record: Any, _exception: Any) -> None:
        leave(record.info)

    @event.listens_for(engine.pool, "close")
    def _closed(_dbapi: Any, record: Any) -> None:
        leave(record.info)


def queue_writer(session: Session) -> None:
    """On SQLite, wait for this process's earlier writers to finish before taking the write
    lock (a no-op elsewhere, and when this transaction already queued).

    SQLite's busy handler retries on a timer rather than queueing writers, so under several
    concurrent writers an unlucky one kept losing the race: with four clients sending 500
    alerts at a time, requests waited up to 18 s (bench/ingest.py). Waiting here in turn
    keeps that wait to the writers ahead. Gives up after the busy timeout, as SQLite would."""
    connection = session.connection()
    lock = _WRITERS.get(connection.engine)
    if lock is None or connection.info.get(_QUEUED):
        return
    if not lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
        raise DatabaseError("the database is busy with other writers; try again", source="db")
    connection.info[_QUEUED] = True


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
