"""Access decisions: each rule allows where it should and denies its neighbour, every decision
is in the subject's log, hidden entries appear when their date comes, and a retried request is
recorded once, even when both copies arrive at the same instant."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from qorgan.core.db import unit_of_work
from qorgan.privacy import decisions
from qorgan.privacy.decisions import AccessRequest, DecisionError
from qorgan.privacy.models import AccessRecord, Consent, ConsentStatus, InformationSystem, Subject

from .conftest import Registry
from .examples import iin

CITIZEN = iin(date(1985, 3, 14), female=True)
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def ask(reg: Registry, system: InformationSystem, now: datetime = NOW, **changes: object):
    values: dict[str, object] = {
        "subject_iin": CITIZEN,
        "categories": ["general"],
        "purpose": "medical care",
        "legal_basis": "consent",
        "official": "Dr. Serikbayeva (staff 1042)",
    }
    values.update(changes)
    with unit_of_work(reg.factory) as session:
        return decisions.record(
            session=session,
            protection=reg.keys,
            system=session.get(InformationSystem, system.id),
            request=AccessRequest(**values),  # type: ignore[arg-type]
            now=now,
        )


def consent(reg: Registry, **changes: object) -> int:
    with unit_of_work(reg.factory) as session:
        subject = decisions.subject_for(session=session, protection=reg.keys, iin=CITIZEN)
        values: dict[str, object] = {
            "subject_id": subject.id,
            "system_id": reg.clinic.id,
            "purposes": ["medical care"],
            "categories": ["general", "special"],
            "given_at": NOW - timedelta(days=30),
            "given_receipt": "{}",
        }
        values.update(changes)
        row = Consent(**values)
        session.add(row)
        session.flush()
        return row.id


def log(reg: Registry, today: date) -> list[tuple[str, str]]:
    with unit_of_work(reg.factory) as session:
        subject = decisions.subject_for(session=session, protection=reg.keys, iin=CITIZEN)
        rows = decisions.subject_log(session=session, subject_id=subject.id, today=today)
        return [(r.outcome.value, r.reason) for r in rows]


def test_consent_allows_what_it_covers_and_nothing_next_to_it(privacy_registry: Registry) -> None:
    reg = privacy_registry
    assert ask(reg, reg.clinic).reason == "no_consent"
    given = consent(reg)
    allowed = ask(reg, reg.clinic, categories=["general", "special"])
    assert (allowed.outcome.value, allowed.reason, allowed.consent_id) == (
        "allow",
        "consent",
        given,
    )
    # Neighbours: a purpose the consent does not name, a category it does not list.
    assert ask(reg, reg.clinic, purpose="statistics").reason == "no_consent"
    with unit_of_work(reg.factory) as session:
        session.get(Consent, given).categories = ["general"]
    assert ask(reg, reg.clinic, categories=["special"]).reason == "no_consent"
    assert ask(reg, reg.clinic, categories=["general"]).reason == "consent"


def test_withdrawn_and_ended_consents_deny_with_their_reason(privacy_registry: Registry) -> None:
    reg = privacy_registry
    given = consent(reg, term_until=NOW.date())
    assert ask(reg, reg.clinic).reason == "consent"  # its last day
    assert ask(reg, reg.clinic, now=NOW + timedelta(days=1)).reason == "consent_expired"
    with unit_of_work(reg.factory) as session:
        row = session.get(Consent, given)
        row.status, row.term_until = ConsentStatus.withdrawn, None
    denied = ask(reg, reg.clinic)
    assert (denied.outcome.value, denied.reason) == ("deny", "consent_withdrawn")
    assert "withdrew" in denied.explanation
    # A newer consent for the same purpose allows again.
    consent(reg, given_at=NOW - timedelta(hours=1))
    assert ask(reg, reg.clinic).reason == "consent"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"purpose": "marketing"}, "purpose_not_registered"),
        ({"legal_basis": "contract"}, "basis_not_registered"),
        ({"categories": ["biometric"]}, "category_not_registered"),
        ({"legal_basis": "legal_obligation"}, "legal_basis"),
    ],
)
def test_the_registry_bounds_what_a_system_may_ask(
    privacy_registry: Registry, changes: dict[str, object], reason: str
) -> None:
    reg = privacy_registry
    consent(reg, purposes=["medical care", "marketing"], categories=["general", "biometric"])
    found = ask(reg, reg.clinic, **changes)
    assert found.reason == reason
    assert found.outcome.value == ("allow" if reason == "legal_basis" else "deny")


def test_every_decision_is_in_the_log_and_hidden_ones_appear_on_their_date(
    privacy_registry: Registry,
) -> None:
    reg = privacy_registry
    ask(reg, reg.clinic)  # denied: no consent
    until = NOW.date() + timedelta(days=90)
    hidden = ask(
        reg,
        reg.police,
        purpose="pre-trial investigation",
        legal_basis="law_enforcement",
        hidden_until=until,
        hidden_because="pre-trial investigation No. 221",
        hidden_visible_to="Prosecutor General's Office",
    )
    assert hidden.reason == "legal_basis"
    assert log(reg, NOW.date()) == [("deny", "no_consent")]
    assert log(reg, until - timedelta(days=1)) == [("deny", "no_consent")]
    assert log(reg, until) == [("allow", "legal_basis"), ("deny", "no_consent")]
    with unit_of_work(reg.factory) as session:
        row = session.get(AccessRecord, hidden.record_id)
        assert (row.official, row.purpose, row.categories) == (
            "Dr. Serikbayeva (staff 1042)",
            "pre-trial investigation",
            ["general"],
        )


def test_only_law_enforcement_may_hide_an_access(privacy_registry: Registry) -> None:
    reg = privacy_registry
    hidden = {
        "hidden_until": NOW.date() + timedelta(days=30),
        "hidden_because": "investigation",
        "hidden_visible_to": "prosecutor",
    }
    with pytest.raises(DecisionError, match="only an access under law_enforcement"):
        ask(reg, reg.clinic, legal_basis="legal_obligation", **hidden)
    with pytest.raises(DecisionError, match="within five years"):
        ask(
            reg,
            reg.police,
            purpose="pre-trial investigation",
            legal_basis="law_enforcement",
            **{**hidden, "hidden_until": NOW.date() - timedelta(days=1)},
        )
    with pytest.raises(DecisionError, match="grounds"):
        ask(
            reg,
            reg.police,
            purpose="pre-trial investigation",
            legal_basis="law_enforcement",
            **{**hidden, "hidden_visible_to": None},
        )
    assert log(reg, NOW.date() + timedelta(days=3000)) == []  # nothing refused was recorded


def test_subjects_are_kept_by_keyed_hash_and_bad_iins_are_refused(
    privacy_registry: Registry,
) -> None:
    reg = privacy_registry
    ask(reg, reg.clinic)
    ask(reg, reg.clinic, subject_iin=f" {CITIZEN} ")  # the same person
    with unit_of_work(reg.factory) as session:
        hashes = session.scalars(select(Subject.iin_hash)).all()
        assert hashes == [reg.keys.pseudonym(CITIZEN)]
        dumped = " ".join(
            str(v) for row in session.execute(text("SELECT * FROM privacy_access_log")) for v in row
        )
    assert CITIZEN not in hashes[0] and CITIZEN not in dumped
    wrong = CITIZEN[:-1] + str((int(CITIZEN[-1]) + 1) % 10)
    with pytest.raises(DecisionError) as caught:
        ask(reg, reg.clinic, subject_iin=wrong)
    assert wrong not in str(caught.value)  # an error never repeats the number


def test_a_retried_request_is_recorded_once_even_at_the_same_instant(
    privacy_registry: Registry,
) -> None:
    reg = privacy_registry
    first = ask(reg, reg.clinic, request_id="req-1")
    again = ask(reg, reg.clinic, request_id="req-1", purpose="statistics")
    assert again == first  # the recorded answer, not a new decision
    other_system = ask(
        reg,
        reg.police,
        request_id="req-1",
        purpose="pre-trial investigation",
        legal_basis="law_enforcement",
    )
    assert other_system.record_id != first.record_id  # request ids are per system
    barrier = threading.Barrier(4)
    answers: list[object] = []

    def race() -> None:
        barrier.wait()
        answers.append(ask(reg, reg.clinic, request_id="req-2"))

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({a.record_id for a in answers}) == 1  # type: ignore[attr-defined]
    with unit_of_work(reg.factory) as session:
        count = session.scalar(
            select(func.count()).select_from(AccessRecord).where(AccessRecord.request_id == "req-2")
        )
    assert count == 1
