"""TAXII 2.1 without the web: media types, the filters of a request, ``next`` tokens, timestamps
and the error message body, as the specification (OASIS TAXII 2.1, sections 1.6, 3.4, 3.5 and
3.6) defines them. The store and the web router both lean on this module; it imports neither.

Errors carry the HTTP status the specification asks for, so the web edge translates them in
one place; their messages never repeat the request's values at length.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from qorgan.core.errors import QorganError

__all__ = [
    "MAX_PAGE",
    "STIX_MEDIA_TYPE",
    "TAXII_MEDIA_TYPE",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "IntelError",
    "NotFound",
    "ObjectFilter",
    "accepts_taxii",
    "content_type_ok",
    "decode_next",
    "encode_next",
    "error_body",
    "format_timestamp",
    "parse_filter",
    "parse_timestamp",
]

TAXII_MEDIA_TYPE = "application/taxii+json;version=2.1"
STIX_MEDIA_TYPE = "application/stix+json;version=2.1"
#: The most objects one page holds, whatever ``limit`` the client asks for.
MAX_PAGE = 1000
#: How many values one ``match[...]`` filter may list.
MAX_MATCH_VALUES = 100

_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z\Z")


class IntelError(QorganError):
    """A request the intel store or the TAXII server refuses; ``status`` is its HTTP status."""

    status = 400
    title = "Bad request"


class BadRequest(IntelError):
    """Malformed parameters, body or objects (400)."""


class Forbidden(IntelError):
    """The caller may see the resource but not do this to it (403)."""

    status = 403
    title = "Forbidden"


class NotFound(IntelError):
    """No such resource for this caller; also what a resource the caller may not see is."""

    status = 404
    title = "Not found"


class Conflict(IntelError):
    """The request conflicts with the resource's state (409)."""

    status = 409
    title = "Conflict"


def parse_timestamp(text: object, what: str = "timestamp") -> datetime:
    """A STIX/TAXII timestamp (``2026-01-01T00:00:00.000Z``, UTC, ``Z``) as an aware datetime;
    precision beyond microseconds is dropped. Anything else is a :class:`BadRequest`."""
    if not isinstance(text, str) or not _TIMESTAMP.match(text):
        raise BadRequest(f"{what} must be an RFC 3339 UTC timestamp such as 2026-01-01T00:00:00Z")
    head, _, fraction = text[:-1].partition(".")
    try:
        value = datetime.fromisoformat(head).replace(tzinfo=UTC)
    except ValueError:
        raise BadRequest(f"{what} is not a valid date and time") from None
    if fraction:
        value = value.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    return value


def format_timestamp(value: datetime) -> str:
    """A timestamp as TAXII writes ``date_added``: UTC, microseconds, ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class ObjectFilter:
    """What a request for objects, a manifest or versions asks for.

    ``versions`` holds ``"last"``, ``"first"``, ``"all"`` and timestamps (datetimes); ``after``
    is where the previous page ended (from a ``next`` token), ``added_after`` the client's own
    filter: both are exclusive bounds on ``date_added``."""

    added_after: datetime | None = None
    after: datetime | None = None
    ids: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    versions: tuple[str | datetime, ...] = ("last",)
    spec_versions: tuple[str, ...] = ()
    limit: int = MAX_PAGE


def _values(raw: str | None, name: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    values = tuple(v.strip() for v in raw.split(",") if v.strip())
    if not values:
        raise BadRequest(f"{name} is empty")
    if len(values) > MAX_MATCH_VALUES:
        raise BadRequest(f"{name} lists more than {MAX_MATCH_VALUES} values")
    if any(len(v) > 300 for v in values):
        raise BadRequest(f"a value of {name} is too long")
    return values


def parse_filter(
    params: dict[str, str], *, default_version: str = "last", key: bytes, collection: str
) -> ObjectFilter:
    """The filter a request's query parameters ask for (``added_after``, ``limit``, ``next``,
    ``match[id|type|version|spec_version]``). Unknown ``match[...]`` fields are refused (the
    specification lets a server refuse filters it does not support); other parameters are
    ignored."""
    for name in params:
        if name.startswith("match[") and name not in (
            "match[id]",
            "match[type]",
            "match[version]",
            "match[spec_version]",
        ):
            raise BadRequest("unsupported match filter; supported: id, type, version, spec_version")
    added_after = params.get("added_after")
    limit_text = params.get("limit")
    limit = MAX_PAGE
    if limit_text is not None:
        if not limit_text.isascii() or not limit_text.isdigit() or int(limit_text) < 1:
            raise BadRequest("limit must be a positive whole number")
        limit = min(int(limit_text[:9]), MAX_PAGE)
    versions: list[str | datetime] = []
    for value in _values(params.get("match[version]"), "match[version]") or (default_version,):
        versions.append(value if value in ("last", "first", "all") else parse_timestamp(value))
    token = params.get("next")
    return ObjectFilter(
        added_after=None if added_after is None else parse_timestamp(added_after, "added_after"),
        after=None if token is None else decode_next(token, key=key, collection=collection),
        ids=_values(params.get("match[id]"), "match[id]"),
        types=_values(params.get("match[type]"), "match[type]"),
        versions=tuple(versions),
        spec_versions=_values(params.get("match[spec_version]"), "match[spec_version]"),
        limit=limit,
    )


def _signature(key: bytes, collection: str, micros: int) -> bytes:
    return hmac.new(key, f"next|{collection}|{micros}".encode(), hashlib.sha256).digest()[:12]


def encode_next(last_added: datetime, *, key: bytes, collection: str) -> str:
    """An opaque token for the page after the object added at ``last_added``: the instant and
    an HMAC binding it to the collection, so a forged or another collection's token fails."""
    micros = _micros(last_added)
    raw = micros.to_bytes(8, "big") + _signature(key, collection, micros)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(value: datetime) -> int:
    delta = value.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def decode_next(token: str, *, key: bytes, collection: str) -> datetime:
    """The instant a token of :func:`encode_next` names; a :class:`BadRequest` for anything
    else (a forged, altered or foreign token)."""
    try:
        if len(token) > 64:
            raise ValueError
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        if len(raw) != 20:
            raise ValueError
    except ValueError:
        raise BadRequest("invalid next token") from None
    micros = int.from_bytes(raw[:8], "big")
    if not hmac.compare_digest(raw[8:], _signature(key, collection, micros)):
        raise BadRequest("invalid next token")
    return _EPOCH + timedelta(microseconds=micros)


def _media_ranges(header: str) -> list[tuple[str, dict[str, str]]]:
    ranges = []
    for part in header.split(","):
        kind, *parameters = (p.strip() for p in part.split(";"))
        found = {}
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            found[name.strip().lower()] = value.strip().strip('"')
        ranges.append((kind.lower(), found))
    return ranges


def accepts_taxii(header: str | None) -> bool:
    """Whether an ``Accept`` header admits TAXII 2.1 JSON: ``application/taxii+json`` with
    ``version=2.1`` or no version, or a wildcard (``*/*``, ``application/*``). A missing header
    admits anything (RFC 9110); the specification's clients always send one."""
    if header is None or not header.strip():
        return True
    for kind, parameters in _media_ranges(header):
        if parameters.get("q") in ("0", "0.0", "0.00", "0.000"):
            continue
        if kind in ("*/*", "application/*"):
            return True
        if kind == "application/taxii+json" and parameters.get("version", "2.1") == "2.1":
            return True
    return False


def content_type_ok(header: str | None) -> bool:
    """Whether a POST's ``Content-Type`` is TAXII 2.1 JSON (the envelope) or STIX 2.1 JSON;
    a missing version parameter is read as 2.1."""
    if not header:
        return False
    kind, parameters = _media_ranges(header)[0]
    if kind not in ("application/taxii+json", "application/stix+json"):
        return False
    return parameters.get("version", "2.1") == "2.1"


def error_body(
    error: IntelError | None, *, status: int, title: str | None = None
) -> dict[str, Any]:
    """The specification's error message resource (section 3.6.1)."""
    body: dict[str, Any] = {
        "title": title or (error.title if error else "Error"),
        "http_status": str(status),
    }
    if error is not None:
        body["description"] = error.message
    return body
