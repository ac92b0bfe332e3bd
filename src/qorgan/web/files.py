"""Log files for console hunts: uploads saved safely, and server-side files kept inside the
caller's organisation's folder (``<QORGAN_HUNT_ROOT>/<organisation id>/``) whatever path a
client asks for: another organisation's files are neither listed nor hunted, and a symbolic
link out of the folder is neither listed nor followed."""

from __future__ import annotations

import contextlib
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException, UploadFile

from qorgan.pipeline.hunts import hunt_folder
from qorgan.web.i18n import _l

CHUNK = 1 << 20
#: Folders and files listed for choosing, at most.
MAX_LISTED = 500
#: The longest path a client may name (characters), and how much of one an error repeats.
MAX_PATH = 1024
SHOWN = 80


@dataclass(frozen=True, slots=True)
class ServerFile:
    path: str  # relative to the hunt root
    size: int


def organisation_folder(hunt_root: Path, organisation_id: int) -> Path:
    """The organisation's folder of server-side files, created when missing (when it cannot
    be, it lists nothing and every path in it is missing)."""
    folder = hunt_folder(hunt_root, organisation_id)
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def list_server_files(folder: Path) -> list[ServerFile]:
    """Regular files under ``folder``, sorted; hidden ones, and links leading out of the
    folder (to a file or a folder), are not listed."""
    if not folder.is_dir():
        return []
    base = folder.resolve()
    found: list[ServerFile] = []
    for path in sorted(base.rglob("*")):
        if len(found) >= MAX_LISTED:
            break
        relative = path.relative_to(base)
        if any(part.startswith(".") for part in relative.parts):
            continue
        try:
            if path.is_file() and _inside(base, path):
                found.append(ServerFile(str(relative), path.stat().st_size))
        except OSError:  # gone, or unreadable, since the folder was walked
            continue
    return found


def _inside(base: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(base)
    except (ValueError, OSError, RuntimeError):  # outside, unreadable, or a link loop
        return False
    return True


def _shown(relative: str) -> str:
    return repr(relative if len(relative) <= SHOWN else relative[:SHOWN] + "...")


def resolve_server_paths(folder: Path, wanted: list[str]) -> list[Path]:
    """The files or folders ``wanted`` (relative to the organisation's ``folder``); 400 for
    anything outside it, missing or not a path, so a client can neither read the rest of the
    server's disk nor learn what is there."""
    if not wanted:
        raise HTTPException(400, _l("choose at least one file"))
    base = folder.resolve()
    paths = []
    for relative in wanted:
        if len(relative) > MAX_PATH:
            raise HTTPException(400, f"{_shown(relative)} is longer than {MAX_PATH} characters")
        if any(ord(char) < 32 or ord(char) == 127 for char in relative):
            raise HTTPException(400, f"{_shown(relative)} contains a control character")
        if relative.startswith("/"):
            raise HTTPException(400, f"{_shown(relative)} is outside the hunt folder")
        try:
            candidate = (base / relative).resolve()
            if not _inside(base, candidate):
                raise HTTPException(400, f"{_shown(relative)} is outside the hunt folder")
            exists = candidate.exists()
        except (OSError, ValueError, RuntimeError):  # a name too long, a link loop
            raise HTTPException(400, f"{_shown(relative)} is not a usable path") from None
        if not exists:
            raise HTTPException(400, f"{_shown(relative)} does not exist in the hunt folder")
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
