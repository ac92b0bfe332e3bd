"""Who the caller is."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from qorgan.core.models import Role
from qorgan.core.roles import ROLE_PERMISSIONS
from qorgan.web.deps import Actor, Db, authenticate

router = APIRouter(tags=["account"])


class Me(BaseModel):
    id: int
    organisation_id: int
    display_name: str
    role: Role
    language: str
    permissions: list[str] = Field(description="What the caller may do (token scopes applied).")


async def _signed_in(request: Request, db: Db) -> Actor:
    actor = await authenticate(request, db)
    if actor is None:
        raise HTTPException(
            401, "sign in or send an API token", headers={"WWW-Authenticate": "Bearer"}
        )
    return actor


@router.get("/me", summary="The caller's account and permissions")
def me(actor: Annotated[Actor, Depends(_signed_in)]) -> Me:
    user = actor.user
    return Me(
        id=user.id,
        organisation_id=user.organisation_id,
        display_name=user.display_name,
        role=user.role,
        language=user.language,
        permissions=sorted(str(p) for p in ROLE_PERMISSIONS[user.role] if actor.can(p)),
    )
