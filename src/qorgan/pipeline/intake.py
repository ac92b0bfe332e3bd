"""Intake: what receivers (and HTTP ingest) hand messages to. It knows which source a sender
is (:class:`~qorgan.pipeline.sources.Directory`), appends to the :class:`~qorgan.pipeline.bus.Bus`
and answers only once the append is durable, holds senders back while detection is behind, and
counts everything per source for the Sources page and the metrics.

Backpressure: when detection's backlog passes ``max_lag`` messages (or the log passes
``max_log_bytes`` on disk), intake is *overloaded*. A source whose overflow policy is ``wait``
is then held: :meth:`Intake.ready` blocks (TCP and RELP stop reading), HTTP answers 429. A
source whose policy is ``drop`` keeps being read and its messages are dropped and counted
(:attr:`SourceCounts.dropped`), and the collector raises an alert. UDP cannot be held: it drops
while overloaded, counted the same way. Memory stays bounded: UDP messages not yet durable are
at most ``max_pending_bytes``; past that they are dropped and counted too.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from qorgan.pipeline.bus import Bus, Entry
from qorgan.pipeline.models import Overflow
from qorgan.pipeline.sources import Directory, SourceInfo
from qorgan.telemetry.receivers import Peer

log = logging.getLogger(__name__)

DETECTION = "detection"
#: Problems kept in memory per source until the next flush.
PROBLEMS_KEPT = 20
EXCERPT = 300


@dataclass
class SourceCounts:
    """What happened to one source's messages since the last flush (see :meth:`Intake.take`)."""

    events: int = 0
    received_bytes: int = 0
    dropped: int = 0
    malformed: int = 0
    last_event: float = 0.0
    #: (time, reason, excerpt), newest last.
    problems: deque[tuple[float, str, str]] = field(
        default_factory=lambda: deque(maxlen=PROBLEMS_KEPT)
    )
    #: Events per ten-second bucket start (epoch seconds).
    buckets: dict[int, list[int]] = field(default_factory=dict)

    def count(self, now: float, events: int, size: int, dropped: int = 0) -> None:
        bucket = self.buckets.setdefault(int(now // 10 * 10), [0, 0, 0, 0])
        bucket[0] += events
        bucket[1] += size
        bucket[2] += dropped


@dataclass
class Totals:
    """Counters over the life of the process, for the metrics."""

    events: dict[int, int] = field(default_factory=dict)
    dropped: dict[int, int] = field(default_factory=dict)
    malformed: dict[int, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)


def excerpt(data: bytes) -> str:
    return data[: EXCERPT * 2].decode("utf-8", "replace").replace("\x00", "\\0")[:EXCERPT]


class Intake:
    """See the module doc; implements :class:`qorgan.telemetry.receivers.Intake`."""

    def __init__(
        self,
        bus: Bus,
        directory: Directory,
        *,
        max_lag: int = 1_000_000,
        max_log_bytes: int = 4 << 30,
        max_pending_bytes: int = 64 << 20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bus = bus
        self.directory = directory
        self.max_lag = max_lag
        self.max_log_bytes = max_log_bytes
        self.max_pending_bytes = max_pending_bytes
        self.clock = clock
        self._lock = threading.Lock()
        self._counts: dict[int, SourceCounts] = {}
        self.totals = Totals()
        self._pending = 0
        self._overloaded = False
        self.lag = 0
        self.log_bytes = 0

    # ------------------------------------------------------------------ state

    @property
    def overloaded(self) -> bool:
        return self._overloaded

    def check(self) -> bool:
        """Measure detection's backlog and the log's size; whether intake is overloaded.
        Called every fraction of a second by the collector."""
        self.lag = self.bus.lag(DETECTION)
        self.log_bytes = self.bus.size()
        overloaded = self.lag > self.max_lag or self.log_bytes > self.max_log_bytes
        if overloaded != self._overloaded:
            log.warning(
                "intake %s: detection backlog %d messages, log %d MiB",
                "held" if overloaded else "resumed",
                self.lag,
                self.log_bytes >> 20,
            )
        self._overloaded = overloaded
        return overloaded

    def holds(self, source: SourceInfo) -> bool:
        """Whether ``source`` must wait now (HTTP answers 429)."""
        return self._overloaded and source.overflow is Overflow.wait

    def _counts_of(self, source_id: int) -> SourceCounts:
        found = self._counts.get(source_id)
        if found is None:
            found = self._counts[source_id] = SourceCounts()
        return found

    def take(self) -> dict[int, SourceCounts]:
        """The counts since the last call, per source id, and start new ones."""
        with self._lock:
            counts, self._counts = self._counts, {}
        return counts

    # ------------------------------------------------------------------ the receivers' side

    def admit(self, peer: Peer) -> SourceInfo | None:
        source = self.directory.match(peer)
        if source is None:
            with self._lock:
                key = f"{peer.protocol}:{peer.address}"
                self.totals.refused[key] = self.totals.refused.get(key, 0) + 1
            log.info("refused a %s sender that no source takes", peer.protocol)
        return source

    async def ready(self, source: object) -> None:
        assert isinstance(source, SourceInfo)
        while self.holds(source):
            await asyncio.sleep(0.05)

    def _entry(self, source: SourceInfo, messages: list[bytes], peer: Peer) -> Entry:
        return Entry(
            source_id=source.id,
            organisation_id=source.organisation_id,
            received=self.clock(),
            messages=messages,
            peer=peer.address,
        )

    def _drop(self, source: SourceInfo, messages: list[bytes], reason: str) -> None:
        now = self.clock()
        with self._lock:
            counts = self._counts_of(source.id)
            counts.dropped += len(messages)
            counts.count(now, 0, 0, len(messages))
            counts.problems.append((now, reason, excerpt(messages[0]) if messages else ""))
            self.totals.dropped[source.id] = self.totals.dropped.get(source.id, 0) + len(messages)

    def _counted(self, source: SourceInfo, entry: Entry) -> None:
        size = sum(map(len, entry.messages))
        with self._lock:
            counts = self._counts_of(source.id)
            counts.events += len(entry.messages)
            counts.received_bytes += size
            counts.last_event = max(counts.last_event, entry.received)
            counts.count(entry.received, len(entry.messages), size)
            self.totals.events[source.id] = self.totals.events.get(source.id, 0) + len(
                entry.messages
            )

    def submit(self, source: SourceInfo, messages: list[bytes], peer: Peer) -> Future[None] | None:
        """Append ``messages`` (HTTP ingest and :meth:`write`): the future of their durability,
        or ``None`` when they were dropped under the source's overflow policy."""
        messages = [m for m in messages if m]
        if not messages:
            done: Future[None] = Future()
            done.set_result(None)
            return done
        if self._overloaded and source.overflow is Overflow.drop:
            self._drop(source, messages, "dropped: detection is behind (overflow policy: drop)")
            return None
        entry = self._entry(source, messages, peer)
        future = self.bus.submit([entry])
        future.add_done_callback(lambda f: f.exception() is None and self._counted(source, entry))
        return future

    async def write(self, source: object, messages: list[bytes], peer: Peer) -> None:
        assert isinstance(source, SourceInfo)
        future = self.submit(source, messages, peer)
        if future is not None:
            await asyncio.wrap_future(future)

    def offer(self, source: object, messages: list[bytes], peer: Peer) -> None:
        assert isinstance(source, SourceInfo)
        messages = [m for m in messages if m]
        if not messages:
            return
        size = sum(map(len, messages))
        if self._overloaded:
            self._drop(source, messages, "dropped: detection is behind (UDP cannot wait)")
            return
        with self._lock:
            if self._pending + size > self.max_pending_bytes:
                full = True
            else:
                full = False
                self._pending += size
        if full:
            self._drop(source, messages, "dropped: too many UDP messages waiting to be written")
            return
        entry = self._entry(source, messages, peer)

        def written(future: Future[None]) -> None:
            with self._lock:
                self._pending -= size
            if future.exception() is None:
                self._counted(source, entry)
            else:
                self._drop(source, messages, f"dropped: {future.exception()}")

        self.bus.submit([entry]).add_done_callback(written)

    def malformed(self, source: object | None, peer: Peer, reason: str, sample: bytes) -> None:
        if not isinstance(source, SourceInfo):
            log.info("a malformed %s frame from a sender no source takes", peer.protocol)
            return
        now = self.clock()
        with self._lock:
            counts = self._counts_of(source.id)
            counts.malformed += 1
            counts.problems.append((now, reason, excerpt(sample)))
            self.totals.malformed[source.id] = self.totals.malformed.get(source.id, 0) + 1
