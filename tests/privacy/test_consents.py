"""Consents: given with a signed receipt that verifies, refused where the registry does not
allow them, withdrawn once (even by two requests at the same instant) unless the law forbids
it, and followed after they end until the holder confirms deletion."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from qorgan.core.db import unit_of_work
from qorgan.core.signing import public_key_bytes
from qorgan.privacy import consents, decisions
from qorgan.privacy.consents import ConsentError, ConsentIn
from qorgan.privacy.decisions import AccessRequest
from qorgan.privacy.models import Consent, ConsentStatus, InformationSystem
from qorgan.privacy.receipts import verify_receipt

from .conftest import Registry
from .examples import iin

CITIZEN = iin(date(1979, 12, 31))
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()


def give(reg: Registry, **changes: object) -> int:
    values: dict[str, object] = {
        "subject_iin": CITIZEN,
        "purposes": ["medical care"],
        "categories": ["general", "special"],
        "data_items": ["surname", "diagnosis"],
        "term_until": NOW.date() + timedelta(days=365),
    }
    values.update(changes)
    with unit_of_work(reg.factory) as session:
        row = consents.give(
            session=session,
            protection=reg.keys,
            key=KEY,
            system=session.get(InformationSystem, reg.clinic.id),
            consent=ConsentIn(**values),  # type: ignore[arg-type]
            now=NOW,
        )
        return row.id


def decide(reg: Registry, now: datetime = NOW) -> str:
    with unit_of_work(reg.factory) as session:
        return decisions.record(
            session=session,
            protection=reg.keys,
            system=session.get(InformationSystem, reg.clinic.id),
            request=AccessRequest(CITIZEN, ["general"], "medical care", "consent", "Dr. A"),
            now=now,
        ).reason


def withdraw(reg: Registry, consent_id: int, now: datetime = NOW + timedelta(days=1)) -> Consent:
    with unit_of_work(reg.factory) as session:
        row = consents.withdraw(session=session, key=KEY, consent_id=consent_id, now=now)
        session.expunge(row)
        return row


def test_a_given_consent_carries_a_signed_receipt_and_allows(privacy_registry: Registry) -> None:
    reg = privacy_registry
    consent_id = give(reg)
    with unit_of_work(reg.factory) as session:
        row = session.get(Consent, consent_id)
        document = row.given_receipt.encode()
    receipt = verify_receipt(document, public_key=public_key_bytes(KEY))
    assert (receipt.event, receipt.purposes, receipt.data) == (
        "given",
        ("medical care",),
        ("surname", "diagnosis"),
    )
    assert receipt.controller.bin == reg.clinic.operator_bin and receipt.withdrawable
    assert receipt.subject_id == reg.keys.pseudonym(CITIZEN) and CITIZEN not in document.decode()
    assert decide(reg) == "consent"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"purposes": ["marketing"]}, "purposes registered"),
        ({"categories": ["biometric"]}, "categories the system"),
        ({"categories": ["telepathic"]}, "unknown data category"),
        ({"term_until": NOW.date() - timedelta(days=1)}, "already ended"),
        ({"subject_iin": "123"}, "12 digits"),
    ],
)
def test_consents_the_registry_does_not_allow_are_refused(
    privacy_registry: Registry, changes: dict[str, object], message: str
) -> None:
    with pytest.raises((ConsentError, decisions.DecisionError), match=message):
        give(privacy_registry, **changes)
    assert decide(privacy_registry) == "no_consent"


def test_withdrawal_signs_a_receipt_and_denies_from_then_on(privacy_registry: Registry) -> None:
    reg = privacy_registry
    consent_id = give(reg)
    row = withdraw(reg, consent_id)
    assert row.status is ConsentStatus.withdrawn
    assert row.deletion_due == (NOW + timedelta(days=1)).date() + timedelta(consents.DELETION_DAYS)
    receipt = verify_receipt(row.withdrawn_receipt.encode(), public_key=public_key_bytes(KEY))
    assert receipt.event == "withdrawn"
    assert decide(reg, NOW + timedelta(days=2)) == "consent_withdrawn"
    with pytest.raises(ConsentError, match="already withdrawn"):
        withdraw(reg, consent_id)


def test_the_law_can_forbid_withdrawal_and_the_refusal_says_why(
    privacy_registry: Registry,
) -> None:
    reg = privacy_registry
    kept = give(reg, withdrawal_restriction="Law 94-V Art. 8(5): the contract is in force")
    with pytest.raises(ConsentError, match="the contract is in force"):
        withdraw(reg, kept)
    assert decide(reg) == "consent"


def test_two_withdrawals_at_the_same_instant_make_one(privacy_registry: Registry) -> None:
    reg = privacy_registry
    consent_id = give(reg)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def attempt() -> None:
        barrier.wait()
        try:
            withdraw(reg, consent_id)
            outcomes.append("withdrawn")
        except ConsentError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["this consent is already withdrawn", "withdrawn"]


def test_ended_consents_are_followed_until_deletion_is_confirmed(
    privacy_registry: Registry,
) -> None:
    reg = privacy_registry
    ending = give(reg, term_until=NOW.date() + timedelta(days=10))
    lasting = give(reg, purposes=["statistics"], term_until=NOW.date() + timedelta(days=400))
    after = NOW + timedelta(days=11)
    with unit_of_work(reg.factory) as session:
        assert consents.sweep(session=session, now=NOW) == 0  # nothing has ended yet
        assert consents.sweep(session=session, now=after) == 1
        assert consents.sweep(session=session, now=after) == 0
        assert session.get(Consent, lasting).status is ConsentStatus.active
    due = after.date() + timedelta(days=consents.DELETION_DAYS)
    with unit_of_work(reg.factory) as session:
        org = [reg.organisation_id]
        assert consents.overdue(session=session, organisation_ids=org, today=due) == []
        late = consents.overdue(session=session, organisation_ids=org, today=due + timedelta(1))
        assert [c.id for c in late] == [ending]
        assert (
            consents.overdue(
                session=session,
                organisation_ids=[reg.organisation_id + 1],
                today=due + timedelta(1),
            )
            == []
        )
        consents.confirm_deletion(session=session, consent=late[0], actor="dpo")
        assert (
            consents.overdue(session=session, organisation_ids=org, today=due + timedelta(1)) == []
        )
        with pytest.raises(ConsentError, match="still active"):
            consents.confirm_deletion(
                session=session, consent=session.get(Consent, lasting), actor="dpo"
            )
    assert decide(reg, after) == "consent_expired"
