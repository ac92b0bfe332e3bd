"""The collector end to end on SQLite and PostgreSQL: live messages of registered sources are
analysed as ``qorgan hunt`` analyses the same lines, a restart replays without duplicates,
bad messages are counted against their source, silent sources and drops raise alerts."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core.accounts import create_organisation
from qorgan.core.db import unit_of_work
from qorgan.core.models import OrganisationKind
from qorgan.detection.hunt import run_hunt
from qorgan.detection.loader import BUILTIN_RULES, load_plan
from qorgan.detection.plan import Plan
from qorgan.incidents.models import StoredAlert
from qorgan.pipeline import source_stats
from qorgan.pipeline.collector import Collector, CollectorConfig
from qorgan.pipeline.intake import DETECTION
from qorgan.pipeline.listeners import ListenerConfig
from qorgan.pipeline.models import LogSource, Overflow, SourceProblem
from qorgan.pipeline.sources import SourceError, create_source
from qorgan.telemetry.quarantine import Quarantine
from qorgan.telemetry.receivers import Peer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "logs"
LOCAL = Peer("http", "127.0.0.1")


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    return load_plan([BUILTIN_RULES], cache_dir=tmp_path_factory.mktemp("plans"))


@dataclass
class World:
    factory: sessionmaker[Session]
    org: int
    other: int
    root: Path
    plan: Plan

    def source(self, name: str, fmt: str, org: int | None = None, **options: object) -> int:
        with unit_of_work(self.factory) as session:
            source, _token = create_source(
                session=session,
                organisation_id=org or self.org,
                actor="test",
                name=name,
                transport=options.pop("transport", "http"),
                format=fmt,
                **options,  # type: ignore[arg-type]
            )
            return source.id

    def collector(self, **config: object) -> Collector:
        settings = {
            "listeners": ListenerConfig(),
            "bus_path": self.root / "bus" / "log.db",
            "archive_root": self.root / "events",
            **config,
        }
        collector = Collector(
            CollectorConfig(**settings),  # type: ignore[arg-type]
            factory=self.factory,
            plan=lambda: self.plan,
        )
        collector.start()
        return collector

    def alerts(self, org: int | None = None) -> list[StoredAlert]:
        with unit_of_work(self.factory) as session:
            return list(
                session.scalars(
                    select(StoredAlert).where(StoredAlert.organisation_id == (org or self.org))
                )
            )


@pytest.fixture
def world(factory: sessionmaker[Session], tmp_path: Path, plan: Plan) -> World:
    with unit_of_work(factory) as session:
        org = create_organisation(
            session=session, actor="t", name="Astana SOC", kind=OrganisationKind.soc
        )
        other = create_organisation(
            session=session, actor="t", name="Aktobe SOC", kind=OrganisationKind.soc
        )
        return World(factory, org.id, other.id, tmp_path, plan)


def until(check: Callable[[], bool], timeout: float = 60.0, about: object = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting: {about() if callable(about) else about}")
        time.sleep(0.05)


def where(collector: Collector) -> str:
    """Detection's place in the log, for a failure's message."""
    d = collector.detectors[0]
    return (
        f"detector offset {d.offset} (committed {d._committed_offset}), "
        f"log end {collector.bus.end(0)}, position {collector.bus.position(DETECTION, 0)}, "
        f"entries from 0: {[(e.first, len(e.messages)) for e in collector.bus.read(0, 0, 10**6)]}, "
        f"archive position {collector.bus.position('archive', 0)}, "
        f"threads alive {[t.name for t in collector._threads if t.is_alive()]}"
    )


def analysed(collector: Collector) -> bool:
    return collector.bus.lag(DETECTION) == 0


def lines(name: str) -> list[bytes]:
    return [line for line in (EXAMPLES / name).read_bytes().splitlines() if line.strip()]


def hunted(name: str, plan: Plan) -> Counter[tuple[str, str | None]]:
    """The rule alerts ``qorgan hunt`` finds in the example file: (rule id, event time)."""
    found: list = []
    run_hunt([EXAMPLES / name], plan, sink=found.extend, quarantine=Quarantine())
    return Counter((a.rule.id, a.time) for a in found if a.correlation is None)


@pytest.fixture
def running(world: World) -> Iterator[Callable[..., Collector]]:
    started: list[Collector] = []

    def start(**config: object) -> Collector:
        collector = world.collector(**config)
        started.append(collector)
        return collector

    yield start
    for collector in started:
        collector.stop()


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("auth.log", "syslog"), ("access.log", "accesslog"), ("windows-endpoint.jsonl", "json")],
)
def test_live_messages_give_the_alerts_a_hunt_gives(
    world: World, running: Callable[..., Collector], name: str, fmt: str
) -> None:
    source_id = world.source("feed", fmt, timezone="UTC")  # as a hunt reads zoneless times
    collector = running()
    source = collector.directory.get(source_id)
    assert source is not None
    messages = lines(name)
    for start in range(0, len(messages), 7):  # as a forwarder sends: small batches
        collector.intake.submit(source, messages[start : start + 7], LOCAL).result()
    until(lambda: analysed(collector))
    expected = hunted(name, world.plan)
    assert sum(expected.values()) > 3
    got = Counter(
        (a.rule_id, a.body["time"]) for a in world.alerts() if not a.body.get("correlation")
    )
    assert got == expected
    assert world.alerts(world.other) == []
    collector.stop()
    with unit_of_work(world.factory) as session:
        stored = session.get(LogSource, source_id)
        assert stored is not None
        assert stored.events == len(messages)
        assert stored.received_bytes == sum(map(len, messages))
        assert stored.last_event_at is not None and stored.analysed_through is not None
        assert stored.analysed_through >= stored.last_event_at - timedelta(seconds=1)
        rates = source_stats.rates(
            session=session, source_ids=[source_id], since=datetime.now(UTC) - timedelta(hours=1)
        )
        assert sum(r.events for r in rates[source_id]) == len(messages)


def test_alerts_stored_by_a_store_process_that_dies_are_all_there_once(
    world: World, running: Callable[..., Collector]
) -> None:
    """With ``store_process`` the alerts go to a child process; killed (SIGKILL) while
    detection goes on, it is replaced and the batches it had not answered are read again: the
    alerts are those a hunt gives, each once."""
    source_id = world.source("feed", "syslog", timezone="UTC")
    collector = running(store_process=True)
    detector = collector.detectors[0]
    assert detector.store_process is not None
    source = collector.directory.get(source_id)
    assert source is not None
    messages = lines("auth.log")
    half = len(messages) // 2
    for start in range(0, half, 7):
        collector.intake.submit(source, messages[start : start + 7], LOCAL).result()
    until(lambda: world.alerts(), about=lambda: where(collector))
    child = detector.store_process.process
    assert child is not None
    child.kill()
    for start in range(half, len(messages), 7):
        collector.intake.submit(source, messages[start : start + 7], LOCAL).result()
    until(lambda: analysed(collector), about=lambda: where(collector))
    expected = hunted("auth.log", world.plan)
    assert sum(expected.values()) > 3
    got = Counter(
        (a.rule_id, a.body["time"]) for a in world.alerts() if not a.body.get("correlation")
    )
    assert got == expected
    assert detector.store_process.process is not child  # replaced


def test_a_restart_replays_the_unfinished_and_duplicates_nothing(
    world: World, running: Callable[..., Collector], monkeypatch: pytest.MonkeyPatch
) -> None:
    import qorgan.pipeline.collector as collector_module

    # No trimming after the start: the log must still hold what the rolled-back position
    # points at (with the archive and detection both past it, a sweep may delete it).
    monkeypatch.setattr(collector_module, "SWEEP_EVERY", float("inf"))
    source_id = world.source("auth", "syslog")
    collector = running()
    source = collector.directory.get(source_id)
    assert source is not None
    messages = lines("auth.log")
    collector.intake.submit(source, messages, LOCAL).result()
    until(lambda: analysed(collector))
    first = sorted(a.fingerprint for a in world.alerts())
    assert first
    collector.stop()
    # As if the commit had not happened: the whole partition is read again.
    bus_path = world.root / "bus" / "log.db"
    import sqlite3

    with sqlite3.connect(bus_path) as db:
        db.execute("DELETE FROM positions WHERE consumer = ?", (DETECTION,))
    again = running()
    until(lambda: analysed(again), about=lambda: where(again))
    assert sorted(a.fingerprint for a in world.alerts()) == first


def test_messages_a_format_cannot_read_are_counted_with_examples(
    world: World, running: Callable[..., Collector]
) -> None:
    source_id = world.source("windows", "json")
    collector = running()
    source = collector.directory.get(source_id)
    assert source is not None
    good = lines("windows-endpoint.jsonl")[:3]
    bad = [b"{not json", b"\xff\xfe\x00 binary", b'{"unterminated": "\\ud800']
    collector.intake.submit(source, [*good, *bad], LOCAL).result()
    until(lambda: analysed(collector))
    collector.stop()
    with unit_of_work(world.factory) as session:
        stored = session.get(LogSource, source_id)
        assert stored is not None
        assert stored.events == 6
        assert stored.parse_failures == 3
        problems = session.scalars(
            select(SourceProblem).where(SourceProblem.source_id == source_id)
        ).all()
        assert len(problems) == 3
        assert any("{not json" in p.excerpt for p in problems)


def test_a_silent_source_raises_one_alert_and_recovers(
    world: World, running: Callable[..., Collector]
) -> None:
    quiet = world.source("quiet", "syslog", expected_interval=60)
    talking = world.source("talking", "syslog", expected_interval=60)
    now = datetime.now(UTC)
    with unit_of_work(world.factory) as session:
        session.get(LogSource, quiet).created_at = now - timedelta(minutes=5)  # type: ignore[union-attr]
        session.get(LogSource, talking).last_event_at = now - timedelta(seconds=30)  # type: ignore[union-attr]
    for _ in range(2):  # a second sweep raises nothing more
        with unit_of_work(world.factory) as session:
            newly = source_stats.check_silence(session=session, now=now)
    alerts = [a for a in world.alerts() if a.rule_id == "qorgan-collector-silent-source"]
    assert len(alerts) == 1 and alerts[0].body["event"]["source"] == "quiet"
    assert newly == []
    # It sends again: the silence ends, and a later one is alerted anew.
    with unit_of_work(world.factory) as session:
        session.get(LogSource, quiet).last_event_at = now + timedelta(seconds=1)  # type: ignore[union-attr]
    with unit_of_work(world.factory) as session:
        assert source_stats.check_silence(session=session, now=now + timedelta(seconds=2)) == []
        assert session.get(LogSource, quiet).silent_since is None  # type: ignore[union-attr]
    with unit_of_work(world.factory) as session:
        later = now + timedelta(minutes=10)
        assert source_stats.check_silence(session=session, now=later) == [quiet, talking]
    assert len([a for a in world.alerts() if a.rule_id == "qorgan-collector-silent-source"]) == 3


def test_overloaded_intake_holds_waiting_sources_and_counts_drops(
    world: World, running: Callable[..., Collector]
) -> None:
    waits = world.source("waits", "syslog")
    drops = world.source("drops", "syslog", overflow=Overflow.drop)
    collector = running(max_lag=5)
    for detector in collector.detectors:  # detection stalls
        detector.reload = lambda: None  # type: ignore[method-assign]
    waiting = collector.directory.get(waits)
    dropping = collector.directory.get(drops)
    assert waiting is not None and dropping is not None
    collector.intake._overloaded = True  # as the housekeeping finds it when the lag passes
    assert collector.intake.holds(waiting) and not collector.intake.holds(dropping)
    assert collector.intake.submit(dropping, [b"x"] * 10, LOCAL) is None
    collector.stop()
    with unit_of_work(world.factory) as session:
        assert session.get(LogSource, drops).dropped == 10  # type: ignore[union-attr]
    alerts = [a for a in world.alerts() if a.rule_id == "qorgan-collector-dropped-events"]
    assert len(alerts) == 1 and alerts[0].body["event"]["dropped"] == 10


def test_sources_are_checked_when_registered(world: World) -> None:
    from qorgan.pipeline.sources import LIVE_FORMATS

    for fmt in LIVE_FORMATS:  # every format a live source may declare is one we read
        world.source(f"in {fmt}", fmt, org=world.other)
    with pytest.raises(SourceError, match="unknown live format"):
        world.source("x", "evtx")
    with pytest.raises(SourceError, match="time zone"):
        world.source("x", "syslog", timezone="Mars/Olympus")
    with pytest.raises(SourceError, match="not an address"):
        world.source("x", "syslog", transport="tcp", senders=["10.0.0.300"])
    world.source("x", "syslog", transport="tcp", senders=["10.0.0.0/24"])
    with pytest.raises(SourceError, match="already has a source named"):
        world.source("x", "syslog")
    with pytest.raises(SourceError, match="already takes these senders"):
        world.source("y", "syslog", transport="tcp", senders=["10.0.0.0/24"])
    # Another organisation may name its source the same; a narrower network is no overlap.
    world.source("x", "syslog", org=world.other, transport="tcp", senders=["10.0.0.7"])
    with unit_of_work(world.factory) as session:
        assert session.scalar(select(func.count()).select_from(LogSource)) == 2 + len(LIVE_FORMATS)


def test_the_archive_gives_a_new_hunt_the_same_alerts(
    world: World, running: Callable[..., Collector]
) -> None:
    from qorgan.incidents.alerts import fingerprint
    from qorgan.pipeline.archive import archived_files, read_archive

    auth = world.source("auth", "syslog", timezone="UTC")
    web = world.source("web", "accesslog", org=world.other, timezone="UTC")
    collector = running()
    for source_id, name in ((auth, "auth.log"), (web, "access.log")):
        source = collector.directory.get(source_id)
        assert source is not None
        collector.intake.submit(source, lines(name), LOCAL).result()
    until(lambda: analysed(collector))
    collector.stop()  # the archiver writes what waited for a full file
    root = world.root / "events"
    since = datetime.now(UTC) - timedelta(days=1)
    mine = archived_files(root, since=since, organisation_ids=[world.org])
    assert mine and all(f"org={world.org}" in str(f) for f in mine)
    assert len(archived_files(root, since=since)) == 2
    # Nothing received before the window's day is read.
    assert archived_files(root, since=datetime.now(UTC) + timedelta(days=2)) == []

    for org, files in (
        (world.org, mine),
        (world.other, archived_files(root, since=since, organisation_ids=[world.other])),
    ):
        found: list = []
        unread = Quarantine()
        summary, _ = run_hunt(
            [],
            world.plan,
            sink=found.extend,
            quarantine=unread,
            batches=read_archive(files, unread, since=since),
        )
        sent = lines("auth.log" if org == world.org else "access.log")
        assert summary.events + unread.count == len(sent)
        again = {fingerprint(a.to_dict()) for a in found if a.correlation is None}
        live = {a.fingerprint for a in world.alerts(org) if not a.body.get("correlation")}
        assert again and again == live


def test_rules_are_reloaded_without_a_restart(
    world: World, running: Callable[..., Collector], tmp_path: Path
) -> None:
    source_id = world.source("auth", "syslog", timezone="UTC")
    empty = tmp_path / "no-rules"
    empty.mkdir()
    plans = iter([load_plan([empty]), world.plan])
    started = Collector(
        CollectorConfig(
            listeners=ListenerConfig(), bus_path=world.root / "bus" / "log.db", archive_root=None
        ),
        factory=world.factory,
        plan=lambda: next(plans),
    )
    started.start()
    try:
        source = started.directory.get(source_id)
        assert source is not None
        messages = lines("auth.log")
        started.intake.submit(source, messages, LOCAL).result()
        until(lambda: analysed(started))
        assert world.alerts() == []  # no rules yet
        started.reload_rules()
        started.intake.submit(source, messages, LOCAL).result()
        until(lambda: analysed(started) and bool(world.alerts()))
        assert {a.rule_title for a in world.alerts()} >= {"SSH Password Authentication Failed"}
    finally:
        started.stop()


def test_each_organisation_keeps_its_archive_as_long_as_it_says(tmp_path: Path) -> None:
    from qorgan.pipeline.archive import Archiver
    from qorgan.pipeline.sqlite_bus import SqliteBus

    root = tmp_path / "events"
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    for org in (1, 2, 3):
        for back in (0, 1, 6, 7, 30):
            day = (now - timedelta(days=back)).date().isoformat()
            (root / f"org={org}" / f"day={day}" / "source=1").mkdir(parents=True)
    bus = SqliteBus(tmp_path / "bus.db", writer=False)
    archiver = Archiver(bus, root, directory=None, days=7, days_by_organisation={2: 1, 3: 0})  # type: ignore[arg-type]
    archiver.expire(now)
    left = sorted(
        (int(p.parent.name[4:]), (now.date() - datetime.fromisoformat(p.name[4:]).date()).days)
        for p in root.glob("org=*/day=*")
    )
    # Seven days for the default, one (today) for organisation 2, none for organisation 3.
    assert left == [(1, 0), (1, 1), (1, 6), (2, 0)]
    bus.close()


def _export(directory: Path, org: int, value: str, ref: str) -> None:
    """What ``qorgan intel indicators`` writes: a new file renamed into place."""
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f"indicators-{org}.jsonl.partial"
    line = {"kind": "ipv4-addr", "value": value, "ref": ref, "source": "KZ-CERT", "confidence": 90}
    partial.write_text(json.dumps(line) + "\n", encoding="utf-8")
    partial.replace(directory / f"indicators-{org}.jsonl")


def test_live_monitoring_matches_each_organisations_indicators_and_follows_a_new_export(
    world: World, running: Callable[..., Collector]
) -> None:
    intel = world.root / "intel"
    first = "indicator--6f0a6b8e-1d2c-4e3f-8a9b-0c1d2e3f4a5b"
    second = "indicator--7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    _export(intel, world.org, "198.51.100.23", first)
    # The other organisation's indicator names the address of the first batch: it must not
    # fire on this organisation's events.
    _export(intel, world.other, "10.20.3.14", "indicator--00000000-0000-4000-8000-000000000001")
    source_id = world.source("web", "accesslog", timezone="UTC")
    collector = running(indicators_dir=intel)
    source = collector.directory.get(source_id)
    assert source is not None
    messages = lines("access.log")

    def fired(ref: str) -> list[str]:
        return sorted(a.body["time"] for a in world.alerts() if a.rule_id == ref)

    collector.intake.submit(source, messages, LOCAL).result()
    until(lambda: analysed(collector))
    assert len(fired(first)) == 3  # the three requests of 198.51.100.23
    alert = next(a for a in world.alerts() if a.rule_id == first)
    assert "intel.source.KZ-CERT" in alert.body["rule"]["tags"]
    assert alert.level == "high"  # confidence 90
    assert all(not a.rule_id.endswith("000000000001") for a in world.alerts())
    assert world.alerts(world.other) == []
    # A new export replaces the set at the next batch: the old indicator stops, the new fires.
    _export(intel, world.org, "203.0.113.45", second)
    collector.intake.submit(source, messages, LOCAL).result()
    until(lambda: analysed(collector))
    assert len(fired(first)) == 3 and len(fired(second)) == 3


def test_live_anomaly_models_run_once_approved_propose_findings_and_heed_an_objection(
    world: World,
    running: Callable[..., Collector],
    shared_file: Callable[[str], Path],
    ssh_attack: Callable[..., list[str]],
) -> None:
    from qorgan.core.accounts import create_user
    from qorgan.core.roles import Role
    from qorgan.incidents import findings as store
    from qorgan.incidents.finding_models import AnomalyFinding

    key = b"k" * 32
    source_id = world.source("ssh", "syslog", timezone="UTC")
    collector = running(anomaly_key=key)
    live = collector.detectors[0].anomaly
    assert live is not None
    live.refresh = 0.0  # people's decisions read at every batch, not every five seconds
    source = collector.directory.get(source_id)
    assert source is not None
    log = shared_file("loghub/OpenSSH/OpenSSH_2k.log").read_bytes().splitlines()

    def submit(lines: list[bytes]) -> None:
        collector.intake.submit(source, lines, LOCAL).result()
        until(lambda: analysed(collector))

    def proposed() -> list[AnomalyFinding]:
        with unit_of_work(world.factory) as session:
            return list(
                session.scalars(
                    select(AnomalyFinding).where(AnomalyFinding.organisation_id == world.org)
                )
            )

    # Unapproved, the models are entered in the register but do not run.
    submit(log[:1000])
    with unit_of_work(world.factory) as session:
        register = store.list_models(session, world.org)
        assert {m.name for m in register} == {
            "qorgan-template-rarity",
            "qorgan-template-frequency",
            "qorgan-line-rarity",
            "qorgan-entity-behaviour",
            "qorgan-session-ngram",
        }
        assert all(m.approved_at is None for m in register)
        approver = create_user(
            session=session,
            actor="t",
            organisation_id=world.org,
            email="ciso@astana.kz",
            display_name="CISO",
            role=Role.administrator,
            password="a long enough passphrase 1",
        )
        store.approve_model(
            session,
            organisation_id=world.org,
            name="qorgan-entity-behaviour",
            version="1.0",
            approver=approver.id,
            actor="t",
        )
        approver_id = approver.id
    assert proposed() == []

    # Approved, the entity model learns the log and proposes the attack: a pending finding,
    # not an alert.
    submit(log[1000:])
    alerts_before = len(world.alerts())
    submit([line.encode() for line in ssh_attack()])
    logons = [f for f in proposed() if f.detector == "entity.logon"]
    assert len(logons) == 1 and logons[0].status == "pending"
    assert logons[0].body["contributions"][0]["feature"] == "logon.after_failures"
    assert not any("ai.generated" in a.body["rule"]["tags"] for a in world.alerts())
    assert len(world.alerts()) >= alerts_before  # the rules' alerts, none from the model

    # fztu objects: the same attack from a new address is no longer scored.
    with unit_of_work(world.factory) as session:
        store.exclude(
            session,
            organisation_id=world.org,
            identifiers=["fztu"],
            key=key,
            actor=approver_id,
            request_ref="letter 2026/118",
        )
    again = ssh_attack(address="185.220.101.99")
    submit([line.encode() for line in again])
    assert [f.id for f in proposed() if f.detector == "entity.logon"] == [logons[0].id]
    assert live.suites[world.org].skipped_events >= len(again)
    # The other organisation's models saw none of it.
    assert world.org in live.suites and world.other not in live.suites
