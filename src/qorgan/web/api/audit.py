"""The audit trail: an organisation's entries, and verification of the whole chain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from qorgan.core import audit
from qorgan.core.models import AuditEntry
from qorgan.core.roles import Permission
from qorgan.web.deps import Actor, Db, api_actor

router = APIRouter(prefix="/audit", tags=["audit"])
Auditor = Annotated[Actor, Depends(api_actor(Permission.audit_read))]


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str = Field(description="A user id, 'anonymous' or 'system'.")
    action: str
    target_type: str | None
    target_id: str | None
    details: dict[str, Any]
    hash: str = Field(description="SHA-256 over this entry and the previous entry's hash.")


class Verification(BaseModel):
    intact: bool
    problems: list[str] = Field(description="What is wrong, entry by entry (empty when intact).")


def entries(db: Db, organisation_id: int, limit: int, before: int | None) -> list[AuditEntry]:
    """An organisation's entries, newest first."""
    query = select(AuditEntry).where(AuditEntry.organisation_id == organisation_id)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    return list(db.scalars(query.order_by(AuditEntry.id.desc()).limit(limit)))


@router.get("", summary="Your organisation's audit entries, newest first")
def list_entries(
    db: Db,
    actor: Auditor,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=2**62, description="Entries before this id.")
    ] = None,
) -> list[AuditEntryOut]:
    return [
        AuditEntryOut.model_validate(e) for e in entries(db, actor.organisation_id, limit, before)
    ]


@router.get("/verify", summary="Check the whole hash chain")
def verify(db: Db, actor: Auditor) -> Verification:
    problems = audit.verify(session=db)
    return Verification(intact=not problems, problems=[str(p) for p in problems[:100]])
