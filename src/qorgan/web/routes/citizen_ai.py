"""The citizen portal's "AI and your data": which AI models may process a citizen's data, and
their objection to it (Law on Artificial Intelligence, 2026: people may learn that AI
processed their data and object).

The portal knows a citizen by the pseudonym of their IIN (the keyed hash the privacy service
keeps, never the IIN itself) and by their account's e-mail address; an objection excludes both,
and any other identifier they add (a phone number, a user name at an organisation), from every
organisation's models from then on (:func:`qorgan.incidents.findings.exclude`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from qorgan.core.models import Organisation
from qorgan.incidents import findings as service
from qorgan.incidents.finding_models import AnomalyExclusion, ModelRecord
from qorgan.web.deps import Db, state
from qorgan.web.routes.citizen import Me
from qorgan.web.templating import render

router = APIRouter(include_in_schema=False)
#: The request reference of an objection made in the portal.
PORTAL_REF = "citizen portal"


def _objected(db: Db, me: Me) -> bool:
    return (
        db.scalar(
            select(AnomalyExclusion.id).where(
                AnomalyExclusion.organisation_id.is_(None),
                AnomalyExclusion.identifier_hash == me.subject.iin_hash,
            )
        )
        is not None
    )


def _page(request: Request, db: Db, me: Me, status: int = 200, **extra: object) -> Response:
    models = db.execute(
        select(ModelRecord, Organisation.name)
        .join(Organisation, Organisation.id == ModelRecord.organisation_id)
        .where(ModelRecord.approved_at.is_not(None))
        .order_by(Organisation.name, ModelRecord.name, ModelRecord.version)
    ).all()
    return render(
        request,
        "citizen_ai.html",
        {"models": models, "objected": _objected(db, me), **extra},
        status_code=status,
    )


@router.get("/citizen/ai")
def ai_page(request: Request, db: Db, me: Me) -> Response:
    return _page(request, db, me)


@router.post("/citizen/ai/object")
def object_to_ai(
    request: Request,
    db: Db,
    me: Me,
    other: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """The citizen objects: their IIN's pseudonym, their e-mail address and the identifiers
    they add (one per line) are excluded from every organisation's models."""
    extra = [line for line in other.splitlines() if line.strip()][:20]
    try:
        service.exclude(
            db,
            organisation_id=None,
            identifiers=[me.actor.user.email, *extra],
            digests=[me.subject.iin_hash],
            key=service.exclusion_key(state(request).settings),
            actor=me.actor.user.id,
            request_ref=PORTAL_REF,
            origin="citizen",
        )
    except service.FindingError as exc:
        db.rollback()
        return _page(request, db, me, status=400, error=exc.message)
    db.commit()
    return RedirectResponse("/citizen/ai?objected=1", status_code=303)
