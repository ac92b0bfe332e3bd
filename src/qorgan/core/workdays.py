"""The working-day calendar that incident deadlines (SLA clocks) are counted in.

A contract that says "respond within 4 working hours" means hours of the working day in
Asia/Almaty, on the days Kazakhstan actually works. Those days change every year: Kurban Ait
follows the lunar calendar, a holiday on a weekend moves the day off to the next working day,
and the government moves days off by decree (a Saturday becomes a working day so that a Friday
between two holidays is not). None of that is known in this code: it is data, the bundled
``holidays_kz.yml`` or an administrator's copy of it, read by :func:`load_calendar`.

The rules this module applies, and nothing else:

* A day is a working day when it is Monday to Friday and not listed as a holiday, or when it
  is a Saturday or Sunday listed as a working weekend.
* Working hours are ``[day_start, day_end)`` in the calendar's zone on working days.
* Working time is elapsed time inside working hours; a start outside them counts from the next
  opening.
* Years the data does not cover have weekends only (no holidays): a deadline far ahead is
  still computed, and :meth:`WorkCalendar.covers` lets the caller warn that it may be early.

Pure: no database or web code.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from qorgan.core.errors import QorganError

#: The calendar shipped with the package (Kazakhstan, Asia/Almaty, 09:00-18:00).
BUNDLED_FILE = "holidays_kz.yml"
BUNDLED_SOURCE = f"qorgan/core/{BUNDLED_FILE}"
#: The languages every holiday is named in (the interface's languages).
NAME_LANGUAGES = ("kk", "ru", "en")

_ONE_DAY = timedelta(days=1)
_ZERO = timedelta(0)
_SATURDAY, _SUNDAY = 5, 6
_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME_TEXT = re.compile(r"(\d{2}):(\d{2})")


class CalendarError(QorganError):
    """A calendar file that cannot be used: the message names the entry, ``source`` the file."""


def _duration(moment: time) -> timedelta:
    """The time of day as the time elapsed since midnight."""
    return timedelta(
        hours=moment.hour,
        minutes=moment.minute,
        seconds=moment.second,
        microseconds=moment.microsecond,
    )


def _is_weekend(day: date) -> bool:
    return day.weekday() in (_SATURDAY, _SUNDAY)


def _as_utc(moment: datetime, what: str) -> datetime:
    """``moment`` in UTC; a naive datetime is refused, since its zone would be a guess."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: its mappings are not hashable
class WorkCalendar:
    """Working days and hours in one zone, and the years whose holidays are known.

    ``holidays`` maps every listed holiday to its English name: each non-working weekday
    (public holidays, days off moved by decree, the weekday after a holiday that fell on a
    weekend) and also the holidays that fall on a weekend, kept for their names; a weekend is
    not working anyway. ``names`` holds the same days' names by language ("kk", "ru", "en").
    The default instance has no holidays: weekends only, 09:00-18:00 in Asia/Almaty.
    """

    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Almaty"))
    day_start: time = time(9)
    day_end: time = time(18)
    holidays: Mapping[date, str] = field(default_factory=dict)
    working_weekends: frozenset[date] = frozenset()
    years: frozenset[int] = frozenset()
    names: Mapping[date, Mapping[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Programming errors, not data errors: load_calendar reports bad data before this.
        if self.day_start.tzinfo is not None or self.day_end.tzinfo is not None:
            raise ValueError("working hours are local times of day, without a zone")
        if self.day_start >= self.day_end:
            raise ValueError(f"working hours {self.day_start}-{self.day_end} are empty")
        for day in self.working_weekends:
            if not _is_weekend(day):
                raise ValueError(f"working weekend {day} is a {_WEEKDAY_NAMES[day.weekday()]}")
            if day in self.holidays:
                raise ValueError(f"{day} is both a holiday and a working weekend")
        # Read-only views, so a shared (cached) calendar cannot be changed by one caller.
        object.__setattr__(self, "holidays", MappingProxyType(dict(self.holidays)))
        object.__setattr__(
            self,
            "names",
            MappingProxyType({d: MappingProxyType(dict(n)) for d, n in self.names.items()}),
        )

    @property
    def day_length(self) -> timedelta:
        """The working time in one working day (9 hours for 09:00-18:00)."""
        return _duration(self.day_end) - _duration(self.day_start)

    def covers(self, year: int) -> bool:
        """Whether the data lists this year's holidays; outside it only weekends are off, so a
        deadline there may fall on a holiday nobody has entered yet."""
        return year in self.years

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` (a date in the calendar's zone) is a working day."""
        if isinstance(day, datetime):
            # A datetime never equals a date key, so it would silently miss every holiday.
            raise TypeError("is_working_day takes a local date, not a datetime")
        if day in self.working_weekends:
            return True
        return not _is_weekend(day) and day not in self.holidays

    def holiday_name(self, day: date, language: str = "en") -> str | None:
        """The holiday's name in ``language`` (English when that one is missing), or None."""
        if day not in self.holidays:
            return None
        return self.names.get(day, {}).get(language) or self.holidays[day]

    def _hours(self, day: date) -> tuple[datetime, datetime]:
        """The opening and closing moments of ``day``, in UTC."""
        opens = datetime.combine(day, self.day_start, tzinfo=self.zone).astimezone(UTC)
        closes = datetime.combine(day, self.day_end, tzinfo=self.zone).astimezone(UTC)
        return opens, closes

    def add_working_time(self, start: datetime, amount: timedelta) -> datetime:
        """The moment (aware, UTC) when ``amount`` of working time has elapsed after ``start``.

        ``start`` may be in any zone; working hours are those of the calendar's zone. A start
        outside working hours counts from the next opening, so an amount of zero returns
        ``start`` itself inside working hours and the next opening outside them (a clock
        started on Saturday is "due" on Monday at 09:00, not on Saturday). A deadline that uses
        up a day's hours exactly is the closing time of that day (18:00), not the next opening.
        """
        moment = _as_utc(start, "start")
        if amount < _ZERO:
            raise ValueError(f"amount must not be negative, got {amount}")
        remaining = amount
        day = moment.astimezone(self.zone).date()
        while True:  # one turn per calendar day: a year is about 365 cheap turns
            if self.is_working_day(day):
                opens, closes = self._hours(day)
                if moment < closes:
                    begin = max(opens, moment)
                    available = closes - begin
                    if remaining <= available:
                        return begin + remaining
                    remaining -= available
            day += _ONE_DAY

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """``days`` working days after ``start``, a working day being :attr:`day_length`.

        This is working time, not a count of dates: one working day from 11:00 on Monday is
        11:00 on Tuesday, and from 20:00 on Friday it is the end (18:00) of Monday.
        """
        if days < 0:
            raise ValueError(f"days must not be negative, got {days}")
        return self.add_working_time(start, days * self.day_length)

    def working_time_between(self, a: datetime, b: datetime) -> timedelta:
        """The working time elapsed from ``a`` to ``b`` (zero when ``b`` is not after ``a``).

        The inverse of :meth:`add_working_time`:
        ``working_time_between(s, add_working_time(s, x)) == x``.
        """
        first, last = _as_utc(a, "a"), _as_utc(b, "b")
        if last <= first:
            return _ZERO
        total = _ZERO
        day = first.astimezone(self.zone).date()
        last_day = last.astimezone(self.zone).date()
        while day <= last_day:
            if self.is_working_day(day):
                opens, closes = self._hours(day)
                overlap = min(closes, last) - max(opens, first)
                if overlap > _ZERO:
                    total += overlap
            day += _ONE_DAY
        return total


# --- Loading the YAML data ---------------------------------------------------------------------


class _TextDatesLoader(yaml.SafeLoader):
    """A safe loader that leaves dates as text, so a bad one (2025-02-30) is reported by entry
    rather than as a bare ValueError from inside the YAML parser."""


_TextDatesLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

_TOP_KEYS = ("zone", "working_hours", "years")
_HOURS_KEYS = ("start", "end")
_YEAR_KEYS = ("holidays", "working_weekends")
_HOLIDAY_KEYS = ("date", *NAME_LANGUAGES, "observes", "moved_from")
_WORKING_WEEKEND_KEYS = ("date", *NAME_LANGUAGES)


@dataclass
class _Holiday:
    where: str
    day: date
    names: dict[str, str]
    observes: date | None
    moved_from: date | None


class _Reader:
    """Validation of one file's parsed YAML; every error names the entry it is about."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, message: str) -> CalendarError:
        return CalendarError(message, source=self.source)

    def mapping(self, value: object, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(f"{where} must be a mapping, got {type(value).__name__}")
        unknown = sorted(str(key) for key in value if key not in allowed)
        if unknown:
            raise self.fail(
                f"{where}: unknown key {', '.join(map(repr, unknown))}"
                f" (allowed: {', '.join(allowed)})"
            )
        return value

    def required(self, value: dict[str, Any], key: str, where: str) -> Any:
        if value.get(key) is None:
            raise self.fail(f"{where}: missing {key!r}")
        return value[key]

    def day(self, value: object, where: str, key: str = "date") -> date:
        if not isinstance(value, str) or not _DATE_TEXT.fullmatch(value):
            raise self.fail(f"{where}: {key} {value!r} is not a date like 2026-03-21")
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise self.fail(f"{where}: {key} {value!r} is not a valid date") from None

    def time_of_day(self, value: object, where: str) -> time:
        if not isinstance(value, str):
            # YAML reads an unquoted 9:00 as the number 540 (base 60).
            raise self.fail(f'{where} {value!r} must be a quoted time like "09:00"')
        match = _TIME_TEXT.fullmatch(value)
        if match is None or int(match[1]) > 23 or int(match[2]) > 59:
            raise self.fail(f'{where} {value!r} is not a time like "09:00" (00:00-23:59)')
        return time(int(match[1]), int(match[2]))

    def text(self, value: object, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{where} must be non-empty text")
        return value.strip()

    def entries(self, section: dict[str, Any], key: str, where: str) -> list[object]:
        value = section.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(f"{where}.{key} must be a list, got {type(value).__name__}")
        return value


def _entry_label(position: str, entry: object) -> str:
    """``years.2025.holidays[3] (2025-03-10)``: the position, and the date when there is one,
    so the administrator finds the entry by either."""
    if isinstance(entry, dict) and isinstance(entry.get("date"), str):
        return f"{position} ({entry['date']})"
    return position


def load_calendar(text: str, *, source: str) -> WorkCalendar:
    """The calendar described by ``text`` (the YAML format of ``holidays_kz.yml``).

    Raises :class:`CalendarError`, naming ``source`` and the bad entry, for anything that would
    make deadlines silently wrong: an unknown key (a typo such as ``working_weekend``), a bad
    date or time, a date listed under another year, a day listed twice, a working weekend that
    is not a Saturday or Sunday, and ``observes`` / ``moved_from`` links that do not match.
    """
    reader = _Reader(source)
    try:
        # A SafeLoader subclass: plain data only, never arbitrary Python objects.
        data = yaml.load(text, Loader=_TextDatesLoader)
    except yaml.YAMLError as exc:
        raise reader.fail(f"not valid YAML: {exc}") from None
    top = reader.mapping(data, "the file", _TOP_KEYS)

    zone_name = reader.text(reader.required(top, "zone", "the file"), "zone")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise reader.fail(f"zone {zone_name!r} is not a known time zone") from None

    hours = reader.mapping(
        reader.required(top, "working_hours", "the file"), "working_hours", _HOURS_KEYS
    )
    day_start = reader.time_of_day(
        reader.required(hours, "start", "working_hours"), "working_hours.start"
    )
    day_end = reader.time_of_day(
        reader.required(hours, "end", "working_hours"), "working_hours.end"
    )
    if day_start >= day_end:
        raise reader.fail(
            f"working_hours: start {day_start:%H:%M} must be before end {day_end:%H:%M}"
        )

    years = reader.required(top, "years", "the file")
    if not isinstance(years, dict) or not years:
        raise reader.fail("years must be a mapping of years (like 2026) to their days")

    holidays: list[_Holiday] = []
    working_weekends: dict[date, str] = {}
    listed: dict[date, str] = {}

    def listed_once(day: date, where: str) -> None:
        if day in listed:
            raise reader.fail(f"{where}: {day} is listed twice (also at {listed[day]})")
        listed[day] = where

    for year, section_value in years.items():
        if not isinstance(year, int) or isinstance(year, bool) or not 1900 <= year <= 9999:
            raise reader.fail(f"years: {year!r} is not a year like 2026")
        section = reader.mapping(section_value or {}, f"years.{year}", _YEAR_KEYS)
        for index, entry_value in enumerate(reader.entries(section, "holidays", f"years.{year}")):
            where = _entry_label(f"years.{year}.holidays[{index}]", entry_value)
            entry = reader.mapping(entry_value, where, _HOLIDAY_KEYS)
            day = reader.day(reader.required(entry, "date", where), where)
            if day.year != year:
                raise reader.fail(f"{where}: the date is listed under the year {year}")
            listed_once(day, where)
            names = {
                language: reader.text(
                    reader.required(entry, language, where), f"{where}: name {language!r}"
                )
                for language in NAME_LANGUAGES
            }
            observes = entry.get("observes")
            moved_from = entry.get("moved_from")
            holidays.append(
                _Holiday(
                    where=where,
                    day=day,
                    names=names,
                    observes=None if observes is None else reader.day(observes, where, "observes"),
                    moved_from=(
                        None if moved_from is None else reader.day(moved_from, where, "moved_from")
                    ),
                )
            )
        for index, entry_value in enumerate(
            reader.entries(section, "working_weekends", f"years.{year}")
        ):
            where = _entry_label(f"years.{year}.working_weekends[{index}]", entry_value)
            entry = reader.mapping(entry_value, where, _WORKING_WEEKEND_KEYS)
            day = reader.day(reader.required(entry, "date", where), where)
            if day.year != year:
                raise reader.fail(f"{where}: the date is listed under the year {year}")
            if not _is_weekend(day):
                raise reader.fail(
                    f"{where}: a working weekend must be a Saturday or Sunday,"
                    f" {day} is a {_WEEKDAY_NAMES[day.weekday()]}"
                )
            listed_once(day, where)
            working_weekends[day] = where

    _check_links(reader, holidays, working_weekends)
    return WorkCalendar(
        zone=zone,
        day_start=day_start,
        day_end=day_end,
        holidays={holiday.day: holiday.names["en"] for holiday in holidays},
        working_weekends=frozenset(working_weekends),
        years=frozenset(years),
        names={holiday.day: holiday.names for holiday in holidays},
    )


def _check_links(
    reader: _Reader, holidays: list[_Holiday], working_weekends: dict[date, str]
) -> None:
    """``observes`` and ``moved_from`` must say what the dates show: an observed day off is a
    weekday after a listed holiday that fell on a weekend, and each working weekend gives its
    day off to exactly one weekday. A mistyped date breaks one of these."""
    by_day = {holiday.day: holiday for holiday in holidays}
    moved_to: dict[date, str] = {}
    for holiday in holidays:
        day, where = holiday.day, holiday.where
        if holiday.observes is not None and holiday.moved_from is not None:
            raise reader.fail(f"{where}: give either observes or moved_from, not both")
        link = holiday.observes or holiday.moved_from
        if link is not None and _is_weekend(day):
            raise reader.fail(
                f"{where}: a day off given for another day must be a weekday,"
                f" {day} is a {_WEEKDAY_NAMES[day.weekday()]}"
            )
        if holiday.observes is not None:
            observed = by_day.get(holiday.observes)
            if observed is None:
                raise reader.fail(f"{where}: observes {holiday.observes}, which is not listed")
            if not _is_weekend(observed.day) or observed.day >= day:
                raise reader.fail(
                    f"{where}: observes {observed.day}, which must be a Saturday or Sunday"
                    " before it"
                )
        if holiday.moved_from is not None:
            source_day = holiday.moved_from
            if source_day not in working_weekends:
                raise reader.fail(
                    f"{where}: moved_from {source_day}, which is not listed in working_weekends"
                )
            if source_day in moved_to:
                raise reader.fail(
                    f"{where}: moved_from {source_day}, which already gave its day off to"
                    f" {moved_to[source_day]}"
                )
            moved_to[source_day] = where
    for day, where in working_weekends.items():
        if day not in moved_to:
            raise reader.fail(
                f"{where}: no holiday says moved_from {day}; a working weekend gives its day off"
                " to a weekday"
            )


@functools.cache
def default_calendar() -> WorkCalendar:
    """The bundled Kazakh calendar, read once per process."""
    text = resources.files("qorgan.core").joinpath(BUNDLED_FILE).read_text(encoding="utf-8")
    return load_calendar(text, source=BUNDLED_SOURCE)


def calendar_from_settings(path: Path | None) -> WorkCalendar:
    """The administrator's calendar file when one is configured, else the bundled one.

    The file is read on every call (not cached), so a corrected file takes effect where the
    caller asks again; a missing or unreadable file is a :class:`CalendarError`, never a silent
    fallback to the bundled data.
    """
    if path is None:
        return default_calendar()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CalendarError(f"cannot read the calendar file: {exc}", source=str(path)) from None
    return load_calendar(text, source=str(path))
