"""Evidence files: stored once by their SHA-256, verified before each reading, refused clearly
when empty, too large, badly named or already held, and every addition and opening in the
chain of custody, within the incident's organisation (and its coordinator, reading)."""

from __future__ import annotations

import hashlib
import io
import stat
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core.db import unit_of_work
from qorgan.core.workdays import default_calendar
from qorgan.incidents import evidence, service, timeline
from qorgan.incidents.lifecycle import IncidentError, NotFound
from qorgan.incidents.models import Evidence, Incident

from .test_alert_store import World, audit_entries, chain_intact

CALENDAR = default_calendar()
CONTENT = "Журнал входа: 203.0.113.7 — 500 неудачных попыток\n".encode() * 100
LIMIT = 64 * 1024


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return evidence.store_folder(tmp_path / "var")


def _incident(factory: sessionmaker[Session], organisation_id: int, actor_id: int) -> int:
    with unit_of_work(factory) as session:
        incident, _ = service.create(
            session=session,
            organisation_id=organisation_id,
            actor_id=actor_id,
            draft=service.Draft(title="Password guessing on the mail gateway"),
            calendar=CALENDAR,
        )
        return incident.id


def _add(
    factory: sessionmaker[Session],
    root: Path,
    world: World,
    incident_id: int,
    content: bytes | io.RawIOBase = CONTENT,
    *,
    name: str = "auth.log",
    organisation_id: int | None = None,
    actor_id: int | None = None,
    max_bytes: int = LIMIT,
    media_type: str | None = "text/plain",
    description: str = "",
) -> int:
    stream = io.BytesIO(content) if isinstance(content, bytes) else content
    with unit_of_work(factory) as session:
        added = evidence.add_evidence(
            session=session,
            store_root=root,
            organisation_id=organisation_id or world.almaty,
            incident_id=incident_id,
            actor_id=actor_id or world.analyst,
            name=name,
            stream=stream,  # type: ignore[arg-type]
            media_type=media_type,
            description=description,
            max_bytes=max_bytes,
        )
        return added.id


def _open(
    factory: sessionmaker[Session],
    root: Path,
    incident_id: int,
    evidence_id: int,
    organisation_id: int,
    actor_id: int,
) -> tuple[str, bytes]:
    with unit_of_work(factory) as session:
        found, path = evidence.open_evidence(
            session=session,
            store_root=root,
            organisation_id=organisation_id,
            incident_id=incident_id,
            evidence_id=evidence_id,
            actor_id=actor_id,
        )
        return found.sha256, path.read_bytes()


def _stored(root: Path) -> list[Path]:
    """Every file in the store, temporary ones included."""
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_round_trip_with_the_hash(factory: sessionmaker[Session], world: World, root: Path) -> None:
    incident_id = _incident(factory, world.almaty, world.analyst)
    evidence_id = _add(factory, root, world, incident_id, description="exported by the admin")
    sha256 = hashlib.sha256(CONTENT).hexdigest()
    path = root / sha256[:2] / sha256[2:4] / sha256
    assert _stored(root) == [path]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    with unit_of_work(factory) as session:
        (row,) = evidence.list_evidence(session=session, incident_id=incident_id)
        assert (row.id, row.sha256, row.size, row.name) == (
            evidence_id,
            sha256,
            len(CONTENT),
            "auth.log",
        )
        assert (row.media_type, row.description, row.added_by_id) == (
            "text/plain",
            "exported by the admin",
            world.analyst,
        )
        events = timeline.timeline(session=session, incident_id=incident_id).entries
        added = [e for e in events if e.kind == "evidence_added"]
        assert len(added) == 1
        assert added[0].details == {
            "evidence_id": evidence_id,
            "sha256": sha256,
            "size": len(CONTENT),
            "name": "auth.log",
        }
    assert _open(factory, root, incident_id, evidence_id, world.almaty, world.colleague) == (
        sha256,
        CONTENT,
    )
    assert [e.action for e in audit_entries(factory, "evidence.")] == ["evidence.open"]
    chain_intact(factory)


def test_the_same_bytes_are_stored_once(
    factory: sessionmaker[Session], world: World, root: Path
) -> None:
    first = _incident(factory, world.almaty, world.analyst)
    second = _incident(factory, world.almaty, world.analyst)
    one = _add(factory, root, world, first, name="auth.log")
    two = _add(factory, root, world, second, name="copy of auth.log")
    assert one != two
    assert len(_stored(root)) == 1
    for incident_id, evidence_id in ((first, one), (second, two)):
        assert _open(factory, root, incident_id, evidence_id, world.almaty, world.analyst)[1] == (
            CONTENT
        )


def test_the_same_content_twice_on_one_incident_is_refused(
    factory: sessionmaker[Session], world: World, root: Path
) -> None:
    incident_id = _incident(factory, world.almaty, world.analyst)
    _add(factory, root, world, incident_id, name="auth.log")
    with pytest.raises(IncidentError, match=r"already holds the same content as 'auth\.log'"):
        _add(factory, root, world, incident_id, name="auth (1).log")
    assert len(_stored(root)) == 1


def test_another_organisation_neither_adds_nor_opens(
    factory: sessionmaker[Session], world: World, root: Path
) -> None:
    ours = _incident(factory, world.almaty, world.analyst)
    theirs = _incident(factory, world.astana, world.outsider)
    evidence_id = _add(factory, root, world, ours)
    with pytest.raises(NotFound):
        _add(
            factory,
            root,
            world,
            ours,
            b"planted",
            organisation_id=world.astana,
            actor_id=world.outsider,
        )
    assert len(_stored(root)) == 1  # refused before a byte was stored
    with pytest.raises(NotFound):
        _open(factory, root, ours, evidence_id, world.astana, world.outsider)
    # Their own incident's number with our evidence id: not theirs either.
    with pytest.raises(NotFound):
        _open(factory, root, theirs, evidence_id, world.astana, world.outsider)
    # Nor ours with an id that is not this incident's.
    with pytest.raises(NotFound):
        _open(factory, root, ours, evidence_id + 1000, world.almaty, world.analyst)
    assert audit_entries(factory, "evidence.") == []


def test_the_coordinator_reads_and_its_reads_are_in_the_custody(
    factory: sessionmaker[Session], world: World, root: Path
) -> None:
    incident_id = _incident(factory, world.almaty, world.analyst)
    evidence_id = _add(factory, root, world, incident_id)
    with unit_of_work(factory) as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        incident.reported_to_id = world.astana
    _open(factory, root, incident_id, evidence_id, world.astana, world.outsider)
    # The coordinator reads; it never adds.
    with pytest.raises(NotFound):
        _add(
            factory,
            root,
            world,
            incident_id,
            b"other",
            organisation_id=world.astana,
            actor_id=world.outsider,
        )
    with unit_of_work(factory) as session:
        both = evidence.custody(
            session=session, incident_id=incident_id, organisation_ids=[world.almaty, world.astana]
        )
        assert [(r.action, r.actor_name) for r in both] == [
            ("added", "Aigerim"),
            ("opened", "Dana"),
        ]
        own = evidence.custody(
            session=session, incident_id=incident_id, organisation_ids=[world.almaty]
        )
        assert [r.action for r in own] == ["added"]


def test_custody_lists_the_addition_and_each_opening_in_order(
    factory: sessionmaker[Session], world: World, root: Path
) -> None:
    incident_id = _incident(factory, world.almaty, world.analyst)
    other = _incident(factory, world.almaty, world.analyst)
    log = _add(factory, root, world, incident_id, name="auth.log")
    _add(factory, root, world, other, b"another incident's file", name="other.bin")
    capture = _add(factory, root, world, incident_id, b"pcap", name="dump.pcap")
    _open(factory, root, incident_id, log, world.almaty, world.colleague)
    _open(factory, root, incident_id, capture, world.almaty, world.analyst)
    _open(factory, root, incident_id, log, world.almaty, world.analyst)
    with unit_of_work(factory) as session:
        records = evidence.custody(
            session=session, incident_id=incident_id, organisation_ids=[world.almaty]
        )
    log_hash = hashlib.sha256(CONTENT).hexdigest()
    capture_hash = hashlib.sha256(b"pcap").hexdigest()
    assert [(r.action, r.actor_id, r.actor_name, r.name, r.sha256) for r in records] == [
        ("added", world.analyst, "Aigerim", "auth.log", log_hash),
        ("added", world.analyst, "Aigerim", "dump.pcap", capture_hash),
        ("opened", world.colleague, "Nurlan", "auth.log", log_hash),
        ("opened", world.analyst, "Aigerim", "dump.pcap", capture_hash),
        ("opened", world.analyst, "Aigerim", "auth.log", log_hash),
    ]
    assert [r.evidence_id for r in records] == [log, capture, log, capture, log]
    times = [r.time for r in records]
    assert times == sorted(times)
    assert [r.audit_entry_id for r in records] == sorted(r.audit_entry_id for r in records)


def test_a_tampered_or_missing_stored_file_is_not_handed_out(
    factory: sessionmaker[Session], world: World, root: Path
) -> None:
    incident_id = _incident(factory, world.almaty, world.analyst)
    evidence_id = _add(factory, root, world, incident_id)
    (path,) = _stored(root)
    path.chmod(0o600)
    tampered = bytearray(CONTENT)
    tampered[10] ^= 1  # one bit, same size
    path.write_bytes(bytes(tampered))
    message = "no longer matches its SHA-256 .*tampered with or corrupted"
    with pytest.raises(IncidentError, match=message):
        _open(factory, root, incident_id, evidence_id, world.almaty, world.analyst)
    path.write_bytes(CONTENT + b"appended")
    with pytest.raises(IncidentError, match=message):
        _open(factory, root, incident_id, evidence_id, world.almaty, world.analyst)
    path.unlink()
    with pytest.raises(IncidentError, match="missing from the evidence store"):
        _open(factory, root, incident_id, evidence_id, world.almaty, world.analyst)
    # A refused opening is not an opening.
    assert audit_entries(factory, "evidence.") == []


def test_an_empty_file_is_refused(factory: sessionmaker[Session], world: World, root: Path) -> None:
    incident_id = _incident(factory, world.almaty, world.analyst)
    with pytest.raises(IncidentError, match="the evidence file is empty"):
        _add(factory, root, world, incident_id, b"")
    assert _stored(root) == []


class Endless(io.RawIOBase):
    """A stream that never ends, counting what is read and how much each read asks for."""

    def __init__(self) -> None:
        self.served = 0
        self.largest = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        assert size is not None and size > 0, "the whole stream was asked for"
        self.largest = max(self.largest, size)
        self.served += size
        return b"\xab" * size


def test_a_file_over_the_limit_is_refused_and_leaves_nothing(
    factory: sessionmaker[Session], world: World, root: Path
) -> None:
    incident_id = _incident(factory, world.almaty, world.analyst)
    endless = Endless()
    with pytest.raises(IncidentError, match="larger than the limit of 65,536 bytes"):
        _add(factory, root, world, incident_id, endless)
    # Reading stopped at the first byte past the limit, in bounded reads.
    assert endless.served == LIMIT + 1
    assert endless.largest <= evidence.CHUNK
    with pytest.raises(IncidentError, match="larger than the limit of 1 MiB"):
        _add(factory, root, world, incident_id, b"x" * ((1 << 20) + 1), max_bytes=1 << 20)
    assert _stored(root) == []  # no partial temporary file left behind
    # Exactly at the limit is accepted.
    _add(factory, root, world, incident_id, b"y" * LIMIT)
    assert len(_stored(root)) == 1
    with unit_of_work(factory) as session:
        assert [
            e.size for e in evidence.list_evidence(session=session, incident_id=incident_id)
        ] == [LIMIT]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "needs a name"),
        ("   ", "needs a name"),
        ("../x", "without folders"),
        ("reports/auth.log", "without folders"),
        ("C:\\Users\\aigerim\\auth.log", "without folders"),
        ("..", "without folders"),
        (".", "without folders"),
        ("auth\x00.log", "NUL"),
        ("\ud800.log", "unpaired surrogate"),
        ("x" * 256, "at most 255 characters"),
        ("auth\n.log", r"control characters \(U\+000A"),
        ("auth\x1b[31m.log", r"control characters \(U\+001B"),
        ("auth\x7f.log", "control characters"),
        ("auth\x85.log", "control characters"),
        ("invoice\u202efdp.exe", r"control characters \(U\+202E"),
        ("auth\u2028.log", "control characters"),
    ],
)
def test_bad_names_are_refused_clearly(
    factory: sessionmaker[Session], world: World, root: Path, name: str, reason: str
) -> None:
    incident_id = _incident(factory, world.almaty, world.analyst)
    with pytest.raises(IncidentError, match=reason):
        _add(factory, root, world, incident_id, name=name)
    assert _stored(root) == []
    with unit_of_work(factory) as session:
        assert evidence.list_evidence(session=session, incident_id=incident_id) == []


def test_names_people_give_are_kept_as_given(
    factory: sessionmaker[Session], world: World, root: Path
) -> None:
    incident_id = _incident(factory, world.almaty, world.analyst)
    names = ["Қорытынды есеп (2026).pdf", "x" * 255, ".hidden", "a..b", "👩‍💻 notes.txt"]
    for index, name in enumerate(names):
        _add(factory, root, world, incident_id, f"content {index}".encode(), name=name)
    with unit_of_work(factory) as session:
        assert [
            e.name for e in evidence.list_evidence(session=session, incident_id=incident_id)
        ] == (names)


def test_declared_media_types_are_hints_kept_only_when_plain(
    factory: sessionmaker[Session], world: World, root: Path
) -> None:
    incident_id = _incident(factory, world.almaty, world.analyst)
    declared = {
        "text/html; charset=utf-8": "text/html",
        "Application/PDF": "application/pdf",
        '"><script>alert(1)</script>': "application/octet-stream",
        "": "application/octet-stream",
        None: "application/octet-stream",
        "a/" + "b" * 200: "application/octet-stream",
    }
    for index, media_type in enumerate(declared):
        _add(factory, root, world, incident_id, f"{index}".encode(), media_type=media_type)
    with unit_of_work(factory) as session:
        stored = [
            e.media_type for e in evidence.list_evidence(session=session, incident_id=incident_id)
        ]
    assert stored == list(declared.values())


def test_descriptions_that_no_database_stores_are_refused(
    factory: sessionmaker[Session], world: World, root: Path
) -> None:
    incident_id = _incident(factory, world.almaty, world.analyst)
    with pytest.raises(IncidentError, match="NUL"):
        _add(factory, root, world, incident_id, description="a\x00b")
    with pytest.raises(IncidentError, match="at most 2000 characters"):
        _add(factory, root, world, incident_id, description="d" * 2001)
    assert _stored(root) == []


def test_a_rolled_back_addition_leaves_no_row_and_the_content_is_reused(
    factory: sessionmaker[Session], world: World, root: Path
) -> None:
    incident_id = _incident(factory, world.almaty, world.analyst)
    with pytest.raises(RuntimeError), unit_of_work(factory) as session:
        evidence.add_evidence(
            session=session,
            store_root=root,
            organisation_id=world.almaty,
            incident_id=incident_id,
            actor_id=world.analyst,
            name="auth.log",
            stream=io.BytesIO(CONTENT),
            media_type=None,
            max_bytes=LIMIT,
        )
        raise RuntimeError("the request failed after the file was stored")
    with unit_of_work(factory) as session:
        assert session.scalar(select(func.count()).select_from(Evidence)) == 0
    assert len(_stored(root)) == 1  # unnamed, harmless
    evidence_id = _add(factory, root, world, incident_id)
    assert len(_stored(root)) == 1
    assert _open(factory, root, incident_id, evidence_id, world.almaty, world.analyst)[1] == (
        CONTENT
    )
    chain_intact(factory)


def test_the_store_keeps_an_existing_file(
    factory: sessionmaker[Session], world: World, root: Path
) -> None:
    incident_id = _incident(factory, world.almaty, world.analyst)
    other = _incident(factory, world.almaty, world.analyst)
    _add(factory, root, world, incident_id)
    (path,) = _stored(root)
    before = path.stat()
    _add(factory, root, world, other)
    after = path.stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    with pytest.raises(ValueError, match="not a SHA-256"):
        evidence.stored_path(root, "../../etc/passwd")


class Meanwhile(io.RawIOBase):
    """A slow upload: while it is being read, something else commits a change of the incident."""

    def __init__(self, change: object) -> None:
        self.change = change
        self.sent = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.sent:
            return b""
        self.sent = True
        self.change()  # type: ignore[operator]
        return b"captured while the incident changed"


def test_a_change_committed_while_a_file_streams_in_does_not_fail_it(
    factory: sessionmaker[Session], world: World, root: Path
) -> None:
    incident_id = _incident(factory, world.almaty, world.analyst)

    def note() -> None:
        with unit_of_work(factory) as session:
            service.add_observable(
                session=session,
                organisation_id=world.almaty,
                incident_id=incident_id,
                actor_id=world.colleague,
                kind="ip",
                value="192.0.2.7",
            )

    evidence_id = _add(factory, root, world, incident_id, Meanwhile(note))
    with unit_of_work(factory) as session:
        assert [e.id for e in evidence.list_evidence(session=session, incident_id=incident_id)] == [
            evidence_id
        ]
    chain_intact(factory)
