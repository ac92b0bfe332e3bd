"""Group commit for access decisions: the requests that arrive while a transaction is being
written wait for the next one and share it, so that a busy service pays for one commit (and
a few round trips) per batch instead of per decision, and still answers each request only
after the transaction holding its decision has committed.

Each of a few writer threads per process takes whatever is queued (up to ``most``), looks up the
systems by token, decides the batch with :func:`qorgan.privacy.decisions.record_many` and
commits; then it answers every request of the batch. Under light load a batch is a single
request and nothing waits; under heavy load batches grow by themselves.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from qorgan.core.db import unit_of_work
from qorgan.privacy import decisions, registry
from qorgan.privacy.decisions import AccessRequest, Ask, Decision, DecisionError
from qorgan.privacy.protection import Protection


class UnknownToken(DecisionError):
    """No enabled information system has this token."""


@dataclass
class _Pending:
    token: str
    request: AccessRequest
    reported: bool
    future: Future[Decision] = field(default_factory=Future)


class DecisionBatcher:
    """Decides requests in shared transactions on a thread of its own (see the module)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        keys: Callable[[], Protection],
        *,
        most: int = 256,
        writers: int = 2,
    ) -> None:
        """``keys`` gives the service's keys when a batch needs them (reading them may make
        them, or refuse to run without them in production: not before the first request).
        ``writers`` threads each write a batch, so that one is decided while another waits
        for its commit to reach the disk."""
        self.factory, self.keys, self.most, self.writers = factory, keys, most, writers
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.batches = 0  # how many transactions were written (for tests and figures)

    def submit(
        self, token: str, request: AccessRequest, reported: bool = False
    ) -> Future[Decision]:
        """Queue the request; the future gives its decision once committed, or raises
        :class:`UnknownToken`, :class:`DecisionError` or the database's error."""
        pending = _Pending(token, request, reported)
        with self._lock:
            if not self._threads:
                self._threads = [
                    threading.Thread(target=self._run, name=f"privacy-decisions-{n}", daemon=True)
                    for n in range(self.writers)
                ]
                for thread in self._threads:
                    thread.start()
            self._queue.put(pending)
        return pending.future

    def close(self, timeout: float = 30) -> None:
        """Decide what is queued, then stop the threads."""
        with self._lock:
            threads, self._threads = self._threads, []
            for _thread in threads:
                self._queue.put(None)
        for thread in threads:
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.most:
                try:
                    following = self._queue.get_nowait()
                except queue.Empty:
                    break
                if following is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(following)
            self._decide([p for p in batch if p.future.set_running_or_notify_cancel()])

    def _decide(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        try:
            with unit_of_work(self.factory) as session:
                systems = registry.systems_by_tokens(
                    session=session, tokens={p.token for p in batch}
                )
                known = [p for p in batch if p.token in systems]
                asks = [Ask(systems[p.token], p.request, p.reported) for p in known]
                answers = decisions.record_many(session=session, protection=self.keys(), asks=asks)
        except BaseException as exc:  # nothing of the batch committed: each request fails
            for pending in batch:
                pending.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        with self._lock:
            self.batches += 1
        answered = dict(zip((id(p) for p in known), answers, strict=True))
        for pending in batch:
            found = answered.get(id(pending), UnknownToken("unknown token"))
            if isinstance(found, DecisionError):
                pending.future.set_exception(found)
            else:
                pending.future.set_result(found)
