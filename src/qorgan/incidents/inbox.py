"""Reading the alert store as an inbox: filters, search, sort orders, pages, groups, a timeline
and exports.

Every read takes the organisations whose alerts the caller may see (its own, and those shared
with it). Queries are written for the indexes of migration 0006, so the first page, a search
and a grouping stay fast with a million alerts (``bench/inbox.py``). Counts, groups and the
timeline of views narrowed only by status and level (and at most one of rule, host, user or
KZ-CERT class) are read from :class:`~qorgan.incidents.models.AlertTally`, which the database
keeps in step with the alerts; other views count the alerts that match.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Select, String, cast, func, literal, literal_column, or_, select
from sqlalchemy.orm import Session

from qorgan.incidents.alerts import AlertError
from qorgan.incidents.models import LEVELS, AlertLevel, AlertStatus, AlertTally, StoredAlert
from qorgan.incidents.schemas import AlertGroup, TimelinePoint
from qorgan.incidents.search import (
    SQLITE_INDEX,
    Search,
    SearchError,
    clause,
    contains,
    sqlite_match,
)

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

    def apply(self, query: Select[Any], dialect: str, *, search_probe: bool = False) -> Select[Any]:
        """``query`` narrowed to the matching alerts (``search_probe``: see
        :func:`~qorgan.incidents.search.clause`)."""
        a = StoredAlert
        if self.levels:
            # The rank, which is indexed, rather than the level it stands for.
            query = query.where(a.severity.in_(sorted(LEVELS.index(v) for v in self.levels)))
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
            query = query.where(
                clause(self.search, dialect, a.id, a.search_text, probe=search_probe)
            )
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
    dialect = _dialect(session)
    probe = False
    if filters.search is not None and dialect == "sqlite":
        share = _share(session, organisation_ids, replace(filters, query=None))
        probe = share is None or share < BROAD
    return filters.apply(_visible(query, organisation_ids), dialect, search_probe=probe)


#: Filters that keep this share of the alerts or more are broad: a search among them reads the
#: search index's matches first.
BROAD = 0.2


def _share(
    session: Session, organisation_ids: Collection[int], filters: AlertFilter
) -> float | None:
    """The share of the visible alerts the filters keep, from the tallies (None: unknown)."""
    kept = _tallied_levels(session, organisation_ids, filters)
    if kept is None:
        return None
    every = sum((_tallied_levels(session, organisation_ids, NO_FILTER) or {}).values())
    return sum(kept.values()) / every if every else 1.0


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
    terms = order(Sort(sort), _dialect(session))
    if filters.search is not None:
        found = _recent_matches(session, organisation_ids, filters, terms, limit, offset)
        if found is not None:
            return found, total
    query = filtered(session, organisation_ids, filters)
    page = session.scalars(query.order_by(*terms).limit(limit).offset(offset)).all()
    return list(page), total


#: Alerts a search's page looks through, in the page's order, before asking the index.
SEARCH_WINDOW = 5000


def _recent_matches(
    session: Session,
    organisation_ids: Collection[int],
    filters: AlertFilter,
    terms: list[Any],
    limit: int,
    offset: int,
) -> list[StoredAlert] | None:
    """A search's page found by reading the texts of the first :data:`SEARCH_WINDOW` alerts
    the other filters give, in the page's order; None when they hold too few matches (a rare
    term: the index finds its matches faster than reading).

    A common term (a tenth of the alerts) fills a page within a few hundred alerts, while the
    index would first gather all its hundreds of thousands of matches to sort them by time.
    """
    assert filters.search is not None
    if offset + limit > SEARCH_WINDOW // 10:
        return None
    others = replace(filters, query=None)
    window = (
        filtered(session, organisation_ids, others, StoredAlert.id)
        .order_by(*terms)
        .limit(SEARCH_WINDOW)
        .subquery()
    )
    query = (
        select(StoredAlert)
        .join(window, StoredAlert.id == window.c.id)
        .where(contains(filters.search, _dialect(session), StoredAlert.search_text))
        .order_by(*terms)
        .limit(limit)
        .offset(offset)
    )
    page = list(session.scalars(query))
    if len(page) == limit:
        return page
    beyond = filtered(session, organisation_ids, others, StoredAlert.id).order_by(*terms)
    if session.scalar(beyond.offset(SEARCH_WINDOW).limit(1)) is None:
        return page  # the window held every alert the other filters give
    return None


# --------------------------------------------------------------------------- tallies

#: Filters the tallies can answer, by the tally dimension whose key they fix.
_KEYED = {"rule_id": "rule", "host": "host", "user": "user", "kz_cert_class": "class"}
#: The tally dimension of each grouping, and the column it groups.
_GROUP_DIMENSION = {
    "rule": "rule",
    "host": "host",
    "user": "user",
    "address": "address",
    "rule_host": "rulehost",
}


def _tally_key(value: str | None) -> str:
    """A tally's key for a value: "=" and the value, "" for none."""
    return "" if value is None else "=" + value


def _tally_value(key: str) -> str | None:
    return key[1:] if key else None


def _pair_key(rule_id: str | None, host: str | None) -> str:
    """A ``rulehost`` tally's key (migration 0006): the rule's key after its length and ":",
    then the host's key."""
    rule = _tally_key(rule_id)
    return f"{len(rule)}:{rule}{_tally_key(host)}"


def _pair_value(key: str) -> tuple[str | None, str | None]:
    length, _, rest = key.partition(":")
    n = int(length)
    return _tally_value(rest[:n]), _tally_value(rest[n:])


def _tally_plan(filters: AlertFilter) -> tuple[str | None, str | None] | None:
    """(dimension, key) of the tallies that count the alerts matching ``filters``: the keyed
    filter's, or (None, None) when only status and levels narrow them; None when the tallies
    cannot count them (a time range, an assignee, an address, a search, or two keyed filters)."""
    if (
        filters.since is not None
        or filters.until is not None
        or filters.assignee_id is not None
        or filters.address is not None
        or filters.search is not None
    ):
        return None
    keyed = [(_KEYED[name], getattr(filters, name)) for name in _KEYED]
    keyed = [(dimension, value) for dimension, value in keyed if value is not None]
    if [dimension for dimension, _ in keyed] == ["rule", "host"]:
        return "rulehost", _pair_key(filters.rule_id, filters.host)
    if len(keyed) > 1:
        return None
    if keyed:
        dimension, value = keyed[0]
        return dimension, _tally_key(value)
    return None, None


def _tallies(
    organisation_ids: Collection[int], filters: AlertFilter, dimension: str, *columns: Any
) -> Select[Any]:
    """``SELECT columns`` of the visible, non-empty tallies of ``dimension`` that match the
    filters' status and levels (the caller narrows the key)."""
    t = AlertTally
    ids = sorted(set(organisation_ids))
    query = select(*columns).where(
        t.organisation_id == ids[0] if len(ids) == 1 else t.organisation_id.in_(ids),
        t.dimension == dimension,
        t.alerts > 0,
    )
    if filters.status is not None:
        query = query.where(t.status == AlertStatus(filters.status).value)
    if filters.levels:
        query = query.where(t.severity.in_(sorted(LEVELS.index(v) for v in filters.levels)))
    return query


def _tallied_levels(
    session: Session, organisation_ids: Collection[int], filters: AlertFilter
) -> dict[str, int] | None:
    plan = _tally_plan(filters)
    if plan is None:
        return None
    dimension, key = plan
    t = AlertTally
    # Every alert is in exactly one key of each dimension; the classes are the fewest rows.
    query = _tallies(
        organisation_ids, filters, dimension or "class", t.severity, func.sum(t.alerts)
    )
    if key is not None:
        query = query.where(t.key == key)
    rows = session.execute(query.group_by(t.severity))
    return {LEVELS[rank]: int(n) for rank, n in sorted(rows) if n}


# --------------------------------------------------------------------------- counts


def count(
    *, session: Session, organisation_ids: Collection[int], filters: AlertFilter = NO_FILTER
) -> int:
    """How many visible alerts match."""
    if not organisation_ids:
        return 0
    tallied = _tallied_levels(session, organisation_ids, filters)
    if tallied is not None:
        return sum(tallied.values())
    query = filtered(session, organisation_ids, filters, literal_column("1"))
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


#: Matching alerts a view counts one by one at most (what the tallies cannot count): beyond,
#: it says "more than" this many, as search engines do (Elasticsearch's track_total_hits).
COUNT_CAP = 10_000


@dataclass(frozen=True, slots=True)
class Counted:
    """How many alerts match, per level and in all; or, when ``exact`` is False, only that
    more than ``total`` match (``levels`` is then empty)."""

    levels: dict[str, int]
    total: int
    exact: bool


def counted(
    *,
    session: Session,
    organisation_ids: Collection[int],
    filters: AlertFilter = NO_FILTER,
    cap: int | None = None,
) -> Counted:
    """:func:`level_counts` for a page that must answer quickly whatever matches: exact from
    the tallies, or by counting up to ``cap`` matching alerts (a common search term matches
    hundreds of thousands, which no index counts in a page's time); ``cap`` defaults to
    :data:`COUNT_CAP`."""
    cap = COUNT_CAP if cap is None else cap
    if not organisation_ids:
        return Counted({}, 0, True)
    tallied = _tallied_levels(session, organisation_ids, filters)
    if tallied is not None:
        return Counted(tallied, sum(tallied.values()), True)
    if filters.search is not None and _dialect(session) == "sqlite":
        query = _search_driven(session, organisation_ids, filters, StoredAlert.severity)
    else:
        query = filtered(session, organisation_ids, filters, StoredAlert.severity)
    ranks = session.scalars(query.limit(cap + 1)).all()
    if len(ranks) > cap:
        return Counted({}, cap, False)
    found = Counter(ranks)
    return Counted({LEVELS[rank]: found[rank] for rank in sorted(found)}, len(ranks), True)


def _search_driven(
    session: Session, organisation_ids: Collection[int], filters: AlertFilter, *columns: Any
) -> Select[Any]:
    """On SQLite, ``SELECT columns`` of the matching alerts read in the search index's order
    when the other filters keep a fifth of the alerts or more: the index then yields matches
    lazily and a count up to a cap stops early, where gathering every match first would cost
    a common term's hundreds of thousands. With narrower filters, the usual query (filters
    first, then the matches gathered and probed)."""
    assert filters.search is not None
    others = replace(filters, query=None)
    share = _share(session, organisation_ids, others)
    if share is None or share < BROAD:
        return filtered(session, organisation_ids, filters, *columns)
    query = (
        select(*columns)
        .select_from(SQLITE_INDEX)
        .join(StoredAlert, StoredAlert.id == SQLITE_INDEX.c.rowid)
    )
    # The index must be the outer loop: "organisation_id + 0" is no index's leading column to
    # the planner (every index of alerts starts with it), so it cannot read the alerts first
    # and run the full-text query once per alert, which it chose on a database never
    # analysed (20 s for 20,000 alerts).
    ids = sorted(set(organisation_ids))
    query = query.where((StoredAlert.organisation_id + 0).in_(ids))
    query = others.apply(query, "sqlite")
    return query.where(sqlite_match(filters.search, StoredAlert.search_text))


def level_counts(
    *, session: Session, organisation_ids: Collection[int], filters: AlertFilter = NO_FILTER
) -> dict[str, int]:
    """How many visible alerts match, per level (levels without alerts left out)."""
    if not organisation_ids:
        return {}
    tallied = _tallied_levels(session, organisation_ids, filters)
    if tallied is not None:
        return tallied
    query = filtered(
        session, organisation_ids, filters, StoredAlert.severity, func.count()
    ).group_by(StoredAlert.severity)
    return {LEVELS[rank]: n for rank, n in sorted(session.execute(query))}


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


def _group_names(by: str) -> list[str]:
    """The :class:`AlertGroup` fields a grouping's keys fill."""
    return {
        "rule": ["rule_id"],
        "host": ["host"],
        "rule_host": ["rule_id", "host"],
        "user": ["user"],
        "address": ["address"],
    }[by]


def _pair_order(a: type[StoredAlert]) -> Any:
    """The order of ``rulehost`` tally keys, computed from the alerts (ties between groups of
    rule and host come in the same order from the tallies and from the alerts)."""
    rule = func.coalesce(literal("=") + a.rule_id, "")
    host = func.coalesce(literal("=") + a.host, "")
    return cast(func.length(rule), String) + literal(":") + rule + host


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
    plan = _tally_plan(filters)
    dimension = _GROUP_DIMENSION.get(by)
    if plan is not None and dimension is not None and plan[0] in (None, dimension):
        return _tallied_groups(
            session, organisation_ids, filters, by, dimension, plan[1], limit, offset
        )
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
        # How many groups in all, in the same pass (counted after grouping, before the limit).
        func.count().over().label("groups"),
    ]
    if by in ("rule", "rule_host"):
        # Titles may change between versions of a rule: show one of them.
        columns.append(func.max(a.rule_title).label("rule_title"))
    grouped = filtered(session, organisation_ids, filters, *columns).group_by(*keys)
    # Ties: by value, alerts without one last (on both databases); as the tallies order them.
    ties = [_pair_order(a)] if by == "rule_host" else [key.asc().nulls_last() for key in keys]
    query = grouped.order_by(rank.desc(), number.desc(), *ties).limit(limit).offset(offset)
    rows = session.execute(query).all()
    if rows:
        total = rows[0].groups
    else:  # past the last page, or nothing matches
        total = session.scalar(select(func.count()).select_from(grouped.subquery())) or 0
    groups = []
    for row in rows:
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


def _tallied_groups(
    session: Session,
    organisation_ids: Collection[int],
    filters: AlertFilter,
    by: str,
    dimension: str,
    key: str | None,
    limit: int,
    offset: int,
) -> tuple[list[AlertGroup], int]:
    """Groups from the tallies: counts and highest levels there; each group's first and last
    event time (and a rule's title) from the alerts, by index probes for the page's groups."""
    t = AlertTally
    number = func.sum(t.alerts).label("count")
    rank = func.max(t.severity).label("rank")
    every = func.count().over().label("groups")  # in the same pass, before the limit
    base = _tallies(organisation_ids, filters, dimension, t.key, number, rank, every)
    if key is not None:
        base = base.where(t.key == key)
    grouped = base.group_by(t.key)
    rows = session.execute(
        grouped.order_by(rank.desc(), number.desc(), t.key == "", t.key).limit(limit).offset(offset)
    ).all()
    if rows:
        total = rows[0].groups
    else:  # past the last page, or nothing matches
        total = session.scalar(select(func.count()).select_from(grouped.subquery())) or 0
    values: list[tuple[str | None, ...]] = [
        _pair_value(row.key) if by == "rule_host" else (_tally_value(row.key),) for row in rows
    ]
    times = _first_and_last(session, organisation_ids, filters, _group_keys(by), values)
    named = dict(zip(_group_names(by), zip(*values, strict=True), strict=True)) if values else {}
    rule_ids = list(dict.fromkeys(named.get("rule_id", ())))
    titles = _titles(session, organisation_ids, rule_ids) if rule_ids else {}
    groups = []
    for i, (row, value) in enumerate(zip(rows, values, strict=True)):
        first, last = times.get(value, (None, None))
        of = {name: column[i] for name, column in named.items()}
        groups.append(
            AlertGroup(
                rule_id=of.get("rule_id"),
                rule_title=titles.get(of.get("rule_id")),
                host=of.get("host"),
                user=of.get("user"),
                address=of.get("address"),
                count=int(row.count),
                first_time=first,
                last_time=last,
                level=AlertLevel(LEVELS[row.rank or 0]),
            )
        )
    return groups, total


#: Scalar subqueries per statement when probing groups' first and last alerts.
_PROBES = 400


def _first_and_last(
    session: Session,
    organisation_ids: Collection[int],
    filters: AlertFilter,
    columns: list[Any],
    values: list[tuple[str | None, ...]],
) -> dict[tuple[str | None, ...], tuple[datetime | None, datetime | None]]:
    """Each group's first and last event time among the matching alerts (a group: a value of
    each of ``columns``): one ``min`` and one ``max`` per group and organisation, each read
    from an end of the index ``(organisation, value, time)`` (skipping the alerts of other
    statuses or levels, or another rule); combined here."""
    a = StoredAlert
    ranks = sorted(LEVELS.index(v) for v in filters.levels)
    probes: list[tuple[tuple[str | None, ...], int, Any]] = []
    for value in values:
        for organisation in sorted(set(organisation_ids)):
            where = [a.organisation_id == organisation]
            where += [
                column.is_(None) if part is None else column == part
                for column, part in zip(columns, value, strict=True)
            ]
            if filters.status is not None:
                where.append(a.status == filters.status)
            if ranks:
                where.append(a.severity.in_(ranks))
            for end, aggregate in enumerate((func.min, func.max)):
                probes.append(
                    (value, end, select(aggregate(a.time)).where(*where).scalar_subquery())
                )
    found: dict[tuple[str | None, ...], list[datetime | None]] = {v: [None, None] for v in values}
    for start in range(0, len(probes), _PROBES):
        chunk = probes[start : start + _PROBES]
        row = session.execute(select(*(probe for _, _, probe in chunk))).one()
        for (value, end, _), moment in zip(chunk, row, strict=True):
            if moment is None:
                continue
            current = found[value][end]
            if current is None or (moment < current if end == 0 else moment > current):
                found[value][end] = moment
    return {value: (first, last) for value, (first, last) in found.items()}


def _titles(
    session: Session, organisation_ids: Collection[int], rule_ids: list[str | None]
) -> dict[str | None, str]:
    """A title of each rule (titles may change between versions of a rule: one of them)."""
    a = StoredAlert
    wanted = [rule_id for rule_id in rule_ids if rule_id is not None]
    if not wanted:
        return {}
    ids = sorted(set(organisation_ids))
    visible = a.organisation_id == ids[0] if len(ids) == 1 else a.organisation_id.in_(ids)
    probes = [
        select(a.rule_title).where(visible, a.rule_id == rule_id).limit(1).scalar_subquery()
        for rule_id in wanted
    ]
    titles: dict[str | None, str] = {}
    for start in range(0, len(probes), _PROBES):
        row = session.execute(select(*probes[start : start + _PROBES])).one()
        titles.update(zip(wanted[start : start + _PROBES], row, strict=True))
    return titles


def _hour_key(dialect: str) -> Any:
    """The UTC hour of an alert's event time, as text ``YYYY-MM-DD HH``."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", StoredAlert.time), "YYYY-MM-DD HH24")
    return func.substr(StoredAlert.time, 1, 13)


def _hourly(
    session: Session, organisation_ids: Collection[int], filters: AlertFilter
) -> list[tuple[str, str, int]]:
    """(UTC hour as ``YYYY-MM-DD HH``, level, alerts) of the matching alerts with a time."""
    if _tally_plan(filters) == (None, None):
        t = AlertTally
        query = _tallies(organisation_ids, filters, "hour", t.key, t.severity, func.sum(t.alerts))
        rows = session.execute(query.where(t.key != "").group_by(t.key, t.severity))
        return [(key[1:], LEVELS[rank], int(n)) for key, rank, n in rows if n]
    hour = _hour_key(_dialect(session)).label("hour")
    query = (
        filtered(session, organisation_ids, filters, hour, StoredAlert.severity, func.count())
        .where(StoredAlert.time.is_not(None))
        .group_by(hour, StoredAlert.severity)
    )
    return [(str(key), LEVELS[rank], n) for key, rank, n in session.execute(query)]


def _hour_start(key: str) -> datetime:
    """The start of an hour keyed ``YYYY-MM-DD HH`` (UTC)."""
    return datetime(int(key[:4]), int(key[5:7]), int(key[8:10]), int(key[11:13]), tzinfo=UTC)


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
    hourly = _hourly(session, organisation_ids, filters)
    # Each hour once (a year of them is 8,760; strptime would cost more than the query).
    hours = {key: _hour_start(key) for key in {key for key, _, _ in hourly}}
    if bucket == "auto":
        span = (max(hours.values()) - min(hours.values())) if hours else timedelta()
        bucket = "hour" if span <= timedelta(days=3) else "day"
    buckets: dict[str, datetime] = {}
    for key, start in hours.items():
        local = start.astimezone(zone)
        # The bucket's start as a wall time in the zone, which gives it the offset in force
        # then (it may differ from the event's across a daylight-saving change).
        buckets[key] = datetime(
            local.year, local.month, local.day, local.hour if bucket == "hour" else 0, tzinfo=zone
        )
    counts: Counter[tuple[datetime, str]] = Counter()
    for key, level, n in hourly:
        counts[(buckets[key], level)] += n
    points = [
        TimelinePoint(bucket=start, level=AlertLevel(level), count=n)
        for (start, level), n in sorted(
            counts.items(), key=lambda item: (item[0][0], LEVELS.index(item[0][1]))
        )
    ]
    return points, bucket
