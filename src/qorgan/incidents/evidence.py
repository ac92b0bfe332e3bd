"""Evidence files of incidents, kept with their chain of custody.

The store is content-addressed: a file lives once, at its SHA-256, under
``<store root>/<first 2 hex>/<next 2 hex>/<sha256>`` (the store root is
``<QORGAN_VAR_DIR>/evidence``, see :func:`store_folder`), however many incidents hold it. An
upload is streamed to a temporary file in ``<store root>/tmp/`` (the same file system, so the
final rename is atomic) while it is hashed and counted, so memory stays bounded whatever its
size; it is fsynced before the rename and the folder after it, so a file the database names
survives a crash. Content already in the store is never overwritten: the existing file is kept.

Who added a file and who opened it, and when, is the audit trail: ``incident.evidence_added``
(also a timeline event) and ``evidence.open``. :func:`custody` reads it back for an incident,
oldest first, as the legal-referral export needs it.

Names are refused, not repaired: a file's name is part of what was handed over, and a name
silently changed would be a name nobody gave. A name is 1 to 255 characters without folders
(``/``, ``\\``, ``.``, ``..``), NUL, control characters, line separators, lone surrogates or
bidirectional-text controls (which make ``invoice<RLO>fdp.exe`` read as ``invoiceexe.pdf``).

Service functions take ``*, session`` and never commit. A file stored for a unit of work that
is then rolled back stays in the store unnamed: harmless (it is only ever reached by its hash)
and reused when the same content comes again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from sqlalchemy import and_, or_, select

from qorgan.core import audit
from qorgan.core.models import AuditEntry, User
from qorgan.incidents import service
from qorgan.incidents.lifecycle import IncidentError, NotFound
from qorgan.incidents.models import Evidence

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: The store's folder under the data directory.
STORE_FOLDER = "evidence"
#: Where uploads are written before they are named by their hash.
INCOMING = "tmp"
CHUNK = 1 << 20
FILE_MODE = 0o640
FOLDER_MODE = 0o750
MAX_NAME = 255
MAX_DESCRIPTION = 2000
DEFAULT_MEDIA_TYPE = "application/octet-stream"
#: ``type/subtype`` of RFC 6838 (parameters dropped); anything else is stored as the default.
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: Characters that reorder how text is displayed (Unicode bidirectional controls).
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
ADDED = "incident.evidence_added"
OPENED = "evidence.open"


class EvidenceNotFound(NotFound):
    """No such evidence file on this incident."""


class EvidenceTampered(IncidentError):
    """The stored file is missing, unreadable or no longer matches its recorded SHA-256: the
    store was tampered with or corrupted (not the caller's fault)."""


@dataclass(frozen=True, slots=True)
class CustodyRecord:
    """One link of an incident's chain of custody, from the audit trail."""

    time: datetime
    action: str  # "added" or "opened"
    actor: str  # as the trail has it: a user id, or a system actor
    actor_id: int | None
    actor_name: str | None
    evidence_id: int | None
    sha256: str | None
    name: str | None
    audit_entry_id: int


def store_folder(var_dir: Path) -> Path:
    """The evidence store under Qorgan's data directory (the ``store_root`` the functions
    below take)."""
    return var_dir / STORE_FOLDER


def stored_path(root: Path, sha256: str) -> Path:
    """Where the content with this SHA-256 lives in the store."""
    if not _SHA256.fullmatch(sha256):
        raise ValueError(f"not a SHA-256 in lowercase hex: {sha256!r}")
    return root / sha256[:2] / sha256[2:4] / sha256


def check_name(name: str) -> None:
    """Refuse a file name that is not a plain, displayable base name (see the module)."""
    if not name or not name.strip():
        raise IncidentError("an evidence file needs a name")
    if len(name) > MAX_NAME:
        raise IncidentError(f"an evidence file's name has at most {MAX_NAME} characters")
    if "\x00" in name:
        raise IncidentError("an evidence file's name cannot contain NUL characters")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise IncidentError(
            "an evidence file's name cannot contain unpaired surrogate characters"
        ) from None
    if "/" in name or "\\" in name or name in (".", ".."):
        raise IncidentError(
            "an evidence file's name is a file name only, without folders ('/' or '\\')"
        )
    for char in name:
        category = unicodedata.category(char)
        if category in ("Cc", "Zl", "Zp") or char in _BIDI_CONTROLS:
            raise IncidentError(
                f"an evidence file's name cannot contain control characters "
                f"(U+{ord(char):04X} found)"
            )


def _media_type(value: str | None) -> str:
    """The media type as declared, or the default when it is not a plain ``type/subtype``:
    it is a hint only (downloads are always served as ``application/octet-stream``)."""
    declared = (value or "").split(";", 1)[0].strip().lower()
    return declared if _MEDIA_TYPE.fullmatch(declared) else DEFAULT_MEDIA_TYPE


def _size_text(limit: int) -> str:
    if limit % (1 << 20) == 0:
        return f"{limit >> 20} MiB"
    return f"{limit:,} bytes"


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def store(root: Path, stream: BinaryIO, *, max_bytes: int) -> tuple[str, int]:
    """Stream ``stream`` into the store; returns its SHA-256 and size. Refuses (and leaves
    nothing behind) an empty stream or one longer than ``max_bytes``: reading stops at the
    first byte past the limit."""
    incoming = root / INCOMING
    incoming.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix="upload-", dir=incoming)
    temp = Path(temp_name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(min(CHUNK, max_bytes + 1 - size)):
                size += len(chunk)
                if size > max_bytes:
                    raise IncidentError(
                        f"the evidence file is larger than the limit of {_size_text(max_bytes)}"
                    )
                digest.update(chunk)
                out.write(chunk)
            if size == 0:
                raise IncidentError("the evidence file is empty")
            out.flush()
            os.fchmod(out.fileno(), FILE_MODE)
            os.fsync(out.fileno())
        sha256 = digest.hexdigest()
        final = stored_path(root, sha256)
        if final.exists():
            temp.unlink()  # the same content is there already: keep the existing file
        else:
            final.parent.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
            # Two uploads of one content may race here: either rename leaves the same bytes.
            os.replace(temp, final)
            _fsync_folder(final.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    return sha256, size


def add_evidence(
    *,
    session: Session,
    store_root: Path,
    organisation_id: int,
    incident_id: int,
    actor_id: int,
    name: str,
    stream: BinaryIO,
    media_type: str | None,
    description: str = "",
    max_bytes: int,
) -> Evidence:
    """Store ``stream`` as evidence of the organisation's own incident: the file once in the
    store, a row naming it, a timeline event and an audit entry. :class:`NotFound` for an
    incident that is not the organisation's; :class:`IncidentError` for an empty or too large
    file, a bad name (see the module), or content this incident already holds."""
    check_name(name)
    service.check_text(description)
    if len(description) > MAX_DESCRIPTION:
        raise IncidentError(f"a description has at most {MAX_DESCRIPTION} characters")
    # Checked before a byte is stored, without the lock (streaming a large file while holding
    # the trail's lock would stall every other writer); checked again under it below.
    service.visible(
        session=session, incident_id=incident_id, organisation_id=organisation_id, writing=True
    )
    sha256, size = store(store_root, stream, max_bytes=max_bytes)
    incident = service.owned(session, incident_id, organisation_id)
    held = session.scalar(
        select(Evidence).where(Evidence.incident_id == incident.id, Evidence.sha256 == sha256)
    )
    if held is not None:
        raise IncidentError(
            f"this incident already holds the same content as {held.name!r} (SHA-256 {sha256})"
        )
    evidence = Evidence(
        incident_id=incident.id,
        organisation_id=incident.organisation_id,
        sha256=sha256,
        name=name,
        size=size,
        media_type=_media_type(media_type),
        description=description,
        added_by_id=actor_id,
    )
    session.add(evidence)
    session.flush()
    service.event(
        session,
        incident,
        actor_id,
        "evidence_added",
        {"evidence_id": evidence.id, "sha256": sha256, "size": size, "name": name},
    )
    return evidence


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as stored:
        while chunk := stored.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def open_evidence(
    *,
    session: Session,
    store_root: Path,
    organisation_id: int,
    incident_id: int,
    evidence_id: int,
    actor_id: int,
) -> tuple[Evidence, Path]:
    """The evidence file for reading, once its stored content is verified against the SHA-256
    recorded when it was added; the opening is recorded (``evidence.open``, in the trail of
    the reader's organisation). The incident's organisation reads it, and so does the
    coordinator the incident was reported to. Whoever hands the file out commits first, so
    no byte leaves without its custody record.

    :class:`NotFound` for an incident the organisation does not see, :class:`EvidenceNotFound`
    for an id that is not this incident's file, :class:`EvidenceTampered` when the stored file
    is missing or differs from what was recorded (nothing is recorded then).

    The file is hashed here and read again by the caller: someone able to write to the store
    in between could swap it unnoticed; but then the next opening (and the referral export,
    which hashes while it copies) shows it."""
    incident = service.visible(
        session=session, incident_id=incident_id, organisation_id=organisation_id
    )
    evidence = session.get(Evidence, evidence_id)
    if evidence is None or evidence.incident_id != incident.id:
        raise EvidenceNotFound("no such evidence file", source=f"evidence {evidence_id}")
    path = stored_path(store_root, evidence.sha256)
    try:
        found, size = _hash_file(path)
    except FileNotFoundError:
        raise EvidenceTampered(
            f"the stored file of {evidence.name!r} is missing from the evidence store"
        ) from None
    except OSError as exc:
        raise EvidenceTampered(
            f"the stored file of {evidence.name!r} cannot be read: {exc.strerror}"
        ) from None
    if found != evidence.sha256 or size != evidence.size:
        raise EvidenceTampered(
            f"the stored file of {evidence.name!r} no longer matches its SHA-256 "
            f"{evidence.sha256}: it was tampered with or corrupted, and is not handed out"
        )
    audit.record(
        "evidence.open",  # a literal: the labels' test finds every audited action by its text
        session=session,
        actor=str(actor_id),
        organisation_id=organisation_id,
        target_type="evidence",
        target_id=evidence.id,
        details={"incident_id": incident.id, "sha256": evidence.sha256},
    )
    return evidence, path


def list_evidence(*, session: Session, incident_id: int) -> list[Evidence]:
    """The incident's evidence files, in the order they were added."""
    return list(
        session.scalars(
            select(Evidence)
            .where(Evidence.incident_id == incident_id)
            .order_by(Evidence.added_at, Evidence.id)
        )
    )


def custody(
    *, session: Session, incident_id: int, organisation_ids: Collection[int]
) -> list[CustodyRecord]:
    """The chain of custody of the incident's evidence, oldest first: each addition and each
    opening recorded in the trails of ``organisation_ids`` (the incident's organisation, and
    the coordinator it was reported to when the coordinator's reads count), with the names of
    those organisations' members who acted."""
    evidence = list_evidence(session=session, incident_id=incident_id)
    by_id = {e.id: e for e in evidence}
    opened = [str(e.id) for e in evidence]
    conditions = [
        and_(
            AuditEntry.action == ADDED,
            AuditEntry.target_type == "incident",
            AuditEntry.target_id == str(incident_id),
        )
    ]
    if opened:
        conditions.append(
            and_(
                AuditEntry.action == OPENED,
                AuditEntry.target_type == "evidence",
                AuditEntry.target_id.in_(opened),
            )
        )
    rows = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.organisation_id.in_(sorted(organisation_ids)), or_(*conditions))
        .order_by(AuditEntry.id)  # the chain's order is the order things happened
    ).all()
    actor_ids = sorted({int(r.actor) for r in rows if r.actor.isdigit()})
    names: dict[int, str] = {}
    if actor_ids:
        names = dict(
            session.execute(
                select(User.id, User.display_name).where(
                    User.id.in_(actor_ids), User.organisation_id.in_(sorted(organisation_ids))
                )
            ).all()
        )
    records = []
    for row in rows:
        details = row.details or {}
        if row.action == OPENED:
            evidence_id = int(row.target_id) if row.target_id else None
            known = by_id.get(evidence_id) if evidence_id is not None else None
            name = known.name if known is not None else None
            action = "opened"
        else:
            evidence_id = details.get("evidence_id")
            name = details.get("name")
            action = "added"
        actor_id = int(row.actor) if row.actor.isdigit() else None
        records.append(
            CustodyRecord(
                time=row.at,
                action=action,
                actor=row.actor,
                actor_id=actor_id,
                actor_name=names.get(actor_id) if actor_id is not None else None,
                evidence_id=evidence_id,
                sha256=details.get("sha256"),
                name=name,
                audit_entry_id=row.id,
            )
        )
    return records
