"""The small statistical baselines the entity detectors learn: hour-of-week activity, how often
something new turns up, robust size scales and count surprise.

Every score is in bits of surprise (``-log2`` of a probability), so features of different kinds
add up and compare, and a share of a score says how much of the surprise a feature brought.
Hand-written rather than taken from a library (``river`` has streaming quantiles, not these
smoothed profiles or novelty rates): each is a few lines, exact, and stored as plain JSON.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from datetime import datetime
from typing import Any

from qorgan.detection.anomaly.entities import EntityStateError

HOURS_OF_WEEK = 168


def hour_of_week(moment: datetime) -> int:
    """Monday 00h is 0, Sunday 23h is 167."""
    return moment.weekday() * 24 + moment.hour


class HourProfile:
    """Counts of activity per hour of the week (168 bins)."""

    __slots__ = ("counts", "total")

    def __init__(self, counts: list[float] | None = None) -> None:
        self.counts = counts if counts is not None else [0.0] * HOURS_OF_WEEK
        self.total = float(sum(self.counts))

    def add(self, how: int, weight: float = 1.0) -> None:
        self.counts[how] += weight
        self.total += weight

    def hour_share(self, hour: int) -> float:
        """Share of activity in ``hour`` of the day and the hours either side, over all days,
        per hour (the ±1 h kernel makes 09:05 and 09:55 neighbours of 10:10)."""
        if self.total <= 0:
            return 0.0
        mass = 0.0
        for h in (hour - 1, hour, hour + 1):
            h %= 24
            mass += sum(self.counts[day * 24 + h] for day in range(7))
        return mass / 3.0 / self.total

    def week_share(self, how: int) -> float:
        """Share in this hour of the week and its two neighbours, per hour of the day-slot."""
        if self.total <= 0:
            return 0.0
        mass = sum(self.counts[(how + d) % HOURS_OF_WEEK] for d in (-1, 0, 1))
        return mass / 3.0 / self.total

    def density(self, how: int) -> float:
        """Probability per hour of the day of activity at ``how``: mostly the hour of the day,
        partly the hour of the week (a weekend night differs from a weekday night only once
        there is enough history to say so). 1/24 everywhere means no preference."""
        return 0.8 * self.hour_share(how % 24) + 0.2 * self.week_share(how)

    def active_hours(self) -> str:
        """The hours of the day with activity, as ranges: ``"01,05,07-09,22"``."""
        hours = [h for h in range(24) if any(self.counts[d * 24 + h] > 0 for d in range(7))]
        return hour_ranges(hours)

    def dump(self) -> list[float]:
        return [round(c, 6) for c in self.counts]

    @classmethod
    def restore(cls, data: Any) -> HourProfile:
        if not (isinstance(data, list) and len(data) == HOURS_OF_WEEK):
            raise EntityStateError("an hour profile is a list of 168 counts")
        if not all(isinstance(c, int | float) and c >= 0 for c in data):
            raise EntityStateError("an hour profile's counts are non-negative numbers")
        return cls([float(c) for c in data])


def hour_ranges(hours: list[int]) -> str:
    """``[1, 5, 7, 8, 9]`` -> ``"01,05,07-09"``; ``""`` for none."""
    parts: list[str] = []
    runs: list[list[int]] = []
    for h in sorted(hours):
        if runs and h == runs[-1][-1] + 1:
            runs[-1].append(h)
        else:
            runs.append([h])
    for run in runs:
        first, last = run[0], run[-1]
        parts.append(f"{first:02d}" if first == last else f"{first:02d}-{last:02d}")
    return ",".join(parts)


def smoothed_density(user: HourProfile, org: HourProfile, how: int, weight: float) -> float:
    """The user's density at ``how``, smoothed toward the organisation's by ``weight``
    pseudo-logons, and the organisation's toward no preference by five: a user with one logon
    looks like the organisation; one with hundreds looks like themself."""
    uniform = 1.0 / 24
    org_density = (org.total * org.density(how) + 5.0 * uniform) / (org.total + 5.0)
    return (user.total * user.density(how) + weight * org_density) / (user.total + weight)


def novelty(new: int, seen: int) -> float:
    """Chance that the next item is one never seen before, after ``seen`` items of which
    ``new`` were new when they came (or, Good-Turing, were seen only once), smoothed by one
    each way. A user who always logs on from two addresses, 50 times: 3/52."""
    return (new + 1.0) / (seen + 2.0)


def bits(probability: float) -> float:
    """Surprise of an event of ``probability``, in bits (capped at 64)."""
    return min(64.0, -math.log2(max(probability, 2.0**-64)))


def poisson_tail_bits(k: int, rate: float) -> float:
    """Surprise of at least ``k`` events when ``rate`` are expected: ``-log2 P(X >= k)``."""
    if k <= 0:
        return 0.0
    rate = max(rate, 1e-6)
    if k <= rate:
        return 0.0
    # log P(X = k) bounds the tail from below; the geometric factor makes it tight for k > rate.
    log_pk = -rate + k * math.log(rate) - math.lgamma(k + 1)
    log_tail = log_pk - math.log1p(-rate / (k + 1))
    return min(64.0, max(0.0, -log_tail / math.log(2)))


class RobustSample:
    """The last ``keep`` values of a quantity (log sizes), for a median and MAD scale that one
    huge value cannot drag along (unlike a mean and standard deviation)."""

    __slots__ = ("values",)

    def __init__(self, keep: int, values: list[float] | None = None) -> None:
        self.values: deque[float] = deque(values or (), maxlen=keep)

    def __len__(self) -> int:
        return len(self.values)

    def add(self, value: float) -> None:
        self.values.append(value)

    def median_mad(self) -> tuple[float, float]:
        median = statistics.median(self.values)
        mad = statistics.median(abs(v - median) for v in self.values)
        return median, mad

    def dump(self) -> list[float]:
        return [round(v, 6) for v in self.values]

    @classmethod
    def restore(cls, keep: int, data: Any) -> RobustSample:
        if not (isinstance(data, list) and all(isinstance(v, int | float) for v in data)):
            raise EntityStateError("a robust sample is a list of numbers")
        return cls(keep, [float(v) for v in data])
