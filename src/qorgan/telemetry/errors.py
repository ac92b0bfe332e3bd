"""Errors of the telemetry package."""

from __future__ import annotations

from qorgan.core.errors import QorganError


class TelemetryError(QorganError):
    """A source cannot be read at all (missing file, unknown format)."""
