"""Hunts: run the console's rules over server-side log files in the background."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from qorgan.core import accounts
from qorgan.core.roles import Permission
from qorgan.pipeline import hunts as service
from qorgan.pipeline.hunts import HuntError
from qorgan.pipeline.models import Hunt, HuntSource, HuntStatus
from qorgan.web.deps import Actor, Db, RecordId, api_actor, state
from qorgan.web.files import list_server_files, organisation_folder, resolve_server_paths
from qorgan.web.i18n import _l

router = APIRouter(prefix="/hunts", tags=["hunts"])
Reader = Annotated[Actor, Depends(api_actor(Permission.hunts_read))]
Runner = Annotated[Actor, Depends(api_actor(Permission.hunts_run))]


class HuntOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    organisation_id: int
    status: HuntStatus
    source: HuntSource
    files: list[str] = Field(description="The names of the files or folders hunted.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    total_bytes: int
    done_bytes: int
    events: int
    alerts_found: int
    alerts_new: int = Field(description="Alerts not already in the store.")
    quarantined: int = Field(description="Records that could not be read, with reasons kept.")
    anomaly: bool = Field(description="Whether the organisation's approved AI models ran too.")
    findings: int = Field(description="Findings the AI models proposed (pending a decision).")
    error: str | None

    @classmethod
    def of(cls, hunt: Hunt) -> HuntOut:
        files = [
            Path(p).name.split("-", 1)[-1] if hunt.source == "upload" else Path(p).name
            for p in hunt.paths
        ]
        return cls.model_validate(
            {**{c: getattr(hunt, c) for c in cls.model_fields if c != "files"}, "files": files}
        )


class HuntRequest(BaseModel):
    paths: list[Annotated[str, Field(min_length=1, max_length=1024)]] = Field(
        min_length=1,
        max_length=100,
        description="Files or folders, relative to the organisation's hunt folder.",
    )
    min_level: str | None = Field(default=None, description="Lowest rule level to report.")
    anomaly: bool = Field(
        default=False,
        description="Also run the AI models the organisation approved: their findings are "
        "stored pending a person's decision, never as alerts (the hunt then runs in one "
        "process, and is slower).",
    )


class ServerFileOut(BaseModel):
    path: str
    size: int


def visible(db: Db, actor: Actor) -> list[int]:
    return accounts.visible_organisations(
        session=db, organisation_id=actor.organisation_id, resource="hunts"
    )


def start(
    request: Request,
    db: Db,
    actor: Actor,
    paths: list[Path],
    source: HuntSource,
    min_level: str | None = None,
    root: Path | None = None,
    anomaly: bool = False,
) -> Hunt:
    """Create the hunt, commit, then queue it (shared with the page). With ``root`` (a server
    hunt: the organisation's folder), nothing outside that folder is counted or read."""
    try:
        hunt = service.create_hunt(
            session=db,
            organisation_id=actor.organisation_id,
            user_id=actor.user.id,
            paths=paths,
            source=source,
            root=root,
            anomaly=anomaly,
        )
    except HuntError as exc:
        raise HTTPException(400, str(exc)) from None
    db.commit()
    state(request).runner.submit(hunt.id, min_level=min_level)
    return hunt


@router.get("/files", summary="Server-side files a hunt can read")
def files(request: Request, actor: Runner) -> list[ServerFileOut]:
    """The files in the caller's organisation's hunt folder."""
    folder = organisation_folder(state(request).settings.hunt_root, actor.organisation_id)
    return [ServerFileOut(path=f.path, size=f.size) for f in list_server_files(folder)]


@router.post("", status_code=202, summary="Start a hunt over server-side files")
def create(request: Request, db: Db, actor: Runner, body: HuntRequest) -> HuntOut:
    if body.min_level is not None and body.min_level not in service.LEVELS:
        raise HTTPException(422, f"min_level must be one of {', '.join(service.LEVELS)}")
    folder = organisation_folder(state(request).settings.hunt_root, actor.organisation_id)
    paths = resolve_server_paths(folder, body.paths)
    return HuntOut.of(
        start(
            request,
            db,
            actor,
            paths,
            HuntSource.server,
            body.min_level,
            root=folder,
            anomaly=body.anomaly,
        )
    )


@router.get("", summary="Recent hunts")
def list_hunts(db: Db, actor: Reader) -> list[HuntOut]:
    return [
        HuntOut.of(h) for h in service.list_hunts(session=db, organisation_ids=visible(db, actor))
    ]


@router.get("/{hunt_id}", summary="One hunt and its progress")
def get_hunt(db: Db, actor: Reader, hunt_id: RecordId) -> HuntOut:
    hunt = service.get_hunt(session=db, organisation_ids=visible(db, actor), hunt_id=hunt_id)
    if hunt is None:
        raise HTTPException(404, _l("no such hunt"))
    return HuntOut.of(hunt)
