"""Headers every answer carries, as a plain ASGI middleware (Starlette's ``BaseHTTPMiddleware``
cost a fifth of a small API request's time: bench/decisions.py).

Every answer gets ``nosniff``, ``X-Frame-Options``, ``Referrer-Policy``, the content-security
policy and, outside ``/static``, ``Cache-Control: no-store``; in production HSTS too. A page
request without the pre-session cookie gets a fresh nonce (``scope["state"]["pre_nonce"]``,
read by the templates for the sign-in form's CSRF token) and the cookie that carries it.
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import cookie_parser
from starlette.responses import Response

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
HSTS = "max-age=31536000; includeSubDomains"


class SecurityHeaders:
    def __init__(self, app: Any, *, cookie: str, api_prefix: str, production: bool) -> None:
        self.app, self.cookie, self.api_prefix, self.production = (
            app,
            cookie,
            api_prefix,
            production,
        )
        fixed = [
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Referrer-Policy", "same-origin"),
            ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ]
        if production:  # production runs behind TLS: never fall back to plain HTTP
            fixed.append(("Strict-Transport-Security", HSTS))
        self.fixed = fixed

    def _nonce(self, scope: dict[str, Any]) -> str | None:
        """A new pre-session nonce, for a page request that has no cookie yet."""
        if scope["path"].startswith(self.api_prefix):
            return None
        for name, value in scope["headers"]:
            if name == b"cookie" and cookie_parser(value.decode("latin-1")).get(self.cookie):
                return None
        nonce = secrets.token_urlsafe(24)
        scope.setdefault("state", {})["pre_nonce"] = nonce
        return nonce

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = self._nonce(scope)
        cacheable = scope["path"].startswith("/static")

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.fixed:
                    headers.setdefault(name, value)
                if not cacheable:
                    headers.setdefault("Cache-Control", "no-store")
                if nonce:
                    cookie = Response()
                    cookie.set_cookie(
                        self.cookie, nonce, httponly=True, samesite="lax", secure=self.production
                    )
                    headers.append("set-cookie", cookie.headers["set-cookie"])
            await send(message)

        await self.app(scope, receive, with_headers)
