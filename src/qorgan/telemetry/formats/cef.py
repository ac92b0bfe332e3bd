"""ArcSight Common Event Format (CEF) lines, bare or behind a syslog header.

``CEF:Version|Device Vendor|Device Product|Device Version|Device Event Class ID|Name|Severity|
Extension``: the seven header fields become ``cef_version``, ``device_vendor``,
``device_product``, ``device_version``, ``signature_id``, ``name`` and ``severity`` (text, as
logged: CEF allows ``0``-``10`` or ``Low``..``Very-High``), with ``\\|`` and ``\\\\`` unescaped.
Every extension ``key=value`` pair becomes a field named by its key (``src``, ``dst``, ``spt``,
``suser``, ``act``, ``cs1Label``, ...); values may contain spaces (a key starts at the last space
before the next unescaped ``key=``) and ``\\=``, ``\\\\``, ``\\n``, ``\\r`` are unescaped. The
header fields win over an extension key of the same name.

Time is the ``rt`` extension, else ``end`` (epoch milliseconds or ``MMM dd yyyy HH:mm:ss[.SSS]
[zone]``, UTC when no zone is given), else the syslog header time (see
:mod:`qorgan.telemetry.formats.syslog` for how a year-less header is dated). Host is ``dvchost``,
else the syslog header host name. A line without a well-formed CEF header is quarantined.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, tzinfo
from typing import IO, Any, ClassVar

from qorgan.telemetry.formats.base import MONTHS, Format, Record, head_lines
from qorgan.telemetry.formats.syslog import BsdClock, HeaderParser, reference_time
from qorgan.telemetry.quarantine import Quarantine

SCHEMA: dict[str, str] = {
    "cef_version": "CEF format version (text, e.g. '0')",
    "device_vendor": "Device Vendor",
    "device_product": "Device Product",
    "device_version": "Device Version",
    "signature_id": "Device Event Class ID",
    "name": "event name",
    "severity": "Severity as logged (0-10 or Low/Medium/High/Very-High)",
    "*": "every extension key as is (src, dst, spt, dpt, suser, act, rt, msg, cs1Label, ...)",
}

HEADER = re.compile(
    r"""
    CEF:\s?(?P<version>\d+(?:\.\d+)?)\|     # CEF:0|
    (?P<vendor>(?:[^|\\]|\\.)*)\|           # Device Vendor, '\|' and '\\' escaped
    (?P<product>(?:[^|\\]|\\.)*)\|          # Device Product
    (?P<dversion>(?:[^|\\]|\\.)*)\|         # Device Version
    (?P<sid>(?:[^|\\]|\\.)*)\|              # Device Event Class ID
    (?P<name>(?:[^|\\]|\\.)*)\|             # Name
    (?P<severity>(?:[^|\\]|\\.)*)\|         # Severity
    (?P<ext>.*)                             # Extension
    $
    """,
    re.VERBOSE | re.DOTALL,
)

EXT_KEY = re.compile(
    r"""
    (?:^|(?<=\s))                   # a key starts the extension or follows a space
    (?P<key>[A-Za-z0-9_.\[\]-]+)    # key name (ArcSight keys and vendor 'ad.*' keys)
    =                               # an unescaped '=' (escaped ones are preceded by '\')
    """,
    re.VERBOSE,
)

HEADER_ESCAPE = re.compile(r"\\([|\\])")
VALUE_ESCAPE = re.compile(r"\\([=\\nr|])")
_VALUE_UNESCAPE = {"=": "=", "\\": "\\", "n": "\n", "r": "\r", "|": "|"}

CEF_TIME = re.compile(
    r"""
    (?P<mon>[A-Z][a-z]{2})\x20          # MMM
    (?P<day>\d{1,2})\x20                # dd
    (?:(?P<year>\d{4})\x20)?            # yyyy, optional in the spec
    (?P<clock>\d{2}:\d{2}:\d{2})        # HH:mm:ss
    (?:\.(?P<ms>\d{1,3}))?              # .SSS
    (?:\x20(?P<zone>\S+))?              # zone: Z, UTC, GMT or +hh:mm
    $
    """,
    re.VERBOSE,
)


def _unescape_header(value: str) -> str:
    return HEADER_ESCAPE.sub(r"\1", value) if "\\" in value else value


def _unescape_value(value: str) -> str:
    if "\\" not in value:
        return value
    return VALUE_ESCAPE.sub(lambda m: _VALUE_UNESCAPE[m[1]], value)


def parse_extension(ext: str, out: dict[str, Any]) -> None:
    """``key=value`` pairs of a CEF extension into ``out``; text before the first key is
    kept as ``cef_extension_prefix``."""
    matches = list(EXT_KEY.finditer(ext))
    if not matches:
        if ext.strip():
            out["cef_extension_prefix"] = ext.strip()
        return
    if matches[0].start() and ext[: matches[0].start()].strip():
        out["cef_extension_prefix"] = ext[: matches[0].start()].strip()
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(ext)
        value = ext[m.end() : end].rstrip(" \t\r\n")
        out[m["key"]] = _unescape_value(value)


def cef_time(value: Any, default_year: int) -> str | None:
    """A CEF ``rt``/``end`` value as ISO 8601 UTC text, or None when it is not a time."""
    if type(value) is not str or not value:
        return None
    if value.isdigit():
        try:
            seconds = int(value) / 1000 if len(value) > 11 else int(value)
            dt = datetime.fromtimestamp(seconds, UTC)
        except (ValueError, OverflowError, OSError):
            return None
        return dt.isoformat().replace("+00:00", "Z")
    m = CEF_TIME.match(value)
    if m is None:
        return None
    zone = m["zone"]
    tz: tzinfo = UTC
    if zone and zone not in ("Z", "UTC", "GMT"):
        try:
            tz = datetime.fromisoformat(f"2000-01-01T00:00:00{zone}").tzinfo or UTC
        except ValueError:
            return None
    try:
        dt = datetime(
            int(m["year"]) if m["year"] else default_year,
            MONTHS[m["mon"]],
            int(m["day"]),
            int(m["clock"][0:2]),
            int(m["clock"][3:5]),
            int(m["clock"][6:8]),
            int(m["ms"].ljust(3, "0")) * 1000 if m["ms"] else 0,
            tzinfo=tz,
        )
    except (ValueError, KeyError):  # KeyError: not a month name ("Fab")
        return None
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


class CefFormat(Format):
    name = "cef"
    description = "ArcSight Common Event Format, bare or behind a syslog header"
    logsource: ClassVar[dict[str, str]] = {"product": "cef"}
    schema = SCHEMA

    def __init__(self, year: int | None = None, tz: tzinfo = UTC, **options: Any) -> None:
        super().__init__(tz=tz, **options)
        self.year = year

    @classmethod
    def sniff(cls, head: bytes, path: str) -> int:
        lines = head_lines(head, 5)
        if not lines:
            return 0
        hits = 0
        for line in lines:
            start = line.find("CEF:")
            if start >= 0 and HEADER.match(line, start):
                hits += 1
        if hits == len(lines):
            return 90
        return 60 if hits * 2 > len(lines) else 0

    def records(self, stream: IO[bytes], path: str, quarantine: Quarantine) -> Iterator[Record]:
        reference = reference_time(path, self.year)
        syslog_header = HeaderParser(BsdClock(reference, self.tz))
        for lineno, raw, line in self.text_lines(stream, path, quarantine):
            start = line.find("CEF:")
            m = HEADER.match(line, start) if start >= 0 else None
            if m is None:
                reason = "no CEF header" if start < 0 else "malformed CEF header"
                quarantine.add(path, lineno, f"cef: {reason}", raw)
                continue
            prefix_time = prefix_host = None
            if start > 0:
                prefix = syslog_header(line[:start].rstrip() + " x")
                if prefix is not None:
                    prefix_time, prefix_host = prefix["timestamp"], prefix["hostname"]
            fields: dict[str, Any] = {}
            parse_extension(m["ext"], fields)
            fields["cef_version"] = m["version"]
            fields["device_vendor"] = _unescape_header(m["vendor"])
            fields["device_product"] = _unescape_header(m["product"])
            fields["device_version"] = _unescape_header(m["dversion"])
            fields["signature_id"] = _unescape_header(m["sid"])
            fields["name"] = _unescape_header(m["name"])
            fields["severity"] = _unescape_header(m["severity"])
            time = (
                cef_time(fields.get("rt"), reference.year)
                or cef_time(fields.get("end"), reference.year)
                or prefix_time
            )
            host = fields.get("dvchost") or prefix_host
            yield fields, lineno, time, host
