"""Incidents over the API: list, create (from alerts, all alerts matching a filter, or by hand),
read, edit, move through the lifecycle, assign, add alerts, merge, split, tasks, notes,
observables, the timeline and evidence files. Thin: each handler calls one service function.

Another organisation's incident is a 404, whatever the route; the coordinator an incident was
reported to reads it (never changes it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from qorgan.core.roles import Permission
from qorgan.core.tlp import Pap, Tlp
from qorgan.core.workdays import WorkCalendar
from qorgan.incidents import clocks, evidence, listing, reporting, service, tasks, timeline
from qorgan.incidents.inbox import AlertFilter
from qorgan.incidents.lifecycle import (
    RANK_SEVERITY,
    SEVERITY_RANK,
    IncidentError,
    NotFound,
    Resolution,
    Severity,
    Status,
)
from qorgan.incidents.models import Evidence, Incident
from qorgan.incidents.observables import KINDS
from qorgan.incidents.schemas import CleanText as Text
from qorgan.incidents.task_templates import PHASES
from qorgan.web.deps import Actor, Db, RecordId, api_actor, state, work_calendar
from qorgan.web.filters import alert_filter
from qorgan.web.i18n import _l
from qorgan.web.limits import read_form

router = APIRouter(prefix="/incidents", tags=["incidents"])
Reader = Annotated[Actor, Depends(api_actor(Permission.incidents_read))]
Worker = Annotated[Actor, Depends(api_actor(Permission.incidents_write))]
Calendar = Annotated[WorkCalendar, Depends(work_calendar)]
AlertId = Annotated[int, Field(ge=1, le=2**31 - 1)]
Short = Annotated[Text, Field(max_length=300)]
Long = Annotated[Text, Field(max_length=100_000)]


@contextmanager
def refusals() -> Iterator[None]:
    """The services' refusals as HTTP answers: 404 for records not found, 409 for an evidence
    file the store no longer holds as recorded, 400 otherwise."""
    try:
        yield
    except evidence.EvidenceNotFound:
        raise HTTPException(404, _l("no such evidence file")) from None
    except NotFound:
        raise HTTPException(404, _l("no such incident in your organisation")) from None
    except evidence.EvidenceTampered as exc:
        raise HTTPException(409, exc.message) from None
    except IncidentError as exc:
        raise HTTPException(400, exc.message) from None


def _run(db: Db, actor: Actor, incident_id: int, work: Any, **fields: Any) -> Any:
    """One change as the actor (``work`` is a service function taking the session, the
    organisation, the incident, the actor and ``fields``), committed; refusals as answers."""
    with refusals():
        result = work(
            session=db,
            organisation_id=actor.organisation_id,
            incident_id=incident_id,
            actor_id=actor.user.id,
            **fields,
        )
    db.commit()
    return result


class ClockOut(BaseModel):
    measure: str = Field(description="acknowledge, contain, close or breach_report.")
    due_at: datetime | None = Field(description="The deadline (UTC), if one applies.")
    met_at: datetime | None = Field(description="When it was met (UTC).")
    state: str = Field(description="met, met_late, running, soon, overdue or none.")
    elapsed_seconds: float = Field(description="From the start to met (or to now).")


class IncidentOut(BaseModel):
    id: int
    reference: str = Field(description="INC-000123.")
    organisation_id: int
    title: str
    kz_cert_class: str | None
    rsit_class: str | None
    rsit_type: str | None
    severity: Severity
    severity_overridden: bool = Field(description="A person set it (with a reason).")
    tlp: str
    pap: str
    status: Status
    resolution: str | None
    assignee_id: int | None
    tags: list[str]
    personal_data: bool
    origin: str = Field(description="alerts, report or manual.")
    created_at: datetime
    started_at: datetime = Field(description="The first event, alert or report (UTC).")
    next_due_at: datetime | None = Field(description="The earliest deadline not yet met.")
    deadline_state: str = Field(description="overdue, soon or ok.")
    reported_to_id: int | None
    merged_into_id: int | None


class IncidentDetail(IncidentOut):
    description: str
    severity_reason: str | None
    criminal_code: list[str]
    acknowledged_at: datetime | None
    contained_at: datetime | None
    closed_at: datetime | None
    clocks: list[ClockOut]
    alerts: int = Field(description="How many alerts the incident holds.")


class IncidentPage(BaseModel):
    items: list[IncidentOut]
    total: int
    limit: int
    offset: int


def incident_out(incident: Incident, now: datetime | None = None) -> IncidentOut:
    from qorgan.core.db import utcnow

    now = now or utcnow()
    return IncidentOut(
        id=incident.id,
        reference=service.reference(incident.id),
        organisation_id=incident.organisation_id,
        title=incident.title,
        kz_cert_class=incident.kz_cert_class,
        rsit_class=incident.rsit_class,
        rsit_type=incident.rsit_type,
        severity=RANK_SEVERITY[incident.severity],
        severity_overridden=bool(incident.severity_reason),
        tlp=incident.tlp,
        pap=incident.pap,
        status=Status(incident.status),
        resolution=incident.resolution,
        assignee_id=incident.assignee_id,
        tags=list(incident.tags or []),
        personal_data=incident.personal_data,
        origin=incident.origin,
        created_at=incident.created_at,
        started_at=incident.started_at,
        next_due_at=incident.next_due_at,
        deadline_state=clocks.state(incident, now),
        reported_to_id=incident.reported_to_id,
        merged_into_id=incident.merged_into_id,
    )


def incident_detail(db: Db, incident: Incident) -> IncidentDetail:
    from qorgan.core.db import utcnow

    now = utcnow()
    return IncidentDetail(
        **incident_out(incident, now).model_dump(),
        description=incident.description,
        severity_reason=incident.severity_reason,
        criminal_code=list(incident.criminal_code or []),
        acknowledged_at=incident.acknowledged_at,
        contained_at=incident.contained_at,
        closed_at=incident.closed_at,
        clocks=[
            ClockOut(
                measure=c.measure,
                due_at=c.due_at,
                met_at=c.met_at,
                state=c.state,
                elapsed_seconds=c.elapsed.total_seconds(),
            )
            for c in clocks.clocks(incident, now)
        ],
        alerts=service.alert_count(session=db, incident_id=incident.id),
    )


@router.get("", response_model=IncidentPage, summary="List incidents")
def list_incidents(
    db: Db,
    actor: Reader,
    status: Annotated[str, Query(max_length=16, description="A status, open or all.")] = "open",
    kz_cert: Annotated[str | None, Query(max_length=64)] = None,
    severity: Annotated[Severity | None, Query()] = None,
    assignee_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    due: Annotated[Literal["overdue", "soon"] | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    scope: Annotated[listing.Scope, Query(description="own, or reported (coordinator).")] = (
        listing.Scope.own
    ),
    order: listing.Order = listing.Order.due,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> IncidentPage:
    """The organisation's incidents (``scope=reported``: those reported to it as national
    coordinator, for the ``incidents:coordinate`` permission), most urgent deadline first."""
    if scope is listing.Scope.reported and not actor.can(Permission.incidents_coordinate):
        raise HTTPException(403, "your role or token does not allow incidents:coordinate")
    with refusals():
        filters = listing.IncidentFilter(
            status=status,
            kz_cert_class=kz_cert,
            severity=None if severity is None else SEVERITY_RANK[severity],
            assignee_id=assignee_id,
            due=due,
            query=q,
            scope=scope,
        )
    rows, total = listing.list_incidents(
        session=db,
        organisation_id=actor.organisation_id,
        filters=filters,
        order=order,
        limit=limit,
        offset=offset,
    )
    return IncidentPage(
        items=[incident_out(r) for r in rows], total=total, limit=limit, offset=offset
    )


class IncidentIn(BaseModel):
    title: Short = Field(default="", description="Blank: made from the alerts' rule and host.")
    description: Long = ""
    kz_cert_class: Annotated[Text, Field(max_length=64)] | None = None
    rsit_class: Annotated[Text, Field(max_length=64)] | None = None
    rsit_type: Annotated[Text, Field(max_length=64)] | None = None
    tlp: Tlp = Tlp.amber
    pap: Pap = Pap.amber
    tags: list[Annotated[Text, Field(max_length=100)]] = Field(default_factory=list, max_length=50)
    personal_data: bool = Field(default=False, description="Starts the breach-report clock.")
    assignee_id: AlertId | None = None
    severity: Severity | None = Field(default=None, description="Blank: derived.")
    severity_reason: Annotated[Text, Field(max_length=1000)] | None = None
    asset_ids: list[AlertId] = Field(default_factory=list, max_length=1000)
    criminal_code: list[Annotated[Text, Field(max_length=8)]] | None = None
    alert_ids: list[AlertId] | None = Field(
        default=None, max_length=service.MAX_ALERTS, description="Alerts of yours to take."
    )
    all_matching: bool = Field(
        default=False,
        description="Take every alert matching the alert filters given as query parameters "
        "(those of GET /api/v1/alerts) instead of alert_ids.",
    )


class CreatedOut(BaseModel):
    incident: IncidentOut
    alerts_added: int
    alerts_elsewhere: int = Field(description="Alerts left in the incident they were in.")


@router.post("", response_model=CreatedOut, status_code=201, summary="Create an incident")
def create_incident(
    request: Request,
    db: Db,
    actor: Worker,
    calendar: Calendar,
    body: IncidentIn,
    filters: Annotated[AlertFilter, Depends(alert_filter)],
) -> CreatedOut:
    """Create an incident from alerts (``alert_ids``, or ``all_matching`` with the alert
    filters), or by hand (neither)."""
    if body.alert_ids is not None and body.all_matching:
        raise HTTPException(422, "name the alerts in alert_ids, or set all_matching (not both)")
    draft = service.Draft(
        **body.model_dump(exclude={"alert_ids", "all_matching", "tlp", "pap", "severity"}),
        tlp=body.tlp.value,
        pap=body.pap.value,
        severity=body.severity.value if body.severity else None,
    )
    with refusals():
        incident, linked = service.create(
            session=db,
            organisation_id=actor.organisation_id,
            actor_id=actor.user.id,
            draft=draft,
            calendar=calendar,
            alert_ids=body.alert_ids,
            filters=filters if body.all_matching else None,
        )
    db.commit()
    return CreatedOut(
        incident=incident_out(incident),
        alerts_added=linked.added,
        alerts_elsewhere=linked.elsewhere,
    )


def _visible(db: Db, actor: Actor, incident_id: int) -> Incident:
    with refusals():
        return service.visible(
            session=db, incident_id=incident_id, organisation_id=actor.organisation_id
        )


@router.get("/{incident_id}", response_model=IncidentDetail, summary="Read an incident")
def get_incident(db: Db, actor: Reader, incident_id: RecordId) -> IncidentDetail:
    return incident_detail(db, _visible(db, actor, incident_id))


class IncidentEdit(BaseModel):
    title: Short | None = None
    description: Long | None = None
    kz_cert_class: Annotated[Text, Field(max_length=64)] | None = None
    rsit_class: Annotated[Text, Field(max_length=64)] | None = None
    rsit_type: Annotated[Text, Field(max_length=64)] | None = None
    tlp: Tlp | None = None
    pap: Pap | None = None
    tags: list[Annotated[Text, Field(max_length=100)]] | None = Field(default=None, max_length=50)
    personal_data: bool | None = None
    criminal_code: list[Annotated[Text, Field(max_length=8)]] | None = None


@router.patch("/{incident_id}", response_model=IncidentDetail, summary="Edit an incident")
def edit_incident(
    db: Db, actor: Worker, calendar: Calendar, incident_id: RecordId, body: IncidentEdit
) -> IncidentDetail:
    """Change the fields given (the others stay). A new KZ-CERT class reschedules the
    deadlines not yet met; ``personal_data`` true starts the breach-report clock."""
    changes: dict[str, Any] = {
        k: (v.value if isinstance(v, Tlp | Pap) else v)
        for k, v in body.model_dump(exclude_unset=True).items()
    }
    incident = _run(
        db,
        actor,
        incident_id,
        service.edit,
        changes=changes,
        calendar=calendar,
    )
    return incident_detail(db, incident)


class MoveIn(BaseModel):
    status: Status
    resolution: Resolution | None = Field(default=None, description="Needed to close.")
    reason: Annotated[Text, Field(max_length=1000)] = ""


@router.post("/{incident_id}/status", response_model=IncidentDetail, summary="Move an incident")
def move_incident(db: Db, actor: Worker, incident_id: RecordId, body: MoveIn) -> IncidentDetail:
    incident = _run(
        db,
        actor,
        incident_id,
        service.move,
        status=body.status.value,
        resolution=body.resolution.value if body.resolution else None,
        reason=body.reason,
    )
    return incident_detail(db, incident)


class AssigneeIn(BaseModel):
    assignee_id: AlertId | None


@router.put("/{incident_id}/assignee", response_model=IncidentDetail, summary="Assign")
def assign_incident(
    db: Db, actor: Worker, incident_id: RecordId, body: AssigneeIn
) -> IncidentDetail:
    incident = _run(
        db,
        actor,
        incident_id,
        service.assign,
        assignee_id=body.assignee_id,
    )
    return incident_detail(db, incident)


class SeverityIn(BaseModel):
    severity: Severity | None = Field(description="null: back to the derived severity.")
    reason: Annotated[Text, Field(max_length=1000)] = ""


@router.put("/{incident_id}/severity", response_model=IncidentDetail, summary="Set severity")
def set_severity(db: Db, actor: Worker, incident_id: RecordId, body: SeverityIn) -> IncidentDetail:
    """Override the derived severity (a reason is required), or go back to it."""
    incident = _run(
        db,
        actor,
        incident_id,
        service.set_severity,
        severity=body.severity.value if body.severity else None,
        reason=body.reason,
    )
    return incident_detail(db, incident)


class AlertsIn(BaseModel):
    alert_ids: list[AlertId] | None = Field(default=None, max_length=service.MAX_ALERTS)
    all_matching: bool = False


class LinkedOut(BaseModel):
    added: int
    elsewhere: int


@router.post("/{incident_id}/alerts", response_model=LinkedOut, summary="Add alerts")
def add_alerts(
    db: Db,
    actor: Worker,
    incident_id: RecordId,
    body: AlertsIn,
    filters: Annotated[AlertFilter, Depends(alert_filter)],
) -> LinkedOut:
    """Link more of your alerts (``alert_ids``, or ``all_matching`` the alert filters)."""
    if (body.alert_ids is None) == (not body.all_matching):
        raise HTTPException(422, "name the alerts in alert_ids, or set all_matching (not both)")
    linked = _run(
        db,
        actor,
        incident_id,
        service.add_alerts,
        alert_ids=body.alert_ids,
        filters=filters if body.all_matching else None,
    )
    return LinkedOut(added=linked.added, elsewhere=linked.elsewhere)


class MergeIn(BaseModel):
    into: AlertId = Field(description="The incident this one is merged into.")


@router.post("/{incident_id}/merge", response_model=IncidentDetail, summary="Merge")
def merge_incident(db: Db, actor: Worker, incident_id: RecordId, body: MergeIn) -> IncidentDetail:
    """Merge this incident into another of yours (this one is closed as a duplicate)."""
    with refusals():
        target = service.merge(
            session=db,
            organisation_id=actor.organisation_id,
            source_id=incident_id,
            target_id=body.into,
            actor_id=actor.user.id,
        )
    db.commit()
    return incident_detail(db, target)


class SplitIn(BaseModel):
    alert_ids: list[AlertId] = Field(min_length=1, max_length=service.MAX_ALERTS)
    title: Short = ""


@router.post("/{incident_id}/split", response_model=IncidentDetail, status_code=201)
def split_incident(
    db: Db, actor: Worker, calendar: Calendar, incident_id: RecordId, body: SplitIn
) -> IncidentDetail:
    """Move some of the incident's alerts to a new incident; answers the new one."""
    new = _run(
        db,
        actor,
        incident_id,
        service.split,
        alert_ids=body.alert_ids,
        title=body.title,
        calendar=calendar,
    )
    return incident_detail(db, new)


class TimelineEntryOut(BaseModel):
    at: datetime
    kind: str = Field(description="alert, or what was done (created, status, note, ...).")
    actor: str | None
    alert_id: int | None
    details: dict[str, Any]


class TimelineOut(BaseModel):
    entries: list[TimelineEntryOut]
    more_alerts: int = Field(description="Alerts beyond those listed.")


@router.get("/{incident_id}/timeline", response_model=TimelineOut, summary="Timeline")
def incident_timeline(db: Db, actor: Reader, incident_id: RecordId) -> TimelineOut:
    incident = _visible(db, actor, incident_id)
    found = timeline.timeline(session=db, incident_id=incident.id)
    return TimelineOut(
        entries=[
            TimelineEntryOut(
                at=e.at, kind=e.kind, actor=e.by, alert_id=e.alert_id, details=e.details
            )
            for e in found.entries
        ],
        more_alerts=found.more_alerts,
    )


class TaskOut(BaseModel):
    id: int
    phase: str
    title: str
    description: str
    status: str
    template_id: str | None
    done_at: datetime | None


class TaskIn(BaseModel):
    phase: Literal[PHASES]  # type: ignore[valid-type]
    title: Annotated[Text, Field(min_length=1, max_length=300)]
    description: Annotated[Text, Field(max_length=tasks.MAX_NOTE)] = ""


class TemplateIn(BaseModel):
    template_id: Annotated[Text, Field(min_length=1, max_length=64)]
    language: Literal["kk", "ru", "en"] = "kk"


class TaskStatusIn(BaseModel):
    status: Literal["open", "done", "skipped"]


def _task_out(task: Any) -> TaskOut:
    return TaskOut(
        id=task.id,
        phase=task.phase,
        title=task.title,
        description=task.description,
        status=task.status,
        template_id=task.template_id,
        done_at=task.done_at,
    )


@router.get("/{incident_id}/tasks", response_model=list[TaskOut], summary="Tasks")
def list_tasks(db: Db, actor: Reader, incident_id: RecordId) -> list[TaskOut]:
    incident = _visible(db, actor, incident_id)
    return [_task_out(t) for t in tasks.tasks(session=db, incident_id=incident.id)]


@router.post("/{incident_id}/tasks", response_model=TaskOut, status_code=201)
def add_task(db: Db, actor: Worker, incident_id: RecordId, body: TaskIn) -> TaskOut:
    task = _run(
        db,
        actor,
        incident_id,
        tasks.add_task,
        phase=body.phase,
        title=body.title,
        description=body.description,
    )
    return _task_out(task)


@router.post("/{incident_id}/tasks/template", response_model=list[TaskOut], status_code=201)
def apply_template(db: Db, actor: Worker, incident_id: RecordId, body: TemplateIn) -> list[TaskOut]:
    """Add a task template's tasks (in ``language``) to the incident's phases."""
    added = _run(
        db,
        actor,
        incident_id,
        tasks.apply_template,
        template_id=body.template_id,
        language=body.language,
    )
    return [_task_out(t) for t in added]


@router.put("/{incident_id}/tasks/{task_id}/status", response_model=TaskOut)
def set_task_status(
    db: Db, actor: Worker, incident_id: RecordId, task_id: RecordId, body: TaskStatusIn
) -> TaskOut:
    task = _run(
        db,
        actor,
        incident_id,
        tasks.set_task_status,
        status=body.status,
        task_id=task_id,
    )
    return _task_out(task)


class NoteIn(BaseModel):
    text: Annotated[Text, Field(min_length=1, max_length=tasks.MAX_NOTE)] = Field(
        description="Markdown (shown with raw HTML escaped)."
    )
    task_id: AlertId | None = None


class NoteOut(BaseModel):
    id: int
    task_id: int | None
    author_id: int | None
    created_at: datetime
    text: str


@router.get("/{incident_id}/notes", response_model=list[NoteOut], summary="Notes")
def list_notes(db: Db, actor: Reader, incident_id: RecordId) -> list[NoteOut]:
    incident = _visible(db, actor, incident_id)
    return [
        NoteOut(
            id=n.id, task_id=n.task_id, author_id=n.author_id, created_at=n.created_at, text=n.text
        )
        for n in tasks.notes(session=db, incident_id=incident.id)
    ]


@router.post("/{incident_id}/notes", response_model=NoteOut, status_code=201)
def add_note(db: Db, actor: Worker, incident_id: RecordId, body: NoteIn) -> NoteOut:
    note = _run(
        db,
        actor,
        incident_id,
        tasks.add_note,
        text=body.text,
        task_id=body.task_id,
    )
    return NoteOut(
        id=note.id,
        task_id=note.task_id,
        author_id=note.author_id,
        created_at=note.created_at,
        text=note.text,
    )


class ObservableIn(BaseModel):
    kind: Literal[KINDS]  # type: ignore[valid-type]
    value: Annotated[Text, Field(min_length=1, max_length=500)]


class ObservableOut(BaseModel):
    kind: str
    value: str
    origin: str = Field(description="alert (extracted) or manual.")


@router.get("/{incident_id}/observables", response_model=list[ObservableOut])
def list_observables(db: Db, actor: Reader, incident_id: RecordId) -> list[ObservableOut]:
    incident = _visible(db, actor, incident_id)
    return [
        ObservableOut(kind=o.kind, value=o.value, origin=o.origin)
        for o in service.observables(session=db, incident_id=incident.id)
    ]


@router.post("/{incident_id}/observables", response_model=ObservableOut, status_code=201)
def add_observable(
    db: Db, actor: Worker, incident_id: RecordId, body: ObservableIn
) -> ObservableOut:
    found = _run(
        db,
        actor,
        incident_id,
        service.add_observable,
        kind=body.kind,
        value=body.value,
    )
    return ObservableOut(kind=found.kind, value=found.value, origin=found.origin)


class ReportIn(BaseModel):
    coordinator_id: AlertId | None = Field(
        default=None, description="The coordinator's organisation, when there are several."
    )


@router.post("/{incident_id}/report", response_model=IncidentDetail, summary="Report to KZ-CERT")
def report_incident(db: Db, actor: Worker, incident_id: RecordId, body: ReportIn) -> IncidentDetail:
    """Report the incident to the national coordinator, who then reads it and writes in its
    thread."""
    incident = _run(
        db,
        actor,
        incident_id,
        reporting.report,
        coordinator_id=body.coordinator_id,
    )
    return incident_detail(db, incident)


class MessageIn(BaseModel):
    text: Annotated[Text, Field(min_length=1, max_length=reporting.MAX_MESSAGE)]
    kind: Literal["question", "recommendation", "message"] = Field(
        default="message", description="question and recommendation: the coordinator only."
    )


class MessageOut(BaseModel):
    id: int
    organisation_id: int = Field(description="The author's organisation.")
    author_id: int | None
    author_name: str | None
    kind: str
    text: str
    created_at: datetime


@router.get("/{incident_id}/messages", response_model=list[MessageOut], summary="Thread")
def list_messages(db: Db, actor: Reader, incident_id: RecordId) -> list[MessageOut]:
    """The thread between the reporting organisation and the national coordinator."""
    incident = _visible(db, actor, incident_id)
    return [
        MessageOut(
            id=m.id,
            organisation_id=m.organisation_id,
            author_id=m.author_id,
            author_name=name,
            kind=m.kind,
            text=m.text,
            created_at=m.created_at,
        )
        for m, name in reporting.messages(session=db, incident_id=incident.id)
    ]


@router.post("/{incident_id}/messages", response_model=MessageOut, status_code=201)
def post_message(
    request: Request, db: Db, actor: Reader, incident_id: RecordId, body: MessageIn
) -> MessageOut:
    """Write in the thread: the reporter's members who work incidents, or the coordinator's
    members who coordinate."""
    needed = (
        Permission.incidents_write
        if _visible(db, actor, incident_id).organisation_id == actor.organisation_id
        else Permission.incidents_coordinate
    )
    if not actor.can(needed):
        raise HTTPException(403, f"your role or token does not allow {needed}")
    message = _run(
        db,
        actor,
        incident_id,
        reporting.post_message,
        text=body.text,
        kind=body.kind,
    )
    return MessageOut(
        id=message.id,
        organisation_id=message.organisation_id,
        author_id=message.author_id,
        author_name=actor.user.display_name,
        kind=message.kind,
        text=message.text,
        created_at=message.created_at,
    )


class EvidenceOut(BaseModel):
    id: int
    incident_id: int
    name: str = Field(description="The file's name as uploaded.")
    size: int = Field(description="Bytes.")
    sha256: str = Field(
        description="SHA-256 of the content (lowercase hex), checked at each download."
    )
    media_type: str = Field(
        description="As declared at upload (a hint; downloads are octet-stream)."
    )
    description: str
    added_by_id: int | None
    added_at: datetime


def evidence_out(found: Evidence) -> EvidenceOut:
    return EvidenceOut(
        id=found.id,
        incident_id=found.incident_id,
        name=found.name,
        size=found.size,
        sha256=found.sha256,
        media_type=found.media_type,
        description=found.description,
        added_by_id=found.added_by_id,
        added_at=found.added_at,
    )


def evidence_store(request: Request) -> Path:
    return evidence.store_folder(state(request).settings.var_dir)


async def receive_evidence(request: Request, db: Db, actor: Actor, incident_id: int) -> Evidence:
    """Add the multipart form's ``file`` (and ``description``) to the incident, committed.
    The incident is checked before the form is read, so nothing is stored for an incident the
    caller may not change; the body limit (``web.limits``) bounds the form, the service the
    file."""
    settings = state(request).settings

    def writable() -> None:
        with refusals():
            service.visible(
                session=db,
                incident_id=incident_id,
                organisation_id=actor.organisation_id,
                writing=True,
            )

    try:
        await run_in_threadpool(writable)
        form = await read_form(request, max_files=1, max_fields=10)
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise HTTPException(400, _l("choose a file to add as evidence"))
        description = form.get("description") or ""
        if not isinstance(description, str):
            raise HTTPException(400, _l("invalid form"))
        name = upload.filename

        def add() -> Evidence:
            with refusals():
                found = evidence.add_evidence(
                    session=db,
                    store_root=evidence_store(request),
                    organisation_id=actor.organisation_id,
                    incident_id=incident_id,
                    actor_id=actor.user.id,
                    name=name,
                    stream=upload.file,
                    media_type=upload.content_type,
                    description=description,
                    max_bytes=settings.evidence_max_mib << 20,
                )
            db.commit()
            return found

        return await run_in_threadpool(add)
    finally:
        # The spooled upload, at once (a page's form was read for its CSRF token already).
        await request.close()


def attachment(name: str) -> str:
    """A Content-Disposition that makes any browser save ``name`` instead of showing it: a
    plain stand-in for old clients (letters, digits and ``._()-`` only, so no quote, semicolon
    or backslash can end the parameter early), then the exact name (RFC 6266, RFC 8187)."""
    stand_in = "".join(c if c.isascii() and (c.isalnum() or c in "._()- ") else "_" for c in name)
    return f"attachment; filename=\"{stand_in}\"; filename*=UTF-8''{quote(name, safe='')}"


def evidence_download(
    request: Request, db: Db, actor: Actor, incident_id: int, evidence_id: int
) -> FileResponse:
    """The verified file as a download, after its opening is committed to the trail."""
    with refusals():
        found, path = evidence.open_evidence(
            session=db,
            store_root=evidence_store(request),
            organisation_id=actor.organisation_id,
            incident_id=incident_id,
            evidence_id=evidence_id,
            actor_id=actor.user.id,
        )
    db.commit()
    # Always octet-stream, whatever was declared: a browser never renders or runs evidence.
    return FileResponse(
        path,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": attachment(found.name),
            "X-Content-Type-Options": "nosniff",
            "X-Evidence-SHA256": found.sha256,
        },
    )


@router.get("/{incident_id}/evidence", response_model=list[EvidenceOut], summary="Evidence files")
def list_evidence(db: Db, actor: Reader, incident_id: RecordId) -> list[EvidenceOut]:
    incident = _visible(db, actor, incident_id)
    return [evidence_out(e) for e in evidence.list_evidence(session=db, incident_id=incident.id)]


@router.post(
    "/{incident_id}/evidence",
    response_model=EvidenceOut,
    status_code=201,
    summary="Add an evidence file",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": "The file; its name is kept as given (1-255 "
                                "characters, no folders or control characters).",
                            },
                            "description": {"type": "string", "maxLength": 2000},
                        },
                    }
                }
            },
        }
    },
    responses={413: {"description": "The body is larger than the evidence limit."}},
)
async def add_evidence(
    request: Request, db: Db, actor: Worker, incident_id: RecordId
) -> EvidenceOut:
    """Upload a file (multipart ``file``, optional ``description``) as evidence: stored once by
    its SHA-256, at most ``QORGAN_EVIDENCE_MAX_MIB``; the same content twice on one incident
    is refused."""
    return evidence_out(await receive_evidence(request, db, actor, incident_id))


@router.get(
    "/{incident_id}/evidence/{evidence_id}",
    response_class=FileResponse,
    summary="Download an evidence file",
    responses={
        200: {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            }
        },
        409: {"description": "The stored file no longer matches its SHA-256."},
    },
)
def download_evidence(
    request: Request, db: Db, actor: Reader, incident_id: RecordId, evidence_id: RecordId
) -> FileResponse:
    """The file, once its content is verified against its SHA-256 (also sent as
    ``X-Evidence-SHA256``); each download is recorded in the chain of custody."""
    return evidence_download(request, db, actor, incident_id, evidence_id)
