"""Hunts from the console: upload log files or pick server-side ones; progress updates live."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

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
from qorgan.web.limits import read_form
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


#: Files one upload may hold, and server-side paths one hunt may name.
MAX_FILES = 100
MAX_PATHS = 100


@router.post("/hunts")
async def start_hunt(request: Request, db: Db, actor: Runner) -> Response:
    """Start a hunt over uploaded files or files of the organisation's folder. The form is read
    here, after the caller is known: an anonymous upload is refused before a byte of it is
    stored (the body limit bounds it in any case)."""
    settings = state(request).settings
    form = await read_form(request, max_files=MAX_FILES, max_fields=MAX_PATHS + 10)
    try:
        uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile) and f.filename]
        server_paths = [v for v in form.getlist("server_paths") if isinstance(v, str)]
        anomaly = form.get("anomaly") == "on"
        root = None
        if uploads:
            paths = await save_uploads(
                uploads,  # type: ignore[arg-type]
                settings.var_dir / "uploads",
                settings.max_upload_mib << 20,
            )
            source = HuntSource.upload
        elif server_paths:
            root = organisation_folder(settings.hunt_root, actor.organisation_id)
            paths = resolve_server_paths(root, server_paths)
            source = HuntSource.server
        else:
            raise HTTPException(400, _l("upload files or choose server-side files"))
    finally:
        await form.close()  # the spooled upload files, at once
    start(request, db, actor, paths, source, root=root, anomaly=anomaly)
    return RedirectResponse("/hunts", status_code=303)
