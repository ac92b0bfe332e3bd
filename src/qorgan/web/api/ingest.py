"""HTTP ingest: live log sources send events with their own token (not a user's).

``POST /api/v1/ingest`` with ``Authorization: Bearer <source token>``: the body is read as
:mod:`qorgan.telemetry.receivers.http_body` says, appended to the event log, and answered
``200 {"accepted": N}`` only once durable. While detection is behind past its limit, a source
that waits is answered ``429`` with ``Retry-After`` (one that drops is answered 200 and its
events are counted as dropped). Served by ``qorgan serve`` when it runs the collector
in-process, and by ``qorgan collect``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from qorgan.pipeline.collector import Collector
from qorgan.pipeline.sources import source_by_token
from qorgan.telemetry.receivers import Peer
from qorgan.telemetry.receivers.http_body import BodyError, documents, inflate, messages

router = APIRouter(prefix="/ingest", tags=["ingest"])
#: Seconds a held sender is told to wait.
RETRY_AFTER = 5


class Accepted(BaseModel):
    accepted: int


UNAUTHORISED = HTTPException(401, "a source token is required", {"WWW-Authenticate": "Bearer"})


def _token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _no_collector(request: Request, token: str) -> HTTPException:
    """Without a collector in this process: 401 for a token no HTTP source has (the same
    answer as with one), else 503 naming where to send."""
    qorgan = getattr(request.app.state, "qorgan", None)
    if qorgan is None or not token:
        return UNAUTHORISED
    with qorgan.factory() as session:
        source = source_by_token(session=session, token=token)
    if source is None:
        return UNAUTHORISED
    return HTTPException(503, "this process does not run the collector; send to qorgan collect")


@router.post(
    "",
    response_model=Accepted,
    responses={
        400: {"description": "The body cannot be read; nothing of it was stored."},
        401: {"description": "No or an unknown source token."},
        503: {"description": "This process runs no collector (send to `qorgan collect`)."},
        429: {"description": "Detection is behind: retry after the seconds given."},
    },
)
async def ingest_events(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    content_encoding: Annotated[str | None, Header()] = None,
) -> Accepted:
    """Append a batch of events of the source the token names; answered once durable."""
    token = _token(authorization)
    collector: Collector | None = getattr(request.app.state, "collector", None)
    if collector is None:
        raise await run_in_threadpool(_no_collector, request, token)
    source = collector.directory.by_token(token) if token else None
    if source is None or source.transport != "http":
        raise UNAUTHORISED
    if collector.intake.holds(source):
        raise HTTPException(
            429, "detection is behind; retry later", {"Retry-After": str(RETRY_AFTER)}
        )
    body = await request.body()
    try:
        found = await run_in_threadpool(_messages, body, content_encoding, source.format)
    except BodyError as exc:
        raise HTTPException(400, str(exc)) from None
    client = request.client.host if request.client else ""
    future = collector.intake.submit(source, found, Peer("http", client))
    if future is not None:
        try:
            await asyncio.wrap_future(future)
        except OSError as exc:
            raise HTTPException(503, f"not stored: {exc}") from None
    return Accepted(accepted=len(found))


def _messages(body: bytes, encoding: str | None, format: str) -> list[bytes]:
    return messages(documents(inflate(body, encoding)), json_source=format == "json")
