"""Lists of incidents: an organisation's own, or (for the national coordinator) those reported
to it, filtered by status, class, severity, assignee, deadline state and text, most urgent
first by default.

"Overdue" and "due soon" compare the stored ``next_due_at`` with now (an index range), never
working-hour arithmetic per row. Service functions take ``*, session`` and never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, func, select

from qorgan.core.db import utcnow
from qorgan.incidents import clocks
from qorgan.incidents.lifecycle import OPEN, IncidentError, Status
from qorgan.incidents.models import Incident, IncidentObservable
from qorgan.incidents.service import search_filter

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class Scope(StrEnum):
    """Whose incidents: the organisation's own, or those reported to it as coordinator."""

    own = "own"
    reported = "reported"


class Order(StrEnum):
    due = "due"  # the next deadline first (untimed last), then the newest
    newest = "newest"
    severity = "severity"


#: The ``status`` filter's groups besides single statuses.
STATUS_GROUPS = ("open", "all")
DUE_STATES = ("overdue", "soon")


@dataclass(frozen=True, slots=True)
class IncidentFilter:
    status: str = "open"  # a Status value, "open" or "all"
    kz_cert_class: str | None = None
    severity: int | None = None
    assignee_id: int | None = None
    due: str | None = None  # "overdue" or "soon"
    query: str | None = None
    scope: Scope = Scope.own
    #: Only the incidents reported by this organisation (the coordinator's list).
    reporter_id: int | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUS_GROUPS and self.status not in {s.value for s in Status}:
            raise IncidentError(f"unknown status {self.status!r}")
        if self.due is not None and self.due not in DUE_STATES:
            raise IncidentError(f"unknown deadline state {self.due!r}")
        if self.severity is not None and not 1 <= self.severity <= 4:
            raise IncidentError("severity is 1 (low) to 4 (critical)")
        if self.query is not None and len(self.query) > 200:
            raise IncidentError("a search has at most 200 characters")


def _where(query: Select[Any], organisation_id: int, f: IncidentFilter, now: datetime) -> Any:
    if f.scope is Scope.reported:
        query = query.where(Incident.reported_to_id == organisation_id)
        if f.reporter_id is not None:
            query = query.where(Incident.organisation_id == f.reporter_id)
    else:
        query = query.where(Incident.organisation_id == organisation_id)
    if f.status == "open":
        query = query.where(Incident.status.in_(sorted(OPEN)))
    elif f.status != "all":
        query = query.where(Incident.status == f.status)
    if f.kz_cert_class:
        query = query.where(Incident.kz_cert_class == f.kz_cert_class)
    if f.severity is not None:
        query = query.where(Incident.severity == f.severity)
    if f.assignee_id is not None:
        query = query.where(Incident.assignee_id == f.assignee_id)
    if f.due == "overdue":
        query = query.where(Incident.next_due_at < now)
    elif f.due == "soon":
        query = query.where(Incident.next_due_at >= now, Incident.next_due_at < now + clocks.SOON)
    if f.query and f.query.strip():
        query = query.where(search_filter(f.query))
    return query


def _order(order: Order) -> list[Any]:
    if order is Order.newest:
        return [Incident.created_at.desc(), Incident.id.desc()]
    if order is Order.severity:
        return [Incident.severity.desc(), Incident.created_at.desc(), Incident.id.desc()]
    return [
        Incident.next_due_at.is_(None),
        Incident.next_due_at,
        Incident.created_at.desc(),
        Incident.id.desc(),
    ]


def list_incidents(
    *,
    session: Session,
    organisation_id: int,
    filters: IncidentFilter = IncidentFilter(),
    order: Order = Order.due,
    limit: int = 50,
    offset: int = 0,
    now: datetime | None = None,
) -> tuple[list[Incident], int]:
    """A page of incidents and how many match in all."""
    now = now or utcnow()
    rows = session.scalars(
        _where(select(Incident), organisation_id, filters, now)
        .order_by(*_order(order))
        .limit(limit)
        .offset(offset)
    ).all()
    total = session.scalar(
        _where(select(func.count()).select_from(Incident), organisation_id, filters, now)
    )
    return list(rows), total or 0


def counts_by_state(
    *, session: Session, organisation_id: int, scope: Scope = Scope.own, now: datetime | None = None
) -> dict[str, int]:
    """Open, overdue and due-soon incidents (the list's tabs)."""
    now = now or utcnow()
    base = IncidentFilter(scope=scope)
    return {
        "open": _count(session, organisation_id, base, now),
        "overdue": _count(session, organisation_id, _with(base, due="overdue"), now),
        "soon": _count(session, organisation_id, _with(base, due="soon"), now),
    }


def _with(f: IncidentFilter, **changes: Any) -> IncidentFilter:
    values = {name: getattr(f, name) for name in f.__dataclass_fields__}
    values.update(changes)
    return IncidentFilter(**values)


def _count(session: Session, organisation_id: int, f: IncidentFilter, now: datetime) -> int:
    found = session.scalar(
        _where(select(func.count()).select_from(Incident), organisation_id, f, now)
    )
    return found or 0


def with_observable(
    *, session: Session, organisation_id: int, kind: str, value: str, limit: int = 100
) -> Sequence[Incident]:
    """The organisation's incidents that have an observable (newest first)."""
    ids = select(IncidentObservable.incident_id).where(
        IncidentObservable.organisation_id == organisation_id,
        IncidentObservable.kind == kind,
        IncidentObservable.value == value,
    )
    return session.scalars(
        select(Incident)
        .where(Incident.id.in_(ids), Incident.organisation_id == organisation_id)
        .order_by(Incident.created_at.desc())
        .limit(limit)
    ).all()
