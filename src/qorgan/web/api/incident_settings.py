"""An organisation's incident settings over the API: deadlines per KZ-CERT class, task
templates, and the register of assets and information systems."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from qorgan.core.roles import Permission
from qorgan.detection.classification import load_taxonomy
from qorgan.incidents import assets as asset_service
from qorgan.incidents import clocks, tasks
from qorgan.incidents.lifecycle import IncidentError, NotFound
from qorgan.incidents.schemas import CleanText
from qorgan.incidents.task_templates import TemplateError
from qorgan.web.deps import Actor, Db, RecordId, api_actor
from qorgan.web.i18n import _l

router = APIRouter(tags=["incident settings"])
Reader = Annotated[Actor, Depends(api_actor(Permission.incidents_read))]
Configurer = Annotated[Actor, Depends(api_actor(Permission.incidents_configure))]
Worker = Annotated[Actor, Depends(api_actor(Permission.incidents_write))]


class DeadlineOut(BaseModel):
    kz_cert_class: str = Field(description="A KZ-CERT class id, or * for the default.")
    measure: Literal["acknowledge", "contain", "close"]
    amount: int
    unit: Literal["hours", "working_hours", "working_days"]


class DeadlineIn(BaseModel):
    kz_cert_class: Annotated[str, Field(max_length=64)] = "*"
    measure: Literal["acknowledge", "contain", "close"]
    amount: Annotated[int, Field(ge=1, le=10_000)] | None = Field(
        description="null removes the deadline (the default applies again)."
    )
    unit: Literal["hours", "working_hours", "working_days"] = "working_hours"


@router.get("/incident-deadlines", response_model=list[DeadlineOut])
def list_deadlines(db: Db, actor: Reader) -> list[DeadlineOut]:
    """The deadlines the organisation has set (classes without one use ``*``, then the
    built-in defaults: 4 working hours, 2 and 10 working days)."""
    return [
        DeadlineOut(kz_cert_class=d.kz_cert_class, measure=d.measure, amount=d.amount, unit=d.unit)  # type: ignore[arg-type]
        for d in clocks.all_deadlines(session=db, organisation_id=actor.organisation_id)
    ]


@router.put("/incident-deadlines", response_model=list[DeadlineOut])
def set_deadline(db: Db, actor: Configurer, body: DeadlineIn) -> list[DeadlineOut]:
    if body.kz_cert_class != clocks.ANY_CLASS and body.kz_cert_class not in load_taxonomy().kz_cert:
        raise HTTPException(400, f"unknown KZ-CERT class {body.kz_cert_class!r}")
    try:
        clocks.set_deadline(
            session=db,
            organisation_id=actor.organisation_id,
            actor_id=actor.user.id,
            kz_cert_class=body.kz_cert_class,
            measure=body.measure,
            amount=body.amount,
            unit=body.unit,
        )
    except IncidentError as exc:
        raise HTTPException(400, exc.message) from None
    db.commit()
    return list_deadlines(db, actor)


@router.get("/task-templates", response_model=dict[str, dict[str, Any]])
def list_templates(db: Db, actor: Reader) -> dict[str, dict[str, Any]]:
    """The organisation's task templates by id (its own versions over the built-in ones)."""
    found = tasks.templates(session=db, organisation_id=actor.organisation_id)
    return {tid: t.to_data() for tid, t in found.items()}


@router.put("/task-templates/{template_id}", response_model=dict[str, Any])
def save_template(
    db: Db,
    actor: Configurer,
    template_id: Annotated[str, Field(max_length=64)],
    body: dict[str, Any],
) -> dict[str, Any]:
    """Save the organisation's version of a template: name, classes and tasks as in GET."""
    try:
        saved = tasks.save_template(
            session=db,
            organisation_id=actor.organisation_id,
            actor_id=actor.user.id,
            template_id=template_id,
            data=body,
            known_classes=list(load_taxonomy().kz_cert),
        )
    except (TemplateError, IncidentError) as exc:
        raise HTTPException(400, exc.message) from None
    db.commit()
    return saved.to_data()


class AssetIn(BaseModel):
    name: Annotated[CleanText, Field(min_length=1, max_length=200)]
    kind: Literal["host", "information-system", "network", "application", "database", "other"] = (
        "host"
    )
    owner: Annotated[CleanText, Field(max_length=200)] = ""
    criticality: Annotated[int, Field(ge=1, le=4)] = 2
    critical_infrastructure: bool = False
    names: list[Annotated[CleanText, Field(max_length=255)]] = Field(
        default_factory=list, max_length=100
    )
    description: Annotated[CleanText, Field(max_length=10_000)] = ""


class AssetOut(AssetIn):
    id: int


def _asset_out(asset: Any) -> AssetOut:
    return AssetOut(
        id=asset.id,
        name=asset.name,
        kind=asset.kind,
        owner=asset.owner,
        criticality=asset.criticality,
        critical_infrastructure=asset.critical_infrastructure,
        names=list(asset.names or []),
        description=asset.description,
    )


@router.get("/assets", response_model=list[AssetOut])
def list_assets(db: Db, actor: Reader) -> list[AssetOut]:
    return [
        _asset_out(a)
        for a in asset_service.list_assets(session=db, organisation_id=actor.organisation_id)
    ]


def _save(db: Db, actor: Actor, body: AssetIn, asset_id: int | None) -> AssetOut:
    try:
        asset = asset_service.save_asset(
            session=db,
            organisation_id=actor.organisation_id,
            actor_id=actor.user.id,
            asset_id=asset_id,
            **body.model_dump(),
        )
    except NotFound:
        raise HTTPException(404, _l("Not found")) from None
    except IncidentError as exc:
        raise HTTPException(400, exc.message) from None
    db.commit()
    return _asset_out(asset)


@router.post("/assets", response_model=AssetOut, status_code=201)
def add_asset(db: Db, actor: Worker, body: AssetIn) -> AssetOut:
    return _save(db, actor, body, None)


@router.put("/assets/{asset_id}", response_model=AssetOut)
def change_asset(db: Db, actor: Worker, asset_id: RecordId, body: AssetIn) -> AssetOut:
    return _save(db, actor, body, asset_id)
