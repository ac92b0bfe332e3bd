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
from qorgan.telemetry.formats.base import DEFAULT_BATCH_SIZE, Format
from qorgan.telemetry.quarantine import Quarantine

MAGIC = b"ElfFile\x00"


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
        batch = self.new_batch(path)
        try:
            parser = evtx.PyEvtxParser(stream)
        except (OSError, RuntimeError, ValueError) as exc:
            quarantine.add(path, 0, f"evtx: not a readable EVTX file: {exc}")
            return
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
            try:
                doc = orjson.loads(record["data"])
                fields, time, host = windows.normalise(doc)
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                quarantine.add(path, number, f"evtx: malformed record: {exc!r}", record["data"])
                continue
            batch.append(fields, number, time or _timestamp(record), host)
            if len(batch) >= batch_size:
                yield batch
                batch = self.new_batch(path)
        if batch.events:
            yield batch


def _timestamp(record: dict[str, Any]) -> str | None:
    value = record.get("timestamp")
    return value.replace(" UTC", "") if isinstance(value, str) else None
