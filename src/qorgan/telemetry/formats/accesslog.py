"""Web server logs: access logs in the Apache/Nginx common and combined formats and the W3C
extended format of IIS (:class:`AccessLogFormat`), and the Apache error log
(:class:`ApacheErrorFormat`).

Access log events carry the field names of Sigma's ``webserver`` category (``c-ip``,
``cs-method``, ``cs-uri-stem``, ``cs-uri-query``, ``sc-status``, ``cs-user-agent``...), with
values as logged except that ``-`` becomes None and counters become ints. In W3C files the
``#Fields:`` directive names the columns and may change mid-file; other ``#`` lines are
directives or comments and yield nothing. W3C ``date``/``time`` are UTC; the common-log time
``[10/Oct/2000:13:55:36 -0700]`` is converted to UTC with its offset.

The Apache error log time (``[Sun Dec 04 04:47:44 2005]``) is local server time with no zone;
it is taken as UTC unless the format is built with another ``tz``. Its batches are tagged
``{"product": "apache"}``: Sigma has no error-log category, and this keeps them out of
``webserver`` rules, which expect request fields.

A line that matches none of the shapes is quarantined with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import IO, Any, ClassVar

from qorgan.telemetry.formats.base import MONTHS, Format, Record, head_lines
from qorgan.telemetry.quarantine import Quarantine

ACCESS_SCHEMA: dict[str, str] = {
    "c-ip": "client address",
    "c-username": "authenticated user (None for '-')",
    "date": "request date, UTC (YYYY-MM-DD)",
    "time": "request time, UTC (hh:mm:ss)",
    "cs-method": "HTTP method",
    "cs-uri-stem": "path part of the request target",
    "cs-uri-query": "query part of the request target, without '?', None when absent",
    "cs-uri": "request target as sent (stem + '?' + query)",
    "cs-version": "protocol, e.g. HTTP/1.1",
    "sc-status": "response status (int)",
    "sc-bytes": "response size in bytes (int) or None for '-'",
    "cs-referer": "Referer header (combined format, W3C cs(Referer))",
    "cs-user-agent": "User-Agent header (combined format, W3C cs(User-Agent))",
    "cs-host": "Host header (W3C)",
    "cs-cookie": "Cookie header (W3C)",
    "s-ip": "server address (W3C)",
    "s-port": "server port (int, W3C)",
    "s-computername": "server name (W3C)",
    "s-sitename": "IIS site name (W3C)",
    "sc-substatus": "IIS sub-status (int, W3C)",
    "sc-win32-status": "IIS Win32 status (int, W3C)",
    "cs-bytes": "request size in bytes (int, W3C)",
    "time-taken": "time taken in milliseconds (int, W3C)",
    "request": "the raw request line when it is not 'METHOD TARGET [VERSION]' (common log)",
    "extra": "text after the combined-format fields (custom log formats), when present",
    "*": "any other W3C column, named by the #Fields directive ('cs(X-Y)' -> 'cs-x-y')",
}

CLF = re.compile(
    r"""
    (?P<ip>\S+)\x20                     # client address
    (?P<ident>\S+)\x20                  # RFC 1413 identity (unused, '-')
    (?P<user>.*?)\x20                   # authenticated user, may contain spaces
    \[(?P<day>\d{2})/(?P<mon>[A-Z][a-z]{2})/(?P<year>\d{4})   # [10/Oct/2000
    :(?P<clock>\d{2}:\d{2}:\d{2})       # :13:55:36
    \x20(?P<tz>[+-]\d{4})\]\x20         # -0700]
    "(?P<request>.*?)"\x20              # request line; Tomcat leaves quotes in it unescaped
    (?P<status>\d{3}|-)\x20             # status
    (?P<bytes>\d+|-)                    # response size
    (?:\x20"(?P<referer>(?:[^"\\]|\\.)*)"  # combined: Referer
    \x20"(?P<ua>(?:[^"\\]|\\.)*)")?     # combined: User-Agent
    (?:\x20+(?P<extra>.*?))?            # anything a custom format appends
    \s*$
    """,
    re.VERBOSE | re.DOTALL,
)

REQUEST = re.compile(
    r"""
    (?P<method>[A-Za-z][A-Za-z0-9_-]*)\x20  # method
    (?P<target>.+?)                         # request target, kept as sent
    (?:\x20(?P<version>[A-Z]+/\d+(?:\.\d+)?))?  # protocol, absent in HTTP/0.9
    $
    """,
    re.VERBOSE | re.DOTALL,
)

W3C_HEADER = re.compile(
    r"""
    (?P<prefix>cs|sc|s|c|rs|sr)         # direction
    \((?P<header>[^)]+)\)               # header name, e.g. User-Agent
    $
    """,
    re.VERBOSE,
)

#: W3C columns whose values are counters.
W3C_INTS = frozenset(
    {"sc-status", "sc-substatus", "sc-win32-status", "sc-bytes", "cs-bytes", "time-taken", "s-port"}
)

W3C_DATE = re.compile(r"\d{4}-\d{2}-\d{2}$")
W3C_TIME = re.compile(r"\d{2}:\d{2}:\d{2}(?:\.\d{1,7})?$")

ERROR_SCHEMA: dict[str, str] = {
    "timestamp": "event time, ISO 8601 UTC (local server time taken as UTC unless told)",
    "level": "log level (notice, error, warn...)",
    "module": "Apache 2.4 module of '[module:level]', else None",
    "pid": "process id (int), Apache 2.4, else None",
    "client": "the '[client ...]' address (with port in Apache 2.4) or None",
    "message": "the message",
}

APACHE_ERROR = re.compile(
    r"""
    \[(?:[A-Z][a-z]{2})\x20             # [weekday
    (?P<mon>[A-Z][a-z]{2})\x20          # month
    (?P<day>\d{1,2})\x20                # day
    (?P<clock>\d{2}:\d{2}:\d{2})        # hh:mm:ss
    (?P<frac>\.\d{1,6})?\x20            # Apache 2.4 microseconds
    (?P<year>\d{4})\]\x20               # year]
    \[(?:(?P<module>[^:\]\s]*):)?(?P<level>[^\]\s]+)\]   # [level] or [module:level]
    (?:\x20\[pid\x20(?P<pid>\d+)(?::tid\x20\d+)?\])?    # [pid N:tid M]
    (?:\x20\[client\x20(?P<client>[^\]]+)\])?           # [client addr]
    (?:\x20(?P<message>.*))?            # message
    $
    """,
    re.VERBOSE | re.DOTALL,
)

_OFFSETS: dict[str, tzinfo] = {}


def _offset(text: str) -> tzinfo:
    tz = _OFFSETS.get(text)
    if tz is None:
        minutes = int(text[1:3]) * 60 + int(text[3:5])
        delta = timedelta(minutes=-minutes if text[0] == "-" else minutes)
        tz = UTC if not minutes else timezone(delta)
        _OFFSETS[text] = tz
    return tz


@lru_cache(maxsize=4096)
def _clf_time(year: str, mon: str, day: str, clock: str, tz: str) -> tuple[str, str]:
    """``10/Oct/2000:13:55:36 -0700`` parts as UTC ``(date, time)``; cached, since
    neighbouring lines share their second."""
    dt = datetime(
        int(year),
        MONTHS[mon],
        int(day),
        int(clock[0:2]),
        int(clock[3:5]),
        int(clock[6:8]),
        tzinfo=_offset(tz),
    ).astimezone(UTC)
    return dt.strftime("%Y-%m-%d"), dt.strftime("%H:%M:%S")


def _int_or_none(value: str | None) -> int | None:
    if value is None or value == "-":
        return None
    return int(value)


def _split_target(target: str | None) -> tuple[str | None, str | None]:
    if target is None:
        return None, None
    stem, sep, query = target.partition("?")
    return stem, (query if sep else None)


def w3c_name(column: str) -> str:
    """A W3C column name as a Sigma field name: ``cs(User-Agent)`` -> ``cs-user-agent``."""
    m = W3C_HEADER.match(column)
    if m is not None:
        return f"{m['prefix']}-{m['header'].lower()}"
    return column


class AccessLogFormat(Format):
    name = "accesslog"
    description = "Web access logs: Apache/Nginx common and combined, IIS W3C extended"
    logsource: ClassVar[dict[str, str]] = {"category": "webserver"}
    schema = ACCESS_SCHEMA

    @classmethod
    def sniff(cls, head: bytes, path: str) -> int:
        text = head.lstrip(b"\xef\xbb\xbf")
        # A W3C log opens with its directives (#Software, #Version, #Date, #Fields): a
        # "#Fields: " line further down, after data, does not make a file W3C.
        for line in text[:4096].lstrip().splitlines():
            if not line.startswith(b"#"):
                break
            if line.startswith((b"#Fields: ", b"#Version: ", b"#Software: Microsoft")):
                return 90
        lines = [line for line in head_lines(text, 5) if not line.startswith("#")]
        if lines and all(CLF.match(line) for line in lines):
            return 75
        return 0

    def records(self, stream: IO[bytes], path: str, quarantine: Quarantine) -> Iterator[Record]:
        columns: list[str] | None = None
        for lineno, raw, line in self.text_lines(stream, path, quarantine):
            if lineno == 1:
                line = line.lstrip("\ufeff")
            if line.startswith("#"):
                if line.startswith("#Fields:"):
                    columns = [w3c_name(c) for c in line[8:].split()]
                continue
            if columns is not None:
                values = line.split(" ")
                if len(values) != len(columns):
                    quarantine.add(
                        path,
                        lineno,
                        f"accesslog: {len(values)} values for {len(columns)} #Fields columns",
                        raw,
                    )
                    continue
                try:
                    fields, time = self._w3c(columns, values)
                except ValueError as exc:
                    quarantine.add(path, lineno, f"accesslog: bad W3C value: {exc}", raw)
                    continue
                host = fields.get("s-computername") or fields.get("cs-host")
            else:
                m = CLF.match(line)
                if m is None:
                    quarantine.add(path, lineno, "accesslog: not a common/combined log line", raw)
                    continue
                try:
                    fields, time = self._clf(m)
                except (ValueError, KeyError) as exc:
                    quarantine.add(path, lineno, f"accesslog: bad timestamp: {exc}", raw)
                    continue
                host = None
            yield fields, lineno, time, host

    @staticmethod
    def _clf(m: re.Match[str]) -> tuple[dict[str, Any], str]:
        date, time = _clf_time(m["year"], m["mon"], m["day"], m["clock"], m["tz"])
        request = m["request"]
        r = REQUEST.match(request)
        if r is not None:
            method, target, version = r.group("method", "target", "version")
        else:
            method = target = version = None
        stem, query = _split_target(target)
        user = m["user"]
        referer, agent = m["referer"], m["ua"]
        fields: dict[str, Any] = {
            "c-ip": m["ip"],
            "c-username": None if user == "-" else user,
            "date": date,
            "time": time,
            "cs-method": method,
            "cs-uri-stem": stem,
            "cs-uri-query": query,
            "cs-uri": target,
            "cs-version": version,
            "sc-status": _int_or_none(m["status"]),
            "sc-bytes": _int_or_none(m["bytes"]),
            "cs-referer": None if referer in (None, "-") else referer,
            "cs-user-agent": None if agent in (None, "-") else agent,
        }
        if r is None:
            fields["request"] = None if request == "-" else request
        if m["extra"]:
            fields["extra"] = m["extra"]
        return fields, f"{date}T{time}Z"

    @staticmethod
    def _w3c(columns: list[str], values: list[str]) -> tuple[dict[str, Any], str | None]:
        fields: dict[str, Any] = {}
        ints = W3C_INTS
        for name, value in zip(columns, values, strict=True):
            if value == "-":
                fields[name] = None
            elif name in ints:
                fields[name] = int(value)
            else:
                fields[name] = value
        stem = fields.get("cs-uri-stem")
        if stem is not None and "cs-uri" not in fields:
            query = fields.get("cs-uri-query")
            fields["cs-uri"] = stem if query is None else f"{stem}?{query}"
        date, time = fields.get("date"), fields.get("time")
        timestamp = None
        if date is not None and time is not None:
            if W3C_DATE.match(date) is None or W3C_TIME.match(time) is None:
                raise ValueError(f"date/time {date!r} {time!r}")
            timestamp = f"{date}T{time}Z"
        return fields, timestamp


class ApacheErrorFormat(Format):
    name = "apache_error"
    description = "Apache HTTP Server error log (2.2 and 2.4 layouts)"
    logsource: ClassVar[dict[str, str]] = {"product": "apache"}
    schema = ERROR_SCHEMA

    def __init__(self, tz: tzinfo = UTC, **options: Any) -> None:
        super().__init__(tz=tz, **options)

    @classmethod
    def sniff(cls, head: bytes, path: str) -> int:
        lines = head_lines(head, 5)
        if lines and all(APACHE_ERROR.match(line) for line in lines):
            return 75
        return 0

    def records(self, stream: IO[bytes], path: str, quarantine: Quarantine) -> Iterator[Record]:
        for lineno, raw, line in self.text_lines(stream, path, quarantine):
            m = APACHE_ERROR.match(line)
            if m is None:
                quarantine.add(path, lineno, "apache_error: not an error log line", raw)
                continue
            try:
                dt = datetime(
                    int(m["year"]),
                    MONTHS[m["mon"]],
                    int(m["day"]),
                    int(m["clock"][0:2]),
                    int(m["clock"][3:5]),
                    int(m["clock"][6:8]),
                    int(m["frac"][1:].ljust(6, "0")) if m["frac"] else 0,
                    tzinfo=self.tz,
                )
            except (ValueError, KeyError) as exc:
                quarantine.add(path, lineno, f"apache_error: bad timestamp: {exc}", raw)
                continue
            time = dt.astimezone(UTC).isoformat().replace("+00:00", "Z")
            fields = {
                "timestamp": time,
                "level": m["level"],
                "module": m["module"] or None,
                "pid": int(m["pid"]) if m["pid"] else None,
                "client": m["client"],
                "message": m["message"] or "",
            }
            yield fields, lineno, time, None
