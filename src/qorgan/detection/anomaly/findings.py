"""A finding: what an anomaly model proposes, labelled as the output of an AI system and
explained well enough for an analyst to confirm or reject it.

The contract every detector keeps (``tests/detection/anomaly/test_findings.py``):

- ``ai_generated`` is always true, and ``model`` and ``version`` name the model that produced it;
- ``score`` was compared with ``threshold`` (a finding exists only when ``score >= threshold``),
  and ``confidence`` is in [0, 1];
- ``contributions`` are the features that made the score, each with its share, its typical
  (baseline) value and the actual one; the shares are positive and sum to 1. Typical and actual
  values are values (numbers, sizes, addresses, names, lists of them), never English phrases:
  the console shows them beside the feature's name in the reader's language, and what they mean
  in words belongs to the ``summary``, the model's own words;
- ``examples`` are up to :data:`MAX_EXAMPLES` lines or events that show it;
- ``pattern`` is what a rejection suppresses: the detector's own key for "this kind of thing
  on this entity" (for example ``"logon.new_source_ip|user=alice|ip=10.0.0.5"``). A rejected
  pattern stops firing;
- ``identifiers`` are the person-level identifiers the finding is about (user names, e-mail
  addresses, IINs): an objection by that person excludes them from every model.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: The label every finding carries, in English; the console shows its translation.
AI_LABEL = "Produced by an AI model; a person must confirm it before it is acted on."
MAX_EXAMPLES = 5
#: Longest texts a finding keeps, within what the alert store accepts
#: (``qorgan.incidents.findings.validate``): a template or a line from the logs can be of any
#: length, and a finding too large to store would hold up the findings stored beside it.
MAX_FEATURE = 200
MAX_VALUE = 500
MAX_EXAMPLE = 2000
MAX_SUMMARY = 4000
MAX_PATTERN = 4000
_SURROGATE = re.compile("[\ud800-\udfff]")
Value = str | int | float | None


class FindingError(ValueError):
    """A detector built a finding that breaks the contract."""


@dataclass(frozen=True, slots=True)
class Contribution:
    """One feature's part in a score: ``share`` of it, with the typical and the actual value."""

    feature: str
    share: float
    typical: Value
    actual: Value

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "share": self.share,
            "typical": self.typical,
            "actual": self.actual,
        }


@dataclass(frozen=True, slots=True)
class Finding:
    """One anomaly, as a detector reports it.

    ``detector`` is the kind (``template.new``, ``template.frequency``, ``entity.logon``,
    ``entity.process_pair``, ``entity.volume``, ``sequence``...); ``entity`` names what it is
    about (``{"user": "alice", "host": "web1", "source_ip": "203.0.113.9"}``); ``source`` is the
    log it came from (path or source name); ``time`` is ISO 8601 UTC of the anomalous event.
    """

    detector: str
    model: str
    version: str
    time: str | None
    source: str
    entity: Mapping[str, str]
    score: float
    threshold: float
    confidence: float
    contributions: tuple[Contribution, ...]
    summary: str
    examples: tuple[str, ...]
    pattern: str
    identifiers: tuple[str, ...] = ()
    ai_generated: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        # Text from logs may hold lone surrogates (a JSON event's "\\ud800"): they could be
        # neither hashed nor stored, so each becomes U+FFFD here, once, for every consumer.
        # Texts longer than the store keeps are cut here, marked with "…"; a pattern keeps a
        # digest of its whole text, so that two long patterns stay two.
        for name, limit in (("source", MAX_VALUE), ("summary", MAX_SUMMARY)):
            object.__setattr__(self, name, clipped(storable(getattr(self, name)), limit))
        if self.time is not None:
            object.__setattr__(self, "time", storable(self.time))
        pattern = storable(self.pattern)
        if len(pattern) > MAX_PATTERN:
            digest = hashlib.sha256(pattern.encode()).hexdigest()
            pattern = f"{pattern[: MAX_PATTERN - len(digest) - 2]}…#{digest}"
        object.__setattr__(self, "pattern", pattern)
        object.__setattr__(
            self, "examples", tuple(clipped(storable(e), MAX_EXAMPLE) for e in self.examples)
        )
        object.__setattr__(self, "identifiers", tuple(storable(i) for i in self.identifiers))
        object.__setattr__(
            self,
            "entity",
            {
                clipped(storable(k), MAX_FEATURE): clipped(storable(v), MAX_VALUE)
                for k, v in self.entity.items()
            },
        )
        object.__setattr__(
            self,
            "contributions",
            tuple(
                Contribution(
                    clipped(storable(c.feature), MAX_FEATURE),
                    c.share,
                    _value(c.typical),
                    _value(c.actual),
                )
                for c in self.contributions
            ),
        )
        check(self)

    @property
    def fingerprint(self) -> str:
        """Stable id of this finding's pattern: equal findings of one pattern share it."""
        return hashlib.sha256(f"{self.model}\x1f{self.pattern}".encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "ai_generated": True,
            "label": AI_LABEL,
            "detector": self.detector,
            "model": self.model,
            "version": self.version,
            "time": self.time,
            "source": self.source,
            "entity": dict(self.entity),
            "score": self.score,
            "threshold": self.threshold,
            "confidence": self.confidence,
            "contributions": [c.to_dict() for c in self.contributions],
            "summary": self.summary,
            "examples": list(self.examples),
            "pattern": self.pattern,
            "fingerprint": self.fingerprint,
            "identifiers": list(self.identifiers),
        }


def storable(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (valid UTF-8, hashable, storable
    in PostgreSQL); other text is returned as it is."""
    if text.isascii():
        return text
    return _SURROGATE.sub("\ufffd", text)


def clipped(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, the last one "…" when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _value(value: Value) -> Value:
    return clipped(storable(value), MAX_VALUE) if isinstance(value, str) else value


def listing(names: list[str], limit: int = 4) -> str:
    """The last ``limit`` of ``names``, comma-separated, and how many more: ``c, d (+2)``."""
    shown = ", ".join(names[-limit:])
    more = len(names) - limit
    return f"{shown} (+{more})" if more > 0 else shown


def contributions(parts: Iterable[tuple[str, float, Value, Value]]) -> tuple[Contribution, ...]:
    """Contributions from raw weights ``(feature, weight, typical, actual)``: weights that are not
    positive are dropped, the rest are normalised to shares summing to 1, largest first."""
    kept = [(f, w, t, a) for f, w, t, a in parts if w > 0 and math.isfinite(w)]
    if not kept:
        raise FindingError("a finding needs at least one feature with a positive weight")
    total = sum(w for _, w, _, _ in kept)
    shares = [Contribution(f, w / total, t, a) for f, w, t, a in kept]
    shares.sort(key=lambda c: -c.share)
    return tuple(shares)


def check(finding: Finding) -> None:
    """Raise :class:`FindingError` when ``finding`` breaks the contract in the module doc."""
    if not finding.model or not finding.version:
        raise FindingError("a finding names its model and version")
    for name in ("score", "threshold", "confidence"):
        if not math.isfinite(getattr(finding, name)):
            raise FindingError(f"{name} is not a finite number")
    if finding.score < finding.threshold:
        raise FindingError(f"score {finding.score} is below the threshold {finding.threshold}")
    if not 0.0 <= finding.confidence <= 1.0:
        raise FindingError(f"confidence {finding.confidence} is outside [0, 1]")
    if not finding.contributions:
        raise FindingError("a finding needs its contributions")
    if any(c.share <= 0 for c in finding.contributions):
        raise FindingError("every contribution's share is positive")
    if abs(sum(c.share for c in finding.contributions) - 1.0) > 1e-9:
        raise FindingError("contributions' shares must sum to 1")
    if len(finding.examples) > MAX_EXAMPLES:
        raise FindingError(f"at most {MAX_EXAMPLES} examples")
    if not finding.pattern:
        raise FindingError("a finding needs the pattern a rejection would suppress")
