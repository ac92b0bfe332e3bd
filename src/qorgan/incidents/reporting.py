"""Reporting an incident to the national coordinator (KZ-CERT), and the thread between them.

An organisation reports one of its incidents in one step; the coordinator's organisation (an
organisation of kind ``cert``) then reads it (never changes it: ``service.visible``) and lists
every report of its constituency with their clocks (``listing.Scope.reported``). Both sides
write in one thread on the incident: the coordinator asks questions and gives
recommendations, the reporter answers. Each message is a timeline event of the incident and an
audit entry. Service functions take ``*, session`` and never commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from qorgan.core.db import utcnow
from qorgan.core.models import Organisation, OrganisationKind, User
from qorgan.incidents import service
from qorgan.incidents.lifecycle import IncidentError, NotFound
from qorgan.incidents.models import Incident, IncidentMessage

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

MESSAGE_KINDS = ("question", "recommendation", "message")
#: What the coordinator's side may write, and what the reporter's side may.
COORDINATOR_KINDS = ("question", "recommendation", "message")
REPORTER_KINDS = ("message",)
MAX_MESSAGE = 20_000


def coordinators(*, session: Session, exclude: int | None = None) -> list[Organisation]:
    """The organisations that act as national coordinator (kind ``cert``)."""
    query = select(Organisation).where(Organisation.kind == OrganisationKind.cert)
    if exclude is not None:
        query = query.where(Organisation.id != exclude)
    return list(session.scalars(query.order_by(Organisation.name)))


def report(
    *,
    session: Session,
    organisation_id: int,
    incident_id: int,
    actor_id: int,
    coordinator_id: int | None = None,
) -> Incident:
    """Report the incident to the national coordinator (the only one, or ``coordinator_id``
    when there are several). Once reported it stays reported."""
    incident = service.owned(session, incident_id, organisation_id)
    if incident.reported_to_id is not None:
        raise IncidentError("the incident is already reported to the national coordinator")
    choices = coordinators(session=session, exclude=organisation_id)
    if not choices:
        raise IncidentError("no national coordinator organisation is set up")
    if coordinator_id is None:
        if len(choices) > 1:
            raise IncidentError("choose the coordinator to report to")
        chosen = choices[0]
    else:
        found = [c for c in choices if c.id == coordinator_id]
        if not found:
            raise IncidentError("no such national coordinator")
        chosen = found[0]
    incident.reported_to_id = chosen.id
    incident.reported_at = utcnow()
    service.event(session, incident, actor_id, "reported", {"coordinator": chosen.id})
    return incident


def post_message(
    *,
    session: Session,
    organisation_id: int,
    incident_id: int,
    actor_id: int,
    text: str,
    kind: str = "message",
) -> IncidentMessage:
    """Write in the incident's thread: the reporter's organisation or the coordinator it was
    reported to, no one else (:class:`NotFound` for them)."""
    service.check_text(text)
    if not text.strip():
        raise IncidentError("a message cannot be empty")
    if len(text) > MAX_MESSAGE:
        raise IncidentError(f"a message has at most {MAX_MESSAGE:,} characters")
    incident = session.get(Incident, incident_id)
    if incident is None or organisation_id not in (
        incident.organisation_id,
        incident.reported_to_id,
    ):
        raise NotFound("no such incident", source=f"incident {incident_id}")
    if incident.reported_to_id is None:
        raise IncidentError("report the incident to the national coordinator first")
    coordinator = organisation_id == incident.reported_to_id
    allowed = COORDINATOR_KINDS if coordinator else REPORTER_KINDS
    if kind not in allowed:
        raise IncidentError(f"unknown message kind {kind!r}; use one of {', '.join(allowed)}")
    service.lock(session)
    message = IncidentMessage(
        incident_id=incident.id,
        organisation_id=organisation_id,
        author_id=actor_id,
        kind=kind,
        text=text,
    )
    session.add(message)
    session.flush()
    service.event(
        session,
        incident,
        actor_id,
        "message",
        {"message": message.id, "kind": kind, "from": "coordinator" if coordinator else "reporter"},
        organisation_id=organisation_id,
    )
    return message


def messages(*, session: Session, incident_id: int) -> list[tuple[IncidentMessage, str | None]]:
    """The thread, oldest first, with each author's name."""
    return [
        (message, name)
        for message, name in session.execute(
            select(IncidentMessage, User.display_name)
            .outerjoin(User, User.id == IncidentMessage.author_id)
            .where(IncidentMessage.incident_id == incident_id)
            .order_by(IncidentMessage.id)
        ).all()
    ]


def set_articles(
    *,
    session: Session,
    organisation_id: int,
    incident_id: int,
    actor_id: int,
    articles: list[str],
) -> Incident:
    """Set the candidate Criminal Code articles: the incident's organisation, or the national
    coordinator it was reported to (the coordinator qualifies what is referred)."""
    clean = service.clean_articles(articles)
    service.lock(session)
    incident = session.get(Incident, incident_id)
    if incident is None or organisation_id not in (
        incident.organisation_id,
        incident.reported_to_id,
    ):
        raise NotFound("no such incident", source=f"incident {incident_id}")
    session.refresh(incident)
    if incident.criminal_code == clean:
        return incident
    before = list(incident.criminal_code or [])
    incident.criminal_code = clean
    service.event(
        session,
        incident,
        actor_id,
        "articles",
        {"from": before, "to": clean},
        organisation_id=organisation_id,
    )
    return incident
