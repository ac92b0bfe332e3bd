"""The tamper-evident audit trail: an append-only, hash-chained log of who did what.

Each entry's ``hash`` is the SHA-256 of the canonical JSON of its own fields and the previous
entry's hash (``prev_hash``; :data:`GENESIS` for the first). Ids are assigned here without gaps.
:func:`verify` then detects, from the table alone:

- an edited entry (its stored hash no longer matches its content),
- a deleted entry in the middle (a gap in ids, and the next entry's ``prev_hash`` breaks),
- reordered or swapped entries (the id is hashed, and the chain breaks),
- a deleted first entry (ids do not start at 1).

What the table alone cannot prove: that the *newest* entries were not cut off, or that someone
with write access did not rewrite the whole chain with fresh hashes. For that an operator stores
:func:`anchor` (last id and hash) somewhere else (a ticket, a printed report, another system)
and passes it back to :func:`verify`.

The migration also installs triggers refusing UPDATE and DELETE on ``audit_entries``; they
stop accidents, while the chain is what proves tampering by someone able to drop them.

Appends serialise: on PostgreSQL a transaction-scoped advisory lock is taken before the last
entry is read (``SELECT ... FOR UPDATE`` on the last row would not do: under READ COMMITTED the
waiting writer would still read the old last row and collide). On SQLite the append first takes
the database write lock. Both keep the lock until the unit of work commits or rolls back, so
the chain never forks; the primary key on ``id`` is the last guard.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Text, select, text, type_coerce

from qorgan.core.db import queue_writer, utcnow
from qorgan.core.errors import QorganError
from qorgan.core.models import AuditEntry

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

GENESIS = "0" * 64
#: Key of the PostgreSQL advisory lock serialising appends (any fixed bigint; "qorgan-a").
ADVISORY_LOCK_KEY = 0x716F7267616E2D61
#: Keys never allowed in ``details``: the trail must not hold secrets or personal data in clear.
FORBIDDEN_DETAIL_KEYS = frozenset(
    {
        "password",
        "password_hash",
        "secret",
        "secret_key",
        "totp_secret",
        "token",
        "api_token",
        "token_hash",
        "recovery_code",
        "code_hash",
        "iin",
    }
)
VERIFY_BATCH = 1000


class AuditError(QorganError):
    """An audit entry cannot be written as asked."""


@dataclass(frozen=True, slots=True)
class AuditProblem:
    """One finding of :func:`verify`: which entry (None: the trail as a whole) and what."""

    entry_id: int | None
    problem: str

    def __str__(self) -> str:
        where = f"entry {self.entry_id}" if self.entry_id is not None else "audit trail"
        return f"{where}: {self.problem}"


@dataclass(frozen=True, slots=True)
class Anchor:
    """The last entry's id and hash at some moment; keep it outside the database."""

    last_id: int
    last_hash: str

    def __str__(self) -> str:
        return f"{self.last_id}:{self.last_hash}"

    @classmethod
    def parse(cls, value: str) -> Anchor:
        """Read ``ID:HASH`` as printed by ``str(anchor)``."""
        last_id, sep, last_hash = value.strip().partition(":")
        if not sep or not last_id.isdigit() or len(last_hash) != 64:
            raise AuditError(f"expected an anchor as ID:SHA256HEX, got {value!r}", source="anchor")
        try:
            int(last_hash, 16)
        except ValueError:
            raise AuditError(
                f"anchor hash is not hexadecimal: {value!r}", source="anchor"
            ) from None
        return cls(int(last_id), last_hash.lower())


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")


def entry_hash(
    *,
    id: int,
    at: datetime,
    actor: str,
    organisation_id: int | None,
    action: str,
    target_type: str | None,
    target_id: str | None,
    details: Mapping[str, Any],
    prev_hash: str,
) -> str:
    """SHA-256 (hex) of the canonical JSON of an entry's fields and the previous hash."""
    payload = [
        id,
        _iso(at),
        actor,
        organisation_id,
        action,
        target_type,
        target_id,
        details,
        prev_hash,
    ]
    return hashlib.sha256(_canonical(payload).encode("utf-8")).hexdigest()


def _check_details(details: Any, path: str = "details") -> None:
    if isinstance(details, Mapping):
        for key, value in details.items():
            if not isinstance(key, str):
                raise AuditError(f"{path} keys must be strings, got {key!r}", source="audit")
            if key.lower() in FORBIDDEN_DETAIL_KEYS:
                raise AuditError(
                    f"{path}.{key}: secrets and personal data never go into the audit trail",
                    source="audit",
                )
            _check_details(value, f"{path}.{key}")
    elif isinstance(details, list | tuple):
        for i, value in enumerate(details):
            _check_details(value, f"{path}[{i}]")


def _normalise_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """Details as they will read back from the database (plain JSON), so the hash is stable."""
    if details is None:
        return {}
    _check_details(details)
    try:
        normal = json.loads(_canonical(details))
    except (TypeError, ValueError) as exc:
        raise AuditError(f"details must be JSON: {exc}", source="audit") from None
    if not isinstance(normal, dict):
        raise AuditError("details must be a JSON object", source="audit")
    return normal


def lock(session: Session) -> None:
    """Take the trail's append lock now, for the rest of the unit of work.

    :func:`record` takes it by itself; a service that reads rows and then changes them and
    records the change (a check-then-write) takes it first, so a concurrent writer waits
    instead of acting on what it read before this one wrote (SQLite would otherwise refuse the
    second writer's late upgrade to a write lock).
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    elif dialect == "sqlite":
        # In turn with this process's other writers; then a write statement (touching no row)
        # takes SQLite's write lock for this transaction before the last entry is read; a
        # writer of another process waits (busy_timeout) behind it.
        queue_writer(session)
        session.execute(text("UPDATE audit_entries SET id = id WHERE 0"))


def record(
    action: str,
    *,
    session: Session,
    actor: str,
    organisation_id: int | None = None,
    target_type: str | None = None,
    target_id: str | int | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Append an entry to the trail in the caller's unit of work (not committed here).

    ``actor`` is a user id, a token name or ``"system"``; ``details`` is a JSON object without
    secrets or personal data in clear.
    """
    if not action or not actor:
        raise AuditError("an audit entry needs an action and an actor", source="audit")
    clean = _normalise_details(details)
    entry_id, prev_hash = _last(session)
    fields = _fields(entry_id, prev_hash, action, actor, organisation_id, target_type, target_id)
    fields["details"] = clean
    entry = AuditEntry(**fields, hash=entry_hash(**fields))
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry for :func:`record_many`."""

    action: str
    actor: str
    organisation_id: int | None = None
    target_type: str | None = None
    target_id: str | int | None = None
    details: Mapping[str, Any] | None = None


def record_many(entries: list[Entry], *, session: Session) -> int:
    """Append several entries in the caller's unit of work: one lock, one read of the last
    entry and one multi-row INSERT (a bulk triage of ten thousand alerts records ten thousand
    entries in well under a second). Returns how many were written."""
    if not entries:
        return 0
    cleaned = []
    for item in entries:
        if not item.action or not item.actor:
            raise AuditError("an audit entry needs an action and an actor", source="audit")
        cleaned.append(_normalise_details(item.details))
    entry_id, prev_hash = _last(session)
    rows = []
    for item, details in zip(entries, cleaned, strict=True):
        fields = _fields(
            entry_id, prev_hash, item.action, item.actor, item.organisation_id,
            item.target_type, item.target_id,
        )  # fmt: skip
        fields["details"] = details
        fields["hash"] = entry_hash(**fields)
        rows.append(fields)
        entry_id, prev_hash = entry_id + 1, fields["hash"]
    # Core, not the ORM's bulk path: nothing here needs the unit of work, which costs as much
    # again as the INSERT itself for ten thousand rows.
    connection = session.connection()
    table = AuditEntry.__table__
    for start in range(0, len(rows), 1000):
        connection.execute(table.insert(), rows[start : start + 1000])
    return len(rows)


def _last(session: Session) -> tuple[int, str]:
    """Under the append lock: the next entry's id and the hash it chains to."""
    session.flush()  # earlier pending writes of this unit of work go first
    lock(session)
    last = session.execute(
        select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
    ).first()
    return (last.id + 1, last.hash) if last else (1, GENESIS)


def _fields(
    entry_id: int,
    prev_hash: str,
    action: str,
    actor: str,
    organisation_id: int | None,
    target_type: str | None,
    target_id: str | int | None,
) -> dict[str, Any]:
    return {
        "id": entry_id,
        "at": utcnow(),
        "actor": actor,
        "organisation_id": organisation_id,
        "action": action,
        "target_type": target_type,
        "target_id": None if target_id is None else str(target_id),
        "prev_hash": prev_hash,
    }


def anchor(*, session: Session) -> Anchor | None:
    """The last entry's id and hash (None when the trail is empty), to keep elsewhere."""
    last = session.execute(
        select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
    ).first()
    return Anchor(last.id, last.hash) if last else None


def _rows(session: Session) -> Iterator[Any]:
    """Every entry, oldest first, as plain rows streamed in batches (memory stays bounded on
    any trail size). ``at`` and ``details`` come back as the database holds them (text on
    SQLite), converted by :func:`_readable` one row at a time, so a value edited into
    something unreadable spoils its own row only."""
    columns = [
        AuditEntry.id,
        type_coerce(AuditEntry.at, Text).label("at"),
        AuditEntry.actor,
        AuditEntry.organisation_id,
        AuditEntry.action,
        AuditEntry.target_type,
        AuditEntry.target_id,
        type_coerce(AuditEntry.details, Text).label("details"),
        AuditEntry.prev_hash,
        AuditEntry.hash,
    ]
    result = session.execute(
        select(*columns).order_by(AuditEntry.id).execution_options(yield_per=VERIFY_BATCH)
    )
    yield from result


def _readable(at: Any, details: Any) -> tuple[datetime, Any]:
    """An entry's time (aware, UTC) and details as written, from what the database returned;
    ``ValueError`` when they cannot be read."""
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    if not isinstance(at, datetime):
        raise ValueError(f"not a time: {at!r}")
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    if isinstance(details, str | bytes):
        details = json.loads(details)
    return at, details


def verify(*, session: Session, anchor: Anchor | None = None) -> list[AuditProblem]:
    """Check the whole trail; return what is wrong (empty when intact).

    With ``anchor`` (from :func:`anchor`, kept elsewhere), also detect entries cut off the end
    and a chain rewritten with fresh hashes up to that point.
    """
    problems: list[AuditProblem] = []
    prev_id = 0
    prev_hash = GENESIS
    anchor_seen = False
    for row in _rows(session):
        if row.id != prev_id + 1:
            if prev_id == 0:
                what = f"first entries missing (ids 1..{row.id - 1} deleted)"
            elif row.id <= prev_id:
                what = f"id out of order after {prev_id}"
            else:
                what = f"gap in ids (entries {prev_id + 1}..{row.id - 1} deleted)"
            problems.append(AuditProblem(row.id, what))
        try:
            at, details = _readable(row.at, row.details)
            expected = entry_hash(
                id=row.id,
                at=at,
                actor=row.actor,
                organisation_id=row.organisation_id,
                action=row.action,
                target_type=row.target_type,
                target_id=row.target_id,
                details=details,
                prev_hash=row.prev_hash,
            )
        except (TypeError, ValueError, AttributeError) as exc:
            problems.append(AuditProblem(row.id, f"unreadable entry (edited): {exc}"))
            expected = None
        if expected is not None and expected != row.hash:
            problems.append(AuditProblem(row.id, "hash mismatch (edited)"))
        if row.prev_hash != prev_hash:
            problems.append(
                AuditProblem(row.id, "broken chain (deleted or reordered before this entry)")
            )
        if anchor is not None and row.id == anchor.last_id:
            anchor_seen = True
            if row.hash != anchor.last_hash:
                problems.append(AuditProblem(row.id, "does not match the anchor (trail rewritten)"))
        prev_id, prev_hash = row.id, row.hash
    if anchor is not None and not anchor_seen:
        problems.append(
            AuditProblem(
                None,
                f"anchored entry {anchor.last_id} is missing; the trail ends at {prev_id} "
                "(newest entries deleted)",
            )
        )
    return problems
