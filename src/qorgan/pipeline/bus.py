"""The boundary between intake and detection: a durable, partitioned log with consumer offsets.

Intake appends :class:`Entry` batches of raw messages; each message gets the next offset of its
partition, and :meth:`Bus.append` returns only once the entry is durable, so a receiver may
acknowledge it then. Consumers (streaming detection, the archive) read a partition from their
committed offset and commit the next offset, together with an opaque state (the correlation
windows), once what they read has had its effect; after a crash a consumer resumes from its last
commit and replays the rest. Entries every consumer has passed are trimmed.

A partition holds the entries of some organisations (``organisation % partitions``), in the
order they were appended, so one organisation's events are read in order by one consumer.

:class:`~qorgan.pipeline.sqlite_bus.SqliteBus` is the embedded implementation; a NATS JetStream
one can replace it without intake or detection knowing (subjects per partition, durable
consumers for the offsets, a key-value bucket for the states).
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from itertools import accumulate, pairwise

_COUNT = struct.Struct("<I")


@dataclass(slots=True)
class Entry:
    """Messages received together from one source (a read of a connection, an HTTP batch)."""

    source_id: int
    organisation_id: int
    received: float  # epoch seconds
    messages: list[bytes]
    peer: str = ""
    #: Set by the bus when appended.
    partition: int = -1
    first: int = -1

    @property
    def next(self) -> int:
        """The offset after this entry's last message."""
        return self.first + len(self.messages)


def encode(messages: Sequence[bytes]) -> bytes:
    """``count, lengths..., bytes...``: a compact frame of messages that may hold any byte."""
    head = _COUNT.pack(len(messages)) + struct.pack(f"<{len(messages)}I", *map(len, messages))
    return head + b"".join(messages)


def decode(payload: bytes) -> list[bytes]:
    (count,) = _COUNT.unpack_from(payload)
    lengths = struct.unpack_from(f"<{count}I", payload, 4)
    start = 4 + 4 * count
    ends = list(accumulate(lengths, initial=start))
    view = memoryview(payload)
    return [bytes(view[a:b]) for a, b in pairwise(ends)]


@dataclass(frozen=True, slots=True)
class Position:
    """Where a consumer is in a partition: the next offset to read, and its saved state."""

    offset: int
    state: bytes | None = None


class Bus(ABC):
    """A durable log of :class:`Entry` in ``partitions`` partitions (see the module doc)."""

    partitions: int

    def partition_of(self, organisation_id: int) -> int:
        return organisation_id % self.partitions

    @abstractmethod
    def submit(self, entries: Sequence[Entry]) -> Future[None]:
        """Append ``entries`` (their ``partition``/``first`` are set); the future is done once
        they are durable (entries submitted together or at about the same time are committed
        together), or fails with the reason they could not be written."""

    def append(self, entries: Sequence[Entry]) -> None:
        """:meth:`submit` and wait: durable on return."""
        self.submit(entries).result()

    @abstractmethod
    def read(self, partition: int, offset: int, limit: int) -> list[Entry]:
        """Entries of ``partition`` holding offsets at or after ``offset``, in order, up to
        about ``limit`` messages (at least one entry when there is one). The first entry may
        start before ``offset`` (a consumer that committed inside it skips what it had)."""

    @abstractmethod
    def end(self, partition: int) -> int:
        """The offset the next message appended to ``partition`` will get."""

    @abstractmethod
    def position(self, consumer: str, partition: int) -> Position:
        """Where ``consumer`` resumes in ``partition`` (offset 0, no state, at first)."""

    def committed(self, consumer: str, partition: int) -> int:
        """The offset of :meth:`position` alone (a log may answer it without reading the
        consumer's state, which for detection holds its correlation windows)."""
        return self.position(consumer, partition).offset

    @abstractmethod
    def commit(self, consumer: str, partition: int, position: Position) -> None:
        """Record ``consumer``'s progress in ``partition``; durable on return."""

    @abstractmethod
    def wait(self, partition: int, offset: int, timeout: float) -> bool:
        """Block until ``partition`` holds a message at ``offset`` or ``timeout`` passes."""

    @abstractmethod
    def trim(self, consumers: Sequence[str]) -> int:
        """Delete entries that every consumer in ``consumers`` has passed; how many."""

    @abstractmethod
    def size(self) -> int:
        """Bytes the log takes on disk."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release files and threads."""

    def lag(self, consumer: str) -> int:
        """Messages appended that ``consumer`` has not committed, over all partitions."""
        return sum(
            max(0, self.end(p) - self.committed(consumer, p)) for p in range(self.partitions)
        )
