"""One alert in full: its classification, rule, event, history, related alerts and comments."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select

from qorgan.core.models import User
from qorgan.core.roles import ROLE_PERMISSIONS, Permission
from qorgan.detection.classification import load_taxonomy
from qorgan.incidents import alerts as service
from qorgan.web.api.alerts import visible
from qorgan.web.deps import Actor, Db, RecordId, page_actor
from qorgan.web.i18n import _l
from qorgan.web.templating import render

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, Depends(page_actor(Permission.alerts_read))]


def _assignees(db: Db, actor: Actor) -> list[User]:
    triage_roles = [r for r, p in ROLE_PERMISSIONS.items() if Permission.alerts_triage in p]
    return list(
        db.scalars(
            select(User)
            .where(User.organisation_id == actor.organisation_id, User.role.in_(triage_roles))
            .order_by(User.display_name)
        )
    )


@router.get("/alerts/{alert_id}")
def alert_page(request: Request, db: Db, actor: Reader, alert_id: RecordId) -> Response:
    row = service.get_alert(session=db, organisation_ids=visible(db, actor), alert_id=alert_id)
    if row is None:
        raise HTTPException(404, _l("no such alert"))
    service.record_read(
        session=db, user_id=actor.user.id, organisation_id=actor.organisation_id, alert_id=row.id
    )
    db.commit()
    return render(
        request,
        "alert.html",
        {
            "alert": row,
            "kz_cert_classes": load_taxonomy().kz_cert,
            "own": row.organisation_id == actor.organisation_id,
            "assignees": _assignees(db, actor),
        },
    )
