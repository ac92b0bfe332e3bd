"""The decision API's own path through the application: ``POST /api/v1/privacy/decisions``
and ``/accesses`` are answered here, before FastAPI's routing, which with ~160 routes ahead
of them, its dependency solving and its request wrappers cost several times the decision
itself (bench/decisions.py). The body is validated by the same model, decided by the same
function (:func:`qorgan.web.api.privacy.record`) and answered in the same form as the
routes that describe these paths in the OpenAPI document; the body limit, the headers and
the metrics around every answer apply here too (they are outside this middleware).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import HTTPException
from pydantic import ValidationError

from qorgan.web.api.privacy import AccessIn, record

PATHS = {"/privacy/decisions": (False, 200), "/privacy/accesses": (True, 201)}
JSON = (b"content-type", b"application/json")


def _error(
    status: int, detail: Any, headers: dict[str, str] | None = None
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    return status, orjson.dumps({"detail": detail}), [JSON, *extra]


def _invalid(exc: ValidationError) -> list[dict[str, Any]]:
    """Which field and why, as FastAPI says it, never what was sent (personal data)."""
    return [
        {"type": e["type"], "loc": ["body", *e["loc"]], "msg": e["msg"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


class DecisionPath:
    def __init__(self, app: Any, *, api_prefix: str) -> None:
        self.app = app
        self.paths = {api_prefix + path: answer for path, answer in PATHS.items()}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        found = self.paths.get(scope["path"]) if scope["type"] == "http" else None
        if found is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        reported, success = found
        authorization, content_type = None, b"application/json"
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, payload, headers = await self._answer(
            scope, authorization, content_type, bytes(body), reported, success
        )
        await send({"type": "http.response.start", "status": status, "headers": [
            *headers, (b"content-length", str(len(payload)).encode("ascii"))]})  # fmt: skip
        await send({"type": "http.response.body", "body": payload})

    async def _answer(
        self,
        scope: dict[str, Any],
        authorization: str | None,
        content_type: bytes,
        body: bytes,
        reported: bool,
        success: int,
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        media = content_type.split(b";", 1)[0].strip().lower()
        if media != b"application/json" and not media.endswith(b"+json"):
            return _error(422, [{"type": "model_attributes_type", "loc": ["body"],
                                 "msg": "send the body as application/json"}])  # fmt: skip
        try:
            access = AccessIn.model_validate_json(body)
        except ValidationError as exc:
            return _error(422, _invalid(exc))
        try:
            answer = await record(scope["app"].state.qorgan, authorization, access, reported)
        except HTTPException as exc:
            return _error(exc.status_code, exc.detail, exc.headers)
        return success, answer.model_dump_json().encode("utf-8"), [JSON]
