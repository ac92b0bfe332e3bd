"""The incident dashboard and the monthly report.

The dashboard's first screen is what needs action now (the overdue incidents, most overdue
first, and the open ones by severity); below it a period's figures as tables, drawn as charts
by ``static/incident_dashboard.js`` from ``GET /api/v1/incidents/stats``. The monthly report
is one CSV row per incident of the month, or a PDF of its figures in the user's language
(:mod:`qorgan.web.incident_report`).

Those with ``incidents:coordinate`` switch to the incidents reported to their organisation
(``scope=reported``), all or one reporter's; others asking for that view get a 403. Registered
before the incident pages so that ``/incidents/dashboard`` is not read as an incident id.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import select

from qorgan.core.db import utcnow
from qorgan.core.models import Organisation, User
from qorgan.core.roles import Permission
from qorgan.detection.classification import load_taxonomy
from qorgan.incidents import figures, service, stats
from qorgan.incidents.lifecycle import RANK_SEVERITY, IncidentError
from qorgan.incidents.listing import Scope
from qorgan.web import incident_report
from qorgan.web.api.incident_stats import selection
from qorgan.web.deps import Actor, Db, page_actor, state
from qorgan.web.i18n import _l
from qorgan.web.templating import render, request_language

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, Depends(page_actor(Permission.incidents_read))]
ReporterId = Annotated[int | None, Query(ge=1, le=2**31 - 1)]
#: Months offered by the period selector (the newest first).
MONTHS_OFFERED = 12
#: Overdue incidents listed on the first screen (the rest on the list's overdue tab).
OVERDUE_LISTED = 10
#: Characters of CSV sent at a time.
CSV_CHUNK = 64 * 1024


def _months(now: datetime, zone: str, count: int = MONTHS_OFFERED) -> list[str]:
    today = now.astimezone(ZoneInfo(zone)).date()
    year, month = today.year, today.month
    out = []
    for _ in range(count):
        out.append(f"{year}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out


def _overdue_by(now: datetime, due: datetime | None) -> tuple[str, float]:
    """How long past its deadline: ``("h", hours)`` under two days, ``("d", days)`` beyond."""
    late = (now - due) if due else timedelta(0)
    hours = late / timedelta(hours=1)
    return ("h", round(hours, 1)) if hours < 48 else ("d", round(hours / 24, 1))


@router.get("/incidents/dashboard")
def dashboard(
    request: Request,
    db: Db,
    actor: Reader,
    period: Annotated[str, Query(max_length=16)] = figures.DEFAULT_PERIOD,
    scope: Scope = Scope.own,
    reporter: ReporterId = None,
) -> Response:
    chosen = selection(actor, scope, reporter)
    reported = chosen.scope is Scope.reported
    now = utcnow()
    zone = state(request).settings.timezone
    error = None
    try:
        shown = figures.parse_period(period, now, zone)
    except IncidentError as exc:
        error, shown = exc.message, figures.parse_period(figures.DEFAULT_PERIOD, now, zone)
    found = stats.period_stats(session=db, selection=chosen, period=shown)
    current = stats.current(session=db, selection=chosen, now=now, limit=OVERDUE_LISTED)
    language = request_language(request)
    taxonomy = load_taxonomy()
    organisations = (
        {
            o.id: o.name
            for o in db.scalars(select(Organisation).order_by(Organisation.name))
            if o.id != actor.organisation_id
        }
        if reported
        else {}
    )
    owners = {i.organisation_id for i in current.overdue} | {actor.organisation_id}
    names = dict(
        db.execute(select(User.id, User.display_name).where(User.organisation_id.in_(owners))).all()
    )
    params = {"period": shown.label}
    if reported:
        params["scope"] = "reported"
        if chosen.reporter_id:
            params["reporter"] = str(chosen.reporter_id)
    list_scope = "&scope=reported" if reported else ""
    month = shown.label if shown.label not in figures.RECENT else _months(now, zone, 1)[0]
    return render(
        request,
        "incident_dashboard.html",
        {
            "stats": found,
            "current": current,
            "period": shown,
            "periods": list(figures.RECENT),
            "months": _months(now, zone),
            "reported": reported,
            "reporter": chosen.reporter_id,
            "organisations": organisations,
            "names": names,
            "error": error,
            "api": "/api/v1/incidents/stats?" + urlencode(params),
            "list_scope": list_scope,
            "report_month": month,
            "reference": service.reference,
            "rank_severity": RANK_SEVERITY,
            "overdue_by": lambda incident: _overdue_by(now, incident.next_due_at),
            "class_names": {
                cls: labels.get(language, cls) for cls, labels in taxonomy.kz_cert.items()
            },
            "query_for": lambda **replace: urlencode({**params, **replace}),
        },
    )


@router.get("/incidents/reports/monthly")
def monthly_report(
    request: Request,
    db: Db,
    actor: Reader,
    month: Annotated[str, Query(max_length=16)],
    format: Annotated[str, Query(max_length=8)] = "pdf",
    scope: Scope = Scope.own,
    reporter: ReporterId = None,
) -> Response:
    """A month's incidents: ``format=csv`` one row per incident (streamed), ``pdf`` the
    figures, tables and overdue list in the user's language."""
    if format not in incident_report.FORMATS:
        raise HTTPException(400, _l("the report is given as csv or pdf"))
    chosen = selection(actor, scope, reporter)
    zone = state(request).settings.timezone
    try:
        period = figures.month(month, zone)
    except IncidentError as exc:
        raise HTTPException(400, exc.message) from None
    name = incident_report.file_name(period, chosen, format)
    disposition = {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"}
    now = utcnow()
    if format == "csv":
        factory = state(request).factory

        def chunks() -> Iterator[str]:
            # Its own session: the request's is closed once the response starts streaming. A
            # sync iterator's every item is a trip to the thread pool, so lines go in chunks
            # (a month of 8,000 incidents, bench/incidents.py: 5.0 s line by line, 0.8 s so).
            with factory() as session:
                lines = incident_report.csv_lines(
                    session=session, selection=chosen, period=period, now=now
                )
                buffered: list[str] = []
                size = 0
                for line in lines:
                    buffered.append(line)
                    size += len(line)
                    if size >= CSV_CHUNK:
                        yield "".join(buffered)
                        buffered, size = [], 0
                yield "".join(buffered)

        media = "text/csv; charset=utf-8"
        return StreamingResponse(chunks(), media_type=media, headers=disposition)
    pdf = incident_report.pdf(
        session=db,
        selection=chosen,
        period=period,
        language=request_language(request),
        generated_by=actor.user.display_name,
        now=now,
    )
    return Response(pdf, media_type="application/pdf", headers=disposition)
