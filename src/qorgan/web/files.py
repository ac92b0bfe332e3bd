"""Log files for console hunts: uploads saved safely, and server-side files kept inside the
configured folder (``QORGAN_HUNT_ROOT``) whatever path a client asks for."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException, UploadFile

from qorgan.web.i18n import _l

CHUNK = 1 << 20
#: Folders and files listed for choosing, at most.
MAX_LISTED = 500


@dataclass(frozen=True, slots=True)
class ServerFile:
    path: str  # relative to the hunt root
    size: int


def list_server_files(root: Path) -> list[ServerFile]:
    """Regular files under ``root`` (not following links out of it), sorted."""
    if not root.is_dir():
        return []
    base = root.resolve()
    found: list[ServerFile] = []
    for path in sorted(base.rglob("*")):
        if len(found) >= MAX_LISTED:
            break
        if path.is_file() and not path.name.startswith(".") and _inside(base, path):
            found.append(ServerFile(str(path.relative_to(base)), path.stat().st_size))
    return found


def _inside(base: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(base)
    except ValueError:
        return False
    return True


def resolve_server_paths(root: Path, wanted: list[str]) -> list[Path]:
    """The files or folders ``wanted`` (relative to ``root``); 400 for anything outside it or
    missing, so a client cannot read the rest of the server's disk."""
    if not wanted:
        raise HTTPException(400, _l("choose at least one file"))
    base = root.resolve()
    paths = []
    for relative in wanted:
        candidate = (base / relative).resolve()
        if not _inside(base, candidate) or relative.startswith("/"):
            raise HTTPException(400, f"{relative!r} is outside the hunt folder")
        if not candidate.exists():
            raise HTTPException(400, f"{relative!r} does not exist in the hunt folder")
        paths.append(candidate)
    return paths


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str | None) -> str:
    """A file name without folders or odd characters; never empty, never hidden."""
    base = _UNSAFE.sub("_", Path(name or "").name).lstrip("._")
    return base[:120] or "upload.log"


async def save_uploads(files: list[UploadFile], folder: Path, max_bytes: int) -> list[Path]:
    """Write ``files`` into a new folder under ``folder``; 413 when they exceed ``max_bytes``
    together (what was written is removed)."""
    target = folder / secrets.token_hex(8)
    target.mkdir(parents=True, exist_ok=False)
    saved: list[Path] = []
    total = 0
    try:
        for index, upload in enumerate(files):
            path = target / f"{index:03d}-{safe_name(upload.filename)}"
            with path.open("wb") as out:
                while chunk := await upload.read(CHUNK):
                    total += len(chunk)
                    if total > max_bytes:
                        raise HTTPException(413, f"the upload exceeds {max_bytes // (1 << 20)} MiB")
                    out.write(chunk)
            saved.append(path)
    except BaseException:
        for path in target.iterdir():
            path.unlink()
        target.rmdir()
        raise
    if not saved:
        target.rmdir()
        raise HTTPException(400, _l("choose at least one file"))
    return saved
