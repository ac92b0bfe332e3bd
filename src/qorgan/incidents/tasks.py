"""Tasks, task templates and notes of incidents.

Each organisation works from its own copy of the task templates: the built-in ones
(``task_templates.yml``) until it saves its own version of one. Applying a template adds its
tasks (in the language of the person applying it) to the incident's phases; a template already
applied is not applied twice. Notes are Markdown, kept as written and rendered safely by the
web layer; they are never edited. Service functions take ``*, session`` and never commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from qorgan.core import audit
from qorgan.core.db import utcnow
from qorgan.incidents import service
from qorgan.incidents.lifecycle import IncidentError, NotFound
from qorgan.incidents.models import Incident, IncidentNote, IncidentTask, TaskTemplate
from qorgan.incidents.task_templates import (
    PHASES,
    Template,
    default_templates,
    localised,
    parse_template,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

TASK_STATUSES = ("open", "done", "skipped")
MAX_NOTE = 20_000
MAX_TASKS = 200


def templates(*, session: Session, organisation_id: int) -> dict[str, Template]:
    """The organisation's templates: the built-in ones, each replaced by its saved copy."""
    result = dict(default_templates())
    for row in session.scalars(
        select(TaskTemplate)
        .where(TaskTemplate.organisation_id == organisation_id)
        .order_by(TaskTemplate.template_id)
    ):
        result[row.template_id] = parse_template(row.template_id, row.data)
    return result


def save_template(
    *,
    session: Session,
    organisation_id: int,
    actor_id: int,
    template_id: str,
    data: Mapping[str, Any],
    known_classes: list[str] | None = None,
) -> Template:
    """Save the organisation's version of a template (validated first). Audited."""
    template = parse_template(template_id, data, known_classes=known_classes)
    row = session.scalar(
        select(TaskTemplate).where(
            TaskTemplate.organisation_id == organisation_id,
            TaskTemplate.template_id == template_id,
        )
    )
    if row is None:
        session.add(
            TaskTemplate(
                organisation_id=organisation_id,
                template_id=template_id,
                data=template.to_data(),
            )
        )
    else:
        row.data = template.to_data()
        row.updated_at = utcnow()
    audit.record(
        "incident.template_saved",
        session=session,
        actor=str(actor_id),
        organisation_id=organisation_id,
        target_type="task_template",
        target_id=template_id,
        details={"tasks": len(template.tasks)},
    )
    return template


def tasks(*, session: Session, incident_id: int) -> list[IncidentTask]:
    """The incident's tasks in phase order, then in the order added."""
    rank = {phase: i for i, phase in enumerate(PHASES)}
    rows = session.scalars(
        select(IncidentTask)
        .where(IncidentTask.incident_id == incident_id)
        .order_by(IncidentTask.position, IncidentTask.id)
    ).all()
    return sorted(rows, key=lambda t: (rank.get(t.phase, len(PHASES)), t.position, t.id))


def _next_position(session: Session, incident_id: int) -> int:
    last = session.scalar(
        select(func.max(IncidentTask.position)).where(IncidentTask.incident_id == incident_id)
    )
    return (last or 0) + 1


def _count(session: Session, incident_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(IncidentTask)
            .where(IncidentTask.incident_id == incident_id)
        )
        or 0
    )


def apply_template(
    *,
    session: Session,
    organisation_id: int,
    incident_id: int,
    actor_id: int,
    template_id: str,
    language: str,
) -> list[IncidentTask]:
    """Add the template's tasks to the incident (once per template)."""
    incident = service.owned(session, incident_id, organisation_id)
    chosen = templates(session=session, organisation_id=organisation_id).get(template_id)
    if chosen is None:
        raise NotFound("no such task template", source=f"template {template_id}")
    applied = session.scalar(
        select(func.count())
        .select_from(IncidentTask)
        .where(IncidentTask.incident_id == incident.id, IncidentTask.template_id == template_id)
    )
    if applied:
        raise IncidentError("this template's tasks are already on the incident")
    if _count(session, incident.id) + len(chosen.tasks) > MAX_TASKS:
        raise IncidentError(f"an incident has at most {MAX_TASKS} tasks")
    position = _next_position(session, incident.id)
    added = []
    for offset, spec in enumerate(chosen.tasks):
        task = IncidentTask(
            incident_id=incident.id,
            phase=spec.phase,
            position=position + offset,
            title=localised(spec.title, language)[:300],
            description=localised(spec.description, language),
            template_id=template_id,
        )
        session.add(task)
        added.append(task)
    session.flush()
    service.event(
        session, incident, actor_id, "template", {"template": template_id, "tasks": len(added)}
    )
    return added


def add_task(
    *,
    session: Session,
    organisation_id: int,
    incident_id: int,
    actor_id: int,
    phase: str,
    title: str,
    description: str = "",
) -> IncidentTask:
    """Add one task by hand."""
    if phase not in PHASES:
        raise IncidentError(f"unknown phase {phase!r}; use one of {', '.join(PHASES)}")
    service.check_text(title, description)
    title = title.strip()
    if not title or len(title) > 300:
        raise IncidentError("a task's title has 1 to 300 characters")
    if len(description) > MAX_NOTE:
        raise IncidentError(f"a task's description has at most {MAX_NOTE:,} characters")
    incident = service.owned(session, incident_id, organisation_id)
    if _count(session, incident.id) >= MAX_TASKS:
        raise IncidentError(f"an incident has at most {MAX_TASKS} tasks")
    task = IncidentTask(
        incident_id=incident.id,
        phase=phase,
        position=_next_position(session, incident.id),
        title=title,
        description=description,
    )
    session.add(task)
    session.flush()
    service.event(session, incident, actor_id, "task_added", {"task": task.id, "phase": phase})
    return task


def _task(session: Session, incident: Incident, task_id: int) -> IncidentTask:
    task = session.get(IncidentTask, task_id)
    if task is None or task.incident_id != incident.id:
        raise NotFound("no such task", source=f"task {task_id}")
    return task


def set_task_status(
    *,
    session: Session,
    organisation_id: int,
    incident_id: int,
    task_id: int,
    actor_id: int,
    status: str,
) -> IncidentTask:
    """Mark a task done, skipped or open again."""
    incident = service.owned(session, incident_id, organisation_id)
    task = _task(session, incident, task_id)
    if status not in TASK_STATUSES:
        raise IncidentError(
            f"unknown task status {status!r}; use one of {', '.join(TASK_STATUSES)}"
        )
    if task.status == status:
        return task
    before = task.status
    task.status = status
    if status == "open":
        task.done_at, task.done_by_id = None, None
    else:
        task.done_at, task.done_by_id = utcnow(), actor_id
    service.event(
        session,
        incident,
        actor_id,
        "task",
        {"task": task.id, "title": task.title[:200], "from": before, "to": status},
    )
    return task


def add_note(
    *,
    session: Session,
    organisation_id: int,
    incident_id: int,
    actor_id: int,
    text: str,
    task_id: int | None = None,
) -> IncidentNote:
    """Add a note (Markdown) to the incident or to one of its tasks."""
    service.check_text(text)
    if not text.strip():
        raise IncidentError("a note cannot be empty")
    if len(text) > MAX_NOTE:
        raise IncidentError(f"a note has at most {MAX_NOTE:,} characters")
    incident = service.owned(session, incident_id, organisation_id)
    if task_id is not None:
        _task(session, incident, task_id)
    note = IncidentNote(incident_id=incident.id, task_id=task_id, author_id=actor_id, text=text)
    session.add(note)
    session.flush()
    service.event(session, incident, actor_id, "note", {"note": note.id, "task": task_id})
    return note


def notes(*, session: Session, incident_id: int) -> list[IncidentNote]:
    """The incident's notes (its tasks' too), oldest first."""
    return list(
        session.scalars(
            select(IncidentNote)
            .where(IncidentNote.incident_id == incident_id)
            .order_by(IncidentNote.id)
        )
    )
