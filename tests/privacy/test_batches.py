"""Group commit of access decisions: a batch answers each request as it would be answered
alone (a bad one fails alone, a request id asked twice in the batch or asked before is
recorded once), the requests of one moment share one transaction, and nobody is answered
when that transaction does not commit."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import event, func, select

from qorgan.core.db import session_factory, unit_of_work
from qorgan.privacy import decisions
from qorgan.privacy.batches import DecisionBatcher, UnknownToken
from qorgan.privacy.decisions import AccessRequest, Ask, Decision, DecisionError
from qorgan.privacy.models import AccessRecord, Consent, InformationSystem, Outcome

from .conftest import Registry
from .examples import iin

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
ALICE = iin(date(1985, 3, 14), female=True)
BOB = iin(date(1990, 7, 1))
NEWCOMER = iin(date(2001, 1, 2), female=True)


def request(subject: str = ALICE, **changes: object) -> AccessRequest:
    values: dict[str, object] = {
        "subject_iin": subject,
        "categories": ["general"],
        "purpose": "medical care",
        "legal_basis": "consent",
        "official": "Dr. Serikbayeva (staff 1042)",
    }
    values.update(changes)
    return AccessRequest(**values)  # type: ignore[arg-type]


def consent_of(reg: Registry, subject: str) -> int:
    with unit_of_work(reg.factory) as session:
        found = decisions.subject_for(session=session, protection=reg.keys, iin=subject)
        row = Consent(
            subject_id=found.id,
            system_id=reg.clinic.id,
            purposes=["medical care"],
            categories=["general"],
            given_at=NOW - timedelta(days=3),
            given_receipt="{}",
        )
        session.add(row)
        session.flush()
        return row.id


def log_size(reg: Registry) -> int:
    with unit_of_work(reg.factory) as session:
        return session.scalar(select(func.count()).select_from(AccessRecord)) or 0


def test_a_mixed_batch_answers_each_request_as_alone(privacy_registry: Registry) -> None:
    reg = privacy_registry
    alice_consent = consent_of(reg, ALICE)
    with unit_of_work(reg.factory) as session:
        clinic = session.get(InformationSystem, reg.clinic.id)
        police = session.get(InformationSystem, reg.police.id)
        assert clinic is not None and police is not None
        (before,) = decisions.record_many(
            session=session,
            protection=reg.keys,
            asks=[Ask(clinic, request(BOB, request_id="r-0"))],
            now=NOW - timedelta(hours=1),
        )
    assert isinstance(before, Decision) and before.reason == "no_consent"
    asks = [
        Ask(clinic, request(ALICE)),  # consented
        Ask(clinic, request(BOB)),  # not consented
        Ask(clinic, request("900101300124")),  # a wrong check digit: fails alone
        Ask(clinic, request(NEWCOMER)),  # first seen in this batch
        Ask(clinic, request(ALICE, request_id="twice")),
        Ask(clinic, request(BOB, request_id="twice")),  # the same id in the batch: as the first
        Ask(clinic, request(ALICE, request_id="r-0")),  # asked before: the recorded answer
        Ask(police, request(ALICE, request_id="twice", purpose="pre-trial investigation",
                            legal_basis="law_enforcement")),  # another system's id space
        Ask(clinic, request(ALICE, purpose="marketing")),  # not registered
        Ask(clinic, request(BOB), reported=True),
    ]  # fmt: skip
    with unit_of_work(reg.factory) as session:
        for ask in asks:
            session.add(ask.system)
        answers = decisions.record_many(session=session, protection=reg.keys, asks=asks, now=NOW)
    assert isinstance(answers[2], DecisionError) and "check digit" in str(answers[2])
    found = [a for a in answers if isinstance(a, Decision)]
    assert len(found) == 9
    reasons = [a.reason if isinstance(a, Decision) else None for a in answers]
    assert reasons == [
        "consent", "no_consent", None, "no_consent", "consent", "consent", "no_consent",
        "legal_basis", "purpose_not_registered", "reported",
    ]  # fmt: skip
    assert answers[0].consent_id == alice_consent  # type: ignore[union-attr]
    assert answers[4] == answers[5]  # one entry for the id asked twice
    assert answers[6] == before
    assert answers[7].record_id != answers[4].record_id  # type: ignore[union-attr]
    assert answers[9].outcome is Outcome.reported  # type: ignore[union-attr]
    # 1 before + 9 answered - the repeated id - the earlier id = 8 new entries.
    assert log_size(reg) == 1 + 7
    ids = {a.record_id for a in found}
    assert len(ids) == 8


def _batcher(reg: Registry, gate: threading.Event | None = None) -> DecisionBatcher:
    def keys():  # type: ignore[no-untyped-def]
        if gate is not None:
            gate.wait(30)
        return reg.keys

    return DecisionBatcher(reg.factory, keys)


def test_requests_of_one_moment_share_a_transaction(privacy_registry: Registry) -> None:
    reg = privacy_registry
    consent_of(reg, ALICE)
    gate = threading.Event()
    batcher = _batcher(reg, gate)
    try:
        futures = [batcher.submit(reg.clinic_token, request(ALICE, request_id=f"q{n}"))
                   for n in range(200)]  # fmt: skip
        futures.append(batcher.submit("qps_not-a-token", request(ALICE)))
        futures.append(batcher.submit(reg.clinic_token, request(ALICE, categories=["gene"])))
        gate.set()
        answers = [f.result(30) for f in futures[:200]]
        with pytest.raises(UnknownToken):
            futures[200].result(30)
        with pytest.raises(DecisionError, match="data category"):
            futures[201].result(30)
    finally:
        batcher.close()
    assert {a.reason for a in answers} == {"consent"}
    assert len({a.record_id for a in answers}) == 200 == log_size(reg)
    # Each writer's first batch waits at the gate; what arrives meanwhile makes one more.
    assert batcher.batches <= batcher.writers + 1


def test_nobody_is_answered_when_the_batch_does_not_commit(privacy_registry: Registry) -> None:
    reg = privacy_registry
    factory = session_factory(reg.factory.kw["bind"])

    def refuse(_session: object) -> None:
        raise RuntimeError("the disk is full")

    event.listen(factory, "before_commit", refuse)
    gate = threading.Event()
    batcher = DecisionBatcher(factory, lambda: gate.wait(30) and reg.keys)  # type: ignore[arg-type,return-value]
    try:
        futures = [batcher.submit(reg.clinic_token, request(ALICE)) for _ in range(5)]
        gate.set()
        for future in futures:
            with pytest.raises(RuntimeError, match="disk is full"):
                future.result(30)
        event.remove(factory, "before_commit", refuse)
        # The thread lives on: the next request is decided and recorded.
        assert batcher.submit(reg.clinic_token, request(ALICE)).result(30).reason == "no_consent"
    finally:
        batcher.close()
    assert log_size(reg) == 1
