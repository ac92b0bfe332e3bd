"""Incident settings of an organisation: deadlines per KZ-CERT class, its task templates, and
its register of assets and information systems.

Deadlines and templates need ``incidents:configure`` (administrators and coordinators); the
asset register ``incidents:write`` (those who work incidents keep it current). Registered
before the incident pages so that ``/incidents/settings`` is not read as an incident id.
"""

from __future__ import annotations

from typing import Annotated

import yaml
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from qorgan.core.roles import Permission
from qorgan.detection.classification import load_taxonomy
from qorgan.incidents import assets as asset_service
from qorgan.incidents import clocks, tasks
from qorgan.incidents.lifecycle import IncidentError, NotFound
from qorgan.incidents.task_templates import TemplateError, localised
from qorgan.web.deps import Actor, Db, RecordId, page_actor
from qorgan.web.i18n import _l
from qorgan.web.templating import render, request_language

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, Depends(page_actor(Permission.incidents_read))]
Configurer = Annotated[Actor, Depends(page_actor(Permission.incidents_configure))]
Worker = Annotated[Actor, Depends(page_actor(Permission.incidents_write))]


def _done(anchor: str) -> Response:
    return RedirectResponse(f"/incidents/settings#{anchor}", status_code=303)


@router.get("/incidents/settings")
def settings_page(request: Request, db: Db, actor: Reader) -> Response:
    language = request_language(request)
    taxonomy = load_taxonomy()
    rules: dict[str, dict[str, tuple[int, str]]] = {}
    for row in clocks.all_deadlines(session=db, organisation_id=actor.organisation_id):
        rules.setdefault(row.kz_cert_class, {})[row.measure] = (row.amount, row.unit)
    templates = tasks.templates(session=db, organisation_id=actor.organisation_id)
    return render(
        request,
        "incident_settings.html",
        {
            "defaults": clocks.DEFAULT_DEADLINES,
            "rules": rules,
            "measures": clocks.MEASURES,
            "units": clocks.UNITS,
            "kz_cert_classes": taxonomy.kz_cert,
            "templates": [
                (t.id, localised(t.name, language), len(t.tasks), t.classes)
                for t in templates.values()
            ],
            "assets": asset_service.list_assets(session=db, organisation_id=actor.organisation_id),
            "asset_kinds": asset_service.KINDS,
        },
    )


@router.post("/incidents/settings/deadlines")
def set_deadline(
    db: Db,
    actor: Configurer,
    kz_cert_class: Annotated[str, Form(max_length=64)],
    measure: Annotated[str, Form(max_length=16)],
    amount: Annotated[str, Form(max_length=6)] = "",
    unit: Annotated[str, Form(max_length=16)] = "working_hours",
) -> Response:
    """Set one deadline (an empty amount removes it: the default applies again)."""
    if kz_cert_class != clocks.ANY_CLASS and kz_cert_class not in load_taxonomy().kz_cert:
        raise HTTPException(400, _l("invalid form"))
    if amount and not amount.isdigit():
        raise HTTPException(400, _l("invalid form"))
    try:
        clocks.set_deadline(
            session=db,
            organisation_id=actor.organisation_id,
            actor_id=actor.user.id,
            kz_cert_class=kz_cert_class,
            measure=measure,
            amount=int(amount) if amount else None,
            unit=unit,
        )
    except IncidentError as exc:
        raise HTTPException(400, exc.message) from None
    db.commit()
    return _done("deadlines")


@router.get("/incidents/settings/templates/{template_id}")
def template_page(request: Request, db: Db, actor: Configurer, template_id: str) -> Response:
    found = tasks.templates(session=db, organisation_id=actor.organisation_id).get(template_id)
    if found is None:
        raise HTTPException(404, _l("Not found"))
    text = yaml.safe_dump(found.to_data(), allow_unicode=True, sort_keys=False, width=100)
    return render(
        request, "incident_template.html", {"template_id": template_id, "text": text, "error": None}
    )


@router.post("/incidents/settings/templates/{template_id}")
def save_template(
    request: Request,
    db: Db,
    actor: Configurer,
    template_id: str,
    text: Annotated[str, Form(max_length=200_000)],
) -> Response:
    """Save the organisation's version of a template, written as YAML (validated)."""
    error = None
    try:
        data = yaml.safe_load(text)
        if not isinstance(data, dict):
            raise TemplateError("the template must be a mapping with name, classes and tasks")
        tasks.save_template(
            session=db,
            organisation_id=actor.organisation_id,
            actor_id=actor.user.id,
            template_id=template_id,
            data=data,
            known_classes=list(load_taxonomy().kz_cert),
        )
    except yaml.YAMLError as exc:
        error = f"not valid YAML: {exc}"
    except (TemplateError, IncidentError) as exc:
        error = exc.message
    if error is not None:
        context = {"template_id": template_id, "text": text, "error": error}
        return render(request, "incident_template.html", context, status_code=400)
    db.commit()
    return _done("templates")


def _names(value: str) -> list[str]:
    return [n for n in value.replace("\n", ",").split(",") if n.strip()]


@router.post("/incidents/settings/assets")
def save_asset(
    db: Db,
    actor: Worker,
    name: Annotated[str, Form(max_length=200)],
    kind: Annotated[str, Form(max_length=32)] = "host",
    owner: Annotated[str, Form(max_length=200)] = "",
    criticality: Annotated[int, Form(ge=1, le=4)] = 2,
    critical_infrastructure: Annotated[str, Form(max_length=4)] = "",
    names: Annotated[str, Form(max_length=30_000)] = "",
    description: Annotated[str, Form(max_length=10_000)] = "",
    asset_id: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    """Add an asset, or change one (``asset_id``)."""
    try:
        asset_service.save_asset(
            session=db,
            organisation_id=actor.organisation_id,
            actor_id=actor.user.id,
            name=name,
            kind=kind,
            owner=owner,
            criticality=criticality,
            critical_infrastructure=bool(critical_infrastructure),
            names=_names(names),
            description=description,
            asset_id=int(asset_id) if asset_id.isdigit() and int(asset_id) < 2**31 else None,
        )
    except NotFound:
        raise HTTPException(404, _l("Not found")) from None
    except IncidentError as exc:
        raise HTTPException(400, exc.message) from None
    db.commit()
    return _done("assets")


@router.get("/incidents/settings/assets/{asset_id}")
def asset_page(request: Request, db: Db, actor: Worker, asset_id: RecordId) -> Response:
    found = [
        a
        for a in asset_service.list_assets(session=db, organisation_id=actor.organisation_id)
        if a.id == asset_id
    ]
    if not found:
        raise HTTPException(404, _l("Not found"))
    return render(
        request, "incident_asset.html", {"asset": found[0], "asset_kinds": asset_service.KINDS}
    )
