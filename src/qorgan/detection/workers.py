"""A hunt on several cores: worker processes read files and match single-event rules (the
expensive part); the parent takes their matches back in the input's order and correlates them,
so that its alerts are those of a one-worker hunt, in the same order.

Each worker loads the compiled plan once (unpickled, never recompiled) and takes the next task
from a shared queue: a file, or a span of a file of JSON lines (:func:`~qorgan.telemetry.
sources.spans`, so that one big export keeps every worker busy). A span's lines are numbered
from its start; the parent, which merges spans in order, adds the lines of the spans before.
Batches end at span ends in a one-process hunt too, so the batches are the same either way.

For every batch a worker sends back only the events some rule matched, with which rules matched
them: the parent hands them to :meth:`Hunter.matched`, which emits alerts and feeds
correlations exactly as :meth:`Hunter.batch` would have. A worker has at most
:data:`IN_FLIGHT` batches sent and not yet taken by the parent, so memory stays bounded however
far it runs ahead; the parent keeps those out-of-order results until their turn comes. The task
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
from qorgan.detection.indicators import IndicatorSet, indicator_hits
from qorgan.detection.loader import cache_file, default_cache_dir
from qorgan.detection.plan import Plan
from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.errors import TelemetryError
from qorgan.telemetry.formats.base import Span
from qorgan.telemetry.options import ReadOptions
from qorgan.telemetry.quarantine import Quarantine
from qorgan.telemetry.sources import expand_paths, read_file, spans

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
    """The cores this process may run on; given the hunt's ``paths``, no more than the parts
    they are read in (files, or spans of a file of JSON lines), and one per
    :data:`BYTES_PER_WORKER` of them (a small hunt stays in one process)."""
    cores = len(os.sched_getaffinity(0))
    if paths is None:
        return cores
    files = sizes = 0
    try:
        for path in expand_paths(paths):
            files += len(spans(path) or [None])
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
    #: (row, indicator, field) of the indicators the batch held, rows renumbered likewise.
    indicators: list[tuple[int, int, str]] = field(default_factory=list)


@dataclass(slots=True)
class _Message:
    task: int
    worker: int
    matches: Matches | None = None
    quarantined: list[tuple[str, int, str, str]] = field(default_factory=list)
    done: bool = False
    error: str | None = None
    #: With ``done``, for a task of a :class:`Span`: how many lines it held.
    lines: int = 0


@dataclass(frozen=True, slots=True)
class _Read:
    format_name: str | None
    batch_size: int
    logsource: dict[str, str] | None
    options: ReadOptions
    root: Path | None


def _sparse(
    batch: EventBatch,
    found: list[tuple[int, Any]],
    hits: list[tuple[int, int, str]] | None = None,
) -> Matches:
    """The batch cut down to the rows some rule or indicator matched, with their rows
    renumbered."""
    rules = [(r, rows.tolist()) for r, rows in found]
    hits = hits or []
    keep = sorted({i for _, rows in rules for i in rows}.union(h[0] for h in hits))
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
    return Matches(
        sparse,
        [(r, [where[i] for i in rows]) for r, rows in rules],
        len(batch),
        [(where[row], index, name) for row, index, name in hits],
    )


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
    indicators: bytes | None = None,
) -> None:
    """One worker: files from ``tasks`` until ``None``; a message per batch and per file end."""
    # The forkserver, this process's parent, ends with the hunt: so does this worker, even
    # when the hunt is killed while the worker waits for a slot or a file.
    end_with_parent(os.getppid())
    gc.disable()  # events are acyclic JSON trees (as in run_hunt)
    task = -1
    try:
        known: IndicatorSet | None = pickle.loads(indicators) if indicators else None
        del indicators
        engine = Engine(_load(plan), extra_fields=known.fields if known is not None else ())
        del plan
        quarantine = Quarantine(keep=_KEEP_ALL)
        while (item := tasks.get()) is not None:
            task, path, span = item
            for batch in read_file(
                path,
                quarantine,
                format_name=read.format_name,
                batch_size=read.batch_size,
                logsource=read.logsource,
                options=read.options,
                root=read.root,
                span=span,
            ):
                found = list(engine.match(batch))
                matches = _sparse(batch, found, indicator_hits(known, engine, batch))
                del batch
                slots.acquire()
                results.put(_Message(task, worker, matches, _drain(quarantine)))
            slots.acquire()
            lines = span.lines if span is not None else 0
            results.put(
                _Message(task, worker, quarantined=_drain(quarantine), done=True, lines=lines)
            )
    except MemoryError:
        results.put(_Message(task, worker, done=True, error=_OUT_OF_MEMORY))
    except BaseException:
        results.put(_Message(task, worker, done=True, error=traceback.format_exc()))


def _tasks(
    paths: list[Path], options: ReadOptions, format_name: str | None, root: Path | None
) -> list[tuple[Path, Span | None] | tuple[str, str]]:
    """What workers read, in the input's order: files, or the :class:`Span` s of a file of
    JSON lines; and, as ``(path, reason)``, a path refused before reading."""
    out: list[tuple[Path, Span | None] | tuple[str, str]] = []
    for path in expand_paths(paths, root=root, refused=lambda p, why: out.append((str(p), why))):
        parts = spans(path, options, format_name) or [None]
        out.extend((path, span) for span in parts)
    return out


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
    indicators: IndicatorSet | None = None,
) -> Iterator[Matches]:
    """The matches of every batch of ``paths``, in the order one process would read them,
    from ``workers`` processes. Quarantined records reach ``quarantine`` in that order too.
    ``arrived`` is told of each batch as soon as any worker has read it (for progress: bytes
    read across all workers), whatever its turn. ``indicators`` are matched by the workers
    too (each unpickles its own copy of the set)."""
    order = _tasks(paths, options, format_name, root)
    files = [(i, p, span) for i, (p, span) in enumerate(order) if isinstance(p, Path)]
    context = multiprocessing.get_context("forkserver")
    # The main module too: each worker would import it again (for the CLI, all of qorgan.cli).
    context.set_forkserver_preload(["__main__", __name__])
    tasks = context.Queue()
    results = context.Queue()
    for item in files:
        tasks.put(item)
    count = max(1, min(workers, len(files)))
    lines_before: dict[Path, int] = {}  # lines of a file's spans already merged
    read_to: dict[int, int] = {}  # per task, the offset of its last batch
    read_bytes: dict[str, int] = {}  # per file, bytes read by every worker
    for _ in range(count):
        tasks.put(None)
    read = _Read(format_name, batch_size, logsource, options, root)
    shipped = _shipped(plan)
    packed = pickle.dumps(indicators, protocol=pickle.HIGHEST_PROTOCOL) if indicators else None
    slots = [context.BoundedSemaphore(IN_FLIGHT) for _ in range(count)]
    processes = [
        context.Process(
            target=_work,
            args=(w, shipped, read, tasks, results, slots[w], packed),
            name=f"qorgan-hunt-{w}",
            daemon=True,
        )
        for w in range(count)
    ]
    del shipped, packed
    for process in processes:
        process.start()

    def progressed(task: int, span: Span | None, matches: Matches) -> None:
        # Bytes read of the file across its spans, whichever worker read them.
        batch = matches.batch
        begun = read_to.get(task, span.start if span is not None else 0)
        now = batch.offset if span is None else min(batch.offset, span.end)
        read_to[task] = now
        batch.offset = read_bytes[batch.path] = read_bytes.get(batch.path, 0) + now - begun
        if arrived is not None:
            arrived(matches)

    def spanned(task: int, path: Path, span: Span) -> None:
        # A span read to its end: the bytes after its last batch (lines quarantined, or a
        # long line's tail) count too, and a span without a batch at all.
        try:
            end = min(span.end, path.stat().st_size)
        except OSError:
            return
        if end > read_to.get(task, span.start):
            empty = EventBatch(str(path), "", {}, offset=end)
            progressed(task, span, Matches(empty, [], 0))

    waiting: dict[int, list[_Message]] = {}
    finished = False
    try:
        for task, (item, span) in enumerate(order):
            if isinstance(item, str):
                quarantine.add(item, 0, f"io: {span}")
                continue
            base = lines_before.get(item, 0) if span is not None else 0
            while True:
                queue = waiting.get(task)
                while not queue:
                    message = _next(results, processes)
                    if message.error == _OUT_OF_MEMORY:
                        raise MemoryError("a hunt worker ran out of memory")
                    if message.error is not None:
                        raise WorkerError(message.error)
                    if message.matches is not None:
                        progressed(message.task, order[message.task][1], message.matches)
                    waiting.setdefault(message.task, []).append(message)
                    queue = waiting.get(task)
                message = queue.pop(0)
                slots[message.worker].release()
                for path, record, reason, excerpt in message.quarantined:
                    quarantine.add(path, record + base if record else 0, reason, excerpt)
                if message.done:
                    del waiting[task]
                    if span is not None:
                        lines_before[item] = base + message.lines
                        spanned(task, item, span)
                    break
                assert message.matches is not None
                if base:
                    records = message.matches.batch.records
                    records[:] = [r + base for r in records]
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
