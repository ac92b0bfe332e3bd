"""Reading the alert store as an inbox: filters, search, sort orders, pages, groups, a timeline
and exports.

Every read takes the organisations whose alerts the caller may see (its own, and those shared
with it). Queries are written for the indexes of migration 0006, so the first page, a search
and a grouping stay fast with a million alerts (``bench/inbox.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Select, func, literal_column, or_, select
from sqlalchemy.orm import Session

from qorgan.incidents.alerts import AlertError
from qorgan.incidents.models import LEVELS, AlertLevel, AlertStatus, StoredAlert
from qorgan.incidents.schemas import AlertGroup, TimelinePoint
from qorgan.incidents.search import Search, SearchError, clause

#: Grouping keys, by their name in URLs.
GROUPINGS = ("rule", "host", "rule_host", "user", "address")
Grouping = Literal["rule", "host", "rule_host", "user", "address"]


class Sort(StrEnum):
    """Orders of the inbox, by their value in URLs ("-": descending)."""

    newest = "-time"  # event time, newest first; alerts without a time last
    oldest = "time"
    received_newest = "-received"
    received_oldest = "received"
    level_highest = "-level"  # most severe first, then newest
    level_lowest = "level"


@dataclass(frozen=True)
class AlertFilter:
    """What to narrow alerts to; every field left None (or empty) narrows nothing.

    ``since`` (inclusive) and ``until`` (exclusive) bound the event time and must be aware.
    ``query`` is the search box's text (see :mod:`qorgan.incidents.search`); ``address``
    matches the source or the destination address.
    """

    levels: frozenset[str] | set[str] = field(default_factory=frozenset)
    rule_id: str | None = None
    host: str | None = None
    kz_cert_class: str | None = None
    status: AlertStatus | None = None
    since: datetime | None = None
    until: datetime | None = None
    assignee_id: int | None = None
    user: str | None = None
    address: str | None = None
    query: str | None = None
    search: Search | None = field(default=None, init=False, compare=False)

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
        if self.query:
            try:
                object.__setattr__(self, "search", Search.parse(self.query))
            except SearchError as exc:
                raise AlertError(exc.message) from None

    def apply(self, query: Select[Any], dialect: str) -> Select[Any]:
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
        if self.user is not None:
            query = query.where(a.user_name == self.user)
        if self.address is not None:
            query = query.where(or_(a.source_ip == self.address, a.destination_ip == self.address))
        if self.search is not None:
            query = query.where(clause(self.search, dialect, a.id, a.search_text))
        return query


NO_FILTER = AlertFilter()


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _visible(query: Select[Any], organisation_ids: Collection[int]) -> Select[Any]:
    ids = sorted(set(organisation_ids))
    if len(ids) == 1:  # an equality keeps the (organisation, ...) indexes' order usable
        return query.where(StoredAlert.organisation_id == ids[0])
    return query.where(StoredAlert.organisation_id.in_(ids))


def filtered(
    session: Session, organisation_ids: Collection[int], filters: AlertFilter, *columns: Any
) -> Select[Any]:
    """``SELECT columns`` (whole alerts when none) of the visible alerts that match."""
    query = select(*columns) if columns else select(StoredAlert)
    return filters.apply(_visible(query, organisation_ids), _dialect(session))


def order(sort: Sort, dialect: str) -> list[Any]:
    """ORDER BY terms for ``sort``, matching the indexes' order on each database."""
    a = StoredAlert
    newest_time = a.time.desc().nulls_last() if dialect == "postgresql" else a.time.desc()
    oldest_time = a.time.asc().nulls_first() if dialect == "postgresql" else a.time.asc()
    return {
        Sort.newest: [newest_time, a.id.desc()],
        Sort.oldest: [oldest_time, a.id.asc()],
        Sort.received_newest: [a.received_at.desc(), a.id.desc()],
        Sort.received_oldest: [a.received_at.asc(), a.id.asc()],
        Sort.level_highest: [a.severity.desc(), newest_time, a.id.desc()],
        Sort.level_lowest: [a.severity.asc(), newest_time, a.id.desc()],
    }[sort]


def list_alerts(
    *,
    session: Session,
    organisation_ids: Collection[int],
    filters: AlertFilter = NO_FILTER,
    sort: Sort = Sort.newest,
    limit: int = 50,
    offset: int = 0,
    with_total: bool = True,
) -> tuple[list[StoredAlert], int | None]:
    """A page of alerts in ``sort`` order, and how many match in all (None without
    ``with_total``, for a caller that counts them otherwise). Newest first, alerts without an
    event time come last (oldest first: first)."""
    if not organisation_ids:
        return [], 0
    if limit < 0 or offset < 0:
        raise AlertError("limit and offset must not be negative")
    total = (
        count(session=session, organisation_ids=organisation_ids, filters=filters)
        if with_total
        else None
    )
    query = filtered(session, organisation_ids, filters)
    page = session.scalars(
        query.order_by(*order(Sort(sort), _dialect(session))).limit(limit).offset(offset)
    ).all()
    return list(page), total


def count(
    *, session: Session, organisation_ids: Collection[int], filters: AlertFilter = NO_FILTER
) -> int:
    """How many visible alerts match."""
    if not organisation_ids:
        return 0
    query = filtered(session, organisation_ids, filters, literal_column("1"))
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def level_counts(
    *, session: Session, organisation_ids: Collection[int], filters: AlertFilter = NO_FILTER
) -> dict[str, int]:
    """How many visible alerts match, per level (levels without alerts left out)."""
    if not organisation_ids:
        return {}
    query = filtered(
        session, organisation_ids, filters, StoredAlert.severity, func.count()
    ).group_by(StoredAlert.severity)
    return {LEVELS[rank]: n for rank, n in session.execute(query)}


def ids(
    *, session: Session, organisation_ids: Collection[int], filters: AlertFilter = NO_FILTER
) -> list[int]:
    """The ids of every visible alert that matches (for bulk actions), oldest id first."""
    if not organisation_ids:
        return []
    query = filtered(session, organisation_ids, filters, StoredAlert.id)
    return list(session.scalars(query.order_by(StoredAlert.id)))


def iterate(
    *,
    session: Session,
    organisation_ids: Collection[int],
    filters: AlertFilter = NO_FILTER,
    sort: Sort = Sort.newest,
    batch: int = 1000,
) -> Iterator[StoredAlert]:
    """Every visible alert that matches, in ``sort`` order, a batch at a time (exports)."""
    if not organisation_ids:
        return
    query = filtered(session, organisation_ids, filters).order_by(
        *order(Sort(sort), _dialect(session))
    )
    for alert in session.scalars(query.execution_options(yield_per=batch)):
        yield alert
        session.expunge(alert)  # bounded memory, whatever the export's size


def _group_keys(by: str) -> list[Any]:
    a = StoredAlert
    return {
        "rule": [a.rule_id],
        "host": [a.host],
        "rule_host": [a.rule_id, a.host],
        "user": [a.user_name],
        "address": [a.source_ip],
    }[by]


def group_alerts(
    *,
    session: Session,
    organisation_ids: Collection[int],
    filters: AlertFilter = NO_FILTER,
    by: Grouping = "rule",
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[AlertGroup], int]:
    """Alerts counted by rule, host, rule and host, user or source address: a page of groups,
    most severe first, then largest, and how many groups there are in all. Each group has its
    first and last event time and its highest level."""
    if by not in GROUPINGS:
        raise AlertError(f"cannot group by {by!r}; use {', '.join(GROUPINGS)}")
    if limit < 0 or offset < 0:
        raise AlertError("limit and offset must not be negative")
    if not organisation_ids:
        return [], 0
    a = StoredAlert
    keys = _group_keys(by)
    number = func.count().label("count")
    rank = func.max(a.severity).label("rank")
    columns: list[Any] = [
        *keys,
        number,
        func.min(a.time).label("first_time"),
        func.max(a.time).label("last_time"),
        rank,
    ]
    if by in ("rule", "rule_host"):
        # Titles may change between versions of a rule: show one of them.
        columns.append(func.max(a.rule_title).label("rule_title"))
    grouped = filtered(session, organisation_ids, filters, *columns).group_by(*keys)
    total = session.scalar(select(func.count()).select_from(grouped.subquery())) or 0
    query = grouped.order_by(rank.desc(), number.desc(), *keys).limit(limit).offset(offset)
    groups = []
    for row in session.execute(query):
        values = row._mapping
        groups.append(
            AlertGroup(
                rule_id=values.get("rule_id"),
                rule_title=values.get("rule_title"),
                host=values.get("host"),
                user=values.get("user_name"),
                address=values.get("source_ip"),
                count=row.count,
                first_time=row.first_time,
                last_time=row.last_time,
                level=AlertLevel(LEVELS[row.rank or 0]),
            )
        )
    return groups, total


def _hour_key(dialect: str) -> Any:
    """The UTC hour of an alert's event time, as text ``YYYY-MM-DD HH``."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", StoredAlert.time), "YYYY-MM-DD HH24")
    return func.substr(StoredAlert.time, 1, 13)


def timeline(
    *,
    session: Session,
    organisation_ids: Collection[int],
    filters: AlertFilter = NO_FILTER,
    bucket: Literal["hour", "day", "auto"] = "auto",
    tz: str = "Asia/Almaty",
) -> tuple[list[TimelinePoint], str]:
    """Alerts per hour or day of event time (in the zone ``tz``) and level, oldest first, and
    the bucket used: ``auto`` takes hours for a span of up to three days, days beyond.

    The database counts per UTC hour and level (a few thousand rows for a year); hours are then
    gathered into the zone's hours or days here. Alerts without an event time are left out.
    Zones whose offset is not a whole number of hours are bucketed by the UTC hour.
    """
    if bucket not in ("hour", "day", "auto"):
        raise AlertError(f"unknown bucket {bucket!r}; use hour, day or auto")
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise AlertError(f"unknown time zone {tz!r}") from None
    if not organisation_ids:
        return [], "day" if bucket == "auto" else bucket
    hour = _hour_key(_dialect(session)).label("hour")
    query = (
        filtered(session, organisation_ids, filters, hour, StoredAlert.level, func.count())
        .where(StoredAlert.time.is_not(None))
        .group_by(hour, StoredAlert.level)
    )
    hourly: list[tuple[datetime, str, int]] = []
    for key, level, n in session.execute(query):
        start = datetime.strptime(str(key), "%Y-%m-%d %H").replace(tzinfo=UTC)
        hourly.append((start, str(level), n))
    if bucket == "auto":
        span = (max(h[0] for h in hourly) - min(h[0] for h in hourly)) if hourly else timedelta()
        bucket = "hour" if span <= timedelta(days=3) else "day"
    counts: Counter[tuple[datetime, str]] = Counter()
    for start, level, n in hourly:
        local = start.astimezone(zone)
        # The bucket's start as a wall time in the zone, which gives it the offset in force
        # then (it may differ from the event's across a daylight-saving change).
        key = datetime(
            local.year, local.month, local.day, local.hour if bucket == "hour" else 0, tzinfo=zone
        )
        counts[(key, level)] += n
    points = [
        TimelinePoint(bucket=start, level=AlertLevel(level), count=n)
        for (start, level), n in sorted(
            counts.items(), key=lambda item: (item[0][0], LEVELS.index(item[0][1]))
        )
    ]
    return points, bucket
