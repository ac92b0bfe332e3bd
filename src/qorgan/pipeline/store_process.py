"""Alert storage in a process of its own, so that storing one batch's alerts (most of
detection's time when many events alert: the inbox's indexes, its full-text index, the tallies)
runs on another core while the detection thread reads and detects the next batch.

The detector hands over a batch's alert bodies by organisation (checked by
:func:`qorgan.pipeline.alerting.stored_bodies`, then given their fingerprints, observables and
search texts: :class:`qorgan.incidents.alerts.Prepared`) and, when a commit is due, the offset
stored up to with the correlation windows as they were there; the process stores the alerts
(:func:`qorgan.incidents.alerts.store`, idempotent), *then* commits that position to the event
log, and answers. One request is in flight at a time.

Frames on the pipes are an 8-byte length and a pickle (both ends are this module, started by
this process; nothing else writes to them). The process reads its requests from its stdin:
when the collector dies, even by SIGKILL, the pipe ends and so does the process, after the
request in hand (storing is idempotent, and a position it commits is one whose alerts are
stored).
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import select
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy.exc import SQLAlchemyError

from qorgan.incidents.alerts import Prepared

log = logging.getLogger(__name__)

_LENGTH = struct.Struct("<Q")
#: SQLite's page cache for the store's connection (KiB): the alerts table's eleven indexes are
#: inserted into at random places, and SQLite's default 2 MiB held few of their pages.
CACHE_KIB = 256 * 1024


class StoreError(RuntimeError):
    """The store process could not store a batch (the message says why) or is gone."""


@dataclass(frozen=True)
class Batch:
    """One batch's alerts and, when due, the position to commit once they are stored."""

    partition: int
    bodies: dict[int, Prepared]  # by organisation
    commit: tuple[int, bytes | None] | None = None  # (offset, correlation state)


def _write(stream: IO[bytes], value: object) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def _read(stream: IO[bytes]) -> Any:
    """The next frame, or None at the end of the stream."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)  # our own pipe, from our own parent


class StoreProcess:
    """The parent's handle: start, hand over a batch, wait for its answer, close."""

    def __init__(self, database_url: str, bus_path: Path, partitions: int) -> None:
        self.setup = {
            "database_url": database_url,
            "bus_path": str(bus_path),
            "partitions": partitions,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.pending = False

    def start(self) -> None:
        self.close()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "qorgan.pipeline.store_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdin is not None
        _write(self.process.stdin, self.setup)  # the database URL travels here, not in argv
        self.pending = False

    def submit(self, batch: Batch) -> None:
        if self.process is None or self.process.poll() is not None:
            self.start()
        assert self.process is not None and self.process.stdin is not None
        try:
            _write(self.process.stdin, batch)
        except (BrokenPipeError, OSError) as exc:
            self.close()
            raise StoreError(f"the store process is gone: {exc}") from exc
        self.pending = True

    def answered(self) -> bool:
        """Whether the answer to the batch handed over has arrived (without waiting)."""
        if self.process is None or self.process.stdout is None:
            return True
        readable, _, _ = select.select([self.process.stdout], [], [], 0)
        return bool(readable)

    def result(self) -> int:
        """Wait for the answer to the batch handed over: how many alerts were new."""
        if not self.pending:
            return 0
        self.pending = False
        assert self.process is not None and self.process.stdout is not None
        answer = _read(self.process.stdout)
        if answer is None:
            code = self.process.poll()
            self.close()
            raise StoreError(f"the store process ended (exit code {code})")
        kind, value = answer
        if kind != "ok":
            raise StoreError(str(value))
        return int(value)

    def close(self, timeout: float = 30.0) -> None:
        process, self.process = self.process, None
        self.pending = False
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def main() -> int:
    """The child: serve batches from stdin until it ends."""
    from qorgan.core.db import make_engine, session_factory, unit_of_work
    from qorgan.core.settings import get_settings
    from qorgan.incidents.alerts import store
    from qorgan.pipeline.bus import Position
    from qorgan.pipeline.detector import ACTOR
    from qorgan.pipeline.intake import DETECTION
    from qorgan.pipeline.sqlite_bus import SqliteBus

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s store: %(message)s")
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    setup = _read(requests)
    if setup is None:
        return 0
    engine = make_engine(get_settings(database_url=setup["database_url"]))
    if engine.dialect.name == "sqlite":
        from sqlalchemy import event

        @event.listens_for(engine, "connect")
        def _cache(connection: Any, _record: Any) -> None:
            connection.execute(f"PRAGMA cache_size = -{CACHE_KIB}")

    factory = session_factory(engine)
    bus = SqliteBus(Path(setup["bus_path"]), setup["partitions"], writer=False)
    try:
        while (batch := _read(requests)) is not None:
            try:
                created = 0
                for organisation_id, bodies in batch.bodies.items():
                    with unit_of_work(factory) as session:
                        created += store(
                            session=session,
                            organisation_id=organisation_id,
                            bodies=bodies,
                            actor=ACTOR,
                        ).created
                if batch.commit is not None:
                    offset, state = batch.commit
                    bus.commit(DETECTION, batch.partition, Position(offset, state))
            except (SQLAlchemyError, OSError) as exc:
                _write(answers, ("error", f"alerts could not be stored: {exc}"))
                continue
            except Exception as exc:  # a bug: said, and the batch is read again
                log.exception("storing a batch failed")
                _write(answers, ("error", f"storing failed: {type(exc).__name__}: {exc}"))
                continue
            _write(answers, ("ok", created))
    except BrokenPipeError:
        pass  # the collector is gone
    finally:
        bus.close()
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
