"""A model that fails on a live batch is logged and counted, and the next batches are scored
again (the rules' detection of the batch is not the models' business: see
``test_collector.py::test_live_anomaly_models_run_once_approved_propose_findings_and_heed_an_objection``
for the models in the running collector)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core.accounts import create_organisation, create_user
from qorgan.core.db import unit_of_work
from qorgan.core.models import OrganisationKind, Role
from qorgan.detection.anomaly.behaviour import MODEL, VERSION, EntityBehaviour
from qorgan.detection.anomaly.defaults import default_suite
from qorgan.detection.anomaly.findings import Finding, contributions
from qorgan.detection.anomaly.suite import AnomalySuite
from qorgan.incidents import findings as store
from qorgan.pipeline.anomaly import LiveAnomaly, register_default_models
from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.quarantine import Quarantine
from qorgan.telemetry.sources import read_file


class FailsOnce(EntityBehaviour):
    """The real entity model, but its first batch raises, as a model's bug would."""

    failed = False

    def observe(self, batch: EventBatch) -> list[Finding]:
        if not self.failed:
            self.failed = True
            raise RuntimeError("a model's bug")
        return super().observe(batch)


def test_a_failing_model_is_counted_and_the_next_batch_is_scored(
    factory: sessionmaker[Session],
) -> None:
    with unit_of_work(factory) as session:
        org = create_organisation(
            session=session, actor="t", name="Astana SOC", kind=OrganisationKind.soc
        ).id
    model = FailsOnce(str(org))
    live = LiveAnomaly(factory, lambda *_a, **_k: AnomalySuite([model]), b"k" * 32)
    batch = EventBatch("auth.log", "syslog", {"product": "linux", "service": "sshd"})
    batch.append(
        {"event_type": "logon", "user": "alice", "src_ip": "10.0.0.5", "message": "Accepted"},
        1,
        "2026-12-01T03:00:00Z",
        "web1",
    )
    live.observe(org, batch)  # raises inside: logged, counted, not raised
    assert live.failures == 1
    live.observe(org, batch)
    assert live.failures == 1 and model.failed
    live.store()  # nothing pending from the failed batch: stores without error


def _events(suite_state: dict, model: str) -> int:
    state = suite_state["models"][model]["state"]
    if model == "qorgan-entity-behaviour":
        return int(state["events"])
    return sum(int(s["total"]) for s in state["sources"].values())


def test_a_retraining_recorded_in_the_register_restarts_that_model_once(
    factory: sessionmaker[Session], shared_file: Callable[[str], Path]
) -> None:
    """``qorgan anomaly retrained`` is not only a record: live monitoring drops the model's
    baselines at its next refresh, and it learns again from the next events; another model
    keeps what it learned, and a restart neither repeats the retraining nor forgets it."""
    entity, rarity = "qorgan-entity-behaviour", "qorgan-template-rarity"
    with unit_of_work(factory) as session:
        org = create_organisation(
            session=session, actor="t", name="Astana SOC", kind=OrganisationKind.soc
        ).id
        admin = create_user(
            session=session,
            actor="t",
            organisation_id=org,
            email="ciso@astana.kz",
            display_name="CISO",
            role=Role.administrator,
            password="a long enough passphrase 1",
        ).id
        register_default_models(session, org, "t")
        for name in (entity, rarity):
            store.approve_model(
                session, organisation_id=org, name=name, version="1.0", approver=admin, actor="t"
            )
    batches = list(read_file(shared_file("loghub/OpenSSH/OpenSSH_2k.log"), Quarantine()))
    live = LiveAnomaly(factory, default_suite, b"k" * 32, refresh=0.0)
    half = EventBatch(batches[0].path, batches[0].format, batches[0].logsource)
    rest = EventBatch(batches[0].path, batches[0].format, batches[0].logsource)
    for b in batches:
        for i in range(len(b)):
            target = half if len(half) < 1000 else rest
            target.append(b.events[i], b.records[i], b.times[i], b.hosts[i])
    live.observe(org, half)
    before = live.suites[org].state()
    assert _events(before, entity) > 0 and _events(before, rarity) == 1000
    # what the entity model counts of the second half alone, from fresh baselines
    alone = default_suite(str(org), models=[entity])
    alone.observe(rest)
    of_rest = _events(alone.state(), entity)
    assert of_rest > 0

    with unit_of_work(factory) as session:
        row = store.record_retraining(
            session,
            organisation_id=org,
            name=entity,
            version="1.0",
            training_from=None,
            training_to=None,
            actor="t",
        )
        stamp = row.retrained_at
    assert stamp is not None
    live.observe(org, rest)
    after = live.suites[org].state()
    # the entity model learned only what came after the retraining; rarity kept its count
    assert _events(after, entity) == of_rest
    assert _events(after, rarity) == 2000
    assert live.suites[org].retrained == {entity: stamp.isoformat()}

    # A restart from the committed state: the same retraining is not applied again.
    again = LiveAnomaly(factory, default_suite, b"k" * 32, refresh=0.0)
    again.load(live.dump())
    again.observe(org, half)
    assert _events(again.suites[org].state(), entity) == of_rest + _events(before, entity)
    assert again.suites[org].retrained == {entity: stamp.isoformat()}


class ProposesTwo(EntityBehaviour):
    """A model whose second finding is too large to store (a model's bug): 3,000 identifiers
    make it larger than the store's 64 KiB."""

    def observe(self, batch: EventBatch) -> list[Finding]:
        def finding(user: str, identifiers: tuple[str, ...]) -> Finding:
            return Finding(
                detector="entity.logon",
                model=MODEL,
                version=VERSION,
                time="2026-12-01T03:00:00Z",
                source=batch.path,
                entity={"user": user},
                score=5.0,
                threshold=3.0,
                confidence=0.9,
                contributions=contributions([("logon.new_source_ip", 1.0, "10.0.0.1", "10.0.0.5")]),
                summary=f"{user} logged on from a new address",
                examples=("Accepted password for someone",),
                pattern=f"logon.new_source_ip|user={user}",
                identifiers=identifiers,
            )

        many = tuple(f"person-{n:05d}@example.org.kz" for n in range(3000))
        return [finding("alice", ("alice",)), finding("crowd", many)]


def test_a_finding_the_store_would_refuse_is_logged_and_the_others_are_stored(
    factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    with unit_of_work(factory) as session:
        org = create_organisation(
            session=session, actor="t", name="Almaty SOC", kind=OrganisationKind.soc
        ).id
    live = LiveAnomaly(factory, lambda *_a, **_k: AnomalySuite([ProposesTwo(str(org))]), b"k" * 32)
    batch = EventBatch("auth.log", "syslog", {"product": "linux", "service": "sshd"})
    batch.append({"event_type": "logon", "user": "alice"}, 1, "2026-12-01T03:00:00Z", "web1")
    live.observe(org, batch)
    live.store()  # before, the store refused both, and monitoring retried the call for ever
    assert (live.stored, live.refused) == (1, 1)
    with unit_of_work(factory) as session:
        stored = store.list_findings(session=session, organisation_ids=[org])
        assert [f.body["entity"] for f in stored] == [{"user": "alice"}]
    (record,) = [r for r in caplog.records if "is not stored" in r.getMessage()]
    assert "bytes are accepted" in record.getMessage() and "person-" not in record.getMessage()


def test_objections_reach_live_monitoring_once_each_and_survive_a_new_approval(
    factory: sessionmaker[Session],
) -> None:
    """Each refresh reads only the objections recorded since the last (before, every refresh
    read them all and forgot every word's verdict, so each event's words were hashed again);
    one recorded later still applies, and a suite rebuilt for a new approval is given them all."""
    rarity, frequency = "qorgan-template-rarity", "qorgan-template-frequency"
    key = b"k" * 32
    with unit_of_work(factory) as session:
        org = create_organisation(
            session=session, actor="t", name="Astana SOC", kind=OrganisationKind.soc
        ).id
        admin = create_user(
            session=session, actor="t", organisation_id=org, email="ciso@astana.kz",
            display_name="CISO", role=Role.administrator, password="a long enough passphrase 1",
        ).id  # fmt: skip
        register_default_models(session, org, "t")
        store.approve_model(
            session, organisation_id=org, name=rarity, version="1.0", approver=admin, actor="t"
        )

    def object_for(name: str) -> None:
        with unit_of_work(factory) as session:
            store.exclude(
                session, organisation_id=org, identifiers=[name], key=key, actor=admin,
                request_ref=f"letter for {name}",
            )  # fmt: skip

    def batch() -> EventBatch:
        out = EventBatch("app.log", "syslog", {"product": "linux"})
        for i, user in enumerate(["ann", "bob", "dana", "Сапарова Айгерим"]):
            out.append({"program": "portal", "message": f"login ok for {user}"}, i, None, "web1")
        return out

    object_for("ann")
    live = LiveAnomaly(factory, default_suite, key, refresh=0.0)
    live.observe(org, batch())
    suite = live.suites[org]
    assert suite.skipped_events == 1
    # Refreshed with no new objection: no word of the same events is hashed again.
    hashed: list[str] = []
    identify = suite._identify
    suite._identify = lambda value: hashed.append(value) or identify(value)
    live.observe(org, batch())
    assert suite.skipped_events == 2 and hashed == []
    object_for("Айгерим Сапарова")
    live.observe(org, batch())
    assert suite.skipped_events == 2 + 2
    with unit_of_work(factory) as session:
        store.approve_model(
            session, organisation_id=org, name=frequency, version="1.0", approver=admin, actor="t"
        )
    live.observe(org, batch())
    assert live.suites[org] is not suite
    assert live.suites[org].skipped_events == 2
