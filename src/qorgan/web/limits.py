"""Request bodies are bounded before anything parses them, and before the caller is known.

A declared ``Content-Length`` over the route's limit is refused at once (413); a body sent
without one (chunked) is counted as it arrives and refused when it passes the limit, so no
route ever holds more than its limit in memory, whoever sends it. Limits are per route: the
hunt upload takes the configured upload size, an evidence upload the configured evidence size,
the alert ingestion a few thousand alerts, and every other route (forms, small JSON bodies) a
mebibyte. A route's path may be a template (``/incidents/{incident_id}/evidence``): each
``{name}`` stands for one path segment.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import HTTPException, Request
from starlette.datastructures import FormData

from qorgan.web.i18n import _l

MIB = 1 << 20
#: Every route not named in the table below.
DEFAULT_LIMIT = 1 * MIB
#: ``qorgan hunt --to-console`` sends 1,000 alerts a request; 5,000 are accepted; their events
#: are at most 64 KiB each but a few KiB in practice.
INGEST_LIMIT = 64 * MIB
#: A batch of live events from a log source (``qorgan.web.api.ingest``), compressed or not.
EVENTS_LIMIT = 64 * MIB
#: A bulk triage names up to 100,000 alert ids.
BULK_LIMIT = 4 * MIB
#: The public report form: three supporting files of 4 MiB and the fields around them
#: (``qorgan.incidents.reports``; the form's route refuses a larger file with a message).
PUBLIC_REPORT_LIMIT = 12 * MIB + 256 * 1024
#: A leak's affected subjects as a CSV: the file's own limit (``qorgan.privacy.leak_csv``, which
#: refuses a larger file with a message) and the form around it.
LEAK_SUBJECTS_LIMIT = 20 * MIB + 64 * 1024

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


def route_limits(upload_bytes: int, *, evidence_bytes: int) -> dict[tuple[str, str], int]:
    """Limits by (method, path or path template) for the routes that take more than the
    default."""
    return {
        ("POST", "/hunts"): upload_bytes + MIB,  # the files, and the form around them
        # One file and its description; the service refuses a file over ``evidence_bytes``
        # itself (the body's size is the file's plus the form's).
        ("POST", "/incidents/{incident_id}/evidence"): evidence_bytes + MIB,
        ("POST", "/api/v1/incidents/{incident_id}/evidence"): evidence_bytes + MIB,
        ("POST", "/api/v1/alerts"): INGEST_LIMIT,
        ("POST", "/api/v1/ingest"): EVENTS_LIMIT,
        ("POST", "/api/v1/alerts/triage"): BULK_LIMIT,
        ("POST", "/alerts/triage"): BULK_LIMIT,
        ("POST", "/report"): PUBLIC_REPORT_LIMIT,
        ("POST", "/api/v1/privacy/leaks/{leak_id}/subjects"): LEAK_SUBJECTS_LIMIT,
    }


class BodyLimit:
    """ASGI middleware enforcing :func:`route_limits` (and :data:`DEFAULT_LIMIT`)."""

    def __init__(self, app: Any, *, limits: dict[tuple[str, str], int]) -> None:
        self.app = app
        self.limits = {key: value for key, value in limits.items() if "{" not in key[1]}
        self.templates = [
            (method, _pattern(path), value)
            for (method, path), value in limits.items()
            if "{" in path
        ]

    def limit(self, scope: Scope) -> int:
        method, path = scope["method"], scope["path"]
        found = self.limits.get((method, path))
        if found is not None:
            return found
        for wanted, pattern, value in self.templates:
            if wanted == method and pattern.fullmatch(path):
                return value
        return DEFAULT_LIMIT

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, limit)
            return
        received = 0
        started = refused = False

        async def counted() -> dict[str, Any]:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Answer 413 now; the application sees the client gone, and whatever it
                    # answers to that is dropped.
                    refused = True
                    if not started:
                        await _refuse(send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: dict[str, Any]) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not refused:
                raise
            # The body was refused: the error reading the rest of it is expected, not news.


def _pattern(template: str) -> re.Pattern[str]:
    """``/incidents/{incident_id}/evidence`` as a pattern: each ``{name}`` one segment."""
    parts = re.split(r"\{[^{}/]+\}", template)
    return re.compile("[^/]+".join(re.escape(part) for part in parts))


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _message(limit: int) -> str:
    if limit >= MIB:
        return f"the request body is larger than {limit // MIB} MiB"
    return f"the request body is larger than {limit // 1024} KiB"


async def _refuse(send: Send, limit: int) -> None:
    body = orjson.dumps({"detail": _message(limit)})
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def read_form(
    request: Request, *, max_files: int, max_fields: int, refusal: str = _l("invalid form")
) -> FormData:
    """The request's multipart form, with at most ``max_files`` files and ``max_fields``
    fields; a malformed body, or one with more, is a 400 with ``refusal`` (a body over the
    limit stays the limit's 413). A page's form has been read by the CSRF check already, with
    the parser's defaults: the counts bound the API's, read here first."""
    try:
        return await request.form(max_files=max_files, max_fields=max_fields)
    except HTTPException:
        raise
    except Exception:  # the parser's refusals are of several kinds
        raise HTTPException(400, refusal) from None
