"""Alerts that belong together, proposed as incidents: new alerts in no incident yet, of the
same rule on the same host, or from the same source address, within a window of time.

The inbox shows them in a panel loaded after the page (so the inbox stays as fast as before);
each proposal is a filter (rule and host, or address, and the window), which the "create
incident" action takes as "all alerts matching". Only the newest :data:`SCANNED` alerts of the
window are looked at, so a flood costs the same as a quiet day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select

from qorgan.core.db import utcnow
from qorgan.incidents.models import AlertStatus, IncidentAlert, StoredAlert

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

WINDOW = timedelta(hours=24)
SCANNED = 5_000
SHOWN = 5
#: A proposal needs at least this many alerts.
AT_LEAST = 2


@dataclass(frozen=True, slots=True)
class Proposal:
    """Alerts that belong together: by ``rule`` and ``host``, or by source ``address``."""

    by: str  # "rule_host" or "address"
    rule_id: str | None
    rule_title: str | None
    host: str | None
    address: str | None
    count: int
    level: int
    first: datetime | None
    last: datetime | None


def proposals(
    *,
    session: Session,
    organisation_id: int,
    now: datetime | None = None,
    window: timedelta = WINDOW,
) -> list[Proposal]:
    """The strongest proposals of the window: most alerts first, then the most severe."""
    now = now or utcnow()
    a = StoredAlert
    recent = (
        select(a.id, a.rule_id, a.rule_title, a.host, a.source_ip, a.severity, a.time)
        .where(
            a.organisation_id == organisation_id,
            a.time >= now - window,
            a.time <= now,
            a.status == AlertStatus.new,
            ~select(IncidentAlert.alert_id).where(IncidentAlert.alert_id == a.id).exists(),
        )
        .order_by(a.time.desc())
        .limit(SCANNED)
        .subquery()
    )
    found: list[Proposal] = []
    by_rule_host = session.execute(
        select(
            recent.c.rule_id,
            func.min(recent.c.rule_title),
            recent.c.host,
            func.count(),
            func.max(recent.c.severity),
            func.min(recent.c.time),
            func.max(recent.c.time),
        )
        .where(recent.c.host.is_not(None))
        .group_by(recent.c.rule_id, recent.c.host)
        .having(func.count() >= AT_LEAST)
        .order_by(func.count().desc(), func.max(recent.c.severity).desc())
        .limit(SHOWN)
    ).all()
    found.extend(
        Proposal("rule_host", rule, title, host, None, count, level, first, last)
        for rule, title, host, count, level, first, last in by_rule_host
    )
    by_address = session.execute(
        select(
            recent.c.source_ip,
            func.count(),
            func.max(recent.c.severity),
            func.min(recent.c.time),
            func.max(recent.c.time),
        )
        .where(recent.c.source_ip.is_not(None))
        .group_by(recent.c.source_ip)
        # More than one rule or host: one rule on one host is a proposal of its own above.
        .having(
            or_(
                func.count(func.distinct(recent.c.rule_id)) >= AT_LEAST,
                func.count(func.distinct(recent.c.host)) >= AT_LEAST,
            )
        )
        .order_by(func.count().desc(), func.max(recent.c.severity).desc())
        .limit(SHOWN)
    ).all()
    found.extend(
        Proposal("address", None, None, None, address, count, level, first, last)
        for address, count, level, first, last in by_address
    )
    return sorted(found, key=lambda p: (-p.count, -p.level))[:SHOWN]
