"""The alerts inbox: filters, grouping, a chart over time, one alert, and triage actions."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from qorgan.core.models import User
from qorgan.core.roles import ROLE_PERMISSIONS, Permission
from qorgan.detection.classification import load_taxonomy
from qorgan.incidents import alerts as service
from qorgan.incidents.alerts import AlertFilter
from qorgan.incidents.models import LEVELS, AlertStatus
from qorgan.web.api.alerts import triage, visible
from qorgan.web.deps import Actor, Db, RecordId, page_actor
from qorgan.web.filters import alert_filter
from qorgan.web.i18n import _l
from qorgan.web.templating import render

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, Depends(page_actor(Permission.alerts_read))]
Triager = Annotated[Actor, Depends(page_actor(Permission.alerts_triage))]
Filters = Annotated[AlertFilter, Depends(alert_filter)]
PAGE = 50


@router.get("/alerts")
def inbox(
    request: Request,
    db: Db,
    actor: Reader,
    filters: Filters,
    group: Literal["", "rule", "host", "rule_host"] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    organisations = visible(db, actor)
    context: dict[str, object] = {"filters": filters, "group": group, "page": page}
    if group:
        context["groups"] = service.group_alerts(
            session=db, organisation_ids=organisations, filters=filters, by=group
        )
    else:
        rows, total = service.list_alerts(
            session=db,
            organisation_ids=organisations,
            filters=filters,
            limit=PAGE,
            offset=(page - 1) * PAGE,
        )
        context.update(alerts=rows, total=total, pages=max(1, -(-total // PAGE)))
    context["kz_cert_classes"] = load_taxonomy().kz_cert
    context["query_without_page"] = urlencode(
        [(k, v) for k, v in request.query_params.multi_items() if k != "page"]
    )
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "results":
        return render(request, "_alert_results.html", context)
    context.update(
        levels=LEVELS,
        statuses=list(AlertStatus),
    )
    return render(request, "alerts.html", context)


def _assignees(db: Db, actor: Actor) -> list[User]:
    triage_roles = [r for r, p in ROLE_PERMISSIONS.items() if Permission.alerts_triage in p]
    return list(
        db.scalars(
            select(User)
            .where(User.organisation_id == actor.organisation_id, User.role.in_(triage_roles))
            .order_by(User.display_name)
        )
    )


@router.get("/alerts/{alert_id}")
def alert_page(request: Request, db: Db, actor: Reader, alert_id: RecordId) -> Response:
    row = service.get_alert(session=db, organisation_ids=visible(db, actor), alert_id=alert_id)
    if row is None:
        raise HTTPException(404, _l("no such alert"))
    service.record_read(
        session=db, user_id=actor.user.id, organisation_id=actor.organisation_id, alert_id=row.id
    )
    db.commit()
    return render(
        request,
        "alert.html",
        {
            "alert": row,
            "kz_cert_classes": load_taxonomy().kz_cert,
            "own": row.organisation_id == actor.organisation_id,
            "assignees": _assignees(db, actor),
        },
    )


@router.post("/alerts/{alert_id}/{action}")
def triage_alert(
    request: Request,
    db: Db,
    actor: Triager,
    alert_id: RecordId,
    action: Literal["acknowledge", "false-positive", "reopen", "assign"],
    assignee_id: Annotated[str, Form()] = "",
) -> Response:
    extra = (
        {"assignee_id": int(assignee_id) if assignee_id.isdigit() else None}
        if action == "assign"
        else {}
    )
    triage(db, actor, alert_id, action, **extra)
    if request.headers.get("hx-request"):
        row = service.get_alert(
            session=db, organisation_ids=[actor.organisation_id], alert_id=alert_id
        )
        return render(request, "_alert_row.html", {"alert": row})
    return RedirectResponse(f"/alerts/{alert_id}", status_code=303)
