"""JSON events: JSON lines, a JSON array of objects, or concatenated JSON documents (the
pretty-printed output of ``evtx_dump``/``jq``), plain or gzip.

Windows records in the ``evtx`` parser's shape (``{"Event": {"System": ...}}``, or its
``{"event_record_id", "timestamp", "data"}`` wrapper) are normalised like EVTX files. Any other
object is flattened: nested objects become dotted names (``{"id": {"orig_h": x}}`` ->
``id.orig_h``), lists are kept. JSON lines stream in bounded memory; arrays and concatenated
documents are read whole. A line that is not a JSON object is quarantined. The record number
of an event is its line (JSON lines) or its position in the file (arrays, concatenations).
"""

from __future__ import annotations

import itertools
import json as stdjson
from collections.abc import Iterator
from typing import IO, Any

import orjson

from qorgan.telemetry import windows
from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.formats.base import DEFAULT_BATCH_SIZE, Format
from qorgan.telemetry.quarantine import Quarantine

#: Keys commonly carrying an event's time and host in generic JSON logs, tried in order.
TIME_KEYS = ("@timestamp", "timestamp", "ts", "time", "eventTime", "EventTime", "date")
BOM = b"\xef\xbb\xbf"
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


class Normaliser:
    """Turns one decoded JSON document into (fields, time, host)."""

    def __init__(self) -> None:
        self.kind: str | None = None
        self.logsource: dict[str, str] = {}

    def __call__(self, doc: Any) -> tuple[dict[str, Any], Any, Any]:
        if type(doc) is not dict:
            raise TypeError(f"expected a JSON object, got {type(doc).__name__}")
        if "Event" in doc:
            fields, time, host = windows.normalise(doc)
            self.logsource = {"product": "windows"}
            return fields, time, host
        if "data" in doc and "event_record_id" in doc:
            inner = doc["data"]
            inner = orjson.loads(inner) if isinstance(inner, str | bytes) else inner
            fields, time, host = windows.normalise(inner)
            self.logsource = {"product": "windows"}
            return fields, time, host
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
    ) -> Iterator[EventBatch]:
        first = stream.readline()
        if first.startswith(BOM):
            first = first[len(BOM) :]
        head = first.strip()
        if head.startswith(b"[") or head == b"{":
            # An array, or pretty-printed documents (jq, evtx_dump): "{" alone on its line.
            yield from self._read_whole(first + stream.read(), path, quarantine, batch_size)
            return
        yield from self._read_lines(first, stream, path, quarantine, batch_size)

    def _read_lines(
        self,
        first: bytes,
        stream: IO[bytes],
        path: str,
        quarantine: Quarantine,
        batch_size: int,
    ) -> Iterator[EventBatch]:
        normalise = Normaliser()
        loads = orjson.loads
        batch = self.new_batch(path)
        events, records, times, hosts = batch.events, batch.records, batch.times, batch.hosts
        for lineno, line in enumerate(itertools.chain((first,), stream), 1):
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
            events.append(fields)
            records.append(lineno)
            times.append(time)
            hosts.append(host)
            if len(events) >= batch_size:
                batch.logsource.update(normalise.logsource)
                yield batch
                batch = self.new_batch(path)
                events, records, times, hosts = (
                    batch.events,
                    batch.records,
                    batch.times,
                    batch.hosts,
                )
        if events:
            batch.logsource.update(normalise.logsource)
            yield batch

    def _read_whole(
        self, data: bytes, path: str, quarantine: Quarantine, batch_size: int
    ) -> Iterator[EventBatch]:
        normalise = Normaliser()
        batch: EventBatch | None = None
        for position, doc, error in _documents(data):
            if error is not None:
                quarantine.add(path, position, f"json: {error}", data[:200])
                continue
            try:
                # The standard decoder accepts lone surrogates, which are not text: refuse them
                # here as the JSON-lines reader (orjson) does.
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
                quarantine.add(path, position, f"json: {_reason(exc)}", repr(doc)[:200])
                continue
            if batch is None:
                batch = self.new_batch(path, normalise.logsource)
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


def _documents(data: bytes) -> Iterator[tuple[int, Any, str | None]]:
    """Documents of an array or of a concatenation, numbered from 1; stops at the first
    undecodable point (the rest of the file is reported once, not lost silently)."""
    # Undecodable bytes become lone surrogates: the documents holding them are refused one by
    # one (they cannot be re-encoded), the others are read.
    text = data.decode("utf-8-sig", "surrogateescape")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            docs = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            yield 1, None, f"invalid JSON array: {exc}"
            return
        for i, doc in enumerate(docs, 1):
            yield i, doc, None
        return
    decoder = stdjson.JSONDecoder()
    pos, n, size = 0, 0, len(text)
    while True:
        while pos < size and text[pos] in " \t\r\n":
            pos += 1
        if pos >= size:
            return
        n += 1
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except (stdjson.JSONDecodeError, RecursionError) as exc:
            yield n, None, f"invalid JSON from document {n} on: {exc}"
            return
        yield n, doc, None
