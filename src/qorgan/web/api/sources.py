"""Live log sources over the API: the registry, each source's figures and recent rate, and its
HTTP ingest token.

Reading needs ``sources:read`` and covers the caller's organisation and those that share their
alerts with it (whether a partner's alerts can be trusted depends on its sources being live);
registering, changing and rotating a token need ``sources:configure`` and touch only the
caller's own organisation's sources (another's id is not found). A token is returned once, when
made; only its digest is kept.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError

from qorgan.core import accounts
from qorgan.core.db import utcnow
from qorgan.core.roles import Permission
from qorgan.incidents.schemas import CleanText
from qorgan.pipeline import source_health, source_stats
from qorgan.pipeline import sources as service
from qorgan.pipeline.models import LogSource, Overflow, Transport
from qorgan.pipeline.source_health import Health, State
from qorgan.pipeline.sources import SourceError
from qorgan.web.deps import Actor, Db, RecordId, api_actor
from qorgan.web.i18n import _l

router = APIRouter(prefix="/sources", tags=["sources"])
Reader = Annotated[Actor, Depends(api_actor(Permission.sources_read))]
Configurer = Annotated[Actor, Depends(api_actor(Permission.sources_configure))]
#: The rate buckets' width in seconds, and how far back they are kept.
BUCKET_SECONDS = source_stats.BUCKET
MAX_MINUTES = int(source_stats.RATES_KEPT / timedelta(minutes=1))

Sender = Annotated[str, Field(min_length=1, max_length=64)]


class SourceOut(BaseModel):
    id: int
    organisation_id: int
    name: str
    transport: Transport
    format: str
    timezone: str = Field(description="For messages that give local times without a zone.")
    senders: list[str] = Field(description="Addresses or networks it sends from; empty: any.")
    certificate_cn: str | None = Field(description="The TLS client certificate's common name.")
    has_token: bool = Field(description="Whether an HTTP token is set (the token is never shown).")
    expected_interval: int = Field(description="Seconds without an event before it is silent.")
    overflow: Overflow
    enabled: bool
    created_at: datetime
    state: State
    last_event_at: datetime | None
    analysed_through: datetime | None = Field(
        description="The receipt time of the newest message detection has analysed."
    )
    lag_seconds: float | None = Field(
        description="How far detection is behind what was received (last event - analysed)."
    )
    events_per_second: float = Field(description="Over the last minute.")
    events: int
    received_bytes: int
    malformed: int
    parse_failures: int
    dropped: int
    silent_since: datetime | None = Field(description="When the silence alert was raised.")

    @classmethod
    def of(cls, source: LogSource, health: Health) -> SourceOut:
        return cls(
            id=source.id,
            organisation_id=source.organisation_id,
            name=source.name,
            transport=Transport(source.transport),
            format=source.format,
            timezone=source.timezone,
            senders=list(source.senders),
            certificate_cn=source.certificate_cn,
            has_token=source.token_hash is not None,
            expected_interval=source.expected_interval,
            overflow=Overflow(source.overflow),
            enabled=source.enabled,
            created_at=source.created_at,
            state=health.state,
            last_event_at=source.last_event_at,
            analysed_through=source.analysed_through,
            lag_seconds=health.lag_seconds,
            events_per_second=round(health.events_per_second, 3),
            events=source.events,
            received_bytes=source.received_bytes,
            malformed=source.malformed,
            parse_failures=source.parse_failures,
            dropped=source.dropped,
            silent_since=source.silent_since,
        )


class SourceIn(BaseModel):
    name: Annotated[CleanText, Field(min_length=1, max_length=service.NAME_MAX)]
    transport: Transport
    format: Annotated[str, Field(max_length=32)] = Field(
        description=f"One of {', '.join(service.LIVE_FORMATS)}."
    )
    timezone: Annotated[str, Field(max_length=64)] = "Asia/Almaty"
    senders: list[Sender] = Field(default_factory=list, max_length=100)
    certificate_cn: Annotated[CleanText, Field(max_length=255)] | None = None
    expected_interval: Annotated[int, Field(ge=10, le=30 * 86400)] = 900
    overflow: Overflow = Overflow.wait


class SourceChange(BaseModel):
    """What to change; fields left out stay as they are."""

    format: Annotated[str, Field(max_length=32)] | None = None
    timezone: Annotated[str, Field(max_length=64)] | None = None
    senders: list[Sender] | None = Field(default=None, max_length=100)
    certificate_cn: Annotated[CleanText, Field(max_length=255)] | None = None
    expected_interval: Annotated[int, Field(ge=10, le=30 * 86400)] | None = None
    overflow: Overflow | None = None
    enabled: bool | None = None


class SourceCreated(SourceOut):
    token: str | None = Field(
        description="An HTTP source's ingest token: shown this once, only its digest is kept."
    )


class TokenOut(BaseModel):
    token: str = Field(description="The new token: shown this once; the old one stops at once.")


class RatePoint(BaseModel):
    at: datetime = Field(description="The start of the ten-second bucket (UTC).")
    events: int
    dropped: int
    failures: int


class RatesOut(BaseModel):
    source_id: int
    bucket_seconds: int
    points: list[RatePoint] = Field(description="Buckets with anything in them, oldest first.")


def visible(db: Db, actor: Actor) -> list[int]:
    """Organisations whose sources the caller may read: its own, and those sharing alerts."""
    return accounts.visible_organisations(
        session=db, organisation_id=actor.organisation_id, resource="alerts"
    )


def described(db: Db, sources: list[LogSource]) -> list[SourceOut]:
    found = source_health.overview(session=db, sources=sources, now=utcnow())
    return [SourceOut.of(source, health) for source, health in found.rows]


def one(db: Db, organisation_ids: list[int], source_id: int) -> LogSource:
    source = service.get_source(session=db, organisation_ids=organisation_ids, source_id=source_id)
    if source is None:
        raise HTTPException(404, _l("no such source"))
    return source


def commit(db: Db, name: str) -> None:
    """Commit; two registrations of one name at once: the second is refused, not a 500."""
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise SourceError(f"the organisation already has a source named {name!r}") from None


@router.get("", summary="The log sources, those needing attention first")
def list_sources(db: Db, actor: Reader) -> list[SourceOut]:
    return described(db, service.list_sources(session=db, organisation_ids=visible(db, actor)))


@router.post("", status_code=201, summary="Register a log source")
def create_source(db: Db, actor: Configurer, body: SourceIn) -> SourceCreated:
    """Registered in the caller's organisation; an HTTP source's token is in the answer only."""
    try:
        source, token = service.create_source(
            session=db,
            organisation_id=actor.organisation_id,
            actor=actor.id,
            created_by=actor.user.id,
            **body.model_dump(),
        )
        commit(db, body.name.strip())
    except SourceError as exc:
        raise HTTPException(400, exc.message) from None
    return SourceCreated(**described(db, [source])[0].model_dump(), token=token)


@router.get("/{source_id}", summary="One log source and its figures")
def get_source(db: Db, actor: Reader, source_id: RecordId) -> SourceOut:
    return described(db, [one(db, visible(db, actor), source_id)])[0]


@router.patch("/{source_id}", summary="Change a log source")
def edit_source(db: Db, actor: Configurer, source_id: RecordId, body: SourceChange) -> SourceOut:
    source = one(db, [actor.organisation_id], source_id)
    changes = body.model_dump(exclude_unset=True)
    if None in (changes.get(k, "") for k in ("format", "timezone", "senders", "enabled")):
        raise HTTPException(422, "format, timezone, senders and enabled cannot be null")
    for key in ("expected_interval", "overflow"):
        if key in changes and changes[key] is None:
            raise HTTPException(422, f"{key} cannot be null")
    try:
        service.edit_source(session=db, source=source, actor=actor.id, **changes)
        db.commit()
    except SourceError as exc:
        db.rollback()
        raise HTTPException(400, exc.message) from None
    return described(db, [source])[0]


@router.post("/{source_id}/token", summary="Replace an HTTP source's token")
def rotate_token(db: Db, actor: Configurer, source_id: RecordId) -> TokenOut:
    """A new token, in this answer only; the previous one stops working at once (a running
    collector learns it within seconds)."""
    source = one(db, [actor.organisation_id], source_id)
    try:
        token = service.rotate_token(session=db, source=source, actor=actor.id)
    except SourceError as exc:
        raise HTTPException(400, exc.message) from None
    db.commit()
    return TokenOut(token=token)


@router.get("/{source_id}/rates", summary="A source's events per ten seconds")
def rates(
    db: Db,
    actor: Reader,
    source_id: RecordId,
    minutes: Annotated[int, Query(ge=1, le=MAX_MINUTES)] = 15,
) -> RatesOut:
    source = one(db, visible(db, actor), source_id)
    since = utcnow() - timedelta(minutes=minutes)
    found = source_stats.rates(session=db, source_ids=[source.id], since=since)[source.id]
    return RatesOut(
        source_id=source.id,
        bucket_seconds=BUCKET_SECONDS,
        points=[
            RatePoint(at=r.at, events=r.events, dropped=r.dropped, failures=r.failures)
            for r in found
        ],
    )
