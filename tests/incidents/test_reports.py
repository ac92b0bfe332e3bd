"""Public reports as a service: a valid report opens an incident in triage in the national
coordinator's organisation without the reporter's personal data in its title, timeline or the
audit trail; every malformed field is refused with its message while its valid neighbour is
accepted; the reporter sees the phase and nothing else."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import fields, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import accounts, audit
from qorgan.core.db import unit_of_work
from qorgan.core.models import AuditEntry, OrganisationKind, Role
from qorgan.core.workdays import default_calendar
from qorgan.incidents import evidence, reports, service
from qorgan.incidents.models import (
    Evidence,
    Incident,
    IncidentEvent,
    IncidentObservable,
    PublicReport,
)

CALENDAR = default_calendar()
TODAY = date(2026, 11, 30)
NAME = "Айгерім Серікқызы Нұрланова"
EMAIL = "aigerim.private@mail.kz"
PHONE = "+7 701 555 12 34"
VALID = reports.Submission(
    kind="phishing-site",
    reporter_name=NAME,
    email=EMAIL,
    phone=PHONE,
    organisation_involved="Kaspi Bank",
    url="https://kaspi-bonus.example.kz/login?step=1",
    period_from=date(2026, 11, 20),
    period_to=date(2026, 11, 21),
    description="A page that looks like the bank's asked for my card number and the SMS code.",
    language="ru",
    attachments=(reports.Attachment("C:\\Users\\me\\screenshot.png", "image/png", b"\x89PNG..."),),
)


@pytest.fixture
def coordinator(factory: sessionmaker[Session]) -> tuple[int, int]:
    """KZ-CERT's organisation and one of its coordinators; an akimat besides."""
    with unit_of_work(factory) as session:
        accounts.create_organisation(
            session=session, actor="system", name="Almaty akimat", kind=OrganisationKind.akimat
        )
        cert = accounts.create_organisation(
            session=session, actor="system", name="KZ-CERT", kind=OrganisationKind.cert
        )
        user = accounts.create_user(
            session=session,
            actor="system",
            organisation_id=cert.id,
            email="coordinator@cert.kz",
            display_name="Coordinator",
            role=Role.cert_coordinator,
            password="Qorgan-Test-Passphrase-2026!",
        )
        return cert.id, user.id


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return evidence.store_folder(tmp_path / "var")


def _submit(
    factory: sessionmaker[Session], store: Path, submission: reports.Submission, **kwargs: str
) -> str:
    with unit_of_work(factory) as session:
        return reports.submit(
            session=session, submission=submission, calendar=CALENDAR, store_root=store, **kwargs
        )


def test_a_report_opens_an_incident_in_triage_without_personal_data(
    factory: sessionmaker[Session], coordinator: tuple[int, int], store: Path
) -> None:
    cert, _ = coordinator
    tracking = _submit(factory, store, VALID, challenge="c" * 32)
    assert reports.normalise_tracking(tracking) == tracking
    assert tracking.startswith("QR-") and len(tracking) == 17
    with unit_of_work(factory) as session:
        report = session.scalars(select(PublicReport)).one()
        incident = session.get(Incident, report.incident_id)
        assert incident is not None
        assert (incident.organisation_id, incident.status, incident.origin) == (
            cert,
            "triage",
            "report",
        )
        assert incident.title == "Reported phishing site: kaspi-bonus.example.kz"
        # The clock to acknowledge runs until a person takes the report; it counts from the
        # report's receipt, not from the period reported (which would make it overdue at once).
        assert incident.acknowledged_at is None
        assert incident.started_at == report.created_at or (
            abs((incident.started_at - report.created_at).total_seconds()) < 5
        )
        assert incident.started_at > datetime(2026, 11, 19, 19, tzinfo=UTC)
        assert incident.acknowledge_due_at is not None and incident.next_due_at is not None
        assert "public-report" in incident.tags and "phishing-site" in incident.tags
        assert VALID.description in incident.description
        assert "Kaspi Bank" in incident.description
        # The report keeps the reporter's details, cleaned.
        assert (report.reporter_name, report.email, report.phone) == (NAME, EMAIL, PHONE)
        assert (report.kind, report.language, report.challenge) == ("phishing-site", "ru", "c" * 32)
        assert report.url == VALID.url and report.organisation_id == cert
        assert (report.period_from, report.period_to) == (VALID.period_from, VALID.period_to)
        # The file is the incident's evidence, under a neutral name (the trail records names).
        stored = session.scalars(select(Evidence)).one()
        assert (stored.incident_id, stored.organisation_id) == (incident.id, cert)
        assert (stored.name, stored.media_type, stored.size) == (
            "report-file-1.png",
            "image/png",
            7,
        )
        assert stored.description == "Sent with a public report as: screenshot.png"
        assert stored.sha256 == hashlib.sha256(b"\x89PNG...").hexdigest()
        assert evidence.stored_path(store, stored.sha256).read_bytes() == b"\x89PNG..."
        assert stored.added_by_id is None
        # The timeline: created, moved to triage, the site's address and domain.
        kinds = [
            (e.kind, e.actor_id)
            for e in session.scalars(
                select(IncidentEvent)
                .where(IncidentEvent.incident_id == incident.id)
                .order_by(IncidentEvent.id)
            )
        ]
        assert kinds == [
            ("created", None),
            ("status", None),
            ("evidence_added", None),
            ("observable", None),
            ("observable", None),
        ]
        observables = set(
            session.execute(
                select(IncidentObservable.kind, IncidentObservable.value).where(
                    IncidentObservable.incident_id == incident.id
                )
            ).all()
        )
        assert observables == {("url", VALID.url), ("domain", "kaspi-bonus.example.kz")}
        # Nothing personal in the incident, its timeline or the audit trail.
        entries = list(session.scalars(select(AuditEntry)))
        events = list(session.scalars(select(IncidentEvent)))
        written = " ".join(
            [incident.title, incident.description, *incident.tags]
            + [repr(e.details) for e in events]
            + [repr((e.action, e.actor, e.target_id, e.details)) for e in entries]
        )
        for personal in (NAME, "Айгерім", EMAIL, "aigerim", PHONE, "555 12 34", "screenshot"):
            assert personal not in written, personal
        assert {e.action for e in entries if e.target_type == "incident"} == {
            "incident.created",
            "incident.status",
            "incident.evidence_added",
            "incident.observable",
        }
        assert audit.verify(session=session) == []


def test_status_shows_the_phase_in_words_and_nothing_else(
    factory: sessionmaker[Session], coordinator: tuple[int, int], store: Path
) -> None:
    cert, person = coordinator
    tracking = _submit(
        factory, store, replace(VALID, kind="pyramid-scheme", url="", attachments=())
    )
    assert {f.name for f in fields(reports.ReportStatus)} == {
        "tracking",
        "kind",
        "submitted_at",
        "phase",
        "closed",
    }
    with unit_of_work(factory) as session:
        seen = reports.status(session=session, tracking=tracking.lower().replace("-", " "))
        incident_id = session.scalars(select(PublicReport.incident_id)).one()
        title = session.get(Incident, incident_id).title  # type: ignore[union-attr]
    assert title == "Reported pyramid scheme: Kaspi Bank"
    assert (seen.tracking, seen.kind, seen.phase, seen.closed) == (
        tracking,
        "pyramid-scheme",
        "assessment",
        False,
    )
    assert abs(seen.submitted_at - datetime.now(UTC)) < timedelta(minutes=1)
    for status, phase in (("containment", "response"), ("review", "response")):
        with unit_of_work(factory) as session:
            service.move(
                session=session,
                organisation_id=cert,
                incident_id=incident_id,
                actor_id=person,
                status=status,
            )
        with unit_of_work(factory) as session:
            assert reports.status(session=session, tracking=tracking).phase == phase
    # Merged into another incident: the reporter follows the one that carries the work on.
    with unit_of_work(factory) as session:
        other, _ = service.create(
            session=session,
            organisation_id=cert,
            actor_id=person,
            draft=service.Draft(title="The same scheme, reported twice"),
            calendar=CALENDAR,
        )
        service.merge(
            session=session,
            organisation_id=cert,
            source_id=incident_id,
            target_id=other.id,
            actor_id=person,
        )
        other_id = other.id
    with unit_of_work(factory) as session:
        assert reports.status(session=session, tracking=tracking).phase == "received"
        service.move(
            session=session,
            organisation_id=cert,
            incident_id=other_id,
            actor_id=person,
            status="closed",
            resolution="true-positive-impact",
        )
    with unit_of_work(factory) as session:
        seen = reports.status(session=session, tracking=tracking)
    assert (seen.phase, seen.closed) == ("closed", True)


def test_a_wrong_tracking_number_is_not_found(
    factory: sessionmaker[Session], coordinator: tuple[int, int], store: Path
) -> None:
    tracking = _submit(factory, store, VALID)
    wrong = ["", "QR-", "QR-0000-0000-000", "QR-0000-0000-00000", "QR-UUUU-0000-0000", "x" * 100]
    wrong += [reports.new_tracking(), tracking[:-1] + ("0" if tracking[-1] != "0" else "1")]
    for typed in wrong:
        with unit_of_work(factory) as session, pytest.raises(reports.ReportNotFound) as missing:
            reports.status(session=session, tracking=typed)
        assert missing.value.message == "no report has this tracking number"


def test_tracking_numbers_are_read_back_as_people_type_them() -> None:
    assert reports.normalise_tracking("qr 1ab2 c3d4 e5f6") == "QR-1AB2-C3D4-E5F6"
    assert reports.normalise_tracking("1ab2-c3d4-e5f6") == "QR-1AB2-C3D4-E5F6"
    assert reports.normalise_tracking("QR-OIL0-0000-0000") == "QR-0110-0000-0000"
    assert reports.normalise_tracking("QR-U000-0000-0000") is None
    numbers = {reports.new_tracking() for _ in range(1000)}
    assert len(numbers) == 1000
    assert all(reports.normalise_tracking(n) == n for n in numbers)


#: (what is wrong, the message, the field, a valid neighbour). Each neighbour is accepted.
MALFORMED = [
    ({"kind": "spam"}, "choose what you are reporting", "kind", {"kind": "other"}),
    ({"reporter_name": "   "}, "a name is required", "reporter_name", {"reporter_name": "A"}),
    (
        {"reporter_name": "x" * 201},
        "a name has at most 200 characters",
        "reporter_name",
        {"reporter_name": "x" * 200},
    ),
    (
        {"reporter_name": "Aigerim\x00"},
        "text cannot contain NUL characters",
        "reporter_name",
        {"reporter_name": "Aigerim"},
    ),
    (
        {"reporter_name": "Aigerim\x1b[31m"},
        "text cannot contain control characters",
        "reporter_name",
        {"reporter_name": "Aigerim [31m"},
    ),
    (
        {"email": "someone@localhost"},
        "the e-mail address is not valid (name@example.kz)",
        "email",
        {"email": "someone@почта.қаз"},
    ),
    (
        {"email": "two words@mail.kz"},
        "the e-mail address is not valid (name@example.kz)",
        "email",
        {"email": "two.words+tag@mail.kz"},
    ),
    (
        {"email": "a" * 64 + "@" + "b" * 188 + ".kz"},
        "an e-mail address has at most 254 characters",
        "email",
        {"email": "a" * 64 + "@" + "b" * 61 + "." + "b" * 61 + "." + "c" * 60 + ".kz"},
    ),
    (
        {"phone": "12345"},
        "the phone number is not valid (+7 701 234 56 78)",
        "phone",
        {"phone": "8 (727) 123-45-67"},
    ),
    (
        {"phone": "7 701 234 56 78 ext 9"},
        "the phone number is not valid (+7 701 234 56 78)",
        "phone",
        {"phone": "+77012345678"},
    ),
    (
        {"phone": "+7 701 +234 56 78"},
        "the phone number is not valid (+7 701 234 56 78)",
        "phone",
        {"phone": "+7 701 234 56 78"},
    ),
    (
        {"email": "", "phone": ""},
        "give an e-mail address or a phone number, so that the coordinator can reach you",
        "email",
        {"email": ""},
    ),
    (
        {"organisation_involved": "o" * 301},
        "the organisation's name has at most 300 characters",
        "organisation_involved",
        {"organisation_involved": "o" * 300},
    ),
    (
        {"url": "ftp://files.example.kz/x"},
        "the web address is not valid (https://example.kz/...)",
        "url",
        {"url": "files.example.kz/x"},
    ),
    (
        {"url": "https://bad host.kz/"},
        "the web address is not valid (https://example.kz/...)",
        "url",
        {"url": "https://сайт.қаз/"},
    ),
    (
        {"url": "http://localhost/"},
        "the web address is not valid (https://example.kz/...)",
        "url",
        {"url": "http://203.0.113.7:8080/"},
    ),
    (
        {"url": "http://example.kz:http/"},
        "the web address is not valid (https://example.kz/...)",
        "url",
        {"url": "http://example.kz:80/"},
    ),
    (
        {"url": "https://example.kz/" + "p" * 1990},
        "a web address has at most 2,000 characters",
        "url",
        {"url": "https://example.kz/" + "p" * 1980},
    ),
    ({"url": ""}, "give the site's web address", "url", {"url": "", "kind": "incident"}),
    (
        {"kind": "pyramid-scheme", "url": "", "organisation_involved": ""},
        "name the scheme's organisation or give its web address",
        "organisation_involved",
        {"kind": "pyramid-scheme", "url": ""},
    ),
    (
        {"period_from": date(1999, 12, 31)},
        "a date must be between 2000-01-01 and today",
        "period_from",
        {"period_from": date(2000, 1, 1)},
    ),
    (
        {"period_to": TODAY + timedelta(days=1)},
        "a date must be between 2000-01-01 and today",
        "period_to",
        {"period_to": TODAY},
    ),
    (
        {"period_to": date(2026, 11, 19)},
        "the period ends before it begins",
        "period_to",
        {"period_to": date(2026, 11, 20)},
    ),
    (
        {"description": " too short "},
        "describe what happened (at least 10 characters)",
        "description",
        {"description": "long enough"},
    ),
    (
        {"description": "d" * 20_001},
        "a description has at most 20,000 characters",
        "description",
        {"description": "d" * 20_000},
    ),
    (
        {"description": "It began\x00 here"},
        "text cannot contain NUL characters",
        "description",
        {"description": "It began\there,\r\nthen went on"},
    ),
    (
        {"description": "A lone surrogate \udc80 here"},
        "text cannot contain unpaired surrogate characters",
        "description",
        {"description": "A pair \U0001f600 is fine here"},
    ),
    (
        {"organisation_involved": "Bank \ud83d"},
        "text cannot contain unpaired surrogate characters",
        "organisation_involved",
        {"organisation_involved": "Bank \U0001f3e6"},
    ),
    (
        {"attachments": (reports.Attachment("a.txt", "text/plain", b"x"),) * 4},
        "at most 3 files can be attached",
        "files",
        {"attachments": (reports.Attachment("a.txt", "text/plain", b"x"),) * 3},
    ),
    (
        {"attachments": (reports.Attachment("big.bin", "", b"x" * (4 * 2**20 + 1)),)},
        "a file is larger than 4 MiB",
        "files",
        {"attachments": (reports.Attachment("big.bin", "", b"x" * 4 * 2**20),)},
    ),
    (
        {"attachments": (reports.Attachment("empty.txt", "text/plain", b""),)},
        "a file is empty",
        "files",
        {"attachments": ()},
    ),
]


@pytest.mark.parametrize(
    ("bad", "message", "field", "good"), MALFORMED, ids=[m[1][:40] for m in MALFORMED]
)
def test_each_malformed_field_is_refused_and_its_neighbour_accepted(
    bad: dict[str, object], message: str, field: str, good: dict[str, object]
) -> None:
    with pytest.raises(reports.ReportError) as refused:
        reports.check(replace(VALID, **bad), today=TODAY)  # type: ignore[arg-type]
    assert (refused.value.message, refused.value.field) == (message, field)
    reports.check(replace(VALID, **good), today=TODAY)  # type: ignore[arg-type]


def test_check_cleans_what_it_accepts() -> None:
    clean = reports.check(
        replace(
            VALID,
            kind=" fraud-site ",
            reporter_name="  Aigerim \n  N. ",
            email=" a@mail.kz ",
            phone=" +7  701 234 56 78 ",
            url=" fraud.example.kz ",
            description="\n  It happened.  \n",
            language="de",
            attachments=(
                reports.Attachment("../../etc/\x07pass\u202ewd", "text/html; charset=x", b"1"),
                reports.Attachment("x" * 300 + ".pdf", "application/pdf", b"2"),
            ),
        ),
        today=TODAY,
    )
    assert (clean.kind, clean.reporter_name, clean.email, clean.phone) == (
        "fraud-site",
        "Aigerim N.",
        "a@mail.kz",
        "+7 701 234 56 78",
    )
    assert clean.url == "http://fraud.example.kz"
    assert clean.description == "It happened."
    assert clean.language == "kk"  # an unknown language: the default
    first, second = clean.attachments
    assert (first.name, first.media_type) == ("passwd", "application/octet-stream")
    assert len(second.name) == 255 and second.name.endswith(".pdf")
    # The same content chosen twice is one file.
    twice = (reports.Attachment("a.png", "image/png", b"1"), reports.Attachment("b", "", b"1"))
    assert len(reports.check(replace(VALID, attachments=twice), today=TODAY).attachments) == 1
    assert reports.parse_date(" 2026-11-20 ", "period_from") == date(2026, 11, 20)
    assert reports.parse_date("", "period_from") is None
    for typed in ("2026-02-30", "20.11.2026", "2026-1-1", "２０２６-11-20"):
        with pytest.raises(reports.ReportError, match="not a date"):
            reports.parse_date(typed, "period_to")


def test_refused_reports_store_nothing(
    factory: sessionmaker[Session], coordinator: tuple[int, int], store: Path
) -> None:
    for bad in (
        replace(VALID, description="x\udc80" * 10),
        replace(VALID, reporter_name="nul\x00"),
        replace(VALID, description="d" * 20_001),
    ):
        with pytest.raises(reports.ReportError):
            _submit(factory, store, bad)
    with unit_of_work(factory) as session:
        assert session.scalar(select(func.count()).select_from(Incident)) == 0
        assert session.scalar(select(func.count()).select_from(PublicReport)) == 0


def test_a_spent_challenge_is_refused(
    factory: sessionmaker[Session], coordinator: tuple[int, int], store: Path
) -> None:
    _submit(factory, store, VALID, challenge="a" * 32)
    with pytest.raises(reports.ReportError) as refused:
        _submit(factory, store, replace(VALID, reporter_name="Someone else"), challenge="a" * 32)
    assert refused.value.message == (
        "this form was already sent; reload the page to send another report"
    )
    _submit(factory, store, VALID, challenge="b" * 32)
    with unit_of_work(factory) as session:
        assert session.scalar(select(func.count()).select_from(Incident)) == 2
        assert session.scalar(select(func.count()).select_from(PublicReport)) == 2


def test_without_a_coordinator_no_report_is_taken(
    factory: sessionmaker[Session], store: Path
) -> None:
    with pytest.raises(reports.NoCoordinator):
        _submit(factory, store, VALID)


def test_concurrent_reports_are_all_kept_with_the_audit_chain_intact(
    factory: sessionmaker[Session], coordinator: tuple[int, int], store: Path
) -> None:
    found: list[str] = []
    failures: list[BaseException] = []

    def send(worker: int) -> None:
        try:
            for i in range(5):
                found.append(
                    _submit(
                        factory,
                        store,
                        replace(VALID, description=f"Report {worker}-{i}: a fake bank page"),
                        challenge=f"{worker:02d}{i:02d}" * 8,
                    )
                )
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=send, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert len(set(found)) == 20
    with unit_of_work(factory) as session:
        stored = dict(
            session.execute(select(PublicReport.tracking, PublicReport.incident_id)).all()
        )
        assert set(stored) == set(found)
        assert len(set(stored.values())) == 20
        assert audit.verify(session=session) == []
