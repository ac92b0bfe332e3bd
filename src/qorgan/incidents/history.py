"""An alert's history: its entries in the audit trail (triage, assignment, comments, reads),
newest first, with the names of the members who acted.

Service functions take ``*, session`` and never commit. The entries read are those of the
alert's own organisation and of the reader's organisation (a member of an organisation the
alert is shared with sees their own organisation's reads of it too); the caller must already be
allowed to see the alert. Names are given for members of those two organisations only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from qorgan.core.models import AuditEntry, User
from qorgan.incidents.models import StoredAlert

#: Entries shown at most (the audit page has them all).
LIMIT = 100


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    id: int
    at: datetime
    action: str
    actor: str
    actor_name: str | None
    details: dict[str, Any]


def alert_history(
    *, session: Session, alert: StoredAlert, reader_organisation_id: int, limit: int = LIMIT
) -> tuple[list[HistoryEntry], dict[int, str]]:
    """The alert's audit entries, newest first, and the display names of the members of the
    two organisations by user id (to name assignees in the details too)."""
    organisations = sorted({alert.organisation_id, reader_organisation_id})
    rows = session.scalars(
        select(AuditEntry)
        .where(
            AuditEntry.organisation_id.in_(organisations),
            AuditEntry.target_type == "alert",
            AuditEntry.target_id == str(alert.id),
        )
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    ).all()
    wanted: set[int] = set()
    for row in rows:
        if row.actor.isdigit():
            wanted.add(int(row.actor))
        for key in ("assignee_from", "assignee_to"):
            value = (row.details or {}).get(key)
            if isinstance(value, int):
                wanted.add(value)
    names: dict[int, str] = {}
    if wanted:
        names = {
            user_id: name
            for user_id, name in session.execute(
                select(User.id, User.display_name).where(
                    User.id.in_(sorted(wanted)), User.organisation_id.in_(organisations)
                )
            )
        }
    entries = [
        HistoryEntry(
            id=row.id,
            at=row.at,
            action=row.action,
            actor=row.actor,
            actor_name=names.get(int(row.actor)) if row.actor.isdigit() else None,
            details=dict(row.details or {}),
        )
        for row in rows
    ]
    return entries, names
