"""The unit that flows from formats to detection: a bounded batch of normalised events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class EventBatch:
    """Events read from one source file, in order.

    ``events`` are flat dicts whose keys are the field names Sigma rules use (``EventID``,
    ``CommandLine``, ``cs-uri-query``, ``id.orig_h``...). Values are ``str``, ``int``,
    ``float``, ``bool``, ``None`` or lists of those. The parallel lists give, per event, where
    it came from (``records``: EVTX record number or 1-based line number), its time (ISO 8601
    UTC text or ``None``) and the host it describes (or ``None``).

    ``logsource`` tags the whole batch with what the format knows of it (``product``,
    ``service``, ``category``); detection uses the tags to select events for a rule's logsource.
    """

    path: str
    format: str
    logsource: dict[str, str]
    events: list[dict[str, Any]] = field(default_factory=list)
    records: list[int] = field(default_factory=list)
    times: list[str | None] = field(default_factory=list)
    hosts: list[str | None] = field(default_factory=list)
    #: Bytes of the file (as stored, compressed or not) read when the batch was handed on:
    #: for progress reports. Set by the source, 0 when unknown.
    offset: int = 0

    def __len__(self) -> int:
        return len(self.events)

    def append(
        self, event: dict[str, Any], record: int, time: str | None, host: str | None
    ) -> None:
        self.events.append(event)
        self.records.append(record)
        self.times.append(time)
        self.hosts.append(host)
