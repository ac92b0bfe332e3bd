"""The alert store on SQLite and PostgreSQL: idempotent ingestion, filters, groups, timelines,
triage with its audit trail, and the ingestion schema refusing bad alerts."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import audit
from qorgan.core.accounts import create_organisation, create_user
from qorgan.core.db import unit_of_work
from qorgan.core.models import AuditEntry, OrganisationKind, PasswordHistory, Role, User
from qorgan.detection import alerts as detection_alerts
from qorgan.incidents import alerts as store
from qorgan.incidents import inbox, triage
from qorgan.incidents.alerts import AlertError, NotFound
from qorgan.incidents.inbox import AlertFilter
from qorgan.incidents.models import LEVELS, AlertLevel, AlertStatus, StoredAlert
from qorgan.incidents.schemas import (
    MAX_EVENT_BYTES,
    AlertDetail,
    AlertIn,
    AlertOut,
)

PASSWORD = "Qorgan-Test-Passphrase-2026!"
SSH_RULE = "8f0f2f7e-1d3a-4c55-9c61-0b7a3e1d2c11"
WEB_RULE = "629c3fa5-968c-43ad-8f83-a34c365f6328"
ALMATY = timezone(timedelta(hours=5))


def alert(
    record: int,
    *,
    rule_id: str = SSH_RULE,
    title: str = "SSH Password Authentication Failed",
    level: str = "low",
    time: str | None = "2026-11-20T05:00:00Z",
    host: str | None = "akimat-srv-01",
    kz_cert: str | None = "credential-attack",
    event: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An alert in the documented JSON shape (docs/alerts.md)."""
    out: dict[str, Any] = {
        "rule": {
            "id": rule_id,
            "title": title,
            "level": level,
            "tags": ["attack.credential-access", "attack.t1110"],
            "status": "experimental",
            "path": "src/qorgan/detection/rules/linux/lnx_sshd_failed_password.yml",
        },
        "time": time,
        "host": host,
        "source": {"path": "/var/log/auth.log", "record": record, "format": "syslog"},
        "event": event if event is not None else {"user": "aigerim", "src_ip": "203.0.113.77"},
    }
    if kz_cert is not None:
        out["classification"] = {
            "kz_cert": kz_cert,
            "kz_cert_label": {"kk": "…", "ru": "…", "en": "Credential attacks"},
            "rsit": {"class": "intrusion-attempts", "type": "brute-force"},
            "criminal_code": ["205"],
            "attack": {"techniques": ["T1110"], "tactics": ["credential-access"]},
            "source": "rule",
        }
    return out


def parsed(*alerts: dict[str, Any]) -> list[AlertIn]:
    return [AlertIn.model_validate(a) for a in alerts]


@dataclass
class World:
    """Two organisations; Almaty has an analyst and a colleague, Astana an analyst."""

    almaty: int
    astana: int
    analyst: int
    colleague: int
    outsider: int


@pytest.fixture
def world(factory: sessionmaker[Session]) -> World:
    with unit_of_work(factory) as session:
        almaty = create_organisation(
            session=session, actor="system", name="Almaty akimat", kind=OrganisationKind.akimat
        )
        astana = create_organisation(
            session=session, actor="system", name="Astana akimat", kind=OrganisationKind.akimat
        )
        users = [
            create_user(
                session=session,
                actor="system",
                organisation_id=org.id,
                email=email,
                display_name=name,
                role=Role.soc_analyst,
                password=PASSWORD,
            )
            for org, email, name in (
                (almaty, "analyst@almaty.kz", "Aigerim"),
                (almaty, "colleague@almaty.kz", "Nurlan"),
                (astana, "analyst@astana.kz", "Dana"),
            )
        ]
        return World(almaty.id, astana.id, users[0].id, users[1].id, users[2].id)


def ingest(
    factory: sessionmaker[Session], organisation_id: int, *alerts: dict[str, Any]
) -> store.IngestResult:
    with unit_of_work(factory) as session:
        return store.ingest(
            session=session,
            organisation_id=organisation_id,
            alerts=parsed(*alerts),
            actor="siem-push",
        )


def audit_entries(factory: sessionmaker[Session], prefix: str) -> list[AuditEntry]:
    with unit_of_work(factory) as session:
        return list(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.action.like(f"{prefix}%"))
                .order_by(AuditEntry.id)
            )
        )


def chain_intact(factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        assert audit.verify(session=session) == []


# --------------------------------------------------------------------------- ingestion


def test_fingerprint_is_canonical() -> None:
    one = alert(1)
    shuffled = {key: one[key] for key in reversed(list(one))}
    shuffled["rule"] = dict(reversed(list(one["rule"].items())))
    assert store.fingerprint(one) == store.fingerprint(shuffled)
    assert store.fingerprint(one) == store.fingerprint(copy.deepcopy(one))
    assert store.fingerprint(one) != store.fingerprint(alert(2))
    assert len(store.fingerprint(one)) == 64
    # The stored body is the alert as documented, so it fingerprints the same.
    assert store.fingerprint(AlertIn.model_validate(one).body()) == store.fingerprint(one)


def test_ingestion_is_idempotent(factory: sessionmaker[Session], world: World) -> None:
    batch = [alert(i) for i in range(1, 6)]
    first = ingest(factory, world.almaty, *batch)
    assert (first.received, first.created, first.duplicates) == (5, 5, 0)
    again = ingest(factory, world.almaty, *batch)
    assert (again.received, again.created, again.duplicates) == (5, 0, 5)
    # Repeats within one batch, and a batch mixing stored and new alerts.
    mixed = ingest(factory, world.almaty, alert(6), alert(6), alert(1), alert(7), alert(6))
    assert (mixed.received, mixed.created, mixed.duplicates) == (5, 2, 3)
    # Another organisation stores its own copy.
    other = ingest(factory, world.astana, *batch)
    assert (other.created, other.duplicates) == (5, 0)

    with unit_of_work(factory) as session:
        rows = session.scalars(select(StoredAlert).order_by(StoredAlert.id)).all()
        assert len(rows) == 12
        ours = [r for r in rows if r.organisation_id == world.almaty]
        assert sorted(r.body["source"]["record"] for r in ours) == [1, 2, 3, 4, 5, 6, 7]
        first_row = ours[0]
        assert first_row.body == alert(1)
        assert first_row.fingerprint == store.fingerprint(alert(1))
        assert first_row.rule_id == SSH_RULE
        assert first_row.level is AlertLevel.low
        assert first_row.kz_cert_class == "credential-attack"
        assert first_row.host == "akimat-srv-01"
        assert first_row.time == datetime(2026, 11, 20, 5, 0, tzinfo=UTC)
        assert first_row.time.tzinfo is UTC
        assert first_row.received_at.tzinfo is UTC
        assert first_row.status is AlertStatus.new
        assert first_row.assignee_id is None and first_row.hunt_id is None

    entries = audit_entries(factory, "alerts.ingest")
    assert [e.details for e in entries] == [
        {"received": 5, "created": 5, "duplicates": 0},
        {"received": 5, "created": 0, "duplicates": 5},
        {"received": 5, "created": 2, "duplicates": 3},
        {"received": 5, "created": 5, "duplicates": 0},
    ]
    assert {e.actor for e in entries} == {"siem-push"}
    assert [e.organisation_id for e in entries] == [world.almaty] * 3 + [world.astana]
    chain_intact(factory)


def test_large_ingestion_in_chunks(
    factory: sessionmaker[Session], world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "INGEST_CHUNK", 7)  # many statements, repeats across chunks
    batch = [
        alert(
            i % 40, host=None if i % 3 else "h", time=None if i % 5 == 0 else "2026-11-20T05:00:00Z"
        )
        for i in range(100)
    ]
    result = ingest(factory, world.almaty, *batch)
    distinct = {store.fingerprint(a) for a in batch}
    assert (result.received, result.created) == (100, len(distinct))
    assert result.duplicates == 100 - len(distinct)
    again = ingest(factory, world.almaty, *batch)
    assert (again.created, again.duplicates) == (0, 100)


def test_alerts_without_time_host_or_classification(
    factory: sessionmaker[Session], world: World
) -> None:
    ingest(factory, world.almaty, alert(1, time=None, host=None, kz_cert=None))
    with unit_of_work(factory) as session:
        row = session.scalars(select(StoredAlert)).one()
        assert (row.time, row.host, row.kz_cert_class) == (None, None, None)
        assert "classification" not in row.body


def test_events_are_stored_as_given(factory: sessionmaker[Session], world: World) -> None:
    event = {
        "user": "Әлия Нұрланқызы",
        "CommandLine": 'cmd.exe /c "echo \\\\server\\share" \x00 tail',
        "nested": {"list": [1, 2.5, None, True, "🛡"], "empty": {}},
        "big": 2**62,
    }
    ingest(factory, world.almaty, alert(1, event=event, host="хост-01"))
    # NUL, which PostgreSQL cannot store in text or JSON, is shown as U+2400 on both databases.
    stored = {**event, "CommandLine": event["CommandLine"].replace("\x00", "\u2400")}
    with unit_of_work(factory) as session:
        row = session.scalars(select(StoredAlert)).one()
        assert row.body["event"] == stored
        assert row.host == "хост-01"
        assert row.fingerprint == store.fingerprint(alert(1, event=stored, host="хост-01"))
    again = ingest(factory, world.almaty, alert(1, event=event, host="хост-01"))
    assert again.duplicates == 1


# --------------------------------------------------------------------------- reading


def _sample(factory: sessionmaker[Session], world: World) -> None:
    ingest(
        factory,
        world.almaty,
        alert(1, time="2026-11-20T05:00:00Z", host="srv-01"),
        alert(2, time="2026-11-20T06:00:00Z", host="srv-01"),
        alert(3, time="2026-11-20T07:00:00Z", host="srv-02"),
        alert(
            4,
            rule_id=WEB_RULE,
            title="Path Traversal Attempt In Request",
            level="high",
            time="2026-11-21T09:30:00.250Z",
            host=None,
            kz_cert="network-attack",
        ),
        alert(
            5,
            rule_id=WEB_RULE,
            title="Path Traversal Attempt In Request",
            level="critical",
            time=None,
            host="srv-02",
            kz_cert="network-attack",
        ),
    )
    ingest(factory, world.astana, alert(1, host="astana-srv"))


def _action(name: str) -> Any:
    def act(**kwargs: Any) -> triage.Triaged:
        return triage.triage(action=name, **kwargs)

    return act


acknowledge = _action("acknowledge")
mark_false_positive = _action("false-positive")
reopen = _action("reopen")
assign = _action("assign")


def _records(alerts: list[StoredAlert]) -> list[int]:
    return [a.body["source"]["record"] for a in alerts]


def test_list_alerts_order_and_filters(factory: sessionmaker[Session], world: World) -> None:
    _sample(factory, world)
    ours = [world.almaty]

    def records(filters: AlertFilter = inbox.NO_FILTER, **kwargs: Any) -> list[int]:
        with unit_of_work(factory) as session:
            found, total = inbox.list_alerts(
                session=session, organisation_ids=ours, filters=filters, **kwargs
            )
        assert total >= len(found)
        return _records(found)

    # Newest event first, alerts without a time last.
    assert records() == [4, 3, 2, 1, 5]
    with unit_of_work(factory) as session:
        page, total = inbox.list_alerts(session=session, organisation_ids=ours, limit=2, offset=1)
        assert (_records(page), total) == ([3, 2], 5)
        both, total = inbox.list_alerts(
            session=session, organisation_ids=[world.almaty, world.astana]
        )
        assert (len(both), total) == (6, 6)
        assert inbox.list_alerts(session=session, organisation_ids=[]) == ([], 0)

    assert records(AlertFilter(levels={"high", "critical"})) == [4, 5]
    assert records(AlertFilter(levels=frozenset({"low"}))) == [3, 2, 1]
    assert records(AlertFilter(rule_id=WEB_RULE)) == [4, 5]
    assert records(AlertFilter(host="srv-02")) == [3, 5]
    assert records(AlertFilter(kz_cert_class="network-attack")) == [4, 5]
    since = datetime(2026, 11, 20, 11, 0, tzinfo=ALMATY)  # 06:00 UTC, inclusive
    until = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)  # exclusive
    assert records(AlertFilter(since=since)) == [4, 3, 2]
    assert records(AlertFilter(until=until)) == [2, 1]
    assert records(AlertFilter(since=since, until=until)) == [2]
    assert records(AlertFilter(host="srv-01", levels={"low"}, since=since)) == [2]
    assert records(AlertFilter(status=AlertStatus.acknowledged)) == []
    assert records(AlertFilter(status=AlertStatus.new)) == [4, 3, 2, 1, 5]

    with unit_of_work(factory) as session:
        rows, _ = inbox.list_alerts(session=session, organisation_ids=ours)
        by_record = {r.body["source"]["record"]: r.id for r in rows}
    with unit_of_work(factory) as session:
        acknowledge(
            session=session, organisation_id=world.almaty, alert_id=by_record[3], actor_id=1
        )
        assign(
            session=session,
            organisation_id=world.almaty,
            alert_id=by_record[1],
            actor_id=world.analyst,
            assignee_id=world.colleague,
        )
    assert records(AlertFilter(status=AlertStatus.acknowledged)) == [3]
    assert records(AlertFilter(status="new")) == [4, 2, 1, 5]  # type: ignore[arg-type]
    assert records(AlertFilter(assignee_id=world.colleague)) == [1]


def test_filters_refuse_nonsense() -> None:
    with pytest.raises(AlertError, match="unknown levels"):
        AlertFilter(levels={"urgent"})
    with pytest.raises(AlertError, match="since must be a time with a zone"):
        AlertFilter(since=datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test
    with pytest.raises(AlertError, match="unknown status"):
        AlertFilter(status="closed")  # type: ignore[arg-type]


def test_get_alert_only_when_visible(factory: sessionmaker[Session], world: World) -> None:
    _sample(factory, world)
    with unit_of_work(factory) as session:
        theirs = session.scalars(
            select(StoredAlert).where(StoredAlert.organisation_id == world.astana)
        ).one()
        assert (
            store.get_alert(session=session, organisation_ids=[world.almaty], alert_id=theirs.id)
            is None
        )
        assert (
            store.get_alert(session=session, organisation_ids=[world.almaty], alert_id=99999)
            is None
        )
        shared = store.get_alert(
            session=session, organisation_ids=[world.almaty, world.astana], alert_id=theirs.id
        )
        assert shared is not None and shared.host == "astana-srv"
        # The API shapes read the stored alert as it is.
        out = AlertOut.model_validate(shared)
        assert (out.rule_id, out.level, out.status) == (SSH_RULE, "low", "new")
        detail = AlertDetail.model_validate(shared)
        assert detail.body == alert(1, host="astana-srv")
        assert '"time":"2026-11-20T05:00:00Z"' in detail.model_dump_json()


def test_group_alerts(factory: sessionmaker[Session], world: World) -> None:
    _sample(factory, world)
    with unit_of_work(factory) as session:
        # Most severe first (the two critical web alerts before three low ones), then largest.
        by_rule = inbox.group_alerts(session=session, organisation_ids=[world.almaty], by="rule")[0]
        assert [(g.rule_id, g.count, g.level) for g in by_rule] == [
            (WEB_RULE, 2, "critical"),
            (SSH_RULE, 3, "low"),
        ]
        ssh = by_rule[1]
        assert ssh.rule_title == "SSH Password Authentication Failed" and ssh.host is None
        assert ssh.first_time == datetime(2026, 11, 20, 5, 0, tzinfo=UTC)
        assert ssh.last_time == datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
        web = by_rule[0]
        assert (
            web.first_time == web.last_time == datetime(2026, 11, 21, 9, 30, 0, 250000, tzinfo=UTC)
        )

        by_host = inbox.group_alerts(session=session, organisation_ids=[world.almaty], by="host")[0]
        assert {(g.host, g.count, g.level) for g in by_host} == {
            ("srv-01", 2, "low"),
            ("srv-02", 2, "critical"),
            (None, 1, "high"),
        }
        assert [(g.host, g.count) for g in by_host] == [("srv-02", 2), (None, 1), ("srv-01", 2)]
        assert all(g.rule_id is None for g in by_host)

        pairs = inbox.group_alerts(
            session=session, organisation_ids=[world.almaty], by="rule_host"
        )[0]
        assert {(g.rule_id, g.host, g.count) for g in pairs} == {
            (SSH_RULE, "srv-01", 2),
            (SSH_RULE, "srv-02", 1),
            (WEB_RULE, None, 1),
            (WEB_RULE, "srv-02", 1),
        }
        assert [(g.rule_id, g.host) for g in pairs[:2]] == [(WEB_RULE, "srv-02"), (WEB_RULE, None)]

        # Pages of groups, and how many groups there are in all.
        page, total = inbox.group_alerts(
            session=session, organisation_ids=[world.almaty], by="rule_host", limit=2, offset=2
        )
        assert total == 4
        assert [(g.rule_id, g.host, g.count) for g in page] == [
            (SSH_RULE, "srv-01", 2),
            (SSH_RULE, "srv-02", 1),
        ]

        narrowed = inbox.group_alerts(
            session=session,
            organisation_ids=[world.almaty, world.astana],
            filters=AlertFilter(levels={"low"}),
            by="rule",
        )[0]
        assert [(g.rule_id, g.count) for g in narrowed] == [(SSH_RULE, 4)]
        with pytest.raises(AlertError, match="cannot group by"):
            inbox.group_alerts(session=session, organisation_ids=[1], by="colour")[0]  # type: ignore[arg-type]


def test_timeline_buckets_in_almaty(factory: sessionmaker[Session], world: World) -> None:
    ingest(
        factory,
        world.almaty,
        alert(1, time="2026-11-20T05:10:00Z"),
        alert(2, time="2026-11-20T05:50:00Z"),
        alert(3, time="2026-11-20T05:20:00Z", level="high"),
        alert(4, time="2026-11-20T20:30:00Z"),  # 01:30 on the 21st in Almaty
        alert(5, time=None),
    )
    with unit_of_work(factory) as session:
        daily = inbox.timeline(session=session, organisation_ids=[world.almaty], bucket="day")[0]
        assert [(p.bucket, p.level, p.count) for p in daily] == [
            (datetime(2026, 11, 20, tzinfo=ALMATY), "low", 2),
            (datetime(2026, 11, 20, tzinfo=ALMATY), "high", 1),
            (datetime(2026, 11, 21, tzinfo=ALMATY), "low", 1),
        ]
        assert all(p.bucket.utcoffset() == timedelta(hours=5) for p in daily)
        assert daily[2].bucket.isoformat() == "2026-11-21T00:00:00+05:00"

        hourly = inbox.timeline(session=session, organisation_ids=[world.almaty], bucket="hour")[0]
        assert [(p.bucket.isoformat(), p.level, p.count) for p in hourly] == [
            ("2026-11-20T10:00:00+05:00", "low", 2),
            ("2026-11-20T10:00:00+05:00", "high", 1),
            ("2026-11-21T01:00:00+05:00", "low", 1),
        ]
        in_utc = inbox.timeline(
            session=session, organisation_ids=[world.almaty], bucket="day", tz="UTC"
        )[0]
        assert [(p.bucket.isoformat(), p.count) for p in in_utc if p.level == "low"] == [
            ("2026-11-20T00:00:00+00:00", 3)
        ]
        high_only = inbox.timeline(
            session=session,
            organisation_ids=[world.almaty],
            filters=AlertFilter(levels={"high"}),
            bucket="day",
        )[0]
        assert [(p.level, p.count) for p in high_only] == [("high", 1)]
        with pytest.raises(AlertError, match="unknown time zone"):
            inbox.timeline(session=session, organisation_ids=[world.almaty], tz="Mars/Olympus")[0]


# --------------------------------------------------------------------------- triage


def _alert_ids(factory: sessionmaker[Session], organisation_id: int) -> list[int]:
    with unit_of_work(factory) as session:
        return list(
            session.scalars(
                select(StoredAlert.id)
                .where(StoredAlert.organisation_id == organisation_id)
                .order_by(StoredAlert.id)
            )
        )


def test_triage_actions_are_audited(factory: sessionmaker[Session], world: World) -> None:
    _sample(factory, world)
    alert_id = _alert_ids(factory, world.almaty)[0]
    kwargs = {"organisation_id": world.almaty, "alert_id": alert_id, "actor_id": world.analyst}
    with unit_of_work(factory) as session:
        assert acknowledge(session=session, **kwargs).status is AlertStatus.acknowledged
        acknowledge(session=session, **kwargs)  # already: nothing changes, nothing recorded
    with unit_of_work(factory) as session:
        assert mark_false_positive(session=session, **kwargs).status is AlertStatus.false_positive
    with unit_of_work(factory) as session:
        assert reopen(session=session, **kwargs).status is AlertStatus.new
    with unit_of_work(factory) as session:
        assigned = assign(session=session, assignee_id=world.colleague, **kwargs)
        assert assigned.assignee_id == world.colleague
    with unit_of_work(factory) as session:
        assert assign(session=session, assignee_id=None, **kwargs).assignee_id is None
    with unit_of_work(factory) as session:
        store.record_read(
            session=session, user_id=world.analyst, organisation_id=world.almaty, alert_id=alert_id
        )

    entries = audit_entries(factory, "alert.")
    assert [(e.action, e.details) for e in entries] == [
        ("alert.acknowledge", {"status_from": "new", "status_to": "acknowledged"}),
        ("alert.false_positive", {"status_from": "acknowledged", "status_to": "false_positive"}),
        ("alert.reopen", {"status_from": "false_positive", "status_to": "new"}),
        (
            "alert.assign",
            {"assignee_from": None, "assignee_to": world.colleague, "status": "new"},
        ),
        (
            "alert.assign",
            {"assignee_from": world.colleague, "assignee_to": None, "status": "new"},
        ),
        ("alert.read", {}),
    ]
    for entry in entries:
        assert (entry.actor, entry.organisation_id) == (str(world.analyst), world.almaty)
        assert (entry.target_type, entry.target_id) == ("alert", str(alert_id))
    chain_intact(factory)


def test_triage_of_another_organisations_alert_is_not_found(
    factory: sessionmaker[Session], world: World
) -> None:
    _sample(factory, world)
    theirs = _alert_ids(factory, world.astana)[0]
    for action in (acknowledge, mark_false_positive, reopen):
        with pytest.raises(NotFound, match="no such alert"), unit_of_work(factory) as session:
            action(
                session=session,
                organisation_id=world.almaty,
                alert_id=theirs,
                actor_id=world.analyst,
            )
    with pytest.raises(NotFound), unit_of_work(factory) as session:
        assign(
            session=session,
            organisation_id=world.almaty,
            alert_id=theirs,
            actor_id=world.analyst,
            assignee_id=world.colleague,
        )
    with pytest.raises(NotFound), unit_of_work(factory) as session:
        acknowledge(
            session=session, organisation_id=world.almaty, alert_id=10**6, actor_id=world.analyst
        )
    with unit_of_work(factory) as session:
        row = session.get(StoredAlert, theirs)
        assert row is not None and row.status is AlertStatus.new and row.assignee_id is None
    assert audit_entries(factory, "alert.") == []


def test_assign_refuses_users_of_other_organisations(
    factory: sessionmaker[Session], world: World
) -> None:
    _sample(factory, world)
    ours = _alert_ids(factory, world.almaty)[0]
    for stranger in (world.outsider, 10**6):
        with pytest.raises(AlertError, match="same organisation"), unit_of_work(factory) as session:
            assign(
                session=session,
                organisation_id=world.almaty,
                alert_id=ours,
                actor_id=world.analyst,
                assignee_id=stranger,
            )
    with unit_of_work(factory) as session:
        row = session.get(StoredAlert, ours)
        assert row is not None and row.assignee_id is None


def test_deleting_an_assignee_unassigns(factory: sessionmaker[Session], world: World) -> None:
    _sample(factory, world)
    ours = _alert_ids(factory, world.almaty)[0]
    with unit_of_work(factory) as session:
        assign(
            session=session,
            organisation_id=world.almaty,
            alert_id=ours,
            actor_id=world.analyst,
            assignee_id=world.colleague,
        )
    with unit_of_work(factory) as session:
        for row in session.scalars(
            select(PasswordHistory).where(PasswordHistory.user_id == world.colleague)
        ):
            session.delete(row)
        user = session.get(User, world.colleague)
        session.delete(user)
    with unit_of_work(factory) as session:
        row = session.get(StoredAlert, ours)
        session.refresh(row)
        assert row is not None and row.assignee_id is None


# --------------------------------------------------------------------------- the schema


def test_schema_levels_match_detection() -> None:
    assert detection_alerts.LEVELS == LEVELS


def _refusal(payload: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        AlertIn.model_validate(payload)
    return str(caught.value)


def test_schema_refuses_bad_alerts() -> None:
    bad = alert(1)
    bad["rule"]["level"] = "urgent"
    message = _refusal(bad)
    assert "rule.level" in message and "'critical'" in message

    huge = alert(1, event={"CommandLine": "A" * MAX_EVENT_BYTES})
    assert "at most 65,536 bytes are accepted" in _refusal(huge)

    typo = alert(1)
    typo["hots"] = "srv"
    assert "hots" in _refusal(typo) and "Extra inputs are not permitted" in _refusal(typo)

    assert "not an ISO 8601 time" in _refusal(alert(1, time="yesterday"))
    assert "event must be a JSON object" in _refusal(alert(1, event=["a"]))  # type: ignore[arg-type]

    long_title = alert(1, title="x" * 501)
    assert "rule.title" in _refusal(long_title)

    many_tags = alert(1)
    many_tags["rule"]["tags"] = [f"t{i}" for i in range(101)]
    assert "rule.tags" in _refusal(many_tags)

    negative = alert(1)
    negative["source"]["record"] = -1
    assert "source.record" in _refusal(negative)

    missing = alert(1)
    del missing["source"]
    assert "source" in _refusal(missing) and "Field required" in _refusal(missing)

    odd_class = alert(1)
    odd_class["classification"]["kz_cert"] = ["a", "b"]
    assert "classification.kz_cert" in _refusal(odd_class)

    weird = alert(1, event={"bytes": b"\x00"})  # not JSON at all
    assert "event is not JSON" in _refusal(weird)

    assert "must not contain NUL" in _refusal(alert(1, host="srv\x00"))


def test_schema_accepts_what_the_hunt_writes() -> None:
    accepted = AlertIn.model_validate(alert(1, event={"n": (1, 2), "ratio": float("nan")}))
    # Normalised as the database will give it back, so the fingerprint is stable.
    assert accepted.event == {"n": [1, 2], "ratio": None}
    correlation = alert(10, kz_cert=None)
    correlation["source"]["format"] = "correlation"
    correlation["correlation"] = {
        "type": "event_count",
        "value": 10,
        "start": "2026-11-20T08:00:00Z",
        "end": "2026-11-20T08:00:20Z",
        "events": [
            {"path": "auth.log", "record": i, "time": None, "rule": SSH_RULE} for i in range(10)
        ],
    }
    body = AlertIn.model_validate(correlation).body()
    assert body == correlation
