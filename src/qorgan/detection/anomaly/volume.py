"""Data volume per user (or per client address when the log names no user) from web and proxy
logs: a response far larger than the entity's own (``volume.response_bytes``), or an hour
whose responses add up to far more than the entity's hours do (``volume.window_bytes``: many
medium responses; it fires once per hour, and only when no single response explains it).

Response sizes are roughly log-normal, so the baseline is the median and MAD of the log of the
last :data:`KEEP` sizes (robust: one huge response cannot hide the next one by inflating a
mean and deviation). The robust z-score of a size is turned into bits of surprise by the
normal tail, so it adds and compares with the other entity features. An entity with fewer than
``entity_warmup`` responses is compared with the whole organisation's sizes; nothing fires
before the organisation's ``org_warmup`` responses, nor below :data:`MIN_BYTES`. Hourly sums
are compared with the entity's own past hours (those with traffic) after ``window_warmup`` of
them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qorgan.detection.anomaly.entities import (
    DEFAULT_CAP,
    EntityStateError,
    EntityTable,
    need,
    pattern,
)
from qorgan.detection.anomaly.profiles import RobustSample
from qorgan.detection.anomaly.security_events import Response

#: Bits a response needs: about a robust z of 5 (a one-in-a-million size for this entity).
THRESHOLD_BITS = 20.0
#: Sizes kept per entity and for the organisation.
KEEP, ORG_KEEP = 256, 4096
#: Hourly sums kept per entity (a week of busy hours).
WINDOWS_KEPT = 168
WINDOW_SECONDS = 3600
#: Smallest response that can be exfiltration-sized (below, a "big" page is not news).
MIN_BYTES = 1 << 20
#: The smallest scale of log sizes allowed (a factor of 1.65): an entity whose responses were
#: all the same size does not turn a slightly larger one into a finding.
MIN_SCALE = 0.5


def tail_bits(z: float) -> float:
    """``-log2 P(Z >= z)`` for a standard normal ``Z`` (0 for z <= 0), capped at 64."""
    if z <= 0:
        return 0.0
    tail = 0.5 * math.erfc(z / math.sqrt(2))
    if tail > 0:
        return min(64.0, -math.log2(tail))
    return 64.0


def size_text(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"  # pragma: no cover


@dataclass(slots=True)
class Windows:
    """An entity's current hour (its index since the epoch), the bytes in it so far, whether it
    fired, and the log sums of its past hours with traffic."""

    hour: int = -1
    total: int = 0
    fired: bool = False
    sums: RobustSample = field(default_factory=lambda: RobustSample(WINDOWS_KEPT))

    def roll(self, hour: int) -> None:
        if hour != self.hour:
            if self.total > 0:
                self.sums.add(math.log1p(self.total))
            self.hour, self.total, self.fired = hour, 0, False

    def dump(self) -> list[Any]:
        return [self.hour, self.total, self.fired, self.sums.dump()]

    @classmethod
    def restore(cls, data: Any) -> Windows:
        if not (isinstance(data, list) and len(data) == 4):
            raise EntityStateError("hourly volumes are [hour, total, fired, sums]")
        hour, total, fired, sums = data
        return cls(int(hour), int(total), bool(fired), RobustSample.restore(WINDOWS_KEPT, sums))


def _surprise(sample: RobustSample, value: float) -> tuple[float, float]:
    """Bits of ``value`` (a log size) against ``sample``, and the sample's median."""
    median, mad = sample.median_mad()
    scale = max(1.4826 * mad, MIN_SCALE)
    return tail_bits((value - median) / scale), median


class VolumeBaseline:
    def __init__(
        self,
        *,
        cap: int = DEFAULT_CAP,
        entity_warmup: int = 20,
        org_warmup: int = 100,
        window_warmup: int = 10,
    ) -> None:
        self.entity_warmup = entity_warmup
        self.org_warmup = org_warmup
        self.window_warmup = window_warmup
        self.entities: EntityTable[RobustSample] = EntityTable(lambda: RobustSample(KEEP), cap)
        self.windows: EntityTable[Windows] = EntityTable(Windows, cap)
        self.org = RobustSample(ORG_KEEP)
        self.suppressed: set[str] = set()

    def score_window(
        self, fact: Response, moment: float | None
    ) -> tuple[float, str, str, str] | None:
        """``(bits, typical, actual, pattern)`` of the hour's sum with this response, when it
        reaches the threshold for the first time this hour."""
        if moment is None:
            return None
        windows = self.windows.get(fact.key)
        if windows is None:
            return None
        windows.roll(int(moment // WINDOW_SECONDS))
        total = windows.total + fact.size
        if windows.fired or total < MIN_BYTES or len(windows.sums) < self.window_warmup:
            return None
        key = pattern("volume.window_bytes", **{fact.entity: fact.key})
        if key in self.suppressed:
            return None
        surprise, median = _surprise(windows.sums, math.log1p(total))
        if surprise < THRESHOLD_BITS:
            return None
        windows.fired = True
        return surprise, size_text(math.expm1(median)), size_text(total), key

    def learn_window(self, fact: Response, moment: float | None) -> None:
        if moment is None:
            return
        windows = self.windows.touch(fact.key)
        windows.roll(int(moment // WINDOW_SECONDS))
        windows.total += fact.size

    def score(self, fact: Response) -> tuple[float, str, str, str] | None:
        """``(bits, typical, actual, pattern)`` of a response that reaches the threshold."""
        if fact.size < MIN_BYTES or len(self.org) < self.org_warmup:
            return None
        key = pattern("volume.response_bytes", **{fact.entity: fact.key})
        if key in self.suppressed:
            return None
        sample = self.basis(fact)
        surprise, median = _surprise(sample, math.log1p(fact.size))
        if surprise < THRESHOLD_BITS:
            return None
        return surprise, size_text(math.expm1(median)), size_text(fact.size), key

    def basis(self, fact: Response) -> RobustSample:
        """What a response is compared with: its entity's own responses once there are enough
        of them, else the organisation's."""
        own = self.entities.get(fact.key)
        return own if own is not None and len(own) >= self.entity_warmup else self.org

    def learn(self, fact: Response) -> None:
        value = math.log1p(fact.size)
        self.entities.touch(fact.key).add(value)
        self.org.add(value)

    def absorb(self, finding: Mapping[str, Any]) -> None:
        """A rejected size stops firing for its entity (the pattern is the entity's)."""
        if finding.get("pattern"):
            self.suppressed.add(str(finding["pattern"]))

    def state(self) -> dict[str, Any]:
        return {
            "entities": self.entities.dump(RobustSample.dump),
            "windows": self.windows.dump(Windows.dump),
            "org": self.org.dump(),
            "suppressed": sorted(self.suppressed),
        }

    def load(self, state: Mapping[str, Any]) -> None:
        self.entities.restore(
            need(state, "entities", list), lambda v: RobustSample.restore(KEEP, v)
        )
        self.windows.restore(need(state, "windows", list), Windows.restore)
        self.org = RobustSample.restore(ORG_KEEP, need(state, "org", list))
        self.suppressed = {str(k) for k in need(state, "suppressed", list)}
