"""One alert's surroundings: its comments, related alerts, correlation members and history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field, WithJsonSchema

from qorgan.core import accounts
from qorgan.core.roles import Permission
from qorgan.incidents import comments as comment_service
from qorgan.incidents import history as history_service
from qorgan.incidents import related as related_service
from qorgan.incidents.models import StoredAlert
from qorgan.incidents.schemas import AlertOut
from qorgan.web.deps import Actor, Db, RecordId, api_actor
from qorgan.web.i18n import _l

router = APIRouter(prefix="/alerts", tags=["alerts"])
Reader = Annotated[Actor, Depends(api_actor(Permission.alerts_read))]
Triager = Annotated[Actor, Depends(api_actor(Permission.alerts_triage))]

#: The comment service's refusals, marked for the catalogues (the page shows them translated).
COMMENT_MESSAGES = frozenset(
    {
        _l("a comment cannot be empty"),
        _l("a comment may have at most 10,000 characters"),
        _l("a comment cannot contain NUL characters"),
        _l("a comment cannot contain unpaired surrogate characters"),
        _l("a comment must be text"),
    }
)


#: Validated by the comment service, not by pydantic: pydantic's refusal of a lone surrogate
#: echoes the input back, which the JSON response then cannot encode (a 500).
CommentText = Annotated[
    Any,
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": comment_service.MAX_COMMENT}),
]


class CommentIn(BaseModel):
    text: CommentText = Field(
        description="The comment: 1 to 10,000 characters, line breaks kept; no NUL."
    )


class CommentOut(BaseModel):
    id: int
    alert_id: int
    author_id: int | None = Field(description="The member who wrote it (null: since removed).")
    author_name: str | None
    created_at: datetime = Field(description="When it was written (UTC).")
    text: str


class RelatedGroupOut(BaseModel):
    kind: str = Field(description="host, user or address (the source address).")
    value: str
    total: int = Field(description="How many alerts share it within the window.")
    alerts: list[AlertOut] = Field(description="The nearest in time of them, oldest first.")


class RelatedOut(BaseModel):
    window_minutes: int = Field(description="How far either side of the alert's time.")
    groups: list[RelatedGroupOut]


class MemberOut(BaseModel):
    path: str | None
    record: int | None
    time: str | None
    rule_id: str | None
    alert_id: int | None = Field(description="The stored alert of this event (null: none).")
    rule_title: str | None


class HistoryOut(BaseModel):
    id: int = Field(description="The audit entry's id.")
    at: datetime
    action: str = Field(description="alert.read, alert.acknowledge, alert.comment, ...")
    actor: str = Field(description="The acting user's id (or token name, or system).")
    actor_name: str | None
    details: dict[str, Any]


def visible_alert(db: Db, actor: Actor, alert_id: int) -> StoredAlert:
    """An alert the caller may read (their organisation's, or shared with it), else 404."""
    organisations = accounts.visible_organisations(
        session=db, organisation_id=actor.organisation_id, resource="alerts"
    )
    alert = db.get(StoredAlert, alert_id)
    if alert is None or alert.organisation_id not in organisations:
        raise HTTPException(404, _l("no such alert"))
    return alert


def _comment_out(comment: comment_service.Comment) -> CommentOut:
    return CommentOut(
        id=comment.id,
        alert_id=comment.alert_id,
        author_id=comment.author_id,
        author_name=comment.author_name,
        created_at=comment.created_at,
        text=comment.text,
    )


def add_comment(db: Db, actor: Actor, alert_id: int, text: str) -> comment_service.Comment:
    """Add a comment as ``actor`` and commit (shared by the API and the page): 404 for an
    alert not of the caller's organisation, 422 for a refused text."""
    try:
        comment = comment_service.add_comment(
            session=db,
            organisation_id=actor.organisation_id,
            alert_id=alert_id,
            author_id=actor.user.id,
            text=text,
        )
    except comment_service.AlertNotFound:
        raise HTTPException(404, _l("no such alert in your organisation")) from None
    except comment_service.CommentError as exc:
        raise HTTPException(422, exc.message) from None
    db.commit()
    return comment


@router.get("/{alert_id}/comments", summary="An alert's comments, oldest first")
def list_comments(db: Db, actor: Reader, alert_id: RecordId) -> list[CommentOut]:
    alert = visible_alert(db, actor, alert_id)
    found = comment_service.list_comments(
        session=db, organisation_ids=[alert.organisation_id], alert_id=alert.id
    )
    return [_comment_out(c) for c in found]


@router.post(
    "/{alert_id}/comments",
    status_code=201,
    summary="Comment on an alert of your organisation (audited)",
)
def post_comment(db: Db, actor: Triager, alert_id: RecordId, body: CommentIn) -> CommentOut:
    return _comment_out(add_comment(db, actor, alert_id, body.text))


@router.get(
    "/{alert_id}/related",
    summary="Alerts with the same host, user or source address within an hour",
)
def related(db: Db, actor: Reader, alert_id: RecordId) -> RelatedOut:
    alert = visible_alert(db, actor, alert_id)
    groups = related_service.related_alerts(session=db, alert=alert)
    return RelatedOut(
        window_minutes=int(related_service.WINDOW.total_seconds() // 60),
        groups=[
            RelatedGroupOut(
                kind=g.kind,
                value=g.value,
                total=g.total,
                alerts=[AlertOut.model_validate(a) for a in g.alerts],
            )
            for g in groups
        ],
    )


@router.get(
    "/{alert_id}/correlation-members",
    summary="A correlation alert's events, with the stored alerts they raised",
)
def correlation_members(db: Db, actor: Reader, alert_id: RecordId) -> list[MemberOut]:
    alert = visible_alert(db, actor, alert_id)
    return [
        MemberOut(
            path=m.path,
            record=m.record,
            time=m.time,
            rule_id=m.rule_id,
            alert_id=m.alert_id,
            rule_title=m.rule_title,
        )
        for m in related_service.correlation_members(session=db, alert=alert)
    ]


@router.get("/{alert_id}/history", summary="An alert's audit entries, newest first")
def history(db: Db, actor: Reader, alert_id: RecordId) -> list[HistoryOut]:
    alert = visible_alert(db, actor, alert_id)
    entries, _names = history_service.alert_history(
        session=db, alert=alert, reader_organisation_id=actor.organisation_id
    )
    return [
        HistoryOut(
            id=e.id,
            at=e.at,
            action=e.action,
            actor=e.actor,
            actor_name=e.actor_name,
            details=e.details,
        )
        for e in entries
    ]
