"""The alerts inbox: filters, grouping, a chart over time, one alert, and triage actions."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from qorgan.core.roles import Permission
from qorgan.detection.classification import load_taxonomy
from qorgan.incidents import alerts as service
from qorgan.incidents.alerts import AlertFilter
from qorgan.incidents.models import LEVELS, AlertStatus
from qorgan.web.api.alerts import triage, visible
from qorgan.web.deps import Actor, Db, RecordId, page_actor
from qorgan.web.filters import alert_filter
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
