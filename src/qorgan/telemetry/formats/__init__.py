"""The log formats Qorgan reads, and how a file's format is recognised."""

from __future__ import annotations

from typing import Any

from qorgan.telemetry.errors import TelemetryError
from qorgan.telemetry.formats.accesslog import AccessLogFormat, ApacheErrorFormat
from qorgan.telemetry.formats.auditd import AuditdFormat
from qorgan.telemetry.formats.base import DEFAULT_BATCH_SIZE, Format
from qorgan.telemetry.formats.cef import CefFormat
from qorgan.telemetry.formats.evtx import EvtxFormat
from qorgan.telemetry.formats.json import JsonFormat
from qorgan.telemetry.formats.syslog import SyslogFormat
from qorgan.telemetry.formats.zeek import ZeekFormat

#: Every format, in the order ties are broken when sniffing.
FORMATS: dict[str, type[Format]] = {
    cls.name: cls
    for cls in (
        EvtxFormat,
        JsonFormat,
        ZeekFormat,
        CefFormat,
        AuditdFormat,
        SyslogFormat,
        AccessLogFormat,
        ApacheErrorFormat,
    )
}


def get_format(name: str, **options: Any) -> Format:
    """The format named, built with ``options`` (``tz``, ``max_record_bytes``)."""
    try:
        cls = FORMATS[name]
    except KeyError:
        known = ", ".join(sorted(FORMATS))
        raise TelemetryError(f"unknown format {name!r}; known formats: {known}") from None
    return cls(**options)


def detect_format(head: bytes, path: str, **options: Any) -> Format:
    """The format most sure of ``head``, built with ``options``; raises TelemetryError when
    none recognises it."""
    best, best_score = None, 0
    for cls in FORMATS.values():
        score = cls.sniff(head, path)
        if score > best_score:
            best, best_score = cls, score
    if best is None:
        raise TelemetryError("format not recognised; force one with --input-format", source=path)
    return best(**options)


__all__ = ["DEFAULT_BATCH_SIZE", "FORMATS", "Format", "detect_format", "get_format"]
