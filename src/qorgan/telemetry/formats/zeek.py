"""Zeek logs, in Zeek's JSON (one object per line) or its default TSV layout.

Field names are Zeek's own (``ts``, ``uid``, ``id.orig_h``, ``id.resp_p``, ``query``,
``answers``...), so Sigma's Zeek rules apply as written. The log type (``conn``, ``dns``,
``http``...) becomes the batch tags ``{"product": "zeek", "service": <type>}``; it comes from the
``#path`` header in TSV, from a ``_path`` key in JSON, else from the file name (``dns.json.gz``,
``dns.09:00:00-10:00:00.log.gz`` -> ``dns``). A file mixing log types yields one batch run per
type.

TSV values are typed by the ``#types`` header: ``count``/``int``/``port`` -> int,
``double``/``interval``/``time`` -> float, ``bool`` ``T``/``F`` -> bool, ``set[..]``/``vector[..]``
-> lists split on ``#set_separator``; the ``#unset_field`` (``-``) is None and the
``#empty_field`` (``(empty)``) an empty string or list. String escapes (``\\x09``) are kept as
logged. ``ts`` keeps Zeek's value (epoch seconds, or ISO text when Zeek wrote ISO 8601 JSON);
the event time is ``ts`` as ISO 8601 UTC text. Host is None: a Zeek record is about a
connection, not a host.

A line that is not a JSON object, or a TSV row whose column count or values do not fit the
header, is quarantined.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import PurePath
from typing import IO, Any, ClassVar

import orjson

from qorgan.telemetry.formats.base import Format, RecordOrLogsource
from qorgan.telemetry.formats.json import flatten
from qorgan.telemetry.quarantine import Quarantine

SCHEMA: dict[str, str] = {
    "*": "every Zeek field, named as Zeek names it (ts, uid, id.orig_h, id.resp_p, ...)",
    "ts": "Zeek's timestamp as logged: epoch seconds (float) or ISO 8601 text",
    "_path": "log type, when Zeek wrote it (JSON streaming logs)",
}

#: With ``ts``, any of these marks a JSON object as Zeek's (``_path`` alone does too).
SNIFF_KEYS = ("uid", "id.orig_h")

COLLECTION = re.compile(
    r"""
    (?:set|vector|table)        # container kind
    \[(?P<inner>[^\]]+)\]       # element type
    $
    """,
    re.VERBOSE,
)

_SEPARATOR_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


def _bool(value: str) -> bool:
    if value == "T":
        return True
    if value == "F":
        return False
    raise ValueError(f"not a bool: {value!r}")


def _str(value: str) -> str:
    return value


SCALARS: dict[str, Callable[[str], Any]] = {
    "count": int,
    "int": int,
    "port": int,
    "double": float,
    "interval": float,
    "time": float,
    "bool": _bool,
}


def log_type_from_path(path: str) -> str | None:
    """``/x/dns.09:00:00-10:00:00.log.gz`` -> ``dns``."""
    stem = PurePath(path).name.split(".", 1)[0]
    return stem or None


def iso_time(ts: Any) -> str | None:
    """Zeek's ``ts`` (epoch seconds or ISO 8601 text) as ISO 8601 UTC text."""
    if type(ts) is float or type(ts) is int:
        try:
            return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
        except (ValueError, OverflowError, OSError):
            return None
    if type(ts) is str:
        if ts.endswith("Z") and len(ts) >= 20 and ts[10] == "T":
            return ts
        try:
            dt = datetime.fromisoformat(ts)
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return None


class TsvHeader:
    """The state that Zeek's ``#`` directives set for the rows that follow them."""

    def __init__(self) -> None:
        self.separator = "\t"
        self.set_separator = ","
        self.empty = "(empty)"
        self.unset = "-"
        self.path: str | None = None
        self.fields: list[str] | None = None
        self.converters: list[Callable[[str], Any]] | None = None
        self.types: list[str] | None = None

    def directive(self, line: str) -> None:
        if line.startswith("#separator"):
            value = line[len("#separator") :].strip(" ")
            self.separator = _SEPARATOR_ESCAPE.sub(lambda m: chr(int(m[1], 16)), value) or "\t"
            return
        name, _, value = line[1:].partition(self.separator)
        if name == "set_separator":
            self.set_separator = value
        elif name == "empty_field":
            self.empty = value
        elif name == "unset_field":
            self.unset = value
        elif name == "path":
            self.path = value
        elif name == "fields":
            self.fields = value.split(self.separator)
            self.converters = None
        elif name == "types":
            self.types = value.split(self.separator)
            self.converters = [self._converter(t) for t in self.types]

    def _converter(self, type_name: str) -> Callable[[str], Any]:
        m = COLLECTION.match(type_name)
        if m is None:
            return SCALARS.get(type_name, _str)
        element = SCALARS.get(m["inner"], _str)
        set_separator, empty = self.set_separator, self.empty

        def convert(value: str) -> list[Any]:
            if value == empty:
                return []
            return [element(item) for item in value.split(set_separator)]

        return convert

    def row(self, line: str) -> dict[str, Any]:
        """One data row as a dict; raises ValueError when it does not fit the header."""
        if self.fields is None:
            raise ValueError("data row before a #fields header")
        values = line.split(self.separator)
        if len(values) != len(self.fields):
            raise ValueError(f"{len(values)} values for {len(self.fields)} #fields columns")
        converters = self.converters
        unset, empty = self.unset, self.empty
        fields: dict[str, Any] = {}
        if converters is None or len(converters) != len(values):
            for name, value in zip(self.fields, values, strict=True):
                fields[name] = None if value == unset else value
            return fields
        for name, value, convert in zip(self.fields, values, converters, strict=True):
            if value == unset:
                fields[name] = None
            elif convert is _str:
                fields[name] = "" if value == empty else value
            else:
                try:
                    fields[name] = convert(value)
                except ValueError:
                    raise ValueError(f"bad value for {name}: {value[:40]!r}") from None
        return fields


class ZeekFormat(Format):
    name = "zeek"
    description = "Zeek logs: JSON lines or the default TSV layout (plain or gzip)"
    logsource: ClassVar[dict[str, str]] = {"product": "zeek"}
    schema = SCHEMA

    @classmethod
    def sniff(cls, head: bytes, path: str) -> int:
        text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if text.startswith((b"#separator", b"#path")):
            return 95
        if not text.startswith(b"{"):
            return 0
        first = text.split(b"\n", 1)[0]
        try:
            doc = orjson.loads(first)
        except orjson.JSONDecodeError:
            return 0
        if type(doc) is not dict:
            return 0
        if "_path" in doc or ("ts" in doc and any(key in doc for key in SNIFF_KEYS)):
            return 80
        return 0

    def records(
        self, stream: IO[bytes], path: str, quarantine: Quarantine
    ) -> Iterator[RecordOrLogsource]:
        """Records, each run of one log type preceded by its tags."""
        default_type = log_type_from_path(path)
        header: TsvHeader | None = None
        started = False
        current: str | None = None
        loads = orjson.loads
        limit = self.max_record_bytes
        for lineno, raw in self.numbered_lines(stream):
            if len(raw) > limit and raw[-1] != 10:
                self.skip_long_line(stream, path, quarantine, lineno, raw)
                continue
            if not raw.strip():
                continue
            if raw.startswith(b"#"):
                if header is None:
                    header = TsvHeader()
                header.directive(raw.decode("utf-8", "replace").rstrip("\r\n"))
                continue
            if header is not None and header.fields is not None:
                try:
                    fields = header.row(raw.decode("utf-8", "replace").rstrip("\r\n"))
                except ValueError as exc:
                    quarantine.add(path, lineno, f"zeek: {exc}", raw)
                    continue
                log_type = header.path or default_type
            else:
                try:
                    doc = loads(raw)
                except orjson.JSONDecodeError as exc:
                    quarantine.add(path, lineno, f"zeek: invalid JSON: {exc}", raw)
                    continue
                if type(doc) is not dict:
                    quarantine.add(
                        path, lineno, f"zeek: expected a JSON object, got {type(doc).__name__}", raw
                    )
                    continue
                fields = flatten(doc)
                log_type = fields.get("_path") or default_type
                if type(log_type) is not str:
                    log_type = default_type
            if not started or log_type != current:
                started, current = True, log_type
                yield {"product": "zeek", "service": log_type} if log_type else {"product": "zeek"}
            yield fields, lineno, iso_time(fields.get("ts")), None
