"""Streaming baselines of counts: an exponentially weighted mean and variance, and a seasonal
one with a baseline per hour of the week.

Written here rather than taken from ``river``: the whole of it is an exponentially weighted
mean and variance (West's incremental form, a dozen lines), our state must be plain JSON (river's
estimators are Python objects that are saved by pickling), and river would be a new, large
dependency for those dozen lines.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qorgan.detection.errors import DetectionError

#: Hours in a week: the seasonal slots (weekday x hour of day).
WEEK_SLOTS = 7 * 24


class BaselineStateError(DetectionError):
    """A baseline state that cannot be loaded (not from :meth:`state`)."""


@dataclass(slots=True)
class Ewma:
    """Exponentially weighted mean and variance of a stream of numbers.

    ``alpha`` is the weight of each new value once the history is long (``1 / alpha`` values);
    until then each value weighs ``1 / n``, so the first ``1 / alpha`` values give their plain
    mean and (population) variance instead of leaning on the first one. ``n`` counts the values
    seen, so callers can tell a baseline with too little history to trust.
    """

    alpha: float
    mean: float = 0.0
    var: float = 0.0
    n: int = 0

    def update(self, value: float) -> None:
        weight = max(self.alpha, 1.0 / (self.n + 1))
        diff = value - self.mean
        incr = weight * diff
        self.mean += incr
        self.var = (1.0 - weight) * (self.var + diff * incr)
        self.n += 1

    def update_zeros(self, count: int) -> None:
        """``update(0)`` ``count`` times, in constant time (quiet hours come by the thousand).

        While the history is short, ``k`` zeros join ``n`` values of mean ``m`` and variance
        ``v`` as two groups do: mean ``n m / (n + k)``, variance
        ``(n v + n k m^2 / (n + k)) / (n + k)``. After that, with ``b = (1 - alpha) ** k``,
        ``k`` zeros take the mean to ``b m`` and the variance to ``b (v + m^2 (1 - b))``, as
        unrolling :meth:`update` shows."""
        if count <= 0:
            return
        short = min(count, max(0, math.floor(1.0 / self.alpha - 1.0 + 1e-9) - self.n + 1))
        if short:
            n, k, m = self.n, short, self.mean
            total = n + k
            self.var = (n * self.var + n * k * m * m / total) / total
            self.mean = n * m / total
            self.n = total
            count -= short
        if count:
            decay = (1.0 - self.alpha) ** count
            self.var = decay * (self.var + self.mean * self.mean * (1.0 - decay))
            self.mean *= decay
            self.n += count

    def merge(self, other: Ewma) -> None:
        """Become the baseline of the sum of both series (their covariance taken as zero)."""
        self.mean += other.mean
        self.var += other.var
        self.n = max(self.n, other.n)

    def state(self) -> list[float]:
        return [self.mean, self.var, self.n]

    @classmethod
    def from_state(cls, alpha: float, state: Any) -> Ewma:
        try:
            mean, var, n = state
            return cls(alpha, float(mean), float(var), int(n))
        except (TypeError, ValueError) as exc:
            raise BaselineStateError(f"not a baseline state: {state!r}") from exc


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a baseline expects of one bucket: the mean, its standard deviation, and whether it
    came from the bucket's own hour of the week (``seasonal``) or from all hours."""

    mean: float
    std: float
    seasonal: bool
    history: int


class SeasonalBaseline:
    """The count per bucket of one series, learned overall and per hour of the week.

    A slot (weekday, hour) answers for itself once it has ``min_slot_history`` buckets;
    until then the overall baseline does. ``alpha`` is the slots' weight of a new bucket (a slot
    sees one hour's buckets a week), ``overall_alpha`` the overall baseline's (it sees every
    bucket, so a smaller weight gives it a memory of days rather than hours: a template that
    comes in bursts has learned that it does). So a template that is busy every Monday at nine
    is expected to be busy then, and only then.
    """

    __slots__ = ("alpha", "min_slot_history", "overall", "overall_alpha", "slots")

    def __init__(
        self, *, alpha: float = 0.1, overall_alpha: float = 0.01, min_slot_history: int = 3
    ) -> None:
        if not 0.0 < alpha <= 1.0 or not 0.0 < overall_alpha <= 1.0:
            raise ValueError("alpha and overall_alpha must be in (0, 1]")
        self.alpha = alpha
        self.overall_alpha = overall_alpha
        self.min_slot_history = min_slot_history
        self.overall = Ewma(overall_alpha)
        self.slots: dict[int, Ewma] = {}

    def expect(self, slot: int) -> Expectation:
        """The slot's mean once it has history, else the overall one. The spread is the larger
        of the two: the slot knows the level at this hour, the overall baseline how bursty
        the series is (a slot of a few quiet weeks has not seen the bursts of the others)."""
        own = self.slots.get(slot)
        if own is not None and own.n >= self.min_slot_history:
            var = max(own.var, self.overall.var, 0.0)
            return Expectation(own.mean, math.sqrt(var), True, own.n)
        return self.expect_overall()

    def expect_overall(self) -> Expectation:
        base = self.overall
        return Expectation(base.mean, math.sqrt(max(base.var, 0.0)), False, base.n)

    def update(self, slot: int, count: float) -> None:
        self.overall.update(count)
        own = self.slots.get(slot)
        if own is None:
            own = self.slots[slot] = Ewma(self.alpha)
        own.update(count)

    def update_zeros(self, slot: int, count: int) -> None:
        """``count`` empty buckets, all in ``slot``."""
        self.overall.update_zeros(count)
        own = self.slots.get(slot)
        if own is None:
            own = self.slots[slot] = Ewma(self.alpha)
        own.update_zeros(count)

    def merge(self, other: SeasonalBaseline) -> None:
        """Become the baseline of the sum of both series, slot by slot."""
        self.overall.merge(other.overall)
        for slot, theirs in other.slots.items():
            own = self.slots.get(slot)
            if own is None:
                self.slots[slot] = Ewma(self.alpha, theirs.mean, theirs.var, theirs.n)
            else:
                own.merge(theirs)

    def state(self) -> dict[str, Any]:
        return {
            "overall": self.overall.state(),
            "slots": {str(k): v.state() for k, v in self.slots.items()},
        }

    def load(self, state: Mapping[str, Any]) -> None:
        try:
            self.overall = Ewma.from_state(self.overall_alpha, state["overall"])
            self.slots = {
                int(k): Ewma.from_state(self.alpha, v) for k, v in dict(state["slots"]).items()
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise BaselineStateError(f"not a seasonal baseline state: {exc}") from exc


def week_slot(weekday: int, hour: int) -> int:
    """The slot of an hour of the week: Monday 00:00 is 0, Sunday 23:00 is 167."""
    return weekday * 24 + hour
