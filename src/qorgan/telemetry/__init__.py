"""Telemetry: reading log sources into batches of normalised events."""

from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.errors import TelemetryError
from qorgan.telemetry.quarantine import Quarantine

__all__ = ["EventBatch", "Quarantine", "TelemetryError"]
