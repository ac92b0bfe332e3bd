"""Leak reports: the one-working-day deadline in the Kazakh calendar, the subjects' CSV checked
row by row (taken whole or not at all, errors without the values), subjects uploaded twice
added once, a report submitted twice queueing each notice once, and the report to the
authorised body as JSON and as a PDF in Kazakh and in Russian."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from incidents.test_referral import _pdf_text
from qorgan.core.db import unit_of_work
from qorgan.core.workdays import default_calendar
from qorgan.privacy import leaks
from qorgan.privacy.leak_csv import MAX_BYTES, CsvRejected
from qorgan.privacy.leak_models import LeakNotice, LeakStatus, LeakSubject
from qorgan.privacy.leak_report import render_pdf, report_data
from qorgan.privacy.leaks import LeakError
from qorgan.privacy.models import Subject

from .conftest import Registry
from .examples import iin
from .leak_examples import DETECTED, leak_in, person, subjects_csv

ALMATY_NOW = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)


def _csv(*rows: str, header: str = "name,iin,email,phone") -> io.BytesIO:
    return io.BytesIO(("\n".join((header, *rows)) + "\n").encode("utf-8"))


def _refused(stream: io.BytesIO, **options: object) -> CsvRejected:
    with pytest.raises(CsvRejected) as caught:
        leaks.load_subjects_csv(stream, **options)  # type: ignore[arg-type]
    return caught.value


# --- the deadline ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("detected", "due"),
    [
        # Friday 15:00 -> weekend -> Monday 9 March (a day off for Sunday 8 March) -> Tuesday.
        (datetime(2026, 3, 6, 10, 0, tzinfo=UTC), datetime(2026, 3, 10, 10, 0, tzinfo=UTC)),
        # Friday 20 March 15:00 -> Nauryz, 21-25 March -> Thursday 26 March 15:00.
        (datetime(2026, 3, 20, 10, 0, tzinfo=UTC), datetime(2026, 3, 26, 10, 0, tzinfo=UTC)),
        # Found on Saturday evening: a working day from Monday's opening, due at its close.
        (datetime(2026, 4, 4, 15, 0, tzinfo=UTC), datetime(2026, 4, 6, 13, 0, tzinfo=UTC)),
    ],
)
def test_the_deadline_is_one_kazakh_working_day_after_detection(
    privacy_registry: Registry, detected: datetime, due: datetime
) -> None:
    calendar = default_calendar()
    with unit_of_work(privacy_registry.factory) as session:
        leak = leaks.create(
            session=session,
            protection=privacy_registry.keys,
            calendar=calendar,
            organisation_id=privacy_registry.organisation_id,
            leak=leak_in(detected_at=detected, occurred_at=None),
            actor="test",
            now=detected + timedelta(hours=1),
        )
        assert leak.due_at == due
        assert not leaks.deadline(leak, due - timedelta(seconds=1)).overdue
        assert leaks.deadline(leak, due + timedelta(seconds=1)).overdue
        leaks.submit(session=session, leak=leak, actor="test", now=due + timedelta(hours=1))
        shown = leaks.deadline(leak, due + timedelta(days=3))
        assert (shown.overdue, shown.late, shown.met_at) == (False, True, leak.submitted_at)
    assert calendar.holiday_name(date(2026, 3, 9)) is not None


# --- the report's fields --------------------------------------------------------------------


#: Fields a report refuses, and a word of the reason (one database for all: the checks come
#: before anything is written).
REFUSED: list[tuple[dict[str, object], str]] = [
    ({"description": "bad\x00text"}, "NUL"),
    ({"measures": "half \ud800 of a pair"}, "unpaired surrogate"),
    ({"holder_name": "Clinic\x00"}, "NUL"),
    ({"responsible_person": "  "}, "1 to 200 characters"),
    ({"contacts": "x" * 501}, "1 to 500 characters"),
    ({"categories": ["secret"]}, "unknown data category"),
    ({"categories": []}, "at least one category"),
    ({"detected_at": ALMATY_NOW + timedelta(days=1)}, "in the future"),
    ({"detected_at": datetime(2026, 3, 6, 10, 0)}, "time zone"),  # noqa: DTZ001 - naive on purpose
    ({"occurred_at": ALMATY_NOW + timedelta(minutes=1)}, "after it was detected"),
    ({"holder_bin": "123456789012"}, "holder's BIN"),
    ({"holder_bin": None}, "holder's BIN"),
]


def test_a_report_refuses_what_cannot_be_stored_or_cannot_be_right(
    privacy_registry: Registry,
) -> None:
    for changes, reason in REFUSED:
        with unit_of_work(privacy_registry.factory) as session, pytest.raises(LeakError) as caught:
            leaks.create(
                session=session,
                protection=privacy_registry.keys,
                calendar=default_calendar(),
                organisation_id=privacy_registry.organisation_id,
                leak=leak_in(**{"detected_at": ALMATY_NOW, **changes}),
                actor="test",
                now=ALMATY_NOW,
            )
        assert reason in str(caught.value), changes
        assert "123456789012" not in str(caught.value)
    with unit_of_work(privacy_registry.factory) as session:
        assert (
            leaks.list_leaks(session=session, organisation_ids=[privacy_registry.organisation_id])
            == []
        )


def test_the_holder_defaults_to_the_systems_owner(privacy_registry: Registry) -> None:
    with unit_of_work(privacy_registry.factory) as session:
        leak = leaks.create(
            session=session,
            protection=privacy_registry.keys,
            calendar=default_calendar(),
            organisation_id=privacy_registry.organisation_id,
            leak=leak_in(system_id=privacy_registry.clinic.id, holder_name=None, holder_bin=None),
            actor="test",
        )
        assert (leak.holder_name, leak.holder_bin) == (
            privacy_registry.clinic.owner_name,
            privacy_registry.clinic.owner_bin,
        )
        assert privacy_registry.keys.decrypt(leak.contacts).startswith("+7 701")
        with pytest.raises(LeakError, match="no such information system"):
            leaks.create(
                session=session,
                protection=privacy_registry.keys,
                calendar=default_calendar(),
                organisation_id=privacy_registry.organisation_id + 1000,
                leak=leak_in(system_id=privacy_registry.clinic.id),
                actor="test",
            )


# --- the CSV -----------------------------------------------------------------------------------


def test_every_bad_row_is_named_with_its_reason_and_nothing_is_taken() -> None:
    names = [person(i) for i in range(6)]
    good, also_good = names[0], names[1]
    typo = names[2][1][:-1] + str((int(names[2][1][-1]) + 1) % 10)
    rows = [
        f"{good[0]},{good[1]},a@example.kz,",  # row 2: fine
        f"{names[2][0]},{typo},b@example.kz,",  # row 3: check digit
        f"{names[3][0]},{names[3][1]},,+7 701 12",  # row 4: short phone
        f"{names[4][0]},{names[4][1]},not-an-address,",  # row 5: e-mail shape
        f"Twice,{good[1]},c@example.kz,",  # row 6: the IIN of row 2
        f"{also_good[0]},{also_good[1]},,+7 (701) 123-45-67",  # row 7: fine
        f"{names[5][0]},{names[5][1]},d@example.kz,+77011234567",  # row 8: both
        f"Nobody,{names[5][1]},,",  # row 9: no contact
    ]
    refused = _refused(_csv(*rows))
    found = {p.row: p.reason for p in refused.problems}
    assert found == {
        3: "the IIN's check digit does not match",
        4: "the phone number is not +7 followed by 10 digits",
        5: "the e-mail address is not of the form name@domain.kz",
        6: "the same IIN as row 2",
        8: "give an e-mail address or a phone number, not both",
        9: "no e-mail address or phone number",
    }
    assert refused.total == 6 and "nothing was stored" in str(refused)
    text = str(refused) + " ".join(str(p) for p in refused.problems)
    for value in (good[1], typo, "+7 701 12", "not-an-address", "d@example.kz", "Twice"):
        assert value not in text
    # The good neighbours alone are taken, the phone normalised, the address's domain lowered.
    taken = leaks.load_subjects_csv(
        _csv(rows[0].replace("a@example.kz", "A.B@Example.KZ"), rows[5])
    )
    assert [(r.row, r.channel, r.address) for r in taken] == [
        (2, "email", "A.B@example.kz"),
        (3, "sms", "+77011234567"),
    ]
    assert good[1] not in repr(taken)


@pytest.mark.parametrize(
    ("name", "reason"),
    [("Nul\x00name", "the name contains a NUL character"), ("x" * 301, "longer than 300")],
)
def test_text_that_cannot_be_stored_is_refused_by_row(name: str, reason: str) -> None:
    number = person(0)[1]
    refused = _refused(_csv(f"{name},{number},a@example.kz,"))
    assert [p.row for p in refused.problems] == [2]
    assert reason in refused.problems[0].reason


def test_a_lone_surrogate_is_not_utf8_and_the_row_is_named() -> None:
    number = person(0)[1]
    raw = f"name,iin,email\nok,{number},a@example.kz\n".encode() + b"bad \xed\xa0\x80,x,y\n"
    refused = _refused(io.BytesIO(raw))
    assert "not UTF-8" in str(refused) and "row 3" in str(refused)
    refused = _refused(io.BytesIO("name,iin,email\n".encode("utf-16")))
    assert "UTF-16" in str(refused)


def test_a_spreadsheets_bom_semicolons_and_russian_headers_are_read() -> None:
    raw = subjects_csv(3, delimiter=";", bom=True)
    assert [r.row for r in leaks.load_subjects_csv(io.BytesIO(raw))] == [2, 3, 4]
    name, number = person(7)
    russian = "\ufeffФИО;ИИН;Телефон\n" + f"{name};{number};+77010000007\n\n"
    rows = leaks.load_subjects_csv(io.BytesIO(russian.encode("utf-8")))
    assert [(r.name, r.channel) for r in rows] == [(name, "sms")]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "the file is empty"),
        (b"name,iin\n", "neither an email nor a phone column"),
        (b"name,iin,email,shoe size\n", "column 4 is not one of"),
        (b"name,iin,email\n", "a header but no subjects"),
        (b'name,iin,email\n"open,quote\n', "row 2 is not valid CSV"),
    ],
)
def test_a_file_that_is_not_a_subject_list_is_refused(raw: bytes, reason: str) -> None:
    refused = _refused(io.BytesIO(raw))
    assert reason in str(refused) + " ".join(str(p) for p in refused.problems)


def test_an_oversize_file_is_refused_before_it_is_read_whole() -> None:
    class Endless(io.RawIOBase):
        read_so_far = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
            buffer[:] = b"x" * len(buffer)
            self.read_so_far += len(buffer)
            return len(buffer)

    endless = Endless()
    refused = _refused(endless)  # type: ignore[arg-type]
    assert str(refused).startswith("the file is larger than 20 MiB")
    assert endless.read_so_far <= MAX_BYTES + (1 << 20)
    rows = _refused(io.BytesIO(subjects_csv(6)), max_rows=5)
    assert "more than 5 rows" in str(rows)


def test_thousands_of_rows_are_checked_quickly() -> None:
    rows = leaks.load_subjects_csv(io.BytesIO(subjects_csv(5_000)))
    assert len(rows) == 5_000 and rows[-1].row == 5_001


def test_problems_past_the_first_thousand_are_counted() -> None:
    bad = [f"n{i},{i:012d},a@example.kz," for i in range(1_500)]
    refused = _refused(_csv(*bad))
    assert (len(refused.problems), refused.total) == (1_000, 1_500)
    assert "the first 1,000 are listed" in str(refused)


# --- subjects and submitting ------------------------------------------------------------------


def _report(registry: Registry, session: object) -> object:
    return leaks.create(
        session=session,  # type: ignore[arg-type]
        protection=registry.keys,
        calendar=default_calendar(),
        organisation_id=registry.organisation_id,
        leak=leak_in(system_id=registry.clinic.id),
        actor="test",
    )


def test_uploading_and_submitting_again_adds_nothing_new(privacy_registry: Registry) -> None:
    keys = privacy_registry.keys
    with unit_of_work(privacy_registry.factory) as session:
        leak = _report(privacy_registry, session)
        rows = leaks.load_subjects_csv(io.BytesIO(subjects_csv(40)))
        first = leaks.add_subjects(
            session=session, protection=keys, leak=leak, rows=rows, actor="t"
        )
        assert (first.added, first.already) == (40, 0)
        submitted = leaks.submit(session=session, leak=leak, actor="t")
        assert (submitted.queued, submitted.first) == (40, True)
        assert leak.status is LeakStatus.submitted
    with unit_of_work(privacy_registry.factory) as session:
        leak = leaks.get(
            session=session, organisation_ids=[privacy_registry.organisation_id], leak_id=leak.id
        )
        # The same list again, with ten more people and one known person with a new address.
        more = leaks.load_subjects_csv(io.BytesIO(subjects_csv(50)))
        again = leaks.add_subjects(
            session=session, protection=keys, leak=leak, rows=more, actor="t"
        )
        assert (again.added, again.already) == (10, 40)
        resubmitted = leaks.submit(session=session, leak=leak, actor="t")
        assert (resubmitted.queued, resubmitted.first) == (10, False)
        assert leaks.submit(session=session, leak=leak, actor="t").queued == 0
        assert leaks.subject_count(session=session, leak_id=leak.id) == 50
        assert session.scalar(select(func.count()).select_from(LeakNotice)) == 50
        assert leaks.notice_counts(session=session, leak_id=leak.id)["pending"] == 50
        # A subject known from an access decision is the same row; nothing holds an IIN.
        name, number = person(3)
        assert (
            session.scalar(select(func.count()).where(Subject.iin_hash == keys.pseudonym(number)))
            == 1
        )
        stored = session.scalars(select(LeakSubject).where(LeakSubject.leak_id == leak.id)).all()
        assert {s.iin_masked[-4:] for s in stored} >= {number[-4:]}
        assert all(number.encode() not in s.address + s.name for s in stored)
        assert keys.decrypt(stored[3].name) == name


def test_another_organisations_report_is_not_found(privacy_registry: Registry) -> None:
    with unit_of_work(privacy_registry.factory) as session:
        leak = _report(privacy_registry, session)
        with pytest.raises(leaks.LeakNotFound):
            leaks.get(session=session, organisation_ids=[leak.organisation_id + 1], leak_id=leak.id)  # type: ignore[attr-defined]
        assert leaks.list_leaks(session=session, organisation_ids=[-1]) == []


# --- the report to the authorised body -------------------------------------------------------


def test_the_report_is_json_and_a_pdf_in_kazakh_and_russian(privacy_registry: Registry) -> None:
    keys = privacy_registry.keys
    with unit_of_work(privacy_registry.factory) as session:
        leak = _report(privacy_registry, session)
        rows = leaks.load_subjects_csv(io.BytesIO(subjects_csv(25)))
        leaks.add_subjects(session=session, protection=keys, leak=leak, rows=rows, actor="t")
        leaks.submit(session=session, leak=leak, actor="t")
        data = report_data(
            session=session, protection=keys, leak=leak, incident_reference="INC-000042"
        )
    assert data["schema"] == "qorgan.privacy.leak-report" and data["version"] == 1
    assert data["holder"]["bin"] == leak.holder_bin  # type: ignore[attr-defined]
    assert data["system"]["name"] == "Clinic records"
    assert data["responsible_person"]["contacts"] == "+7 701 000 00 00, dpo@clinic.kz"
    assert data["detected_at"] == DETECTED.isoformat()
    subjects = data["affected_subjects"]
    assert (subjects["count"], subjects["notified"]) == (25, 0)
    numbers = [person(i)[1] for i in range(25)]
    assert [s["iin"] for s in subjects["subjects"]] == ["********" + n[-4:] for n in numbers]
    flat_json = repr(data)
    assert not any(n in flat_json for n in numbers)
    assert "subject0@example.kz" not in flat_json
    for language, expected in (
        ("kk", ("Дербес деректердің заңсыз таралуы", "БСН", "Қабылданған шаралар", "ЖСН")),
        ("ru", ("Уведомление о неправомерном распространении", "БИН", "Принятые меры", "ИИН")),
    ):
        text, pages = _pdf_text(render_pdf(data, language))
        flat = " ".join(text.split())
        for part in expected:
            assert part in flat, (language, part)
        for part in (
            "INC-000042",
            data["reference"],
            leak.holder_bin,  # type: ignore[attr-defined]
            "Ахметова Д. К.",
            "dpo@clinic.kz",
            "06.03.2026 15:00 (Asia/Almaty)",  # detected, local time
            "10.03.2026 15:00 (Asia/Almaty)",  # due: a weekend and a holiday later
            "********" + numbers[24][-4:],
        ):
            assert part in flat, (language, part)
        assert not any(n in flat for n in numbers)
        assert pages >= 1
    assert set("әғқңөұүі") <= set(_pdf_text(render_pdf(data, "kk"))[0])  # embedded, all drawn
    with pytest.raises(ValueError, match="kk or ru"):
        render_pdf(data, "en")


def test_a_subject_known_before_is_the_same_subject(privacy_registry: Registry) -> None:
    from qorgan.privacy.decisions import subject_for

    number = iin(date(1950, 1, 1), serial=1000)
    assert number == person(0)[1]
    with unit_of_work(privacy_registry.factory) as session:
        known = subject_for(session=session, protection=privacy_registry.keys, iin=number)
        leak = _report(privacy_registry, session)
        rows = leaks.load_subjects_csv(io.BytesIO(subjects_csv(2)))
        leaks.add_subjects(
            session=session, protection=privacy_registry.keys, leak=leak, rows=rows, actor="t"
        )
        listed = session.scalars(
            select(LeakSubject.subject_id).where(LeakSubject.leak_id == leak.id)  # type: ignore[attr-defined]
        ).all()
        assert known.id in listed
