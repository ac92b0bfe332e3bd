"""Alerts: ingestion (idempotent), lists, searches, groups, a timeline, exports, one alert,
and triage (one alert, or in bulk)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from qorgan.core import accounts, audit
from qorgan.core.roles import Permission
from qorgan.incidents import alerts as service
from qorgan.incidents import inbox
from qorgan.incidents import triage as triage_service
from qorgan.incidents.alerts import AlertError, NotFound
from qorgan.incidents.inbox import AlertFilter, Grouping, Sort
from qorgan.incidents.models import StoredAlert
from qorgan.incidents.schemas import (
    AlertDetail,
    AlertIn,
    AlertOut,
    BulkTriageIn,
    BulkTriageOut,
    GroupPage,
    IngestResult,
    Timeline,
    TriageOut,
)
from qorgan.web.deps import Actor, Db, RecordId, api_actor, state
from qorgan.web.filters import alert_filter
from qorgan.web.i18n import _l

router = APIRouter(prefix="/alerts", tags=["alerts"])
Reader = Annotated[Actor, Depends(api_actor(Permission.alerts_read))]
Writer = Annotated[Actor, Depends(api_actor(Permission.alerts_write))]
Triager = Annotated[Actor, Depends(api_actor(Permission.alerts_triage))]
Filters = Annotated[AlertFilter, Depends(alert_filter)]
SortParam = Annotated[
    Sort,
    Query(
        description=(
            "-time: newest event first (default); time: oldest first; -received / received: "
            "by the time the console received them; -level / level: by level, then newest."
        )
    ),
]
#: Alerts per ingestion request; larger sets are sent in several requests.
MAX_BATCH = 5000
#: Alerts one export holds at most.
MAX_EXPORT = 1_000_000


class AlertPage(BaseModel):
    items: list[AlertOut] = Field(description="The alerts of this page, in the order asked.")
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


#: The ingestion body: a JSON list of alerts. It is read and validated only after the caller
#: is known (FastAPI would parse a declared body first), and never over the route's size limit.
ALERT_BATCH: TypeAdapter[list[AlertIn]] = TypeAdapter(
    Annotated[list[AlertIn], Field(max_length=MAX_BATCH)]
)


def alert_batch_schema() -> dict[str, Any]:
    """The ingestion body's JSON schema, its definitions referenced from the OpenAPI
    components (see ``web.app``)."""
    return ALERT_BATCH.json_schema(ref_template="#/components/schemas/{model}")


def _parse_batch(raw: bytes) -> list[AlertIn]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": f"not JSON: {exc}"}]
        ) from None
    try:
        return ALERT_BATCH.validate_python(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


@router.post(
    "",
    status_code=200,
    summary="Send alerts (idempotent)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/AlertBatch"}}
            },
        }
    },
)
async def ingest(request: Request, db: Db, actor: Writer) -> IngestResult:
    """Store alerts in the shape of `qorgan hunt --format jsonl`: a JSON list of at most
    5,000. The same alert sent again is counted as a duplicate, not stored twice. Answered once
    the alerts are durable."""
    alerts = _parse_batch(await request.body())
    result = await run_in_threadpool(_store, db, actor, alerts)
    counter = request.app.state.metrics.alerts_ingested
    counter.labels("created").inc(result.created)
    counter.labels("duplicate").inc(result.duplicates)
    return result


def _store(db: Db, actor: Actor, alerts: list[AlertIn]) -> IngestResult:
    result = service.ingest(
        session=db, organisation_id=actor.organisation_id, alerts=alerts, actor=actor.id
    )
    db.commit()
    return result


@router.get("", summary="List and search alerts")
def list_alerts(
    db: Db,
    actor: Reader,
    filters: Filters,
    sort: SortParam = Sort.newest,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> AlertPage:
    rows, total = inbox.list_alerts(
        session=db,
        organisation_ids=visible(db, actor),
        filters=filters,
        sort=sort,
        limit=limit,
        offset=offset,
    )
    items = [AlertOut.model_validate(row) for row in rows]
    return AlertPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/groups", summary="Count alerts by rule, host, both, user or address")
def groups(
    db: Db,
    actor: Reader,
    filters: Filters,
    by: Grouping = "rule",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> GroupPage:
    """Groups most severe first, then largest; `total` says how many groups there are."""
    items, total = inbox.group_alerts(
        session=db,
        organisation_ids=visible(db, actor),
        filters=filters,
        by=by,
        limit=limit,
        offset=offset,
    )
    return GroupPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/timeline", summary="Alerts per hour or day and level")
def timeline(
    request: Request,
    db: Db,
    actor: Reader,
    filters: Filters,
    bucket: Literal["auto", "hour", "day"] = "auto",
) -> Timeline:
    """`auto` takes hours for up to three days of alerts, days beyond."""
    points, used = inbox.timeline(
        session=db,
        organisation_ids=visible(db, actor),
        filters=filters,
        bucket=bucket,
        tz=state(request).settings.timezone,
    )
    return Timeline(bucket=used, points=points)  # type: ignore[arg-type]


EXPORT_COLUMNS = (
    "id", "time", "received_at", "level", "status", "rule_id", "rule_title", "host", "user",
    "source_ip", "destination_ip", "kz_cert_class", "assignee_id", "source_path",
    "source_record",
)  # fmt: skip


#: First characters that make a spreadsheet read a cell as a formula (CSV injection).
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    """A CSV cell that a spreadsheet shows as text: log content may hold ``=cmd|...``."""
    if isinstance(value, str) and value.startswith(FORMULA):
        return "'" + value
    return value


def _csv_rows(alerts: Iterator[StoredAlert]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    for n, a in enumerate(alerts, 1):
        source = a.body.get("source") or {}
        writer.writerow(
            _cell(v) for v in (
                a.id, a.time.isoformat() if a.time else "", a.received_at.isoformat(),
                a.level, a.status, a.rule_id, a.rule_title, a.host or "", a.user_name or "",
                a.source_ip or "", a.destination_ip or "", a.kz_cert_class or "",
                a.assignee_id or "", source.get("path", ""), source.get("record", ""),
            )
        )  # fmt: skip
        if n % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _jsonl_rows(alerts: Iterator[StoredAlert]) -> Iterator[bytes]:
    for a in alerts:
        yield (
            orjson.dumps(
                {
                    "id": a.id,
                    "status": a.status,
                    "assignee_id": a.assignee_id,
                    "received_at": a.received_at,
                    **a.body,
                }
            )
            + b"\n"
        )


@router.get("/export", summary="Export the alerts matching the filters (CSV or JSON lines)")
def export(
    request: Request,
    actor: Reader,
    filters: Filters,
    format: Literal["csv", "jsonl"] = "jsonl",
    sort: SortParam = Sort.newest,
) -> StreamingResponse:
    """Every alert matching the filters, streamed: CSV (one row per alert, no event) or JSON
    lines (the whole alert as documented in docs/alerts.md, with its id, status and assignee).
    The export is recorded in the audit trail, with the filters and the count."""
    factory = state(request).factory
    with factory() as db:
        organisations = visible(db, actor)
        total = inbox.count(session=db, organisation_ids=organisations, filters=filters)
        if total > MAX_EXPORT:
            raise HTTPException(
                422, f"{total:,} alerts match; narrow the filters to at most {MAX_EXPORT:,}"
            )
        audit.record(
            "alerts.export",
            session=db,
            actor=actor.id,
            organisation_id=actor.organisation_id,
            details={"format": format, "alerts": total, "query": str(request.url.query)[:1000]},
        )
        db.commit()

    def rows() -> Iterator[str | bytes]:
        # Its own session: the request's is closed once the response starts streaming.
        with factory() as session:
            alerts = inbox.iterate(
                session=session, organisation_ids=organisations, filters=filters, sort=sort
            )
            yield from _csv_rows(alerts) if format == "csv" else _jsonl_rows(alerts)

    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    name = f"qorgan-alerts.{format}"
    return StreamingResponse(
        rows(), media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.post("/triage", summary="Triage many alerts at once")
def bulk(db: Db, actor: Triager, filters: Filters, body: BulkTriageIn) -> BulkTriageOut:
    """Acknowledge, mark false positive, reopen or assign the alerts named in `ids`, or (with
    `all_matching`) every alert of your organisation matching the query's filters. One audit
    entry per alert changed."""
    if (body.ids is None) == (not body.all_matching):
        raise HTTPException(422, "name the alerts in ids, or set all_matching (not both)")
    try:
        result = triage_service.bulk_triage(
            session=db,
            organisation_id=actor.organisation_id,
            actor_id=actor.user.id,
            action=body.action,
            alert_ids=body.ids,
            filters=filters,
            assignee_id=body.assignee_id,
        )
    except AlertError as exc:
        raise HTTPException(400, exc.message) from None
    db.commit()
    return BulkTriageOut(matched=result.matched, changed=result.changed)


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


def triage(db: Db, actor: Actor, alert_id: int, action: str, **extra: object) -> TriageOut:
    """Apply a triage action to an alert of the caller's own organisation and commit
    (shared by the API and the inbox page): 404 for any other alert, 400 when refused."""
    try:
        result = triage_service.triage(
            session=db,
            organisation_id=actor.organisation_id,
            alert_id=alert_id,
            actor_id=actor.user.id,
            action=action,
            **extra,  # type: ignore[arg-type]
        )
    except NotFound:
        raise HTTPException(404, _l("no such alert in your organisation")) from None
    except AlertError as exc:
        raise HTTPException(400, str(exc)) from None
    db.commit()
    return TriageOut(
        id=result.id, status=result.status, assignee_id=result.assignee_id, changed=result.changed
    )


@router.post("/{alert_id}/acknowledge", summary="Acknowledge an alert")
def acknowledge(db: Db, actor: Triager, alert_id: RecordId) -> TriageOut:
    return triage(db, actor, alert_id, "acknowledge")


@router.post("/{alert_id}/false-positive", summary="Mark an alert as a false positive")
def false_positive(db: Db, actor: Triager, alert_id: RecordId) -> TriageOut:
    return triage(db, actor, alert_id, "false-positive")


@router.post("/{alert_id}/reopen", summary="Set an alert back to new")
def reopen(db: Db, actor: Triager, alert_id: RecordId) -> TriageOut:
    return triage(db, actor, alert_id, "reopen")


@router.put("/{alert_id}/assignee", summary="Assign an alert (or clear the assignee)")
def assign(db: Db, actor: Triager, alert_id: RecordId, body: Assignment) -> TriageOut:
    return triage(db, actor, alert_id, "assign", assignee_id=body.assignee_id)
