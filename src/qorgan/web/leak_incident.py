"""Submitting a leak report with its incident, for the API and the DPO's pages alike.

A leak is the privacy service's and an incident the incident service's, and neither package may
import the other: submitting joins them here, in one unit of work (the caller commits). The
report is submitted (its subjects' notices queued), and the leak opens an incident of the
personal-data class in the caller's organisation, or links the one it has or the one named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException

from qorgan.incidents import clocks, service
from qorgan.incidents.lifecycle import NotFound
from qorgan.privacy import leaks
from qorgan.privacy.leak_words import leak_reference
from qorgan.web.i18n import _l

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qorgan.core.workdays import WorkCalendar
    from qorgan.incidents.models import Incident
    from qorgan.privacy.leak_models import LeakReport
    from qorgan.web.deps import Actor


@dataclass(frozen=True)
class Submission:
    submitted: leaks.Submitted
    incident: Incident


def incident_for(
    db: Session, actor: Actor, leak: LeakReport, incident_id: int | None, calendar: WorkCalendar
) -> Incident:
    """The incident the leak goes with: the one it has, the one named (the caller's
    organisation's), or a new one of the personal-data class. Its breach-report clock runs
    from detection, as the report's deadline does, and this submission meets it."""
    if leak.incident_id is not None and incident_id not in (None, leak.incident_id):
        raise HTTPException(
            409, f"the report is linked to {service.reference(leak.incident_id)} already"
        )
    wanted = incident_id or leak.incident_id
    if wanted is not None:
        try:
            incident = service.owned(db, wanted, actor.organisation_id)
        except NotFound:
            raise HTTPException(404, _l("no such incident in your organisation")) from None
    else:
        incident, _ = service.create(
            session=db,
            organisation_id=actor.organisation_id,
            actor_id=actor.user.id,
            draft=service.Draft(
                title=f"Personal-data leak {leak_reference(leak.id)}",
                description=leak.description,
                rsit_class="information-content-security",
                rsit_type="data-leak",
            ),
            calendar=calendar,
            origin="privacy_leak",
            started_at=leak.occurred_at or leak.detected_at,
        )
    if not incident.personal_data or incident.breach_reported_at is None:
        before = incident.personal_data
        clocks.flag_personal_data(incident, leak.detected_at, calendar)
        incident.breach_reported_at = leak.submitted_at
        clocks.next_due(incident)
        changes: dict[str, Any] = {"leak": leak_reference(leak.id), "breach_reported": True}
        if not before:
            changes["personal_data"] = {"from": False, "to": True}
        service.event(db, incident, actor.user.id, "updated", changes)
    return incident


def submit(
    db: Session,
    actor: Actor,
    leak: LeakReport,
    calendar: WorkCalendar,
    incident_id: int | None = None,
) -> Submission:
    """Submit the report (again: only subjects without a notice get one) and open or link its
    incident; not committed."""
    submitted = leaks.submit(session=db, leak=leak, actor=actor.id)
    incident = incident_for(db, actor, leak, incident_id, calendar)
    leaks.link_incident(session=db, leak=leak, incident_id=incident.id, actor=actor.id)
    return Submission(submitted, incident)
