"""Streaming detection: a consumer of one bus partition that reads each source's messages in
its format, runs the same compiled plan and correlations as ``qorgan hunt`` (one
:class:`~qorgan.detection.hunt.Hunter` per organisation, so correlations never mix
organisations), and writes alerts to the store.

Exactly-once in effect: alerts are written first (ingestion is idempotent: an alert's
fingerprint is its rule, event and record, and the record of a live event is its place in the
log, :func:`record_id`), then the next offset is committed together with the correlation
windows. A crash between the two replays the batch on restart, which stores nothing twice.

A message is one record: a message with line breaks inside is read with them written as
``#012`` (as rsyslog escapes them). Messages a format cannot read are quarantined with the
reason and counted per source. A batch whose detection fails outright is counted as failed for
its source and skipped, so one poisoned message cannot stop a partition.
"""

from __future__ import annotations

import io
import logging
import pickle
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core.db import unit_of_work
from qorgan.detection.alerts import Alert
from qorgan.detection.errors import DetectionError
from qorgan.detection.hunt import Hunter
from qorgan.detection.indicators import IndicatorSet
from qorgan.detection.plan import Plan
from qorgan.incidents.alerts import Prepared, store
from qorgan.pipeline.alerting import stored_bodies
from qorgan.pipeline.anomaly import LiveAnomaly
from qorgan.pipeline.bus import Bus, Entry, Position
from qorgan.pipeline.intake import DETECTION, PROBLEMS_KEPT
from qorgan.pipeline.sources import Directory, SourceInfo
from qorgan.pipeline.store_process import Batch, StoreProcess
from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.formats import get_format
from qorgan.telemetry.quarantine import Quarantine

log = logging.getLogger(__name__)

#: Messages read per step.
BATCH = 20_000
#: Seconds an event may arrive behind the newest one and still be correlated in time order.
LATENESS = 30.0
ACTOR = "collector"
#: Longest time between two commits while whole batches keep coming.
COMMIT_EVERY = 2.0
#: The key of the anomaly models' baselines in the committed state (organisations' correlation
#: windows are under their ids).
ANOMALY_KEY = "anomaly"
#: Most alerts that gather while the store process is busy before detection waits for it.
GATHERED_ALERTS = 20_000
#: Longest a step waits for :attr:`Detector.gather` messages once one has arrived.
GATHER_SECONDS = 0.2
#: Offsets take the low 40 bits of a record number, the partition the bits above.
OFFSET_BITS = 40


def record_id(partition: int, offset: int) -> int:
    """The record number of a live event: its place in the log (stable across replays)."""
    return (partition << OFFSET_BITS) | offset


def source_path(source: SourceInfo) -> str:
    return f"source:{source.name}"


def parse(
    source: SourceInfo, messages: list[bytes], records: list[int], quarantine: Quarantine
) -> Iterator[EventBatch]:
    """The events of ``messages`` (one record each, numbered ``records``) in the source's
    format; what cannot be read goes to ``quarantine`` under its record number."""
    text = b"\n".join(m.replace(b"\n", b"#012") if b"\n" in m else m for m in messages)
    reader = get_format(source.format, tz=ZoneInfo(source.timezone))
    path = source_path(source)
    numbered = _Renumbered(quarantine, records)
    for batch in reader.read(io.BytesIO(text + b"\n"), path, numbered, batch_size=BATCH):
        batch.records = [records[r - 1] for r in batch.records]
        yield batch


class _Renumbered(Quarantine):
    """A quarantine view that turns a line number of the joined messages into their record."""

    def __init__(self, target: Quarantine, records: list[int]) -> None:
        super().__init__(keep=0)
        self.target = target
        self.numbers = records

    def add(self, path: str, record: int, reason: str, raw: bytes | str = b"") -> None:
        if 1 <= record <= len(self.numbers):
            record = self.numbers[record - 1]
        self.count += 1
        self.target.add(path, record, reason, raw)


@dataclass
class Progress:
    """What detection did per source since the collector last took it."""

    failures: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    #: (time, reason, excerpt) per source, newest last.
    problems: dict[int, list[tuple[float, str, str]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    #: The receipt time of the newest analysed message per source.
    analysed: dict[int, float] = field(default_factory=dict)
    alerts: int = 0


class _SourceQuarantine(Quarantine):
    """Counts what could not be read (or stored) against its source, keeping examples, in the
    detector's current :class:`Progress` (under its lock: the collector takes it meanwhile)."""

    def __init__(self, detector: Detector) -> None:
        super().__init__(keep=0)
        self.detector = detector

    def add(self, path: str, record: int, reason: str, raw: bytes | str = b"") -> None:
        super().add(path, record, reason, raw)
        detector = self.detector
        source_id = detector._paths.get(path, 0)
        text = raw[:600].decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        with detector._lock:
            progress = detector.progress
            progress.failures[source_id] += 1
            kept = progress.problems[source_id]
            kept.append((time.time(), reason[:300], text[:300]))
            del kept[:-PROBLEMS_KEPT]


class Detector:
    """Consumes one partition (see the module doc). ``plan`` is read again when
    :meth:`reload` is called (rules changed), between two batches."""

    def __init__(
        self,
        bus: Bus,
        partition: int,
        *,
        plan: Callable[[], Plan],
        factory: sessionmaker[Session],
        directory: Directory,
        batch: int = BATCH,
        lateness: float = LATENESS,
        store_process: StoreProcess | None = None,
        indicators: Callable[[int], IndicatorSet | None] | None = None,
        anomaly: LiveAnomaly | None = None,
    ) -> None:
        self.bus = bus
        #: Each organisation's anomaly models (None: rules and indicators only).
        self.anomaly = anomaly
        #: Each organisation's indicators (None: rules only), asked for at every batch.
        self._indicators = indicators
        self.partition = partition
        self._plan_source = plan
        self.plan = plan()
        self.factory = factory
        self.directory = directory
        self.batch = batch
        #: Messages a step waits for (at most :data:`GATHER_SECONDS`) before it reads.
        self.gather = min(batch, 2_000)
        self.lateness = lateness
        self.progress = Progress()
        self._lock = threading.Lock()
        self._reload = threading.Event()
        self._hunters: dict[int, Hunter] = {}
        self._committed = 0.0
        self._committed_offset = 0
        #: Where the alerts are stored up to (what a commit may record).
        self._stored = 0
        #: The batch the store process has: (its end offset, commit due, alerts).
        self._handed: tuple[int, bool, int] | None = None
        self.store_process = store_process
        self._forget_gathered()
        #: Source ids by the path their events carry.
        self._paths: dict[str, int] = {}
        self.offset = 0

    # ------------------------------------------------------------------ state

    def _hunter(self, organisation_id: int) -> Hunter:
        found = self._hunters.get(organisation_id)
        if found is None:
            found = self._hunters[organisation_id] = Hunter(self.plan, lateness=self.lateness)
        if self._indicators is not None:
            found.use(self._indicators(organisation_id))
        return found

    def _state(self) -> bytes:
        state: dict[int | str, Any] = {org: h.correlator.dump() for org, h in self._hunters.items()}
        if self.anomaly is not None:
            state[ANOMALY_KEY] = self.anomaly.dump()
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def _restore(self, state: bytes | None) -> None:
        self._hunters = {}
        if not state:
            return
        try:
            saved = pickle.loads(state)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            log.error("partition %d: correlation state unreadable: %s", self.partition, exc)
            return
        baselines = saved.pop(ANOMALY_KEY, None)
        if self.anomaly is not None and baselines is not None:
            self.anomaly.load(baselines)
        for org, data in saved.items():
            try:
                self._hunter(org).correlator.load(data)
            except DetectionError as exc:
                # The correlation rules changed: their windows start again.
                log.warning("partition %d: %s", self.partition, exc)
                self._hunters.pop(org, None)

    def reload(self) -> None:
        """Compile the rules again before the next batch."""
        self._reload.set()

    def take(self) -> Progress:
        with self._lock:
            progress, self.progress = self.progress, Progress()
        return progress

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        position = self.bus.position(DETECTION, self.partition)
        self.offset = self._stored = self._committed_offset = position.offset
        self._restore(position.state)
        self._forget_gathered()

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set. With a :class:`StoreProcess`, a batch's alerts are
        stored by it (and the offset committed after them) while this thread reads and
        detects the next batch."""
        self.start()
        if self.store_process is None:
            if not self._consume(stop):
                return  # the windows may hold what was not stored: nothing is committed
        else:
            self.store_process.start()  # its imports take a second: not on the first batch
            try:
                if not self._consume(stop):
                    return
                self._settle()
                if self._gathered_to is not None:  # what gathered goes over before the end
                    self._hand_over(None)
                    self._settle()
            except Exception:
                log.exception("partition %d: the last batch was not stored", self.partition)
                return
            finally:
                self.store_process.close()
        if self._uncommitted():
            self.commit()

    def _consume(self, stop: threading.Event) -> bool:
        """Steps until ``stop``; False when it came during a failed step (nothing to finish)."""
        delay = 0.1
        while not stop.is_set():
            try:
                if self.store_process is None:
                    self.step(stop, wait=0.25)
                else:
                    self._handover_step()
                delay = 0.1
            except Exception:  # what was not committed is read again
                self._abandon()
                if stop.is_set():
                    return False
                log.exception("partition %d: detection step failed; retrying", self.partition)
                stop.wait(delay)
                delay = min(delay * 2, 5.0)
                self.start()  # back to the last commit, with its windows
        return True

    def step(self, stop: threading.Event | None = None, *, wait: float = 0.0) -> int:
        """Read, detect, store, commit one batch; how many messages it took."""
        found = self._next(wait)
        if found is None:
            if self._uncommitted():
                self.commit()  # idle: what was analysed is recorded at once
            return 0
        alerts, taken = found
        self._store(alerts, stop)
        self._store_findings(stop)
        self._stored = self.offset
        if time.monotonic() - self._committed >= COMMIT_EVERY:
            self.commit()
        return taken

    def _handover_step(self) -> None:
        """Read and detect a batch while the store process stores what was handed over
        before. While it is busy, batches' alerts gather here (up to :data:`GATHERED_ALERTS`)
        and go over together once it answers: a paced stream then makes fewer, larger
        transactions, each of which costs the alert store a good deal whatever its size."""
        found = self._next(0.25)
        if found is not None:
            self._store_findings(None)  # before the batch's offset can be committed
            alerts, _ = found
            for organisation_id, alerted in alerts.items():
                if alerted:
                    bodies = stored_bodies(alerted, _SourceQuarantine(self))
                    gathered = self._gathered.get(organisation_id)
                    if gathered is None:
                        gathered = self._gathered[organisation_id] = Prepared()
                    gathered.add(bodies)  # here, not in the store process: it has more to do
                    self._gathered_alerts += len(bodies)
            self._gathered_to = self.offset
        assert self.store_process is not None
        if (
            found is not None
            and self._handed is not None
            and self._gathered_alerts < GATHERED_ALERTS
            and not self.store_process.answered()
        ):
            return  # the store is busy: detect on
        self._settle()  # what was handed over is stored (or its failure raised here)
        if self._gathered_to is None:
            if self._uncommitted():
                self.commit()
            return
        commit = None
        if time.monotonic() - self._committed >= COMMIT_EVERY:
            # The windows as they are now go with the offset reached, once it is stored.
            commit = (self._gathered_to, self._state())
        self._hand_over(commit)

    def _hand_over(self, commit: tuple[int, bytes | None] | None) -> None:
        """Give the store process the alerts gathered (and the position to commit after)."""
        assert self.store_process is not None and self._gathered_to is not None
        self.store_process.submit(Batch(self.partition, self._gathered, commit))
        self._handed = (self._gathered_to, commit is not None, self._gathered_alerts)
        self._forget_gathered()

    def _forget_gathered(self) -> None:
        self._gathered: dict[int, Prepared] = {}
        self._gathered_alerts = 0
        self._gathered_to: int | None = None

    def _settle(self) -> None:
        """Wait for the store process's answer to the batch handed over, if any."""
        handed, self._handed = self._handed, None
        if handed is None or self.store_process is None:
            return
        self.store_process.result()
        offset, committed, alerts = handed
        self._stored = offset
        if committed:
            self._committed = time.monotonic()
            self._committed_offset = offset
        with self._lock:
            self.progress.alerts += alerts

    def _abandon(self) -> None:
        """After a failure: the batch handed over, if any, is let go (it is read again from
        the last commit); the store process is restarted for the next one."""
        if self._handed is not None and self.store_process is not None:
            self._handed = None
            self.store_process.close()

    def _next(self, wait: float) -> tuple[dict[int, list[Alert]], int] | None:
        """Read and detect the next batch: its alerts by organisation and how many messages
        it took (:attr:`offset` moves past them); None when there was nothing to read."""
        if wait:
            if not self.bus.wait(self.partition, self.offset, wait):
                return None
            # A trickle is gathered a moment, up to a batch's worth: every step stores its
            # alerts in a transaction of its own, and a few messages a step cost more a
            # message than a full batch (at 2,200 lines/s: 36.3 -> 32.2 CPU s for 88,000).
            self.bus.wait(self.partition, self.offset + self.gather, GATHER_SECONDS)
        entries = self.bus.read(self.partition, self.offset, self.batch)
        if self._reload.is_set():  # after the read: a message appended since gets the new rules
            self._reload.clear()
            state = self._state()
            self.plan = self._plan_source()
            self._restore(state)
        if not entries:
            end = self.bus.end(self.partition)
            if end > self.offset:  # trimmed away before this consumer read them: go on after
                log.warning(
                    "partition %d: offsets %d to %d were trimmed unread",
                    self.partition,
                    self.offset,
                    end,
                )
                self.offset = end
                if self._handed is None:
                    self._stored = end
            return None
        alerts: dict[int, list[Alert]] = defaultdict(list)
        taken = 0
        for source, group in self._groups(entries):
            taken += self._detect(source, group, alerts)
        self.offset = entries[-1].next
        return alerts, taken

    def _uncommitted(self) -> bool:
        return self._committed_offset != self._stored

    def commit(self) -> None:
        """Record the offset stored up to, with the correlation windows (all detected is
        stored here). Pickling the windows grows with them, so under load it is done at most
        every :data:`COMMIT_EVERY` seconds (a crash then replays a little more, which stores
        nothing twice)."""
        self.bus.commit(DETECTION, self.partition, Position(self._stored, self._state()))
        self._committed = time.monotonic()
        self._committed_offset = self._stored

    def _groups(self, entries: list[Entry]) -> Iterator[tuple[SourceInfo | None, list[Entry]]]:
        group: list[Entry] = []
        for entry in entries:
            if group and entry.source_id != group[0].source_id:
                yield self.directory.get(group[0].source_id), group
                group = []
            group.append(entry)
        if group:
            yield self.directory.get(group[0].source_id), group

    def _detect(
        self, source: SourceInfo | None, group: list[Entry], alerts: dict[int, list[Alert]]
    ) -> int:
        messages: list[bytes] = []
        records: list[int] = []
        for entry in group:
            skip = max(0, self.offset - entry.first)
            messages.extend(entry.messages[skip:])
            records.extend(
                record_id(self.partition, o) for o in range(entry.first + skip, entry.next)
            )
        if not messages:
            return 0
        source_id = group[0].source_id
        with self._lock:
            self.progress.analysed[source_id] = max(
                self.progress.analysed.get(source_id, 0.0), group[-1].received
            )
        if source is None:  # deleted since: nothing says how to read it
            log.warning("%d messages of a deleted source skipped", len(messages))
            return len(messages)
        self._paths[source_path(source)] = source_id
        quarantine = _SourceQuarantine(self)
        try:
            hunter = self._hunter(source.organisation_id)
            found = alerts[source.organisation_id]
            for batch in parse(source, messages, records, quarantine):
                found.extend(hunter.batch(batch))
                if self.anomaly is not None:
                    self.anomaly.observe(source.organisation_id, batch)
        except Exception as exc:
            log.exception("partition %d: detection failed on %s", self.partition, source.name)
            reason = f"detection failed: {exc}"
            quarantine.add(source_path(source), records[0], reason, messages[0])
        return len(messages)

    def _store_findings(self, stop: threading.Event | None) -> None:
        """Store the anomaly findings of the batch read, retrying like :meth:`_store`."""
        if self.anomaly is None:
            return
        delay = 0.1
        while True:
            try:
                self.anomaly.store()
                return
            except SQLAlchemyError as exc:
                if stop is not None and stop.is_set():
                    raise
                log.warning("anomaly findings could not be stored, retrying: %s", exc)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _store(self, alerts: dict[int, list[Alert]], stop: threading.Event | None) -> None:
        """Write the alerts; on a database error, retry until it works or ``stop`` is set
        (then raise: the batch is not committed and will be read again)."""
        delay = 0.1
        for organisation_id, found in alerts.items():
            if not found:
                continue
            valid = stored_bodies(found, _SourceQuarantine(self))
            while True:
                try:
                    with unit_of_work(self.factory) as session:
                        store(
                            session=session,
                            organisation_id=organisation_id,
                            bodies=valid,
                            actor=ACTOR,
                        )
                    break
                except SQLAlchemyError as exc:
                    if stop is not None and stop.is_set():
                        raise
                    log.warning("alerts could not be stored, retrying: %s", exc)
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
            with self._lock:
                self.progress.alerts += len(valid)
