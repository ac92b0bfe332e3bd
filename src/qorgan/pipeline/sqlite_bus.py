"""The embedded :class:`~qorgan.pipeline.bus.Bus`: one SQLite file in WAL mode.

One writer thread takes every waiting entry, gives them their offsets, inserts them in one
transaction and commits (``synchronous=FULL``: the commit is on disk, so a power cut loses
nothing acknowledged), then completes their futures: many receivers share each commit (group
commit), which is what lets small batches reach tens of thousands of messages a second.
Readers and offset commits use their own connections; WAL lets them run beside the writer,
also from other processes (``qorgan collect`` with detection in a child process).
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

from qorgan.pipeline.bus import Bus, Entry, Position, decode, encode

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    partition INTEGER NOT NULL,
    first INTEGER NOT NULL,
    count INTEGER NOT NULL,
    source_id INTEGER NOT NULL,
    organisation_id INTEGER NOT NULL,
    received REAL NOT NULL,
    peer TEXT NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (partition, first)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS positions (
    consumer TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    state BLOB,
    updated REAL NOT NULL,
    PRIMARY KEY (consumer, partition)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
#: Most bytes of messages committed in one transaction.
MAX_COMMIT_BYTES = 16 << 20
_STOP = object()


def connect(path: Path, *, synchronous: str = "FULL") -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    return connection


class SqliteBus(Bus):
    """See the module doc. ``partitions`` is fixed when the file is made; opening an existing
    file with another number is refused (offsets would no longer match organisations)."""

    def __init__(self, path: Path, partitions: int = 1, *, writer: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        setup = connect(path)
        setup.executescript(SCHEMA)
        setup.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('partitions', ?)", (partitions,)
        )
        (stored,) = setup.execute("SELECT value FROM meta WHERE key = 'partitions'").fetchone()
        if stored != partitions:
            setup.close()
            raise ValueError(f"{path} has {stored} partitions, not {partitions}")
        self.partitions = partitions
        self._ends = [self._stored_end(setup, p) for p in range(partitions)]
        setup.close()
        self._appended = threading.Condition()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        if writer:
            self._thread = threading.Thread(target=self._write_loop, name="bus-writer", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ writing

    @staticmethod
    def _stored_end(connection: sqlite3.Connection, partition: int) -> int:
        row = connection.execute(
            "SELECT first + count FROM entries WHERE partition = ? ORDER BY first DESC LIMIT 1",
            (partition,),
        ).fetchone()
        if row is not None:
            return int(row[0])
        # Everything trimmed: the end is where consumers got to.
        (done,) = connection.execute(
            "SELECT COALESCE(MAX(offset), 0) FROM positions WHERE partition = ?", (partition,)
        ).fetchone()
        return int(done)

    def submit(self, entries: Sequence[Entry]) -> Future[None]:
        future: Future[None] = Future()
        if self._thread is None:
            future.set_exception(RuntimeError("this bus was opened read-only"))
        else:
            self._queue.put((list(entries), future))
        return future

    def _write_loop(self) -> None:
        connection = connect(self.path)
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                batch = [item]
                size = sum(sum(map(len, e.messages)) for e in item[0])  # type: ignore[index]
                while size < MAX_COMMIT_BYTES:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is _STOP:
                        self._queue.put(_STOP)
                        break
                    batch.append(more)
                    size += sum(sum(map(len, e.messages)) for e in more[0])  # type: ignore[index]
                self._commit(connection, batch)  # type: ignore[arg-type]
        finally:
            connection.close()

    def _commit(
        self, connection: sqlite3.Connection, batch: list[tuple[list[Entry], Future[None]]]
    ) -> None:
        ends = list(self._ends)
        rows = []
        for entries, _future in batch:
            for entry in entries:
                if not entry.messages:
                    continue
                entry.partition = self.partition_of(entry.organisation_id)
                entry.first = ends[entry.partition]
                ends[entry.partition] += len(entry.messages)
                rows.append(
                    (
                        entry.partition,
                        entry.first,
                        len(entry.messages),
                        entry.source_id,
                        entry.organisation_id,
                        entry.received,
                        entry.peer,
                        encode(entry.messages),
                    )
                )
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            for _entries, future in batch:
                future.set_exception(OSError(f"the event log could not be written: {exc}"))
            return
        with self._appended:
            self._ends = ends
            self._appended.notify_all()
        for _entries, future in batch:
            future.set_result(None)

    # ------------------------------------------------------------------ reading

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = connect(self.path)
        return connection

    def read(self, partition: int, offset: int, limit: int) -> list[Entry]:
        cursor = self._connection().execute(
            "SELECT first, count, source_id, organisation_id, received, peer, payload "
            "FROM entries WHERE partition = ? AND first >= ? ORDER BY first",
            (partition, self._floor(partition, offset)),
        )
        out: list[Entry] = []
        total = 0
        try:
            for first, count, source_id, organisation_id, received, peer, payload in cursor:
                if first + count <= offset:
                    continue
                out.append(
                    Entry(
                        source_id=source_id,
                        organisation_id=organisation_id,
                        received=received,
                        messages=decode(payload),
                        peer=peer,
                        partition=partition,
                        first=first,
                    )
                )
                total += count
                if total >= limit:
                    break
        finally:
            cursor.close()
        return out

    def _floor(self, partition: int, offset: int) -> int:
        row = (
            self._connection()
            .execute(
                "SELECT first FROM entries WHERE partition = ? AND first <= ? "
                "ORDER BY first DESC LIMIT 1",
                (partition, offset),
            )
            .fetchone()
        )
        return int(row[0]) if row is not None else 0

    def end(self, partition: int) -> int:
        if self._thread is not None:
            return self._ends[partition]
        return self._stored_end(self._connection(), partition)

    def position(self, consumer: str, partition: int) -> Position:
        row = (
            self._connection()
            .execute(
                "SELECT offset, state FROM positions WHERE consumer = ? AND partition = ?",
                (consumer, partition),
            )
            .fetchone()
        )
        return Position(0) if row is None else Position(int(row[0]), row[1])

    def committed(self, consumer: str, partition: int) -> int:
        row = (
            self._connection()
            .execute(
                "SELECT offset FROM positions WHERE consumer = ? AND partition = ?",
                (consumer, partition),
            )
            .fetchone()
        )
        return 0 if row is None else int(row[0])

    def commit(self, consumer: str, partition: int, position: Position) -> None:
        self._connection().execute(
            "INSERT INTO positions (consumer, partition, offset, state, updated) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (consumer, partition) DO UPDATE SET "
            "offset = excluded.offset, state = excluded.state, updated = excluded.updated",
            (consumer, partition, position.offset, position.state, time.time()),
        )

    def wait(self, partition: int, offset: int, timeout: float) -> bool:
        if self._thread is None:  # another process writes: poll
            deadline = time.monotonic() + timeout
            while self.end(partition) <= offset:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                time.sleep(min(0.05, left))
            return True
        with self._appended:
            return self._appended.wait_for(lambda: self._ends[partition] > offset, timeout)

    def trim(self, consumers: Sequence[str]) -> int:
        connection = self._connection()
        deleted = 0
        for partition in range(self.partitions):
            done = min((self.committed(c, partition) for c in consumers), default=0)
            cursor = connection.execute(
                "DELETE FROM entries WHERE partition = ? AND first + count <= ?",
                (partition, done),
            )
            deleted += cursor.rowcount
        return deleted

    def size(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                total += Path(f"{self.path}{suffix}").stat().st_size
        return total

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
