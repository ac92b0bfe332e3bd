"""How a live log source is doing, as the Sources page, the API and the metrics tell it: its
state (live, silent, never sent, disabled), its recent rate, how far detection is behind it, and
whether it needs attention now (silent, dropping or failing sources come first).

:func:`health` is pure (a source's figures and its recent ten-second counts in, a verdict out);
:func:`overview` reads what it needs for many sources in three queries.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from qorgan.pipeline import source_stats
from qorgan.pipeline.models import LogSource, SourceProblem

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qorgan.pipeline.source_stats import Rate

#: What "recent" means for the chart and for dropping or failing: the last quarter of an hour.
WINDOW = timedelta(minutes=15)
#: The rate shown is over the last minute.
RATE_OVER = timedelta(minutes=1)


class State(StrEnum):
    live = "live"  # sent within its expected interval
    silent = "silent"  # sent before, but nothing for longer than its expected interval
    never = "never"  # registered, nothing received yet
    disabled = "disabled"  # not taken by the collector


#: The order of states in a list, after the sources that need attention.
STATE_ORDER = {State.silent: 0, State.never: 1, State.live: 2, State.disabled: 3}


@dataclass(frozen=True, slots=True)
class Health:
    state: State
    #: Events per second over the last minute.
    events_per_second: float
    #: Seconds between the newest message received and the newest analysed (None: nothing
    #: received, or nothing analysed yet).
    lag_seconds: float | None
    #: Events dropped, and records that could not be read, in the last :data:`WINDOW`.
    recent_dropped: int
    recent_failures: int
    #: Silent past its interval, including a source that never sent at all.
    overdue: bool = False
    #: A newly refused or unreadable message (malformed frame, parse failure, drop) within the
    #: window, when the source's problems were read.
    recent_problem: bool = False

    @property
    def dropping(self) -> bool:
        return self.recent_dropped > 0

    @property
    def failing(self) -> bool:
        return self.recent_failures > 0 or (self.recent_problem and not self.dropping)

    @property
    def attention(self) -> bool:
        return self.overdue or self.dropping or self.failing

    def rank(self) -> tuple[int, int]:
        """Sorts the sources that need attention first: silent, then dropping, then failing;
        then by state."""
        urgency = 0 if self.overdue else 1 if self.dropping else 2 if self.failing else 3
        return urgency, STATE_ORDER[self.state]


def state_of(source: LogSource, now: datetime) -> tuple[State, bool]:
    """The source's state and whether it is past its expected interval: a silent one always,
    one that never sent once its interval since registration has passed (the collector raises
    the same silence alert for it)."""
    interval = timedelta(seconds=source.expected_interval)
    if not source.enabled:
        return State.disabled, False
    if source.last_event_at is None:
        return State.never, source.silent_since is not None or now - source.created_at > interval
    if source.silent_since is not None and source.last_event_at <= source.silent_since:
        return State.silent, True
    if now - source.last_event_at > interval:
        return State.silent, True
    return State.live, False


def health(
    source: LogSource,
    recent: Sequence[Rate],
    now: datetime,
    *,
    last_problem: datetime | None = None,
) -> Health:
    """``source``'s health from its figures and its ten-second counts of the last
    :data:`WINDOW` (``recent``), at ``now``."""
    state, overdue = state_of(source, now)
    since = now - RATE_OVER
    events = sum(r.events for r in recent if r.at >= since)
    lag = None
    if source.last_event_at is not None and source.analysed_through is not None:
        lag = max(0.0, (source.last_event_at - source.analysed_through).total_seconds())
    return Health(
        state=state,
        events_per_second=events / RATE_OVER.total_seconds(),
        lag_seconds=lag,
        recent_dropped=sum(r.dropped for r in recent),
        recent_failures=sum(r.failures for r in recent),
        overdue=overdue,
        recent_problem=last_problem is not None and last_problem >= now - WINDOW,
    )


@dataclass(frozen=True, slots=True)
class Overview:
    """Sources with their health, those needing attention first, and their recent counts."""

    rows: list[tuple[LogSource, Health]]
    rates: dict[int, list[Rate]]


def last_problems(*, session: Session, source_ids: Collection[int]) -> dict[int, datetime]:
    """When each source's newest problem was recorded."""
    if not source_ids:
        return {}
    rows = session.execute(
        select(SourceProblem.source_id, func.max(SourceProblem.at))
        .where(SourceProblem.source_id.in_(list(source_ids)))
        .group_by(SourceProblem.source_id)
    ).all()
    return {source_id: at for source_id, at in rows if at is not None}


def overview(*, session: Session, sources: Sequence[LogSource], now: datetime) -> Overview:
    """``sources`` with their health, most important first (then by organisation and name)."""
    ids = [s.id for s in sources]
    rates = source_stats.rates(session=session, source_ids=ids, since=now - WINDOW) if ids else {}
    problems = last_problems(session=session, source_ids=ids)
    rows = [
        (s, health(s, rates.get(s.id, []), now, last_problem=problems.get(s.id))) for s in sources
    ]
    rows.sort(key=lambda row: (*row[1].rank(), row[0].organisation_id, row[0].name.casefold()))
    return Overview(rows, rates)
