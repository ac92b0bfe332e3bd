"""The AI models' findings in the store on SQLite and PostgreSQL: the contract at the door,
no alert without a person's decision, decisions once only (also when two arrive at once),
rejections suppressing their pattern, objections excluding a person, the model register, and
every decision in the audit trail."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import audit
from qorgan.core.db import unit_of_work
from qorgan.core.models import AuditEntry
from qorgan.detection.anomaly.findings import Finding, contributions
from qorgan.incidents import findings as service
from qorgan.incidents.finding_models import AnomalyExclusion, AnomalyFinding, RejectedPattern
from qorgan.incidents.findings import AlreadyDecided, FindingError, NotFound
from qorgan.incidents.models import StoredAlert

from .test_alert_store import World

KEY = b"k" * 40


def finding(
    user: str = "aigerim",
    ip: str = "203.0.113.9",
    time: str | None = "2026-11-20T03:00:00Z",
    *,
    score: float = 0.97,
) -> dict[str, Any]:
    """A logon finding as the entity detector would report it (the real dataclass)."""
    return Finding(
        detector="entity.logon",
        model="entity-baseline",
        version="1.0.0",
        time=time,
        source="/var/log/auth.log",
        entity={"user": user, "host": "akimat-srv-01", "source_ip": ip},
        score=score,
        threshold=0.9,
        confidence=0.8,
        contributions=contributions(
            [
                ("logon.source_ip_seen", 3.0, "10.0.0.0/8", ip),
                ("logon.hour", 1.0, "09-18", "03"),
            ]
        ),
        summary=f"logon by {user} from a never-seen address {ip} at 03:00",
        examples=(f"Nov 20 03:00:01 akimat-srv-01 sshd[1]: Accepted password for {user}",),
        pattern=f"logon.new_source_ip|user={user}|ip={ip}",
        identifiers=(user,),
    ).to_dict()


def save(factory: sessionmaker[Session], org: int, *items: dict[str, Any]) -> service.SaveResult:
    with unit_of_work(factory) as session:
        return service.save_findings(session, org, list(items))


def actions(factory: sessionmaker[Session], prefix: str) -> list[AuditEntry]:
    with unit_of_work(factory) as session:
        return list(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.action.like(f"{prefix}%"))
                .order_by(AuditEntry.id)
            )
        )


def alerts(factory: sessionmaker[Session]) -> list[StoredAlert]:
    with unit_of_work(factory) as session:
        return list(session.scalars(select(StoredAlert).order_by(StoredAlert.id)))


# --------------------------------------------------------------------------- the contract


def test_saved_findings_are_pending_and_audited_as_the_models_decisions(
    factory: sessionmaker[Session], world: World
) -> None:
    result = save(factory, world.almaty, finding(), finding("dana", "198.51.100.7"))
    assert (result.received, result.created, result.duplicates, result.suppressed) == (2, 2, 0, 0)
    with unit_of_work(factory) as session:
        rows = service.list_findings(session=session, organisation_ids=[world.almaty])
        assert [r.status for r in rows] == ["pending", "pending"]
        assert rows[0].id > rows[1].id  # newest first
        assert rows[0].model == "entity-baseline" and rows[0].version == "1.0.0"
        assert rows[0].time == datetime(2026, 11, 20, 3, tzinfo=UTC)
        assert rows[0].body["ai_generated"] is True
    entries = actions(factory, "finding.")
    assert [e.action for e in entries] == ["finding.created", "finding.created"]
    assert entries[0].actor == "model:entity-baseline"
    assert entries[0].details["score"] == 0.97 and entries[0].details["threshold"] == 0.9
    assert {e.target_id for e in entries} == {str(i) for i in result.ids}
    # No finding is an alert until a person decides.
    assert alerts(factory) == []


def test_the_same_finding_is_stored_once(factory: sessionmaker[Session], world: World) -> None:
    first = save(factory, world.almaty, finding(), finding())
    assert (first.created, first.duplicates) == (1, 1)
    again = save(factory, world.almaty, finding())
    assert (again.created, again.duplicates) == (0, 1)
    # The same pattern at another moment is another finding; another organisation its own.
    later = save(factory, world.almaty, finding(time="2026-11-21T03:00:00Z"))
    assert later.created == 1
    assert save(factory, world.astana, finding()).created == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ai_generated": False}, "produced by an AI model"),
        ({"label": ""}, "AI label"),
        ({"model": ""}, "model's name"),
        ({"version": None}, "version"),
        ({"score": 0.5}, "below the threshold"),
        ({"score": float("nan")}, "finite"),
        ({"confidence": 1.5}, "outside \\[0, 1\\]"),
        ({"contributions": []}, "contributions"),
        ({"examples": ["x"] * 6}, "at most 5"),
        ({"time": "yesterday"}, "ISO 8601"),
        ({"pattern": "something else"}, "fingerprint"),
    ],
)
def test_a_finding_breaking_the_contract_is_refused(
    factory: sessionmaker[Session], world: World, change: dict[str, Any], message: str
) -> None:
    bad = {**finding(), **change}
    with unit_of_work(factory) as session, pytest.raises(FindingError, match=message):
        service.save_findings(session, world.almaty, [finding("dana"), bad])
    # Nothing of the call was stored, the good finding neither.
    with unit_of_work(factory) as session:
        assert session.scalar(select(func.count()).select_from(AnomalyFinding)) == 0


def test_contributions_must_sum_to_one_and_carry_typical_and_actual(
    factory: sessionmaker[Session], world: World
) -> None:
    good = finding()
    halved = {
        **good,
        "contributions": [{**c, "share": c["share"] / 2} for c in good["contributions"]],
    }
    untyped = {**good, "contributions": [{"feature": "x", "share": 1.0, "actual": 3}]}
    negative = {**good, "contributions": [{**good["contributions"][0], "share": -1.0}]}
    for bad, message in ((halved, "sum to 1"), (untyped, "typical"), (negative, "positive")):
        with unit_of_work(factory) as session, pytest.raises(FindingError, match=message):
            service.save_findings(session, world.almaty, [bad])
    # NUL in an example line is shown as U+2400, on both databases alike.
    with_nul = finding("nul")
    with_nul["examples"] = ["sshd: user \x00 logged in"]
    assert save(factory, world.almaty, with_nul).created == 1
    with unit_of_work(factory) as session:
        row = session.scalars(select(AnomalyFinding)).one()
        assert row.body["examples"] == ["sshd: user \u2400 logged in"]


# --------------------------------------------------------------------------- decisions


def test_confirming_makes_one_linked_alert_with_the_decision_audited(
    factory: sessionmaker[Session], world: World
) -> None:
    (finding_id,) = save(factory, world.almaty, finding()).ids
    assert alerts(factory) == []
    with unit_of_work(factory) as session:
        row = service.confirm(
            session, finding_id, world.analyst, "  Known attacker range  ",
            organisation_id=world.almaty,
        )  # fmt: skip
        assert row.status == "confirmed" and row.reason == "Known attacker range"
        assert row.decided_by == world.analyst and row.decided_at is not None
    (alert,) = alerts(factory)
    assert alert.organisation_id == world.almaty
    with unit_of_work(factory) as session:
        assert session.get(AnomalyFinding, finding_id).alert_id == alert.id  # type: ignore[union-attr]
    assert alert.rule_id == "ai:entity-baseline"
    assert "ai.generated" in alert.body["rule"]["tags"]
    ai = alert.body["event"]["ai"]
    assert ai["generated"] is True and ai["model"] == "entity-baseline"
    assert ai["version"] == "1.0.0" and ai["finding_id"] == finding_id
    assert ai["decision"]["status"] == "confirmed"
    assert ai["decision"]["by"] == world.analyst
    assert ai["decision"]["reason"] == "Known attacker range"
    # The alert's observables come from the entity, so it joins incidents like any alert.
    assert alert.user_name == "aigerim" and alert.source_ip == "203.0.113.9"
    assert alert.host == "akimat-srv-01"
    (confirmed,) = actions(factory, "finding.confirmed")
    assert confirmed.actor == str(world.analyst)
    assert confirmed.target_id == str(finding_id)
    assert confirmed.details == {
        "alert_id": alert.id,
        "model": "entity-baseline",
        "version": "1.0.0",
    }
    with unit_of_work(factory) as session:
        assert audit.verify(session=session) == []


def test_a_finding_is_decided_once(factory: sessionmaker[Session], world: World) -> None:
    first, second = save(factory, world.almaty, finding(), finding("dana")).ids
    with unit_of_work(factory) as session:
        service.confirm(session, first, world.analyst, "real", organisation_id=world.almaty)
        service.reject(session, second, world.analyst, "test box", organisation_id=world.almaty)
    for decide in (service.confirm, service.reject):
        for finding_id in (first, second):
            with unit_of_work(factory) as session, pytest.raises(AlreadyDecided):
                decide(session, finding_id, world.colleague, "again", organisation_id=world.almaty)
    assert len(alerts(factory)) == 1


def test_two_decisions_at_the_same_instant_one_wins(
    factory: sessionmaker[Session], world: World
) -> None:
    (finding_id,) = save(factory, world.almaty, finding()).ids
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def decide(kind: str, actor: int) -> None:
        barrier.wait()
        try:
            with unit_of_work(factory) as session:
                getattr(service, kind)(
                    session, finding_id, actor, f"{kind} it", organisation_id=world.almaty
                )
            outcomes.append(kind)
        except AlreadyDecided:
            outcomes.append("refused")

    threads = [
        threading.Thread(target=decide, args=("confirm", world.analyst)),
        threading.Thread(target=decide, args=("reject", world.colleague)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) in (["confirm", "refused"], ["refused", "reject"])
    with unit_of_work(factory) as session:
        row = session.get(AnomalyFinding, finding_id)
        assert row is not None
        assert row.status == ("confirmed" if "confirm" in outcomes else "rejected")
    assert len(alerts(factory)) == (1 if "confirm" in outcomes else 0)
    assert (
        len(actions(factory, "finding.confirmed")) + len(actions(factory, "finding.rejected")) == 1
    )


def test_another_organisations_finding_is_not_found(
    factory: sessionmaker[Session], world: World
) -> None:
    (finding_id,) = save(factory, world.almaty, finding()).ids
    for decide in (service.confirm, service.reject):
        with unit_of_work(factory) as session, pytest.raises(NotFound):
            decide(session, finding_id, world.outsider, "mine?", organisation_id=world.astana)
        with unit_of_work(factory) as session, pytest.raises(NotFound):
            decide(session, 10_000, world.analyst, "none", organisation_id=world.almaty)
    with unit_of_work(factory) as session:
        assert service.get_finding(
            session=session, organisation_ids=[world.astana], finding_id=finding_id
        ) is None  # fmt: skip
        assert service.get_finding(
            session=session, organisation_ids=[world.almaty], finding_id=finding_id
        ) is not None  # fmt: skip
        assert session.get(AnomalyFinding, finding_id).status == "pending"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("", "needs a reason"),
        ("   \n\t", "needs a reason"),
        (None, "needs a reason"),
        ("x" * 2001, "at most 2000"),
        ("bad \x00 byte", "NUL"),
        ("lone \ud800 surrogate", "surrogate"),
    ],
)
def test_a_decision_needs_a_storable_reason(
    factory: sessionmaker[Session], world: World, reason: Any, message: str
) -> None:
    (finding_id,) = save(factory, world.almaty, finding()).ids
    for decide in (service.confirm, service.reject):
        with unit_of_work(factory) as session, pytest.raises(FindingError, match=message):
            decide(session, finding_id, world.analyst, reason, organisation_id=world.almaty)
    with unit_of_work(factory) as session:
        assert session.get(AnomalyFinding, finding_id).status == "pending"  # type: ignore[union-attr]
    assert alerts(factory) == []
    # The longest reason allowed is kept whole.
    with unit_of_work(factory) as session:
        row = service.reject(
            session, finding_id, world.analyst, "y" * 2000, organisation_id=world.almaty
        )
        assert row.reason == "y" * 2000


def test_a_rejected_pattern_stops_firing_and_feeds_the_baseline(
    factory: sessionmaker[Session], world: World
) -> None:
    (finding_id,) = save(factory, world.almaty, finding()).ids
    with unit_of_work(factory) as session:
        assert service.rejected_patterns(session, world.almaty) == []
        service.reject(
            session, finding_id, world.analyst, "the admins' VPN", organisation_id=world.almaty
        )
    with unit_of_work(factory) as session:
        (rejected,) = service.rejected_patterns(session, world.almaty)
        assert rejected.pattern == "logon.new_source_ip|user=aigerim|ip=203.0.113.9"
        assert rejected.model == "entity-baseline"
        assert rejected.finding["fingerprint"] == rejected.fingerprint
        assert service.rejected_patterns(session, world.astana) == []
        pattern = session.scalars(select(RejectedPattern)).one()
        assert pattern.rejected_by == world.analyst and pattern.reason == "the admins' VPN"
    # The same pattern later is suppressed; another pattern, and another organisation, are not.
    later = save(
        factory, world.almaty, finding(time="2026-11-22T03:00:00Z"), finding("dana", "198.51.100.7")
    )
    assert (later.created, later.suppressed) == (1, 1)
    assert save(factory, world.astana, finding()).created == 1
    (rejected_entry,) = actions(factory, "finding.rejected")
    assert rejected_entry.details["new_pattern"] is True
    assert alerts(factory) == []


# --------------------------------------------------------------------------- objections


def test_an_objection_excludes_the_persons_identifiers(
    factory: sessionmaker[Session], world: World
) -> None:
    with unit_of_work(factory) as session:
        assert service.excluded_identifiers(session, world.almaty) == frozenset()
        added = service.exclude(
            session,
            organisation_id=world.almaty,
            identifiers=["Aigerim@Almaty.kz ", "+7 (701) 123-45-67", "aigerim"],
            key=KEY,
            actor=world.analyst,
            request_ref="letter 17/2026",
        )
        assert added == 3
        # Recorded again: nothing new.
        assert service.exclude(
            session, organisation_id=world.almaty, identifiers=["AIGERIM"], key=KEY,
            actor=world.analyst, request_ref="letter 18/2026",
        ) == 0  # fmt: skip
    with unit_of_work(factory) as session:
        excluded = service.excluded_identifiers(session, world.almaty)
        assert service.is_excluded(["aigerim@almaty.kz"], excluded, KEY)
        assert service.is_excluded(["77011234567"], excluded, KEY)
        assert service.is_excluded(finding()["identifiers"], excluded, KEY)
        assert not service.is_excluded(finding("dana")["identifiers"], excluded, KEY)
        # Another key (another installation) does not match; another organisation is untouched.
        assert not service.is_excluded(["aigerim"], excluded, b"z" * 40)
        assert service.excluded_identifiers(session, world.astana) == frozenset()
        # No identifier is kept in clear.
        stored = session.scalars(select(AnomalyExclusion.identifier_hash)).all()
        assert all(len(h) == 64 and "aigerim" not in h for h in stored)
    entries = actions(factory, "finding.excluded")
    assert [e.details for e in entries] == [
        {"origin": "request", "identifiers": 3, "added": 3},
        {"origin": "request", "identifiers": 1, "added": 0},
    ]
    assert "aigerim" not in str([e.details for e in entries]).lower()


def test_a_portal_objection_holds_for_every_organisation(
    factory: sessionmaker[Session], world: World
) -> None:
    with unit_of_work(factory) as session:
        service.exclude(
            session, organisation_id=None, identifiers=["dana"], key=KEY,
            actor=world.analyst, request_ref="portal", origin="citizen",
        )  # fmt: skip
    with unit_of_work(factory) as session:
        for org in (world.almaty, world.astana):
            assert service.is_excluded(["Dana"], service.excluded_identifiers(session, org), KEY)


@pytest.mark.parametrize(
    ("identifiers", "ref", "message"),
    [([], "letter 1", "at least one identifier"), (["  "], "letter 1", "at least one"),
     (["dana"], "", "reference"), (["dana"], "x" * 201, "at most"),
     # A form full of three-word names would be 24 digests a line: one person has fewer.
     ([f"a{i} b c" for i in range(101)], "letter 1", "at most 100 identifiers")],
)  # fmt: skip
def test_an_objection_needs_an_identifier_and_a_reference(
    factory: sessionmaker[Session], world: World, identifiers: list[str], ref: str, message: str
) -> None:
    """Refused with the reason, and nothing kept."""
    with unit_of_work(factory) as session, pytest.raises(FindingError, match=message):
        service.exclude(
            session, organisation_id=world.almaty, identifiers=identifiers, key=KEY,
            actor=world.analyst, request_ref=ref,
        )  # fmt: skip
    with unit_of_work(factory) as session:
        assert session.scalar(select(func.count()).select_from(AnomalyExclusion)) == 0


# --------------------------------------------------------------------------- the register


def test_the_model_register(factory: sessionmaker[Session], world: World) -> None:
    with unit_of_work(factory) as session:
        row = service.register_model(
            session,
            organisation_id=world.almaty,
            name="entity-baseline",
            version="1.0.0",
            purpose="Logons, processes and data volumes per user and host",
            inputs=["auth.log", "access.log"],
            training_from=datetime(2026, 10, 1, tzinfo=UTC),
            training_to=datetime(2026, 10, 31, tzinfo=UTC),
            metrics={"security_injections_found": 4},
            actor=str(world.analyst),
        )
        assert row.approved_by is None
        with pytest.raises(FindingError, match="already registered"):
            service.register_model(
                session, organisation_id=world.almaty, name="entity-baseline", version="1.0.0",
                purpose="again", inputs=["x"], actor="system",
            )  # fmt: skip
        with pytest.raises(FindingError, match="inputs"):
            service.register_model(
                session, organisation_id=world.almaty, name="m", version="1", purpose="p",
                inputs=[], actor="system",
            )  # fmt: skip
    with unit_of_work(factory) as session:
        service.approve_model(
            session, organisation_id=world.almaty, name="entity-baseline", version="1.0.0",
            approver=world.colleague, actor=str(world.colleague),
        )  # fmt: skip
        service.record_retraining(
            session, organisation_id=world.almaty, name="entity-baseline", version="1.0.0",
            training_from=datetime(2026, 11, 1, tzinfo=UTC),
            training_to=datetime(2026, 11, 30, tzinfo=UTC),
            metrics={"security_injections_found": 4, "untouched_findings": 2},
            actor=str(world.analyst),
        )  # fmt: skip
        with pytest.raises(NotFound):
            service.approve_model(
                session, organisation_id=world.astana, name="entity-baseline", version="1.0.0",
                approver=world.outsider, actor=str(world.outsider),
            )  # fmt: skip
    with unit_of_work(factory) as session:
        (model,) = service.list_models(session, world.almaty)
        assert model.approved_by == world.colleague and model.approved_at is not None
        assert model.retrained_at is not None
        assert model.training_from == datetime(2026, 11, 1, tzinfo=UTC)
        assert model.metrics == {"security_injections_found": 4, "untouched_findings": 2}
        assert service.list_models(session, world.astana) == []
    assert [e.action for e in actions(factory, "model.")] == [
        "model.registered",
        "model.approved",
        "model.retrained",
    ]


def test_an_objection_is_kept_in_the_spelling_the_models_compare() -> None:
    """The models compare an event's ``CORP\\alice`` as ``alice``, a phone written in groups
    as its digits, a name with any spacing and case: an objection given in either spelling has
    the same digest, and a neighbour another."""
    same = [("CORP\\Alice", "alice"), ("+7 (701) 123-45-67", "77011234567"),
            ("Aigerim  SAPAROVA", "aigerim saparova")]  # fmt: skip
    for given, compared in same:
        assert service.identifier_digest(given, KEY) == service.identifier_digest(compared, KEY)
    assert service.identifier_digest("CORP\\Alice", KEY) != service.identifier_digest("bob", KEY)
    assert service.identifier_digest("+7 701 123 45 67", KEY) != service.identifier_digest(
        "77011234568", KEY
    )


def test_an_objection_keeps_every_spelling_of_the_person(
    factory: sessionmaker[Session], world: World
) -> None:
    """A letter gives "Aigerim Saparova" and "+7 701 123 45 67"; the organisation's records
    write "Saparova A.N." and "8 701 123-45-67". The store keeps each spelling's digest, so the
    models, which compare the keyed hash of what the event says, leave those events out."""
    from functools import partial

    from qorgan.detection.anomaly.rarity import TemplateRarityDetector
    from qorgan.detection.anomaly.suite import AnomalySuite
    from qorgan.telemetry.batch import EventBatch

    with unit_of_work(factory) as session:
        added = service.exclude(
            session, organisation_id=world.almaty, identifiers=["Aigerim Saparova",
            "+7 701 123 45 67", "8 (701) 123-45-67"], key=KEY, actor=world.analyst,
            request_ref="letter 21/2026",
        )  # fmt: skip
        # The two phones are one number: two identifiers, however many spellings.
        assert added == 2
        excluded = service.excluded_identifiers(session, world.almaty)
    assert len(excluded) == 6 + 3
    assert service.is_excluded(["Saparova Aigerim"], excluded, KEY)
    assert service.is_excluded(["7011234567"], excluded, KEY)
    assert not service.is_excluded(["Saparbekova Aigerim", "87011234568"], excluded, KEY)
    assert [e.details for e in actions(factory, "finding.excluded")] == [
        {"origin": "request", "identifiers": 2, "added": 2}
    ]

    rarity = TemplateRarityDetector()
    suite = AnomalySuite([rarity], identify=partial(service.identifier_digest, key=KEY))
    suite.exclude(excluded)
    batch = EventBatch(path="/var/log/app.log", format="syslog", logsource={"product": "linux"})
    lines = ("signed by Saparova A.N. today", "callback to 8 701 123-45-67 failed",
             "signed by Saparbekova A.N. today", "callback to 8 701 123-45-68 failed")  # fmt: skip
    for i, line in enumerate(lines):
        batch.append({"program": "portal", "message": line}, i, None, "web1")
    suite.observe(batch)
    assert suite.skipped_events == 2
    assert rarity.miner._clock == 2


def test_lone_surrogates_in_events_do_not_stop_the_models(
    factory: sessionmaker[Session], world: World
) -> None:
    """An event's user or text may hold a lone surrogate (JSON's "\\ud800"). Before, its keyed
    hash raised, and the whole batch went unscored: anyone could blind the models of an
    organisation with objections by writing one into each batch."""
    from functools import partial

    from qorgan.detection.anomaly.rarity import TemplateRarityDetector
    from qorgan.detection.anomaly.suite import AnomalySuite
    from qorgan.telemetry.batch import EventBatch

    with unit_of_work(factory) as session:
        service.exclude(
            session, organisation_id=world.almaty, identifiers=["ann"], key=KEY,
            actor=world.analyst, request_ref="letter 5",
        )  # fmt: skip
        excluded = service.excluded_identifiers(session, world.almaty)
    rarity = TemplateRarityDetector()
    suite = AnomalySuite([rarity], identify=partial(service.identifier_digest, key=KEY))
    suite.exclude(excluded)
    batch = EventBatch(path="/var/log/app.json", format="json", logsource={"product": "app"})
    events = [{"user": "x\ud800", "message": "login ok"},
              {"user": "bob", "message": "login ok for b\udc80ob and \ud800 \ud800"},
              {"user": "ann", "message": "login ok"},
              {"user": "dana", "message": "login ok for ann"}]  # fmt: skip
    for i, event in enumerate(events):
        batch.append(event, i, None, "web1")
    suite.observe(batch)
    assert suite.skipped_events == 2
    assert rarity.miner._clock == 2
    assert not service.is_excluded(["x\ud800"], excluded, KEY)


def test_an_objection_kept_in_one_spelling_gains_the_others_when_recorded_again(
    factory: sessionmaker[Session], world: World
) -> None:
    """Objections recorded before spellings were kept hold one digest: recording the same
    identifier again adds the other spellings and counts as new."""
    with unit_of_work(factory) as session:
        session.add(
            AnomalyExclusion(
                organisation_id=world.almaty,
                identifier_hash=service.identifier_digest("Aigerim Saparova", KEY),
                origin="request", recorded_by=world.analyst, request_ref="letter 1",
            )
        )  # fmt: skip
    with unit_of_work(factory) as session:
        assert not service.is_excluded(
            ["Saparova Aigerim"], service.excluded_identifiers(session, world.almaty), KEY
        )
        kwargs = {"organisation_id": world.almaty, "identifiers": ["Aigerim Saparova"],
                  "key": KEY, "actor": world.analyst, "request_ref": "letter 2"}  # fmt: skip
        assert service.exclude(session, **kwargs) == 1
        assert service.exclude(session, **kwargs) == 0
        assert service.is_excluded(
            ["Saparova Aigerim"], service.excluded_identifiers(session, world.almaty), KEY
        )


def test_the_objections_are_listed_once_each_newest_first(
    factory: sessionmaker[Session], world: World
) -> None:
    with unit_of_work(factory) as session:
        for org, ref, identifiers in [
            (world.almaty, "letter 1", ["Aigerim Saparova", "+7 701 123 45 67"]),
            (world.astana, "letter 2", ["dana"]),
            (None, "portal 3", ["bob@example.kz"]),
            (world.almaty, "letter 4", ["8 702 000 11 22"]),
        ]:
            service.exclude(
                session, organisation_id=org, identifiers=identifiers, key=KEY,
                actor=world.analyst, request_ref=ref,
                origin="citizen" if org is None else "request",
            )  # fmt: skip
    with unit_of_work(factory) as session:
        listed = service.list_objections(session, world.almaty, 10)
        assert (
            session.scalar(select(func.count()).select_from(AnomalyExclusion)) == 6 + 3 + 1 + 1 + 3
        )
        assert [(o.request_ref, o.origin) for o in listed] == [
            ("letter 4", "request"), ("portal 3", "citizen"), ("letter 1", "request")
        ]  # fmt: skip
        assert [o.request_ref for o in service.list_objections(session, world.almaty, 2)] == [
            "letter 4", "portal 3"
        ]  # fmt: skip


def test_an_iins_digest_is_the_privacy_services_pseudonym(
    factory: sessionmaker[Session], world: World
) -> None:
    """The portal knows a citizen only by the pseudonym of their IIN: recorded as a digest,
    it matches the IIN as a log writes it."""
    from qorgan.privacy.protection import Protection

    iin = "900101300011"
    pseudonym = Protection(KEY, None).pseudonym(iin)  # type: ignore[arg-type]
    assert service.identifier_digest(f" {iin} ", KEY) == pseudonym
    with unit_of_work(factory) as session:
        with pytest.raises(FindingError, match="64 hexadecimal"):
            service.exclude(
                session, organisation_id=None, identifiers=[], digests=["not-a-hash"], key=KEY,
                actor=world.analyst, request_ref="portal", origin="citizen",
            )  # fmt: skip
        service.exclude(
            session, organisation_id=None, identifiers=[], digests=[pseudonym], key=KEY,
            actor=world.analyst, request_ref="portal", origin="citizen",
        )  # fmt: skip
    with unit_of_work(factory) as session:
        assert service.is_excluded([iin], service.excluded_identifiers(session, world.astana), KEY)


def test_the_store_keeps_an_objecting_person_out(
    factory: sessionmaker[Session], world: World
) -> None:
    """From the objection on, a finding about that person is not stored (the pipeline leaves
    them out before scoring; the store keeps to it too); another person's still is."""
    assert save(factory, world.almaty, finding()).created == 1  # before the objection
    with unit_of_work(factory) as session:
        service.exclude(
            session, organisation_id=world.almaty, identifiers=["AIGERIM"], key=KEY,
            actor=world.analyst, request_ref="letter 3",
        )  # fmt: skip
    later = [finding(time="2026-11-23T03:00:00Z"), finding("dana", "198.51.100.7")]
    with unit_of_work(factory) as session:
        result = service.save_findings(session, world.almaty, later, exclusion_key=KEY)
    assert (result.received, result.excluded, result.created) == (2, 1, 1)
    with unit_of_work(factory) as session:
        # Another organisation received no objection from her.
        other = service.save_findings(session, world.astana, later, exclusion_key=KEY)
        assert (other.excluded, other.created) == (0, 2)
