"""The audit trail page: the organisation's entries, and a check of the whole chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from qorgan.core import audit
from qorgan.core.models import User
from qorgan.core.roles import Permission
from qorgan.web.api.audit import entries
from qorgan.web.deps import Actor, Db, page_actor
from qorgan.web.templating import render

router = APIRouter(include_in_schema=False)
Auditor = Annotated[Actor, Depends(page_actor(Permission.audit_read))]
PAGE = 100


@router.get("/audit")
def audit_page(
    request: Request,
    db: Db,
    actor: Auditor,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    verify: bool = False,
) -> Response:
    rows = entries(db, actor.organisation_id, PAGE, before)
    # Entries name users by id; the page shows the names of the organisation's own users.
    members = db.execute(
        select(User.id, User.display_name).where(User.organisation_id == actor.organisation_id)
    )
    actors = {str(user_id): name for user_id, name in members}
    problems = [str(p) for p in audit.verify(session=db)] if verify else None
    return render(
        request,
        "audit.html",
        {
            "entries": rows,
            "actors": actors,
            "problems": problems,
            "older": rows[-1].id if len(rows) == PAGE else None,
        },
    )
