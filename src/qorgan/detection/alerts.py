"""Alerts: what a rule firing on an event produces, and how alerts are written out.

The JSON shape is documented in ``docs/alerts.md``; a test keeps the two in step.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

import orjson

from qorgan.detection.plan import RuleMeta

LEVELS = ("informational", "low", "medium", "high", "critical")
LEVEL_RANK = {level: rank for rank, level in enumerate(LEVELS)}
CSV_COLUMNS = ("time", "level", "rule_id", "rule_title", "host", "path", "record", "tags")


@dataclass(slots=True)
class Alert:
    rule: RuleMeta
    time: str | None
    host: str | None
    path: str
    record: int
    format: str
    event: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": {
                "id": self.rule.id,
                "title": self.rule.title,
                "level": self.rule.level,
                "tags": list(self.rule.tags),
                "status": self.rule.status,
                "path": self.rule.path,
            },
            "time": self.time,
            "host": self.host,
            "source": {"path": self.path, "record": self.record, "format": self.format},
            "event": self.event,
        }


class JsonLinesWriter:
    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream

    def write(self, alerts: Iterable[Alert]) -> None:
        dumps = orjson.dumps
        option = orjson.OPT_NON_STR_KEYS
        self.stream.write(b"".join(dumps(a.to_dict(), option=option) + b"\n" for a in alerts))

    def close(self) -> None:
        self.stream.flush()


class CsvWriter:
    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.writer = csv.writer(stream)
        self.writer.writerow(CSV_COLUMNS)

    def write(self, alerts: Iterable[Alert]) -> None:
        for a in alerts:
            self.writer.writerow(
                (
                    a.time,
                    a.rule.level,
                    a.rule.id,
                    a.rule.title,
                    a.host,
                    a.path,
                    a.record,
                    " ".join(a.rule.tags),
                )
            )

    def close(self) -> None:
        self.stream.flush()
