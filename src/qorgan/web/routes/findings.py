"""The AI models' findings, the person who decides about them, and the model register.

``/findings`` lists an organisation's findings, those awaiting a decision first, each marked
as an AI model's output (a badge and colour of their own, never a rule alert's level);
``/findings/{id}`` explains one (model and version, score against threshold, confidence, the
contributing features with their typical and actual values, example lines) and takes the
decision: confirm with a reason (it becomes an alert, linked from the page) or reject with a
reason (its pattern stops firing). ``/models`` is the register of models in use, where an
analyst or a data-protection officer records a person's objection made on request.

Permissions: reading needs ``alerts:read``; deciding ``alerts:triage`` (analysts, not
auditors); the register is read with ``alerts:read`` or ``privacy:read``, and an objection is
recorded with ``alerts:triage`` or ``privacy:manage`` (the DPO receives such requests).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from qorgan.core.models import User
from qorgan.core.roles import Permission
from qorgan.incidents import findings as service
from qorgan.incidents.finding_models import FINDING_STATUSES, AnomalyFinding
from qorgan.web.deps import Actor, Db, RecordId, page_actor, state
from qorgan.web.i18n import _l
from qorgan.web.labels import DETECTOR_LABELS, FINDING_STATUS_LABELS, feature_label
from qorgan.web.templating import render

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, Depends(page_actor(Permission.alerts_read))]
Decider = Annotated[Actor, Depends(page_actor(Permission.alerts_triage))]
Anyone = Annotated[Actor, Depends(page_actor())]
PAGE = 100
#: The furthest page the list offers (10 million findings): bounds the offset a URL may ask.
MAX_PAGE = 100_000
#: The label every finding carries on the pages (the model's own label is in English).
AI_LABEL = _l("AI model's finding: needs a person's decision")
NO_FINDING = _l("no such finding")


def _names(db: Db, organisation_id: int) -> dict[int, str]:
    rows = db.execute(
        select(User.id, User.display_name).where(User.organisation_id == organisation_id)
    )
    return {user_id: name for user_id, name in rows}


def _common() -> dict[str, Any]:
    return {
        "ai_label": AI_LABEL,
        "finding_status_names": FINDING_STATUS_LABELS,
        "detector_names": DETECTOR_LABELS,
        "feature_label": feature_label,
    }


@router.get("/findings")
def findings_page(
    request: Request,
    db: Db,
    actor: Reader,
    status: Annotated[str | None, Query(max_length=16)] = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    hunt: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    detector: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    if status is not None and status not in FINDING_STATUSES:
        status = None
    own = [actor.organisation_id]
    # One row more than a page tells whether a next page exists, without counting them all.
    rows = service.list_findings(
        session=db,
        organisation_ids=own,
        status=status,
        hunt_id=hunt,
        detector=detector or None,
        limit=PAGE + 1,
        offset=(page - 1) * PAGE,
    )
    # The filters a link keeps when it changes one of them (the pager keeps all three).
    kept = {"status": status, "hunt": hunt, "detector": detector or None}
    return render(
        request,
        "findings.html",
        {
            **_common(),
            "findings": rows[:PAGE],
            "page": page,
            "more": len(rows) > PAGE,
            "counts": service.count_by_status(
                session=db, organisation_ids=own, hunt_id=hunt, detector=detector or None
            ),
            "status": status,
            "hunt": hunt,
            "detector": detector or None,
            "detectors": service.count_by_detector(
                session=db, organisation_ids=own, status=status, hunt_id=hunt
            ),
            "statuses": FINDING_STATUSES,
            "query": lambda **change: urlencode(
                {k: v for k, v in {**kept, **change}.items() if v is not None}
            ),
        },
    )


@router.get("/findings/banner")
def findings_banner(request: Request, db: Db, actor: Reader) -> Response:
    """The alerts page's note of findings awaiting a decision (loaded by htmx)."""
    counts = service.count_by_status(session=db, organisation_ids=[actor.organisation_id])
    return render(request, "_findings_banner.html", {**_common(), "pending": counts["pending"]})


def _finding(db: Db, actor: Actor, finding_id: int) -> AnomalyFinding:
    row = service.get_finding(
        session=db, organisation_ids=[actor.organisation_id], finding_id=finding_id
    )
    if row is None:
        raise HTTPException(404, NO_FINDING)
    return row


def _finding_page(
    request: Request, db: Db, actor: Actor, row: AnomalyFinding, status: int = 200, **extra: Any
) -> Response:
    body = row.body if isinstance(row.body, dict) else {}
    contributions = [c for c in body.get("contributions") or [] if isinstance(c, dict)]
    return render(
        request,
        "finding.html",
        {
            **_common(),
            "finding": row,
            "body": body,
            "contributions": contributions,
            "entity": body.get("entity") if isinstance(body.get("entity"), dict) else {},
            "examples": [str(e) for e in body.get("examples") or []],
            "decided_by": _names(db, actor.organisation_id).get(row.decided_by or 0),
            "reason_limit": service.MAX_REASON,
            **extra,
        },
        status_code=status,
    )


@router.get("/findings/{finding_id}")
def finding_page(request: Request, db: Db, actor: Reader, finding_id: RecordId) -> Response:
    return _finding_page(request, db, actor, _finding(db, actor, finding_id))


def _decide(
    request: Request, db: Db, actor: Actor, finding_id: int, reason: str, kind: str
) -> Response:
    decide = service.confirm if kind == "confirm" else service.reject
    try:
        decide(db, finding_id, actor.user.id, reason, organisation_id=actor.organisation_id)
    except service.NotFound:
        raise HTTPException(404, NO_FINDING) from None
    except service.FindingError as exc:
        db.rollback()
        row = _finding(db, actor, finding_id)
        code = 409 if isinstance(exc, service.AlreadyDecided) else 400
        return _finding_page(
            request, db, actor, row, status=code, error=exc.message, form=kind, reason=reason
        )
    db.commit()
    return RedirectResponse(f"/findings/{finding_id}", status_code=303)


@router.post("/findings/{finding_id}/confirm")
def confirm(
    request: Request,
    db: Db,
    actor: Decider,
    finding_id: RecordId,
    reason: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    return _decide(request, db, actor, finding_id, reason, "confirm")


@router.post("/findings/{finding_id}/reject")
def reject(
    request: Request,
    db: Db,
    actor: Decider,
    finding_id: RecordId,
    reason: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    return _decide(request, db, actor, finding_id, reason, "reject")


# --------------------------------------------------------------------------- the register


def _register_reader(actor: Actor) -> None:
    if not (actor.can(Permission.alerts_read) or actor.can(Permission.privacy_read)):
        raise HTTPException(403, _l("your role does not allow this page"))


def _models_page(
    request: Request, db: Db, actor: Actor, status: int = 200, **extra: Any
) -> Response:
    organisation_id = actor.organisation_id
    return render(
        request,
        "models.html",
        {
            **_common(),
            "models": service.list_models(db, organisation_id),
            "names": _names(db, organisation_id),
            "exclusions": service.list_objections(db, organisation_id, PAGE),
            "can_object": actor.can(Permission.alerts_triage)
            or actor.can(Permission.privacy_manage),
            **extra,
        },
        status_code=status,
    )


@router.get("/models")
def models_page(request: Request, db: Db, actor: Anyone) -> Response:
    _register_reader(actor)
    return _models_page(request, db, actor)


@router.post("/models/objections")
def record_objection(
    request: Request,
    db: Db,
    actor: Anyone,
    identifiers: Annotated[str, Form(max_length=5000)] = "",
    request_ref: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Record a person's objection received on request (a letter, a visit): each identifier on
    its own line (IIN, e-mail, phone, user name, full name)."""
    if not (actor.can(Permission.alerts_triage) or actor.can(Permission.privacy_manage)):
        raise HTTPException(403, _l("your role does not allow this action"))
    lines = [line for line in identifiers.splitlines() if line.strip()]
    try:
        added = service.exclude(
            db,
            organisation_id=actor.organisation_id,
            identifiers=lines,
            key=service.exclusion_key(state(request).settings),
            actor=actor.user.id,
            request_ref=request_ref,
            origin="request",
        )
    except service.FindingError as exc:
        db.rollback()
        return _models_page(
            request, db, actor, status=400, error=exc.message, request_ref=request_ref
        )
    db.commit()
    return RedirectResponse(f"/models?excluded={added}#objections", status_code=303)
