"""JSON events: JSON lines, a JSON array of objects, or concatenated JSON documents (the
pretty-printed output of ``evtx_dump``/``jq``), plain or gzip.

Windows events are recognised document by document and normalised like EVTX files (see
:mod:`qorgan.telemetry.windows`), tagged ``product: windows``: the ``evtx`` parser's shape
(``{"Event": {"System": ...}}``, or its ``{"event_record_id", "timestamp", "data"}`` wrapper);
Winlogbeat's (``winlog.event_id`` and ``winlog.channel``); and NXLog ``im_msvistalog`` with
``to_json()`` (a numeric ``EventID``, a ``Channel``, and ``SourceName``, ``SourceModuleType`` or
``Hostname``). So a Windows fleet can send through these agents to the HTTP ingest, one event a
document, or their files can be hunted. NXLog's ``EventTime`` has no zone: it is read in the
format's ``tz`` (each live source sets its own; ``qorgan hunt --timezone``). Any other object is
flattened: nested objects become dotted names (``{"id": {"orig_h": x}}`` -> ``id.orig_h``),
lists are kept. A line that is not a JSON object is quarantined. A batch holds events of one
kind only (Windows or not), so rules for Windows never see the other JSON of a mixed file. The
record number of an event is its line (JSON lines) or its position in the file (arrays,
concatenations).

Everything streams in bounded memory. JSON lines are read line by line, a line longer than
``max_record_bytes`` quarantined and skipped unread. Arrays and concatenated documents are
decoded one document (or array element) at a time from a window of the text that holds at most
one document and a chunk: each is decoded with the standard library's ``raw_decode``, which
says where the document ends, so reading resumes exactly after it. A document longer than the
limit (counted in characters) is quarantined with its number and skipped by a small scanner
that keeps nothing of it. ijson was considered: it streams array items quickly, but tells
neither where an item ended in the input nor stops short of building an oversized one, so it
could not skip one and go on. Invalid JSON in an array or concatenation is reported once, from
that document on (nothing after it can be told apart reliably).
"""

from __future__ import annotations

import codecs
import itertools
import json as stdjson
import re
from collections.abc import Iterator
from datetime import UTC, tzinfo
from typing import IO, Any

import orjson

from qorgan.telemetry import windows
from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.formats.base import DEFAULT_BATCH_SIZE, Format, Span, skip_line
from qorgan.telemetry.options import size_text
from qorgan.telemetry.quarantine import Quarantine

#: Keys commonly carrying an event's time and host in generic JSON logs, tried in order.
TIME_KEYS = ("@timestamp", "timestamp", "ts", "time", "eventTime", "EventTime", "date")
BOM = b"\xef\xbb\xbf"
#: Bytes read at a time by the document reader.
CHUNK = 1 << 20
HOST_KEYS = ("host", "hostname", "Computer", "host.name", "agent.hostname")


def flatten(doc: dict[str, Any], prefix: str = "", out: dict[str, Any] | None = None) -> dict:
    """Nested objects to dotted keys; lists and scalars kept as they are."""
    if out is None:
        out = {}
    for key, value in doc.items():
        name = prefix + key
        if type(value) is dict:
            flatten(value, name + ".", out)
        else:
            out[name] = value
    return out


#: The tags of a batch of Windows events, and of other JSON.
WINDOWS: dict[str, str] = {"product": "windows"}
OTHER: dict[str, str] = {}


class Normaliser:
    """Turns one decoded JSON document into (fields, time, host); ``logsource`` then says what
    the document was (:data:`WINDOWS` or :data:`OTHER`, compared by identity)."""

    def __init__(self, tz: tzinfo = UTC) -> None:
        self.tz = tz
        self.logsource: dict[str, str] = OTHER

    def __call__(self, doc: Any) -> tuple[dict[str, Any], Any, Any]:
        if type(doc) is not dict:
            raise TypeError(f"expected a JSON object, got {type(doc).__name__}")
        self.logsource = WINDOWS
        if "Event" in doc:
            return windows.normalise(doc)
        if "data" in doc and "event_record_id" in doc:
            inner = doc["data"]
            inner = orjson.loads(inner) if isinstance(inner, str | bytes) else inner
            return windows.normalise(inner)
        if windows.is_winlogbeat(doc):
            return windows.from_winlogbeat(doc)
        if windows.is_nxlog(doc):
            return windows.from_nxlog(doc, self.tz)
        self.logsource = OTHER
        fields = flatten(doc)
        time = next((fields[k] for k in TIME_KEYS if k in fields), None)
        host = next((fields[k] for k in HOST_KEYS if k in fields), None)
        return fields, time, host


class JsonFormat(Format):
    name = "json"
    description = "JSON lines, JSON arrays or concatenated JSON documents (plain or gzip)"
    schema = {
        "*": "every key of the object; nested objects as dotted names",
        **windows.SCHEMA,
    }

    @classmethod
    def sniff(cls, head: bytes, path: str) -> int:
        text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if text.startswith((b"{", b"[")):
            return 60
        return 0

    def read(
        self,
        stream: IO[bytes],
        path: str,
        quarantine: Quarantine,
        batch_size: int = DEFAULT_BATCH_SIZE,
        span: Span | None = None,
    ) -> Iterator[EventBatch]:
        """The file's batches; with ``span`` (JSON lines only: :meth:`in_lines`), those of the
        lines that start in it, numbered from the span's start, ``span.lines`` set at the end.
        Batches end at every multiple of ``span_bytes`` either way."""
        cap = self.max_record_bytes + 1
        if span is not None and span.start > 0:
            stream.seek(span.start - 1)  # a line starts at span.start if this byte ends one
            pos = span.start - 1 + skip_line(stream.readline, cap)
            yield from self._read_lines(b"", stream, path, quarantine, batch_size, 0, pos, span)
            return
        first = stream.readline(cap)
        whole = len(first) < cap or first[-1] == 10
        pos = 0
        if first.startswith(BOM):
            first, pos = first[len(BOM) :], len(BOM)
        head = first.strip()
        if head.startswith(b"[") or head == b"{":
            # An array, or pretty-printed documents (jq, evtx_dump): "{" alone on its line.
            if span is not None:
                raise ValueError("only JSON lines can be read in spans")
            yield from self._read_documents(first, stream, path, quarantine, batch_size)
            return
        lineno = 0
        if not whole:
            pos += len(first) + self.skip_long_line(stream, path, quarantine, 1, first)
            first, lineno = b"", 1
        yield from self._read_lines(first, stream, path, quarantine, batch_size, lineno, pos, span)

    @staticmethod
    def in_lines(first: bytes) -> bool:
        """Whether a file whose first line is ``first`` is JSON lines (not an array or
        pretty-printed documents), and so can be read in spans."""
        head = first.removeprefix(BOM).strip()
        return not (head.startswith(b"[") or head == b"{")

    def _read_lines(
        self,
        first: bytes,
        stream: IO[bytes],
        path: str,
        quarantine: Quarantine,
        batch_size: int,
        lineno: int = 0,
        pos: int = 0,
        span: Span | None = None,
    ) -> Iterator[EventBatch]:
        """JSON lines, after ``lineno`` lines already read; ``first`` is the next one, at byte
        ``pos``. A batch ends where a line starts in the next span (``span_bytes``); with
        ``span``, reading ends there too."""
        normalise = Normaliser(self.tz)
        loads = orjson.loads
        batch: EventBatch | None = None
        kind = OTHER  # the logsource of ``batch``
        events: list[dict[str, Any]] = []
        records: list[int] = []
        times: list[Any] = []
        hosts: list[Any] = []
        limit = self.max_record_bytes
        end = span.end if span is not None else 1 << 62
        every = self.span_bytes
        cut = min((pos // every + 1) * every, end)
        lines: Iterator[tuple[int, bytes]] = self.numbered_lines(stream, lineno + 1)
        if first:
            lines = itertools.chain(((lineno + 1, first),), self.numbered_lines(stream, lineno + 2))
        for lineno, line in lines:
            start = pos
            pos += len(line)
            if start >= cut:
                if start >= end:
                    lineno -= 1  # the next span's first line
                    break
                cut = (start // every + 1) * every
                if batch is not None:
                    yield batch
                    batch = None
            if len(line) > limit and line[-1] != 10:
                pos += self.skip_long_line(stream, path, quarantine, lineno, line)
                continue
            try:
                fields, time, host = normalise(loads(line))
            except (
                orjson.JSONDecodeError,
                KeyError,
                TypeError,
                AttributeError,
                RecursionError,
            ) as exc:
                if line.strip():
                    quarantine.add(path, lineno, f"json: {_reason(exc)}", line)
                continue
            if batch is None or normalise.logsource is not kind:
                if batch is not None:
                    yield batch
                kind = normalise.logsource
                batch = self.new_batch(path, kind)
                events, records, times, hosts = (
                    batch.events,
                    batch.records,
                    batch.times,
                    batch.hosts,
                )
            events.append(fields)
            records.append(lineno)
            times.append(time)
            hosts.append(host)
            if len(events) >= batch_size:
                yield batch
                batch = None
        if batch is not None:
            yield batch
        if span is not None:
            span.lines = lineno

    def _read_documents(
        self,
        first: bytes,
        stream: IO[bytes],
        path: str,
        quarantine: Quarantine,
        batch_size: int,
    ) -> Iterator[EventBatch]:
        normalise = Normaliser(self.tz)
        batch: EventBatch | None = None
        batch_kind = OTHER
        documents = Documents(stream, first, self.max_record_bytes)
        for position, doc, error in documents:
            if error is not None:
                quarantine.add(path, position, f"json: {error}", documents.excerpt)
                continue
            try:
                # The standard decoder accepts lone surrogates, which are not text, and
                # integers beyond 64 bits: refuse them here as the JSON-lines reader (orjson)
                # does.
                orjson.dumps(doc)
                fields, time, host = normalise(doc)
            except (
                orjson.JSONDecodeError,
                orjson.JSONEncodeError,
                KeyError,
                TypeError,
                AttributeError,
                RecursionError,
            ) as exc:
                quarantine.add(path, position, f"json: {_reason(exc)}", documents.excerpt)
                continue
            if batch is not None and normalise.logsource is not batch_kind:
                yield batch
                batch = None
            if batch is None:
                batch_kind = normalise.logsource
                batch = self.new_batch(path, batch_kind)
            batch.append(fields, position, time, host)
            if len(batch) >= batch_size:
                yield batch
                batch = None
        if batch is not None:
            yield batch


def _reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing key {exc}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc) or type(exc).__name__


_SPACE = re.compile(r"[ \t\r\n]*")
#: Where a document's end may be, outside and inside strings (see :class:`_Skipper`).
_STRUCTURE = re.compile(r'["{}\[\]]')
_IN_STRING = re.compile(r'["\\]')
_BARE_END = re.compile(r"[,\]}\s]")


class Documents:
    """The documents of a JSON text read from a stream in chunks: concatenated documents, and
    the elements of top-level arrays, numbered from 1, as ``(number, document, None)`` or
    ``(number, None, reason)``.

    The window ``text[pos:]`` holds the undecoded rest of what was read; it grows to hold one
    document and shrinks as documents are taken from it, so it never holds much more than one
    document of at most ``limit`` characters and a chunk. Invalid JSON ends the reading (what
    follows cannot be told apart), reported once; an oversized document is skipped.
    """

    def __init__(self, stream: IO[bytes], first: bytes, limit: int) -> None:
        self.stream = stream
        self.limit = limit
        self.decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.text = self.decoder.decode(first)
        self.pos = 0
        self.eof = False
        self.excerpt = ""
        self._decode = stdjson.JSONDecoder().raw_decode

    def _more(self, at_least: int = CHUNK) -> bool:
        """Read more text onto the window (dropping what was taken); False at the end."""
        if self.eof:
            return False
        data = self.stream.read(max(at_least, CHUNK))
        self.eof = not data
        more = self.decoder.decode(data, final=self.eof)
        self.text = self.text[self.pos :] + more
        self.pos = 0
        return bool(more) or not self.eof

    def _skip_space(self) -> bool:
        """Move past white space; False when the text ends."""
        while True:
            self.pos = _SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.text):
                return True
            if not self._more():
                return False

    def __iter__(self) -> Iterator[tuple[int, Any, str | None]]:
        number = 0
        depth = 0  # top-level arrays open
        while self._skip_space():
            char = self.text[self.pos]
            if depth and char == "]":
                depth -= 1
                self.pos += 1
                continue
            if depth and char == "," and number:
                self.pos += 1
                if not self._skip_space():
                    break
                char = self.text[self.pos]
            if char == "[" and not depth:
                depth += 1
                self.pos += 1
                continue
            number += 1
            self.excerpt = self.text[self.pos : self.pos + 200]
            try:
                doc, end = self._document()
            except _TooLong as exc:
                too_long = f"document {number} longer than {size_text(self.limit)}"
                if exc.end is not None:
                    self.pos = exc.end
                elif not self._skip():
                    yield number, None, f"{too_long}, and cut short"
                    return
                yield number, None, too_long
                continue
            except (stdjson.JSONDecodeError, RecursionError) as exc:
                yield number, None, f"invalid JSON from document {number} on: {exc}"
                return
            self.pos = end
            yield number, doc, None
        if depth:
            yield number + 1, None, "cut short: the array is not closed"

    def _document(self) -> tuple[Any, int]:
        """The document at ``pos`` and where it ends, reading more as it needs."""
        while True:
            start, text = self.pos, self.text
            try:
                doc, end = self._decode(text, start)
            except stdjson.JSONDecodeError as exc:
                # Cut by the end of the window (not by bad JSON): read more and try again.
                cut = exc.pos >= len(text) - 16 or exc.msg.startswith("Unterminated string")
                if not cut or self.eof:
                    raise
                held = len(text) - start
                if held > self.limit:
                    raise _TooLong from None
                # Double what is held (linear time in all), but only just past the limit.
                self._more(min(held, self.limit + 1 - held))
                continue
            if end - start > self.limit:
                raise _TooLong(end)
            if end == len(text) and text[start] not in '{["' and self._more():
                continue  # a number may go on in the next chunk
            return doc, end

    def _skip(self) -> bool:
        """Move past the oversized document at ``pos``, keeping nothing of it; False when the
        text ends first."""
        skipper = _Skipper(self.text[self.pos])
        while True:
            end = skipper.feed(self.text, self.pos)
            if end is not None:
                self.pos = end
                return True
            self.pos = len(self.text)
            if not self._more():
                return False


class _TooLong(Exception):
    """The document at the window's start is longer than the limit; ``end`` is where it ends
    when that is known (it was decoded whole), else None."""

    def __init__(self, end: int | None = None) -> None:
        self.end = end


class _Skipper:
    """Finds where a JSON value ends, fed its text piece by piece; only its nesting depth and
    whether it is inside a string are kept. The value's validity is not checked."""

    def __init__(self, first: str) -> None:
        self.bare = first not in '{["'  # a number or literal: ends at a delimiter
        self.depth = 0
        self.in_string = False
        self.escaped = False

    def feed(self, text: str, pos: int) -> int | None:
        """Where the value ends in ``text`` (scanning from ``pos``), or None if not in it."""
        if self.bare:
            m = _BARE_END.search(text, pos)
            return m.start() if m else None
        size = len(text)
        while pos < size:
            if self.escaped:
                self.escaped = False
                pos += 1
                continue
            if self.in_string:
                m = _IN_STRING.search(text, pos)
                if m is None:
                    return None
                pos = m.end()
                if m.group() == "\\":
                    self.escaped = True
                    continue
                self.in_string = False
                if self.depth == 0:
                    return pos  # a top-level string
                continue
            m = _STRUCTURE.search(text, pos)
            if m is None:
                return None
            pos = m.end()
            char = m.group()
            if char == '"':
                self.in_string = True
            elif char in "{[":
                self.depth += 1
            else:
                self.depth -= 1
                if self.depth <= 0:
                    return pos
        return None
