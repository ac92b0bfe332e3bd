"""The audit trail: any edited, deleted or reordered entry is found by ``verify``."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import audit
from qorgan.core.audit import GENESIS, Anchor, AuditError, entry_hash
from qorgan.core.db import unit_of_work
from qorgan.core.models import AuditEntry

N = 12
COLUMNS = [c.name for c in AuditEntry.__table__.columns if c.name != "id"]


def _append(factory: sessionmaker[Session], n: int = N) -> None:
    with unit_of_work(factory) as session:
        for i in range(1, n + 1):
            audit.record(
                "alert.acknowledge" if i % 2 else "user.create",
                session=session,
                actor="7" if i % 3 else "system",
                organisation_id=i % 2 or None,
                target_type="alert",
                target_id=i,
                details={"index": i, "note": "қорған", "ratio": i / 7, "tags": ["a", None]},
            )


def _problems(factory: sessionmaker[Session], anchor: Anchor | None = None) -> list[str]:
    with unit_of_work(factory) as session:
        return [str(p) for p in audit.verify(session=session, anchor=anchor)]


def _anchor(factory: sessionmaker[Session]) -> Anchor:
    with unit_of_work(factory) as session:
        found = audit.anchor(session=session)
    assert found is not None
    return found


def _tamper(factory: sessionmaker[Session], *statements: Any) -> None:
    """Run SQL as someone with write access to the database: triggers dropped first."""
    with unit_of_work(factory) as session:
        if session.get_bind().dialect.name == "sqlite":
            session.execute(text("DROP TRIGGER IF EXISTS audit_entries_no_update"))
            session.execute(text("DROP TRIGGER IF EXISTS audit_entries_no_delete"))
        else:
            session.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER USER"))
        for statement in statements:
            session.execute(statement)


def _row(factory: sessionmaker[Session], entry_id: int) -> dict[str, Any]:
    with unit_of_work(factory) as session:
        row = session.execute(select(AuditEntry.__table__).where(AuditEntry.id == entry_id)).one()
    return {name: getattr(row, name) for name in COLUMNS}


def test_intact_trail_verifies_clean(factory: sessionmaker[Session]) -> None:
    assert _problems(factory) == []
    _append(factory)
    _append(factory, 3)  # a later unit of work continues the chain
    assert _problems(factory) == []
    with unit_of_work(factory) as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert [e.id for e in entries] == list(range(1, N + 4))
        assert entries[0].prev_hash == GENESIS
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
        assert entries[0].at.tzinfo is not None
        assert entries[0].details["note"] == "қорған"
        assert entries[0].target_id == "1"


def test_hash_is_sha256_of_the_canonical_fields(factory: sessionmaker[Session]) -> None:
    _append(factory, 1)
    with unit_of_work(factory) as session:
        e = session.get_one(AuditEntry, 1)
        fields = {name: getattr(e, name) for name in COLUMNS if name != "hash"}
        assert e.hash == entry_hash(id=1, **fields)
        assert len(e.hash) == 64


def test_edited_details_are_detected(factory: sessionmaker[Session]) -> None:
    _append(factory)
    _tamper(factory, update(AuditEntry).where(AuditEntry.id == 5).values(details={"index": 99}))
    assert _problems(factory) == ["entry 5: hash mismatch (edited)"]


def test_every_unreadable_entry_is_reported_in_its_place(factory: sessionmaker[Session]) -> None:
    """A time or JSON edited into something the database hands back but Python cannot read
    spoils its own entry only: each is reported by id, and the entries after are checked."""
    _append(factory)
    with unit_of_work(factory) as session:
        sqlite = session.get_bind().dialect.name == "sqlite"
    if sqlite:  # SQLite keeps whatever text is written into a typed column
        _tamper(
            factory,
            text("UPDATE audit_entries SET at = 'yesterday' WHERE id = 3"),
            text("UPDATE audit_entries SET details = '{not json' WHERE id = 7"),
            update(AuditEntry).where(AuditEntry.id == 10).values(actor="4"),
        )
        problems = _problems(factory)
        assert [p.split(":")[0] for p in problems] == ["entry 3", "entry 7", "entry 10"]
        assert "unreadable entry (edited)" in problems[0]
        assert "unreadable entry (edited)" in problems[1]
        assert problems[2] == "entry 10: hash mismatch (edited)"
    else:  # PostgreSQL refuses such values outright; an edit still shows in its place
        _tamper(
            factory,
            update(AuditEntry).where(AuditEntry.id == 3).values(details={"x": 1}),
            update(AuditEntry).where(AuditEntry.id == 10).values(actor="4"),
        )
        assert _problems(factory) == [
            "entry 3: hash mismatch (edited)",
            "entry 10: hash mismatch (edited)",
        ]


def test_edited_entry_with_recomputed_hash_breaks_the_chain(
    factory: sessionmaker[Session],
) -> None:
    _append(factory)
    row = _row(factory, 5) | {"actor": "someone-else"}
    row["hash"] = entry_hash(id=5, **{k: v for k, v in row.items() if k != "hash"})
    _tamper(factory, update(AuditEntry).where(AuditEntry.id == 5).values(**row))
    assert _problems(factory) == ["entry 6: broken chain (deleted or reordered before this entry)"]


def test_deleted_middle_entry_is_detected(factory: sessionmaker[Session]) -> None:
    _append(factory)
    _tamper(factory, delete(AuditEntry).where(AuditEntry.id == 6))
    assert _problems(factory) == [
        "entry 7: gap in ids (entries 6..6 deleted)",
        "entry 7: broken chain (deleted or reordered before this entry)",
    ]


def test_deleted_first_entry_is_detected(factory: sessionmaker[Session]) -> None:
    _append(factory)
    _tamper(factory, delete(AuditEntry).where(AuditEntry.id == 1))
    assert _problems(factory) == [
        "entry 2: first entries missing (ids 1..1 deleted)",
        "entry 2: broken chain (deleted or reordered before this entry)",
    ]


def test_swapped_entries_are_detected(factory: sessionmaker[Session]) -> None:
    _append(factory)
    three, eight = _row(factory, 3), _row(factory, 8)
    _tamper(
        factory,
        # hash is unique: park one row's hash while the contents change places
        update(AuditEntry).where(AuditEntry.id == 3).values(**eight | {"hash": "x" * 64}),
        update(AuditEntry).where(AuditEntry.id == 8).values(**three),
        update(AuditEntry).where(AuditEntry.id == 3).values(hash=eight["hash"]),
    )
    problems = _problems(factory)
    assert "entry 3: hash mismatch (edited)" in problems
    assert "entry 8: hash mismatch (edited)" in problems
    assert "entry 3: broken chain (deleted or reordered before this entry)" in problems


def test_tail_truncation_needs_the_anchor(factory: sessionmaker[Session]) -> None:
    """Cutting off the newest entries leaves a valid shorter chain: only an anchor shows it."""
    _append(factory)
    kept = _anchor(factory)
    assert kept.last_id == N
    assert Anchor.parse(str(kept)) == kept
    assert _problems(factory, kept) == []
    _tamper(factory, delete(AuditEntry).where(AuditEntry.id >= N - 1))
    assert _problems(factory) == []  # undetectable from the table alone
    assert _problems(factory, kept) == [
        f"audit trail: anchored entry {N} is missing; the trail ends at {N - 2} "
        "(newest entries deleted)"
    ]


def test_rewritten_chain_needs_the_anchor(factory: sessionmaker[Session]) -> None:
    """Someone who edits an entry and recomputes every later hash is caught by the anchor."""
    _append(factory)
    kept = _anchor(factory)
    prev = _row(factory, 3)["hash"]
    statements = []
    for entry_id in range(4, N + 1):
        row = _row(factory, entry_id) | {"prev_hash": prev}
        if entry_id == 4:
            row["details"] = {"index": 4, "note": "nothing happened"}
        row["hash"] = prev = entry_hash(
            id=entry_id, **{k: v for k, v in row.items() if k != "hash"}
        )
        statements.append(update(AuditEntry).where(AuditEntry.id == entry_id).values(**row))
    _tamper(factory, *statements)
    assert _problems(factory) == []
    assert _problems(factory, kept) == [f"entry {N}: does not match the anchor (trail rewritten)"]


def test_the_table_refuses_update_and_delete(factory: sessionmaker[Session]) -> None:
    _append(factory, 2)
    for statement in (
        update(AuditEntry).where(AuditEntry.id == 1).values(actor="x"),
        delete(AuditEntry).where(AuditEntry.id == 2),
    ):
        with pytest.raises(DBAPIError, match="append-only"), unit_of_work(factory) as session:
            session.execute(statement)
    assert _problems(factory) == []


@pytest.mark.parametrize(
    "details",
    [{"password": "hunter2"}, {"user": {"totp_secret": "x"}}, {"list": [{"IIN": "1"}]}],
)
def test_secrets_never_enter_the_trail(
    factory: sessionmaker[Session], details: dict[str, Any]
) -> None:
    refused = pytest.raises(AuditError, match="never go into the audit trail")
    with refused, unit_of_work(factory) as session:
        audit.record("user.update", session=session, actor="system", details=details)
    assert _problems(factory) == []


def test_non_json_details_are_refused(factory: sessionmaker[Session]) -> None:
    refused = pytest.raises(AuditError, match="details must be JSON")
    with refused, unit_of_work(factory) as session:
        audit.record("x.y", session=session, actor="system", details={"when": object()})


def test_rolled_back_work_leaves_no_entry(factory: sessionmaker[Session]) -> None:
    _append(factory, 2)
    with pytest.raises(RuntimeError), unit_of_work(factory) as session:
        audit.record("user.delete", session=session, actor="system")
        raise RuntimeError
    _append(factory, 1)
    assert _anchor(factory).last_id == 3
    assert _problems(factory) == []


def test_concurrent_appends_keep_one_chain(factory: sessionmaker[Session]) -> None:
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for i in range(15):
                with unit_of_work(factory) as session:
                    audit.record("alert.acknowledge", session=session, actor=name, target_id=i)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _anchor(factory).last_id == 60
    assert _problems(factory) == []


def test_anchor_parse_refuses_garbage() -> None:
    for bad in ("", "12", "x:" + "0" * 64, "3:" + "g" * 64, "3:abc"):
        with pytest.raises(AuditError):
            Anchor.parse(bad)
