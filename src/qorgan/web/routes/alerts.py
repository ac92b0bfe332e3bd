"""The alerts inbox: search, filters and pivots, sort orders, groupings, a chart over time,
bulk and single triage, saved searches.

The URL holds the whole view (filters, search, sort, grouping, page), so Back and Forward
restore it exactly and a view can be bookmarked or saved.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from qorgan.core.roles import Permission
from qorgan.detection.classification import load_taxonomy
from qorgan.incidents import inbox, saved_searches
from qorgan.incidents import service as incident_service
from qorgan.incidents import triage as triage_service
from qorgan.incidents.alerts import AlertError, NotFound, get_alert
from qorgan.incidents.inbox import Sort
from qorgan.incidents.models import LEVELS, AlertStatus
from qorgan.web.api.alerts import triage, visible
from qorgan.web.deps import Actor, Db, RecordId, page_actor
from qorgan.web.filters import FilterParams, PageFilter, filter_params, page_filter
from qorgan.web.i18n import _l
from qorgan.web.templating import render

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, Depends(page_actor(Permission.alerts_read))]
Triager = Annotated[Actor, Depends(page_actor(Permission.alerts_triage))]
Filters = Annotated[PageFilter, Depends(page_filter)]
Params = Annotated[FilterParams, Depends(filter_params)]
#: Alerts per page, and groups per page.
PAGE = 50
GROUP_PAGE = 50
#: Parameters that are part of a view but not of the filters.
VIEW_PARAMS = ("sort", "group")


def _view(request: Request) -> list[tuple[str, str]]:
    """The inbox view's parameters: this request's query, or for an htmx action on a row, the
    query of the page it was sent from."""
    if request.method == "POST" and request.headers.get("hx-current-url"):
        return parse_qsl(urlsplit(request.headers["hx-current-url"]).query)
    return list(request.query_params.multi_items())


def _query(request: Request, *, drop: tuple[str, ...] = (), **replace: str | None) -> str:
    """The view's query string with ``drop`` removed and ``replace`` set (None: removed)."""
    pairs = [(k, v) for k, v in _view(request) if k not in drop and k not in replace]
    pairs += [(k, v) for k, v in replace.items() if v is not None]
    return urlencode(pairs)


def _links(request: Request) -> dict[str, object]:
    """Link builders for templates: ``query_for(host="x")`` is the view narrowed to host x
    (first page); ``query_without_page`` keeps the rest of the view."""
    return {
        "query": _query(request),
        "query_without_page": _query(request, drop=("page",)),
        "query_for": lambda **replace: _query(request, drop=("page",), **replace),
        "view_param": lambda name: dict(_view(request)).get(name, ""),
    }


def _results(
    request: Request,
    db: Db,
    actor: Actor,
    view: PageFilter,
    sort: Sort,
    group: str,
    page: int,
    message: str | None = None,
) -> dict[str, object]:
    """What the results part of the inbox shows."""
    organisations = visible(db, actor)
    filters = view.filters
    context: dict[str, object] = {
        "filters": filters,
        "filter_error": view.error,
        "sort": sort,
        "group": group,
        "page": page,
        "message": message,
        "kz_cert_classes": load_taxonomy().kz_cert,
        **_links(request),
        "assignees": (
            triage_service.assignable(session=db, organisation_id=actor.organisation_id)
            if actor.can(Permission.alerts_triage)
            else []
        ),
        # The filters form, sent again with htmx results (out of band), needs these too.
        "levels": LEVELS,
        "statuses": list(AlertStatus),
        "sorts": list(Sort),
        "saved": saved_searches.list_searches(session=db, user_id=actor.user.id),
        "oob": bool(request.headers.get("hx-request")),
    }
    # Exact from the tallies, or counted up to a cap: a common search term matches hundreds of
    # thousands of alerts, which no index counts in a page's time ("more than 10,000").
    found = inbox.counted(session=db, organisation_ids=organisations, filters=filters)
    total = found.total
    context.update(level_counts=found.levels, total=total, total_exact=found.exact)
    if group:
        groups, groups_total = inbox.group_alerts(
            session=db,
            organisation_ids=organisations,
            filters=filters,
            by=group,  # type: ignore[arg-type]
            limit=GROUP_PAGE,
            offset=(page - 1) * GROUP_PAGE,
        )
        context.update(
            groups=groups,
            groups_total=groups_total,
            first=(page - 1) * GROUP_PAGE + 1,
            pages=(pages := max(1, -(-groups_total // GROUP_PAGE))),
            more=page < pages,
        )
    else:
        rows, _ = inbox.list_alerts(
            session=db,
            organisation_ids=organisations,
            filters=filters,
            sort=sort,
            limit=PAGE + 1,  # one more: is there a next page?
            offset=(page - 1) * PAGE,
            with_total=False,
        )
        more, rows = len(rows) > PAGE, rows[:PAGE]
        # Past a capped count the number of pages is unknown ("Page 3", not "of N").
        pages = max(1, -(-total // PAGE)) if found.exact else None
        context.update(alerts=rows, first=(page - 1) * PAGE + 1, pages=pages, more=more)
        if actor.can(Permission.incidents_read):
            context["incident_links"] = incident_service.incident_of_alerts(
                session=db, alert_ids=[row.id for row in rows]
            )
    return context


GroupParam = Annotated[Literal["", "rule", "host", "rule_host", "user", "address"], Query()]
PageParam = Annotated[int, Query(ge=1, le=100_000)]


@router.get("/alerts")
def inbox_page(
    request: Request,
    db: Db,
    actor: Reader,
    view: Filters,
    sort: Sort = Sort.newest,
    group: GroupParam = "",
    page: PageParam = 1,
) -> Response:
    context = _results(request, db, actor, view, sort, group, page)
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "results":
        return render(request, "_alert_results.html", context)
    context["oob"] = False
    return render(request, "alerts.html", context)


def _form_ids(values: list[str]) -> list[int]:
    ids = []
    for value in values:
        if not value.isdigit() or not 0 < int(value) < 2**31:
            raise HTTPException(400, _l("invalid form"))
        ids.append(int(value))
    return ids


@router.post("/alerts/triage")
def bulk_triage(
    request: Request,
    db: Db,
    actor: Triager,
    view: Filters,
    action: Annotated[Literal["acknowledge", "false-positive", "reopen", "assign"], Form()],
    ids: Annotated[list[str] | None, Form(max_length=100_000)] = None,
    scope: Annotated[Literal["selected", "all"], Form()] = "selected",
    assignee_id: Annotated[str, Form(max_length=12)] = "",
    sort: Sort = Sort.newest,
    group: GroupParam = "",
    page: PageParam = 1,
) -> Response:
    """Bulk triage from the inbox: the rows ticked, or every alert of the organisation matching
    the view's filters (which travel in the form's URL)."""
    if view.error is not None:
        raise HTTPException(400, view.error)
    assignee = int(assignee_id) if assignee_id.isdigit() else None
    chosen = _form_ids(ids or []) if scope == "selected" else None
    if chosen is not None and not chosen:
        message = _l("Select alerts first.")
    else:
        try:
            result = triage_service.bulk_triage(
                session=db,
                organisation_id=actor.organisation_id,
                actor_id=actor.user.id,
                action=action,
                alert_ids=chosen,
                filters=view.filters,
                assignee_id=assignee,
            )
        except AlertError as exc:
            raise HTTPException(400, exc.message) from None
        db.commit()
        message = f"changed:{result.changed}:{result.matched}"
    if request.headers.get("hx-request"):
        context = _results(request, db, actor, view, sort, group, page, message=message)
        return render(request, "_alert_results.html", context)
    return RedirectResponse(f"/alerts?{_query(request)}", status_code=303)


@router.post("/alerts/searches")
def save_search(
    request: Request,
    db: Db,
    actor: Reader,
    name: Annotated[str, Form(max_length=200)],
    query: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    try:
        saved = saved_searches.save(session=db, user_id=actor.user.id, name=name, query=query)
    except AlertError as exc:
        raise HTTPException(400, exc.message) from None
    db.commit()
    return RedirectResponse(f"/alerts?{saved.query}", status_code=303)


@router.post("/alerts/searches/{search_id}/delete")
def delete_search(db: Db, actor: Reader, search_id: RecordId) -> Response:
    try:
        saved_searches.delete(session=db, user_id=actor.user.id, search_id=search_id)
    except NotFound:
        raise HTTPException(404, _l("no such saved search")) from None
    db.commit()
    return RedirectResponse("/alerts", status_code=303)


@router.post("/alerts/{alert_id}/{action}")
def triage_alert(
    request: Request,
    db: Db,
    actor: Triager,
    alert_id: RecordId,
    action: Literal["acknowledge", "false-positive", "reopen", "assign"],
    assignee_id: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    extra = (
        {"assignee_id": int(assignee_id) if assignee_id.isdigit() else None}
        if action == "assign"
        else {}
    )
    triage(db, actor, alert_id, action, **extra)
    if request.headers.get("hx-request"):
        row = get_alert(session=db, organisation_ids=[actor.organisation_id], alert_id=alert_id)
        context = {"alert": row, "kz_cert_classes": load_taxonomy().kz_cert, **_links(request)}
        return render(request, "_alert_row.html", context)
    return RedirectResponse(f"/alerts/{alert_id}", status_code=303)
