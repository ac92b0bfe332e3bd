"""HTTP ingest bodies: what Fluent Bit, Vector, Winlogbeat-through-Logstash, NXLog and scripts
send, turned into one message per event.

Accepted: a JSON array of events, one JSON document per line (NDJSON, JSON Lines; Fluent Bit's
``json_lines``), or a single JSON object; gzip-compressed when ``Content-Encoding: gzip`` says
so (inflated within limits). For a JSON source each event must be an object and becomes its
compact JSON text; for a text source (syslog, access log, ...) an event is a string, or an
object whose ``message``, ``log`` or ``msg`` field holds the line (Vector's and Fluent Bit's
records). Anything else is refused with the position of the first bad event, and nothing of the
body is stored: a sender resends a whole batch, so a half-stored one would be duplicated.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from qorgan.telemetry.errors import TelemetryError

#: Most events one request carries.
MAX_EVENTS = 100_000
#: Most bytes a gzip body inflates to.
MAX_INFLATED = 256 << 20
TEXT_FIELDS = ("message", "log", "msg")


class BodyError(TelemetryError):
    """The body cannot be read; the message says where and why (answered with 400)."""


def inflate(body: bytes, encoding: str | None) -> bytes:
    """The body without its ``Content-Encoding`` (identity or gzip)."""
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise BodyError(f"unsupported Content-Encoding {encoding!r}; send gzip or none")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, MAX_INFLATED + 1)
    except zlib.error as exc:
        raise BodyError(f"the gzip body is damaged: {exc}") from None
    if len(out) > MAX_INFLATED or inflater.unconsumed_tail:
        raise BodyError(f"the body inflates to more than {MAX_INFLATED >> 20} MiB")
    if not inflater.eof:
        raise BodyError("the gzip body is cut short")
    return out


def documents(body: bytes) -> list[Any]:
    """The events of a JSON array, a JSON object or NDJSON ``body``."""
    text = body.strip()
    if not text:
        return []
    if text[:1] == b"[":
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise BodyError(f"not a JSON array: {exc}") from None
        if not isinstance(value, list):
            raise BodyError("not a JSON array")
        out = value
    else:
        out = []
        for number, line in enumerate(text.split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise BodyError(f"line {number}: not JSON: {exc}") from None
            if len(out) > MAX_EVENTS:
                break
    if len(out) > MAX_EVENTS:
        raise BodyError(f"more than {MAX_EVENTS} events in one request; send smaller batches")
    return out


def messages(events: list[Any], *, json_source: bool) -> list[bytes]:
    """One message per event (see the module doc)."""
    out = []
    for number, event in enumerate(events, 1):
        if json_source:
            if not isinstance(event, dict):
                raise BodyError(f"event {number}: expected a JSON object")
            out.append(orjson.dumps(event))
            continue
        if isinstance(event, dict):
            event = next((event[k] for k in TEXT_FIELDS if isinstance(event.get(k), str)), None)
        if not isinstance(event, str):
            raise BodyError(
                f"event {number}: expected a log line, or an object with a "
                "'message', 'log' or 'msg' text"
            )
        out.append(event.encode("utf-8", "replace").replace(b"\n", b"#012"))
    return out
