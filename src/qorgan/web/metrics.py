"""Prometheus metrics: request counts and latencies by route, domain counters, and live
monitoring's figures read at scrape time (:class:`SourceFigures`).

Each application gets its own registry (tests build many applications in one process).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from fastapi import Response
from fastapi.routing import iter_route_contexts
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import compile_path

from qorgan.pipeline.listeners import receive_errors
from qorgan.pipeline.models import LogSource
from qorgan.pipeline.source_health import state_of

log = logging.getLogger(__name__)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "qorgan_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "qorgan_http_request_seconds",
            "Time to answer an HTTP request, by route template",
            ["route"],
            registry=self.registry,
        )
        self.alerts_ingested = Counter(
            "qorgan_alerts_ingested",
            "Alerts received by the console, by outcome (created or duplicate)",
            ["outcome"],
            registry=self.registry,
        )
        self.logins = Counter(
            "qorgan_sign_ins", "Sign-in attempts by outcome", ["outcome"], registry=self.registry
        )

        self._templates: list[tuple[re.Pattern[str], str]] | None = None
        self._seen: dict[str, str] = {}

    def template(self, app: Any, path: str) -> str:
        """The route template a path matched (``/api/v1/alerts/{alert_id}``), so labels stay
        few whatever ids are requested; the last few thousand paths are remembered."""
        if self._templates is None:
            self._templates = []
            for context in iter_route_contexts(app.routes):
                if context.path:
                    regex, _format, _convertors = compile_path(str(context.path))
                    self._templates.append((regex, str(context.path)))
        found = self._seen.get(path)
        if found is None:
            found = next((t for regex, t in self._templates if regex.match(path)), "unmatched")
            if len(self._seen) >= 4096:
                self._seen.clear()
            self._seen[path] = found
        return found

    def watch_sources(
        self, factory: sessionmaker[Session], collector: Callable[[], Any | None]
    ) -> None:
        """Expose the log sources' figures and, while ``collector()`` gives one, the
        in-process collector's (see :class:`SourceFigures`)."""
        self.registry.register(SourceFigures(factory, collector))

    def exposition(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    def serve(self, address: str) -> Any:
        """Serve the metrics on their own listener (``HOST:PORT``), on a background thread;
        returns the server (``shutdown()`` stops it)."""
        host, _, port = address.rpartition(":")
        server, _thread = start_http_server(
            int(port), addr=host.strip("[]"), registry=self.registry
        )
        return server


class RequestMetrics:
    """A plain ASGI middleware counting and timing every HTTP answer by route template
    (Starlette's ``BaseHTTPMiddleware`` cost more than a small API request's own work)."""

    def __init__(self, app: Any, *, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def noting(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting)
        finally:
            metrics = self.metrics
            template = metrics.template(scope["app"], scope["path"])
            metrics.latency.labels(template).observe(time.perf_counter() - started)
            metrics.requests.labels(template, scope["method"], str(status[0])).inc()


SOURCE_LABELS = ["organisation", "source"]


class SourceFigures(Collector):
    """Live monitoring at scrape time: each log source's counters from the database (one
    query; the collector flushes them every two seconds) labelled by organisation id and
    source name, and the in-process collector's backlog, log size and state. Without the
    collector in this process (``qorgan collect`` elsewhere) only the sources' series are
    given; the database not answering gives none (the scrape itself still succeeds)."""

    def __init__(self, factory: sessionmaker[Session], collector: Callable[[], Any | None]) -> None:
        self.factory = factory
        self.collector = collector

    def collect(self) -> Iterator[Metric]:
        yield from self._sources()
        yield from self._collector()

    def _sources(self) -> Iterator[Metric]:
        counters = {
            "events": CounterMetricFamily(
                "qorgan_source_events", "Events received from a log source", labels=SOURCE_LABELS
            ),
            "dropped": CounterMetricFamily(
                "qorgan_source_dropped",
                "Events of a log source dropped at intake (overflow policy drop, UDP)",
                labels=SOURCE_LABELS,
            ),
            "malformed": CounterMetricFamily(
                "qorgan_source_malformed",
                "Frames of a log source that could not be read (bad framing, oversized)",
                labels=SOURCE_LABELS,
            ),
            "parse_failures": CounterMetricFamily(
                "qorgan_source_parse_failures",
                "Messages of a log source its format could not parse (quarantined)",
                labels=SOURCE_LABELS,
            ),
        }
        last = GaugeMetricFamily(
            "qorgan_source_last_event_timestamp_seconds",
            "When a log source's newest event was received (Unix time; absent: never)",
            labels=SOURCE_LABELS,
        )
        silent = GaugeMetricFamily(
            "qorgan_source_silent",
            "1 while an enabled log source is silent past its expected interval",
            labels=SOURCE_LABELS,
        )
        now = datetime.now(UTC)
        try:
            with self.factory() as session:
                sources = session.scalars(select(LogSource).order_by(LogSource.id)).all()
                for source in sources:
                    labels = [str(source.organisation_id), source.name]
                    for name, family in counters.items():
                        family.add_metric(labels, getattr(source, name))
                    if source.last_event_at is not None:
                        last.add_metric(labels, source.last_event_at.timestamp())
                    silent.add_metric(labels, 1 if state_of(source, now)[1] else 0)
        except SQLAlchemyError as exc:
            log.warning("metrics: the log sources could not be read: %s", exc)
            return
        yield from counters.values()
        yield last
        yield silent

    def _collector(self) -> Iterator[Metric]:
        running = self.collector()
        if running is None:
            return
        intake = running.intake
        yield GaugeMetricFamily(
            "qorgan_collector_backlog_messages",
            "Messages received and not yet analysed by detection",
            value=intake.lag,
        )
        yield GaugeMetricFamily(
            "qorgan_collector_log_bytes",
            "Size of the collector's event log on disk",
            value=intake.log_bytes,
        )
        yield GaugeMetricFamily(
            "qorgan_collector_overloaded",
            "1 while intake holds senders back or drops (detection behind past its limit)",
            value=1 if intake.overloaded else 0,
        )
        yield CounterMetricFamily(
            "qorgan_udp_receive_errors",
            "UDP datagrams the kernel dropped for a full receive buffer (RcvbufErrors, IPv4 and "
            "IPv6, the whole host since boot; 0 where unknown)",
            value=receive_errors(),
        )
