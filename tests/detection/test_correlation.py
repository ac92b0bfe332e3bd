"""Correlation semantics against a plain-Python reference on generated streams: out-of-order
arrival within the lateness, window edges, ranges, and saving and restoring mid-stream."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qorgan.core.errors import QorganError
from qorgan.detection.correlation import Correlator
from qorgan.detection.loader import compile_texts
from qorgan.detection.plan import CompiledCorrelation, Plan, RuleMeta, Threshold

KINDS = (
    "event_count",
    "value_count",
    "temporal",
    "temporal_ordered",
    "value_sum",
    "value_avg",
    "value_percentile",
    "value_median",
)
META = RuleMeta(id="c", title="c", level="high", status=None, tags=(), logsource=(), path="t")


def correlation(
    kind: str, timespan: float, threshold: Threshold, rules: int = 3, pct: float | None = None
) -> CompiledCorrelation:
    return CompiledCorrelation(
        meta=META,
        type=kind,
        rules=tuple(range(rules)),
        group_by=("host",),
        fields=tuple(("host",) for _ in range(rules)),
        timespan=timespan,
        threshold=threshold,
        value_field="v" if kind.startswith("value_") else None,
        percentile=pct if kind == "value_percentile" else 50.0 if kind == "value_median" else None,
    )


# -- the reference: written from the semantics in correlation.py's docstring, O(n^2) -------


def ref_measure(kind: str, window: list[dict[str, Any]], rules: int, pct: float | None) -> Any:
    if kind == "event_count":
        return len(window)
    if kind == "value_count":
        return len({e["v"] for e in window if e["v"] is not None})
    if kind == "temporal":
        return len({e["rule"] for e in window})
    if kind == "temporal_ordered":
        want = 0
        for e in window:
            if want < rules and e["rule"] == want:
                want += 1
        return want
    numbers = [float(e["v"]) for e in window if isinstance(e["v"], int | float)]
    if not numbers:
        return None
    if kind == "value_sum":
        return sum(numbers)
    if kind == "value_avg":
        return sum(numbers) / len(numbers)
    numbers.sort()
    q = pct if kind == "value_percentile" else 50.0
    k = (len(numbers) - 1) * q / 100
    lo = math.floor(k)
    hi = min(lo + 1, len(numbers) - 1)
    return numbers[lo] + (numbers[hi] - numbers[lo]) * (k - lo)


def reference(c: CompiledCorrelation, arrivals: list[dict[str, Any]]) -> list[tuple]:
    """Alerts (group, measure, refs) when events are processed in time order (ties: arrival)."""
    alerts = []
    windows: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for e in sorted(arrivals, key=lambda e: e["t"]):
        window = [x for x in windows[e["host"]] if x["t"] >= e["t"] - c.timespan]
        window.append(e)
        measure = ref_measure(c.type, window, len(c.rules), c.percentile)
        if measure is not None and c.threshold.holds(measure):
            alerts.append((e["host"], round(measure, 6), tuple(x["ref"] for x in window)))
            window = []
        windows[e["host"]] = window
    return sorted(alerts)


def run(
    c: CompiledCorrelation,
    arrivals: list[dict[str, Any]],
    lateness: float | None,
    batch: int,
    split: int | None = None,
) -> tuple[list[tuple], int]:
    """Feed the engine in batches (advance after each); optionally save and restore the state
    into a new engine after ``split`` events."""
    plan = Plan(correlations=[c])
    engine = Correlator(plan, lateness=lateness)
    found = []
    for start in range(0, len(arrivals), batch):
        if split is not None and start >= split and engine is not None and split >= 0:
            restored = Correlator(plan, lateness=lateness)
            restored.load(engine.dump())
            engine, split = restored, -1
        for e in arrivals[start : start + batch]:
            engine.observe(
                e["rule"], e["t"], {"host": e["host"], "v": e["v"]}, ("p", e["ref"], None, "r")
            )
        found += engine.advance()
    found += engine.flush()
    alerts = sorted(
        (a.group["host"], round(a.value, 6), tuple(r[1] for r in a.events)) for a in found
    )
    return alerts, engine.late


@st.composite
def streams(draw: st.DrawFn) -> tuple[CompiledCorrelation, list[dict[str, Any]], float]:
    kind = draw(st.sampled_from(KINDS))
    timespan = float(draw(st.integers(1, 30)))
    op = draw(st.sampled_from(["gte", "gt", "lte", "lt", "eq"]))
    if kind in ("event_count", "value_count", "temporal", "temporal_ordered"):
        bound = float(draw(st.integers(1, 5)))
    else:
        bound = float(draw(st.integers(0, 40)))
    upper = None
    if op in ("gte", "gt") and draw(st.booleans()):
        upper = (draw(st.sampled_from(["lte", "lt"])), bound + draw(st.integers(0, 10)))
    c = correlation(
        kind,
        timespan,
        Threshold(op, bound, upper),
        rules=draw(st.integers(1, 3)),
        pct=float(draw(st.integers(0, 100))),
    )
    lateness = float(draw(st.integers(0, 20)))
    count = draw(st.integers(0, 60))
    events = []
    for n in range(count):
        events.append(
            {
                "t": float(draw(st.integers(0, 120))),  # integers: window edges are hit exactly
                "rule": draw(st.integers(0, len(c.rules) - 1)),
                "host": draw(st.sampled_from(["a", "b", "c"])),
                "v": draw(st.one_of(st.none(), st.integers(0, 9), st.sampled_from(["x", "y"]))),
                "ref": n,
            }
        )
    # Arrival order: time plus a delay of at most the lateness, so no event is late.
    rng = random.Random(draw(st.integers(0, 2**32)))
    arrivals = sorted(events, key=lambda e: e["t"] + rng.uniform(0, lateness))
    return c, arrivals, lateness


@settings(max_examples=300, deadline=None)
@given(streams(), st.integers(1, 7))
def test_out_of_order_within_lateness_matches_reference(stream: tuple, batch: int) -> None:
    c, arrivals, lateness = stream
    expected = reference(c, arrivals)
    assert run(c, arrivals, lateness, batch) == (expected, 0)
    assert run(c, arrivals, None, batch) == (expected, 0)  # buffer everything, same result


@settings(max_examples=200, deadline=None)
@given(streams(), st.integers(1, 7), st.data())
def test_save_and_restore_mid_stream_loses_and_repeats_nothing(
    stream: tuple, batch: int, data: st.DataObject
) -> None:
    c, arrivals, lateness = stream
    split = data.draw(st.integers(0, max(len(arrivals), 1)))
    assert run(c, arrivals, lateness, batch, split=split) == (reference(c, arrivals), 0)


def test_window_edge_is_inclusive_and_fire_resets() -> None:
    c = correlation("event_count", 10.0, Threshold("gte", 3))
    events = [
        {"t": t, "rule": 0, "host": "a", "v": None, "ref": i}
        for i, t in enumerate([0.0, 5.0, 10.0, 11.0, 12.0, 30.0, 41.0])
    ]
    alerts, late = run(c, events, 0.0, 100)
    # 0, 5, 10 fit in [0, 10]: fire; the window empties, so 11 and 12 start afresh and the
    # third event (30) is too far from them; 41 is more than 10 s after 30.
    assert alerts == [("a", 3.0, (0, 1, 2))]
    assert late == 0


def test_late_events_are_counted_not_correlated() -> None:
    c = correlation("event_count", 100.0, Threshold("gte", 2))
    plan = Plan(correlations=[c])
    engine = Correlator(plan, lateness=5.0)
    for ref, t in enumerate([100.0, 120.0, 200.0]):  # the watermark reaches 195
        engine.observe(0, t, {"host": "a"}, ("p", ref, None, "r"))
    first = engine.advance()
    assert [a.value for a in first] == [2.0]  # 100 and 120
    engine.observe(0, 150.0, {"host": "a"}, ("p", 8, None, "r"))  # behind 200, not yet 120: fine
    engine.observe(0, 110.0, {"host": "a"}, ("p", 9, None, "r"))  # older than 120: late
    engine.flush()
    assert engine.late == 1


def test_state_of_other_rules_is_refused() -> None:
    one = Correlator(Plan(correlations=[correlation("event_count", 5, Threshold("gte", 2))]))
    other = Correlator(Plan(correlations=[]))
    with pytest.raises(QorganError, match="other correlation rules"):
        other.load(one.dump())
    with pytest.raises(QorganError, match="unreadable"):
        other.load(b"garbage")


def test_yaml_correlations_run_end_to_end() -> None:
    rules = """
title: Failed
name: failed
logsource: {product: test}
detection: {sel: {outcome: failure}, condition: sel}
---
title: Succeeded
name: succeeded
logsource: {product: test}
detection: {sel: {outcome: success}, condition: sel}
---
title: Guessed then in
correlation:
    type: temporal_ordered
    rules: [failed, succeeded]
    group-by: [ip]
    aliases: {}
    timespan: 1m
level: high
---
title: Spray
correlation:
    type: value_count
    rules: [failed]
    group-by: [ip]
    timespan: 1m
    condition: {gte: 3, field: user}
level: high
"""
    from qorgan.detection.hunt import Hunter
    from qorgan.telemetry.batch import EventBatch

    plan = compile_texts([rules])
    assert not plan.failures, plan.failures
    batch = EventBatch(path="auth", format="test", logsource={"product": "test"})
    rows = [
        ("failure", "1.1.1.1", "root"),
        ("failure", "1.1.1.1", "admin"),
        ("failure", "2.2.2.2", "root"),
        ("failure", "1.1.1.1", "guest"),
        ("success", "1.1.1.1", "guest"),
        ("success", "2.2.2.2", "root"),
    ]
    for i, (outcome, ip, user) in enumerate(rows, 1):
        batch.append(
            {"outcome": outcome, "ip": ip, "user": user}, i, f"2026-11-20T10:00:{i:02d}Z", None
        )
    hunter = Hunter(plan)
    alerts = hunter.batch(batch) + hunter.finish()
    found = sorted(
        (a.rule.title, a.event["ip"], tuple(e["record"] for e in a.correlation["events"]))
        for a in alerts
        if a.correlation
    )
    assert found == [
        ("Guessed then in", "1.1.1.1", (1, 2, 4, 5)),
        ("Guessed then in", "2.2.2.2", (3, 6)),
        ("Spray", "1.1.1.1", (1, 2, 4)),
    ]
    # The base rules feed correlations without generate: true, so they report nothing alone.
    assert all(a.correlation for a in alerts)
