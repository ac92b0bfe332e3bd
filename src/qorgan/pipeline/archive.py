"""The rolling event archive: every message the collector took, kept as Parquet under
``<root>/org=<id>/day=<YYYY-MM-DD>/source=<id>/p<partition>-<first offset>.parquet`` (the day
of receipt, UTC), so that a new rule can be run back over the last days
(``qorgan hunt --archive --since 7d``) with the same readers and the same record numbers as
live detection: an alert found again is the same alert, stored once.

The :class:`Archiver` is a consumer of the bus like detection. It gathers up to
:data:`FILE_MESSAGES` messages or :data:`FILE_SECONDS` seconds, writes one file per
organisation, day and source (to a temporary name, fsynced, then renamed), and only then
commits its offset. Files at or past the committed offset are what a crash left half-done:
they are deleted at start and written again. Days older than the retention (per organisation:
``QORGAN_ARCHIVE_DAYS_BY_ORGANISATION``, else ``QORGAN_ARCHIVE_DAYS``) are deleted.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
from collections import defaultdict
from collections.abc import Collection, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from qorgan.pipeline.bus import Bus, Entry, Position
from qorgan.pipeline.detector import parse, record_id
from qorgan.pipeline.models import Overflow, Transport
from qorgan.pipeline.sources import Directory, SourceInfo
from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.quarantine import Quarantine

log = logging.getLogger(__name__)

ARCHIVE = "archive"
FILE_MESSAGES = 200_000
FILE_SECONDS = 60.0
SCHEMA = pa.schema(
    [
        ("offset", pa.int64()),
        ("received", pa.timestamp("us", tz="UTC")),
        ("peer", pa.string()),
        ("message", pa.binary()),
    ]
)
_FILE = re.compile(r"p(\d+)-(\d+)\.parquet$")


def _day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).date().isoformat()


class Archiver:
    """Consumes every partition into Parquet files (see the module doc)."""

    def __init__(
        self,
        bus: Bus,
        root: Path,
        directory: Directory,
        *,
        days: int = 30,
        days_by_organisation: dict[int, int] | None = None,
    ) -> None:
        self.bus = bus
        self.root = root
        self.directory = directory
        self.days = days
        self.days_by_organisation = dict(days_by_organisation or {})
        self.offsets = [0] * bus.partitions

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for partition in range(self.bus.partitions):
            self.offsets[partition] = self.bus.committed(ARCHIVE, partition)
        for path in self.root.glob("org=*/day=*/source=*/*.parquet"):
            found = _FILE.search(path.name)
            if found and int(found[2]) >= self.offsets[int(found[1]) % self.bus.partitions]:
                path.unlink(missing_ok=True)

    def run(self, stop: threading.Event) -> None:
        self.start()
        while not stop.is_set():
            if not any(self.step(p, stop) for p in range(self.bus.partitions)):
                stop.wait(0.5)
        for partition in range(self.bus.partitions):  # what waited for a full file
            self.step(partition, stop)

    def step(self, partition: int, stop: threading.Event | None = None) -> int:
        """Archive what is waiting in ``partition`` once there is a file's worth (or it has
        waited long enough, or ``stop`` is set); how many messages were archived."""
        offset = self.offsets[partition]
        waiting = self.bus.end(partition) - offset
        if waiting <= 0:
            return 0
        if waiting < FILE_MESSAGES and not (stop and stop.is_set()):
            # Not a file's worth yet: only the oldest entry is read, to see how long it waited.
            first = self.bus.read(partition, offset, 1)
            if not first or time.time() - first[0].received < FILE_SECONDS:
                return 0
        entries = self.bus.read(partition, offset, FILE_MESSAGES)
        if not entries:
            return 0
        count = sum(len(e.messages) for e in entries) - max(0, offset - entries[0].first)
        self._write(partition, offset, entries)
        self.offsets[partition] = entries[-1].next
        self.bus.commit(ARCHIVE, partition, Position(self.offsets[partition]))
        return count

    def _write(self, partition: int, offset: int, entries: list[Entry]) -> None:
        groups: dict[tuple[int, str, int], list[tuple[int, float, str, bytes]]] = defaultdict(list)
        for entry in entries:
            day = _day(entry.received)
            rows = groups[(entry.organisation_id, day, entry.source_id)]
            for i, message in enumerate(entry.messages):
                if entry.first + i >= offset:
                    rows.append((entry.first + i, entry.received, entry.peer, message))
        for (org, day, source_id), rows in groups.items():
            if not rows or self.days_by_organisation.get(org, self.days) <= 0:
                continue  # an organisation whose messages are not archived
            folder = self.root / f"org={org}" / f"day={day}" / f"source={source_id}"
            folder.mkdir(parents=True, exist_ok=True)
            source = self.directory.get(source_id)
            table = pa.table(
                {
                    "offset": [r[0] for r in rows],
                    "received": [datetime.fromtimestamp(r[1], UTC) for r in rows],
                    "peer": [r[2] for r in rows],
                    "message": [r[3] for r in rows],
                },
                schema=SCHEMA.with_metadata(_metadata(source, partition)),
            )
            final = folder / f"p{partition}-{rows[0][0]}.parquet"
            temporary = final.with_suffix(".tmp")
            pq.write_table(table, temporary, compression="zstd")
            with temporary.open("rb") as fh:
                os.fsync(fh.fileno())
            temporary.replace(final)

    def expire(self, now: datetime) -> int:
        """Delete the days older than their organisation's retention; how many day folders."""
        removed = 0
        for folder in self.root.glob("org=*/day=*"):
            try:
                day = date.fromisoformat(folder.name.removeprefix("day="))
                org = int(folder.parent.name.removeprefix("org="))
            except ValueError:
                continue
            days = self.days_by_organisation.get(org, self.days)
            if day <= now.date() - timedelta(days=days):  # 1 day: today only; 0: nothing
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed


def _metadata(source: SourceInfo | None, partition: int) -> dict[str, str]:
    if source is None:
        return {"partition": str(partition)}
    return {
        "partition": str(partition),
        "source": source.name,
        "source_id": str(source.id),
        "organisation_id": str(source.organisation_id),
        "format": source.format,
        "timezone": source.timezone,
    }


# --------------------------------------------------------------------------- reading back


def archived_files(
    root: Path, *, since: datetime, organisation_ids: Collection[int] | None = None
) -> list[Path]:
    """The archive's files received on or after ``since``'s day, oldest day first."""
    first = since.astimezone(UTC).date()
    out = []
    for org_folder in sorted(root.glob("org=*")):
        org = org_folder.name.removeprefix("org=")
        if organisation_ids is not None and (not org.isdigit() or int(org) not in organisation_ids):
            continue
        for day_folder in sorted(org_folder.glob("day=*")):
            try:
                day = date.fromisoformat(day_folder.name.removeprefix("day="))
            except ValueError:
                continue
            if day >= first:
                out.extend(sorted(day_folder.glob("source=*/*.parquet"), key=_file_order))
    return out


def _file_order(path: Path) -> tuple[str, int]:
    found = _FILE.search(path.name)
    return (str(path.parent), int(found[2]) if found else 0)


def read_archive(
    files: Collection[Path], quarantine: Quarantine, *, since: datetime
) -> Iterator[EventBatch]:
    """The events of archived ``files`` received at or after ``since``, read by each source's
    format with the record numbers live detection gave them."""
    for path in files:
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            quarantine.add(str(path), 0, f"archive: unreadable file: {exc}")
            continue
        meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        if "format" not in meta:
            quarantine.add(str(path), 0, "archive: the file does not say its source's format")
            continue
        source = SourceInfo(
            id=int(meta["source_id"]),
            organisation_id=int(meta["organisation_id"]),
            name=meta["source"],
            transport=Transport.tcp,
            format=meta["format"],
            timezone=meta["timezone"],
            overflow=Overflow.wait,
            networks=(),
            certificate_cn=None,
        )
        partition = int(meta["partition"])
        cutoff = since.astimezone(UTC)
        received = table.column("received").to_pylist()
        offsets = table.column("offset").to_pylist()
        messages = table.column("message").to_pylist()
        keep = [i for i, at in enumerate(received) if at >= cutoff]
        if not keep:
            continue
        yield from parse(
            source,
            [messages[i] for i in keep],
            [record_id(partition, offsets[i]) for i in keep],
            quarantine,
        )
