"""Alerts on their way to the store: detection's alerts validated against the store's schema,
and the collector's own alerts about its sources (silent, dropping, losing UDP datagrams)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from qorgan.core.timeutil import parse_time
from qorgan.detection.alerts import Alert
from qorgan.incidents.schemas import MAX_EVENT_BYTES, AlertIn
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


def stored_bodies(alerts: Iterable[Alert], quarantine: Quarantine) -> list[dict[str, Any]]:
    """The bodies of the alerts the store takes, each exactly what
    ``AlertIn.model_validate(alert.to_dict()).body()`` gives; one it refuses (an oversized
    event, say) is quarantined with the reason under its source and record.

    Most alerts take a short way: the rule's part (and its classification) is validated once
    per rule, and of the rest only the few plain fields are checked and the event is put
    through JSON once. Anything the short way does not vouch for (a NUL, a lone surrogate, a
    size near a limit, a correlation) goes through :class:`AlertIn`, which says what is wrong.
    """
    out = []
    rules: dict[tuple[int, int], dict[str, Any] | None] = {}
    for alert in alerts:
        body = _plain_body(alert, rules)
        if body is None:
            try:
                body = AlertIn.model_validate(alert.to_dict()).body()
            except ValidationError as exc:
                problem = exc.errors()[0]
                where = ".".join(str(p) for p in problem["loc"])
                quarantine.add(alert.path, alert.record, f"alert: {where}: {problem['msg']}")
                continue
        out.append(body)
    return out


def _plain_body(
    alert: Alert, rules: dict[tuple[int, int], dict[str, Any] | None]
) -> dict[str, Any] | None:
    """The short way of :func:`stored_bodies`; None where it does not vouch for the alert."""
    if alert.correlation is not None:
        return None
    # The alerts being stored keep their rule and classification alive: ids are stable here.
    key = (id(alert.rule), id(alert.classification))
    if key not in rules:
        rules[key] = _rule_part(alert)
    part = rules[key]
    if part is None:
        return None
    time, host, path, record, kind = alert.time, alert.host, alert.path, alert.record, alert.format
    if time is not None and (type(time) is not str or len(time) > 64 or parse_time(time) is None):
        return None
    if host is not None and (type(host) is not str or len(host) > 255 or "\0" in host):
        return None
    if type(path) is not str or len(path) > 4096 or "\0" in path:
        return None
    if type(record) is not int or not 0 <= record < 2**63:
        return None
    if type(kind) is not str or not 0 < len(kind) <= 32 or "\0" in kind:
        return None
    if type(alert.event) is not dict:
        return None
    try:
        raw = orjson.dumps(alert.event)
    except TypeError:  # not JSON, or a lone surrogate
        return None
    if len(raw) > MAX_EVENT_BYTES or b"\\u0000" in raw:
        return None
    body = {
        "rule": part["rule"],
        "time": time,
        "host": host,
        "source": {"path": path, "record": record, "format": kind},
        "event": orjson.loads(raw),
    }
    if "classification" in part:
        body["classification"] = part["classification"]
    return body


def _rule_part(alert: Alert) -> dict[str, Any] | None:
    """The rule and classification of ``alert`` as :class:`AlertIn` stores them (validated by
    it, on an alert that is otherwise empty), or None when it refuses them."""
    probe = {
        "rule": alert.to_dict()["rule"],
        "time": None,
        "host": None,
        "source": {"path": "", "record": 0, "format": "probe"},
        "event": {},
    }
    if alert.classification is not None:
        probe["classification"] = alert.classification
    try:
        body = AlertIn.model_validate(probe).body()
    except ValidationError:
        return None
    return {k: v for k, v in body.items() if k in ("rule", "classification")}


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
