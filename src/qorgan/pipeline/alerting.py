"""Alerts on their way to the store: detection's alerts validated against the store's schema,
and the collector's own alerts about its sources (silent, dropping, losing UDP datagrams)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from qorgan.detection.alerts import Alert
from qorgan.incidents.schemas import AlertIn
from qorgan.telemetry.quarantine import Quarantine

#: The collector's own rules: id, title, level, what the alert's event says.
COLLECTOR_RULES = {
    "silent": (
        "qorgan-collector-silent-source",
        "Log source went silent",
        "high",
        "A registered source sent nothing for longer than its expected interval: attackers "
        "often stop logging first.",
    ),
    "dropped": (
        "qorgan-collector-dropped-events",
        "Events dropped at intake",
        "high",
        "Detection fell behind and the source's overflow policy is to drop: events were "
        "counted and discarded unanalysed.",
    ),
    "udp": (
        "qorgan-collector-udp-receive-errors",
        "UDP syslog datagrams lost by the kernel",
        "medium",
        "The kernel's UDP receive buffer overflowed (RcvbufErrors): datagrams were lost "
        "before the collector read them.",
    ),
}


def validated(alerts: Iterable[Alert], quarantine: Quarantine) -> list[AlertIn]:
    """The alerts the store takes; one it refuses (an oversized event, say) is quarantined
    with the reason under its source and record."""
    valid = []
    for alert in alerts:
        try:
            valid.append(AlertIn.model_validate(alert.to_dict()))
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"])
            quarantine.add(alert.path, alert.record, f"alert: {where}: {problem['msg']}")
    return valid


def collector_alert(
    kind: str, *, at: datetime, record: int, host: str | None, event: dict[str, Any]
) -> AlertIn:
    """An alert of the collector itself (see :data:`COLLECTOR_RULES`); ``record`` makes it
    unique (a silence's start, say), so raising it twice stores it once."""
    rule_id, title, level, description = COLLECTOR_RULES[kind]
    return AlertIn.model_validate(
        {
            "rule": {
                "id": rule_id,
                "title": title,
                "level": level,
                "tags": ["attack.defense-evasion", "attack.t1562.002"] if kind == "silent" else [],
                "status": "stable",
                "path": "qorgan/collector",
            },
            "time": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "host": host,
            "source": {"path": "collector", "record": record, "format": "collector"},
            "event": {"description": description, **event},
        }
    )
