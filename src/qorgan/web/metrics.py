"""Prometheus metrics: request counts and latencies by route, and domain counters.

Each application gets its own registry (tests build many applications in one process).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, Response
from fastapi.routing import iter_route_contexts
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.routing import compile_path


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

    def _template(self, request: Request) -> str:
        """The route template a path matched (``/api/v1/alerts/{alert_id}``), so labels stay
        few whatever ids are requested."""
        if self._templates is None:
            self._templates = []
            for context in iter_route_contexts(request.app.routes):
                if context.path:
                    regex, _format, _convertors = compile_path(str(context.path))
                    self._templates.append((regex, str(context.path)))
        path = request.url.path
        for regex, template in self._templates:
            if regex.match(path):
                return template
        return "unmatched"

    async def middleware(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        template = self._template(request)
        self.latency.labels(template).observe(time.perf_counter() - started)
        self.requests.labels(template, request.method, str(response.status_code)).inc()
        return response

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
