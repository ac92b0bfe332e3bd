"""Hunt jobs on SQLite and PostgreSQL: a real hunt over examples/logs lands its alerts in the
store, a repeat adds none, failures end the job with a reason, a restart marks leftovers."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import audit
from qorgan.core.accounts import create_organisation, create_user
from qorgan.core.db import unit_of_work
from qorgan.core.models import AuditEntry, OrganisationKind, Role
from qorgan.detection.hunt import run_hunt
from qorgan.detection.loader import BUILTIN_RULES, load_plan
from qorgan.detection.plan import Plan
from qorgan.incidents.alerts import fingerprint
from qorgan.incidents.models import StoredAlert
from qorgan.pipeline import hunts
from qorgan.pipeline.hunts import HuntError, HuntRunner, create_hunt, execute
from qorgan.pipeline.models import Hunt, HuntSource, HuntStatus
from qorgan.telemetry.quarantine import Quarantine

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "logs"
PASSWORD = "Qorgan-Test-Passphrase-2026!"


@pytest.fixture(scope="session")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    """The built-in rule pack, compiled once for the whole session."""
    return load_plan([BUILTIN_RULES], cache_dir=tmp_path_factory.mktemp("plans"))


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
    factory: sessionmaker[Session], org: Org, logs: Path, plan: Plan
) -> None:
    loads: list[int] = []

    def small_plan() -> Plan:
        loads.append(1)
        return plan

    runner = HuntRunner(factory, plan=small_plan)
    try:
        ids = [new_hunt(factory, org, [logs / name]) for name in ("auth.log", "access.log")]
        futures = [runner.submit(i) for i in ids]
        for future in futures:
            assert future.result(timeout=120) is None
    finally:
        runner.shutdown()
    assert [load(factory, i).status for i in ids] == [HuntStatus.done, HuntStatus.done]
    assert len(loads) == 2


def test_recover_marks_interrupted_hunts(
    factory: sessionmaker[Session], org: Org, logs: Path, plan: Plan
) -> None:
    done = new_hunt(factory, org, [logs / "access.log"])
    execute(done, factory=factory, plan=plan)
    queued = new_hunt(factory, org, [logs])
    running = new_hunt(factory, org, [logs])
    with unit_of_work(factory) as session:
        row = session.get(Hunt, running)
        assert row is not None
        row.status = HuntStatus.running

    runner = HuntRunner(factory, plan=lambda: plan)
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
