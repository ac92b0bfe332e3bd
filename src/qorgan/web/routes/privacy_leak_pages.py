"""The data-protection officer's leak pages: the organisation's leak reports with their
one-working-day deadline to the authorised body, a form to report one, and each report's
page, where the affected subjects' CSV is uploaded (refused with every bad row named), the
report is submitted (its subjects' notices queued, its incident opened or linked) and
downloaded, and the notices' delivery is counted.

The work is the privacy service's (:mod:`qorgan.privacy.leaks`) and, for submitting,
:mod:`qorgan.web.leak_incident`'s, as for the API; the report's downloads are the API's own
(``GET /api/v1/privacy/leaks/{id}/report``, which takes the console's session). Notices are
sent by the scheduled ``qorgan privacy deliver-notices``, not by a page: it sends every
organisation's due notices, and a send to an SMTP server may take longer than a request.
Everything is the caller's own organisation's: another's ids are not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from qorgan.core.roles import Permission
from qorgan.core.workdays import WorkCalendar
from qorgan.incidents.service import reference as incident_reference
from qorgan.privacy import leak_csv, leaks, registry
from qorgan.privacy.leak_models import LeakReport, LeakStatus
from qorgan.privacy.leak_words import leak_reference
from qorgan.privacy.leaks import LeakError, LeakIn, LeakNotFound
from qorgan.privacy.models import DataCategory, InformationSystem
from qorgan.privacy.protection import protection
from qorgan.web import leak_incident
from qorgan.web.deps import Actor, Db, RecordId, page_actor, state, work_calendar
from qorgan.web.i18n import _l, translations
from qorgan.web.limits import read_form
from qorgan.web.privacy_labels import (
    BAD_TIME,
    LEAK_FIELD_LABELS,
    as_typed,
    leak_refusal,
    not_text,
    template_values,
)
from qorgan.web.templating import render, request_language

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, Depends(page_actor(Permission.privacy_read))]
Manager = Annotated[Actor, Depends(page_actor(Permission.privacy_manage))]
Calendar = Annotated[WorkCalendar, Depends(work_calendar)]
NO_LEAK = _l("No such leak report in your organisation.")
NO_FILE = _l("Choose the CSV file of the affected subjects.")
#: The form's text fields, with the leak service's name for each (its refusals use it).
TEXT_FIELDS = {
    "holder_name": "holder's name",
    "description": "description of what leaked",
    "measures": "measures taken",
    "responsible_person": "responsible person",
    "contacts": "contacts",
}
#: Twice the service's limits: a little over is refused by the service with its reason, far
#: over by the form parser.
FORM_TEXT_MAX = 2 * leaks.TEXT_MAX


@dataclass(frozen=True)
class Row:
    """A report as the lists show it."""

    leak: LeakReport
    reference: str
    system: str | None
    figures: leaks.Figures


def leak_rows(db: Session, organisation_id: int, *, drafts_only: bool = False) -> list[Row]:
    """The organisation's reports, newest first (only those not submitted yet, if asked)."""
    reports = leaks.list_leaks(session=db, organisation_ids=[organisation_id])
    if drafts_only:
        reports = [r for r in reports if r.status is LeakStatus.draft]
    names = {
        s.id: s.name for s in registry.list_systems(session=db, organisation_ids=[organisation_id])
    }
    return [
        Row(
            r,
            leak_reference(r.id),
            names.get(r.system_id) if r.system_id else None,
            leaks.figures(session=db, leak=r),
        )
        for r in reports
    ]


def _own_leak(db: Session, actor: Actor, leak_id: int) -> LeakReport:
    try:
        return leaks.get(session=db, organisation_ids=[actor.organisation_id], leak_id=leak_id)
    except LeakNotFound:
        raise HTTPException(404, NO_LEAK) from None


@router.get("/privacy/leaks")
def leaks_page(
    request: Request,
    db: Db,
    actor: Reader,
) -> Response:
    return render(
        request,
        "privacy_leaks.html",
        {**template_values(), "rows": leak_rows(db, actor.organisation_id)},
    )


def _form_page(
    request: Request, db: Session, actor: Actor, status: int = 200, **extra: Any
) -> Response:
    systems = registry.list_systems(session=db, organisation_ids=[actor.organisation_id])
    return render(
        request,
        "privacy_leak_new.html",
        {
            **template_values(),
            "systems": [s for s in systems if s.enabled],
            "categories": [c.value for c in DataCategory],
            "typed": {},
            **extra,
        },
        status_code=status,
    )


@router.get("/privacy/leaks/new")
def new_leak_page(request: Request, db: Db, actor: Manager) -> Response:
    return _form_page(request, db, actor)


def _moment(value: str, zone: ZoneInfo) -> datetime | None:
    """The form's local time (``2026-03-06T15:00``, as a datetime-local field sends it), in
    ``zone`` unless it names its own; None when empty, ValueError when unreadable."""
    value = value.strip()
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _system_id(value: str) -> int | None:
    """The chosen system's id; anything but digits is no system's (the service says so)."""
    value = value.strip()
    if not value:
        return None
    return int(value) if value.isascii() and value.isdigit() else 0


@router.post("/privacy/leaks")
def create_leak(
    request: Request,
    db: Db,
    actor: Manager,
    calendar: Calendar,
    categories: Annotated[list[str] | None, Form(max_length=len(DataCategory))] = None,
    description: Annotated[str, Form(max_length=FORM_TEXT_MAX)] = "",
    detected_at: Annotated[str, Form(max_length=40)] = "",
    occurred_at: Annotated[str, Form(max_length=40)] = "",
    measures: Annotated[str, Form(max_length=FORM_TEXT_MAX)] = "",
    responsible_person: Annotated[str, Form(max_length=1000)] = "",
    contacts: Annotated[str, Form(max_length=1000)] = "",
    system: Annotated[str, Form(max_length=20)] = "",
    holder_name: Annotated[str, Form(max_length=1000)] = "",
    holder_bin: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Start a report from the form; a refusal shows the form again, as typed, with why."""
    gettext = translations(request_language(request)).gettext
    settings = state(request).settings
    categories = categories or []
    typed: dict[str, Any] = {
        "categories": categories,
        "description": description,
        "detected_at": detected_at,
        "occurred_at": occurred_at,
        "measures": measures,
        "responsible_person": responsible_person,
        "contacts": contacts,
        "system": system,
        "holder_name": holder_name,
        "holder_bin": holder_bin,
    }
    message = not_text(typed, TEXT_FIELDS, gettext, LEAK_FIELD_LABELS)
    zone = ZoneInfo(settings.timezone)
    moments: dict[str, datetime | None] = {}
    for name, what in (("detected_at", "detection time"), ("occurred_at", "leak time")):
        try:
            moments[name] = _moment(typed[name], zone)
        except ValueError:
            message = message or gettext(BAD_TIME) % {"field": gettext(LEAK_FIELD_LABELS[what])}
    if message is None and moments["detected_at"] is None:
        message = gettext(BAD_TIME) % {"field": gettext(LEAK_FIELD_LABELS["detection time"])}
    if message is None:
        try:
            row = leaks.create(
                session=db,
                protection=protection(settings),
                calendar=calendar,
                organisation_id=actor.organisation_id,
                leak=LeakIn(
                    categories=categories,
                    description=description,
                    detected_at=moments["detected_at"],  # type: ignore[arg-type]
                    occurred_at=moments["occurred_at"],
                    measures=measures,
                    responsible_person=responsible_person,
                    contacts=contacts,
                    system_id=_system_id(system),
                    holder_name=holder_name.strip() or None,
                    holder_bin=holder_bin.strip() or None,
                ),
                actor=actor.id,
                created_by=actor.user.id,
            )
        except LeakError as exc:
            db.rollback()
            message = leak_refusal(exc.message, gettext)
    if message is not None:
        shown = {k: v if isinstance(v, list) else as_typed(v) for k, v in typed.items()}
        return _form_page(request, db, actor, status=400, error=message, typed=shown)
    db.commit()
    return RedirectResponse(f"/privacy/leaks/{row.id}?created=1", status_code=303)


def _leak_page(
    request: Request, db: Session, actor: Actor, leak: LeakReport, status: int = 200, **extra: Any
) -> Response:
    system = db.get(InformationSystem, leak.system_id) if leak.system_id else None
    return render(
        request,
        "privacy_leak.html",
        {
            **template_values(),
            "leak": leak,
            "reference": leak_reference(leak.id),
            "figures": leaks.figures(session=db, leak=leak),
            "system": system,
            "incident": incident_reference(leak.incident_id) if leak.incident_id else None,
            "max_mib": leak_csv.MAX_BYTES >> 20,
            "max_rows": leak_csv.MAX_ROWS,
            **dict.fromkeys(("created", "added", "already", "queued", "problems")),
            **extra,
        },
        status_code=status,
    )


@router.get("/privacy/leaks/{leak_id}")
def leak_page(
    request: Request,
    db: Db,
    actor: Reader,
    leak_id: RecordId,
    created: Annotated[int | None, Query(ge=0, le=1)] = None,
    added: Annotated[int | None, Query(ge=0, le=leak_csv.MAX_ROWS)] = None,
    already: Annotated[int | None, Query(ge=0, le=leak_csv.MAX_ROWS)] = None,
    queued: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
) -> Response:
    return _leak_page(
        request,
        db,
        actor,
        _own_leak(db, actor, leak_id),
        created=created,
        added=added,
        already=already,
        queued=queued,
    )


@router.post("/privacy/leaks/{leak_id}/subjects")
async def upload_subjects(request: Request, db: Db, actor: Manager, leak_id: RecordId) -> Response:
    """Add the subjects of the uploaded CSV (multipart ``file``), or show every bad row. The
    report is checked before the file is read."""
    settings = state(request).settings
    gettext = translations(request_language(request)).gettext
    try:  # the CSRF check has read the form already: its file is closed whatever happens
        await run_in_threadpool(_own_leak, db, actor, leak_id)
        upload = (await read_form(request, max_files=1, max_fields=5)).get("file")

        def add() -> Response:
            leak = _own_leak(db, actor, leak_id)
            if not isinstance(upload, UploadFile) or not upload.filename:
                return _leak_page(request, db, actor, leak, status=400, error=gettext(NO_FILE))
            try:
                added = leaks.upload_subjects(
                    session=db,
                    protection=protection(settings),
                    leak=leak,
                    stream=upload.file,
                    actor=actor.id,
                )
            except leak_csv.CsvRejected as exc:
                db.rollback()
                problems = [(p.row, leak_refusal(p.reason, gettext)) for p in exc.problems]
                return _leak_page(
                    request,
                    db,
                    actor,
                    leak,
                    status=400,
                    error=leak_refusal(exc.message, gettext),
                    problems=problems,
                    problems_total=exc.total,
                    file_name=upload.filename,
                )
            db.commit()
            return RedirectResponse(
                f"/privacy/leaks/{leak.id}?added={added.added}&already={added.already}#subjects",
                status_code=303,
            )

        return await run_in_threadpool(add)
    finally:
        await request.close()


@router.post("/privacy/leaks/{leak_id}/submit")
def submit_leak(db: Db, actor: Manager, calendar: Calendar, leak_id: RecordId) -> Response:
    """Submit the report: notices for the subjects who have none yet, and its incident."""
    leak = _own_leak(db, actor, leak_id)
    done = leak_incident.submit(db, actor, leak, calendar)
    db.commit()
    return RedirectResponse(
        f"/privacy/leaks/{leak.id}?queued={done.submitted.queued}", status_code=303
    )
