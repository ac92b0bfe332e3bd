"""Sudden changes in how often a source logs a template: bursts, and regular templates that go
silent.

Each (source, template) is a series of counts per time bucket (``bucket_minutes``, 10 by
default). When a source's clock (its events' times) leaves a bucket, every series of that
source learns the bucket's count, zero included, in a
:class:`~qorgan.detection.anomaly.baselines.SeasonalBaseline`: one baseline per hour of the
week (in ``timezone``, where people's working hours are), and an overall one for slots with too
little history. So a template that is busy every weekday morning is expected to be busy then.

Counts are learned on a variance-stabilised scale (:func:`stabilise`, Anscombe's transform).
A *burst*: the open bucket's count reaches ``min_count``, ``min_ratio`` times the expected
count, and a score ``(y - mean) / sqrt(variance + 1)`` on that scale (a z-score whose variance
is at least a Poisson count's) of ``threshold`` or more. It is reported as soon as it is
reached, for early warning, and once an episode: a burst less than ``cooldown_minutes`` after
the last one (an attack that pauses) is part of it. Once a series has ``min_peak_days`` days
of history, a burst must also be ``peak_ratio`` times the template's usual *daily peak* (the
busiest bucket of each day, learned per day) and today's peak so far: a template that comes in
bursts every day (an FTP server's connection floods) is not reported for the bursts it always
has, nor for each of the day's repeats. *Silence*: a closed bucket with no line of a
template whose own hour of the week expects at least ``silence_min_expected`` lines, with the
same score; reported once until the template is logged again.

A series needs ``min_history`` buckets before it is judged. A rejected finding suppresses its
pattern (that template's bursts, or silences, on that source) from then on. When the miner
absorbs templates into a more general one, their series join its series (the open counts add
up; the baselines are added, which on the stabilised scale is an approximation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from qorgan.detection.anomaly.baselines import Ewma, Expectation, SeasonalBaseline, week_slot
from qorgan.detection.anomaly.drain import TemplateMiner
from qorgan.detection.anomaly.eventkeys import (
    SharedMiner,
    identifiers_of,
    shared,
    source_of,
    text_of,
    time_of,
    without_text,
)
from qorgan.detection.anomaly.findings import MAX_EXAMPLES, Finding, contributions
from qorgan.detection.anomaly.rarity import DetectorStateError
from qorgan.telemetry.batch import EventBatch

STATE_VERSION = 1
#: Zero buckets learned at most after a gap in a source's log: a week of them. A longer gap is
#: a stopped log, not a week of silence to learn.
MAX_GAP = timedelta(days=7)
#: The daily-peak baseline's weight of a day (a memory of about ten days).
PEAK_ALPHA = 0.1
#: ``2 sqrt(3/8)``: Anscombe's transform of a zero count, subtracted so that zero stays zero.
_ZERO = 2.0 * math.sqrt(3.0 / 8.0)


def stabilise(count: float) -> float:
    """Anscombe's variance-stabilising transform of a count, shifted so that 0 stays 0: for
    Poisson counts of any rate the result has a variance of about 1, so one threshold fits a
    template logged twice a day and one logged every second, and the routine bursts of a bursty
    template weigh less than on the raw scale."""
    return 2.0 * math.sqrt(count + 3.0 / 8.0) - _ZERO


def count_of(level: float) -> float:
    """The count whose stabilised value is ``level`` (to show expectations as counts)."""
    return max(0.0, ((level + _ZERO) / 2.0) ** 2 - 3.0 / 8.0)


@dataclass(slots=True)
class _Series:
    baseline: SeasonalBaseline
    bucket: int
    count: int = 0
    #: A burst was seen in the open bucket; the last bucket a burst was seen in (-1: never).
    fired: bool = False
    last_burst: int = -1
    silent: bool = False
    examples: list[str] = field(default_factory=list)
    template: str = ""
    #: Some hour of the week has expected ``silence_min_expected`` lines: it may fall silent,
    #: so it learns every bucket as the source's clock moves. Other series catch up lazily.
    regular: bool = False
    #: The busiest bucket of each day (stabilised): the day of the open bucket, its busiest
    #: closed bucket so far, and the baseline of the daily peaks.
    day: int = -1
    day_peak: float = 0.0
    peak: Ewma = field(default_factory=lambda: Ewma(PEAK_ALPHA))


@dataclass(slots=True)
class _Source:
    bucket: int
    series: dict[int, _Series] = field(default_factory=dict)
    #: The series that learn as soon as a bucket closes: those with lines in the open bucket,
    #: and the regular ones (see :class:`_Series`).
    eager: set[int] = field(default_factory=set)

    def reindex(self) -> None:
        self.eager = {t for t, x in self.series.items() if x.count or x.regular}


class TemplateFrequencyDetector:
    """Bursts and silences of templates per source (see the module doc)."""

    model = "qorgan-template-frequency"
    version = "1.0"

    def __init__(
        self,
        *,
        miner: TemplateMiner | SharedMiner | None = None,
        bucket_minutes: int = 10,
        alpha: float = 0.1,
        memory_days: float = 7.0,
        min_slot_weeks: int = 3,
        min_history: int = 12,
        threshold: float = 6.0,
        min_count: int = 10,
        min_ratio: float = 3.0,
        silence_min_expected: float = 10.0,
        cooldown_minutes: int = 60,
        peak_ratio: float = 2.0,
        min_peak_days: int = 3,
        timezone: str = "Asia/Almaty",
    ) -> None:
        if bucket_minutes < 1 or (60 % bucket_minutes and bucket_minutes % 60):
            raise ValueError("bucket_minutes must divide an hour or be whole hours")
        self._mining = shared(miner)
        self.miner: TemplateMiner = self._mining.miner
        self._changes = self.miner.changes
        self.bucket = timedelta(minutes=bucket_minutes)
        self.alpha = alpha
        #: The overall baseline's weight of a bucket: a memory of about ``memory_days``.
        self.overall_alpha = min(1.0, self.bucket / timedelta(days=memory_days))
        #: Buckets a slot needs to answer for itself: its hour in ``min_slot_weeks`` weeks.
        per_hour = max(1, int(timedelta(hours=1) / self.bucket))
        self.min_slot_history = min_slot_weeks * per_hour
        self.min_history = min_history
        self.threshold = threshold
        self.min_count = min_count
        self.min_ratio = min_ratio
        self.silence_min_expected = silence_min_expected
        self._silence_level = stabilise(silence_min_expected)
        self.peak_ratio = peak_ratio
        self.min_peak_days = min_peak_days
        self.cooldown = max(0, cooldown_minutes * 60 // int(self.bucket.total_seconds()))
        self.zone = ZoneInfo(timezone)
        self._sources: dict[str, _Source] = {}
        self._suppressed: set[str] = set()
        self._slots: dict[int, int] = {}
        #: Events without a usable time: they cannot be placed in a bucket, so they are counted.
        self.untimed = 0

    def _baseline(self) -> SeasonalBaseline:
        return SeasonalBaseline(
            alpha=self.alpha,
            overall_alpha=self.overall_alpha,
            min_slot_history=self.min_slot_history,
        )

    # -- time -----------------------------------------------------------------------------

    def _bucket_of(self, moment: datetime) -> int:
        return int(moment.timestamp() // self.bucket.total_seconds())

    def _start(self, bucket: int) -> datetime:
        return datetime.fromtimestamp(bucket * self.bucket.total_seconds(), UTC)

    def _slot(self, bucket: int) -> int:
        hour = int(bucket * self.bucket.total_seconds() // 3600)
        slot = self._slots.get(hour)
        if slot is None:  # zone arithmetic is slow, and zero buckets come by the thousand
            if len(self._slots) > 100_000:
                self._slots.clear()
            local = self._start(bucket).astimezone(self.zone)
            slot = self._slots[hour] = week_slot(local.weekday(), local.hour)
        return slot

    # -- observing ------------------------------------------------------------------------

    def observe(self, batch: EventBatch) -> list[Finding]:
        findings: list[Finding] = []
        skip = without_text(batch)
        for i, event in enumerate(batch.events):
            if i in skip:
                continue
            text = text_of(batch, i)
            match, changes = self._mining.mine(self, batch, i, text)
            if changes != self._changes:
                self._rekey(self.miner.changed(self._changes, changes))
                self._changes = changes
            moment = time_of(batch, i)
            if moment is None:
                self.untimed += 1
                continue
            bucket = self._bucket_of(moment)
            name = source_of(batch, i)
            source = self._sources.get(name)
            if source is None:
                source = self._sources[name] = _Source(bucket)
            if bucket > source.bucket:
                findings.extend(self._close(name, source, bucket))
            tid = match.template_id
            series = source.series.get(tid)
            if series is None:
                series = source.series[tid] = _Series(
                    self._baseline(),
                    source.bucket,
                )
            elif series.bucket < source.bucket:
                findings.extend(self._advance(name, tid, series, source.bucket))
            source.eager.add(tid)
            series.template = match.template
            series.silent = False
            if series.count == 0:
                series.examples = []  # a silence shows the last lines before it
            series.count += 1
            series.examples.append(text)  # the latest lines: those that make a burst
            del series.examples[:-MAX_EXAMPLES]
            if not series.fired:
                burst = self._burst(name, tid, series, batch, i, event)
                if burst is not None:
                    series.fired = True
                    # One finding per episode: bursts less than a cool-down apart are one.
                    if series.last_burst < 0 or series.bucket - series.last_burst > self.cooldown:
                        findings.append(burst)
                    series.last_burst = series.bucket
        return findings

    def _rekey(self, changed: list[int] | None) -> None:
        """Series of templates the miner absorbed into a more general one join its series:
        those of the ``changed`` ids, of every id when ``None``."""
        for source in self._sources.values():
            if changed is not None and source.series.keys().isdisjoint(changed):
                continue
            for tid in list(source.series) if changed is None else changed:
                if tid not in source.series:
                    continue
                now = self.miner.canonical(tid)
                if now and now != tid:
                    gone = source.series.pop(tid)
                    kept = source.series.get(now)
                    if kept is None:
                        source.series[now] = gone
                        continue
                    kept.baseline.merge(gone.baseline)
                    kept.count += gone.count
                    kept.fired = kept.fired or gone.fired
                    kept.last_burst = max(kept.last_burst, gone.last_burst)
                    kept.examples = (kept.examples + gone.examples)[:MAX_EXAMPLES]
                    kept.regular = kept.regular or gone.regular
            source.reindex()

    def _close(self, name: str, source: _Source, bucket: int) -> list[Finding]:
        """The source's clock moves to ``bucket``: the series with lines in the closing
        bucket, and the regular ones, learn the buckets before it; the silences. The others
        are quiet and cannot fall silent: they catch up when their next line comes."""
        findings: list[Finding] = []
        for tid in sorted(source.eager):
            findings.extend(self._advance(name, tid, source.series[tid], bucket))
        source.bucket = bucket
        source.eager = {t for t in source.eager if source.series[t].regular}
        return findings

    def _advance(self, name: str, tid: int, series: _Series, bucket: int) -> list[Finding]:
        """``series`` learns its open bucket's count and the empty buckets up to ``bucket``,
        which becomes its open bucket; the silences it shows meanwhile."""
        findings: list[Finding] = []
        slot = self._slot(series.bucket)
        level = stabilise(series.count)
        series.baseline.update(slot, level)
        self._roll_day(series, level, bucket)
        if series.baseline.slots[slot].mean >= self._silence_level:
            series.regular = True
        oldest = bucket - int(MAX_GAP / self.bucket)
        per_hour = max(1, int(3600 // self.bucket.total_seconds()))
        empty = max(series.bucket + 1, oldest)
        while empty < bucket:  # the empty buckets, an hour (one slot) at a time
            slot = self._slot(empty)
            until = min(bucket, (empty // per_hour + 1) * per_hour)
            # The slot's first empty bucket is where its expectation is highest; most slots
            # expect too little to fall silent, which is cheap to see first.
            own = series.baseline.slots.get(slot)
            if own is not None and own.mean >= self._silence_level:
                silence = self._silence(name, tid, series, empty, slot)
                if silence is not None:
                    findings.append(silence)
            series.baseline.update_zeros(slot, until - empty)
            empty = until
        series.bucket, series.count, series.fired = bucket, 0, False
        return findings

    def _roll_day(self, series: _Series, level: float, bucket: int) -> None:
        """Note a closed bucket's ``level`` in its day's peak; when the series moves on to
        ``bucket`` on a later day, the peak baseline learns the day (and the empty days)."""
        per_day = max(1, int(timedelta(days=1) / self.bucket))
        if series.day < 0:
            series.day = series.bucket // per_day
        series.day_peak = max(series.day_peak, level)
        today = bucket // per_day
        if today > series.day:
            series.peak.update(series.day_peak)
            series.peak.update_zeros(min(today - series.day - 1, 7))
            series.day, series.day_peak = today, 0.0

    @staticmethod
    def _z(count: float, expected: Expectation) -> float:
        """How far ``count`` is from the expectation, on the stabilised scale (where a Poisson
        count's variance is 1, whatever its rate)."""
        return (stabilise(count) - expected.mean) / math.sqrt(expected.std**2 + 1.0)

    def _burst(
        self,
        name: str,
        tid: int,
        series: _Series,
        batch: EventBatch,
        index: int,
        event: Mapping[str, Any],
    ) -> Finding | None:
        if series.count < self.min_count or series.baseline.overall.n < self.min_history:
            return None
        expected = series.baseline.expect(self._slot(series.bucket))
        usual = count_of(expected.mean)
        if series.count < self.min_ratio * usual:
            return None
        score = self._z(series.count, expected)
        pattern = f"template.burst|source={name}|template={tid}"
        if score < self.threshold or pattern in self._suppressed:
            return None
        peak = series.peak
        over_peak = None
        if peak.n >= self.min_peak_days:
            usual_peak = max(peak.mean, series.day_peak)  # a day's peak, or today's so far
            if series.count < self.peak_ratio * count_of(usual_peak):
                return None  # not much busier than its usual busiest moment of a day
            over_peak = (stabilise(series.count) - peak.mean) / math.sqrt(peak.var + 1.0)
        overall = series.baseline.overall
        parts = [
            (
                "frequency.hour_of_week" if expected.seasonal else "template.frequency",
                score,
                round(usual, 2),
                series.count,
            )
        ]
        if over_peak is not None:
            typical = round(count_of(peak.mean), 2)
            parts.append(("frequency.daily_peak", over_peak, typical, series.count))
        if expected.seasonal:
            z_all = self._z(series.count, series.baseline.expect_overall())
            typical = round(count_of(overall.mean), 2)
            parts.append(("frequency.overall", z_all, typical, series.count))
        start = self._start(series.bucket)
        when = start.astimezone(self.zone).strftime("%a %H:00")
        return Finding(
            detector="template.burst",
            model=self.model,
            version=self.version,
            time=batch.times[index],
            source=name,
            entity={"source": name, "template_id": str(tid)},
            score=round(score, 4),
            threshold=self.threshold,
            confidence=self._confidence(expected),
            contributions=contributions(parts),
            summary=(
                f"{name} logged {series.count} lines of one template in the"
                f" {int(self.bucket.total_seconds() // 60)} minutes from"
                f" {start.isoformat().replace('+00:00', 'Z')}, where about"
                f" {usual:.1f} are usual"
                + (f" at this hour of the week ({when})" if expected.seasonal else "")
                + f": {series.template}"
            ),
            examples=tuple(series.examples[:MAX_EXAMPLES]),
            pattern=pattern,
            identifiers=identifiers_of(event),
        )

    def _silence(
        self, name: str, tid: int, series: _Series, bucket: int, slot: int
    ) -> Finding | None:
        if series.silent or series.baseline.overall.n < self.min_history:
            return None
        expected = series.baseline.expect(slot)
        usual = count_of(expected.mean)
        if not expected.seasonal or usual < self.silence_min_expected:
            return None
        score = -self._z(0, expected)
        pattern = f"template.silent|source={name}|template={tid}"
        if score < self.threshold or pattern in self._suppressed:
            return None
        series.silent = True
        start = self._start(bucket)
        return Finding(
            detector="template.silent",
            model=self.model,
            version=self.version,
            time=start.isoformat().replace("+00:00", "Z"),
            source=name,
            entity={"source": name, "template_id": str(tid)},
            score=round(score, 4),
            threshold=self.threshold,
            confidence=self._confidence(expected),
            contributions=contributions([("frequency.hour_of_week", score, round(usual, 2), 0)]),
            summary=(
                f"{name} logged no line of a template it logs about {usual:.1f} times"
                f" in this hour of the week: {series.template}"
            ),
            examples=tuple(series.examples[-MAX_EXAMPLES:]),
            pattern=pattern,
        )

    def _confidence(self, expected: Expectation) -> float:
        """More history behind the expectation, more confidence (one half at ``min_history``)."""
        need = self.min_slot_history if expected.seasonal else self.min_history
        return round(expected.history / (expected.history + need), 4)

    # -- rejections and state -------------------------------------------------------------

    def absorb(self, finding: Mapping[str, Any]) -> None:
        """Suppress the rejected finding's pattern. A finding of another model is left alone."""
        if finding.get("model") != self.model:
            return
        pattern = str(finding.get("pattern", ""))
        if not pattern.startswith(("template.burst|source=", "template.silent|source=")):
            raise DetectorStateError(f"not a {self.model} pattern: {pattern!r}")
        self._suppressed.add(pattern)

    def state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "model": self.model,
            "miner": self.miner.state(),
            "untimed": self.untimed,
            "suppressed": sorted(self._suppressed),
            "sources": {
                name: {
                    "bucket": s.bucket,
                    "series": {
                        str(tid): {
                            "baseline": x.baseline.state(),
                            "bucket": x.bucket,
                            "count": x.count,
                            "fired": x.fired,
                            "last_burst": x.last_burst,
                            "silent": x.silent,
                            "examples": list(x.examples),
                            "template": x.template,
                            "regular": x.regular,
                            "day": x.day,
                            "day_peak": x.day_peak,
                            "peak": x.peak.state(),
                        }
                        for tid, x in s.series.items()
                    },
                }
                for name, s in self._sources.items()
            },
        }

    def load(self, state: Mapping[str, Any]) -> None:
        if state.get("version") != STATE_VERSION or state.get("model") != self.model:
            raise DetectorStateError(
                f"not a {self.model} state of version {STATE_VERSION}"
                f" (model {state.get('model')!r}, version {state.get('version')!r})"
            )
        try:
            sources: dict[str, _Source] = {}
            for name, s in dict(state["sources"]).items():
                source = sources[str(name)] = _Source(int(s["bucket"]))
                for tid, x in dict(s["series"]).items():
                    baseline = self._baseline()
                    baseline.load(x["baseline"])
                    source.series[int(tid)] = _Series(
                        baseline,
                        int(x["bucket"]),
                        int(x["count"]),
                        bool(x["fired"]),
                        int(x["last_burst"]),
                        bool(x["silent"]),
                        [str(e) for e in x["examples"]],
                        str(x["template"]),
                        bool(x["regular"]),
                        int(x["day"]),
                        float(x["day_peak"]),
                        Ewma.from_state(PEAK_ALPHA, x["peak"]),
                    )
                source.reindex()
            suppressed = {str(p) for p in state["suppressed"]}
            untimed = int(state["untimed"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DetectorStateError(f"{self.model} state is damaged: {exc!r}") from exc
        self.miner.load(state["miner"])
        self._mining.forget()
        self._changes = self.miner.changes
        self._sources, self._suppressed, self.untimed = sources, suppressed, untimed
