"""Personal-data leaks over the API, for the organisation's data-protection officer.

``POST /privacy/leaks`` starts a report (its one-working-day deadline shown at once);
``POST /privacy/leaks/{id}/subjects`` uploads the affected subjects as a CSV (multipart
``file``), taken whole or refused with every bad row's number and reason (422);
``POST /privacy/leaks/{id}/submit`` submits it: the subjects' notices are queued (nobody
twice, however often it is submitted) and an incident of the personal-data class is opened in
the caller's organisation, or the one named is linked, with its breach-report clock started at
detection and met by this submission; ``GET /privacy/leaks/{id}/report`` is the report to the
authorised body as JSON or as a Kazakh or Russian PDF. Writing needs ``privacy:manage``,
reading ``privacy:read``; another organisation's report is not found.

Submitting joins two packages that may not import each other (privacy and incidents) in one
unit of work: :mod:`qorgan.web.leak_incident` does it, for this API and the DPO's pages.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from qorgan.core import audit
from qorgan.core.roles import Permission
from qorgan.core.workdays import WorkCalendar
from qorgan.incidents import service
from qorgan.incidents.schemas import CleanText
from qorgan.privacy import leak_csv, leak_report, leaks
from qorgan.privacy.leak_models import LeakReport
from qorgan.privacy.leak_words import leak_reference
from qorgan.privacy.leaks import LeakError, LeakIn, LeakNotFound
from qorgan.privacy.models import DataCategory
from qorgan.privacy.protection import protection
from qorgan.web import leak_incident
from qorgan.web.deps import Actor, Db, RecordId, api_actor, state, work_calendar
from qorgan.web.limits import read_form

router = APIRouter(prefix="/privacy/leaks", tags=["privacy"])
Reader = Annotated[Actor, Depends(api_actor(Permission.privacy_read))]
Manager = Annotated[Actor, Depends(api_actor(Permission.privacy_manage))]
Calendar = Annotated[WorkCalendar, Depends(work_calendar)]

NO_CSV = "send the CSV as the multipart field file"
NOT_FOUND = {404: {"description": "No such leak report in your organisation."}}


class LeakBody(BaseModel):
    system_id: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="The information system that leaked."
    )
    holder_name: Annotated[CleanText, Field(min_length=1, max_length=300)] | None = Field(
        default=None, description="The data's holder; by default the system's owner."
    )
    holder_bin: Annotated[str, Field(min_length=12, max_length=12)] | None = None
    categories: list[DataCategory] = Field(min_length=1, max_length=len(DataCategory))
    description: Annotated[CleanText, Field(min_length=1, max_length=leaks.TEXT_MAX)] = Field(
        description="What leaked: which data, how many records, how it came out."
    )
    occurred_at: datetime | None = Field(default=None, description="When it happened, if known.")
    detected_at: datetime = Field(description="When it was found: the deadline counts from it.")
    measures: Annotated[CleanText, Field(min_length=1, max_length=leaks.TEXT_MAX)]
    responsible_person: Annotated[CleanText, Field(min_length=1, max_length=200)]
    contacts: Annotated[CleanText, Field(min_length=1, max_length=500)] = Field(
        description="How to reach the responsible person (kept encrypted)."
    )


class SubmitBody(BaseModel):
    incident_id: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="An incident of your organisation to link; none opens a new one.",
    )


class DeadlineOut(BaseModel):
    due_at: datetime = Field(description="One Kazakh working day after detection.")
    overdue: bool = Field(description="Not submitted, and the deadline has passed.")
    late: bool = Field(description="Submitted after the deadline.")


class LeakOut(BaseModel):
    id: int
    reference: str
    status: Literal["draft", "submitted"]
    system_id: int | None
    holder_name: str
    holder_bin: str
    categories: list[str]
    description: str
    occurred_at: datetime | None
    detected_at: datetime
    measures: str
    responsible_person: str
    deadline: DeadlineOut
    submitted_at: datetime | None
    incident_id: int | None
    subjects: int = Field(description="Affected subjects listed.")
    notices: dict[str, int] = Field(description="The subjects' notices by delivery status.")
    created_at: datetime


class Problem(BaseModel):
    row: int = Field(description="The row in the file; the header is row 1.")
    reason: str


class UploadOut(BaseModel):
    added: int = Field(description="Subjects new to the report.")
    already: int = Field(description="Subjects the report listed already (kept as they were).")
    subjects: int


class SubmitOut(BaseModel):
    queued: int = Field(description="Notices queued now (0 when every subject has one).")
    first: bool = Field(description="Whether this was the report's first submission.")
    incident_id: int
    incident: str
    leak: LeakOut


def _out(db: Db, row: LeakReport) -> LeakOut:
    figures = leaks.figures(session=db, leak=row)
    shown = figures.deadline
    return LeakOut(
        id=row.id,
        reference=leak_reference(row.id),
        status=row.status.value,
        system_id=row.system_id,
        holder_name=row.holder_name,
        holder_bin=row.holder_bin,
        categories=list(row.categories),
        description=row.description,
        occurred_at=row.occurred_at,
        detected_at=row.detected_at,
        measures=row.measures,
        responsible_person=row.responsible_person,
        deadline=DeadlineOut(due_at=shown.due_at, overdue=shown.overdue, late=shown.late),
        submitted_at=row.submitted_at,
        incident_id=row.incident_id,
        subjects=figures.subjects,
        notices=figures.notices,
        created_at=row.created_at,
    )


def _leak(db: Db, actor: Actor, leak_id: int) -> LeakReport:
    try:
        return leaks.get(session=db, organisation_ids=[actor.organisation_id], leak_id=leak_id)
    except LeakNotFound:
        raise HTTPException(404, "no such leak report in your organisation") from None


@router.get("", response_model=list[LeakOut], summary="Leak reports")
def list_leaks(db: Db, actor: Reader) -> list[LeakOut]:
    """The organisation's leak reports, newest first, each with its deadline."""
    rows = leaks.list_leaks(session=db, organisation_ids=[actor.organisation_id])
    return [_out(db, row) for row in rows]


@router.post("", response_model=LeakOut, status_code=201, summary="Start a leak report")
def create_leak(
    request: Request, db: Db, actor: Manager, calendar: Calendar, body: LeakBody
) -> LeakOut:
    """Start a report of a leak; its deadline (one working day after detection, in the
    Kazakh calendar) is in the answer."""
    try:
        row = leaks.create(
            session=db,
            protection=protection(state(request).settings),
            calendar=calendar,
            organisation_id=actor.organisation_id,
            leak=LeakIn(
                system_id=body.system_id,
                holder_name=body.holder_name,
                holder_bin=body.holder_bin,
                categories=[c.value for c in body.categories],
                description=body.description,
                occurred_at=body.occurred_at,
                detected_at=body.detected_at,
                measures=body.measures,
                responsible_person=body.responsible_person,
                contacts=body.contacts,
            ),
            actor=actor.id,
            created_by=actor.user.id,
        )
    except LeakError as exc:
        raise HTTPException(422, str(exc)) from None
    db.commit()
    return _out(db, row)


@router.get("/{leak_id}", response_model=LeakOut, responses=NOT_FOUND, summary="A leak report")
def get_leak(db: Db, actor: Reader, leak_id: RecordId) -> LeakOut:
    return _out(db, _leak(db, actor, leak_id))


UPLOAD = {
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
                            "description": "UTF-8 CSV with a header: name, iin, and email or "
                            f"phone; at most {leak_csv.MAX_BYTES >> 20} MiB and "
                            f"{leak_csv.MAX_ROWS:,} rows.",
                        }
                    },
                }
            }
        },
    }
}


@router.post(
    "/{leak_id}/subjects",
    response_model=UploadOut,
    summary="Upload the affected subjects",
    openapi_extra=UPLOAD,
    responses={
        **NOT_FOUND,
        413: {"description": "The body is larger than the upload limit."},
        422: {"description": "The file was refused: `detail` says why, `problems` lists rows."},
    },
)
async def upload_subjects(request: Request, db: Db, actor: Manager, leak_id: RecordId) -> Any:
    """Add the subjects of a CSV (multipart ``file``): every row is checked, and if any is bad
    nothing is added and each bad row is listed with its number and reason (never its
    values). Subjects the report lists already are kept as they were. The report is checked
    before the file is read."""
    settings = state(request).settings
    await run_in_threadpool(_leak, db, actor, leak_id)
    try:
        form = await read_form(request, max_files=1, max_fields=5, refusal=NO_CSV)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(400, NO_CSV)

        def add() -> Any:
            leak = _leak(db, actor, leak_id)
            try:
                added = leaks.upload_subjects(
                    session=db,
                    protection=protection(settings),
                    leak=leak,
                    stream=upload.file,
                    actor=actor.id,
                )
            except leak_csv.CsvRejected as exc:
                problems = [Problem(row=p.row, reason=p.reason).model_dump() for p in exc.problems]
                return Response(
                    content=orjson.dumps(
                        {"detail": exc.message, "total": exc.total, "problems": problems}
                    ),
                    status_code=422,
                    media_type="application/json",
                )
            db.commit()
            return UploadOut(
                added=added.added,
                already=added.already,
                subjects=leaks.subject_count(session=db, leak_id=leak.id),
            )

        return await run_in_threadpool(add)
    finally:
        await request.close()


@router.post(
    "/{leak_id}/submit",
    response_model=SubmitOut,
    responses={**NOT_FOUND, 409: {"description": "The report is linked to another incident."}},
    summary="Submit a leak report",
)
def submit_leak(
    db: Db,
    actor: Manager,
    calendar: Calendar,
    leak_id: RecordId,
    body: SubmitBody | None = None,
) -> SubmitOut:
    """Submit the report: each listed subject without a notice gets one queued (submitting
    again after more subjects were uploaded notifies only them), and the leak opens an
    incident with personal data in your organisation, or links the one named."""
    leak = _leak(db, actor, leak_id)
    done = leak_incident.submit(db, actor, leak, calendar, body.incident_id if body else None)
    db.commit()
    return SubmitOut(
        queued=done.submitted.queued,
        first=done.submitted.first,
        incident_id=done.incident.id,
        incident=service.reference(done.incident.id),
        leak=_out(db, leak),
    )


@router.get(
    "/{leak_id}/report",
    responses={
        **NOT_FOUND,
        200: {
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/pdf": {"schema": {"type": "string", "format": "binary"}},
            },
            "description": "The report to the authorised body.",
        },
    },
    summary="The report to the authorised body",
)
def leak_document(
    request: Request,
    db: Db,
    actor: Reader,
    leak_id: RecordId,
    format: Annotated[Literal["json", "pdf"], Query()] = "json",
    language: Annotated[Literal["kk", "ru"], Query(description="The PDF's language.")] = "kk",
) -> Response:
    """The report to the authorised body: structured JSON (``qorgan.privacy.leak-report``
    version 1) or a PDF in Kazakh or Russian, with the subjects by masked IIN only. Each
    download is in the audit trail (it holds the responsible person's contacts)."""
    leak = _leak(db, actor, leak_id)
    reference = service.reference(leak.incident_id) if leak.incident_id else None
    data = leak_report.report_data(
        session=db,
        protection=protection(state(request).settings),
        leak=leak,
        incident_reference=reference,
    )
    audit.record(
        "privacy.leak_report",
        session=db,
        actor=actor.id,
        organisation_id=leak.organisation_id,
        target_type="privacy_leak",
        target_id=leak.id,
        details={"format": format, "language": language if format == "pdf" else None},
    )
    db.commit()
    name = f"{data['reference']}-{language}.pdf" if format == "pdf" else f"{data['reference']}.json"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "pdf":
        body = leak_report.render_pdf(data, language)
        return Response(body, media_type="application/pdf", headers=headers)
    return Response(orjson.dumps(data), media_type="application/json", headers=headers)
