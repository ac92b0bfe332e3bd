"""Incident statistics: what an organisation's incidents came to over a period (or, for the
national coordinator, the incidents reported to it, from all its constituency or from one
reporting organisation), and what needs action now.

Over a period: counts by KZ-CERT class, status, severity and (for the coordinator) reporting
organisation, per day, week or month of the local zone, and the mean and 90th percentile of the
times to acknowledge, contain and close (from ``started_at`` to each moment, over the
incidents that reached it). An organisation's incidents belong to the period they were created
in; the coordinator's to the period they were reported to it in (each is an index range).

Now: the open incidents by severity, and the overdue ones (open, ``next_due_at`` passed), most
overdue first.

Everything is counted by the database: the means with ``avg``; the percentiles with
``percentile_cont`` on PostgreSQL, and on SQLite (which has none) by the two values either side
of the rank, read with ``ORDER BY ... LIMIT 2 OFFSET k`` (so never the whole period in Python);
:mod:`qorgan.incidents.figures` holds the arithmetic. Service functions take ``*, session`` and
never commit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select

from qorgan.core.db import utcnow
from qorgan.core.models import Organisation
from qorgan.incidents import figures
from qorgan.incidents.figures import Period
from qorgan.incidents.lifecycle import OPEN, SEVERITY_RANK, Status
from qorgan.incidents.listing import Scope
from qorgan.incidents.models import Incident

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: The times measured, each from ``started_at`` to the moment named.
MEASURES = ("acknowledge", "contain", "close")
MOMENTS = {
    "acknowledge": Incident.acknowledged_at,
    "contain": Incident.contained_at,
    "close": Incident.closed_at,
}
#: The percentile reported beside the mean.
P90 = 0.9
#: On SQLite (no percentiles), a period of at most this many incidents has its times computed
#: here from one fetch (the 100,000 of a year of bench/incidents.py's large organisation: 0.8 s,
#: against 1.7 s for a sort per measure in the database); a larger one by those sorts.
IN_PYTHON = 500_000
#: Overdue incidents listed (all are counted).
OVERDUE_SHOWN = 20
OPEN_STATUSES = sorted(OPEN)
#: Severities, most severe first.
SEVERITIES = sorted(SEVERITY_RANK.values(), reverse=True)


@dataclass(frozen=True, slots=True)
class Selection:
    """Whose incidents: the organisation's own, or (``Scope.reported``) those reported to it as
    national coordinator, optionally from one reporting organisation only."""

    organisation_id: int
    scope: Scope = Scope.own
    reporter_id: int | None = None

    @property
    def moment(self) -> Any:
        """The column that places an incident in a period."""
        return Incident.reported_at if self.scope is Scope.reported else Incident.created_at

    def scoped(self, query: Select[Any]) -> Select[Any]:
        if self.scope is Scope.reported:
            query = query.where(Incident.reported_to_id == self.organisation_id)
            if self.reporter_id is not None:
                query = query.where(Incident.organisation_id == self.reporter_id)
            return query
        return query.where(Incident.organisation_id == self.organisation_id)

    def within(self, query: Select[Any], period: Period) -> Select[Any]:
        moment = self.moment
        return self.scoped(query).where(moment >= period.start, moment < period.end)


@dataclass(frozen=True, slots=True)
class Duration:
    """A time measured over the incidents that reached its moment, in hours."""

    measure: str
    count: int
    mean_hours: float | None
    p90_hours: float | None


@dataclass(frozen=True, slots=True)
class Stats:
    """A period's figures. Counts keep every status and severity (zeros too); classes and
    organisations only those with incidents, most first."""

    period: Period
    bucket: str
    total: int
    by_class: list[tuple[str | None, int]]
    by_status: dict[str, int]
    by_severity: dict[int, int]
    #: Reporting organisations (coordinator scope only): id, name, count.
    by_organisation: list[tuple[int, str, int]]
    #: Per bucket (its first local day), the count per severity.
    series: list[tuple[date, dict[int, int]]]
    durations: list[Duration]


@dataclass(frozen=True, slots=True)
class Current:
    """What needs action now: open incidents by severity, and the overdue ones."""

    open_total: int
    open_by_severity: dict[int, int]
    overdue_total: int
    overdue: list[Incident] = field(default_factory=list)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _seconds(dialect: str, later: Any) -> Any:
    """Seconds from the incident's start to ``later``, as the database computes them."""
    if dialect == "postgresql":
        # date_part gives a double; EXTRACT a numeric, whose arithmetic made a year's figures
        # of 100,000 incidents half as fast again.
        return func.date_part("epoch", later - Incident.started_at)
    # Julian days are doubles: a difference is exact to about 80 µs, so round to the ms.
    return func.round((func.julianday(later) - func.julianday(Incident.started_at)) * 86400.0, 3)


def _hours(seconds: Any) -> float | None:
    return None if seconds is None else float(seconds) / 3600


def period_stats(
    *, session: Session, selection: Selection, period: Period, bucket: str | None = None
) -> Stats:
    """The period's figures (``bucket``: day, week or month; chosen from its length if None)."""
    bucket = bucket or figures.auto_bucket(period)
    figures.bucket_start(period.first_day(), bucket)  # refuses an unknown bucket
    rows = session.execute(
        selection.within(
            select(Incident.kz_cert_class, Incident.status, Incident.severity, func.count()),
            period,
        ).group_by(Incident.kz_cert_class, Incident.status, Incident.severity)
    ).all()
    classes: Counter[str | None] = Counter()
    statuses = dict.fromkeys((s.value for s in Status), 0)
    severities = dict.fromkeys(SEVERITIES, 0)
    for kz_cert_class, status, severity, count in rows:
        classes[kz_cert_class] += count
        statuses[status] = statuses.get(status, 0) + count
        severities[severity] = severities.get(severity, 0) + count
    return Stats(
        period=period,
        bucket=bucket,
        total=sum(classes.values()),
        by_class=sorted(classes.items(), key=lambda item: (-item[1], item[0] or "")),
        by_status=statuses,
        by_severity=severities,
        by_organisation=_organisations(session, selection, period),
        series=_series(session, selection, period, bucket),
        durations=durations(session=session, selection=selection, period=period),
    )


def _organisations(
    session: Session, selection: Selection, period: Period
) -> list[tuple[int, str, int]]:
    if selection.scope is not Scope.reported:
        return []
    rows = session.execute(
        selection.within(select(Incident.organisation_id, func.count()), period).group_by(
            Incident.organisation_id
        )
    ).all()
    names = dict(
        session.execute(
            select(Organisation.id, Organisation.name).where(
                Organisation.id.in_([row[0] for row in rows])
            )
        ).all()
    )
    found = [(org, names.get(org, str(org)), n) for org, n in rows]
    return sorted(found, key=lambda item: (-item[2], item[1]))


def _series(
    session: Session, selection: Selection, period: Period, bucket: str
) -> list[tuple[date, dict[int, int]]]:
    """Counts per bucket and severity. PostgreSQL groups by local day; SQLite (no time zones)
    by UTC hour, each hour then placed in its local day here (the zone's offset is whole
    hours: Asia/Almaty's is)."""
    zone = ZoneInfo(period.zone)
    moment = selection.moment
    per_day: Counter[tuple[date, int]] = Counter()
    if _dialect(session) == "postgresql":
        day = func.date_trunc("day", func.timezone(period.zone, moment))
        query = selection.within(select(day, Incident.severity, func.count()), period)
        for local, severity, count in session.execute(query.group_by(day, Incident.severity)):
            per_day[(local.date(), severity)] += count
    else:
        hour = func.substr(moment, 1, 13)
        query = selection.within(select(hour, Incident.severity, func.count()), period)
        for text, severity, count in session.execute(query.group_by(hour, Incident.severity)):
            at = datetime.strptime(text, "%Y-%m-%d %H").replace(tzinfo=UTC)
            per_day[(at.astimezone(zone).date(), severity)] += count
    series = {
        start: dict.fromkeys(SEVERITIES, 0) for start in figures.bucket_starts(period, bucket)
    }
    for (day_, severity), count in per_day.items():
        counts = series.setdefault(figures.bucket_start(day_, bucket), dict.fromkeys(SEVERITIES, 0))
        counts[severity] = counts.get(severity, 0) + count
    return sorted(series.items())


def durations(*, session: Session, selection: Selection, period: Period) -> list[Duration]:
    """Mean and 90th percentile of the times to acknowledge, contain and close, in hours."""
    dialect = _dialect(session)
    if dialect != "postgresql":
        count = session.scalar(selection.within(select(func.count()), period)) or 0
        if count <= IN_PYTHON:
            return _durations_in_python(session, selection, period)
    columns: list[Any] = []
    for moment in MOMENTS.values():
        seconds = _seconds(dialect, moment)
        columns += [func.count(moment), func.avg(seconds)]
        if dialect == "postgresql":
            columns.append(func.percentile_cont(P90).within_group(seconds))
    row = session.execute(selection.within(select(*columns), period)).one()
    width = 3 if dialect == "postgresql" else 2
    found = []
    for index, (measure, moment) in enumerate(MOMENTS.items()):
        count, mean = row[index * width], row[index * width + 1]
        if dialect == "postgresql":
            p90 = row[index * width + 2]
        else:
            p90 = _percentile(session, selection, period, moment, count or 0)
        found.append(Duration(measure, count or 0, _hours(mean), _hours(p90)))
    return found


def _durations_in_python(session: Session, selection: Selection, period: Period) -> list[Duration]:
    """SQLite: each incident's three times in one query (Core rows: no ORM per row), and the
    figures here: one scan instead of a sort per measure in the database."""
    times = [_seconds("sqlite", moment) for moment in MOMENTS.values()]
    rows = session.connection().execute(selection.within(select(*times), period)).all()
    found = []
    for index, measure in enumerate(MOMENTS):
        seconds = [row[index] for row in rows if row[index] is not None]
        mean = sum(seconds) / len(seconds) if seconds else None
        p90 = figures.percentile(seconds, P90)
        found.append(Duration(measure, len(seconds), _hours(mean), _hours(p90)))
    return found


def _percentile(
    session: Session, selection: Selection, period: Period, moment: Any, count: int
) -> float | None:
    """The P90 of seconds to ``moment`` from the two values either side of its rank."""
    if count == 0:
        return None
    lower, weight = figures.rank(count, P90)
    seconds = _seconds(_dialect(session), moment)
    values = session.scalars(
        selection.within(select(seconds), period)
        .where(moment.is_not(None))
        .order_by(seconds)
        .limit(2)
        .offset(lower)
    ).all()
    if not values:  # changed since it was counted
        return None
    return figures.between(values[0], values[1] if len(values) > 1 else None, weight)


def current(
    *,
    session: Session,
    selection: Selection,
    now: datetime | None = None,
    limit: int = OVERDUE_SHOWN,
) -> Current:
    """Open incidents by severity, how many are overdue, and the ``limit`` most overdue."""
    now = now or utcnow()
    rows = session.execute(
        selection.scoped(select(Incident.severity, func.count()))
        .where(Incident.status.in_(OPEN_STATUSES))
        .group_by(Incident.severity)
    ).all()
    by_severity = dict.fromkeys(SEVERITIES, 0)
    for severity, count in rows:
        by_severity[severity] = by_severity.get(severity, 0) + count
    listed, total = overdue(session=session, selection=selection, now=now, limit=limit)
    return Current(sum(by_severity.values()), by_severity, total, listed)


def overdue(
    *,
    session: Session,
    selection: Selection,
    now: datetime,
    limit: int = OVERDUE_SHOWN,
    period: Period | None = None,
) -> tuple[list[Incident], int]:
    """Open incidents whose next deadline has passed, most overdue first (of ``period`` only,
    when given), and how many there are."""

    def narrowed(query: Select[Any]) -> Select[Any]:
        query = selection.within(query, period) if period else selection.scoped(query)
        return query.where(Incident.status.in_(OPEN_STATUSES), Incident.next_due_at < now)

    listed = (
        session.scalars(
            narrowed(select(Incident)).order_by(Incident.next_due_at, Incident.id).limit(limit)
        ).all()
        if limit > 0
        else []
    )
    total = session.scalar(narrowed(select(func.count()).select_from(Incident))) or 0
    return list(listed), total


@dataclass(frozen=True, slots=True)
class Row:
    """An incident of a report, with its reporting organisation's name."""

    id: int
    organisation: str
    kz_cert_class: str | None
    severity: int
    status: str
    resolution: str | None
    started_at: datetime
    acknowledged_at: datetime | None
    contained_at: datetime | None
    closed_at: datetime | None
    next_due_at: datetime | None
    acknowledge_due_at: datetime | None
    contain_due_at: datetime | None
    close_due_at: datetime | None

    def hours(self, measure: str) -> float | None:
        """Hours from the start to the measure's moment, if reached."""
        reached = {
            "acknowledge": self.acknowledged_at,
            "contain": self.contained_at,
            "close": self.closed_at,
        }[measure]
        return None if reached is None else (reached - self.started_at).total_seconds() / 3600

    def overdue(self, now: datetime) -> bool:
        """Open with its next deadline passed (as the lists and the dashboard count it)."""
        return (
            self.status in OPEN_STATUSES and self.next_due_at is not None and self.next_due_at < now
        )

    def late(self, now: datetime) -> list[str]:
        """The measures whose deadline was missed: met after it, or still open past it."""
        out = []
        for measure, met, due in (
            ("acknowledge", self.acknowledged_at, self.acknowledge_due_at),
            ("contain", self.contained_at, self.contain_due_at),
            ("close", self.closed_at, self.close_due_at),
        ):
            if due is None:
                continue
            if (met is not None and met > due) or (
                met is None and self.status in OPEN_STATUSES and due < now
            ):
                out.append(measure)
        return out


_ROW_COLUMNS = (
    Incident.id,
    Organisation.name,
    Incident.kz_cert_class,
    Incident.severity,
    Incident.status,
    Incident.resolution,
    Incident.started_at,
    Incident.acknowledged_at,
    Incident.contained_at,
    Incident.closed_at,
    Incident.next_due_at,
    Incident.acknowledge_due_at,
    Incident.contain_due_at,
    Incident.close_due_at,
)


def rows(*, session: Session, selection: Selection, period: Period) -> Iterator[Row]:
    """The period's incidents in the order they entered it, read in batches (a report of a
    month of a large constituency streams rather than sits in memory)."""
    query = (
        selection.within(select(*_ROW_COLUMNS), period)
        .join(Organisation, Organisation.id == Incident.organisation_id)
        .order_by(selection.moment, Incident.id)
        .execution_options(yield_per=2000)
    )
    for row in session.execute(query):
        yield Row(*row)
