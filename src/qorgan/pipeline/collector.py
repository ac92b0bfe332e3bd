"""The collector: receivers, intake, the durable log, streaming detection and the archive,
with the housekeeping that keeps the Sources page and the metrics current. ``qorgan collect``
runs one on its own; ``qorgan serve`` runs one in-process so the console shows live monitoring
at once.

Threads: the receivers' event loop; one detection consumer per partition (whose alerts a
:class:`~qorgan.pipeline.store_process.StoreProcess` stores, on another core); the archive
consumer; the backlog check (every 0.2 s, alone so that a slow database cannot delay
backpressure); housekeeping (figures flushed every 2 s; silences, UDP losses and trimming every
10 s). :meth:`Collector.stop` stops them in order (receivers first,
so nothing is acknowledged that detection will not see after a restart anyway).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core.db import unit_of_work
from qorgan.core.settings import Settings
from qorgan.detection.anomaly.defaults import default_suite
from qorgan.detection.indicator_files import OrganisationIndicators
from qorgan.detection.plan import Plan
from qorgan.incidents.findings import exclusion_key
from qorgan.pipeline import source_stats
from qorgan.pipeline.anomaly import LiveAnomaly
from qorgan.pipeline.archive import ARCHIVE, Archiver
from qorgan.pipeline.bus import Bus
from qorgan.pipeline.detector import Detector
from qorgan.pipeline.intake import DETECTION, Intake
from qorgan.pipeline.listeners import ListenerConfig, Receivers, receive_errors
from qorgan.pipeline.sources import Directory
from qorgan.pipeline.sqlite_bus import SqliteBus
from qorgan.pipeline.store_process import StoreProcess

log = logging.getLogger(__name__)

CHECK_EVERY = 0.2
FLUSH_EVERY = 2.0
SWEEP_EVERY = 10.0


@dataclass
class CollectorConfig:
    """What a collector listens on and how much it holds (from :class:`Settings`)."""

    listeners: ListenerConfig
    bus_path: Path
    archive_root: Path | None
    partitions: int = 1
    max_lag: int = 1_000_000
    max_log_bytes: int = 4 << 30
    archive_days: int = 30
    archive_days_by_organisation: dict[int, int] = field(default_factory=dict)
    #: Alerts are stored by a process of their own per partition (another core) while
    #: detection goes on; off, by the detection thread itself.
    store_process: bool = False
    #: Where ``qorgan intel indicators`` writes each organisation's indicators for live
    #: monitoring (``indicators-<id>.jsonl``); None: rules only.
    indicators_dir: Path | None = None
    #: Run the AI anomaly models on every event too (their findings wait for a person), with
    #: this key of the objections' keyed hashes; None: rules and indicators only.
    anomaly_key: bytes | None = None

    @classmethod
    def of(cls, settings: Settings) -> CollectorConfig:
        return cls(
            listeners=ListenerConfig.of(settings),
            bus_path=settings.var_dir / "bus" / "log.db",
            archive_root=settings.var_dir / "events"
            if settings.archive_days > 0 or any(settings.archive_days_by_organisation.values())
            else None,
            partitions=settings.collect_partitions,
            max_lag=settings.collect_max_lag,
            max_log_bytes=settings.collect_max_log_mib << 20,
            archive_days=settings.archive_days,
            archive_days_by_organisation=dict(settings.archive_days_by_organisation),
            store_process=True,
            indicators_dir=settings.var_dir / "intel",
            anomaly_key=exclusion_key(settings),
        )


class Collector:
    """See the module doc."""

    def __init__(
        self,
        config: CollectorConfig,
        *,
        factory: sessionmaker[Session],
        plan: Callable[[], Plan],
        bus: Bus | None = None,
    ) -> None:
        self.config = config
        self.factory = factory
        self.bus = bus or SqliteBus(config.bus_path, config.partitions)
        self.directory = Directory(factory)
        self.intake = Intake(
            self.bus,
            self.directory,
            max_lag=config.max_lag,
            max_log_bytes=config.max_log_bytes,
        )
        database = _database_url(factory) if config.store_process and bus is None else None
        # One reader of the indicator files for every partition: one set per organisation
        # in memory, however many detectors use it.
        indicators = (
            OrganisationIndicators(config.indicators_dir)
            if config.indicators_dir is not None
            else None
        )
        self.detectors = [
            Detector(
                self.bus,
                p,
                plan=plan,
                factory=factory,
                directory=self.directory,
                store_process=StoreProcess(database, config.bus_path, self.bus.partitions)
                if database is not None
                else None,
                indicators=indicators,
                anomaly=LiveAnomaly(factory, default_suite, config.anomaly_key)
                if config.anomaly_key is not None
                else None,
            )
            for p in range(self.bus.partitions)
        ]
        self.archiver = (
            Archiver(
                self.bus,
                config.archive_root,
                self.directory,
                days=config.archive_days,
                days_by_organisation=config.archive_days_by_organisation,
            )
            if config.archive_root is not None
            else None
        )
        self.receivers: Receivers | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._udp_errors: int | None = None
        self.alerts = 0

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        """Start every thread; returns once the listeners are bound (see :attr:`ports`)."""
        self.directory.reload()
        bound = threading.Event()
        failure: list[BaseException] = []

        def loop_main() -> None:
            loop = self._loop = asyncio.new_event_loop()
            try:
                self.receivers = loop.run_until_complete(
                    Receivers.start(self.intake, self.config.listeners)
                )
            except BaseException as exc:
                failure.append(exc)
                bound.set()
                loop.close()
                return
            bound.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.receivers.close())
                loop.close()

        self._spawn(loop_main, "receivers")
        bound.wait()
        if failure:
            self._stop.set()
            raise failure[0]
        for detector in self.detectors:
            self._spawn(lambda d=detector: d.run(self._stop), f"detect-{detector.partition}")
        if self.archiver is not None:
            self._spawn(lambda: self.archiver.run(self._stop), "archive")  # type: ignore[union-attr]
        self._spawn(self._watch_backlog, "collector-backlog")
        self._spawn(self._housekeeping, "collector-housekeeping")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    @property
    def ports(self) -> dict[str, int]:
        """The bound port of each listener (``udp``, ``tcp``, ``tls``, ``relp``)."""
        return dict(self.receivers.ports) if self.receivers is not None else {}

    def reload_rules(self) -> None:
        """Compile the rules again; detection uses them from its next batch on."""
        for detector in self.detectors:
            detector.reload()

    def stop(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []
        try:
            self._flush(time.time())
        except SQLAlchemyError as exc:
            log.warning("the collector's last figures were not written: %s", exc)
        self.bus.close()

    # ------------------------------------------------------------------ housekeeping

    def _watch_backlog(self) -> None:
        """Its own thread: a database that stalls the figures must not stall backpressure."""
        while not self._stop.wait(CHECK_EVERY):
            try:
                self.intake.check()
            except (OSError, sqlite3.Error) as exc:
                log.warning("the collector's backlog could not be measured: %s", exc)

    def _housekeeping(self) -> None:
        flushed = swept = 0.0
        while not self._stop.wait(CHECK_EVERY):
            now = time.time()
            try:
                if now - flushed >= FLUSH_EVERY:
                    flushed = now
                    self._flush(now)
                if now - swept >= SWEEP_EVERY:
                    swept = now
                    self._sweep(now)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("collector housekeeping failed, retrying: %s", exc)

    def _flush(self, now: float) -> None:
        counts = self.intake.take()
        progresses = [d.take() for d in self.detectors]
        moment = datetime.fromtimestamp(now, UTC)
        with unit_of_work(self.factory) as session:
            source_stats.flush(session=session, counts=counts)
            for progress in progresses:
                source_stats.flush(session=session, counts={}, progress=progress)
                self.alerts += progress.alerts
            source_stats.alert_drops(session=session, counts=counts, now=moment)

    def _sweep(self, now: float) -> None:
        moment = datetime.fromtimestamp(now, UTC)
        with unit_of_work(self.factory) as session:
            source_stats.check_silence(session=session, now=moment)
            source_stats.prune_rates(session=session, now=moment)
            errors = receive_errors()
            if self._udp_errors is not None and errors > self._udp_errors:
                source_stats.alert_udp_errors(
                    session=session, errors=errors - self._udp_errors, now=moment
                )
            self._udp_errors = errors
        consumers = [DETECTION] + ([ARCHIVE] if self.archiver is not None else [])
        self.bus.trim(consumers)
        if self.archiver is not None:
            self.archiver.expire(moment)


def _database_url(factory: sessionmaker[Session]) -> str | None:
    """The URL a store process connects with (password included: it goes over a pipe), or
    None for a database no other process can open (SQLite in memory)."""
    bind = factory.kw.get("bind")
    url = getattr(bind, "url", None)
    if url is None:
        return None
    if url.get_backend_name() == "sqlite" and (url.database or ":memory:") in ("", ":memory:"):
        return None
    return str(url.render_as_string(hide_password=False))
