"""The HTTP listener of ``qorgan collect``: HTTP ingest (``POST /api/v1/ingest``) and health,
with the console's body limits, in front of a running collector."""

from __future__ import annotations

from fastapi import FastAPI

from qorgan.core.settings import Settings
from qorgan.pipeline.collector import Collector
from qorgan.web.api import ingest
from qorgan.web.limits import BodyLimit, route_limits


def create_ingest_app(collector: Collector, settings: Settings) -> FastAPI:
    app = FastAPI(title="Qorgan collector", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.collector = collector
    app.include_router(ingest.router, prefix="/api/v1")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, object]:
        return {
            "status": "ok",
            "backlog": collector.intake.lag,
            "overloaded": collector.intake.overloaded,
        }

    app.add_middleware(
        BodyLimit,
        limits=route_limits(
            settings.max_upload_mib << 20, evidence_bytes=settings.evidence_max_mib << 20
        ),
    )
    return app
