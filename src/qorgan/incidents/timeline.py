"""One timeline per incident: the events of its alerts and everything done on it (created,
moved, assigned, notes, tasks, evidence, reports, messages), in time order.

An incident may hold a hundred thousand alerts; the timeline shows the first
:data:`ALERT_ENTRIES` of them by event time and says how many more there are (the inbox,
filtered to the incident, lists them all).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from qorgan.core.models import User
from qorgan.incidents.models import IncidentAlert, IncidentEvent, StoredAlert

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

ALERT_ENTRIES = 500
EVENT_ENTRIES = 2_000


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the timeline: an alert's event (``kind`` "alert") or an incident event."""

    at: datetime
    kind: str
    by: str | None
    details: dict[str, Any]
    alert_id: int | None = None


@dataclass(frozen=True, slots=True)
class Timeline:
    entries: list[Entry]
    #: Alerts not shown (beyond :data:`ALERT_ENTRIES`).
    more_alerts: int


def timeline(*, session: Session, incident_id: int) -> Timeline:
    """The incident's timeline, oldest first. Alerts without an event time are placed at the
    time they were received."""
    a = StoredAlert
    linked = select(IncidentAlert.alert_id).where(IncidentAlert.incident_id == incident_id)
    when = func.coalesce(a.time, a.received_at)
    alerts = session.execute(
        select(
            a.id,
            when.label("at"),
            a.rule_id,
            a.rule_title,
            a.level,
            a.host,
            a.user_name,
            a.source_ip,
        )
        .where(a.id.in_(linked))
        .order_by(when, a.id)
        .limit(ALERT_ENTRIES)
    ).all()
    total = (
        session.scalar(
            select(func.count())
            .select_from(IncidentAlert)
            .where(IncidentAlert.incident_id == incident_id)
        )
        or 0
    )
    events = session.execute(
        select(IncidentEvent, User.display_name)
        .outerjoin(User, User.id == IncidentEvent.actor_id)
        .where(IncidentEvent.incident_id == incident_id)
        .order_by(IncidentEvent.at, IncidentEvent.id)
        .limit(EVENT_ENTRIES)
    ).all()
    entries = [
        Entry(
            at=row.at,
            kind="alert",
            by=None,
            details={
                "rule_id": row.rule_id,
                "rule": row.rule_title,
                "level": str(row.level),
                "host": row.host,
                "user": row.user_name,
                "source_ip": row.source_ip,
            },
            alert_id=row.id,
        )
        for row in alerts
    ]
    entries.extend(
        Entry(at=item.at, kind=item.kind, by=name, details=dict(item.details or {}))
        for item, name in events
    )
    entries.sort(key=lambda e: (e.at, e.kind != "alert"))
    return Timeline(entries=entries, more_alerts=max(total - len(alerts), 0))
