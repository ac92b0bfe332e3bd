"""The data-protection officer's pages: leak reports not submitted yet, with their deadlines
(the leak pages themselves are in :mod:`.privacy_leak_pages`), the organisation's information
systems (a read-only summary; registration is through the API), consents whose data should
have been deleted by now with a "deletion confirmed" button, and complaints and objections
with their deadlines, each answered on its own page.

A complaint's page shows the citizen's name and contacts: opening it puts a staff read in that
citizen's access log and the audit trail (:func:`citizens.record_staff_read`) before the page
is sent. Everything is the caller's own organisation's: another's ids are not found.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from qorgan.core.roles import Permission
from qorgan.privacy import citizens, complaints, registry
from qorgan.privacy import consents as consent_service
from qorgan.privacy.complaints import ComplaintError
from qorgan.privacy.consents import ConsentError
from qorgan.privacy.models import Complaint, ComplaintStatus, Consent, InformationSystem
from qorgan.privacy.protection import protection
from qorgan.web.deps import Actor, Db, RecordId, page_actor, state
from qorgan.web.i18n import _l, translations
from qorgan.web.privacy_labels import as_typed, not_text, refusal, template_values
from qorgan.web.routes import privacy_leak_pages
from qorgan.web.templating import render, request_language

router = APIRouter(include_in_schema=False)
router.include_router(privacy_leak_pages.router)
Reader = Annotated[Actor, Depends(page_actor(Permission.privacy_read))]
Manager = Annotated[Actor, Depends(page_actor(Permission.privacy_manage))]
#: Answered complaints listed below the open ones, newest first.
ANSWERED_SHOWN = 20
NO_COMPLAINT = _l("No such complaint to your organisation.")
NO_CONSENT = _l("No such consent with your organisation's systems.")


def _overview(
    request: Request, db: Session, actor: Actor, status: int = 200, **extra: Any
) -> Response:
    own = [actor.organisation_id]
    today = datetime.now(ZoneInfo(state(request).settings.timezone)).date()
    systems = registry.list_systems(session=db, organisation_ids=own)
    names = {s.id: s.name for s in systems}
    every = complaints.of_organisations(session=db, organisation_ids=own)
    answered = sorted(
        (c for c in every if c.status is ComplaintStatus.answered),
        key=lambda c: (c.answered_at or c.filed_at, c.id),
        reverse=True,
    )
    return render(
        request,
        "privacy.html",
        {
            **template_values(),
            "systems": systems,
            "system_names": names,
            "overdue_consents": consent_service.overdue(
                session=db, organisation_ids=own, today=today
            ),
            "open_complaints": [c for c in every if c.status is ComplaintStatus.open],
            "answered_complaints": answered[:ANSWERED_SHOWN],
            "draft_leaks": privacy_leak_pages.leak_rows(
                db, actor.organisation_id, drafts_only=True
            ),
            "is_overdue": complaints.overdue,
            "now": datetime.now(UTC),
            **extra,
        },
        status_code=status,
    )


@router.get("/privacy")
def privacy_page(
    request: Request,
    db: Db,
    actor: Reader,
    answered: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    confirmed: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    return _overview(request, db, actor, answered=answered, confirmed=confirmed)


def _own_consent(db: Session, actor: Actor, consent_id: int) -> Consent:
    consent = db.get(Consent, consent_id)
    system = db.get(InformationSystem, consent.system_id) if consent is not None else None
    if consent is None or system is None or system.organisation_id != actor.organisation_id:
        raise HTTPException(404, NO_CONSENT)
    return consent


@router.post("/privacy/consents/{consent_id}/deletion-confirmed")
def confirm_deletion(request: Request, db: Db, actor: Manager, consent_id: RecordId) -> Response:
    consent = _own_consent(db, actor, consent_id)
    try:
        consent_service.confirm_deletion(session=db, consent=consent, actor=actor.id)
    except ConsentError as exc:
        db.rollback()
        gettext = translations(request_language(request)).gettext
        return _overview(request, db, actor, status=409, error=refusal(exc.message, gettext))
    db.commit()
    return RedirectResponse(f"/privacy?confirmed={consent_id}#overdue", status_code=303)


def _own_complaint(db: Session, actor: Actor, complaint_id: int) -> Complaint:
    found = complaints.get(
        session=db, organisation_ids=[actor.organisation_id], complaint_id=complaint_id
    )
    if found is None:
        raise HTTPException(404, NO_COMPLAINT)
    return found


def _complaint_page(
    request: Request,
    db: Session,
    actor: Actor,
    complaint: Complaint,
    status: int = 200,
    **extra: Any,
) -> Response:
    """The complaint with the citizen's name and contacts: recorded in the citizen's access
    log and the audit trail, and committed, before anything is shown."""
    citizens.record_staff_read(
        session=db,
        subject_id=complaint.subject_id,
        staff=actor.user,
        purpose=f"{complaint.kind.value} {complaint.id}",
    )
    db.commit()
    system = db.get(InformationSystem, complaint.system_id) if complaint.system_id else None
    name, _, contacts = (
        protection(state(request).settings).decrypt(complaint.contacts).partition("\n")
    )
    return render(
        request,
        "privacy_complaint.html",
        {
            **template_values(),
            "complaint": complaint,
            "system": system,
            "complainant": name,
            "contacts": contacts,
            "overdue": complaints.overdue(complaint, datetime.now(UTC)),
            **extra,
        },
        status_code=status,
    )


@router.get("/privacy/complaints/{complaint_id}")
def complaint_page(request: Request, db: Db, actor: Reader, complaint_id: RecordId) -> Response:
    return _complaint_page(request, db, actor, _own_complaint(db, actor, complaint_id))


@router.post("/privacy/complaints/{complaint_id}/answer")
def answer_complaint(
    request: Request,
    db: Db,
    actor: Manager,
    complaint_id: RecordId,
    text: Annotated[str, Form(max_length=2 * complaints.MAX_TEXT)] = "",
) -> Response:
    complaint = _own_complaint(db, actor, complaint_id)
    gettext = translations(request_language(request)).gettext
    message = not_text({"text": text}, {"text": "the answer"}, gettext)
    if message is None:
        try:
            complaints.answer(session=db, complaint=complaint, staff=actor.user, text=text)
        except ComplaintError as exc:
            db.rollback()
            message = refusal(exc.message, gettext)
    if message is not None:
        return _complaint_page(
            request, db, actor, complaint, status=400, error=message, draft=as_typed(text)
        )
    db.commit()
    return RedirectResponse(f"/privacy?answered={complaint_id}#complaints", status_code=303)
