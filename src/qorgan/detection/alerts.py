"""Alerts: what a rule firing on an event produces, and how alerts are written out.

The JSON shape is documented in ``docs/alerts.md``; a test keeps the two in step.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from qorgan.detection.correlation import CorrelationAlert
from qorgan.detection.plan import RuleMeta

LEVELS = ("informational", "low", "medium", "high", "critical")


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def correlation_alert(found: CorrelationAlert) -> Alert:
    """A correlation's alert: the group as its event, the window and its events' references."""
    last = found.events[-1]
    return Alert(
        rule=found.correlation.meta,
        time=iso(found.end),
        host=None,
        path=last[0],
        record=last[1],
        format="correlation",
        event=dict(found.group),
        correlation={
            "type": found.correlation.type,
            "value": found.value,
            "start": iso(found.start),
            "end": iso(found.end),
            "events": [
                {"path": path, "record": record, "time": time, "rule": rule}
                for path, record, time, rule in found.events
            ],
        },
    )


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
    correlation: dict[str, Any] | None = None
    classification: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
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
        if self.classification is not None:
            out["classification"] = self.classification
        if self.correlation is not None:
            out["correlation"] = self.correlation
        return out


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
