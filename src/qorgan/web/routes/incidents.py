"""The incident pages: the list (most urgent deadline first, overdue and due-soon counted),
an incident's page (clocks, lifecycle, tasks, notes, timeline, alerts, observables), creating
one by hand or from the inbox's alerts, every change an analyst makes on the page, and its
evidence files (uploaded, listed with their hashes, downloaded after verification).

Forms post and redirect back (no script needed); the services' refusals come back as the
page's error message, translated where the catalogues know them.
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy import select
from starlette.background import BackgroundTask

from qorgan.core.db import utcnow
from qorgan.core.models import Organisation, User
from qorgan.core.roles import Permission
from qorgan.core.tlp import Pap, Tlp
from qorgan.core.workdays import WorkCalendar
from qorgan.detection.classification import load_taxonomy
from qorgan.incidents import (
    clocks,
    evidence,
    listing,
    proposals,
    referral_export,
    reporting,
    reports,
    service,
    similar,
    tasks,
    timeline,
)
from qorgan.incidents.lifecycle import (
    ORDER,
    RANK_SEVERITY,
    SEVERITY_RANK,
    IncidentError,
    NotFound,
    Resolution,
    Severity,
    Status,
)
from qorgan.incidents.models import Asset, IncidentAsset
from qorgan.incidents.observables import KINDS
from qorgan.incidents.referral import ReferralError
from qorgan.incidents.task_templates import PHASES, localised
from qorgan.web import intel_exchange
from qorgan.web.api.incidents import evidence_download, receive_evidence
from qorgan.web.deps import Actor, Db, RecordId, page_actor, state, work_calendar
from qorgan.web.filters import PageFilter, page_filter
from qorgan.web.i18n import _l, translations
from qorgan.web.labels import INCIDENT_STATUS_LABELS, SEVERITY_LABELS, TIMELINE_LABELS
from qorgan.web.templating import render

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, Depends(page_actor(Permission.incidents_read))]
Worker = Annotated[Actor, Depends(page_actor(Permission.incidents_write))]
Calendar = Annotated[WorkCalendar, Depends(work_calendar)]
Filters = Annotated[PageFilter, Depends(page_filter)]
PAGE = 50
#: Alerts listed on an incident's page (the rest through the API).
ALERTS_SHOWN = 100
TABS = ("open", "overdue", "soon", "closed", "all")


def _taxonomy_context(language: str) -> dict[str, Any]:
    taxonomy = load_taxonomy()
    return {
        "kz_cert_classes": taxonomy.kz_cert,
        "rsit_choices": [
            (f"{cls}/{typ}", taxonomy.rsit_label(cls, typ, language) or typ)
            for cls, spec in taxonomy.rsit.items()
            for typ in spec.get("types", {})
        ],
        "article_names": {str(n): taxonomy.article_name(str(n), language) for n in range(205, 214)},
    }


def _language(request: Request) -> str:
    from qorgan.web.templating import request_language

    return request_language(request)


def _back(incident_id: int, message: str | None = None, anchor: str = "") -> Response:
    query = f"?{urlencode({'message': message})}" if message else ""
    return RedirectResponse(f"/incidents/{incident_id}{query}{anchor}", status_code=303)


def _users(db: Db, organisation_id: int) -> dict[int, str]:
    return {
        user_id: name
        for user_id, name in db.execute(
            select(User.id, User.display_name).where(User.organisation_id == organisation_id)
        ).all()
    }


@router.get("/incidents")
def incidents_page(
    request: Request,
    db: Db,
    actor: Reader,
    tab: Annotated[str, Query(max_length=16)] = "open",
    kz_cert: Annotated[str, Query(max_length=64)] = "",
    severity: Annotated[str, Query(max_length=16)] = "",
    mine: Annotated[str, Query(max_length=4)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    scope: Annotated[str, Query(max_length=16)] = "own",
    order: listing.Order = listing.Order.due,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    """The incidents list: tabs for open, overdue, due soon, closed and all."""
    if tab not in TABS:
        tab = "open"
    reported = scope == "reported" and actor.can(Permission.incidents_coordinate)
    chosen_scope = listing.Scope.reported if reported else listing.Scope.own
    error = None
    try:
        filters = listing.IncidentFilter(
            status=tab if tab in ("open", "closed", "all") else "open",
            due=tab if tab in ("overdue", "soon") else None,
            kz_cert_class=kz_cert or None,
            severity=SEVERITY_RANK[Severity(severity)]
            if severity in Severity.__members__
            else None,
            assignee_id=actor.user.id if mine else None,
            query=q or None,
            scope=chosen_scope,
        )
    except IncidentError as exc:
        error, filters = exc.message, listing.IncidentFilter(scope=chosen_scope)
    now = utcnow()
    rows, total = listing.list_incidents(
        session=db,
        organisation_id=actor.organisation_id,
        filters=filters,
        order=order,
        limit=PAGE,
        offset=(page - 1) * PAGE,
        now=now,
    )
    counts = listing.counts_by_state(
        session=db, organisation_id=actor.organisation_id, scope=chosen_scope, now=now
    )
    names = _users(db, actor.organisation_id)
    params = {
        k: v
        for k, v in {
            "kz_cert": kz_cert,
            "severity": severity,
            "mine": mine,
            "q": q,
            "scope": "reported" if reported else "",
            "order": order.value if order is not listing.Order.due else "",
        }.items()
        if v
    }
    return render(
        request,
        "incidents.html",
        {
            "incidents": rows,
            "total": total,
            "counts": counts,
            "tab": tab,
            "tabs": TABS,
            "filters": {"kz_cert": kz_cert, "severity": severity, "mine": mine, "q": q},
            "reported": reported,
            "order": order,
            "orders": list(listing.Order),
            "page": page,
            "pages": max(1, -(-total // PAGE)),
            "query_for": lambda **replace: urlencode({**params, "tab": tab, **replace}),
            "names": names,
            "organisation_names": (
                {o.id: o.name for o in db.scalars(select(Organisation))} if reported else {}
            ),
            "deadline_state": lambda incident: clocks.state(incident, now),
            "reference": service.reference,
            "rank_severity": RANK_SEVERITY,
            "error": error,
            **_taxonomy_context(_language(request)),
        },
    )


@router.get("/incidents/new")
def new_incident_page(request: Request, db: Db, actor: Worker) -> Response:
    """The form for an incident by hand (a report by phone, an analyst's own finding)."""
    return render(
        request,
        "incident_new.html",
        {
            "tlps": [t.value for t in Tlp],
            "paps": [p.value for p in Pap],
            "severities": [s.value for s in Severity],
            "assignees": service.assignable(session=db, organisation_id=actor.organisation_id),
            "assets": _assets(db, actor.organisation_id),
            **_taxonomy_context(_language(request)),
        },
    )


@router.get("/incidents/proposals")
def proposals_panel(request: Request, db: Db, actor: Worker) -> Response:
    """The inbox's panel of alerts that belong together (loaded after the inbox itself)."""
    found = proposals.proposals(session=db, organisation_id=actor.organisation_id)
    items = []
    for p in found:
        window = {
            "status": "new",
            "since": p.first.isoformat() if p.first else "",
            # The filter's end is exclusive: a second past the last alert keeps it in.
            "until": (p.last + timedelta(seconds=1)).isoformat() if p.last else "",
        }
        where = (
            {"rule": p.rule_id or "", "host": p.host or ""}
            if p.by == "rule_host"
            else {"address": p.address or ""}
        )
        items.append((p, urlencode({**where, **window})))
    return render(request, "_proposals.html", {"proposals": items, "rank_severity": RANK_SEVERITY})


def _assets(db: Db, organisation_id: int) -> list[Asset]:
    return list(
        db.scalars(
            select(Asset).where(Asset.organisation_id == organisation_id).order_by(Asset.name)
        )
    )


def _split_rsit(value: str) -> tuple[str | None, str | None]:
    if not value:
        return None, None
    cls, _, typ = value.partition("/")
    return cls or None, typ or None


def _ids(values: list[str] | None) -> list[int]:
    ids = []
    for value in values or []:
        if not value.isdigit() or not 0 < int(value) < 2**31:
            raise HTTPException(400, _l("invalid form"))
        ids.append(int(value))
    return ids


@router.post("/incidents")
def create_incident(
    db: Db,
    actor: Worker,
    calendar: Calendar,
    title: Annotated[str, Form(max_length=300)],
    description: Annotated[str, Form(max_length=100_000)] = "",
    kz_cert: Annotated[str, Form(max_length=64)] = "",
    rsit: Annotated[str, Form(max_length=130)] = "",
    tlp: Annotated[str, Form(max_length=16)] = Tlp.amber.value,
    pap: Annotated[str, Form(max_length=16)] = Pap.amber.value,
    personal_data: Annotated[str, Form(max_length=4)] = "",
    assignee_id: Annotated[str, Form(max_length=12)] = "",
    asset_ids: Annotated[list[str] | None, Form(max_length=1000)] = None,
) -> Response:
    rsit_class, rsit_type = _split_rsit(rsit)
    draft = service.Draft(
        title=title,
        description=description,
        kz_cert_class=kz_cert or None,
        rsit_class=rsit_class,
        rsit_type=rsit_type,
        tlp=tlp,
        pap=pap,
        personal_data=bool(personal_data),
        assignee_id=int(assignee_id) if assignee_id.isdigit() else None,
        asset_ids=_ids(asset_ids),
    )
    if not title.strip():
        raise HTTPException(400, _l("an incident needs a title"))
    try:
        incident, _ = service.create(
            session=db,
            organisation_id=actor.organisation_id,
            actor_id=actor.user.id,
            draft=draft,
            calendar=calendar,
        )
    except IncidentError as exc:
        raise HTTPException(400, exc.message) from None
    db.commit()
    return _back(incident.id)


@router.post("/incidents/from-alerts")
def incident_from_alerts(
    request: Request,
    db: Db,
    actor: Worker,
    calendar: Calendar,
    view: Filters,
    ids: Annotated[list[str] | None, Form(max_length=100_000)] = None,
    scope: Annotated[str, Form(max_length=16)] = "selected",
    incident: Annotated[str, Form(max_length=20)] = "",
    mode: Annotated[str, Form(max_length=8)] = "new",
) -> Response:
    """From the inbox: a new incident of the alerts ticked (or all matching the view's
    filters, which travel in the URL), or with ``incident`` (its number or INC-reference)
    those alerts added to an existing one."""
    if view.error is not None:
        raise HTTPException(400, view.error)
    chosen = _ids(ids) if scope == "selected" else None
    if chosen is not None and not chosen:
        raise HTTPException(400, _l("Select alerts first."))
    filters = view.filters if chosen is None else None
    target = incident.strip().upper().removeprefix("INC-").lstrip("0")
    if mode == "add" and not target:
        raise HTTPException(400, _l("give the number of the incident to add the alerts to"))
    try:
        if mode == "add":
            if not target.isdigit() or int(target) >= 2**31:
                raise HTTPException(400, _l("no such incident in your organisation"))
            incident_id = int(target)
            service.add_alerts(
                session=db,
                organisation_id=actor.organisation_id,
                incident_id=incident_id,
                actor_id=actor.user.id,
                alert_ids=chosen,
                filters=filters,
            )
        else:
            made, _ = service.create(
                session=db,
                organisation_id=actor.organisation_id,
                actor_id=actor.user.id,
                draft=service.Draft(),
                calendar=calendar,
                alert_ids=chosen,
                filters=filters,
            )
            incident_id = made.id
    except NotFound:
        raise HTTPException(404, _l("no such incident in your organisation")) from None
    except IncidentError as exc:
        raise HTTPException(400, exc.message) from None
    db.commit()
    target_url = f"/incidents/{incident_id}"
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": target_url})
    return RedirectResponse(target_url, status_code=303)


def _incident_context(request: Request, db: Db, actor: Actor, incident_id: int) -> dict[str, Any]:
    try:
        incident = service.visible(
            session=db, incident_id=incident_id, organisation_id=actor.organisation_id
        )
    except NotFound:
        raise HTTPException(404, _l("no such incident in your organisation")) from None
    language = _language(request)
    now = utcnow()
    own = incident.organisation_id == actor.organisation_id
    all_tasks = tasks.tasks(session=db, incident_id=incident.id)
    notes = tasks.notes(session=db, incident_id=incident.id)
    names = _users(db, incident.organisation_id)
    if not own:
        names.update(_users(db, actor.organisation_id))
    # The alerts table is the timeline's first alerts (one sort of the incident's alerts, not
    # two: an incident of 5,000 alerts took 313 ms at p95 with both, bench/incidents.py).
    story = timeline.timeline(session=db, incident_id=incident.id)
    alerts = [
        SimpleNamespace(
            id=e.alert_id,
            time=e.at,
            level=e.details["level"],
            rule_id=e.details["rule_id"],
            rule_title=e.details["rule"],
            host=e.details["host"],
            user_name=e.details["user"],
        )
        for e in story.entries
        if e.kind == "alert"
    ][:ALERTS_SHOWN]
    assets = db.scalars(
        select(Asset)
        .where(
            Asset.id.in_(
                select(IncidentAsset.asset_id).where(IncidentAsset.incident_id == incident.id)
            )
        )
        .order_by(Asset.name)
    ).all()
    templates = tasks.templates(session=db, organisation_id=incident.organisation_id)
    taxonomy = load_taxonomy()
    suggested = next(
        (t.id for t in templates.values() if incident.kz_cert_class in t.classes), None
    )
    status = Status(incident.status)
    later = [s.value for s in Status if ORDER[s] > ORDER[status] and s is not Status.closed]
    return {
        "incident": incident,
        "reference": service.reference(incident.id),
        "own": own,
        "severity": RANK_SEVERITY[incident.severity].value,
        "clocks": clocks.clocks(incident, now),
        "deadline_state": clocks.state(incident, now),
        "statuses": [s.value for s in Status],
        "next_status": later[0] if later else None,
        "resolutions": [r.value for r in Resolution],
        "severities": [s.value for s in Severity],
        "tlps": [t.value for t in Tlp],
        "paps": [p.value for p in Pap],
        "phases": PHASES,
        "tasks_by_phase": {p: [t for t in all_tasks if t.phase == p] for p in PHASES},
        "notes": [n for n in notes if n.task_id is None],
        "task_notes": {t.id: [n for n in notes if n.task_id == t.id] for t in all_tasks},
        "timeline": story,
        "alerts": alerts,
        "alert_total": service.alert_count(session=db, incident_id=incident.id),
        "observables": service.observables(session=db, incident_id=incident.id),
        "observable_kinds": KINDS,
        "assets": assets,
        "all_assets": _assets(db, incident.organisation_id) if own else [],
        "names": names,
        "assignees": (
            service.assignable(session=db, organisation_id=incident.organisation_id) if own else []
        ),
        "templates": [(t.id, localised(t.name, language)) for t in templates.values()],
        "suggested_template": suggested,
        "kz_cert_label": (
            taxonomy.kz_cert[incident.kz_cert_class].get(language)
            if incident.kz_cert_class in taxonomy.kz_cert
            else incident.kz_cert_class
        ),
        "rsit_label": (
            taxonomy.rsit_label(incident.rsit_class, incident.rsit_type, language)
            if incident.rsit_class
            else None
        ),
        "message": request.query_params.get("message"),
        "evidence_files": evidence.list_evidence(session=db, incident_id=incident.id),
        # Both sides of a report see who handled the evidence (the thread names both too).
        "custody": evidence.custody(
            session=db,
            incident_id=incident.id,
            organisation_ids=[incident.organisation_id]
            + ([incident.reported_to_id] if incident.reported_to_id else []),
        ),
        "evidence_max_mib": state(request).settings.evidence_max_mib,
        "thread": reporting.messages(session=db, incident_id=incident.id),
        "similar": similar.similar(session=db, incident_id=incident.id) if own else [],
        "coordinators": (
            reporting.coordinators(session=db, exclude=incident.organisation_id)
            if own and incident.reported_to_id is None
            else []
        ),
        "reported_to": (
            db.get(Organisation, incident.reported_to_id) if incident.reported_to_id else None
        ),
        "reporter": db.get(Organisation, incident.organisation_id) if not own else None,
        "coordinator_view": not own,
        # The reporter's contacts are personal data: for those who work the incident only.
        "public_report": (
            reports.of_incident(
                session=db, incident_id=incident.id, organisation_id=actor.organisation_id
            )
            if own and actor.can(Permission.incidents_write)
            else None
        ),
        # Sharing with the constituency, and what partners saw of what was shared.
        "share_collections": (
            intel_exchange.writable(session=db, organisation_id=actor.organisation_id)
            if own and actor.can(Permission.intel_write) and actor.can(Permission.incidents_write)
            else []
        ),
        "partner_sightings": (
            intel_exchange.incident_sightings(
                session=db, incident=incident, reader=actor.organisation_id, actor=actor.id
            )
            if own and actor.can(Permission.intel_read)
            else []
        ),
        **_taxonomy_context(language),
    }


@router.get("/incidents/{incident_id}")
def incident_page(request: Request, db: Db, actor: Reader, incident_id: RecordId) -> Response:
    context = _incident_context(request, db, actor, incident_id)
    db.commit()  # the audit entries of partners' sightings read for the page, before rendering
    return render(request, "incident.html", context)


@router.post("/incidents/{incident_id}/evidence")
async def add_evidence(request: Request, db: Db, actor: Worker, incident_id: RecordId) -> Response:
    """Add the uploaded file (multipart: ``file``, ``description``) as evidence."""
    await receive_evidence(request, db, actor, incident_id)
    return _back(incident_id, anchor="#evidence")


@router.get("/incidents/{incident_id}/evidence/{evidence_id}")
def download_evidence(
    request: Request, db: Db, actor: Reader, incident_id: RecordId, evidence_id: RecordId
) -> Response:
    """The evidence file as a download (never shown in the browser), verified against its
    SHA-256 and recorded in the chain of custody."""
    return evidence_download(request, db, actor, incident_id, evidence_id)


def _act(db: Db, actor: Actor, incident_id: int, work: Any, **fields: Any) -> Response:
    """Run one change of the page as the actor (``work`` is a service function taking the
    session, the organisation, the incident, the actor and ``fields``), commit, and go back to
    the incident."""
    try:
        work(
            session=db,
            organisation_id=actor.organisation_id,
            incident_id=incident_id,
            actor_id=actor.user.id,
            **fields,
        )
    except NotFound:
        raise HTTPException(404, _l("no such incident in your organisation")) from None
    except IncidentError as exc:
        raise HTTPException(400, exc.message) from None
    db.commit()
    return _back(incident_id)


@router.post("/incidents/{incident_id}/status")
def move_incident(
    db: Db,
    actor: Worker,
    incident_id: RecordId,
    status: Annotated[str, Form(max_length=16)],
    resolution: Annotated[str, Form(max_length=32)] = "",
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    return _act(
        db,
        actor,
        incident_id,
        service.move,
        status=status,
        resolution=resolution or None,
        reason=reason,
    )


@router.post("/incidents/{incident_id}/assign")
def assign_incident(
    db: Db,
    actor: Worker,
    incident_id: RecordId,
    assignee_id: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    return _act(
        db,
        actor,
        incident_id,
        service.assign,
        assignee_id=int(assignee_id) if assignee_id.isdigit() else None,
    )


@router.post("/incidents/{incident_id}/edit")
def edit_incident(
    db: Db,
    actor: Worker,
    calendar: Calendar,
    incident_id: RecordId,
    title: Annotated[str, Form(max_length=300)],
    description: Annotated[str, Form(max_length=100_000)] = "",
    kz_cert: Annotated[str, Form(max_length=64)] = "",
    rsit: Annotated[str, Form(max_length=130)] = "",
    tlp: Annotated[str, Form(max_length=16)] = Tlp.amber.value,
    pap: Annotated[str, Form(max_length=16)] = Pap.amber.value,
    tags: Annotated[str, Form(max_length=5000)] = "",
    personal_data: Annotated[str, Form(max_length=4)] = "",
    articles: Annotated[list[str] | None, Form(max_length=20)] = None,
) -> Response:
    rsit_class, rsit_type = _split_rsit(rsit)
    changes = {
        "title": title,
        "description": description,
        "kz_cert_class": kz_cert or None,
        "rsit_class": rsit_class,
        "rsit_type": rsit_type,
        "tlp": tlp,
        "pap": pap,
        "tags": [t for t in tags.split(",")],
        "personal_data": bool(personal_data),
        "criminal_code": articles or [],
    }
    return _act(
        db,
        actor,
        incident_id,
        service.edit,
        changes=changes,
        calendar=calendar,
    )


@router.post("/incidents/{incident_id}/severity")
def set_severity(
    db: Db,
    actor: Worker,
    incident_id: RecordId,
    severity: Annotated[str, Form(max_length=16)] = "",
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    return _act(
        db,
        actor,
        incident_id,
        service.set_severity,
        severity=severity or None,
        reason=reason,
    )


@router.post("/incidents/{incident_id}/assets")
def set_assets(
    db: Db,
    actor: Worker,
    incident_id: RecordId,
    asset_ids: Annotated[list[str] | None, Form(max_length=1000)] = None,
) -> Response:
    return _act(
        db,
        actor,
        incident_id,
        service.set_assets,
        asset_ids=_ids(asset_ids),
    )


@router.post("/incidents/{incident_id}/tasks/template")
def apply_template(
    request: Request,
    db: Db,
    actor: Worker,
    incident_id: RecordId,
    template_id: Annotated[str, Form(max_length=64)],
) -> Response:
    language = _language(request)
    return _act(
        db,
        actor,
        incident_id,
        tasks.apply_template,
        template_id=template_id,
        language=language,
    )


@router.post("/incidents/{incident_id}/tasks")
def add_task(
    db: Db,
    actor: Worker,
    incident_id: RecordId,
    phase: Annotated[str, Form(max_length=16)],
    title: Annotated[str, Form(max_length=300)],
    description: Annotated[str, Form(max_length=tasks.MAX_NOTE)] = "",
) -> Response:
    return _act(
        db,
        actor,
        incident_id,
        tasks.add_task,
        phase=phase,
        title=title,
        description=description,
    )


@router.post("/incidents/{incident_id}/tasks/{task_id}/status")
def set_task_status(
    db: Db,
    actor: Worker,
    incident_id: RecordId,
    task_id: RecordId,
    status: Annotated[str, Form(max_length=16)],
) -> Response:
    return _act(
        db,
        actor,
        incident_id,
        tasks.set_task_status,
        status=status,
        task_id=task_id,
    )


@router.post("/incidents/{incident_id}/notes")
def add_note(
    db: Db,
    actor: Worker,
    incident_id: RecordId,
    text: Annotated[str, Form(max_length=tasks.MAX_NOTE)],
    task_id: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    return _act(
        db,
        actor,
        incident_id,
        tasks.add_note,
        text=text,
        task_id=int(task_id) if task_id.isdigit() and int(task_id) < 2**31 else None,
    )


@router.post("/incidents/{incident_id}/observables")
def add_observable(
    db: Db,
    actor: Worker,
    incident_id: RecordId,
    kind: Annotated[str, Form(max_length=16)],
    value: Annotated[str, Form(max_length=500)],
) -> Response:
    return _act(
        db,
        actor,
        incident_id,
        service.add_observable,
        kind=kind,
        value=value,
    )


@router.post("/incidents/{incident_id}/merge")
def merge_incident(
    db: Db,
    actor: Worker,
    incident_id: RecordId,
    into: Annotated[str, Form(max_length=20)],
) -> Response:
    target = into.strip().upper().removeprefix("INC-").lstrip("0")
    if not target.isdigit() or int(target) >= 2**31:
        raise HTTPException(400, _l("no such incident in your organisation"))
    try:
        merged = service.merge(
            session=db,
            organisation_id=actor.organisation_id,
            source_id=incident_id,
            target_id=int(target),
            actor_id=actor.user.id,
        )
    except NotFound:
        raise HTTPException(404, _l("no such incident in your organisation")) from None
    except IncidentError as exc:
        raise HTTPException(400, exc.message) from None
    db.commit()
    return _back(merged.id)


@router.post("/incidents/{incident_id}/split")
def split_incident(
    db: Db,
    actor: Worker,
    calendar: Calendar,
    incident_id: RecordId,
    ids: Annotated[list[str] | None, Form(max_length=ALERTS_SHOWN)] = None,
    title: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    try:
        new = service.split(
            session=db,
            organisation_id=actor.organisation_id,
            incident_id=incident_id,
            actor_id=actor.user.id,
            alert_ids=_ids(ids),
            title=title,
            calendar=calendar,
        )
    except NotFound:
        raise HTTPException(404, _l("no such incident in your organisation")) from None
    except IncidentError as exc:
        raise HTTPException(400, exc.message) from None
    db.commit()
    return _back(new.id)


@router.get("/observables")
def observable_page(
    request: Request,
    db: Db,
    actor: Reader,
    kind: Annotated[str, Query(max_length=16)],
    value: Annotated[str, Query(max_length=500)],
) -> Response:
    """Every incident of the organisation that has the observable, and a link to its alerts."""
    if kind not in KINDS:
        raise HTTPException(404, _l("Not found"))
    found = listing.with_observable(
        session=db, organisation_id=actor.organisation_id, kind=kind, value=value
    )
    pivot = {"ip": "address", "account": "user"}.get(kind, "q")
    return render(
        request,
        "observable.html",
        {
            "kind": kind,
            "value": value,
            "incidents": found,
            "reference": service.reference,
            "rank_severity": RANK_SEVERITY,
            "alerts_link": "/alerts?" + urlencode({pivot: value, "status": ""}),
        },
    )


@router.post("/incidents/{incident_id}/report")
def report_incident(
    db: Db,
    actor: Worker,
    incident_id: RecordId,
    coordinator_id: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    return _act(
        db,
        actor,
        incident_id,
        reporting.report,
        coordinator_id=int(coordinator_id) if coordinator_id.isdigit() else None,
    )


@router.post("/incidents/{incident_id}/messages")
def post_message(
    db: Db,
    actor: Reader,
    incident_id: RecordId,
    text: Annotated[str, Form(max_length=reporting.MAX_MESSAGE)],
    kind: Annotated[str, Form(max_length=16)] = "message",
) -> Response:
    """A message in the thread with the coordinator (either side)."""
    try:
        incident = service.visible(
            session=db, incident_id=incident_id, organisation_id=actor.organisation_id
        )
    except NotFound:
        raise HTTPException(404, _l("no such incident in your organisation")) from None
    own = incident.organisation_id == actor.organisation_id
    needed = Permission.incidents_write if own else Permission.incidents_coordinate
    if not actor.can(needed):
        raise HTTPException(403, _l("your role does not allow this page"))
    response = _act(
        db,
        actor,
        incident_id,
        reporting.post_message,
        text=text,
        kind=kind,
    )
    response.headers["location"] += "#thread"
    return response


def _coordinating(db: Db, actor: Actor, incident_id: int) -> Any:
    """The incident, for its organisation's incident workers or its coordinator's members who
    coordinate; a 404 for anyone else, a 403 without the permission."""
    try:
        incident = service.visible(
            session=db, incident_id=incident_id, organisation_id=actor.organisation_id
        )
    except NotFound:
        raise HTTPException(404, _l("no such incident in your organisation")) from None
    own = incident.organisation_id == actor.organisation_id
    needed = Permission.incidents_write if own else Permission.incidents_coordinate
    if not actor.can(needed):
        raise HTTPException(403, _l("your role does not allow this page"))
    return incident


@router.post("/incidents/{incident_id}/articles")
def set_articles(
    db: Db,
    actor: Reader,
    incident_id: RecordId,
    articles: Annotated[list[str] | None, Form(max_length=20)] = None,
) -> Response:
    """The candidate Criminal Code articles (the incident's organisation or its coordinator)."""
    _coordinating(db, actor, incident_id)
    return _act(
        db,
        actor,
        incident_id,
        reporting.set_articles,
        articles=articles or [],
    )


def _describer(gettext: Any) -> Any:
    """What each timeline entry says in the package's language."""

    def describe(entry: timeline.Entry) -> str:
        d = entry.details
        label = gettext(TIMELINE_LABELS.get(entry.kind, entry.kind))
        if entry.kind == "alert":
            parts = [d.get("rule"), d.get("host"), d.get("user"), d.get("source_ip")]
            return f"{label}: " + " · ".join(str(p) for p in parts if p)
        if entry.kind == "status":
            names = INCIDENT_STATUS_LABELS
            moved = (
                f"{gettext(names.get(d.get('from'), '?'))} → {gettext(names.get(d.get('to'), '?'))}"
            )
            return f"{label}: {moved}"
        if entry.kind == "task":
            return f"{label}: {d.get('title', '')}"
        if entry.kind == "evidence_added":
            return f"{label}: {d.get('name', '')} ({d.get('sha256', '')})"
        return label

    return describe


@router.post("/incidents/{incident_id}/referral")
def export_referral(
    request: Request,
    db: Db,
    actor: Reader,
    incident_id: RecordId,
    language: Annotated[str, Form(max_length=2)] = "kk",
) -> Response:
    """The signed legal-referral package (ZIP: PDF summary, timeline, observables, evidence
    with hashes, custody log, manifest), for ``qorgan incidents verify-export``."""
    incident = _coordinating(db, actor, incident_id)
    if language not in referral_export.LANGUAGES:
        raise HTTPException(400, _l("invalid form"))
    gettext = translations(language).gettext
    taxonomy = load_taxonomy()
    classes = taxonomy.kz_cert.get(incident.kz_cert_class or "") or {}
    labels = referral_export.Labels(
        kz_cert_class=classes.get(language) if classes else incident.kz_cert_class,
        rsit=(
            taxonomy.rsit_label(incident.rsit_class, incident.rsit_type, language)
            if incident.rsit_class
            else None
        ),
        severity=gettext(SEVERITY_LABELS[RANK_SEVERITY[incident.severity].value]),
        status=gettext(INCIDENT_STATUS_LABELS[incident.status]),
        articles={str(n): taxonomy.article_name(str(n), language) or "" for n in range(205, 214)},
        describe=_describer(gettext),
    )
    settings = state(request).settings
    try:
        exported = referral_export.export(
            session=db,
            incident=incident,
            reader_organisation_id=actor.organisation_id,
            actor_id=actor.user.id,
            language=language,
            labels=labels,
            var_dir=settings.var_dir,
        )
    except (ReferralError, IncidentError) as exc:
        raise HTTPException(409, exc.message) from None
    db.commit()
    return FileResponse(
        exported.path,
        media_type="application/zip",
        filename=exported.file_name,
        background=BackgroundTask(exported.path.unlink, missing_ok=True),
    )
