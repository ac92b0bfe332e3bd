"""Sigma correlation rules over a stream of base-rule matches: sliding windows on event time.

Semantics (the plain-Python reference in ``tests/detection/test_correlation.py`` states the same):

- Events matched by a correlation's base rules are grouped by the ``group-by`` fields (aliases
  resolved per rule). Within a group, events are processed in event-time order.
- The window is sliding: on each event at time ``t`` the group keeps the events with
  ``t - timespan <= time <= t``. After adding the event, the aggregate is computed (event count,
  distinct values, the number of distinct base rules seen (temporal), the longest ordered prefix
  of the base rules (temporal_ordered), sum, average, percentile, median) and, when the condition
  holds, an alert fires carrying the references of the window's events, and the group's window
  is emptied: the next alert needs new events.
- Out of order: events may arrive up to ``lateness`` seconds behind the newest event seen. They
  wait in one buffer shared by all correlations until the watermark (newest time minus
  lateness) passes them, so windows see them in time order. An event older than one already
  processed is *late*: it is counted and reported, not correlated. ``lateness=None`` buffers
  everything until :meth:`Correlator.flush` (a hunt over files in any order).
- Memory is bounded: the buffer holds at most ``lateness`` seconds of events, a window at most
  ``timespan``, and groups idle for longer than the timespan are dropped.
- :meth:`Correlator.dump` and :meth:`Correlator.load` save and restore everything, so a hunt
  continued later, or a live worker, neither loses nor counts twice a window.
"""

from __future__ import annotations

import heapq
import math
import pickle
from bisect import bisect_left, insort
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from qorgan.core.timeutil import parse_time
from qorgan.detection.errors import DetectionError
from qorgan.detection.plan import CompiledCorrelation, Plan

#: (source path, record, time text, base rule id): where a correlated event came from.
EventRef = tuple[str, int, str | None, str]
STATE_FORMAT = 3
_SCALARS = frozenset({str, int, float, bool, type(None)})
_COUNTED = frozenset({"value_count", "temporal", "temporal_ordered"})
_NO_VALUES: Counter[Any] = Counter()  # shared, never written: kinds that count no values


def epoch(text: Any) -> float | None:
    """Seconds since the epoch of an ISO 8601 time (naive times are UTC), or None."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    moment = parse_time(text)
    return None if moment is None else moment.timestamp()


def number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    try:
        result = float(str(value).strip())
    except ValueError:
        return None
    return result if math.isfinite(result) else None


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (NumPy's default) over sorted ``values``."""
    position = (len(values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


@dataclass(slots=True)
class CorrelationAlert:
    correlation: CompiledCorrelation
    group: dict[str, Any]
    value: float
    start: float
    end: float
    events: list[EventRef]


class _Window:
    """One group's events in the window, and what the aggregate needs of them."""

    __slots__ = ("counted", "entries", "numbers", "total", "values")

    def __init__(self, kind: str) -> None:
        self.entries: deque[tuple[float, int, Any, EventRef]] = deque()
        # Distinct values, or rule positions; sorted numbers for percentiles. Made only for
        # the kinds that use them: most windows hold a single event and are soon dropped.
        self.values: Counter[Any] = Counter() if kind in _COUNTED else _NO_VALUES
        self.numbers: list[float] = []
        self.total = 0.0
        self.counted = 0  # entries with a numeric value

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.entries, self.values, self.numbers, self.total, self.counted)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.entries, self.values, self.numbers, self.total, self.counted = state


@dataclass(slots=True)
class _State:
    """Everything one correlation remembers between events."""

    windows: dict[tuple[Any, ...], _Window] = field(default_factory=dict)
    fired: int = 0
    swept: float = -math.inf  # event time of the last drop of idle groups


@dataclass(slots=True)
class _Stream:
    """The buffer shared by all correlations: events in event-time order, and the watermark."""

    #: (time, arrival number, ref, [(correlation, rule position, group key, value), ...])
    pending: list[tuple[float, int, EventRef, list[tuple[int, int, tuple[Any, ...], Any]]]] = field(
        default_factory=list
    )
    watermark: float = -math.inf
    frontier: float = -math.inf
    sequence: int = 0
    late: int = 0
    untimed: int = 0


class Correlator:
    """Runs every correlation of a plan. Feed base-rule matches with :meth:`observe`, collect
    alerts with :meth:`advance` (after each batch) and :meth:`flush` (at the end of input)."""

    def __init__(self, plan: Plan, lateness: float | None = 0.0) -> None:
        self.plan = plan
        self.lateness = lateness
        self.states = [_State() for _ in plan.correlations]
        self.stream = _Stream()
        #: base rule index -> [(correlation, rule position in it, group fields, value field)]
        self.by_rule: dict[int, list[tuple[int, int]]] = {}
        for c, correlation in enumerate(plan.correlations):
            for position, rule in enumerate(correlation.rules):
                self.by_rule.setdefault(rule, []).append(
                    (c, position, correlation.fields[position], correlation.value_field)
                )

        #: correlations evaluated on the fast path (event_count), by index
        self.counting = [c.type == "event_count" for c in plan.correlations]

    @property
    def late(self) -> int:
        return self.stream.late

    @property
    def untimed(self) -> int:
        return self.stream.untimed

    def observe(self, rule: int, time: float | None, event: dict[str, Any], ref: EventRef) -> None:
        """One event matched base rule ``rule``; buffer it for every correlation using the rule."""
        targets = self.by_rule.get(rule)
        if not targets:
            return
        stream = self.stream
        if time is None:
            stream.untimed += 1
            return
        uses = []
        get = event.get
        for c, position, names, value_field in targets:
            if len(names) == 1:
                value = get(names[0])
                key: tuple[Any, ...] = (value,) if type(value) in _SCALARS else (_hashable(value),)
            else:
                key = tuple(_hashable(get(name)) for name in names)
            uses.append((c, position, key, get(value_field) if value_field else None))
        stream.sequence += 1
        heapq.heappush(stream.pending, (time, stream.sequence, ref, uses))
        if time > stream.watermark:
            stream.watermark = time

    def observe_many(
        self,
        rule: int,
        times: list[float | None],
        events: list[dict[str, Any]],
        refs: list[EventRef],
    ) -> None:
        """:meth:`observe` for many events of one rule (a batch's matches)."""
        targets = self.by_rule.get(rule)
        if not targets:
            return
        stream = self.stream
        pending = stream.pending
        push = heapq.heappush
        single = len(targets) == 1 and len(targets[0][2]) == 1
        for time, event, ref in zip(times, events, refs, strict=True):
            if time is None:
                stream.untimed += 1
                continue
            get = event.get
            if single:
                c, position, names, value_field = targets[0]
                value = get(names[0])
                key = (value,) if type(value) in _SCALARS else (_hashable(value),)
                uses = [(c, position, key, get(value_field) if value_field else None)]
            else:
                uses = []
                for c, position, names, value_field in targets:
                    key = tuple(_hashable(get(name)) for name in names)
                    uses.append((c, position, key, get(value_field) if value_field else None))
            stream.sequence += 1
            push(pending, (time, stream.sequence, ref, uses))
            if time > stream.watermark:
                stream.watermark = time

    def advance(self) -> list[CorrelationAlert]:
        """Process buffered events the watermark has passed."""
        if self.lateness is None:
            return []
        return self._release(self.stream.watermark - self.lateness)

    def flush(self) -> list[CorrelationAlert]:
        """Process every buffered event (the end of the input)."""
        return self._release(math.inf)

    def _release(self, until: float) -> list[CorrelationAlert]:
        alerts: list[CorrelationAlert] = []
        stream = self.stream
        pending = stream.pending
        correlations = self.plan.correlations
        states = self.states
        counting = self.counting
        released = False
        while pending and pending[0][0] <= until:
            time, _, ref, uses = heapq.heappop(pending)
            if time < stream.frontier:
                stream.late += 1
                continue
            stream.frontier = time
            released = True
            for c, position, key, value in uses:
                correlation = correlations[c]
                if counting[c]:
                    # event_count, the common case, inline: the window is a plain deque.
                    windows = states[c].windows
                    entries = windows.get(key)
                    if entries is None:
                        entries = windows[key] = deque()
                    oldest = time - correlation.timespan
                    while entries and entries[0][0] < oldest:
                        entries.popleft()
                    entries.append((time, position, None, ref))
                    if not correlation.threshold.holds(len(entries)):
                        continue
                    alert = _fired(correlation, key, float(len(entries)), entries, time)
                    del windows[key]
                else:
                    alert = self._add(correlation, states[c], time, position, key, value, ref)
                    if alert is None:
                        continue
                states[c].fired += 1
                alerts.append(alert)
        if released:
            for correlation, state in zip(correlations, states, strict=True):
                # Drop idle groups at most once per timespan of event time.
                horizon = stream.frontier - correlation.timespan
                if state.swept > horizon:
                    continue
                state.swept = stream.frontier
                idle = [
                    k
                    for k, w in state.windows.items()
                    if not (entries := w if type(w) is deque else w.entries)
                    or entries[-1][0] < horizon
                ]
                for k in idle:
                    del state.windows[k]
        return alerts

    def _add(
        self,
        correlation: CompiledCorrelation,
        state: _State,
        time: float,
        position: int,
        key: tuple[Any, ...],
        value: Any,
        ref: EventRef,
    ) -> CorrelationAlert | None:
        kind = correlation.type
        window = state.windows.get(key)
        if window is None:
            window = state.windows[key] = _Window(kind)
        entries = window.entries
        oldest = time - correlation.timespan
        if kind == "event_count":  # the common case, with nothing to remember but the events
            while entries and entries[0][0] < oldest:
                entries.popleft()
            entries.append((time, position, None, ref))
            measure: float | None = float(len(entries))
        else:
            while entries and entries[0][0] < oldest:
                _, old_position, old_value, _ = entries.popleft()
                _forget(kind, window, old_position, old_value)
            if kind == "value_count":
                stored = value
            elif kind.startswith("value_"):
                stored = number(value)
            else:
                stored = None
            entries.append((time, position, stored, ref))
            _remember(kind, window, position, stored)
            measure = _measure(correlation, window)
        if measure is None:
            return None
        if correlation.expression is not None:
            fires = _truth(correlation.expression, window.values)
        else:
            fires = correlation.threshold.holds(measure)
        if not fires:
            return None
        alert = _fired(correlation, key, measure, entries, time)
        del state.windows[key]
        return alert

    # -- saving and restoring -----------------------------------------------------------------

    def dump(self) -> bytes:
        ids = [c.meta.id or c.meta.title for c in self.plan.correlations]
        return pickle.dumps(
            {
                "format": STATE_FORMAT,
                "correlations": ids,
                "states": self.states,
                "stream": self.stream,
            },
            protocol=pickle.HIGHEST_PROTOCOL,
        )

    def load(self, data: bytes) -> None:
        """Restore a saved state; the plan's correlations must be the ones it was saved with."""
        try:
            saved = pickle.loads(data)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            raise DetectionError(f"correlation state is unreadable: {exc}") from exc
        ids = [c.meta.id or c.meta.title for c in self.plan.correlations]
        if not isinstance(saved, dict) or saved.get("format") != STATE_FORMAT:
            raise DetectionError("correlation state has an unknown format")
        if saved["correlations"] != ids:
            raise DetectionError(
                "correlation state was saved with other correlation rules; "
                "start without it or load the same rules"
            )
        self.states = saved["states"]
        self.stream = saved["stream"]


def _fired(
    correlation: CompiledCorrelation,
    key: tuple[Any, ...],
    measure: float,
    entries: Any,
    time: float,
) -> CorrelationAlert:
    return CorrelationAlert(
        correlation=correlation,
        group=dict(zip(correlation.group_by, key, strict=True)),
        value=measure,
        start=entries[0][0],
        end=time,
        events=[entry[3] for entry in entries],
    )


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def _remember(kind: str, window: _Window, position: int, value: Any) -> None:
    if kind == "value_count":
        if value is not None:
            window.values[_hashable(value)] += 1
    elif kind.startswith("temporal"):
        window.values[position] += 1
    elif value is not None:
        window.total += value
        window.counted += 1
        if kind in ("value_percentile", "value_median"):
            insort(window.numbers, value)


def _forget(kind: str, window: _Window, position: int, value: Any) -> None:
    if kind == "value_count":
        if value is not None:
            key = _hashable(value)
            window.values[key] -= 1
            if window.values[key] <= 0:
                del window.values[key]
    elif kind.startswith("temporal"):
        window.values[position] -= 1
        if window.values[position] <= 0:
            del window.values[position]
    elif value is not None:
        window.total -= value
        window.counted -= 1
        if kind in ("value_percentile", "value_median"):
            del window.numbers[_index(window.numbers, value)]


def _index(values: list[float], value: float) -> int:
    return bisect_left(values, value)


def _measure(correlation: CompiledCorrelation, window: _Window) -> float | None:
    kind = correlation.type
    if kind == "event_count":
        return float(len(window.entries))
    if kind in ("value_count", "temporal"):
        return float(len(window.values))
    if kind == "temporal_ordered":
        want = 0
        for _, position, _, _ in window.entries:
            if position == want:
                want += 1
                if want == len(correlation.rules):
                    break
        return float(want)
    if window.counted == 0:
        return None
    if kind == "value_sum":
        return window.total
    if kind == "value_avg":
        return window.total / window.counted
    return percentile(window.numbers, correlation.percentile or 50.0)


def _truth(expression: Any, present: Counter[Any]) -> bool:
    if isinstance(expression, int):
        return present.get(expression, 0) > 0
    op, *args = expression
    if op == "and":
        return all(_truth(a, present) for a in args)
    if op == "or":
        return any(_truth(a, present) for a in args)
    return not _truth(args[0], present)
