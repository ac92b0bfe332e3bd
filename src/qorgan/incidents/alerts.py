"""The alert store: ingestion (idempotent) and reading one alert. Lists, searches, groups and
timelines are in :mod:`qorgan.incidents.inbox`; triage in :mod:`qorgan.incidents.triage`.

Service functions take ``*, session`` and never commit; the caller's unit of work does. Reads
take the organisations whose alerts the caller may see (its own, and those shared with it);
writes take the acting user's own organisation, and only touch that organisation's alerts.
Every write is in the audit trail, with users by id and counts, never an event's content:
events hold personal data (user names, addresses), which is why showing a whole alert is
recorded too (:func:`record_read`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    DateTime,
    SmallInteger,
    String,
    Text,
    any_,
    bindparam,
    cast,
    column,
    func,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from qorgan.core import audit
from qorgan.core.db import utcnow
from qorgan.core.errors import QorganError
from qorgan.core.timeutil import parse_time
from qorgan.incidents.models import LEVEL_RANK, AlertStatus, StoredAlert
from qorgan.incidents.observables import identity, observables, search_text
from qorgan.incidents.schemas import AlertIn, IngestResult

#: Alerts per INSERT statement: bounds the memory a very large ingestion holds at once.
INGEST_CHUNK = 5_000


class AlertError(QorganError):
    """An alert operation was refused; the message is fit for the user."""


class NotFound(AlertError):
    """No such alert among those the caller may see (the web layer answers 404)."""


# --------------------------------------------------------------------------- ingestion


def fingerprint(alert: dict[str, Any]) -> str:
    """SHA-256 (hex) of the alert's canonical JSON (keys sorted at every level), without the
    paths of its log file and rule file: the same event read from the same content is one
    alert whatever path it came from."""
    return hashlib.sha256(orjson.dumps(identity(alert), option=orjson.OPT_SORT_KEYS)).hexdigest()


#: What an ingestion stores per alert, in this order; the other columns are the same for the
#: whole call.
_PER_ALERT = (
    "fingerprint",
    "rule_id",
    "rule_title",
    "level",
    "severity",
    "kz_cert_class",
    "host",
    "user_name",
    "source_ip",
    "destination_ip",
    "time",
    "search_text",
)
_ALERTS = StoredAlert.__table__


class _SqliteWriter:
    """Rows go in as multi-row ``INSERT ... VALUES (...), (...) ON CONFLICT DO NOTHING``
    statements on the session's own connection (so in its transaction), each value through its
    column type's bind processor, exactly as SQLAlchemy would store it. Measured on 3,000
    alerts: SQLAlchemy's statement building and per-row parameter handling cost about as much
    as SQLite's own insert, and one statement per row (``executemany``) twice as much as a
    statement per 1,900 rows (each statement flushes the full-text index's pending terms)."""

    def __init__(self, connection: Any, constants: dict[str, Any]) -> None:
        self.connection = connection
        self.constants = constants
        dialect = connection.dialect
        columns = [*constants, *_PER_ALERT, "body"]
        self.processors = [
            _ALERTS.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns
        ]
        self.head = f"INSERT INTO {_ALERTS.name} ({', '.join(columns)}) VALUES "
        self.row = f"({', '.join('?' for _ in columns)})"
        self.tail = " ON CONFLICT (organisation_id, fingerprint) DO NOTHING"
        #: Within SQLite's default limit of 32,766 parameters a statement (since 3.32).
        self.rows_per_statement = 32_766 // len(columns)

    def stored(self, organisation_id: int, digests: list[str]) -> list[str]:
        return list(
            self.connection.scalars(
                select(_ALERTS.c.fingerprint).where(
                    _ALERTS.c.organisation_id == organisation_id,
                    _ALERTS.c.fingerprint.in_(digests),
                )
            )
        )

    def insert(self, rows: list[tuple[Any, ...]], bodies: list[dict[str, Any]]) -> int:
        constants = tuple(self.constants.values())
        processors = self.processors
        values = [
            value if process is None else process(value)
            for row, body in zip(rows, bodies, strict=True)
            for process, value in zip(processors, (*constants, *row, body), strict=True)
        ]
        width = len(processors)
        step = self.rows_per_statement
        created = 0
        cursor = self.connection.connection.driver_connection.cursor()
        try:
            for start in range(0, len(rows), step):
                count = min(step, len(rows) - start)
                cursor.execute(
                    self.head + ", ".join([self.row] * count) + self.tail,
                    values[start * width : (start + count) * width],
                )
                created += cursor.rowcount
        finally:
            cursor.close()
        return created


class _PostgresWriter:
    """Rows go in as one ``INSERT ... SELECT FROM json_to_recordset(rows) ON CONFLICT DO
    NOTHING``: the chunk travels as one JSON document (serialised by orjson, parsed by the
    server), not as tens of thousands of placeholders for the driver to parse and escape."""

    def __init__(self, connection: Any, constants: dict[str, Any]) -> None:
        self.connection = connection
        types: dict[str, Any] = {name: String() for name in _PER_ALERT}
        types["time"] = DateTime(timezone=True)
        types["severity"] = SmallInteger()
        types["search_text"] = Text()
        # The body travels as JSON text inside the document, cast to json by the server:
        # json_to_recordset cannot hand over a nested object holding "\u0000" (it would have to
        # turn it into text), while a JSON string of that object is plain text to it.
        types["body"] = Text()
        rows = (
            func.json_to_recordset(cast(bindparam("rows", type_=Text()), JSON()))
            .table_valued(*(column(name, type_) for name, type_ in types.items()))
            .render_derived(with_types=True)
        )
        selected = [
            *(
                bindparam(f"c_{name}", value, type_=_ALERTS.c[name].type)
                for name, value in constants.items()
            ),
            *(rows.c[name] for name in _PER_ALERT),
            cast(rows.c.body, JSON()),
        ]
        self.statement = (
            postgresql.insert(_ALERTS)
            .from_select([*constants, *types], select(*selected))
            .on_conflict_do_nothing(index_elements=["organisation_id", "fingerprint"])
            .returning(_ALERTS.c.id)
        )

    def stored(self, organisation_id: int, digests: list[str]) -> list[str]:
        return list(
            self.connection.scalars(
                select(_ALERTS.c.fingerprint).where(
                    _ALERTS.c.organisation_id == organisation_id,
                    _ALERTS.c.fingerprint == any_(bindparam("digests", digests, ARRAY(String()))),
                )
            )
        )

    def insert(self, rows: list[tuple[Any, ...]], bodies: list[dict[str, Any]]) -> int:
        document = orjson.dumps(
            [
                {**dict(zip(_PER_ALERT, row, strict=True)), "body": orjson.dumps(body).decode()}
                for row, body in zip(rows, bodies, strict=True)
            ]
        )
        return len(self.connection.execute(self.statement, {"rows": document.decode()}).all())


def _writer(session: Session, constants: dict[str, Any]) -> _SqliteWriter | _PostgresWriter:
    connection = session.connection()
    dialect = connection.dialect.name
    if dialect == "postgresql":
        return _PostgresWriter(connection, constants)
    if dialect == "sqlite":
        return _SqliteWriter(connection, constants)
    raise AlertError(f"the alert store does not support the {dialect} database")


def ingest(
    *,
    session: Session,
    organisation_id: int,
    alerts: Sequence[AlertIn],
    actor: str,
    hunt_id: int | None = None,
) -> IngestResult:
    """Store validated ``alerts`` (:func:`store`)."""
    return store(
        session=session,
        organisation_id=organisation_id,
        bodies=[alert.body() for alert in alerts],
        actor=actor,
        hunt_id=hunt_id,
    )


@dataclass(slots=True)
class Prepared:
    """Alert bodies made ready to store (:func:`prepare`): by fingerprint, each alert's
    columns and body, an alert repeated in the input once; ``received`` counts the input."""

    alerts: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = field(default_factory=dict)
    received: int = 0

    def add(self, bodies: Sequence[dict[str, Any]]) -> Prepared:
        """Fingerprint, observables and search text of each body: the part of storing that
        needs no database (live detection does it in its own thread while another process
        stores)."""
        alerts = self.alerts
        for body in bodies:
            digest = fingerprint(body)
            if digest in alerts:
                continue
            rule = body["rule"]
            classification = body.get("classification")
            moment = parse_time(body["time"])
            found = observables(body)
            row = (
                digest,
                rule["id"],
                rule["title"],
                rule["level"],
                LEVEL_RANK[rule["level"]],
                classification.get("kz_cert") if classification else None,
                body["host"],
                found.user,
                found.source_ip,
                found.destination_ip,
                moment.astimezone(UTC) if moment is not None else None,
                search_text(body),
            )
            alerts[digest] = (row, body)
        self.received += len(bodies)
        return self


def prepare(bodies: Sequence[dict[str, Any]]) -> Prepared:
    """``bodies`` made ready to store (:meth:`Prepared.add`)."""
    return Prepared().add(bodies)


def store(
    *,
    session: Session,
    organisation_id: int,
    bodies: Sequence[dict[str, Any]] | Prepared,
    actor: str,
    hunt_id: int | None = None,
) -> IngestResult:
    """Store alert ``bodies`` for the organisation: each in the documented shape, as
    :meth:`AlertIn.body` gives it (validated; detection's alerts come through
    :func:`qorgan.pipeline.alerting.stored_bodies`), or already :class:`Prepared`. An alert
    already stored there (same fingerprint), or repeated in ``bodies``, is counted as a
    duplicate and not stored again.

    Safe to repeat and to run concurrently: fingerprints already stored are looked up first,
    and the rest go in with ``INSERT ... ON CONFLICT DO NOTHING`` on the (organisation,
    fingerprint) unique constraint, one statement per few thousand alerts. One audit entry
    (``alerts.ingest``) records the counts.
    """
    prepared = bodies if isinstance(bodies, Prepared) else prepare(bodies)
    writer = _writer(
        session,
        {
            "organisation_id": organisation_id,
            "received_at": utcnow(),
            "status": AlertStatus.new.value,
            "hunt_id": hunt_id,
        },
    )
    digests = list(prepared.alerts)
    created = 0
    for start in range(0, len(digests), INGEST_CHUNK):
        chunk = digests[start : start + INGEST_CHUNK]
        # Skip what is already stored (a repeated upload costs a lookup, not a failed insert);
        # ON CONFLICT still settles a race with a concurrent ingestion.
        stored = set(writer.stored(organisation_id, chunk))
        fresh = [prepared.alerts[d] for d in chunk if d not in stored]
        if not fresh:
            continue
        # The append lock before the first write (the rows are built outside it): writers
        # take turns in the order they came, instead of racing for SQLite's write lock.
        audit.lock(session)
        created += writer.insert([row for row, _ in fresh], [body for _, body in fresh])
    result = IngestResult(
        received=prepared.received, created=created, duplicates=prepared.received - created
    )
    audit.record(
        "alerts.ingest",
        session=session,
        actor=actor,
        organisation_id=organisation_id,
        target_type="hunt" if hunt_id is not None else None,
        target_id=hunt_id,
        details=result.model_dump(),
    )
    return result


# --------------------------------------------------------------------------- reading


def get_alert(
    *, session: Session, organisation_ids: Collection[int], alert_id: int
) -> StoredAlert | None:
    """The alert, or None when there is none among the organisations' alerts."""
    alert = session.get(StoredAlert, alert_id)
    if alert is None or alert.organisation_id not in set(organisation_ids):
        return None
    return alert


def record_read(*, session: Session, user_id: int, organisation_id: int, alert_id: int) -> None:
    """Record that the user was shown the whole alert (its event may hold personal data)."""
    audit.record(
        "alert.read",
        session=session,
        actor=str(user_id),
        organisation_id=organisation_id,
        target_type="alert",
        target_id=alert_id,
    )
