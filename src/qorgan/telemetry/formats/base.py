"""The interface every log format implements.

A format turns a byte stream into :class:`~qorgan.telemetry.batch.EventBatch` objects of at most
``batch_size`` events. To add one, subclass :class:`Format` in a module of this package named
after it, declare ``name``, ``description``, ``logsource`` and ``schema`` (the fields it emits,
with their meaning), implement ``sniff`` and either ``records`` (a format read record by record:
:meth:`Format.read` batches what it yields) or ``read`` itself, and list the class in
``formats/__init__.py``. A record that cannot be read goes to the quarantine with its reason
and the run goes on; ``read`` never raises for bad content.

A format reads lines with :meth:`Format.text_lines` or :meth:`Format.numbered_lines`, which
never hold more than ``max_record_bytes`` of a line: a longer one is quarantined and skipped.
Times written without a zone are read in ``tz``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, tzinfo
from functools import partial
from typing import IO, Any, ClassVar

from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.options import DEFAULT_MAX_RECORD_BYTES, DEFAULT_SPAN_BYTES, size_text
from qorgan.telemetry.quarantine import Quarantine

DEFAULT_BATCH_SIZE = 20_000

#: English month abbreviations, as text logs write them -> month number.
MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


@dataclass(slots=True)
class Span:
    """Part of a file of lines: the lines that start in ``[start, end)`` (``start`` and ``end``
    multiples of the format's ``span_bytes``; the last span ends nowhere). A format that can be
    read in spans also ends its batches where a span ends, so that a file's batches are the
    same read whole or in spans. Their
    record numbers count from 1 at the span's first line; the reader sets ``lines`` to how
    many lines the span held, so that the numbers of the next span can be put right."""

    start: int
    end: int
    lines: int = 0


#: One event as a format reads it: ``(fields, record number, time, host)``.
Record = tuple[dict[str, Any], int, str | None, str | None]
#: What a record stream yields: a :data:`Record`, or a logsource dict that tags the records
#: after it (the batch in progress ends there).
RecordOrLogsource = Record | dict[str, str]


class Format(ABC):
    """A log format: how to recognise it and how to read it into normalised events."""

    name: ClassVar[str]
    description: ClassVar[str]
    #: Tags applied to every batch (``product``/``service``/``category``), used for rule selection.
    logsource: ClassVar[dict[str, str]] = {}
    #: The fields this format emits: name -> meaning. Per-record fields not listed may appear too.
    schema: ClassVar[dict[str, str]]

    def __init__(
        self,
        *,
        tz: tzinfo = UTC,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        span_bytes: int = DEFAULT_SPAN_BYTES,
    ) -> None:
        self.tz = tz
        self.max_record_bytes = max_record_bytes
        self.span_bytes = span_bytes

    @classmethod
    @abstractmethod
    def sniff(cls, head: bytes, path: str) -> int:
        """How sure (0-100) we are that a file starting with ``head`` is in this format."""

    def read(
        self,
        stream: IO[bytes],
        path: str,
        quarantine: Quarantine,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Iterator[EventBatch]:
        """Yield batches of events read from ``stream``; quarantine what cannot be read.

        By default, the batches of what :meth:`records` yields."""
        return self.batches(path, self.records(stream, path, quarantine), batch_size)

    def records(
        self, stream: IO[bytes], path: str, quarantine: Quarantine
    ) -> Iterator[RecordOrLogsource]:
        """The records of ``stream`` in order, for :meth:`read` to batch; quarantine what cannot
        be read. A format that overrides ``read`` need not implement this."""
        raise NotImplementedError(f"{type(self).__name__} implements neither records nor read")

    def new_batch(self, path: str, logsource: dict[str, str] | None = None) -> EventBatch:
        return EventBatch(path=path, format=self.name, logsource=dict(logsource or self.logsource))

    def batches(
        self,
        path: str,
        records: Iterable[RecordOrLogsource],
        batch_size: int,
        logsource: dict[str, str] | None = None,
    ) -> Iterator[EventBatch]:
        """``records`` in batches of at most ``batch_size`` events, tagged with ``logsource``
        (default: the format's). A logsource dict among the records ends the batch in progress
        and tags the batches after it; empty batches are not yielded."""
        batch = self.new_batch(path, logsource)
        for item in records:
            if type(item) is dict:
                if batch.events:
                    yield batch
                logsource = item
                batch = self.new_batch(path, logsource)
                continue
            batch.append(*item)
            if len(batch) >= batch_size:
                yield batch
                batch = self.new_batch(path, logsource)
        if batch.events:
            yield batch

    def numbered_lines(self, stream: IO[bytes], first: int = 1) -> Iterator[tuple[int, bytes]]:
        """``(line number, raw line)``, each read at most ``max_record_bytes + 1`` bytes at a
        time (a C iterator: nothing is added per line). A line longer than the limit comes
        cut, ``max_record_bytes + 1`` bytes without its end: pass it to
        :meth:`skip_long_line`. The test, inlined in hot loops, is
        ``len(raw) > self.max_record_bytes and raw[-1] != 10``."""
        return enumerate(iter(partial(stream.readline, self.max_record_bytes + 1), b""), first)

    def skip_long_line(
        self, stream: IO[bytes], path: str, quarantine: Quarantine, lineno: int, head: bytes
    ) -> int:
        """Quarantine the too-long line ``lineno`` (``head`` is its start) and read on to its
        end, keeping nothing of it; the bytes read past ``head``."""
        skipped = skip_line(stream.readline, self.max_record_bytes + 1)
        quarantine.add(path, lineno, self.too_long(), head)
        return skipped

    def text_lines(
        self, stream: IO[bytes], path: str, quarantine: Quarantine
    ) -> Iterator[tuple[int, bytes, str]]:
        """``(line number, raw line, decoded line without its end)`` of every non-blank line;
        a line longer than ``max_record_bytes`` is quarantined with its number and skipped in
        pieces, never held whole."""
        limit = self.max_record_bytes
        for lineno, raw in self.numbered_lines(stream):
            if len(raw) > limit and raw[-1] != 10:
                self.skip_long_line(stream, path, quarantine, lineno, raw)
            elif raw.strip():
                yield lineno, raw, raw.decode("utf-8", "replace").rstrip("\r\n")

    def too_long(self, what: str = "line") -> str:
        """The quarantine reason of a record over the limit."""
        return f"{self.name}: {what} longer than {size_text(self.max_record_bytes)}"


def skip_line(readline: Any, cap: int) -> int:
    """Read on to the end of the current line, ``cap`` bytes at a time, keeping nothing; the
    bytes read."""
    read = 0
    while True:
        chunk = readline(cap)
        read += len(chunk)
        if not chunk or chunk[-1] == 10:
            return read


def head_lines(head: bytes, limit: int) -> list[str]:
    """Up to ``limit`` complete non-empty lines of a sniffed head (the last may be cut)."""
    chunks = head.split(b"\n")
    if len(chunks) > 1:
        chunks = chunks[:-1]
    out = []
    for chunk in chunks:
        text = chunk.decode("utf-8", "replace").strip("\r").lstrip("\ufeff")
        if text.strip():
            out.append(text)
            if len(out) >= limit:
                break
    return out
