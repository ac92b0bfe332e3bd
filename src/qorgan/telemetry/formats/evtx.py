"""Windows EVTX files, read with the ``evtx`` package (bindings to the Rust ``evtx`` parser).

Each record is normalised by :mod:`qorgan.telemetry.windows`; the record number is the EVTX
``event_record_id``. Records the parser cannot decode (truncated chunks, bad templates) are
quarantined with the parser's message; the remaining records of the file are still read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any, ClassVar

import evtx
import orjson

from qorgan.telemetry import windows
from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.formats.base import DEFAULT_BATCH_SIZE, Format, Record
from qorgan.telemetry.quarantine import Quarantine

MAGIC = b"ElfFile\x00"
CHUNK_MAGIC = b"ElfChnk\x00"
FILE_HEADER_BYTES = 128
HEADER_BLOCK = 4096
CHUNK_BYTES = 65536
CHUNK_HEADER_BYTES = 40


class EvtxFormat(Format):
    name = "evtx"
    description = "Windows event log files (.evtx)"
    logsource: ClassVar[dict[str, str]] = {"product": "windows"}
    schema = windows.SCHEMA

    @classmethod
    def sniff(cls, head: bytes, path: str) -> int:
        return 100 if head.startswith(MAGIC) else 0

    def read(
        self,
        stream: IO[bytes],
        path: str,
        quarantine: Quarantine,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Iterator[EventBatch]:
        expected = chunk_record_ids(stream, path, quarantine)
        seen: set[int] = set()
        try:
            parser = evtx.PyEvtxParser(stream)
        except (OSError, RuntimeError, ValueError) as exc:
            quarantine.add(path, 0, f"evtx: not a readable EVTX file: {exc}")
            return
        yield from self.batches(path, _records(parser, path, quarantine, seen), batch_size)
        for chunk, first, last in expected:
            missing = [n for n in range(first, last + 1) if n not in seen]
            if missing:
                quarantine.add(
                    path,
                    missing[0],
                    f"evtx: {len(missing)} records of chunk {chunk} could not be read "
                    f"(ids {missing[0]}-{missing[-1]})",
                )


def _records(
    parser: evtx.PyEvtxParser, path: str, quarantine: Quarantine, seen: set[int]
) -> Iterator[Record]:
    """The records the parser decodes, their numbers added to ``seen``."""
    records: Iterator[Any] = parser.records_json()
    position = 0
    while True:
        try:
            record = next(records)
        except StopIteration:
            break
        except (OSError, RuntimeError, ValueError) as exc:
            # The Rust parser reports a bad record and moves on to the next one.
            quarantine.add(path, position + 1, f"evtx: {exc}")
            position += 1
            continue
        position += 1
        number = record.get("event_record_id") or position
        seen.add(number)
        try:
            doc = orjson.loads(record["data"])
            fields, time, host = windows.normalise(doc)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            quarantine.add(path, number, f"evtx: malformed record: {exc!r}", record["data"])
            continue
        yield fields, number, time or _timestamp(record), host


def chunk_record_ids(
    stream: IO[bytes], path: str, quarantine: Quarantine
) -> list[tuple[int, int, int]]:
    """(chunk, first record id, last record id) of every chunk the file header announces, read
    from the chunk headers, so records the parser skips (a cut or damaged chunk) are reported
    rather than lost. Chunks missing from a truncated file are quarantined here."""
    out: list[tuple[int, int, int]] = []
    try:
        header = stream.read(FILE_HEADER_BYTES)
        if len(header) < FILE_HEADER_BYTES or not header.startswith(MAGIC):
            return out
        chunks = int.from_bytes(header[42:44], "little")
        for chunk in range(chunks):
            stream.seek(HEADER_BLOCK + chunk * CHUNK_BYTES)
            head = stream.read(CHUNK_HEADER_BYTES)
            if len(head) < CHUNK_HEADER_BYTES:
                quarantine.add(
                    path,
                    0,
                    f"evtx: file truncated: chunk {chunk} of {chunks} "
                    "is missing; its records are lost",
                )
                break
            if not head.startswith(CHUNK_MAGIC):
                quarantine.add(path, 0, f"evtx: chunk {chunk} has no valid header")
                continue
            first = int.from_bytes(head[24:32], "little")
            last = int.from_bytes(head[32:40], "little")
            if 0 < first <= last < first + CHUNK_BYTES:
                out.append((chunk, first, last))
        stream.seek(0)
    except OSError as exc:
        quarantine.add(path, 0, f"evtx: cannot read chunk headers: {exc}")
        stream.seek(0)
    return out


def _timestamp(record: dict[str, Any]) -> str | None:
    value = record.get("timestamp")
    return value.replace(" UTC", "") if isinstance(value, str) else None
