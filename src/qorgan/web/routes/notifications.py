"""The signed-in user's notifications: the list (newest first, with links to the incidents),
marking them read, and the choice of which kinds come by which channel (a grid on the account
page, posted here). Everything acts on the caller's own notifications only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from qorgan.core.roles import Permission
from qorgan.incidents import notifications
from qorgan.incidents.lifecycle import IncidentError
from qorgan.web.deps import Actor, Db, page_actor, state
from qorgan.web.templating import render

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, Depends(page_actor(Permission.incidents_read))]
PAGE = 50
MAX_PAGE = 10_000


def account_context(request: Request, db: Session, actor: Actor) -> dict[str, Any]:
    """What the account page's notification grid shows (for users who get notifications)."""
    if not actor.can(Permission.incidents_read):
        return {}
    return {
        "notification_kinds": notifications.KINDS,
        "notification_channels": notifications.CHANNELS,
        "notification_choices": notifications.preferences(session=db, user_id=actor.user.id),
        "email_enabled": state(request).settings.email_enabled,
    }


@router.get("/notifications")
def notifications_page(
    request: Request,
    db: Db,
    actor: Reader,
    unread: Annotated[bool, Query()] = False,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> Response:
    items = notifications.listing(
        session=db,
        user_id=actor.user.id,
        unread_only=unread,
        limit=PAGE + 1,
        offset=(page - 1) * PAGE,
    )
    return render(
        request,
        "notifications.html",
        {
            "items": items[:PAGE],
            "more": len(items) > PAGE,
            "page": page,
            "unread_only": unread,
        },
    )


@router.post("/notifications/read")
def mark_read(
    db: Db,
    actor: Reader,
    ids: Annotated[list[int], Form(max_length=notifications.CHUNK)] = [],  # noqa: B006
    everything: Annotated[bool, Form(alias="all")] = False,
    unread: Annotated[bool, Form()] = False,
) -> Response:
    """Mark the chosen notifications (or all) read; another user's ids are left alone."""
    notifications.mark_read(session=db, user_id=actor.user.id, ids=None if everything else ids)
    db.commit()
    return RedirectResponse("/notifications" + ("?unread=true" if unread else ""), 303)


@router.post("/account/notifications")
def choose_notifications(
    db: Db,
    actor: Reader,
    choices: Annotated[list[str], Form(max_length=40)] = [],  # noqa: B006
) -> Response:
    """Keep the grid's choices: each ticked box is ``kind/channel``; unticked ones are off."""
    enabled = {tuple(choice.split("/", 1)) for choice in choices if "/" in choice}
    try:
        notifications.set_preferences(
            session=db,
            user=actor.user,
            enabled=enabled,  # type: ignore[arg-type]
        )
    except IncidentError as exc:
        db.rollback()
        raise HTTPException(400, exc.message) from None
    db.commit()
    return RedirectResponse("/account?saved=notifications#notifications", 303)
