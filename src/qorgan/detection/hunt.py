"""A hunt: read log sources, run a compiled plan over them, hand alerts to a sink, count."""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from qorgan.detection.alerts import LEVEL_RANK, Alert
from qorgan.detection.engine import Engine
from qorgan.detection.plan import Plan
from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.formats import DEFAULT_BATCH_SIZE
from qorgan.telemetry.quarantine import Quarantine
from qorgan.telemetry.sources import read_paths

HUNT_BATCH_SIZE = max(DEFAULT_BATCH_SIZE, 50_000)


@dataclass
class HuntSummary:
    events: int = 0
    files: set[str] = field(default_factory=set)
    rules_loaded: int = 0
    rules_failed: int = 0
    alerts: int = 0
    by_level: Counter[str] = field(default_factory=Counter)
    by_rule: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    quarantined: int = 0
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def filter_plan(plan: Plan, min_level: str | None) -> Plan:
    """The plan without rules below ``min_level`` (their atoms stay; unused ones cost nothing)."""
    if not min_level:
        return plan
    floor = LEVEL_RANK[min_level]
    rules = [r for r in plan.rules if LEVEL_RANK.get(r.meta.level, 0) >= floor]
    return replace(plan, rules=rules)


def alerts_of(engine: Engine, batch: EventBatch) -> list[Alert]:
    out: list[Alert] = []
    rules = engine.plan.rules
    for r, rows in engine.match(batch):
        meta = rules[r].meta
        for i in rows.tolist():
            out.append(
                Alert(
                    meta,
                    batch.times[i],
                    batch.hosts[i],
                    batch.path,
                    batch.records[i],
                    batch.format,
                    batch.events[i],
                )
            )
    return out


def run_hunt(
    paths: Iterable[Path],
    plan: Plan,
    *,
    sink: Callable[[list[Alert]], None],
    quarantine: Quarantine,
    format_name: str | None = None,
    logsource: dict[str, str] | None = None,
    batch_size: int = HUNT_BATCH_SIZE,
    progress: Callable[[EventBatch, HuntSummary], None] | None = None,
) -> HuntSummary:
    """Stream ``paths`` through ``plan``; alerts go to ``sink`` batch by batch, in input order."""
    summary = HuntSummary(rules_loaded=len(plan.rules), rules_failed=len(plan.failures))
    engine = Engine(plan)
    started = time.perf_counter()
    # Events are acyclic JSON trees: the cyclic collector only slows their allocation down.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for batch in read_paths(
            paths,
            quarantine,
            format_name=format_name,
            batch_size=batch_size,
            logsource=logsource,
        ):
            summary.events += len(batch)
            summary.files.add(batch.path)
            alerts = alerts_of(engine, batch)
            if alerts:
                summary.alerts += len(alerts)
                for a in alerts:
                    summary.by_level[a.rule.level] += 1
                    summary.by_rule[(a.rule.id, a.rule.title, a.rule.level)] += 1
                sink(alerts)
            if progress is not None:
                progress(batch, summary)
            del batch, alerts
    finally:
        if gc_was_enabled:
            gc.enable()
    summary.seconds = time.perf_counter() - started
    summary.quarantined = quarantine.count
    return summary
