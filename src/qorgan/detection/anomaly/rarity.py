"""New and rare templates per source: a log starts saying something it never said before.

Each event's text is reduced to a template (:class:`~qorgan.detection.anomaly.drain.TemplateMiner`)
and counted per source (:func:`~qorgan.detection.anomaly.eventkeys.source_of`). After a warm-up
(``warmup`` events of that source), a template the source has never used is *new*, and one it
used at most ``rare_count`` times is *rare*. Either is reported once per template and source,
not once per line: the finding carries the batch's first lines of it as examples.

The score is the template's surprisal in bits, ``-log2 p``, with ``p`` its additively smoothed
share of the source's lines; the threshold is the surprisal of a template seen ``rare_count``
times. The confidence is one minus the Good-Turing estimate of how often this source produces a
new template at all (the share of its lines whose template it used only once): on a source that
invents templates all day, a new one means little.

A rejected finding makes its template known on its source: it is counted as common and never
reported there again. When the miner absorbs templates into a more general one (a position
that has shown enough distinct words becomes ``<*>``), their counts, and whether they were
reported, go to it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qorgan.detection.anomaly.drain import TemplateMiner
from qorgan.detection.anomaly.eventkeys import (
    SharedMiner,
    identifiers_of,
    shared,
    source_of,
    text_of,
    without_text,
)
from qorgan.detection.anomaly.findings import MAX_EXAMPLES, Finding, contributions
from qorgan.detection.errors import DetectionError
from qorgan.telemetry.batch import EventBatch

STATE_VERSION = 1
_PATTERN = "template"
#: Templates a grouped finding lists as its contributions (its pattern names them all).
MAX_LISTED = 10


class DetectorStateError(DetectionError):
    """A detector state or a rejected finding that this detector cannot read."""


@dataclass(slots=True)
class _Source:
    total: int = 0
    counts: dict[int, int] = field(default_factory=dict)
    #: Templates already reported here (once is enough) or rejected by an analyst.
    reported: set[int] = field(default_factory=set)

    def singletons(self) -> int:
        return list(self.counts.values()).count(1)  # counted in C: called per finding


@dataclass(slots=True)
class _Pending:
    """A finding being gathered over one batch: its first event and the examples after it."""

    index: int
    kind: str
    template_id: int
    template: str
    source: str
    count: int
    surprisal: float
    threshold: float
    confidence: float
    typical: float
    examples: list[str]
    identifiers: list[str]


class TemplateRarityDetector:
    """New and rare templates per source (see the module doc)."""

    model = "qorgan-template-rarity"
    version = "1.0"

    def __init__(
        self,
        *,
        miner: TemplateMiner | SharedMiner | None = None,
        warmup: int = 200,
        rare_count: int = 1,
        smoothing: float = 1.0,
    ) -> None:
        if warmup < 0 or rare_count < 0:
            raise ValueError("warmup and rare_count must not be negative")
        if smoothing <= 0:
            raise ValueError("smoothing must be positive")
        self._mining = shared(miner)
        self.miner: TemplateMiner = self._mining.miner
        self._changes = self.miner.changes
        self.warmup = warmup
        self.rare_count = rare_count
        self.smoothing = smoothing
        self._sources: dict[str, _Source] = {}

    def observe(self, batch: EventBatch) -> list[Finding]:
        pending: dict[tuple[str, int], _Pending] = {}
        skip = without_text(batch)
        for i, event in enumerate(batch.events):
            if i in skip:
                continue
            text = text_of(batch, i)
            match, changes = self._mining.mine(self, batch, i, text)
            if changes != self._changes:
                self._rekey(self.miner.changed(self._changes, changes))
                self._changes = changes
            name = source_of(batch, i)
            source = self._sources.get(name)
            if source is None:
                source = self._sources[name] = _Source()
            tid = match.template_id
            key = (name, tid)
            gathering = pending.get(key)
            if gathering is not None:
                if len(gathering.examples) < MAX_EXAMPLES:
                    gathering.examples.append(text)
                for who in identifiers_of(event):
                    if who not in gathering.identifiers:
                        gathering.identifiers.append(who)
            elif source.total >= self.warmup and tid not in source.reported:
                count = source.counts.get(tid, 0)
                if count <= self.rare_count:
                    pending[key] = self._pending(i, name, source, tid, match.template, text)
                    pending[key].identifiers.extend(identifiers_of(event))
                    source.reported.add(tid)
            source.counts[tid] = source.counts.get(tid, 0) + 1
            source.total += 1
        by_source: dict[str, list[_Pending]] = {}
        for p in sorted(pending.values(), key=lambda p: p.index):
            by_source.setdefault(p.source, []).append(p)
        return [
            self._finding(group[0], batch) if len(group) == 1 else self._grouped(group, batch)
            for group in by_source.values()
        ]

    def _rekey(self, changed: list[int] | None) -> None:
        """Counts of templates the miner absorbed into a more general one go to that one:
        those of the ``changed`` ids, of every id when ``None``."""
        for source in self._sources.values():
            for tid in list(source.counts) if changed is None else changed:
                if tid not in source.counts:
                    continue
                now = self.miner.canonical(tid)
                if now and now != tid:
                    source.counts[now] = source.counts.get(now, 0) + source.counts.pop(tid)
                    if tid in source.reported:
                        source.reported.discard(tid)
                        source.reported.add(now)

    def _surprisal(self, source: _Source, count: int) -> float:
        a = self.smoothing
        p = (count + a) / (source.total + a * (len(source.counts) + 1))
        return -math.log2(p)

    def _pending(
        self, index: int, name: str, source: _Source, tid: int, template: str, text: str
    ) -> _Pending:
        count = source.counts.get(tid, 0)
        missing_mass = (source.singletons() + 1) / (source.total + 1)
        return _Pending(
            index=index,
            kind="new" if count == 0 else "rare",
            template_id=tid,
            template=template,
            source=name,
            count=count,
            surprisal=self._surprisal(source, count),
            threshold=self._surprisal(source, self.rare_count),
            confidence=max(0.0, min(1.0, 1.0 - missing_mass)),
            typical=source.total / max(1, len(source.counts)),
            examples=[text],
            identifiers=[],
        )

    def _finding(self, p: _Pending, batch: EventBatch) -> Finding:
        before = "never" if p.count == 0 else f"only {p.count} time(s)"
        return Finding(
            detector=f"template.{p.kind}",
            model=self.model,
            version=self.version,
            time=batch.times[p.index] if p.index < len(batch.times) else None,
            source=p.source,
            entity={"source": p.source, "template_id": str(p.template_id)},
            score=round(p.surprisal, 4),
            threshold=round(p.threshold, 4),
            confidence=round(p.confidence, 4),
            contributions=contributions(
                [("template.rarity", p.surprisal, round(p.typical, 2), p.count)]
            ),
            summary=(
                f"{p.source} logged a template it used {before} before: {p.template}"
                f" ({len(p.examples)} line(s) of it in this batch shown)"
            ),
            examples=tuple(p.examples),
            pattern=f"{_PATTERN}|source={p.source}|template={p.template_id}",
            identifiers=tuple(p.identifiers),
        )

    def _grouped(self, group: list[_Pending], batch: EventBatch) -> Finding:
        """Several templates new or rare on one source in one batch (a scan trying hundreds of
        URLs, an upgrade changing its messages): one finding, led by the rarest, with the
        templates as its contributions (at most :data:`MAX_LISTED`) and one example each."""
        ranked = sorted(group, key=lambda p: (-p.surprisal, p.index))
        lead = ranked[0]
        listed = ranked[:MAX_LISTED]
        kind = "new" if any(p.kind == "new" for p in group) else "rare"
        identifiers: list[str] = []
        for p in group:
            identifiers.extend(i for i in p.identifiers if i not in identifiers)
        first = min(group, key=lambda p: p.index)
        more = f", and {len(group) - len(listed)} more" if len(group) > len(listed) else ""
        return Finding(
            detector=f"template.{kind}",
            model=self.model,
            version=self.version,
            time=batch.times[first.index] if first.index < len(batch.times) else None,
            source=lead.source,
            entity={"source": lead.source, "templates": str(len(group))},
            score=round(lead.surprisal, 4),
            threshold=round(lead.threshold, 4),
            confidence=round(lead.confidence, 4),
            contributions=contributions(
                (f"template.rarity: {p.template[:120]}", p.surprisal, round(p.typical, 2), p.count)
                for p in listed
            ),
            summary=(
                f"{lead.source} logged {len(group)} templates it had used at most "
                f"{self.rare_count} time(s) before, in one batch; the rarest: {lead.template}{more}"
            ),
            examples=tuple(p.examples[0] for p in listed[:MAX_EXAMPLES]),
            pattern=f"{_PATTERN}|source={lead.source}|template="
            + ",".join(str(p.template_id) for p in sorted(group, key=lambda p: p.template_id)),
            identifiers=tuple(identifiers),
        )

    def absorb(self, finding: Mapping[str, Any]) -> None:
        """Make the rejected finding's templates known and common on their source. A finding of
        another model is not ours to learn from and is left alone."""
        if finding.get("model") != self.model:
            return
        name, tids = _parse_pattern(str(finding.get("pattern", "")))
        source = self._sources.get(name)
        if source is None:
            source = self._sources[name] = _Source()
        for tid in tids:
            source.reported.add(tid)
            common = max(source.counts.get(tid, 0), self.rare_count + 1)
            source.total += common - source.counts.get(tid, 0)
            source.counts[tid] = common

    def state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "model": self.model,
            "miner": self.miner.state(),
            "sources": {
                name: {
                    "total": s.total,
                    "counts": {str(k): v for k, v in s.counts.items()},
                    "reported": sorted(s.reported),
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
            sources = {
                str(name): _Source(
                    int(s["total"]),
                    {int(k): int(v) for k, v in dict(s["counts"]).items()},
                    {int(t) for t in s["reported"]},
                )
                for name, s in dict(state["sources"]).items()
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise DetectorStateError(f"{self.model} state is damaged: {exc!r}") from exc
        self.miner.load(state["miner"])
        self._mining.forget()
        self._changes = self.miner.changes
        self._sources = sources


def _parse_pattern(pattern: str) -> tuple[str, list[int]]:
    """``template|source=S|template=N[,M...]`` -> ``(S, [N, M...])``; a clear error for
    anything else."""
    head, sep, rest = pattern.partition("|source=")
    name, sep2, tids = rest.rpartition("|template=")
    ids = tids.split(",")
    if head != _PATTERN or not sep or not sep2 or not all(t.isdigit() for t in ids):
        raise DetectorStateError(f"not a template pattern: {pattern[:200]!r}")
    return name, [int(t) for t in ids]
