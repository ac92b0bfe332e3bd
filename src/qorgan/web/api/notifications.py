"""The caller's notifications over the API: the list (newest first) with the unread count, and
marking them read. Only the caller's own; another user's ids are left alone."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, model_validator

from qorgan.core.roles import Permission
from qorgan.incidents import notifications
from qorgan.web.deps import Actor, Db, api_actor

router = APIRouter(prefix="/notifications", tags=["notifications"])
Reader = Annotated[Actor, Depends(api_actor(Permission.incidents_read))]
NotificationId = Annotated[int, Field(ge=1, le=2**31 - 1)]


class NotificationOut(BaseModel):
    id: int
    kind: str = Field(description="assigned, due_soon, overdue, reported or answered.")
    incident_id: int
    reference: str = Field(description="The incident's reference, INC-000123.")
    title: str = Field(description="The incident's title.")
    details: dict[str, Any] = Field(
        description="measure and due_at (deadlines), message (the coordinator's message kind)."
    )
    created_at: datetime
    read_at: datetime | None
    email: str = Field(description="E-mail: none (not wanted), pending, sent or failed.")


class NotificationList(BaseModel):
    unread: int = Field(description="The caller's unread notifications.")
    items: list[NotificationOut]


class MarkRead(BaseModel):
    ids: list[NotificationId] = Field(default_factory=list, max_length=notifications.CHUNK)
    all: bool = Field(default=False, description="Mark every notification of the caller read.")

    @model_validator(mode="after")
    def _something(self) -> MarkRead:
        if not self.ids and not self.all:
            raise ValueError("give ids, or all: true")
        return self


class Marked(BaseModel):
    marked: int
    unread: int


@router.get("", summary="The caller's notifications")
def list_notifications(
    db: Db,
    actor: Reader,
    unread: Annotated[bool, Query(description="Unread ones only.")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> NotificationList:
    items = notifications.listing(
        session=db, user_id=actor.user.id, unread_only=unread, limit=limit, offset=offset
    )
    return NotificationList(
        unread=notifications.unread_count(session=db, user_id=actor.user.id),
        items=[
            NotificationOut(
                id=item.notification.id,
                kind=item.notification.kind,
                incident_id=item.notification.incident_id,
                reference=item.reference,
                title=item.title,
                details=item.notification.details or {},
                created_at=item.notification.created_at,
                read_at=item.notification.read_at,
                email=item.notification.email_state,
            )
            for item in items
        ],
    )


@router.post("/read", summary="Mark notifications read")
def mark_read(db: Db, actor: Reader, body: MarkRead) -> Marked:
    marked = notifications.mark_read(
        session=db, user_id=actor.user.id, ids=None if body.all else body.ids
    )
    db.commit()
    return Marked(
        marked=marked, unread=notifications.unread_count(session=db, user_id=actor.user.id)
    )
