"""Triage: acknowledge, mark false positive, reopen and assign alerts, one at a time or in bulk.

Only the acting user's own organisation's alerts change; a shared alert is read-only. Every
change is one audit entry per alert (who, from what, to what); an action that changes nothing
writes nothing. Answers carry what changed (status and assignee), never the event, so a triage
call reveals nothing that reading the alert would have recorded.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Integer, any_, bindparam, column, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from qorgan.core import audit
from qorgan.core.models import User
from qorgan.core.roles import ROLE_PERMISSIONS, Permission
from qorgan.incidents.alerts import AlertError, NotFound
from qorgan.incidents.inbox import NO_FILTER, AlertFilter, filtered
from qorgan.incidents.models import AlertStatus, StoredAlert

#: Alerts one bulk action may change (a larger set is refused: narrow the filter first).
MAX_BULK = 100_000


class Action(StrEnum):
    """Triage actions, by their name in URLs."""

    acknowledge = "acknowledge"
    false_positive = "false-positive"
    reopen = "reopen"
    assign = "assign"


#: The status each status action sets.
TARGET = {
    Action.acknowledge: AlertStatus.acknowledged,
    Action.false_positive: AlertStatus.false_positive,
    Action.reopen: AlertStatus.new,
}
#: The audit action of each triage action.
AUDIT_ACTION = {
    Action.acknowledge: "alert.acknowledge",
    Action.false_positive: "alert.false_positive",
    Action.reopen: "alert.reopen",
    Action.assign: "alert.assign",
}


@dataclass(frozen=True, slots=True)
class Triaged:
    """An alert after a triage action: its status and assignee, and whether they changed."""

    id: int
    status: AlertStatus
    assignee_id: int | None
    changed: bool


@dataclass(frozen=True, slots=True)
class BulkResult:
    """What a bulk action did: alerts it applied to, and how many of them changed."""

    matched: int
    changed: int


def assignable(*, session: Session, organisation_id: int) -> list[User]:
    """The organisation's users who may triage alerts (those an alert can be assigned to)."""
    triage_roles = [r for r, p in ROLE_PERMISSIONS.items() if Permission.alerts_triage in p]
    return list(
        session.scalars(
            select(User)
            .where(User.organisation_id == organisation_id, User.role.in_(triage_roles))
            .order_by(User.display_name)
        )
    )


def _check_assignee(session: Session, organisation_id: int, assignee_id: int | None) -> None:
    if assignee_id is not None:
        owner = session.scalar(select(User.organisation_id).where(User.id == assignee_id))
        if owner != organisation_id:
            raise AlertError("alerts can only be assigned to users of the same organisation")


def _entry(
    action: Action, actor_id: int, organisation_id: int, row: Any, assignee_id: int | None
) -> audit.Entry:
    if action is Action.assign:
        details = {
            "assignee_from": row.assignee_id,
            "assignee_to": assignee_id,
            "status": str(row.status),
        }
    else:
        details = {"status_from": str(row.status), "status_to": str(TARGET[action])}
    return audit.Entry(
        AUDIT_ACTION[action],
        actor=str(actor_id),
        organisation_id=organisation_id,
        target_type="alert",
        target_id=row.id,
        details=details,
    )


def _among(session: Session, ids: list[int]) -> ColumnElement[bool]:
    """``alerts.id`` is one of ``ids``, however many: the list travels as one parameter (an
    array on PostgreSQL, a JSON array on SQLite), so ten thousand alerts are one statement
    rather than hundreds, and the database probes the primary key for each."""
    if session.get_bind().dialect.name == "postgresql":
        return StoredAlert.id == any_(bindparam("alert_ids", ids, type_=ARRAY(Integer())))
    listed = func.json_each(bindparam("alert_ids", orjson.dumps(ids).decode())).table_valued(
        column("value", Integer())
    )
    return StoredAlert.id.in_(select(listed.c.value))


def _unchanged(action: Action, assignee_id: int | None) -> Any:
    """The condition of alerts the action would not change."""
    if action is Action.assign:
        if assignee_id is None:
            return StoredAlert.assignee_id.is_(None)
        return StoredAlert.assignee_id == assignee_id
    return StoredAlert.status == TARGET[action]


def triage(
    *,
    session: Session,
    organisation_id: int,
    alert_id: int,
    actor_id: int,
    action: Action | str,
    assignee_id: int | None = None,
) -> Triaged:
    """Apply ``action`` to one alert of the organisation; :class:`NotFound` for any other."""
    action = Action(action)
    audit.lock(session)  # check-then-write: concurrent triage of one alert waits its turn
    row = session.execute(
        select(StoredAlert.id, StoredAlert.status, StoredAlert.assignee_id)
        .where(StoredAlert.id == alert_id, StoredAlert.organisation_id == organisation_id)
        .with_for_update()
    ).first()
    if row is None:
        raise NotFound("no such alert", source=f"alert {alert_id}")
    if action is Action.assign:
        _check_assignee(session, organisation_id, assignee_id)
        changed = row.assignee_id != assignee_id
        values: dict[str, Any] = {"assignee_id": assignee_id}
    else:
        changed = row.status is not TARGET[action]
        values = {"status": TARGET[action]}
    if changed:
        session.execute(update(StoredAlert).where(StoredAlert.id == row.id).values(**values))
        audit.record_many(
            [_entry(action, actor_id, organisation_id, row, assignee_id)], session=session
        )
    return Triaged(
        id=row.id,
        status=values.get("status", row.status),
        assignee_id=values.get("assignee_id", row.assignee_id),
        changed=changed,
    )


def bulk_triage(
    *,
    session: Session,
    organisation_id: int,
    actor_id: int,
    action: Action | str,
    alert_ids: Collection[int] | None = None,
    filters: AlertFilter = NO_FILTER,
    assignee_id: int | None = None,
) -> BulkResult:
    """Apply ``action`` to the organisation's alerts named by ``alert_ids``, or (without ids)
    to all of its alerts matching ``filters``. Alerts of other organisations are never touched
    (named ids of theirs count as not matched). One audit entry per alert changed."""
    action = Action(action)
    if action is Action.assign:
        _check_assignee(session, organisation_id, assignee_id)
    audit.lock(session)
    query = filtered(
        session,
        [organisation_id],
        filters,
        StoredAlert.id,
        StoredAlert.status,
        StoredAlert.assignee_id,
        _unchanged(action, assignee_id).label("unchanged"),
    )
    if alert_ids is not None:
        wanted = sorted({int(i) for i in alert_ids})
        if len(wanted) > MAX_BULK:
            raise AlertError(f"at most {MAX_BULK:,} alerts can be changed at once")
        if not wanted:
            return BulkResult(matched=0, changed=0)
        rows = session.execute(query.where(_among(session, wanted))).all()
    else:
        rows = session.execute(query.limit(MAX_BULK + 1)).all()
        if len(rows) > MAX_BULK:
            raise AlertError(
                f"more than {MAX_BULK:,} alerts match; narrow the filter to change them at once"
            )
    changing = sorted((row for row in rows if not row.unchanged), key=lambda row: row.id)
    values: dict[str, Any] = (
        {"assignee_id": assignee_id} if action is Action.assign else {"status": TARGET[action]}
    )
    if changing:
        changed_ids = [row.id for row in changing]
        session.execute(
            update(StoredAlert).where(_among(session, changed_ids)).values(**values),
            execution_options={"synchronize_session": False},
        )
        changed = set(changed_ids)
        for loaded in list(session.identity_map.values()):  # what the session holds is stale
            if isinstance(loaded, StoredAlert) and loaded.id in changed:
                session.expire(loaded)
    audit.record_many(
        [_entry(action, actor_id, organisation_id, row, assignee_id) for row in changing],
        session=session,
    )
    return BulkResult(matched=len(rows), changed=len(changing))
