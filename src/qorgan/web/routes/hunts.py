"""Hunts from the console: upload log files or pick server-side ones; progress updates live."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from qorgan.core.roles import Permission
from qorgan.pipeline import hunts as service
from qorgan.pipeline.models import HuntSource
from qorgan.web.api.hunts import HuntOut, start, visible
from qorgan.web.deps import Actor, Db, RecordId, page_actor, state
from qorgan.web.files import (
    list_server_files,
    organisation_folder,
    resolve_server_paths,
    save_uploads,
)
from qorgan.web.i18n import _l
from qorgan.web.templating import render

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, Depends(page_actor(Permission.hunts_read))]
Runner = Annotated[Actor, Depends(page_actor(Permission.hunts_run))]


@router.get("/hunts")
def hunts_page(request: Request, db: Db, actor: Reader) -> Response:
    hunts = [
        HuntOut.of(h) for h in service.list_hunts(session=db, organisation_ids=visible(db, actor))
    ]
    files = (
        list_server_files(
            organisation_folder(state(request).settings.hunt_root, actor.organisation_id)
        )
        if actor.can(Permission.hunts_run)
        else []
    )
    return render(
        request,
        "hunts.html",
        {"hunts": hunts, "files": files, "max_upload_mib": state(request).settings.max_upload_mib},
    )


@router.get("/hunts/{hunt_id}")
def hunt_row(request: Request, db: Db, actor: Reader, hunt_id: RecordId) -> Response:
    hunt = service.get_hunt(session=db, organisation_ids=visible(db, actor), hunt_id=hunt_id)
    if hunt is None:
        raise HTTPException(404, _l("no such hunt"))
    return render(request, "_hunt_row.html", {"hunt": HuntOut.of(hunt)})


@router.post("/hunts")
async def start_hunt(
    request: Request,
    db: Db,
    actor: Runner,
    files: Annotated[list[UploadFile] | None, Form()] = None,
    server_paths: Annotated[list[str] | None, Form()] = None,
) -> Response:
    settings = state(request).settings
    uploads = [f for f in files or [] if f.filename]
    root = None
    if uploads:
        paths = await save_uploads(
            uploads, settings.var_dir / "uploads", settings.max_upload_mib << 20
        )
        source = HuntSource.upload
    elif server_paths:
        root = organisation_folder(settings.hunt_root, actor.organisation_id)
        paths = resolve_server_paths(root, server_paths)
        source = HuntSource.server
    else:
        raise HTTPException(400, _l("upload files or choose server-side files"))
    start(request, db, actor, paths, source, root=root)
    return RedirectResponse("/hunts", status_code=303)
