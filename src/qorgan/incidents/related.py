"""What an alert is connected to: alerts about the same host, user or source address close in
time, and the stored alerts behind a correlation alert's events.

Service functions take ``*, session`` and never commit. Both only ever look among the alert's
own organisation's alerts: an alert shared with another organisation is never joined to that
organisation's alerts, and the caller must already be allowed to see the alert itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from qorgan.core.timeutil import parse_time
from qorgan.incidents.models import StoredAlert

#: How far either side of the alert's time another alert counts as related.
WINDOW = timedelta(hours=1)
#: Related alerts listed per observable (a screenful); the count covers them all.
LIMIT = 10
#: Correlation events looked up at most (a correlation's window may hold thousands).
MAX_MEMBERS = 500
#: The observables that relate alerts: (name, column).
OBSERVABLES = (
    ("host", StoredAlert.host),
    ("user", StoredAlert.user_name),
    ("address", StoredAlert.source_ip),
)


@dataclass(frozen=True, slots=True)
class RelatedGroup:
    """Alerts sharing one observable with the alert, within :data:`WINDOW` of its time."""

    kind: str  # host, user or address
    value: str
    total: int
    alerts: list[StoredAlert] = field(default_factory=list)


def related_alerts(
    *, session: Session, alert: StoredAlert, window: timedelta = WINDOW, limit: int = LIMIT
) -> list[RelatedGroup]:
    """Per observable the alert has (host, user, source address): the other alerts of its
    organisation with the same value and an event time within ``window`` of its own, nearest
    in time first, at most ``limit`` of them, with how many there are in all. An alert without
    an event time has no related alerts."""
    if alert.time is None:
        return []
    since, until = alert.time - window, alert.time + window
    values = {"host": alert.host, "user": alert.user_name, "address": alert.source_ip}
    groups = []
    for kind, column in OBSERVABLES:
        value = values[kind]
        if not value:
            continue
        where = (
            StoredAlert.organisation_id == alert.organisation_id,
            column == value,
            StoredAlert.time >= since,
            StoredAlert.time <= until,
            StoredAlert.id != alert.id,
        )
        total = session.scalar(select(func.count()).select_from(StoredAlert).where(*where)) or 0
        rows: list[StoredAlert] = []
        if total:
            candidates = session.scalars(
                select(StoredAlert).where(*where).order_by(StoredAlert.time, StoredAlert.id)
            ).all()
            rows = sorted(candidates, key=lambda a: (abs(a.time - alert.time), a.id))[:limit]
            rows.sort(key=lambda a: (a.time, a.id))
        groups.append(RelatedGroup(kind, value, total, rows))
    return groups


@dataclass(frozen=True, slots=True)
class Member:
    """One event of a correlation's window, and the stored alert it raised (None: not stored
    in this organisation, e.g. the correlation came from elsewhere)."""

    path: str | None
    record: int | None
    time: str | None
    rule_id: str | None
    alert_id: int | None = None
    rule_title: str | None = None


def _references(alert: StoredAlert) -> list[dict[str, Any]]:
    correlation = alert.body.get("correlation") if isinstance(alert.body, dict) else None
    events = correlation.get("events") if isinstance(correlation, dict) else None
    if not isinstance(events, list):
        return []
    return [e for e in events[:MAX_MEMBERS] if isinstance(e, dict)]


def correlation_members(*, session: Session, alert: StoredAlert) -> list[Member]:
    """The events of a correlation alert (``body.correlation.events``), each with the stored
    alert of the same organisation that the same rule raised on the same event (same event
    time and source record; the log file's path breaks ties). Empty for other alerts."""
    references = _references(alert)
    if not references:
        return []
    rules = {str(r.get("rule")) for r in references if r.get("rule")}
    times: dict[datetime, None] = {}
    for reference in references:
        moment = parse_time(reference.get("time"))
        if moment is not None:
            times[moment] = None
    candidates: dict[tuple[str, datetime, int], list[StoredAlert]] = {}
    if rules and times:
        rows = session.scalars(
            select(StoredAlert).where(
                StoredAlert.organisation_id == alert.organisation_id,
                StoredAlert.rule_id.in_(sorted(rules)),
                StoredAlert.time.in_(list(times)),
                StoredAlert.id != alert.id,
            )
        )
        for row in rows:
            source = row.body.get("source") if isinstance(row.body, dict) else None
            record = source.get("record") if isinstance(source, dict) else None
            if row.time is not None and isinstance(record, int):
                candidates.setdefault((row.rule_id, row.time, record), []).append(row)
    members = []
    for reference in references:
        rule_id = str(reference["rule"]) if reference.get("rule") else None
        record = reference.get("record") if isinstance(reference.get("record"), int) else None
        path = str(reference["path"]) if reference.get("path") is not None else None
        moment = parse_time(reference.get("time"))
        found = None
        if rule_id and moment is not None and record is not None:
            matches = candidates.get((rule_id, moment, record), [])
            same_path = [m for m in matches if m.body.get("source", {}).get("path") == path]
            found = (same_path or matches or [None])[0]
        members.append(
            Member(
                path=path,
                record=record,
                time=reference.get("time") if isinstance(reference.get("time"), str) else None,
                rule_id=rule_id,
                alert_id=found.id if found is not None else None,
                rule_title=found.rule_title if found is not None else None,
            )
        )
    return members
