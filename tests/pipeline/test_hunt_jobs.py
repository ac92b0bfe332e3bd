"""Hunt jobs on SQLite and PostgreSQL: a real hunt over examples/logs lands its alerts in the
store, a repeat adds none, failures end the job with a reason, a restart marks leftovers."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import audit
from qorgan.core.accounts import create_organisation, create_user
from qorgan.core.db import unit_of_work
from qorgan.core.models import AuditEntry, OrganisationKind, Role
from qorgan.core.settings import Settings
from qorgan.detection.hunt import run_hunt
from qorgan.detection.loader import BUILTIN_RULES, load_plan
from qorgan.detection.plan import Plan
from qorgan.incidents.alerts import fingerprint
from qorgan.incidents.models import StoredAlert
from qorgan.pipeline import hunts
from qorgan.pipeline.hunts import HuntError, HuntRunner, PlanSpec, create_hunt, execute
from qorgan.pipeline.models import Hunt, HuntSource, HuntStatus
from qorgan.telemetry.quarantine import Quarantine

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "logs"
PASSWORD = "Qorgan-Test-Passphrase-2026!"


@pytest.fixture(scope="session")
def plans(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the session's compiled plans are cached (hunt processes load them from there)."""
    return tmp_path_factory.mktemp("plans")


@pytest.fixture(scope="session")
def plan(plans: Path) -> Plan:
    """The built-in rule pack, compiled once for the whole session."""
    return load_plan([BUILTIN_RULES], cache_dir=plans)


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """A copy of examples/logs, as if uploaded (the quarantine is written next to it)."""
    target = tmp_path / "upload"
    shutil.copytree(EXAMPLES, target)
    return target


@dataclass
class Org:
    id: int
    user: int
    other: int  # a second organisation


@pytest.fixture
def org(factory: sessionmaker[Session]) -> Org:
    with unit_of_work(factory) as session:
        almaty = create_organisation(
            session=session, actor="system", name="Almaty SOC", kind=OrganisationKind.soc
        )
        other = create_organisation(
            session=session, actor="system", name="Shymkent SOC", kind=OrganisationKind.soc
        )
        user = create_user(
            session=session,
            actor="system",
            organisation_id=almaty.id,
            email="hunter@almaty.kz",
            display_name="Hunter",
            role=Role.soc_analyst,
            password=PASSWORD,
        )
        return Org(almaty.id, user.id, other.id)


def new_hunt(
    factory: sessionmaker[Session],
    org: Org,
    paths: list[Path],
    source: HuntSource = HuntSource.upload,
) -> int:
    with unit_of_work(factory) as session:
        return create_hunt(
            session=session, organisation_id=org.id, user_id=org.user, paths=paths, source=source
        ).id


def load(factory: sessionmaker[Session], hunt_id: int) -> Hunt:
    with unit_of_work(factory) as session:
        hunt = session.get(Hunt, hunt_id)
        assert hunt is not None
        return hunt


def expected_alerts(paths: list[Path], plan: Plan) -> list[dict]:
    """What ``qorgan hunt`` writes for the same files: the store must hold exactly these."""
    found: list[dict] = []
    run_hunt(
        paths, plan, sink=lambda a: found.extend(x.to_dict() for x in a), quarantine=Quarantine()
    )
    return found


def test_a_real_hunt_lands_in_the_store(
    factory: sessionmaker[Session], org: Org, logs: Path, plan: Plan
) -> None:
    files = sorted(logs.iterdir())
    total = sum(f.stat().st_size for f in files)
    hunt_id = new_hunt(factory, org, [logs])
    queued = load(factory, hunt_id)
    assert (queued.status, queued.total_bytes, queued.done_bytes) == (HuntStatus.queued, total, 0)
    assert queued.paths == [str(logs)] and queued.created_by == org.user

    execute(hunt_id, factory=factory, plan=plan)

    hunt = load(factory, hunt_id)
    assert hunt.status is HuntStatus.done, hunt.error
    assert hunt.error is None
    assert hunt.done_bytes == hunt.total_bytes == total
    assert hunt.started_at is not None and hunt.finished_at is not None
    assert hunt.created_at <= hunt.started_at <= hunt.finished_at
    expected = expected_alerts([logs], plan)
    assert len(expected) > 50
    assert hunt.alerts_found == hunt.alerts_new == len(expected)
    assert hunt.events == 92 and hunt.quarantined == 3

    with unit_of_work(factory) as session:
        stored = session.scalars(select(StoredAlert).where(StoredAlert.hunt_id == hunt_id)).all()
        assert {a.fingerprint for a in stored} == {fingerprint(a) for a in expected}
        assert {a.organisation_id for a in stored} == {org.id}
        titles = {a.rule_title for a in stored}
        assert {"Shadow Copies Deleted", "SQL Injection Attempt In Request"} <= titles
        assert any(a.body["source"]["format"] == "correlation" for a in stored)
        assert any(a.kz_cert_class for a in stored)

    quarantine = hunts.quarantine_path(hunt)
    assert quarantine is not None and quarantine.parent == logs.parent
    records = [orjson.loads(line) for line in quarantine.read_bytes().splitlines()]
    assert len(records) == 3 and all(r["reason"] for r in records)

    with unit_of_work(factory) as session:
        finish = session.scalars(select(AuditEntry).where(AuditEntry.action == "hunt.finish")).one()
        assert finish.details == {
            "status": "done",
            "events": 92,
            "alerts_found": len(expected),
            "alerts_new": len(expected),
            "findings": 0,
            "quarantined": 3,
        }
        assert finish.actor == str(org.user) and finish.target_id == str(hunt_id)
        ingests = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "alerts.ingest")
        ).all()
        assert sum(e.details["created"] for e in ingests) == len(expected)
        assert audit.verify(session=session) == []


def test_a_second_hunt_over_the_same_files_adds_nothing(
    factory: sessionmaker[Session], org: Org, logs: Path, plan: Plan
) -> None:
    first = new_hunt(factory, org, [logs])
    execute(first, factory=factory, plan=plan)
    second = new_hunt(factory, org, [logs])
    execute(second, factory=factory, plan=plan)
    done = load(factory, second)
    assert done.status is HuntStatus.done
    assert done.alerts_found == load(factory, first).alerts_new > 0
    assert done.alerts_new == 0
    with unit_of_work(factory) as session:
        counts = dict(
            session.execute(
                select(StoredAlert.hunt_id, func.count()).group_by(StoredAlert.hunt_id)
            ).all()
        )
    assert counts == {first: done.alerts_found}


def test_min_level(factory: sessionmaker[Session], org: Org, logs: Path, plan: Plan) -> None:
    hunt_id = new_hunt(factory, org, [logs / "auth.log"], source=HuntSource.server)
    execute(hunt_id, factory=factory, plan=plan, min_level="high")
    hunt = load(factory, hunt_id)
    assert hunt.status is HuntStatus.done and hunt.alerts_found > 0
    assert hunts.quarantine_path(hunt) is None  # server folders are not written to
    with unit_of_work(factory) as session:
        levels = set(session.scalars(select(StoredAlert.level).distinct()))
    assert levels == {"high"}


def test_create_refuses_what_cannot_be_hunted(
    factory: sessionmaker[Session], org: Org, tmp_path: Path
) -> None:
    with pytest.raises(HuntError, match="no such file"), unit_of_work(factory) as session:
        create_hunt(
            session=session,
            organisation_id=org.id,
            user_id=org.user,
            paths=[tmp_path / "absent.log"],
            source="upload",
        )
    with pytest.raises(HuntError, match="at least one"), unit_of_work(factory) as session:
        create_hunt(
            session=session, organisation_id=org.id, user_id=org.user, paths=[], source="upload"
        )
    with pytest.raises(HuntError, match="unknown hunt source"), unit_of_work(factory) as session:
        create_hunt(
            session=session,
            organisation_id=org.id,
            user_id=org.user,
            paths=[tmp_path],
            source="ftp",
        )


def _failed(factory: sessionmaker[Session], hunt_id: int) -> Hunt:
    hunt = load(factory, hunt_id)
    assert hunt.status is HuntStatus.failed
    assert hunt.finished_at is not None and hunt.error
    return hunt


def test_a_file_gone_before_the_hunt_fails_it(
    factory: sessionmaker[Session], org: Org, tmp_path: Path, plan: Plan
) -> None:
    log = tmp_path / "auth.log"
    shutil.copy(EXAMPLES / "auth.log", log)
    hunt_id = new_hunt(factory, org, [log])
    log.unlink()
    execute(hunt_id, factory=factory, plan=plan)
    hunt = _failed(factory, hunt_id)
    assert "no such file or directory" in (hunt.error or "")
    with unit_of_work(factory) as session:
        finish = session.scalars(select(AuditEntry).where(AuditEntry.action == "hunt.finish")).one()
        assert finish.details["status"] == "failed"
        assert audit.verify(session=session) == []


def test_an_unreadable_file_fails_the_hunt(
    factory: sessionmaker[Session], org: Org, tmp_path: Path, plan: Plan
) -> None:
    junk = tmp_path / "disk.img"
    junk.write_bytes(bytes(range(256)) * 64)
    hunt_id = new_hunt(factory, org, [junk])
    execute(hunt_id, factory=factory, plan=plan)
    hunt = _failed(factory, hunt_id)
    assert "no event could be read" in (hunt.error or "") and "disk.img" in (hunt.error or "")
    assert hunt.quarantined == 1 and hunt.events == 0


def test_a_plan_that_fails_fails_the_hunt(
    factory: sessionmaker[Session], org: Org, logs: Path
) -> None:
    def broken() -> Plan:
        raise RuntimeError("rule pack damaged")

    hunt_id = new_hunt(factory, org, [logs])
    execute(hunt_id, factory=factory, plan=broken)  # never raises
    assert _failed(factory, hunt_id).error == "RuntimeError: rule pack damaged"
    other = new_hunt(factory, org, [logs])
    execute(other, factory=factory, plan=broken, min_level="severe")
    assert "unknown level 'severe'" in (_failed(factory, other).error or "")


def test_execute_runs_a_hunt_only_once(
    factory: sessionmaker[Session], org: Org, logs: Path, plan: Plan
) -> None:
    hunt_id = new_hunt(factory, org, [logs / "access.log"])
    execute(hunt_id, factory=factory, plan=plan)
    finished = load(factory, hunt_id).finished_at
    execute(hunt_id, factory=factory, plan=plan)  # not queued any more: left alone
    execute(10**6, factory=factory, plan=plan)  # no such hunt: nothing happens
    assert load(factory, hunt_id).finished_at == finished


def test_runner_runs_submitted_hunts(
    factory: sessionmaker[Session], settings: Settings, org: Org, logs: Path, plans: Path
) -> None:
    """Each hunt runs in its own process, which loads the plan from rule folders (here the
    built-in pack, from the session's cache) and writes its results to the database."""
    runner = HuntRunner(factory, settings=settings, plan=PlanSpec((BUILTIN_RULES,), plans))
    try:
        ids = [new_hunt(factory, org, [logs / name]) for name in ("auth.log", "access.log")]
        futures = [runner.submit(i) for i in ids]
        for future in futures:
            assert future.result(timeout=120) is None
    finally:
        runner.shutdown()
    hunts_run = [load(factory, i) for i in ids]
    assert [h.status for h in hunts_run] == [HuntStatus.done, HuntStatus.done]
    assert all(h.alerts_found > 0 and h.error is None for h in hunts_run)


def test_recover_marks_interrupted_hunts(
    factory: sessionmaker[Session], settings: Settings, org: Org, logs: Path, plan: Plan
) -> None:
    done = new_hunt(factory, org, [logs / "access.log"])
    execute(done, factory=factory, plan=plan)
    queued = new_hunt(factory, org, [logs])
    running = new_hunt(factory, org, [logs])
    with unit_of_work(factory) as session:
        row = session.get(Hunt, running)
        assert row is not None
        row.status = HuntStatus.running

    runner = HuntRunner(factory, settings=settings)
    try:
        assert runner.recover(factory) == [queued, running]
        assert runner.recover() == []  # nothing left
    finally:
        runner.shutdown()
    for hunt_id in (queued, running):
        assert _failed(factory, hunt_id).error == hunts.INTERRUPTED
    assert load(factory, done).status is HuntStatus.done
    with unit_of_work(factory) as session:
        entries = session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "hunt.finish", AuditEntry.actor == "system"
            )
        ).all()
        assert [e.target_id for e in entries] == [str(queued), str(running)]
        assert audit.verify(session=session) == []


def test_hunts_are_visible_to_their_organisation(
    factory: sessionmaker[Session], org: Org, logs: Path
) -> None:
    first = new_hunt(factory, org, [logs])
    second = new_hunt(factory, org, [logs / "auth.log"])
    with unit_of_work(factory) as session:
        listed = hunts.list_hunts(session=session, organisation_ids=[org.id])
        assert [h.id for h in listed] == [second, first]
        assert hunts.list_hunts(session=session, organisation_ids=[org.other]) == []
        assert hunts.list_hunts(session=session, organisation_ids=[org.id], limit=1)[0].id == second
        assert hunts.get_hunt(session=session, organisation_ids=[org.id], hunt_id=first) is not None
        assert hunts.get_hunt(session=session, organisation_ids=[org.other], hunt_id=first) is None
        create = session.scalars(select(AuditEntry).where(AuditEntry.action == "hunt.create")).all()
        assert create[0].details == {
            "source": "upload",
            "files": 3,
            "total_bytes": sum(f.stat().st_size for f in logs.iterdir()),
            "anomaly": False,
        }


def test_default_plan_is_the_built_in_pack_loaded_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("QORGAN_CACHE_DIR", str(tmp_path))
    hunts.default_plan.cache_clear()
    try:
        first: Callable[[], Plan] = hunts.default_plan
        plan = first()
        assert plan is hunts.default_plan()
        assert len(plan.rules) > 40 and not plan.failures
    finally:
        hunts.default_plan.cache_clear()


def _runner(
    factory: sessionmaker[Session], settings: Settings, plans: Path, **overrides: object
) -> HuntRunner:
    return HuntRunner(
        factory,
        settings=settings.model_copy(update=overrides),
        plan=PlanSpec((BUILTIN_RULES,), plans),
    )


def huge_line(path: Path, size: int) -> Path:
    """A JSON-lines file whose first line is ``size`` bytes long: a sparse file, so it costs
    no disk and no time to write, only memory to whoever reads the line whole."""
    with path.open("wb") as out:
        out.write(b'{"message": "')
        out.truncate(size)
    return path


def test_a_hunt_over_its_memory_limit_fails_and_the_runner_goes_on(
    factory: sessionmaker[Session], settings: Settings, org: Org, logs: Path, plans: Path
) -> None:
    """A 600 MiB line, with the record limit raised past it, needs more than the 512 MiB the
    hunt's process may use: that hunt fails with the reason, and the next one runs."""
    greedy = huge_line(logs.parent / "greedy.json", 600 << 20)
    runner = _runner(factory, settings, plans, hunt_memory_mib=512, hunt_max_record_mib=1024)
    try:
        failed = new_hunt(factory, org, [greedy])
        runner.submit(failed).result(timeout=120)
        fine = new_hunt(factory, org, [logs / "auth.log"])
        runner.submit(fine).result(timeout=120)
    finally:
        runner.shutdown()
    assert _failed(factory, failed).error == "the hunt exceeded its memory limit of 512 MiB"
    after = load(factory, fine)
    assert after.status is HuntStatus.done and after.alerts_found > 0
    with unit_of_work(factory) as session:
        finish = session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "hunt.finish", AuditEntry.target_id == str(failed)
            )
        ).one()
        assert finish.details["status"] == "failed"
        assert audit.verify(session=session) == []


def test_a_hunt_process_that_dies_is_failed_by_the_runner(
    factory: sessionmaker[Session], settings: Settings, org: Org, logs: Path, plans: Path
) -> None:
    """With too little memory to even start, the hunt's process dies before it can record
    anything: the runner marks the hunt failed, with the reason, and audits it."""
    runner = _runner(factory, settings, plans, hunt_memory_mib=48)
    try:
        hunt_id = new_hunt(factory, org, [logs / "auth.log"])
        runner.submit(hunt_id).result(timeout=120)
    finally:
        runner.shutdown()
    hunt = _failed(factory, hunt_id)
    assert hunt.error == "the hunt exceeded its memory limit of 48 MiB"
    assert hunt.started_at is None  # it never began: the runner recorded the end
    with unit_of_work(factory) as session:
        finish = session.scalars(select(AuditEntry).where(AuditEntry.action == "hunt.finish")).one()
        assert (finish.actor, finish.details["was"]) == ("system", "queued")


@pytest.mark.corpus
def test_console_hunts_read_zoneless_syslog_in_the_configured_zone(
    factory: sessionmaker[Session],
    settings: Settings,
    org: Org,
    tmp_path: Path,
    plans: Path,
    shared_file: Callable[[str], Path],
) -> None:
    """A real RFC 3164 line (no zone): its alert's time is the line's time in QORGAN_TIMEZONE
    (Asia/Almaty by default), stored in UTC."""
    line = shared_file("loghub/Linux/Linux_2k.log").read_bytes().splitlines(keepends=True)[0]
    assert line.startswith(b"Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure")
    times = {}
    for zone in ("Asia/Almaty", "UTC"):
        log = tmp_path / zone.replace("/", "-") / "auth.log"
        log.parent.mkdir()
        log.write_bytes(line)
        stamp = datetime(2025, 12, 31, tzinfo=UTC).timestamp()  # the year comes from the mtime
        os.utime(log, (stamp, stamp))
        runner = _runner(factory, settings, plans, timezone=zone)
        try:
            hunt_id = new_hunt(factory, org, [log])
            runner.submit(hunt_id).result(timeout=120)
        finally:
            runner.shutdown()
        assert load(factory, hunt_id).status is HuntStatus.done
        with unit_of_work(factory) as session:
            times[zone] = set(
                session.scalars(select(StoredAlert.time).where(StoredAlert.hunt_id == hunt_id))
            )
    assert Settings.model_fields["timezone"].default == "Asia/Almaty"
    assert times == {
        "Asia/Almaty": {datetime(2025, 6, 14, 10, 16, 1, tzinfo=UTC)},
        "UTC": {datetime(2025, 6, 14, 15, 16, 1, tzinfo=UTC)},
    }
