"""Incidents as a service: created from alerts or by hand, worked through the lifecycle on the
clock, merged and split with their history, kept within their organisation."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core.db import unit_of_work
from qorgan.core.workdays import default_calendar
from qorgan.incidents import clocks, service, similar, timeline
from qorgan.incidents.inbox import AlertFilter
from qorgan.incidents.lifecycle import IncidentError, NotFound
from qorgan.incidents.models import (
    Asset,
    Incident,
    IncidentAlert,
    IncidentEvent,
    IncidentObservable,
    StoredAlert,
)

from .test_alert_store import World, alert, audit_entries, chain_intact, ingest

CALENDAR = default_calendar()
OTHER_RULE = "5f0ce1a5-86fa-4b11-a0e3-7d2e4b1c9a10"


def _ids(factory: sessionmaker[Session], organisation_id: int) -> list[int]:
    with unit_of_work(factory) as session:
        return list(
            session.scalars(
                select(StoredAlert.id)
                .where(StoredAlert.organisation_id == organisation_id)
                .order_by(StoredAlert.id)
            )
        )


def _sample(factory: sessionmaker[Session], world: World) -> tuple[list[int], list[int]]:
    ingest(
        factory,
        world.almaty,
        alert(1, time="2026-11-20T05:00:00Z"),
        alert(2, time="2026-11-20T04:00:00Z", level="high"),
        alert(
            3,
            rule_id=OTHER_RULE,
            title="Suspicious PowerShell Download",
            level="medium",
            host="akimat-ws-07",
            kz_cert="malware-spam",
            event={
                "Image": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
                "Hashes": "SHA1=0123456789ABCDEF0123456789ABCDEF01234567,IMPHASH=" + "A" * 32,
                "QueryName": "evil.example.kz",
            },
        ),
    )
    ingest(factory, world.astana, alert(4, host="astana-srv"))
    return _ids(factory, world.almaty), _ids(factory, world.astana)


def _create(factory: sessionmaker[Session], world: World, **kwargs: object) -> int:
    with unit_of_work(factory) as session:
        incident, _ = service.create(
            session=session,
            organisation_id=world.almaty,
            actor_id=world.analyst,
            draft=kwargs.pop("draft", service.Draft()),  # type: ignore[arg-type]
            calendar=CALENDAR,
            **kwargs,  # type: ignore[arg-type]
        )
        return incident.id


def test_create_from_picked_alerts_fills_the_blanks(
    factory: sessionmaker[Session], world: World
) -> None:
    ours, theirs = _sample(factory, world)
    with unit_of_work(factory) as session:
        incident, linked = service.create(
            session=session,
            organisation_id=world.almaty,
            actor_id=world.analyst,
            draft=service.Draft(),
            calendar=CALENDAR,
            alert_ids=[ours[0], ours[1], theirs[0]],  # another organisation's id is dropped
        )
        assert linked == service.Linked(added=2, elsewhere=0)
        assert incident.title == "SSH Password Authentication Failed on akimat-srv-01 (2 alerts)"
        assert incident.kz_cert_class == "credential-attack"
        assert (incident.rsit_class, incident.rsit_type) == ("intrusion-attempts", "brute-force")
        assert incident.criminal_code == ["205"]
        # The clocks start at the first event, not at creation.
        assert incident.started_at == datetime(2026, 11, 20, 4, tzinfo=UTC)
        assert incident.severity == 3  # the worst alert is high
        assert incident.status == "new" and incident.origin == "alerts"
        links = session.scalars(
            select(IncidentAlert.alert_id).where(IncidentAlert.incident_id == incident.id)
        ).all()
        assert sorted(links) == ours[:2]
        observables = set(
            session.execute(
                select(IncidentObservable.kind, IncidentObservable.value).where(
                    IncidentObservable.incident_id == incident.id,
                    IncidentObservable.kind != "rule",
                )
            )
        )
        assert observables == {("ip", "203.0.113.77"), ("account", "aigerim")}
    chain_intact(factory)
    assert [e.action for e in audit_entries(factory, "incident.")] == ["incident.created"]


def test_classification_neighbour_without_one(factory: sessionmaker[Session], world: World) -> None:
    ingest(factory, world.almaty, alert(9, kz_cert=None))
    incident_id = _create(factory, world, alert_ids=_ids(factory, world.almaty))
    with unit_of_work(factory) as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        assert (incident.kz_cert_class, incident.rsit_class, incident.criminal_code) == (
            None,
            None,
            [],
        )


def test_observables_of_windows_events(factory: sessionmaker[Session], world: World) -> None:
    ours, _ = _sample(factory, world)
    incident_id = _create(factory, world, alert_ids=[ours[2]])
    with unit_of_work(factory) as session:
        found = set(
            session.execute(
                select(IncidentObservable.kind, IncidentObservable.value).where(
                    IncidentObservable.incident_id == incident_id,
                    IncidentObservable.kind != "rule",
                )
            )
        )
    assert found == {
        ("file", "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"),
        ("hash", "0123456789abcdef0123456789abcdef01234567"),  # the import hash is left out
        ("domain", "evil.example.kz"),
    }


def test_create_from_a_filter_and_alerts_already_in_incidents(
    factory: sessionmaker[Session], world: World
) -> None:
    ours, _ = _sample(factory, world)
    first = _create(factory, world, alert_ids=[ours[0]])
    with unit_of_work(factory) as session:
        incident, linked = service.create(
            session=session,
            organisation_id=world.almaty,
            actor_id=world.analyst,
            draft=service.Draft(title="All SSH failures"),
            calendar=CALENDAR,
            filters=AlertFilter(rule_id=alert(0)["rule"]["id"]),
        )
        assert linked == service.Linked(added=1, elsewhere=1)
        assert incident.title == "All SSH failures"
        second = incident.id
    with unit_of_work(factory) as session:
        links = dict(
            session.execute(select(IncidentAlert.alert_id, IncidentAlert.incident_id)).all()
        )
    assert links == {ours[0]: first, ours[1]: second}
    with (
        pytest.raises(IncidentError, match="all in other incidents"),
        unit_of_work(factory) as session,
    ):
        service.create(
            session=session,
            organisation_id=world.almaty,
            actor_id=world.analyst,
            draft=service.Draft(),
            calendar=CALENDAR,
            alert_ids=ours[:2],
        )
    # Another organisation's alerts are no alerts of yours.
    with pytest.raises(IncidentError, match="no alert of yours"), unit_of_work(factory) as session:
        service.create(
            session=session,
            organisation_id=world.astana,
            actor_id=world.outsider,
            draft=service.Draft(),
            calendar=CALENDAR,
            alert_ids=ours,
        )


def test_by_hand_with_deadlines_in_working_time(
    factory: sessionmaker[Session], world: World
) -> None:
    with unit_of_work(factory) as session:
        clocks.set_deadline(
            session=session,
            organisation_id=world.almaty,
            actor_id=world.analyst,
            kz_cert_class="*",
            measure="acknowledge",
            amount=2,
            unit="working_hours",
        )
        clocks.set_deadline(
            session=session,
            organisation_id=world.almaty,
            actor_id=world.analyst,
            kz_cert_class="credential-attack",
            measure="close",
            amount=3,
            unit="working_days",
        )
    # Friday 20 March 2026, 17:00 in Almaty (12:00 UTC): Nauryz (21-23 March; 21 and 22 fall
    # on the weekend, so 24 and 25 March are days off too) follows.
    start = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
    with unit_of_work(factory) as session:
        incident, _ = service.create(
            session=session,
            organisation_id=world.almaty,
            actor_id=world.analyst,
            draft=service.Draft(title="Password guessing", kz_cert_class="credential-attack"),
            calendar=CALENDAR,
            started_at=start,
        )
        ack, close = incident.acknowledge_due_at, incident.close_due_at
        assert CALENDAR.working_time_between(start, ack) == timedelta(hours=2)
        assert CALENDAR.working_time_between(start, close) == timedelta(hours=27)
        assert incident.next_due_at == ack
    # One working hour on Friday, then the next working day's first hour.
    assert not CALENDAR.is_working_day(date(2026, 3, 23))
    assert ack > datetime(2026, 3, 23, 4, tzinfo=UTC)
    with unit_of_work(factory) as session:
        assert clocks.deadlines(
            session=session, organisation_id=world.almaty, kz_cert_class="credential-attack"
        ) == {
            "acknowledge": (2, "working_hours"),
            "contain": clocks.DEFAULT_DEADLINES["contain"],
            "close": (3, "working_days"),
        }
        # The class's own deadline is not another class's.
        assert (
            clocks.deadlines(
                session=session, organisation_id=world.almaty, kz_cert_class="scanning"
            )["close"]
            == clocks.DEFAULT_DEADLINES["close"]
        )
        # Another organisation's deadlines are its own.
        assert clocks.deadlines(
            session=session, organisation_id=world.astana, kz_cert_class="credential-attack"
        ) == dict(clocks.DEFAULT_DEADLINES)


def test_lifecycle_moves_and_clock_moments(factory: sessionmaker[Session], world: World) -> None:
    incident_id = _create(factory, world, draft=service.Draft(title="Web defacement"))

    def move(status: str, resolution: str | None = None) -> Incident:
        with unit_of_work(factory) as session:
            return service.move(
                session=session,
                organisation_id=world.almaty,
                incident_id=incident_id,
                actor_id=world.analyst,
                status=status,
                resolution=resolution,
            )

    with pytest.raises(IncidentError, match="needs a resolution"):
        move("closed")
    triaged = move("triage")
    assert triaged.acknowledged_at is not None and triaged.contained_at is None
    move("containment")
    eradication = move("eradication")
    assert eradication.contained_at is not None
    move("recovery")
    move("review")
    with pytest.raises(IncidentError, match="unknown resolution"):
        move("closed", "fixed")
    closed = move("closed", "true-positive-impact")
    assert closed.closed_at is not None and closed.next_due_at is None
    with pytest.raises(IncidentError, match="only be reopened to triage"):
        move("containment")
    reopened = move("triage")
    assert reopened.closed_at is None and reopened.resolution is None
    assert reopened.contained_at == eradication.contained_at  # the first containment stays
    with unit_of_work(factory) as session:
        kinds = session.scalars(
            select(IncidentEvent.details).where(
                IncidentEvent.incident_id == incident_id, IncidentEvent.kind == "status"
            )
        ).all()
    assert [k["to"] for k in kinds] == [
        "triage", "containment", "eradication", "recovery", "review", "closed", "triage",
    ]  # fmt: skip


def test_severity_from_assets_and_overrides(factory: sessionmaker[Session], world: World) -> None:
    ours, _ = _sample(factory, world)
    with unit_of_work(factory) as session:
        session.add(
            Asset(
                organisation_id=world.almaty,
                name="Payments",
                criticality=2,
                critical_infrastructure=True,
                names=["akimat-srv-01"],
            )
        )
    incident_id = _create(factory, world, alert_ids=[ours[0]])  # one low alert
    with unit_of_work(factory) as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        # A low alert on critical infrastructure: one step up.
        assert incident.severity == 2
        with pytest.raises(IncidentError, match="needs a reason"):
            service.set_severity(
                session=session,
                organisation_id=world.almaty,
                incident_id=incident_id,
                actor_id=world.analyst,
                severity="critical",
            )
        service.set_severity(
            session=session,
            organisation_id=world.almaty,
            incident_id=incident_id,
            actor_id=world.analyst,
            severity="critical",
            reason="The payments system is down",
        )
        assert incident.severity == 4
        service.add_alerts(
            session=session,
            organisation_id=world.almaty,
            incident_id=incident_id,
            actor_id=world.analyst,
            alert_ids=[ours[1]],
        )
        assert incident.severity == 4  # an override holds against new alerts
        service.set_severity(
            session=session,
            organisation_id=world.almaty,
            incident_id=incident_id,
            actor_id=world.analyst,
            severity=None,
        )
        assert incident.severity == 4  # derived: a high alert on critical infrastructure


def test_merge_and_split_keep_the_history(factory: sessionmaker[Session], world: World) -> None:
    ours, _ = _sample(factory, world)
    first = _create(factory, world, alert_ids=ours[:2])
    second = _create(factory, world, alert_ids=[ours[2]])
    with unit_of_work(factory) as session:
        target = service.merge(
            session=session,
            organisation_id=world.almaty,
            source_id=second,
            target_id=first,
            actor_id=world.analyst,
        )
        assert target.id == first
        source = session.get(Incident, second)
        assert source is not None
        assert (source.status, source.resolution, source.merged_into_id) == (
            "closed",
            "duplicate",
            first,
        )
        assert target.severity == 3
    with unit_of_work(factory) as session:
        split_off = service.split(
            session=session,
            organisation_id=world.almaty,
            incident_id=first,
            actor_id=world.analyst,
            alert_ids=[ours[2]],
            title="The PowerShell download",
            calendar=CALENDAR,
        )
        new_id = split_off.id
        assert split_off.kz_cert_class == "malware-spam"
        with pytest.raises(IncidentError, match="at least one alert"):
            service.split(
                session=session,
                organisation_id=world.almaty,
                incident_id=first,
                actor_id=world.analyst,
                alert_ids=ours[:2],
                title="All of it",
                calendar=CALENDAR,
            )
    with unit_of_work(factory) as session:
        links = dict(
            session.execute(select(IncidentAlert.alert_id, IncidentAlert.incident_id)).all()
        )
        assert links == {ours[0]: first, ours[1]: first, ours[2]: new_id}
        entries = timeline.timeline(session=session, incident_id=first).entries
    kinds = [e.kind for e in entries]
    assert kinds.count("alert") == 2
    assert [k for k in kinds if k != "alert"] == ["created", "merged_from", "split_to"]
    assert [e.at for e in entries] == sorted(e.at for e in entries)


def test_another_organisation_cannot_touch_an_incident(
    factory: sessionmaker[Session], world: World
) -> None:
    incident_id = _create(factory, world, draft=service.Draft(title="Ours"))
    with unit_of_work(factory) as session:
        with pytest.raises(NotFound):
            service.visible(session=session, incident_id=incident_id, organisation_id=world.astana)
        with pytest.raises(NotFound):
            service.move(
                session=session,
                organisation_id=world.astana,
                incident_id=incident_id,
                actor_id=world.outsider,
                status="triage",
            )
        with pytest.raises(IncidentError, match="members who work incidents"):
            service.assign(
                session=session,
                organisation_id=world.almaty,
                incident_id=incident_id,
                actor_id=world.analyst,
                assignee_id=world.outsider,
            )
        # The neighbour: a colleague of the same organisation can be assigned.
        service.assign(
            session=session,
            organisation_id=world.almaty,
            incident_id=incident_id,
            actor_id=world.analyst,
            assignee_id=world.colleague,
        )


def test_personal_data_starts_the_breach_report_clock(
    factory: sessionmaker[Session], world: World
) -> None:
    incident_id = _create(factory, world, draft=service.Draft(title="Leak"))
    with unit_of_work(factory) as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None and incident.breach_report_due_at is None
        service.edit(
            session=session,
            organisation_id=world.almaty,
            incident_id=incident_id,
            actor_id=world.analyst,
            changes={"personal_data": True, "tags": ["leak", "leak", " "]},
            calendar=CALENDAR,
        )
        due = incident.breach_report_due_at
        assert due is not None and incident.tags == ["leak"]
        assert CALENDAR.working_time_between(incident.updated_at, due) <= CALENDAR.day_length
        with pytest.raises(IncidentError, match="cannot be changed here"):
            service.edit(
                session=session,
                organisation_id=world.almaty,
                incident_id=incident_id,
                actor_id=world.analyst,
                changes={"organisation_id": world.astana},
                calendar=CALENDAR,
            )
        with pytest.raises(IncidentError, match="unknown Criminal Code article"):
            service.edit(
                session=session,
                organisation_id=world.almaty,
                incident_id=incident_id,
                actor_id=world.analyst,
                changes={"criminal_code": ["205", "158"]},
                calendar=CALENDAR,
            )


@pytest.mark.parametrize("bad", ["x\x00y", "x\ud800y"])
def test_text_no_database_can_store_is_refused(
    factory: sessionmaker[Session], world: World, bad: str
) -> None:
    with pytest.raises(IncidentError, match=r"NUL|surrogate"), unit_of_work(factory) as session:
        service.create(
            session=session,
            organisation_id=world.almaty,
            actor_id=world.analyst,
            draft=service.Draft(title=bad),
            calendar=CALENDAR,
        )
    incident_id = _create(factory, world, draft=service.Draft(title="fine"))
    with pytest.raises(IncidentError, match=r"NUL|surrogate"), unit_of_work(factory) as session:
        service.edit(
            session=session,
            organisation_id=world.almaty,
            incident_id=incident_id,
            actor_id=world.analyst,
            changes={"tags": [bad]},
            calendar=CALENDAR,
        )


def test_similar_past_incidents_share_observables_or_rules(
    factory: sessionmaker[Session], world: World
) -> None:
    ingest(
        factory,
        world.almaty,
        alert(1, event={"user": "aigerim", "src_ip": "203.0.113.77"}),
        alert(2, event={"user": "nurlan", "src_ip": "203.0.113.77"}, time="2026-11-21T05:00:00Z"),
        alert(
            3,
            rule_id=OTHER_RULE,
            title="Unrelated",
            event={"user": "dana", "src_ip": "198.51.100.1"},
        ),
    )
    ingest(factory, world.astana, alert(4, event={"user": "aigerim", "src_ip": "203.0.113.77"}))
    ours, theirs = _ids(factory, world.almaty), _ids(factory, world.astana)
    first = _create(factory, world, alert_ids=[ours[0]])
    unrelated = _create(factory, world, alert_ids=[ours[2]])
    latest = _create(factory, world, alert_ids=[ours[1]])
    with unit_of_work(factory) as session:
        astana, _ = service.create(
            session=session,
            organisation_id=world.astana,
            actor_id=world.outsider,
            draft=service.Draft(),
            calendar=CALENDAR,
            alert_ids=theirs,
        )
        astana_id = astana.id
    with unit_of_work(factory) as session:
        found = similar.similar(session=session, incident_id=latest)
        assert [s.incident.id for s in found] == [first]
        assert found[0].shared == {"ip": 1, "rule": 1}
        assert found[0].score == 1 + similar.RULE_WEIGHT
        # Another organisation's incident with the same address is not similar to ours, and
        # the internal rule entries are not shown as observables.
        assert similar.similar(session=session, incident_id=astana_id) == []
        assert unrelated not in [s.incident.id for s in found]
        shown = service.observables(session=session, incident_id=latest)
        assert {o.kind for o in shown} == {"ip", "account"}


def test_two_analysts_taking_the_same_alerts_at_once(
    factory: sessionmaker[Session], world: World
) -> None:
    """A check-then-write race: both read the alerts as free, both link them. The incident lock
    makes the second wait and then find them taken; no alert is in two incidents."""
    ingest(factory, world.almaty, *(alert(i, time=f"2026-11-20T05:{i:02d}:00Z") for i in range(20)))
    ids = _ids(factory, world.almaty)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def take(actor_id: int) -> None:
        barrier.wait()
        try:
            with unit_of_work(factory) as session:
                service.create(
                    session=session,
                    organisation_id=world.almaty,
                    actor_id=actor_id,
                    draft=service.Draft(),
                    calendar=CALENDAR,
                    alert_ids=ids,
                )
            outcomes.append("created")
        except IncidentError as exc:
            outcomes.append(exc.message)

    threads = [threading.Thread(target=take, args=(a,)) for a in (world.analyst, world.colleague)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == sorted(
        ["created", "none of these alerts can start an incident: they are all in other incidents"]
    )
    with unit_of_work(factory) as session:
        links = session.execute(select(IncidentAlert.alert_id, IncidentAlert.incident_id)).all()
        assert sorted(a for a, _ in links) == ids
        assert len({i for _, i in links}) == 1
        assert session.scalar(select(func.count()).select_from(Incident)) == 1
    chain_intact(factory)


def test_an_incident_arriving_in_triage_is_acknowledged_by_its_first_move(
    factory: sessionmaker[Session], world: World
) -> None:
    """A public report arrives in triage, unacknowledged; moving it on acknowledges it (only
    leaving *new* did, so its acknowledge clock ran until it was closed)."""
    incident_id = _create(factory, world, draft=service.Draft(title="Reported fraud site"))
    with unit_of_work(factory) as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        incident.status = "triage"  # as the public form leaves it
    with unit_of_work(factory) as session:
        moved = service.move(
            session=session,
            organisation_id=world.almaty,
            incident_id=incident_id,
            actor_id=world.analyst,
            status="containment",
        )
        assert moved.acknowledged_at is not None and moved.contained_at is None
