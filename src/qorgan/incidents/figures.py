"""The arithmetic of incident statistics, apart from the database: periods as people name them
(the last 30 days, November 2026) in the local zone, their buckets (day, week, month) and
percentiles computed as PostgreSQL's ``percentile_cont`` does (linear interpolation between
the two nearest ranks), so both databases give the same figure.

Pure: no I/O, no database, no web.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from qorgan.incidents.lifecycle import IncidentError

#: The recent periods a dashboard offers, in days (today included).
RECENT = {"7d": 7, "30d": 30, "90d": 90, "365d": 365}
DEFAULT_PERIOD = "30d"
BUCKETS = ("day", "week", "month")
_MONTH = re.compile(r"(\d{4})-(\d{2})")


@dataclass(frozen=True, slots=True)
class Period:
    """From ``start`` (included) to ``end`` (excluded), both UTC, as ``label`` names it in
    the zone ``zone`` (``30d``: the 30 local days up to today; ``2026-11``: a local month)."""

    start: datetime
    end: datetime
    label: str
    zone: str

    @property
    def days(self) -> float:
        return (self.end - self.start) / timedelta(days=1)

    def first_day(self) -> date:
        """The local date the period begins on."""
        return self.start.astimezone(ZoneInfo(self.zone)).date()

    def last_day(self) -> date:
        """The local date of its last moment."""
        return (self.end - timedelta(microseconds=1)).astimezone(ZoneInfo(self.zone)).date()


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def recent(days: int, now: datetime, zone: str) -> Period:
    """The ``days`` local days ending with today (today whole, so buckets are whole days)."""
    if not 1 <= days <= 3660:
        raise IncidentError("a period is 1 to 3,660 days long")
    tz = ZoneInfo(zone)
    today = now.astimezone(tz).date()
    start = _midnight(today - timedelta(days=days - 1), tz)
    return Period(start, _midnight(today + timedelta(days=1), tz), f"{days}d", zone)


def month(text: str, zone: str) -> Period:
    """The local calendar month ``YYYY-MM``."""
    found = _MONTH.fullmatch(text.strip())
    if not found or not 1 <= int(found.group(2)) <= 12 or int(found.group(1)) < 1970:
        raise IncidentError(f"a month is written YYYY-MM (2026-11), not {text[:20]!r}")
    year, number = int(found.group(1)), int(found.group(2))
    tz = ZoneInfo(zone)
    following = date(year + number // 12, number % 12 + 1, 1)
    return Period(
        _midnight(date(year, number, 1), tz), _midnight(following, tz), f"{year}-{number:02d}", zone
    )


def parse_period(text: str, now: datetime, zone: str) -> Period:
    """A period from its label: one of :data:`RECENT` or a month ``YYYY-MM``."""
    if text in RECENT:
        return recent(RECENT[text], now, zone)
    return month(text, zone)


def auto_bucket(period: Period) -> str:
    """Days for up to two months, weeks for up to a year and a month, months beyond."""
    if period.days <= 62:
        return "day"
    return "week" if period.days <= 400 else "month"


def bucket_start(day: date, bucket: str) -> date:
    """The first day of the bucket ``day`` falls in (weeks begin on Monday)."""
    if bucket == "day":
        return day
    if bucket == "week":
        return day - timedelta(days=day.weekday())
    if bucket == "month":
        return day.replace(day=1)
    raise IncidentError(f"unknown bucket {bucket!r}; use one of {', '.join(BUCKETS)}")


def bucket_starts(period: Period, bucket: str) -> list[date]:
    """Every bucket of the period, in order, so a series shows its empty days too."""
    first, last = bucket_start(period.first_day(), bucket), period.last_day()
    out, day = [], first
    while day <= last:
        out.append(day)
        if bucket == "day":
            day += timedelta(days=1)
        elif bucket == "week":
            day += timedelta(days=7)
        else:
            day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return out


def rank(count: int, fraction: float) -> tuple[int, float]:
    """Where the ``fraction`` percentile of ``count`` sorted values lies: the 0-based offset
    of the lower neighbour and the weight of the upper one (``percentile_cont``)."""
    if count < 1 or not 0 <= fraction <= 1:
        raise ValueError("a percentile needs values and a fraction between 0 and 1")
    position = fraction * (count - 1)
    lower = math.floor(position)
    return lower, position - lower


def between(lower: float, upper: float | None, weight: float) -> float:
    """The value ``weight`` of the way from ``lower`` to ``upper`` (``upper`` None: at the
    last value, so ``lower``)."""
    if upper is None or weight == 0:
        return lower
    return lower + (upper - lower) * weight


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The ``fraction`` percentile (0.9 for p90) of ``values``, interpolated linearly between
    the nearest ranks as PostgreSQL's ``percentile_cont``; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    lower, weight = rank(len(ordered), fraction)
    upper = ordered[lower + 1] if lower + 1 < len(ordered) else None
    return between(ordered[lower], upper, weight)
