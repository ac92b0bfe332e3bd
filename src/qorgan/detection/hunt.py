"""A hunt: read log sources, run a compiled plan over them (rules and correlations), hand
alerts to a sink, count."""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qorgan.detection.alerts import LEVEL_RANK, Alert, correlation_alert
from qorgan.detection.anomaly.findings import Finding
from qorgan.detection.anomaly.suite import AnomalySuite
from qorgan.detection.classification import classify
from qorgan.detection.correlation import CorrelationAlert, Correlator, epoch
from qorgan.detection.engine import Engine
from qorgan.detection.indicators import IndicatorSet, indicator_hits, rule_of
from qorgan.detection.plan import Plan, RuleMeta
from qorgan.detection.workers import Matches, hunt_in_workers
from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.formats import DEFAULT_BATCH_SIZE
from qorgan.telemetry.options import DEFAULT_OPTIONS, ReadOptions
from qorgan.telemetry.quarantine import Quarantine
from qorgan.telemetry.sources import read_paths

#: Events a hunt matches at a time. On the diverse 200,000-event sample of ``bench/hunt.py``, on
#: one core, 20,000 ran as fast as 50,000 (11.6 s against 12.2 s) with 361 MiB of peak RSS
#: instead of 677: a worker's memory is mostly its batch, and two workers must fit in 1 GiB.
HUNT_BATCH_SIZE = DEFAULT_BATCH_SIZE


@dataclass
class HuntSummary:
    events: int = 0
    files: set[str] = field(default_factory=set)
    rules_loaded: int = 0
    correlations_loaded: int = 0
    rules_failed: int = 0
    alerts: int = 0
    by_level: Counter[str] = field(default_factory=Counter)
    by_rule: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    quarantined: int = 0
    late: int = 0
    untimed: int = 0
    seconds: float = 0.0
    #: Anomaly models' findings (a hunt with an :class:`AnomalySuite`), by detector kind.
    findings: Counter[str] = field(default_factory=Counter)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Emission:
    """Which rules' alerts are written: at or above the minimum level, and for rules that only
    feed correlations, only when one of those correlations says ``generate: true``."""

    rules: frozenset[int]
    correlations: frozenset[int]

    @classmethod
    def of(cls, plan: Plan, min_level: str | None = None) -> Emission:
        floor = LEVEL_RANK[min_level] if min_level else 0

        def loud(meta: RuleMeta) -> bool:
            return LEVEL_RANK.get(meta.level, 0) >= floor

        quiet: set[int] = set()
        generated: set[int] = set()
        for correlation in plan.correlations:
            (generated if correlation.generate else quiet).update(correlation.rules)
        rules = {
            i
            for i, rule in enumerate(plan.rules)
            if loud(rule.meta) and (i not in quiet or i in generated)
        }
        correlations = {i for i, c in enumerate(plan.correlations) if loud(c.meta)}
        return cls(frozenset(rules), frozenset(correlations))


class Hunter:
    """Runs rules and correlations batch by batch; keeps correlation state between batches."""

    def __init__(
        self,
        plan: Plan,
        *,
        min_level: str | None = None,
        lateness: float | None = None,
        indicators: IndicatorSet | None = None,
    ) -> None:
        self.plan = plan
        #: Indicators matched in every batch besides the rules (None: none).
        self.indicators = indicators if indicators else None
        self._floor = LEVEL_RANK[min_level] if min_level else 0
        self._indicator_rules: dict[tuple[int, str], RuleMeta] = {}
        self._engine: Engine | None = None
        self.correlator = Correlator(plan, lateness=lateness)
        self.emission = Emission.of(plan, min_level)
        self._classes: dict[int, dict] = {}
        self._correlation_index = {id(c): i for i, c in enumerate(plan.correlations)}

    def use(self, indicators: IndicatorSet | None) -> None:
        """Match ``indicators`` from the next batch on (live monitoring's new export); the
        correlation state is kept, the engine is rebuilt for the indicators' fields."""
        indicators = indicators if indicators else None
        if indicators is self.indicators:
            return
        self.indicators = indicators
        self._indicator_rules.clear()
        self._engine = None

    @property
    def engine(self) -> Engine:
        """Built when first matching here: a hunt in worker processes never needs it."""
        if self._engine is None:
            extra = self.indicators.fields if self.indicators is not None else ()
            self._engine = Engine(self.plan, extra_fields=extra)
        return self._engine

    def classes(self, meta: RuleMeta, fallback: RuleMeta | None = None) -> dict:
        """The alert's classification (cached per rule); a correlation that names no technique
        of its own takes its first base rule's."""
        found = self._classes.get(id(meta))
        if found is None:
            found_c = classify(meta)
            if not found_c.complete and fallback is not None:
                found_c = classify(fallback)
            found = self._classes[id(meta)] = found_c.to_dict()
        return found

    def batch(self, batch: EventBatch) -> list[Alert]:
        rules = [(r, rows.tolist()) for r, rows in self.engine.match(batch)]
        return self.matched(batch, rules, indicator_hits(self.indicators, self.engine, batch))

    def matched(
        self,
        batch: EventBatch,
        matches: Iterable[tuple[int, list[int]]],
        hits: Iterable[tuple[int, int, str]] = (),
    ) -> list[Alert]:
        """Alerts of ``batch`` given which of its rows each rule matched (in the engine's
        order) and which indicators its rows hold (``hits``): single-event alerts (the rules',
        then the indicators'), and correlation alerts whose windows this batch closes.
        A worker's sparse batch (:mod:`qorgan.detection.workers`) gives the same alerts as the
        whole one."""
        out: list[Alert] = []
        rules = self.plan.rules
        correlator = self.correlator
        emitted = self.emission.rules
        for r, indexes in matches:
            meta = rules[r].meta
            if r in correlator.by_rule:
                times = batch.times
                correlator.observe_many(
                    r,
                    [epoch(times[i]) for i in indexes],
                    [batch.events[i] for i in indexes],
                    [(batch.path, batch.records[i], times[i], meta.id) for i in indexes],
                )
            if r in emitted:
                classes = self.classes(meta)
                for i in indexes:
                    out.append(
                        Alert(
                            meta,
                            batch.times[i],
                            batch.hosts[i],
                            batch.path,
                            batch.records[i],
                            batch.format,
                            batch.events[i],
                            classification=classes,
                        )
                    )
        out.extend(self._indicator_alerts(batch, hits))
        out.extend(self._correlated(correlator.advance()))
        return out

    def _indicator_alerts(
        self, batch: EventBatch, hits: Iterable[tuple[int, int, str]]
    ) -> list[Alert]:
        out: list[Alert] = []
        if self.indicators is None:
            return out
        for row, index, name in hits:
            meta = self._indicator_rules.get((index, name))
            if meta is None:
                meta = self._indicator_rules[(index, name)] = rule_of(self.indicators, index, name)
            if LEVEL_RANK[meta.level] < self._floor:
                continue
            out.append(
                Alert(
                    meta,
                    batch.times[row],
                    batch.hosts[row],
                    batch.path,
                    batch.records[row],
                    batch.format,
                    batch.events[row],
                )
            )
        return out

    def finish(self) -> list[Alert]:
        return self._correlated(self.correlator.flush())

    def _correlated(self, found: list[CorrelationAlert]) -> list[Alert]:
        keep = self.emission.correlations
        out = []
        for a in found:
            if self._correlation_index[id(a.correlation)] in keep:
                alert = correlation_alert(a)
                base = self.plan.rules[a.correlation.rules[0]].meta
                alert.classification = self.classes(a.correlation.meta, base)
                out.append(alert)
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
    min_level: str | None = None,
    lateness: float | None = None,
    state: bytes | None = None,
    progress: Callable[[EventBatch, HuntSummary], None] | None = None,
    options: ReadOptions = DEFAULT_OPTIONS,
    root: Path | None = None,
    batches: Iterable[EventBatch] | None = None,
    workers: int = 1,
    indicators: IndicatorSet | None = None,
    anomaly: AnomalySuite | None = None,
    findings: Callable[[list[Finding]], None] | None = None,
) -> tuple[HuntSummary, Hunter]:
    """Stream ``paths`` through ``plan``; alerts go to ``sink`` batch by batch, in input order,
    correlation alerts as their windows close. ``lateness=None`` correlates all input in time
    order at the end; ``state`` continues correlations saved by an earlier hunt. ``options``
    say how sources are read (time zone, limits); with ``root``, nothing outside that folder
    is read. ``batches``, when given, are hunted instead of reading ``paths`` (the live
    archive: :func:`qorgan.pipeline.archive.read_archive`). With ``workers`` above 1, files
    are read and matched in that many processes and correlated here, with the alerts of one
    process in the same order (:mod:`qorgan.detection.workers`); ``progress`` is then told of
    each batch as soon as a worker has read it. ``indicators``, when given, are matched in
    every batch too (:mod:`qorgan.detection.indicators`), their alerts after the rules'.
    ``anomaly``, when given, scores every event too and hands its findings to ``findings``
    batch by batch; its models need every event in order, so the hunt then runs in this
    process whatever ``workers`` says."""
    summary = HuntSummary(
        rules_loaded=len(plan.rules),
        rules_failed=len(plan.failures),
        correlations_loaded=len(plan.correlations),
    )
    hunter = Hunter(plan, min_level=min_level, lateness=lateness, indicators=indicators)
    if state is not None:
        hunter.correlator.load(state)
    started = time.perf_counter()

    def deliver(alerts: list[Alert]) -> None:
        if alerts:
            summary.alerts += len(alerts)
            for a in alerts:
                summary.by_level[a.rule.level] += 1
                summary.by_rule[(a.rule.id, a.rule.title, a.rule.level)] += 1
            sink(alerts)

    def propose(found: list[Finding]) -> None:
        summary.findings.update(f.detector for f in found)
        if found and findings is not None:
            findings(found)

    # Events are acyclic JSON trees: the cyclic collector only slows their allocation down.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        read: dict[str, Any] = {
            "format_name": format_name,
            "batch_size": batch_size,
            "logsource": logsource,
            "options": options,
            "root": root,
        }
        if batches is None and workers > 1 and anomaly is None:
            _hunt_in_workers(
                list(paths), hunter, summary, deliver, quarantine, workers, progress, read
            )
        else:
            source = batches if batches is not None else read_paths(paths, quarantine, **read)
            for batch in source:
                summary.events += len(batch)
                summary.files.add(batch.path)
                deliver(hunter.batch(batch))
                if anomaly is not None:
                    propose(anomaly.observe(batch))
                if progress is not None:
                    progress(batch, summary)
                del batch
        deliver(hunter.finish())
        if anomaly is not None:
            propose(anomaly.flush())
    finally:
        if gc_was_enabled:
            gc.enable()
    summary.seconds = time.perf_counter() - started
    summary.quarantined = quarantine.count
    summary.late = hunter.correlator.late
    summary.untimed = hunter.correlator.untimed
    return summary, hunter


def _hunt_in_workers(
    paths: list[Path],
    hunter: Hunter,
    summary: HuntSummary,
    deliver: Callable[[list[Alert]], None],
    quarantine: Quarantine,
    workers: int,
    progress: Callable[[EventBatch, HuntSummary], None] | None,
    read: dict[str, Any],
) -> None:
    """Matches from worker processes, correlated and delivered here in the input's order."""

    def arrived(matches: Matches) -> None:
        # Counted as read (not as correlated) so that progress covers every worker's work.
        summary.events += matches.events
        summary.files.add(matches.batch.path)
        if progress is not None:
            progress(matches.batch, summary)

    for matches in hunt_in_workers(
        paths,
        hunter.plan,
        quarantine,
        workers=workers,
        arrived=arrived,
        indicators=hunter.indicators,
        **read,
    ):
        deliver(hunter.matched(matches.batch, matches.rules, matches.indicators))
