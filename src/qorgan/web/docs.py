"""The interactive API documentation (Swagger UI) and the OpenAPI schema's finishing touches.

Swagger UI's JavaScript and CSS come from the ``fastapi-offline`` package (kept current, and
installed with Qorgan), served from this console: nothing is loaded from a CDN. The page
itself has no inline script, so the console's Content-Security-Policy holds on it too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from qorgan.web.templating import render


def swagger_static() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


def install(app: FastAPI, *, openapi_url: str, docs_url: str) -> None:
    """Serve Swagger UI at ``docs_url`` and finish the schema: bearer tokens as the security
    scheme (so "Authorize" takes an API token), and the ingestion body's schema."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from qorgan.web.api.alerts import alert_batch_schema

            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {})
            batch = alert_batch_schema()
            components.setdefault("schemas", {}).update(batch.pop("$defs", {}))
            components["schemas"]["AlertBatch"] = batch
            components["securitySchemes"] = {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token from the account page (qgn_...).",
                }
            }
            schema["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.mount("/static/swagger", StaticFiles(directory=swagger_static()), name="swagger")

    @app.get(docs_url, include_in_schema=False)
    def api_docs(request: Request) -> Response:
        return render(request, "api_docs.html", {"openapi_url": openapi_url})
