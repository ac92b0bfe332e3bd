"""Where bad records go: kept with their reason, counted, never silently dropped."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson

EXCERPT_CHARS = 200


@dataclass(slots=True)
class QuarantinedRecord:
    path: str
    record: int
    reason: str
    excerpt: str


@dataclass
class Quarantine:
    """Collects records that could not be read.

    Records are appended to ``sink`` as JSON lines when one is given (``qorgan hunt
    --quarantine FILE``); the most recent ``keep`` are also kept in memory for reports and tests.
    """

    sink: IO[bytes] | None = None
    keep: int = 1000
    records: list[QuarantinedRecord] = field(default_factory=list)
    by_reason: Counter[str] = field(default_factory=Counter)
    count: int = 0

    def add(self, path: str, record: int, reason: str, raw: bytes | str = b"") -> None:
        if isinstance(raw, bytes):
            raw = raw[: EXCERPT_CHARS * 4].decode("utf-8", "replace")
        item = QuarantinedRecord(path, record, reason, raw[:EXCERPT_CHARS])
        self.count += 1
        self.by_reason[reason.split(":", 1)[0]] += 1
        if len(self.records) < self.keep:
            self.records.append(item)
        if self.sink is not None:
            self.sink.write(
                orjson.dumps(
                    {"path": path, "record": record, "reason": reason, "excerpt": item.excerpt}
                )
                + b"\n"
            )

    @classmethod
    def to_file(cls, path: Path) -> Quarantine:
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(sink=path.open("ab"))

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()
