"""The Qorgan console: the FastAPI application with its pages, the REST API under ``/api/v1``,
health checks and Prometheus metrics.

``create_app(settings)`` builds everything from the settings (no work at import time), so tests
and ``qorgan serve`` each get an application on their own database.
"""

from __future__ import annotations

import functools
import gc
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

import qorgan
from qorgan.core.db import make_engine, session_factory
from qorgan.core.errors import QorganError
from qorgan.core.settings import Environment, Settings, get_settings, secret_key
from qorgan.incidents.notifications import Notifier
from qorgan.pipeline.hunts import HuntRunner
from qorgan.privacy.batches import DecisionBatcher
from qorgan.privacy.protection import protection
from qorgan.privacy.retention import housekeeping as privacy_housekeeping
from qorgan.web import docs
from qorgan.web.decision_path import DecisionPath
from qorgan.web.deps import PRE_SESSION_COOKIE, AppState, LoginRequired
from qorgan.web.headers import SecurityHeaders
from qorgan.web.i18n import _l
from qorgan.web.limits import BodyLimit, route_limits
from qorgan.web.mail import compose as compose_mail
from qorgan.web.metrics import Metrics, RequestMetrics
from qorgan.web.templating import render
from qorgan.web.throttle import Throttle

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
API_PREFIX = "/api/v1"


def _plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


def printable(value: Any) -> Any:
    """``value`` with every string JSON can encode: lone surrogates escaped as ``\\udXXX``."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable(v) for v in value]
    return value


def _freeze_once() -> None:
    """Move what the process has built so far (modules, the application, its caches) out of
    the garbage collector's reach, once per process: it lives as long as the process, and
    full collections scanned it all in the middle of requests that allocate much (an incident
    page of 5,000 alerts: p95 549 -> 308 ms, bench/incidents.py). Later applications of the
    process (tests) are not frozen, so their cycles are still collected."""
    if not _FROZEN:
        _FROZEN.append(True)
        gc.collect()
        gc.freeze()


_FROZEN: list[bool] = []


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(API_PREFIX)


def serve_app() -> FastAPI:
    """``qorgan serve``'s application: the console with the collector in-process (unless
    ``QORGAN_COLLECT_IN_SERVE=false``), so live monitoring works at once."""
    return create_app(start_collector=True)


def _start_collector(settings: Settings, factory: Any) -> Any:
    """The in-process collector, started; ``None`` (logged) when it cannot start, for
    instance because another process holds its ports: the console serves on without it."""
    from qorgan.pipeline.collector import Collector, CollectorConfig
    from qorgan.pipeline.hunts import default_plan

    collector = Collector(CollectorConfig.of(settings), factory=factory, plan=default_plan)
    try:
        collector.start()
    except (OSError, QorganError) as exc:
        log.error("live monitoring is off: the collector could not start: %s", exc)
        collector.bus.close()
        return None
    log.info("live monitoring: collector listening on %s", collector.ports)
    return collector


def _start_replay(settings: Settings, factory: Any, app: FastAPI) -> Any:
    """``make run``'s replay of the example logs into the collector (``QORGAN_DEMO_REPLAY``)."""
    from qorgan.demo import DEMO_ORGANISATION
    from qorgan.demo_replay import Replay

    replay = Replay(
        factory,
        DEMO_ORGANISATION,
        Path("examples/logs"),
        app.state.collector.ports,
        settings.public_url.rstrip("/") + API_PREFIX + "/ingest",
    )
    try:
        replay.start()
    except AssertionError:
        log.warning("demo replay: no demo organisation (run qorgan demo first)")
        return None
    return replay


def create_app(
    settings: Settings | None = None,
    *,
    start_runner: bool = True,
    start_notifier: bool = True,
    start_collector: bool = False,
) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(settings)
    factory = session_factory(engine)
    # Console hunts compile the built-in pack and QORGAN_RULES, each in its own process.
    runner = HuntRunner(factory, settings=settings)
    # Deadline notifications and e-mail, every QORGAN_NOTIFY_INTERVAL seconds; after each
    # pass, the privacy service's sweep (consents' terms, retention).
    notifier = Notifier(
        factory,
        settings=settings,
        compose=compose_mail,
        also=[functools.partial(privacy_housekeeping, factory, settings)],
    )
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if start_runner:
            runner.recover()
        if start_notifier:
            notifier.start()
        listener = metrics.serve(settings.metrics_address) if settings.metrics_address else None
        replay = None
        if start_collector and settings.collect_in_serve:
            _app.state.collector = await run_in_threadpool(_start_collector, settings, factory)
            if _app.state.collector is not None and settings.demo_replay:
                replay = await run_in_threadpool(_start_replay, settings, factory, _app)
        _freeze_once()
        yield
        if replay is not None:
            await run_in_threadpool(replay.stop)
        if _app.state.collector is not None:
            await run_in_threadpool(_app.state.collector.stop)
        if listener is not None:
            listener.shutdown()
        runner.shutdown(wait=False)
        await run_in_threadpool(notifier.shutdown)
        await run_in_threadpool(app.state.qorgan.decisions.close)
        engine.dispose()

    app = FastAPI(
        title="Qorgan",
        version=qorgan.__version__,
        description=(
            "The Qorgan console's REST API. Authenticate with `Authorization: Bearer <token>` "
            "(tokens are issued on the account page, scoped and expiring) or, from the "
            "console's own pages, with the session cookie plus the `X-CSRF-Token` header."
        ),
        # Swagger UI is served by qorgan.web.docs from the installed package, not a CDN.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        openapi_url=f"{API_PREFIX}/openapi.json",
        lifespan=lifespan,
    )
    app.state.qorgan = AppState(
        settings=settings,
        factory=factory,
        secret=secret_key(settings),
        runner=runner,
        throttle=Throttle(),
        decisions=DecisionBatcher(factory, functools.partial(protection, settings)),
    )
    app.state.metrics = metrics
    metrics.watch_sources(factory, lambda: getattr(app.state, "collector", None))
    app.state.notifier = notifier
    #: The in-process collector while it runs (``qorgan serve``), else None.
    app.state.collector = None

    # Innermost first: the decision API's own path, then headers and metrics around every
    # answer (plain ASGI: BaseHTTPMiddleware cost a fifth of a small request).
    app.add_middleware(DecisionPath, api_prefix=API_PREFIX)
    app.add_middleware(
        SecurityHeaders,
        cookie=PRE_SESSION_COOKIE,
        api_prefix=API_PREFIX,
        production=settings.environment is Environment.production,
    )
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(GZipMiddleware, minimum_size=2048)
    # Outermost: bodies are bounded before anything reads them, whoever sends them.
    app.add_middleware(
        BodyLimit,
        limits=route_limits(
            settings.max_upload_mib << 20, evidence_bytes=settings.evidence_max_mib << 20
        ),
    )

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, _exc: LoginRequired) -> Response:
        target = "/login?next=" + quote(
            request.url.path + (f"?{request.url.query}" * bool(request.url.query)), safe=""
        )
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_api(request) or exc.status_code in (301, 302, 303, 307):
            return await http_exception_handler(request, exc)
        # Starlette's own (an unknown address, a method a route does not take) carry only the
        # status's English name, which the page's heading says in the page's language.
        detail = exc.detail if isinstance(exc, HTTPException) else None
        response = render(
            request,
            "error.html",
            {"status": exc.status_code, "detail": detail},
            status_code=exc.status_code,
        )
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if _is_api(request):
            # The errors echo the input, which may hold text JSON cannot encode (lone
            # surrogates): shown escaped, never a 500.
            errors = exc.errors()
            if request.url.path.startswith(f"{API_PREFIX}/privacy"):
                # The privacy service's input is personal data (IINs, names, contacts): the
                # error says which field and why, never what was sent.
                errors = [{k: v for k, v in e.items() if k not in ("input", "ctx")} for e in errors]
            cleaned = RequestValidationError(printable(errors), body=None)
            return await request_validation_exception_handler(request, cleaned)
        return render(
            request, "error.html", {"status": 400, "detail": _l("invalid form")}, status_code=400
        )

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> Response:
        """Readiness: the database answers and its schema is the newest."""
        from qorgan.migrations import head

        try:
            with engine.connect() as connection:
                revision = connection.execute(
                    text("SELECT version_num FROM alembic_version")
                ).scalar()
        except Exception as exc:  # any database failure means not ready
            return JSONResponse({"status": "unavailable", "reason": type(exc).__name__}, 503)
        if revision != head():
            return JSONResponse({"status": "migrations pending", "revision": revision}, 503)
        return JSONResponse({"status": "ok", "revision": revision})

    @app.get("/metrics", include_in_schema=False)
    def metrics_endpoint(request: Request) -> Response:
        """Prometheus metrics, for the bearer of ``QORGAN_METRICS_TOKEN`` only (not served
        without one: then only on ``QORGAN_METRICS_ADDRESS``, if set)."""
        if settings.metrics_token is None:
            raise HTTPException(404, _l("Not found"))
        offered = request.headers.get("authorization", "").partition(" ")[2].strip()
        wanted = settings.metrics_token.get_secret_value()
        if not hmac.compare_digest(offered.encode(), wanted.encode()):
            raise HTTPException(401, "metrics need their bearer token")
        return metrics.exposition()

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> Response:
        # Plotly's JavaScript ships inside the Python package: nothing comes from the internet.
        return FileResponse(_plotly_js(), headers={"Cache-Control": "public, max-age=86400"})

    docs.install(app, openapi_url=f"{API_PREFIX}/openapi.json", docs_url=f"{API_PREFIX}/docs")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    from qorgan.web.api import router as api_router
    from qorgan.web.routes import (
        alert_detail,
        alerts,
        audit,
        auth,
        findings,
        home,
        hunts,
        incident_dashboard,
        incident_settings,
        incidents,
        intel,
        sources,
        users,
    )

    # Fixed paths under /incidents/ come before /incidents/{incident_id}.
    for module in (
        auth,
        home,
        alerts,
        alert_detail,
        findings,
        incident_dashboard,
        incident_settings,
        incidents,
        intel,
        hunts,
        sources,
        audit,
        users,
    ):
        app.include_router(module.router)
    from qorgan.web.routes import public_report

    app.include_router(public_report.router)  # the public report form, for everyone
    from qorgan.web.routes import notifications as notification_pages

    app.include_router(notification_pages.router)
    from qorgan.web.routes import citizen, privacy_pages

    app.include_router(citizen.router)  # the citizen portal (its sign-in is in routes/auth.py)
    from qorgan.web.routes import citizen_ai

    app.include_router(citizen_ai.router)  # the portal's "AI and your data"
    app.include_router(privacy_pages.router)  # the data-protection officer's pages
    app.include_router(api_router, prefix=API_PREFIX)
    from qorgan.web import taxii

    taxii.install(app)  # the TAXII 2.1 server under /taxii2/
    return app
