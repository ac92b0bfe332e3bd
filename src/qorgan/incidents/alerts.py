"""The alert store: ingestion (idempotent), lists, groups, timelines and triage.

Service functions take ``*, session`` and never commit; the caller's unit of work does. Reads
take the organisations whose alerts the caller may see (its own, and those shared with it);
writes take the acting user's own organisation, and only touch that organisation's alerts.
Every write is in the audit trail, with users by id and counts, never an event's content:
events hold personal data (user names, addresses), which is why showing a whole alert is
recorded too (:func:`record_read`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from sqlalchemy import (
    JSON,
    DateTime,
    Select,
    SmallInteger,
    String,
    Text,
    any_,
    bindparam,
    case,
    cast,
    column,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from qorgan.core import audit
from qorgan.core.db import utcnow
from qorgan.core.errors import QorganError
from qorgan.core.models import User
from qorgan.core.timeutil import parse_time
from qorgan.incidents.models import LEVEL_RANK, LEVELS, AlertLevel, AlertStatus, StoredAlert
from qorgan.incidents.observables import identity, observables, search_text
from qorgan.incidents.schemas import AlertGroup, AlertIn, IngestResult, TimelinePoint

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
    """Rows go in as one executemany of ``INSERT ... ON CONFLICT DO NOTHING RETURNING id``."""

    def __init__(self, connection: Any, constants: dict[str, Any]) -> None:
        self.connection = connection
        self.constants = constants
        self.statement = (
            sqlite.insert(_ALERTS)
            .on_conflict_do_nothing(index_elements=["organisation_id", "fingerprint"])
            .returning(_ALERTS.c.id)
        )

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
        params = [
            {**self.constants, **dict(zip(_PER_ALERT, row, strict=True)), "body": body}
            for row, body in zip(rows, bodies, strict=True)
        ]
        return len(self.connection.execute(self.statement, params).all())


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
    """Store ``alerts`` for the organisation; an alert already stored there (same fingerprint),
    or repeated in ``alerts``, is counted as a duplicate and not stored again.

    Safe to repeat and to run concurrently: fingerprints already stored are looked up first,
    and the rest go in with ``INSERT ... ON CONFLICT DO NOTHING`` on the (organisation,
    fingerprint) unique constraint, one statement per few thousand alerts. One audit entry
    (``alerts.ingest``) records the counts.
    """
    writer = _writer(
        session,
        {
            "organisation_id": organisation_id,
            "received_at": utcnow(),
            "status": AlertStatus.new.value,
            "hunt_id": hunt_id,
        },
    )
    seen: set[str] = set()
    created = 0
    for start in range(0, len(alerts), INGEST_CHUNK):
        chunk: dict[str, tuple[AlertIn, dict[str, Any]]] = {}
        for alert in alerts[start : start + INGEST_CHUNK]:
            body = alert.body()
            digest = fingerprint(body)
            if digest not in seen:
                seen.add(digest)
                chunk[digest] = (alert, body)
        if not chunk:
            continue
        # Skip what is already stored (a repeated upload costs a lookup, not a failed insert);
        # ON CONFLICT still settles a race with a concurrent ingestion.
        for digest in writer.stored(organisation_id, list(chunk)):
            del chunk[digest]
        if not chunk:
            continue
        rows = []
        bodies = []
        for digest, (alert, body) in chunk.items():
            moment = parse_time(alert.time)
            found = observables(body)
            rows.append(
                (
                    digest,
                    alert.rule.id,
                    alert.rule.title,
                    alert.rule.level,
                    LEVEL_RANK[alert.rule.level],
                    alert.kz_cert_class,
                    alert.host,
                    found.user,
                    found.source_ip,
                    found.destination_ip,
                    moment.astimezone(UTC) if moment is not None else None,
                    search_text(body),
                )
            )
            bodies.append(body)
        created += writer.insert(rows, bodies)
    result = IngestResult(received=len(alerts), created=created, duplicates=len(alerts) - created)
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


@dataclass(frozen=True)
class AlertFilter:
    """What to narrow alerts to; every field left None (or empty) narrows nothing.

    ``since`` (inclusive) and ``until`` (exclusive) bound the event time and must be aware.
    """

    levels: frozenset[str] | set[str] = field(default_factory=frozenset)
    rule_id: str | None = None
    host: str | None = None
    kz_cert_class: str | None = None
    status: AlertStatus | None = None
    since: datetime | None = None
    until: datetime | None = None
    assignee_id: int | None = None

    def __post_init__(self) -> None:
        levels = frozenset(str(level) for level in self.levels)
        unknown = sorted(levels - set(LEVELS))
        if unknown:
            raise AlertError(f"unknown levels {unknown}; known: {', '.join(LEVELS)}")
        object.__setattr__(self, "levels", levels)
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None and (moment.tzinfo is None or moment.utcoffset() is None):
                raise AlertError(f"{name} must be a time with a zone (an aware datetime)")
        if self.status is not None:
            try:
                object.__setattr__(self, "status", AlertStatus(self.status))
            except ValueError:
                known = ", ".join(AlertStatus)
                raise AlertError(f"unknown status {self.status!r}; known: {known}") from None

    def apply(self, query: Select[Any]) -> Select[Any]:
        a = StoredAlert
        if self.levels:
            query = query.where(a.level.in_(sorted(self.levels)))
        if self.rule_id is not None:
            query = query.where(a.rule_id == self.rule_id)
        if self.host is not None:
            query = query.where(a.host == self.host)
        if self.kz_cert_class is not None:
            query = query.where(a.kz_cert_class == self.kz_cert_class)
        if self.status is not None:
            query = query.where(a.status == self.status)
        if self.since is not None:
            query = query.where(a.time >= self.since)
        if self.until is not None:
            query = query.where(a.time < self.until)
        if self.assignee_id is not None:
            query = query.where(a.assignee_id == self.assignee_id)
        return query


NO_FILTER = AlertFilter()


def _visible(query: Select[Any], organisation_ids: Collection[int]) -> Select[Any]:
    return query.where(StoredAlert.organisation_id.in_(sorted(set(organisation_ids))))


def list_alerts(
    *,
    session: Session,
    organisation_ids: Collection[int],
    filters: AlertFilter = NO_FILTER,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[StoredAlert], int]:
    """A page of alerts, newest event first (alerts without a time last, then newest stored
    first), and how many match in all."""
    if not organisation_ids:
        return [], 0
    if limit < 0 or offset < 0:
        raise AlertError("limit and offset must not be negative")
    query = filters.apply(_visible(select(StoredAlert), organisation_ids))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = session.scalars(
        query.order_by(StoredAlert.time.is_(None), StoredAlert.time.desc(), StoredAlert.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return list(page), total


def get_alert(
    *, session: Session, organisation_ids: Collection[int], alert_id: int
) -> StoredAlert | None:
    """The alert, or None when there is none among the organisations' alerts."""
    alert = session.get(StoredAlert, alert_id)
    if alert is None or alert.organisation_id not in set(organisation_ids):
        return None
    return alert


def _level_rank() -> Any:
    return case(LEVEL_RANK, value=StoredAlert.level, else_=0)


def group_alerts(
    *,
    session: Session,
    organisation_ids: Collection[int],
    filters: AlertFilter = NO_FILTER,
    by: Literal["rule", "host", "rule_host"] = "rule",
    limit: int = 100,
) -> list[AlertGroup]:
    """Alerts counted by rule, host, or rule and host: the ``limit`` largest groups, each
    with its first and last event time and its highest level."""
    if by not in ("rule", "host", "rule_host"):
        raise AlertError(f"cannot group by {by!r}; use rule, host or rule_host")
    if not organisation_ids:
        return []
    a = StoredAlert
    keys: list[Any] = []
    if by in ("rule", "rule_host"):
        keys.append(a.rule_id)
    if by in ("host", "rule_host"):
        keys.append(a.host)
    count = func.count().label("count")
    columns: list[Any] = [
        *keys,
        count,
        func.min(a.time).label("first_time"),
        func.max(a.time).label("last_time"),
        func.max(_level_rank()).label("rank"),
    ]
    if by != "host":
        # Titles may change between versions of a rule: show one of them.
        columns.append(func.max(a.rule_title).label("rule_title"))
    query = filters.apply(_visible(select(*columns), organisation_ids)).group_by(*keys)
    query = query.order_by(count.desc(), *keys).limit(limit)
    groups = []
    for row in session.execute(query):
        groups.append(
            AlertGroup(
                rule_id=row.rule_id if by != "host" else None,
                rule_title=row.rule_title if by != "host" else None,
                host=row.host if by != "rule" else None,
                count=row.count,
                first_time=row.first_time,
                last_time=row.last_time,
                level=AlertLevel(LEVELS[row.rank or 0]),
            )
        )
    return groups


def timeline(
    *,
    session: Session,
    organisation_ids: Collection[int],
    filters: AlertFilter = NO_FILTER,
    bucket: Literal["hour", "day"] = "hour",
    tz: str = "Asia/Almaty",
) -> list[TimelinePoint]:
    """Alerts per hour or day of event time (in the zone ``tz``) and level, oldest first.

    Alerts without an event time are left out. Bucketing is done here, not in SQL, so it
    reads the same on every database and in every zone.
    """
    if bucket not in ("hour", "day"):
        raise AlertError(f"unknown bucket {bucket!r}; use hour or day")
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise AlertError(f"unknown time zone {tz!r}") from None
    if not organisation_ids:
        return []
    query = filters.apply(
        _visible(select(StoredAlert.time, StoredAlert.level), organisation_ids)
    ).where(StoredAlert.time.is_not(None))
    counts: Counter[tuple[datetime, str]] = Counter()
    hourly = bucket == "hour"
    for moment, level in session.execute(query.execution_options(yield_per=10_000)):
        local = moment.astimezone(zone)
        # The bucket's start as a wall time in the zone, which gives it the offset in force
        # then (it may differ from the event's across a daylight-saving change).
        start = datetime(
            local.year, local.month, local.day, local.hour if hourly else 0, tzinfo=zone
        )
        counts[(start, str(level))] += 1
    return [
        TimelinePoint(bucket=start, level=AlertLevel(level), count=n)
        for (start, level), n in sorted(
            counts.items(), key=lambda item: (item[0][0], LEVEL_RANK[item[0][1]])
        )
    ]


# --------------------------------------------------------------------------- triage


def _own_alert(session: Session, organisation_id: int, alert_id: int) -> StoredAlert:
    alert = session.scalar(
        select(StoredAlert)
        .where(StoredAlert.id == alert_id, StoredAlert.organisation_id == organisation_id)
        .with_for_update()
    )
    if alert is None:
        raise NotFound("no such alert", source=f"alert {alert_id}")
    return alert


def _set_status(
    session: Session,
    organisation_id: int,
    alert_id: int,
    actor_id: int,
    status: AlertStatus,
    action: str,
) -> StoredAlert:
    alert = _own_alert(session, organisation_id, alert_id)
    old = alert.status
    if old is status:
        return alert  # nothing changed, nothing to record
    alert.status = status
    audit.record(
        action,
        session=session,
        actor=str(actor_id),
        organisation_id=organisation_id,
        target_type="alert",
        target_id=alert.id,
        details={"status_from": str(old), "status_to": str(status)},
    )
    return alert


def acknowledge(
    *, session: Session, organisation_id: int, alert_id: int, actor_id: int
) -> StoredAlert:
    """An analyst has seen the alert and takes it on (status ``acknowledged``)."""
    return _set_status(
        session, organisation_id, alert_id, actor_id, AlertStatus.acknowledged, "alert.acknowledge"
    )


def mark_false_positive(
    *, session: Session, organisation_id: int, alert_id: int, actor_id: int
) -> StoredAlert:
    """The alert fired on benign activity (status ``false_positive``)."""
    return _set_status(
        session,
        organisation_id,
        alert_id,
        actor_id,
        AlertStatus.false_positive,
        "alert.false_positive",
    )


def reopen(*, session: Session, organisation_id: int, alert_id: int, actor_id: int) -> StoredAlert:
    """Back to ``new``, e.g. after a false-positive call turned out wrong."""
    return _set_status(
        session, organisation_id, alert_id, actor_id, AlertStatus.new, "alert.reopen"
    )


def assign(
    *,
    session: Session,
    organisation_id: int,
    alert_id: int,
    actor_id: int,
    assignee_id: int | None,
) -> StoredAlert:
    """Give the alert to a user of the organisation (None: to nobody)."""
    alert = _own_alert(session, organisation_id, alert_id)
    if assignee_id is not None:
        owner = session.scalar(select(User.organisation_id).where(User.id == assignee_id))
        if owner != organisation_id:
            raise AlertError("alerts can only be assigned to users of the same organisation")
    old = alert.assignee_id
    if old == assignee_id:
        return alert
    alert.assignee_id = assignee_id
    audit.record(
        "alert.assign",
        session=session,
        actor=str(actor_id),
        organisation_id=organisation_id,
        target_type="alert",
        target_id=alert.id,
        details={
            "assignee_from": old,
            "assignee_to": assignee_id,
            "status": str(alert.status),
        },
    )
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
