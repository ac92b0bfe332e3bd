"""The citizen portal: a citizen's own record in plain language.

``/citizen`` shows first who accessed their data (each system's decisions and reported reads,
and staff reading their record here), then their consents, each with a one-click withdrawal,
and the downloads of the whole record (``record.json``, ``record.pdf``). ``/citizen/complaints``
takes a complaint, or an objection to automated processing, and lists theirs with status, due
date and answer.

Every route works on the subject of the signed-in citizen's own account, found from the
session (:func:`citizens.subject_of`), never from the request: an id in a path is looked up
within that subject (another's consent is not found). Staff have no subject and get a 404;
roles without ``privacy:self`` a 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import orjson
from babel.dates import format_date
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from qorgan.core.roles import Permission
from qorgan.privacy import citizens, complaints
from qorgan.privacy import consents as consent_service
from qorgan.privacy.citizens import Record
from qorgan.privacy.complaints import ComplaintError, ComplaintIn
from qorgan.privacy.consents import ConsentError
from qorgan.privacy.models import ComplaintKind, Consent, InformationSystem, Subject
from qorgan.privacy.protection import protection
from qorgan.privacy.receipts import ReceiptError, receipt_key
from qorgan.web import citizen_record
from qorgan.web.deps import Actor, Db, RecordId, authenticate, state, work_calendar
from qorgan.web.i18n import _l, translations
from qorgan.web.privacy_labels import (
    BAD_DATE,
    as_typed,
    not_text,
    refusal,
    staff_purpose,
    template_values,
)
from qorgan.web.templating import render, request_language

router = APIRouter(include_in_schema=False)
#: Entries of the access log shown on the page, newest first (the downloads hold them all).
LOG_SHOWN = 200
NOT_A_CITIZEN = _l(
    "This page shows a citizen's own personal-data record, and your account is not a citizen's."
)


@dataclass
class Citizen:
    """The signed-in citizen and the data subject their account stands for."""

    actor: Actor
    subject: Subject


async def citizen(request: Request, db: Db) -> Citizen:
    """A dependency: the signed-in citizen (sent to the citizens' sign-in page otherwise);
    staff get a 404 (they have no record here), roles without ``privacy:self`` a 403."""
    actor = await authenticate(request, db, tokens=False)
    if actor is None:
        raise HTTPException(303, headers={"Location": "/citizen/login"})
    request.state.actor = actor
    if not actor.can(Permission.privacy_self):
        raise HTTPException(403, _l("your role does not allow this page"))
    subject = await run_in_threadpool(lambda: citizens.subject_of(session=db, user=actor.user))
    if subject is None:
        raise HTTPException(404, NOT_A_CITIZEN)
    return Citizen(actor, subject)


Me = Annotated[Citizen, Depends(citizen)]


def _today(request: Request) -> date:
    return datetime.now(ZoneInfo(state(request).settings.timezone)).date()


def _record(request: Request, db: Session, me: Citizen) -> Record:
    return citizens.record(session=db, subject=me.subject, today=_today(request))


def _common(request: Request) -> dict[str, Any]:
    language = request_language(request)

    def localdate(value: date | None) -> str:
        return format_date(value, format="medium", locale=language) if value else "—"

    return {**template_values(), "localdate": localdate, "answer_days": complaints.ANSWER_DAYS}


def _log_rows(record: Record, gettext: Any) -> list[dict[str, Any]]:
    return [
        {
            "entry": entry,
            "purpose": staff_purpose(entry.purpose, gettext)
            if entry.reason == "staff_read"
            else entry.purpose,
        }
        for entry in record.log[:LOG_SHOWN]
    ]


def _page(request: Request, db: Session, me: Citizen, status: int = 200, **extra: Any) -> Response:
    record = _record(request, db, me)
    gettext = translations(request_language(request)).gettext
    return render(
        request,
        "citizen.html",
        {
            **_common(request),
            "log": _log_rows(record, gettext),
            "log_total": len(record.log),
            "consents": record.consents,
            "open_complaints": sum(1 for c in record.complaints if c.status.value == "open"),
            **extra,
        },
        status_code=status,
    )


@router.get("/citizen")
def citizen_page(
    request: Request,
    db: Db,
    me: Me,
    withdrawn: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    # The confirmation after a withdrawal (post, redirect, get): named only if it is theirs.
    done = None
    if withdrawn is not None:
        consent = db.get(Consent, withdrawn)
        if consent is not None and consent.subject_id == me.subject.id:
            done = consent.id
    return _page(request, db, me, withdrawn=done)


@router.post("/citizen/consents/{consent_id}/withdraw")
def withdraw(request: Request, db: Db, me: Me, consent_id: RecordId) -> Response:
    consent = db.get(Consent, consent_id)
    if consent is None or consent.subject_id != me.subject.id:
        raise HTTPException(404, _l("No such consent."))
    language = request_language(request)
    try:
        consent_service.withdraw(
            session=db,
            key=receipt_key(state(request).settings),
            consent_id=consent.id,
            language=language,
        )
    except (ConsentError, ReceiptError) as exc:
        db.rollback()
        message = refusal(exc.message, translations(language).gettext)
        return _page(request, db, me, status=409, refused=(consent_id, message))
    db.commit()
    return RedirectResponse(
        f"/citizen?withdrawn={consent_id}#consent-{consent_id}", status_code=303
    )


def _download_name(request: Request, extension: str) -> str:
    return f'attachment; filename="personal-data-record-{_today(request)}.{extension}"'


def _document(request: Request, db: Session, me: Citizen) -> tuple[dict[str, Any], str]:
    language = request_language(request)
    settings = state(request).settings
    data = citizen_record.document(
        session=db,
        protection=protection(settings),
        record=_record(request, db, me),
        language=language,
        zone=settings.timezone,
        now=datetime.now(UTC),
    )
    return data, language


@router.get("/citizen/record.json")
def record_json(request: Request, db: Db, me: Me) -> Response:
    data, _language = _document(request, db, me)
    return Response(
        orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE),
        media_type="application/json",
        headers={"Content-Disposition": _download_name(request, "json")},
    )


@router.get("/citizen/record.pdf")
def record_pdf(request: Request, db: Db, me: Me) -> Response:
    data, language = _document(request, db, me)
    return Response(
        citizen_record.pdf(data, language),
        media_type="application/pdf",
        headers={"Content-Disposition": _download_name(request, "pdf")},
    )


# --------------------------------------------------------------------------- complaints


def _systems(db: Session, organisation_ids: list[int]) -> list[InformationSystem]:
    return list(
        db.scalars(
            select(InformationSystem)
            .where(InformationSystem.organisation_id.in_(organisation_ids))
            .order_by(InformationSystem.organisation_id, InformationSystem.name)
        )
    )


def _complaints_page(
    request: Request,
    db: Session,
    me: Citizen,
    *,
    values: dict[str, str] | None = None,
    status: int = 200,
    **extra: Any,
) -> Response:
    record = _record(request, db, me)
    holders = complaints.holders(session=db)
    names = dict(holders)
    systems = _systems(db, [o for o, _ in holders])
    system_names = {s.id: s.name for s in systems}
    return render(
        request,
        "citizen_complaints.html",
        {
            **_common(request),
            "complaints": record.complaints,
            "organisation_names": names,
            "system_names": system_names,
            "holders": holders,
            "systems": systems,
            "values": values or {"kind": "complaint", "name": me.actor.user.display_name},
            "now": datetime.now(UTC),
            **extra,
        },
        status_code=status,
    )


@router.get("/citizen/complaints")
def complaints_page(
    request: Request,
    db: Db,
    me: Me,
    kind: ComplaintKind = ComplaintKind.complaint,
    filed: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    values = {"kind": kind.value, "name": me.actor.user.display_name}
    return _complaints_page(request, db, me, values=values, filed=filed)


#: The complaint form's text fields, by the complaint service's names for them.
TEXT_FIELDS = {
    "name": "your name",
    "contacts": "your contacts",
    "description": "a description",
    "evidence": "the evidence",
}


def _date(value: str) -> date | None:
    """A date typed as YYYY-MM-DD (ValueError otherwise), or None when left empty."""
    value = value.strip()
    return date.fromisoformat(value) if value else None


def _id(value: str) -> int | None:
    """A record id chosen in a form, or None (0 for one that cannot be an id)."""
    value = value.strip()
    if not value:
        return None
    return int(value) if value.isdigit() and 0 < int(value) < 2**31 else 0


@router.post("/citizen/complaints")
def file_complaint(
    request: Request,
    db: Db,
    me: Me,
    organisation: Annotated[str, Form(max_length=12)] = "",
    kind: Annotated[ComplaintKind, Form()] = ComplaintKind.complaint,
    system: Annotated[str, Form(max_length=12)] = "",
    period_from: Annotated[str, Form(max_length=32)] = "",
    period_to: Annotated[str, Form(max_length=32)] = "",
    description: Annotated[str, Form(max_length=2 * complaints.MAX_TEXT)] = "",
    evidence: Annotated[str, Form(max_length=2 * complaints.MAX_TEXT)] = "",
    name: Annotated[str, Form(max_length=1000)] = "",
    contacts: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    values = {
        "kind": kind.value,
        "organisation": organisation,
        "system": system,
        "period_from": period_from,
        "period_to": period_to,
        "description": description,
        "evidence": evidence,
        "name": name,
        "contacts": contacts,
    }
    # Shown again as typed if refused, but without what cannot be stored (NUL, a lone
    # surrogate), which the refusal names.
    shown = {k: as_typed(v) for k, v in values.items()}
    gettext = translations(request_language(request)).gettext
    garbled = not_text(values, TEXT_FIELDS, gettext)
    if garbled is not None:
        return _complaints_page(request, db, me, values=shown, status=400, error=garbled)
    try:
        start, end = _date(period_from), _date(period_to)
    except ValueError:
        return _complaints_page(request, db, me, values=shown, status=400, error=gettext(BAD_DATE))
    try:
        row = complaints.file(
            session=db,
            protection=protection(state(request).settings),
            calendar=work_calendar(request),
            subject=me.subject,
            complaint=ComplaintIn(
                kind=kind,
                organisation_id=_id(organisation) or 0,
                system_id=_id(system),
                name=name,
                contacts=contacts,
                period_from=start,
                period_to=end,
                description=description,
                evidence=evidence,
            ),
        )
    except ComplaintError as exc:
        db.rollback()
        message = refusal(exc.message, gettext)
        return _complaints_page(request, db, me, values=shown, status=400, error=message)
    db.commit()
    return RedirectResponse(
        f"/citizen/complaints?filed={row.id}#complaint-{row.id}", status_code=303
    )
