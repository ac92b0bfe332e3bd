"""Sudden changes in how often a source logs a template: bursts, and regular templates that go
silent.

Each (source, template) is a series of counts per time bucket (``bucket_minutes``, 10 by
default). When a source's clock (its events' times) leaves a bucket, every series of that
source learns the bucket's count, zero included, in a
:class:`~qorgan.detection.anomaly.baselines.SeasonalBaseline`: one baseline per hour of the
week (in ``timezone``, where people's working hours are), and an overall one for slots with too
little history. So a template that is busy every weekday morning is expected to be busy then.

A *burst*: the open bucket's count reaches ``min_count``, ``min_ratio`` times the expected
count, and a score ``(count - mean) / sqrt(variance + mean + 1)`` (a z-score whose variance is
at least Poisson's) of ``threshold`` or more. It is reported as soon as it is reached, for early
warning, and once for a run of bursting buckets. *Silence*: a closed bucket with no line of a
template whose own hour of the week expects at least ``silence_min_expected`` lines, with the
same score; reported once until the template is logged again.

A series needs ``min_history`` buckets before it is judged. A rejected finding suppresses its
pattern (that template's bursts, or silences, on that source) from then on. When the miner
absorbs templates into a more general one, their series join its series (counts add up, and so
do the baselines' means and variances).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from qorgan.detection.anomaly.baselines import Expectation, SeasonalBaseline, week_slot
from qorgan.detection.anomaly.drain import TemplateMiner
from qorgan.detection.anomaly.eventkeys import (
    identifiers_of,
    mine,
    source_of,
    text_of,
    time_of,
)
from qorgan.detection.anomaly.findings import MAX_EXAMPLES, Finding, contributions
from qorgan.detection.anomaly.rarity import DetectorStateError
from qorgan.telemetry.batch import EventBatch

STATE_VERSION = 1
#: Zero buckets learned at most after a gap in a source's log: a week of them. A longer gap is
#: a stopped log, not a week of silence to learn.
MAX_GAP = timedelta(days=7)


@dataclass(slots=True)
class _Series:
    baseline: SeasonalBaseline
    bucket: int
    count: int = 0
    #: A burst was seen in the open bucket / in every bucket since the one it was reported in.
    fired: bool = False
    episode: bool = False
    silent: bool = False
    examples: list[str] = field(default_factory=list)
    template: str = ""


@dataclass(slots=True)
class _Source:
    bucket: int
    series: dict[int, _Series] = field(default_factory=dict)


class TemplateFrequencyDetector:
    """Bursts and silences of templates per source (see the module doc)."""

    model = "template-frequency"
    version = "1.0"

    def __init__(
        self,
        *,
        miner: TemplateMiner | None = None,
        bucket_minutes: int = 10,
        alpha: float = 0.1,
        min_slot_history: int = 3,
        min_history: int = 12,
        threshold: float = 6.0,
        min_count: int = 10,
        min_ratio: float = 3.0,
        silence_min_expected: float = 10.0,
        timezone: str = "Asia/Almaty",
    ) -> None:
        if bucket_minutes < 1 or (60 % bucket_minutes and bucket_minutes % 60):
            raise ValueError("bucket_minutes must divide an hour or be whole hours")
        self.miner = miner if miner is not None else TemplateMiner()
        self.bucket = timedelta(minutes=bucket_minutes)
        self.alpha = alpha
        self.min_slot_history = min_slot_history
        self.min_history = min_history
        self.threshold = threshold
        self.min_count = min_count
        self.min_ratio = min_ratio
        self.silence_min_expected = silence_min_expected
        self.zone = ZoneInfo(timezone)
        self._sources: dict[str, _Source] = {}
        self._suppressed: set[str] = set()
        self._slots: dict[int, int] = {}
        #: Events without a usable time: they cannot be placed in a bucket, so they are counted.
        self.untimed = 0

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
        for i, event in enumerate(batch.events):
            text = text_of(batch, i)
            match, merged = mine(self.miner, text)
            if merged:
                self._rekey()
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
            series = source.series.get(match.template_id)
            if series is None:
                series = source.series[match.template_id] = _Series(
                    SeasonalBaseline(alpha=self.alpha, min_slot_history=self.min_slot_history),
                    source.bucket,
                )
            series.template = match.template
            series.silent = False
            if series.count == 0:
                series.examples = []  # a silence shows the last lines before it
            series.count += 1
            if len(series.examples) < MAX_EXAMPLES:
                series.examples.append(text)
            if not series.fired:
                burst = self._burst(name, match.template_id, series, batch, i, event)
                if burst is not None:
                    series.fired = True
                    if not series.episode:  # one finding per run of bursting buckets
                        series.episode = True
                        findings.append(burst)
        return findings

    def _rekey(self) -> None:
        """Series of templates the miner absorbed into a more general one join its series."""
        for source in self._sources.values():
            for tid in list(source.series):
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
                    kept.episode = kept.episode or gone.episode
                    kept.examples = (kept.examples + gone.examples)[:MAX_EXAMPLES]

    def _close(self, name: str, source: _Source, bucket: int) -> list[Finding]:
        """Every series of ``source`` learns the buckets before ``bucket``; the silences."""
        findings: list[Finding] = []
        oldest = bucket - int(MAX_GAP / self.bucket)
        per_hour = max(1, int(3600 // self.bucket.total_seconds()))
        for tid, series in source.series.items():
            series.baseline.update(self._slot(series.bucket), series.count)
            empty = max(series.bucket + 1, oldest)
            while empty < bucket:  # the empty buckets, an hour (one slot) at a time
                slot = self._slot(empty)
                until = min(bucket, (empty // per_hour + 1) * per_hour)
                # The slot's first empty bucket is where its expectation is highest; most
                # slots expect too little to fall silent, which is cheap to see first.
                own = series.baseline.slots.get(slot)
                if own is not None and own.mean >= self.silence_min_expected:
                    silence = self._silence(name, tid, series, empty, slot)
                    if silence is not None:
                        findings.append(silence)
                series.baseline.update_zeros(slot, until - empty)
                empty = until
            series.episode = series.episode and series.fired
            series.bucket, series.count, series.fired = bucket, 0, False
        source.bucket = bucket
        return findings

    @staticmethod
    def _z(count: float, expected: Expectation) -> float:
        return (count - expected.mean) / math.sqrt(expected.std**2 + expected.mean + 1.0)

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
        if series.count < self.min_ratio * expected.mean:
            return None
        score = self._z(series.count, expected)
        pattern = f"template.burst|source={name}|template={tid}"
        if score < self.threshold or pattern in self._suppressed:
            return None
        overall = series.baseline.overall
        parts = [
            (
                "frequency.hour_of_week" if expected.seasonal else "template.frequency",
                score,
                round(expected.mean, 2),
                series.count,
            )
        ]
        if expected.seasonal:
            z_all = self._z(series.count, series.baseline.expect_overall())
            parts.append(("frequency.overall", z_all, round(overall.mean, 2), series.count))
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
                f" {expected.mean:.1f} are usual"
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
        if not expected.seasonal or expected.mean < self.silence_min_expected:
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
            contributions=contributions(
                [("frequency.hour_of_week", score, round(expected.mean, 2), 0)]
            ),
            summary=(
                f"{name} logged no line of a template it logs about {expected.mean:.1f} times"
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
                            "episode": x.episode,
                            "silent": x.silent,
                            "examples": list(x.examples),
                            "template": x.template,
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
                    baseline = SeasonalBaseline(
                        alpha=self.alpha, min_slot_history=self.min_slot_history
                    )
                    baseline.load(x["baseline"])
                    source.series[int(tid)] = _Series(
                        baseline,
                        int(x["bucket"]),
                        int(x["count"]),
                        bool(x["fired"]),
                        bool(x["episode"]),
                        bool(x["silent"]),
                        [str(e) for e in x["examples"]],
                        str(x["template"]),
                    )
            suppressed = {str(p) for p in state["suppressed"]}
            untimed = int(state["untimed"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DetectorStateError(f"{self.model} state is damaged: {exc!r}") from exc
        self.miner.load(state["miner"])
        self._sources, self._suppressed, self.untimed = sources, suppressed, untimed
