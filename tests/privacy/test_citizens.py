"""Citizens' accounts, the record a citizen reads, staff reads in it, and complaints with
their deadline in Kazakh working days."""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import event, select

from qorgan.core import accounts
from qorgan.core.db import unit_of_work
from qorgan.core.models import Role, User
from qorgan.core.workdays import default_calendar
from qorgan.privacy import citizens, complaints, decisions
from qorgan.privacy.citizens import CitizenError
from qorgan.privacy.complaints import ComplaintError, ComplaintIn
from qorgan.privacy.decisions import AccessRequest
from qorgan.privacy.models import Complaint, ComplaintKind, ComplaintStatus, InformationSystem

from .conftest import Registry
from .examples import iin

CITIZEN = iin(date(1992, 2, 29), female=True)
PASSWORD = "Zhetisu-Kolsai-Citizen-8"
#: A Friday in Almaty.
FRIDAY = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def register(reg: Registry, person: str = CITIZEN, email: str = "dana@example.kz") -> int:
    with unit_of_work(reg.factory) as session:
        return citizens.register(
            session=session,
            protection=reg.keys,
            iin=person,
            email=email,
            display_name="Dana Seitkali",
            password=PASSWORD,
        ).id


def test_one_account_per_person_found_by_iin(privacy_registry: Registry) -> None:
    reg = privacy_registry
    user_id = register(reg)
    with pytest.raises(CitizenError, match="already has an account"):
        register(reg, email="other@example.kz")
    with pytest.raises(CitizenError, match="check digit"):
        register(reg, person=CITIZEN[:-1] + str((int(CITIZEN[-1]) + 1) % 10))
    with unit_of_work(reg.factory) as session:
        found = citizens.account_by_iin(session=session, protection=reg.keys, iin=CITIZEN)
        assert found is not None and found.id == user_id and found.role is Role.citizen
        assert found.organisation.name == citizens.CITIZENS
        other = iin(date(1992, 3, 1))
        assert citizens.account_by_iin(session=session, protection=reg.keys, iin=other) is None
        assert citizens.account_by_iin(session=session, protection=reg.keys, iin="x") is None
        staff = User(role=Role.dpo, organisation_id=reg.organisation_id)
        assert citizens.subject_of(session=session, user=staff) is None


def dpo(reg: Registry) -> int:
    with unit_of_work(reg.factory) as session:
        return accounts.create_user(
            session=session,
            actor="test",
            organisation_id=reg.organisation_id,
            email="dpo@health.kz",
            display_name="Aigul Dpo",
            role=Role.dpo,
            password=PASSWORD,
        ).id


def test_the_record_shows_decisions_and_staff_reads(privacy_registry: Registry) -> None:
    reg = privacy_registry
    user_id, staff_id = register(reg), dpo(reg)
    now = datetime.now(UTC)
    with unit_of_work(reg.factory) as session:
        clinic = session.get(InformationSystem, reg.clinic.id)
        police = session.get(InformationSystem, reg.police.id)
        ask = AccessRequest(CITIZEN, ["general"], "medical care", "legal_obligation", "Dr. A")
        decisions.record(session=session, protection=reg.keys, system=clinic, request=ask, now=now)
        hidden = AccessRequest(
            CITIZEN,
            ["general"],
            "pre-trial investigation",
            "law_enforcement",
            "Investigator B",
            hidden_until=now.date() + timedelta(days=30),
            hidden_because="case 7",
            hidden_visible_to="prosecutor",
        )
        decisions.record(
            session=session,
            protection=reg.keys,
            system=police,
            request=hidden,
            now=now + timedelta(seconds=1),
        )
        subject = citizens.subject_of(session=session, user=session.get(User, user_id))
        assert subject is not None
        citizens.record_staff_read(
            session=session,
            subject_id=subject.id,
            staff=session.get(User, staff_id),
            purpose="answering a complaint",
            now=now + timedelta(seconds=2),
        )
    with unit_of_work(reg.factory) as session:
        subject = citizens.subject_of(session=session, user=session.get(User, user_id))
        seen = citizens.record(session=session, subject=subject, today=now.date())
        assert [(e.reason, e.official, e.who) for e in seen.log] == [
            ("staff_read", "Aigul Dpo", "Health"),
            ("legal_basis", "Dr. A", f"Clinic records ({reg.clinic.operator_name})"),
        ]
        later = citizens.record(session=session, subject=subject, today=now.date() + timedelta(30))
        assert [e.official for e in later.log] == ["Aigul Dpo", "Investigator B", "Dr. A"]


def complaint(reg: Registry, **changes: object) -> ComplaintIn:
    values: dict[str, object] = {
        "kind": ComplaintKind.complaint,
        "organisation_id": reg.organisation_id,
        "system_id": reg.clinic.id,
        "name": "Dana Seitkali",
        "contacts": "+7 701 111 22 33",
        "period_from": date(2026, 10, 1),
        "period_to": date(2026, 10, 31),
        "description": "My diagnosis was read without my consent.",
        "evidence": "SMS of 12 October",
    }
    values.update(changes)
    return ComplaintIn(**values)  # type: ignore[arg-type]


def file(reg: Registry, user_id: int, **changes: object) -> int:
    """File a complaint (on :data:`FRIDAY` unless ``now`` says); a refusal raises."""
    now = changes.pop("now", FRIDAY)
    with unit_of_work(reg.factory) as session:
        subject = citizens.subject_of(session=session, user=session.get(User, user_id))
        return complaints.file(
            session=session,
            protection=reg.keys,
            calendar=default_calendar(),
            subject=subject,
            complaint=complaint(reg, **changes),
            now=now,  # type: ignore[arg-type]
        ).id


def test_a_complaint_is_due_in_working_days_and_answered_once(privacy_registry: Registry) -> None:
    reg = privacy_registry
    user_id, staff_id = register(reg), dpo(reg)
    complaint_id = file(reg, user_id)
    with unit_of_work(reg.factory) as session:
        row = complaints.get(
            session=session, organisation_ids=[reg.organisation_id], complaint_id=complaint_id
        )
        assert row is not None
        assert row.due_at == default_calendar().add_working_days(FRIDAY, complaints.ANSWER_DAYS)
        assert row.due_at - FRIDAY > timedelta(days=complaints.ANSWER_DAYS)  # weekends skipped
        assert reg.keys.decrypt(row.contacts) == "Dana Seitkali\n+7 701 111 22 33"
        assert (
            complaints.get(
                session=session,
                organisation_ids=[reg.organisation_id + 99],
                complaint_id=complaint_id,
            )
            is None
        )
        assert not complaints.overdue(row, row.due_at)
        assert complaints.overdue(row, row.due_at + timedelta(seconds=1))
        complaints.answer(
            session=session, complaint=row, staff=session.get(User, staff_id), text="Checked: ..."
        )
        assert row.status is ComplaintStatus.answered
        with pytest.raises(ComplaintError, match="already answered"):
            complaints.answer(
                session=session, complaint=row, staff=session.get(User, staff_id), text="again"
            )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"description": "  "}, "a description is required"),
        ({"description": "bad\x00text"}, "NUL"),
        ({"evidence": "\ud800"}, "surrogate"),
        ({"period_from": date(2026, 11, 1), "period_to": date(2026, 10, 1)}, "ends before"),
        ({"period_to": date(2027, 1, 1)}, "future"),
        ({"organisation_id": 10_000}, "holds personal data"),
        ({"system_id": 10_000}, "not one of the organisation's"),
        ({"name": ""}, "your name is required"),
    ],
)
def test_a_complaint_without_what_it_needs_is_refused(
    privacy_registry: Registry, changes: dict[str, object], message: str
) -> None:
    reg = privacy_registry
    user_id = register(reg)
    with pytest.raises(ComplaintError, match=message):
        file(reg, user_id, **changes)
    assert file(reg, user_id, kind=ComplaintKind.objection) > 0  # its neighbour is filed


def _file_at(reg: Registry, user_id: int, now: datetime) -> int | str:
    """The new complaint's id, or the refusal."""
    try:
        return file(reg, user_id, now=now)
    except ComplaintError as exc:
        return exc.message


def test_a_citizen_files_a_few_complaints_a_day_and_has_a_few_open(
    privacy_registry: Registry,
) -> None:
    reg = privacy_registry
    user_id = register(reg)
    filed = [_file_at(reg, user_id, FRIDAY + timedelta(minutes=n)) for n in range(6)]
    assert all(isinstance(f, int) for f in filed[: complaints.MAX_PER_DAY])
    assert filed[-1] == "you filed 5 complaints in the last day: try tomorrow"
    assert isinstance(_file_at(reg, user_id, FRIDAY + timedelta(days=1, minutes=1)), int)
    # Up to MAX_OPEN open ones, a few a day; answering one makes room for the next.
    day = FRIDAY + timedelta(days=2)
    while len(opened := _open(reg)) < complaints.MAX_OPEN:
        assert isinstance(_file_at(reg, user_id, day), int)
        day += timedelta(hours=6)
    refused = _file_at(reg, user_id, day)
    assert refused == "you have 20 complaints open: wait for their answers"
    with unit_of_work(reg.factory) as session:
        complaints.answer(
            session=session,
            complaint=session.get(Complaint, opened[0]),
            staff=session.get(User, dpo(reg)),
            text="Checked: the read was by your doctor, under your consent.",
            now=day,
        )
    assert isinstance(_file_at(reg, user_id, day), int)


def _open(reg: Registry) -> list[int]:
    with unit_of_work(reg.factory) as session:
        return list(
            session.scalars(
                select(Complaint.id)
                .where(Complaint.status == ComplaintStatus.open)
                .order_by(Complaint.id)
            )
        )


def test_two_complaints_at_the_same_instant_are_counted_one_after_the_other(
    privacy_registry: Registry,
) -> None:
    reg = privacy_registry
    user_id = register(reg)
    for n in range(complaints.MAX_PER_DAY - 1):
        assert isinstance(_file_at(reg, user_id, FRIDAY + timedelta(minutes=n)), int)
    barrier, inserting = threading.Barrier(2), threading.Barrier(2)
    outcomes: list[int | str] = []

    def hold(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        """Each complaint's INSERT waits (up to a second) for the other's: without the
        lock both would have counted four and both be inserting now, every time."""
        if statement.startswith("INSERT INTO privacy_complaints"):
            with contextlib.suppress(threading.BrokenBarrierError):
                inserting.wait(timeout=1)

    def attempt() -> None:
        barrier.wait()
        outcomes.append(_file_at(reg, user_id, FRIDAY + timedelta(hours=1)))

    engine = reg.factory.kw["bind"]
    event.listen(engine, "before_cursor_execute", hold)
    try:
        threads = [threading.Thread(target=attempt) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        event.remove(engine, "before_cursor_execute", hold)
    assert sorted(map(type, outcomes), key=str) == [int, str]
    assert "in the last day" in str([o for o in outcomes if isinstance(o, str)])
