"""A hunt on several cores: worker processes read files and match single-event rules (the
expensive part); the parent takes their matches back in the input's order and correlates them,
so that its alerts are those of a one-worker hunt, in the same order.

Each worker loads the compiled plan once (unpickled, never recompiled) and takes the next file
from a shared queue. For every batch it sends back only the events some rule matched, with which
rules matched them: the parent hands them to :meth:`Hunter.matched`, which emits alerts and
feeds correlations exactly as :meth:`Hunter.batch` would have. A worker has at most
:data:`IN_FLIGHT` batches sent and not yet taken by the parent, so memory stays bounded however
far it runs ahead; the parent keeps those out-of-order results until their turn comes. The file
the parent waits for is always the oldest of its worker's, so its batches are never held back.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import queue as queue_module
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qorgan.core.processes import end_with_parent
from qorgan.detection.engine import Engine
from qorgan.detection.loader import cache_file, default_cache_dir
from qorgan.detection.plan import Plan
from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.errors import TelemetryError
from qorgan.telemetry.options import ReadOptions
from qorgan.telemetry.quarantine import Quarantine
from qorgan.telemetry.sources import expand_paths, read_file

#: Batches a worker may have sent that the parent has not taken yet.
IN_FLIGHT = 4
#: A worker's error when it ran out of memory: raised as MemoryError in the hunt's process.
_OUT_OF_MEMORY = "MemoryError"
#: Records a worker's quarantine keeps between two messages (all are passed on).
_KEEP_ALL = 1 << 62


#: Input bytes (as stored) that keep one more worker busy for longer than it takes to start
#: (about 1.5 s: forkserver, imports, the plan unpickled, the engine built; 2.5 s on a busy
#: machine). Below it, a hunt gains nothing from that worker.
BYTES_PER_WORKER = 32 << 20


def default_workers(paths: list[Path] | None = None) -> int:
    """The cores this process may run on; given the hunt's ``paths``, no more than their
    files, and one per :data:`BYTES_PER_WORKER` of them (a small hunt stays in one process)."""
    cores = len(os.sched_getaffinity(0))
    if paths is None:
        return cores
    files = sizes = 0
    try:
        for path in expand_paths(paths):
            files += 1
            sizes += path.stat().st_size
    except (OSError, TelemetryError):
        return 1  # the hunt itself reports what cannot be read
    return max(1, min(cores, files, sizes // BYTES_PER_WORKER))


@dataclass(slots=True)
class Matches:
    """What a worker found in one batch: the matched events (a sparse :class:`EventBatch`, its
    ``offset`` that of the whole batch), and per rule, in the engine's order, which of them."""

    batch: EventBatch
    rules: list[tuple[int, list[int]]]
    events: int


@dataclass(slots=True)
class _Message:
    task: int
    worker: int
    matches: Matches | None = None
    quarantined: list[tuple[str, int, str, str]] = field(default_factory=list)
    done: bool = False
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _Read:
    format_name: str | None
    batch_size: int
    logsource: dict[str, str] | None
    options: ReadOptions
    root: Path | None


def _sparse(batch: EventBatch, found: list[tuple[int, Any]]) -> Matches:
    """The batch cut down to the rows some rule matched, with the rules' rows renumbered."""
    rules = [(r, rows.tolist()) for r, rows in found]
    keep = sorted({i for _, rows in rules for i in rows})
    where = {old: new for new, old in enumerate(keep)}
    sparse = EventBatch(
        batch.path,
        batch.format,
        batch.logsource,
        [batch.events[i] for i in keep],
        [batch.records[i] for i in keep],
        [batch.times[i] for i in keep],
        [batch.hosts[i] for i in keep],
        batch.offset,
    )
    return Matches(sparse, [(r, [where[i] for i in rows]) for r, rows in rules], len(batch))


def _drain(quarantine: Quarantine) -> list[tuple[str, int, str, str]]:
    out = [(q.path, q.record, q.reason, q.excerpt) for q in quarantine.records]
    quarantine.records.clear()
    return out


def _load(plan: bytes | tuple[Path, str]) -> Plan:
    """The plan a worker was given: pickled, or as the cache file of its key."""
    if isinstance(plan, bytes):
        return pickle.loads(plan)
    path, key = plan
    with path.open("rb") as fh:
        loaded = pickle.load(fh)
    if not isinstance(loaded, Plan) or loaded.key != key:
        raise WorkerError(f"the cached plan {path} is not the hunt's plan")
    return loaded


def _shipped(plan: Plan) -> bytes | tuple[Path, str]:
    """How workers get the plan: by its cache file when it has one (pickling it again costs
    the parent as long as loading it), else pickled here."""
    if plan.key:
        path = cache_file(default_cache_dir(), plan.key)
        if path.is_file():
            return (path, plan.key)
    return pickle.dumps(plan, protocol=pickle.HIGHEST_PROTOCOL)


def _work(
    worker: int,
    plan: bytes | tuple[Path, str],
    read: _Read,
    tasks: Any,
    results: Any,
    slots: Any,
) -> None:
    """One worker: files from ``tasks`` until ``None``; a message per batch and per file end."""
    # The forkserver, this process's parent, ends with the hunt: so does this worker, even
    # when the hunt is killed while the worker waits for a slot or a file.
    end_with_parent(os.getppid())
    gc.disable()  # events are acyclic JSON trees (as in run_hunt)
    task = -1
    try:
        engine = Engine(_load(plan))
        del plan
        quarantine = Quarantine(keep=_KEEP_ALL)
        while (item := tasks.get()) is not None:
            task, path = item
            for batch in read_file(
                path,
                quarantine,
                format_name=read.format_name,
                batch_size=read.batch_size,
                logsource=read.logsource,
                options=read.options,
                root=read.root,
            ):
                matches = _sparse(batch, list(engine.match(batch)))
                del batch
                slots.acquire()
                results.put(_Message(task, worker, matches, _drain(quarantine)))
            slots.acquire()
            results.put(_Message(task, worker, quarantined=_drain(quarantine), done=True))
    except MemoryError:
        results.put(_Message(task, worker, done=True, error=_OUT_OF_MEMORY))
    except BaseException:
        results.put(_Message(task, worker, done=True, error=traceback.format_exc()))


class WorkerError(RuntimeError):
    """A hunt's worker process failed; the message carries its traceback."""


def _next(results: Any, processes: list[Any]) -> _Message:
    """The next message; a worker that died without one (killed, out of memory) fails the
    hunt rather than leaving it waiting."""
    while True:
        try:
            return results.get(timeout=1.0)
        except queue_module.Empty:
            dead = [p for p in processes if p.exitcode not in (None, 0)]
            if dead:
                raise WorkerError(
                    f"{dead[0].name} ended with exit code {dead[0].exitcode}"
                ) from None


def hunt_in_workers(
    paths: list[Path],
    plan: Plan,
    quarantine: Quarantine,
    *,
    workers: int,
    format_name: str | None,
    batch_size: int,
    logsource: dict[str, str] | None,
    options: ReadOptions,
    root: Path | None,
    arrived: Callable[[Matches], None] | None = None,
) -> Iterator[Matches]:
    """The matches of every batch of ``paths``, in the order one process would read them,
    from ``workers`` processes. Quarantined records reach ``quarantine`` in that order too.
    ``arrived`` is told of each batch as soon as any worker has read it (for progress: bytes
    read across all workers), whatever its turn."""
    order: list[Path | tuple[Path, str]] = []
    for path in expand_paths(
        paths, root=root, refused=lambda p, why: order.append((p, f"io: {why}"))
    ):
        order.append(path)
    files = [(i, p) for i, p in enumerate(order) if isinstance(p, Path)]
    context = multiprocessing.get_context("forkserver")
    # The main module too: each worker would import it again (for the CLI, all of qorgan.cli).
    context.set_forkserver_preload(["__main__", __name__])
    tasks = context.Queue()
    results = context.Queue()
    for item in files:
        tasks.put(item)
    count = max(1, min(workers, len(files)))
    for _ in range(count):
        tasks.put(None)
    read = _Read(format_name, batch_size, logsource, options, root)
    shipped = _shipped(plan)
    slots = [context.BoundedSemaphore(IN_FLIGHT) for _ in range(count)]
    processes = [
        context.Process(
            target=_work,
            args=(w, shipped, read, tasks, results, slots[w]),
            name=f"qorgan-hunt-{w}",
            daemon=True,
        )
        for w in range(count)
    ]
    del shipped
    for process in processes:
        process.start()
    waiting: dict[int, list[_Message]] = {}
    finished = False
    try:
        for task, item in enumerate(order):
            if isinstance(item, tuple):
                quarantine.add(str(item[0]), 0, item[1])
                continue
            while True:
                queue = waiting.get(task)
                while not queue:
                    message = _next(results, processes)
                    if message.error == _OUT_OF_MEMORY:
                        raise MemoryError("a hunt worker ran out of memory")
                    if message.error is not None:
                        raise WorkerError(message.error)
                    if message.matches is not None and arrived is not None:
                        arrived(message.matches)
                    waiting.setdefault(message.task, []).append(message)
                    queue = waiting.get(task)
                message = queue.pop(0)
                slots[message.worker].release()
                for record in message.quarantined:
                    quarantine.add(*record)
                if message.done:
                    del waiting[task]
                    break
                assert message.matches is not None
                yield message.matches
        finished = True
    finally:
        for process in processes:
            if finished:
                process.join()
            else:
                process.terminate()
                process.join()
        tasks.close()
        results.close()
