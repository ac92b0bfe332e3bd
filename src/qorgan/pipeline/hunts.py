"""Hunt jobs: a hunt over uploaded or server-side log files, run in the background, its alerts
going into the alert store as they are found.

:func:`create_hunt` records the job (a service: ``*, session``, no commit). :func:`execute`
runs it: each batch of alerts is ingested in its own unit of work, so what was found stays
found even if the hunt later fails, and a re-run of the same files creates no duplicates.
:class:`HuntRunner` runs jobs one at a time, each in a child process
(:mod:`qorgan.pipeline.worker`) with an address-space limit, so no hunt can take the serving
process down; a child that dies leaves its hunt failed with the reason. At start-up,
:meth:`HuntRunner.recover` marks jobs a previous process left unfinished as failed.

A hunt created with ``anomaly`` also runs the AI models its organisation approved (the model
register, :mod:`qorgan.pipeline.anomaly`), from fresh baselines (a hunt looks at old logs; it
does not move live monitoring's baselines), leaving out people who objected and patterns
rejected before. Their findings are stored as pending findings linked to the hunt, never as
alerts; a person decides on each. The models need every event in order, so such a hunt reads
and matches in one process.

Server-side files live in one folder per organisation, ``<hunt root>/<organisation id>/``
(:func:`hunt_folder`); a server hunt reads nothing outside its organisation's folder.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import audit
from qorgan.core.db import unit_of_work, utcnow
from qorgan.core.errors import QorganError
from qorgan.core.settings import Settings
from qorgan.detection.alerts import LEVELS, Alert
from qorgan.detection.anomaly.defaults import default_suite
from qorgan.detection.anomaly.findings import Finding
from qorgan.detection.hunt import HuntSummary, run_hunt
from qorgan.detection.loader import BUILTIN_RULES, default_cache_dir, load_plan
from qorgan.detection.logsources import LogsourceMap
from qorgan.detection.plan import Plan
from qorgan.detection.workers import default_workers
from qorgan.incidents.alerts import store
from qorgan.incidents.findings import FindingError, exclusion_key, save_findings
from qorgan.pipeline.alerting import stored_bodies
from qorgan.pipeline.anomaly import LiveAnomaly, storable_findings
from qorgan.pipeline.models import Hunt, HuntSource, HuntStatus
from qorgan.pipeline.worker import MEMORY_EXIT
from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.options import DEFAULT_OPTIONS, MiB, ReadOptions
from qorgan.telemetry.quarantine import Quarantine
from qorgan.telemetry.sources import expand_paths

log = logging.getLogger(__name__)

#: Least time between two progress writes to the hunt's row.
PROGRESS_INTERVAL = 0.5
#: The error of hunts a previous process left queued or running.
INTERRUPTED = "interrupted by a restart"
MAX_ERROR = 1000

PlanSource = Plan | Callable[[], Plan]
#: What a hunt process that ran out of memory may write before it dies: Python's error, a
#: library refused a mapping (an import), Rust's or OpenBLAS's allocation failures.
OUT_OF_MEMORY = (
    "MemoryError",
    "failed to map segment",
    "Cannot allocate memory",
    "memory allocation of",
    "Memory allocation still failed",
)


def memory_error(limit_mib: int | None) -> str:
    """The error of a hunt that ran out of memory."""
    if limit_mib is None:
        return "the hunt ran out of memory"
    return f"the hunt exceeded its memory limit of {limit_mib} MiB"


class HuntError(QorganError):
    """A hunt cannot be created or run as asked; the message is fit for the user."""


@functools.cache
def default_plan() -> Plan:
    """The built-in rule pack, compiled once per process (and cached on disk, as the CLI does)."""
    return load_plan([BUILTIN_RULES], logsources=LogsourceMap.load(), cache_dir=default_cache_dir())


@dataclass(frozen=True)
class PlanSpec:
    """Which rules a hunt process compiles: data, not a function, so that a child process can
    load the plan itself (from the disk cache, keyed by the rules' content)."""

    folders: tuple[Path, ...] = (BUILTIN_RULES,)
    #: Where compiled plans are cached; None: the default cache folder.
    cache_dir: Path | None = None

    def load(self) -> Plan:
        return load_plan(
            self.folders,
            logsources=LogsourceMap.load(),
            cache_dir=self.cache_dir or default_cache_dir(),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "folders": [str(f) for f in self.folders],
            "cache_dir": str(self.cache_dir) if self.cache_dir else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlanSpec:
        cache_dir = data.get("cache_dir")
        return cls(tuple(Path(f) for f in data["folders"]), Path(cache_dir) if cache_dir else None)


def hunt_folder(hunt_root: Path, organisation_id: int) -> Path:
    """The organisation's own folder of server-side files: ``<hunt root>/<organisation id>``."""
    return hunt_root / str(organisation_id)


def read_options(settings: Settings) -> ReadOptions:
    """How console hunts read their files, from the settings."""
    return ReadOptions(
        tz=ZoneInfo(settings.timezone),
        max_record_bytes=settings.hunt_max_record_mib * MiB,
        max_decompressed_bytes=settings.hunt_max_decompressed_mib * MiB,
        max_compression_ratio=settings.hunt_max_compression_ratio,
    )


# --------------------------------------------------------------------------- the service


def _sizes(paths: list[Path], root: Path | None) -> dict[str, int]:
    try:
        files = list(expand_paths(paths, root=root))
    except QorganError as exc:
        raise HuntError(exc.message, source=exc.source) from None
    sizes = {}
    for path in files:
        try:
            sizes[str(path)] = path.stat().st_size
        except OSError as exc:
            raise HuntError(f"cannot read: {exc.strerror or exc}", source=str(path)) from None
    return sizes


def create_hunt(
    *,
    session: Session,
    organisation_id: int,
    user_id: int | None,
    paths: list[Path],
    source: HuntSource | str,
    root: Path | None = None,
    anomaly: bool = False,
) -> Hunt:
    """A queued hunt over ``paths`` (files or directories, which must exist now; kept as
    absolute paths); hand its id to :meth:`HuntRunner.submit` once the unit of work has
    committed. With ``root``, files outside that folder are not counted (nor read later).
    With ``anomaly``, the organisation's approved AI models score the events too."""
    if not paths:
        raise HuntError("a hunt needs at least one file or directory")
    try:
        kind = HuntSource(source)
    except ValueError:
        raise HuntError(f"unknown hunt source {source!r}; use upload or server") from None
    sizes = _sizes(paths, root)
    hunt = Hunt(
        organisation_id=organisation_id,
        created_by=user_id,
        status=HuntStatus.queued,
        source=kind,
        paths=[str(p.absolute()) for p in paths],
        total_bytes=sum(sizes.values()),
        anomaly=anomaly,
    )
    session.add(hunt)
    session.flush()
    audit.record(
        "hunt.create",
        session=session,
        actor=_actor(user_id),
        organisation_id=organisation_id,
        target_type="hunt",
        target_id=hunt.id,
        # Counts only: file names may name people.
        details={
            "source": str(kind),
            "files": len(sizes),
            "total_bytes": hunt.total_bytes,
            "anomaly": anomaly,
        },
    )
    return hunt


def get_hunt(*, session: Session, organisation_ids: Collection[int], hunt_id: int) -> Hunt | None:
    """The hunt, or None when there is none among the organisations' hunts."""
    hunt = session.get(Hunt, hunt_id)
    if hunt is None or hunt.organisation_id not in set(organisation_ids):
        return None
    return hunt


def list_hunts(
    *, session: Session, organisation_ids: Collection[int], limit: int = 20
) -> list[Hunt]:
    """The organisations' most recent hunts, newest first."""
    if not organisation_ids:
        return []
    return list(
        session.scalars(
            select(Hunt)
            .where(Hunt.organisation_id.in_(sorted(set(organisation_ids))))
            .order_by(Hunt.created_at.desc(), Hunt.id.desc())
            .limit(limit)
        )
    )


def quarantine_path(hunt: Hunt) -> Path | None:
    """Where the records an uploaded hunt could not read are kept (JSON lines): next to the
    uploaded files, hidden, so a later hunt over the folder does not read it as a log. Server
    hunts keep only the count: their folders are not Qorgan's to write in."""
    if hunt.source is not HuntSource.upload or not hunt.paths:
        return None
    return Path(hunt.paths[0]).parent / f".hunt-{hunt.id}-quarantine.jsonl"


def recover_interrupted(*, session: Session) -> list[int]:
    """Mark hunts left queued or running (by a process that stopped) as failed; their ids."""
    stale = session.scalars(
        select(Hunt)
        .where(Hunt.status.in_([HuntStatus.queued, HuntStatus.running]))
        .order_by(Hunt.id)
        .with_for_update()
    ).all()
    for hunt in stale:
        _fail(session, hunt, INTERRUPTED, interrupted=True)
    return [hunt.id for hunt in stale]


def fail_unfinished(*, session: Session, hunt_id: int, error: str) -> bool:
    """Mark the hunt failed with ``error`` if it is still queued or running (its process
    stopped without ending it); whether it was."""
    hunt = session.scalar(select(Hunt).where(Hunt.id == hunt_id).with_for_update())
    if hunt is None or hunt.status not in (HuntStatus.queued, HuntStatus.running):
        return False
    _fail(session, hunt, error[:MAX_ERROR], interrupted=error == INTERRUPTED)
    return True


def _fail(session: Session, hunt: Hunt, error: str, *, interrupted: bool) -> None:
    old = hunt.status
    hunt.status = HuntStatus.failed
    hunt.error = error
    hunt.finished_at = utcnow()
    details: dict[str, Any] = {"status": str(HuntStatus.failed), "was": str(old)}
    details["interrupted" if interrupted else "error"] = True if interrupted else error
    audit.record(
        "hunt.finish",
        session=session,
        actor="system",
        organisation_id=hunt.organisation_id,
        target_type="hunt",
        target_id=hunt.id,
        details=details,
    )


def _actor(user_id: int | None) -> str:
    return str(user_id) if user_id is not None else "system"


# --------------------------------------------------------------------------- running a hunt


@dataclass
class _Job:
    """What the worker needs of the hunt's row, read once at the start."""

    id: int
    organisation_id: int
    actor: str
    paths: list[Path]
    total_bytes: int
    quarantine: Path | None
    #: Nothing outside this folder is read (a server hunt: its organisation's folder).
    root: Path | None
    #: Whether the organisation's approved AI models score the events too.
    anomaly: bool = False


@dataclass
class _Progress:
    """Counters written to the hunt's row as the hunt goes."""

    total_bytes: int
    done: dict[str, int] = field(default_factory=dict)
    events: int = 0
    alerts_found: int = 0
    alerts_new: int = 0
    findings: int = 0
    written_at: float = 0.0

    def values(self, quarantine: Quarantine) -> dict[str, Any]:
        return {
            # A file that grew since the hunt was created does not take progress past 100 %.
            "done_bytes": min(sum(self.done.values()), self.total_bytes),
            "events": self.events,
            "alerts_found": self.alerts_found,
            "alerts_new": self.alerts_new,
            "findings": self.findings,
            "quarantined": quarantine.count,
        }


def _start(factory: sessionmaker[Session], hunt_id: int, hunt_root: Path | None) -> _Job | None:
    with unit_of_work(factory) as session:
        hunt = session.scalar(select(Hunt).where(Hunt.id == hunt_id).with_for_update())
        if hunt is None:
            log.warning("hunt %s: no such hunt", hunt_id)
            return None
        if hunt.status is not HuntStatus.queued:
            log.warning("hunt %s: not queued (%s), not run again", hunt_id, hunt.status)
            return None
        hunt.status = HuntStatus.running
        hunt.started_at = utcnow()
        return _Job(
            id=hunt.id,
            organisation_id=hunt.organisation_id,
            actor=_actor(hunt.created_by),
            paths=[Path(p) for p in hunt.paths],
            total_bytes=hunt.total_bytes,
            quarantine=quarantine_path(hunt),
            root=(
                hunt_folder(hunt_root, hunt.organisation_id)
                if hunt_root is not None and hunt.source is HuntSource.server
                else None
            ),
            anomaly=hunt.anomaly,
        )


def _write(factory: sessionmaker[Session], hunt_id: int, **values: Any) -> None:
    with unit_of_work(factory) as session:
        session.execute(update(Hunt).where(Hunt.id == hunt_id).values(**values))


def _finish(
    factory: sessionmaker[Session],
    job: _Job,
    progress: _Progress,
    quarantine: Quarantine,
    error: str | None,
) -> None:
    status = HuntStatus.failed if error is not None else HuntStatus.done
    values = progress.values(quarantine)
    if error is None:
        values["done_bytes"] = job.total_bytes  # every file was read to its end
    with unit_of_work(factory) as session:
        session.execute(
            update(Hunt)
            .where(Hunt.id == job.id)
            .values(status=status, finished_at=utcnow(), error=error, **values)
        )
        audit.record(
            "hunt.finish",
            session=session,
            actor=job.actor,
            organisation_id=job.organisation_id,
            target_type="hunt",
            target_id=job.id,
            details={
                "status": str(status),
                **{k: v for k, v in values.items() if k != "done_bytes"},
            },
        )


def _message(exc: BaseException) -> str:
    """The error shown on the hunt. Unexpected errors give their first line only: a database
    error's later lines carry the statement's parameters (events), which go to the log."""
    if isinstance(exc, QorganError):
        text = str(exc)
    else:
        first = next(iter(str(exc).splitlines()), "")
        text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text[:MAX_ERROR]


def execute(
    hunt_id: int,
    *,
    factory: sessionmaker[Session],
    plan: PlanSource,
    min_level: str | None = None,
    options: ReadOptions = DEFAULT_OPTIONS,
    hunt_root: Path | None = None,
    memory_limit_mib: int | None = None,
    workers: int = 0,
    anomaly_key: bytes | None = None,
) -> None:
    """Run a queued hunt to the end: status running, then done, or failed with the reason.

    ``plan`` is a compiled plan or a function giving one (called here, so a plan that fails to
    load fails the hunt). ``options`` say how files are read; with ``hunt_root``, a server
    hunt reads nothing outside its organisation's folder. A hunt that runs out of memory
    fails with :func:`memory_error` of ``memory_limit_mib``. ``workers`` processes read and
    match the files (:mod:`qorgan.detection.workers`); 0 chooses by the cores and the input.
    ``anomaly_key`` is the key of the objections' keyed hashes
    (:func:`qorgan.incidents.findings.exclusion_key`), which a hunt that runs the AI models
    needs (it fails without it). Never raises for a hunt's sake: its process (or thread) must
    survive any hunt.
    """
    try:
        job = _start(factory, hunt_id, hunt_root)
    except Exception:
        log.exception("hunt %s: cannot start", hunt_id)
        return
    if job is None:
        return
    progress = _Progress(job.total_bytes)
    quarantine = _quarantine(job)
    error: str | None = None
    try:
        if min_level is not None and min_level not in LEVELS:
            raise HuntError(f"unknown level {min_level!r}; known: {', '.join(LEVELS)}")
        compiled = plan() if callable(plan) else plan
        models = _models(factory, job, progress, anomaly_key) if job.anomaly else {}
        summary, _hunter = run_hunt(
            job.paths,
            compiled,
            sink=functools.partial(_ingest, factory, job, progress, quarantine),
            quarantine=quarantine,
            progress=functools.partial(_progressed, factory, job, progress, quarantine),
            min_level=min_level,
            options=options,
            root=job.root,
            workers=workers or default_workers(job.paths),
            **models,
        )
        progress.events = summary.events
        if summary.events == 0 and quarantine.count:
            first = quarantine.records[0] if quarantine.records else None
            why = f"{Path(first.path).name}: {first.reason}" if first else "see the quarantine"
            raise HuntError(f"no event could be read ({quarantine.count} quarantined; {why})")
    except MemoryError:
        # The events held are freed as the exception unwinds; what remains can record this.
        error = memory_error(memory_limit_mib)
        log.warning("hunt %s: %s", hunt_id, error)
    except Exception as exc:
        error = _message(exc)
        if not isinstance(exc, QorganError):
            log.exception("hunt %s failed", hunt_id)
    finally:
        quarantine.close()
    try:
        _finish(factory, job, progress, quarantine, error)
    except Exception:
        log.exception("hunt %s: cannot record the end", hunt_id)


def _models(
    factory: sessionmaker[Session], job: _Job, progress: _Progress, key: bytes | None
) -> dict[str, Any]:
    """The ``anomaly`` and ``findings`` arguments of :func:`run_hunt` for a hunt that runs the
    AI models: the organisation's approved models with its people's decisions, and a sink
    storing their findings as pending, linked to the hunt."""
    if key is None:
        raise HuntError("the AI models need the key of the objections (privacy_hash_key)")
    live = LiveAnomaly(factory, default_suite, key)
    suite = live.suite(job.organisation_id)
    if not suite.detectors:
        log.info("hunt %s: the organisation approved no AI model; none runs", job.id)

    def found(findings: list[Finding]) -> None:
        bodies = storable_findings(findings)
        if not bodies:
            return
        with unit_of_work(factory) as session:
            result = save_findings(
                session,
                job.organisation_id,
                bodies,
                job.id,
                actor=job.actor,
                exclusion_key=key,
            )
        progress.findings += result.created

    return {"anomaly": suite, "findings": found}


def _quarantine(job: _Job) -> Quarantine:
    """The hunt's quarantine: written to a file for uploads, counted in memory otherwise (and
    when the file cannot be opened: the records are then only counted, not lost silently)."""
    if job.quarantine is not None:
        try:
            return Quarantine.to_file(job.quarantine)
        except OSError as exc:
            log.warning("hunt %s: cannot write the quarantine file: %s", job.id, exc)
    return Quarantine()


def _ingest(
    factory: sessionmaker[Session],
    job: _Job,
    progress: _Progress,
    quarantine: Quarantine,
    alerts: list[Alert],
) -> None:
    """The hunt's sink: validate the batch's alerts and store them in one unit of work."""
    valid = stored_bodies(alerts, quarantine)
    progress.alerts_found += len(alerts)
    if valid:
        with unit_of_work(factory) as session:
            result = store(
                session=session,
                organisation_id=job.organisation_id,
                bodies=valid,
                actor=job.actor,
                hunt_id=job.id,
            )
        progress.alerts_new += result.created


def _progressed(
    factory: sessionmaker[Session],
    job: _Job,
    progress: _Progress,
    quarantine: Quarantine,
    batch: EventBatch,
    summary: HuntSummary,
) -> None:
    # Bytes of the files read so far: finished files whole, the current one to its offset.
    progress.done[batch.path] = batch.offset
    progress.events = summary.events
    now = time.monotonic()
    if now - progress.written_at >= PROGRESS_INTERVAL:
        progress.written_at = now
        _write(factory, job.id, **progress.values(quarantine))


def _anomaly_key(settings: Settings) -> str | None:
    """The objections' key for the child, ``None`` when there is none (production without
    ``QORGAN_PRIVACY_HASH_KEY``: a hunt that runs the models then fails, saying so)."""
    try:
        return exclusion_key(settings).decode("utf-8")
    except FindingError as exc:
        log.warning("hunts cannot run the AI models: %s", exc)
        return None


class HuntRunner:
    """Runs hunts one at a time, each in a child process, from a background thread.

    The child (``python -m qorgan.pipeline.worker``, given its job on standard input, never on
    the command line, where the database password would show) limits its own address space to
    ``settings.hunt_memory_mib``, compiles ``plan`` (the built-in pack and ``settings.rules``
    by default; tests pass a smaller one), runs :func:`execute` and writes progress and alerts
    to the database itself. If it dies without ending its hunt (out of memory, killed), the
    hunt is marked failed here with the reason; the serving process carries on.
    """

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        settings: Settings,
        plan: PlanSpec | None = None,
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.plan = plan or PlanSpec((BUILTIN_RULES, *settings.rules))
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qorgan-hunt")
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._closing = False

    def submit(self, hunt_id: int, *, min_level: str | None = None) -> Future[None]:
        """Queue a committed hunt; the future completes when it has finished (either way)."""
        return self._executor.submit(self._run, hunt_id, min_level)

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop taking hunts; with ``wait``, let queued ones finish first, else stop the one
        running (marked interrupted). Hunts not run stay queued and are marked interrupted by
        :meth:`recover` at the next start."""
        if not wait:
            with self._lock:
                self._closing = True
                if self._child is not None and self._child.poll() is None:
                    self._child.terminate()
        self._executor.shutdown(wait=wait, cancel_futures=not wait)

    def recover(self, factory: sessionmaker[Session] | None = None) -> list[int]:
        """At start-up: mark hunts a previous process left unfinished as failed."""
        with unit_of_work(factory or self.factory) as session:
            return recover_interrupted(session=session)

    def job(self, hunt_id: int, min_level: str | None) -> dict[str, Any]:
        """What the child process is told: plain data (JSON)."""
        settings = self.settings
        return {
            "hunt_id": hunt_id,
            "database_url": settings.database_url,
            "min_level": min_level,
            "plan": self.plan.to_json(),
            "hunt_root": str(settings.hunt_root),
            "memory_mib": settings.hunt_memory_mib,
            "workers": settings.hunt_workers,
            # read by the child over its standard input, like the database password
            "anomaly_key": _anomaly_key(settings),
            "timezone": settings.timezone,
            "max_record_mib": settings.hunt_max_record_mib,
            "max_decompressed_mib": settings.hunt_max_decompressed_mib,
            "max_compression_ratio": settings.hunt_max_compression_ratio,
            "parent": os.getpid(),
        }

    def _run(self, hunt_id: int, min_level: str | None) -> None:
        """Run one hunt in a child process and wait for it; never raises."""
        try:
            code, tail = self._child_run(hunt_id, min_level)
        except Exception as exc:  # the child could not even start
            log.exception("hunt %s: cannot start its process", hunt_id)
            code, tail = None, _message(exc)
        if code == 0:
            return  # the child ended its hunt itself, either way
        error = self._why(code, tail)
        try:
            with unit_of_work(self.factory) as session:
                if fail_unfinished(session=session, hunt_id=hunt_id, error=error):
                    log.warning("hunt %s: %s", hunt_id, error)
        except Exception:
            log.exception("hunt %s: cannot record its failure", hunt_id)

    def _child_run(self, hunt_id: int, min_level: str | None) -> tuple[int, str]:
        """Start the child, hand it the job, wait; its exit code and the end of its stderr."""
        env = dict(os.environ)
        # The child imports qorgan from where this process did, installed or not.
        source = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
        with tempfile.TemporaryFile() as stderr:
            with self._lock:
                if self._closing:
                    return -signal.SIGTERM, ""
                child = subprocess.Popen(
                    [sys.executable, "-m", "qorgan.pipeline.worker"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    env=env,
                    close_fds=True,
                )
                self._child = child
            try:
                assert child.stdin is not None
                try:
                    child.stdin.write(orjson.dumps(self.job(hunt_id, min_level)))
                    child.stdin.close()
                except BrokenPipeError:
                    pass  # the child died at once: its exit code tells why
                code = child.wait()
            finally:
                with self._lock:
                    self._child = None
            stderr.seek(max(0, stderr.seek(0, os.SEEK_END) - 4096))
            tail = stderr.read().decode("utf-8", "replace")
        if code != 0 and tail.strip():
            # The child's own log: it names the cause, and may quote events (never shown to
            # users, only logged here, like any hunt error).
            log.warning("hunt %s: its process ended with %s:\n%s", hunt_id, code, tail)
        return code, tail

    def _why(self, code: int | None, tail: str) -> str:
        """The hunt's error when its process ended without recording one."""
        limit = self.settings.hunt_memory_mib
        if self._closing:
            return INTERRUPTED
        if code == MEMORY_EXIT or any(sign in tail for sign in OUT_OF_MEMORY):
            return memory_error(limit)
        if code is None:
            return f"the hunt could not start: {tail}"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return (
                f"the hunt's process was stopped by {name} "
                f"(it may have exceeded its memory limit of {limit} MiB)"
            )
        return f"the hunt's process failed (exit code {code})"
