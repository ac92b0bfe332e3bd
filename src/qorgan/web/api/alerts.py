"""Alerts: ingestion (idempotent), lists, groups, a timeline, one alert, and triage."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from qorgan.core import accounts
from qorgan.core.roles import Permission
from qorgan.incidents import alerts as service
from qorgan.incidents.alerts import AlertError, AlertFilter, NotFound
from qorgan.incidents.schemas import (
    AlertDetail,
    AlertGroup,
    AlertIn,
    AlertOut,
    IngestResult,
    TimelinePoint,
)
from qorgan.web.deps import Actor, Db, RecordId, api_actor, state
from qorgan.web.filters import alert_filter
from qorgan.web.i18n import _l

router = APIRouter(prefix="/alerts", tags=["alerts"])
Reader = Annotated[Actor, Depends(api_actor(Permission.alerts_read))]
Writer = Annotated[Actor, Depends(api_actor(Permission.alerts_write))]
Triager = Annotated[Actor, Depends(api_actor(Permission.alerts_triage))]
Filters = Annotated[AlertFilter, Depends(alert_filter)]
#: Alerts per ingestion request; larger sets are sent in several requests.
MAX_BATCH = 5000


class AlertPage(BaseModel):
    items: list[AlertOut] = Field(description="The alerts of this page, newest first.")
    total: int = Field(description="How many alerts match the filters.")
    limit: int
    offset: int


class Assignment(BaseModel):
    assignee_id: int | None = Field(
        ge=1, le=2**31 - 1, description="A user of your organisation, or null."
    )


def visible(db: Db, actor: Actor) -> list[int]:
    return accounts.visible_organisations(
        session=db, organisation_id=actor.organisation_id, resource="alerts"
    )


@router.post("", status_code=200, summary="Send alerts (idempotent)")
def ingest(
    request: Request,
    db: Db,
    actor: Writer,
    alerts: Annotated[list[AlertIn], Body(max_length=MAX_BATCH)],
) -> IngestResult:
    """Store alerts in the shape of `qorgan hunt --format jsonl`. The same alert sent again
    is counted as a duplicate, not stored twice. Answered once the alerts are durable."""
    result = service.ingest(
        session=db, organisation_id=actor.organisation_id, alerts=alerts, actor=actor.id
    )
    db.commit()
    counter = request.app.state.metrics.alerts_ingested
    counter.labels("created").inc(result.created)
    counter.labels("duplicate").inc(result.duplicates)
    return result


@router.get("", summary="List alerts")
def list_alerts(
    db: Db,
    actor: Reader,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> AlertPage:
    rows, total = service.list_alerts(
        session=db, organisation_ids=visible(db, actor), filters=filters, limit=limit, offset=offset
    )
    items = [AlertOut.model_validate(row) for row in rows]
    return AlertPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/groups", summary="Count alerts by rule, host, or both")
def groups(
    db: Db,
    actor: Reader,
    filters: Filters,
    by: Literal["rule", "host", "rule_host"] = "rule",
) -> list[AlertGroup]:
    return service.group_alerts(
        session=db, organisation_ids=visible(db, actor), filters=filters, by=by
    )


@router.get("/timeline", summary="Alerts per hour or day and level")
def timeline(
    request: Request,
    db: Db,
    actor: Reader,
    filters: Filters,
    bucket: Literal["hour", "day"] = "day",
) -> list[TimelinePoint]:
    return service.timeline(
        session=db,
        organisation_ids=visible(db, actor),
        filters=filters,
        bucket=bucket,
        tz=state(request).settings.timezone,
    )


def _detail(db: Db, actor: Actor, alert_id: RecordId) -> AlertDetail:
    row = service.get_alert(session=db, organisation_ids=visible(db, actor), alert_id=alert_id)
    if row is None:
        raise HTTPException(404, _l("no such alert"))
    return AlertDetail.model_validate(row)


@router.get("/{alert_id}", summary="One alert in full (the read is audited)")
def get_alert(db: Db, actor: Reader, alert_id: RecordId) -> AlertDetail:
    detail = _detail(db, actor, alert_id)
    service.record_read(
        session=db, user_id=actor.user.id, organisation_id=actor.organisation_id, alert_id=alert_id
    )
    db.commit()
    return detail


#: Triage actions by their name in URLs; ``assign`` also takes ``assignee_id``.
TRIAGE = {
    "acknowledge": service.acknowledge,
    "false-positive": service.mark_false_positive,
    "reopen": service.reopen,
    "assign": service.assign,
}


def triage(db: Db, actor: Actor, alert_id: int, action: str, **extra: object) -> None:
    """Apply a triage action to an alert of the caller's own organisation and commit
    (shared by the API and the inbox page): 404 for any other alert, 400 when refused."""
    try:
        TRIAGE[action](
            session=db,
            organisation_id=actor.organisation_id,
            alert_id=alert_id,
            actor_id=actor.user.id,
            **extra,
        )
    except NotFound:
        raise HTTPException(404, _l("no such alert in your organisation")) from None
    except AlertError as exc:
        raise HTTPException(400, str(exc)) from None
    db.commit()


def _triage(db: Db, actor: Actor, alert_id: int, action: str, **extra: object) -> AlertDetail:
    triage(db, actor, alert_id, action, **extra)
    return _detail(db, actor, alert_id)


@router.post("/{alert_id}/acknowledge", summary="Acknowledge an alert")
def acknowledge(db: Db, actor: Triager, alert_id: RecordId) -> AlertDetail:
    return _triage(db, actor, alert_id, "acknowledge")


@router.post("/{alert_id}/false-positive", summary="Mark an alert as a false positive")
def false_positive(db: Db, actor: Triager, alert_id: RecordId) -> AlertDetail:
    return _triage(db, actor, alert_id, "false-positive")


@router.post("/{alert_id}/reopen", summary="Set an alert back to new")
def reopen(db: Db, actor: Triager, alert_id: RecordId) -> AlertDetail:
    return _triage(db, actor, alert_id, "reopen")


@router.put("/{alert_id}/assignee", summary="Assign an alert (or clear the assignee)")
def assign(db: Db, actor: Triager, alert_id: RecordId, body: Assignment) -> AlertDetail:
    return _triage(db, actor, alert_id, "assign", assignee_id=body.assignee_id)
