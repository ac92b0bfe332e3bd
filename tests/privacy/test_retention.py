"""Retention: records past their term go, their neighbours within it stay, the deletion is in
the audit trail; the console runs the sweep after each notification pass, and `qorgan privacy
sweep` and `citizen-create` work on a real database."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from qorgan.cli import app
from qorgan.core.db import make_engine, session_factory, unit_of_work
from qorgan.core.models import AuditEntry, User
from qorgan.core.settings import Settings
from qorgan.incidents.notifications import Notifier
from qorgan.migrations import upgrade
from qorgan.privacy import citizens, decisions, retention
from qorgan.privacy.leak_models import LeakNotice, LeakReport, LeakSubject, NoticeStatus
from qorgan.privacy.models import (
    AccessRecord,
    CitizenAccount,
    Complaint,
    ComplaintKind,
    ComplaintStatus,
    Consent,
    ConsentStatus,
    LegalBasis,
    Outcome,
    Subject,
)
from qorgan.web.mail import compose

from .conftest import Registry
from .examples import iin
from .leak_examples import submitted as submitted_leak

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=6 * 366)
RECENT = NOW - timedelta(days=4 * 366)


def _subject(reg: Registry, session, born: date) -> int:
    return decisions.subject_for(session=session, protection=reg.keys, iin=iin(born)).id


def _entry(subject_id: int, system_id: int, at: datetime, **changes: object) -> AccessRecord:
    values: dict[str, object] = {
        "subject_id": subject_id,
        "system_id": system_id,
        "at": at,
        "outcome": Outcome.allow,
        "reason": "legal_basis",
        "official": "x",
        "purpose": "medical care",
        "legal_basis": LegalBasis.legal_obligation,
        "categories": ["general"],
    }
    values.update(changes)
    return AccessRecord(**values)


def _complaint(subject_id: int, organisation_id: int, answered: datetime | None) -> Complaint:
    return Complaint(
        kind=ComplaintKind.complaint,
        subject_id=subject_id,
        organisation_id=organisation_id,
        contacts=b"x",
        description="d",
        filed_at=OLD,
        due_at=OLD,
        status=ComplaintStatus.answered if answered else ComplaintStatus.open,
        answer="a" if answered else None,
        answered_at=answered,
    )


def _consent(subject_id: int, system_id: int, ended: datetime, confirmed: bool) -> Consent:
    return Consent(
        subject_id=subject_id,
        system_id=system_id,
        purposes=["medical care"],
        categories=["general"],
        given_at=ended - timedelta(days=30),
        given_receipt="{}",
        status=ConsentStatus.expired,
        ended_at=ended,
        deletion_due=ended.date(),
        deletion_confirmed_at=ended if confirmed else None,
    )


def test_records_past_their_term_go_and_their_neighbours_stay(privacy_registry: Registry) -> None:
    reg = privacy_registry
    with unit_of_work(reg.factory) as session:
        kept = _subject(reg, session, date(1970, 1, 1))
        gone = _subject(reg, session, date(1971, 1, 1))
        session.get(Subject, gone).created_at = OLD
        session.get(Subject, kept).created_at = OLD
        clinic = reg.clinic.id
        session.add_all(
            [
                _entry(gone, clinic, OLD),
                _entry(kept, clinic, RECENT),
                # Hidden until after the cutoff: its term runs from the end of its hiding.
                _entry(kept, clinic, OLD, hidden_until=(RECENT + timedelta(days=1)).date()),
                _complaint(gone, reg.organisation_id, answered=OLD),
                _complaint(kept, reg.organisation_id, answered=None),  # never answered: kept
                _consent(gone, clinic, OLD, confirmed=True),
                _consent(kept, clinic, OLD, confirmed=False),  # deletion unconfirmed: kept
            ]
        )
    with unit_of_work(reg.factory) as session:
        purged = retention.purge(session=session, now=NOW, years=5)
    assert (purged.access_log, purged.complaints, purged.consents, purged.subjects) == (1, 1, 1, 1)
    with unit_of_work(reg.factory) as session:
        assert session.get(Subject, gone) is None and session.get(Subject, kept) is not None
        assert session.scalar(select(func.count()).select_from(AccessRecord)) == 2
        assert session.scalar(select(func.count()).select_from(Complaint)) == 1
        assert session.scalar(select(func.count()).select_from(Consent)) == 1
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "privacy.retention_purge")
        ).all()
        assert [e.details["access_log"] for e in entries] == [1]
    with unit_of_work(reg.factory) as session:
        assert retention.purge(session=session, now=NOW, years=5).total == 0
        assert (
            session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "privacy.retention_purge")
            )
            == 1
        )  # nothing deleted, nothing recorded


def test_the_console_runs_the_sweep_after_each_pass(
    privacy_registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    reg = privacy_registry
    with unit_of_work(reg.factory) as session:
        subject = _subject(reg, session, date(1980, 5, 5))
        session.add(_consent(subject, reg.clinic.id, NOW, confirmed=False))
        row = session.scalars(select(Consent)).one()
        row.status, row.ended_at, row.term_until = ConsentStatus.active, None, date(2026, 1, 1)
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("a job that fails must not stop the next")

    notifier = Notifier(
        reg.factory,
        settings=settings.model_copy(update={"var_dir": tmp_path / "var"}),
        compose=compose,
        interval=3600,
        also=[broken, lambda: ran.append(str(retention.housekeeping(reg.factory, settings)))],
    )
    notifier.start()
    try:
        notifier.wake()
        assert notifier.wait_for_pass(0, timeout=60)
    finally:
        notifier.shutdown()
    assert ran and ran[0].startswith("(1,")  # the consent past its term was ended
    with unit_of_work(reg.factory) as session:
        assert session.scalars(select(Consent)).one().status is ConsentStatus.expired


@pytest.fixture
def cli_env(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    upgrade(settings)
    monkeypatch.setenv("QORGAN_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("QORGAN_VAR_DIR", str(tmp_path / "var"))
    return settings


def test_the_commands_sweep_and_open_a_citizens_account(
    cli_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    swept = runner.invoke(app, ["privacy", "sweep"])
    assert swept.exit_code == 0, swept.output
    assert "consents ended: 0" in swept.output
    person = iin(date(2001, 9, 9), female=True)
    answers = iter([person, "Ulytau-Kenges-Citizen-2026"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    made = runner.invoke(
        app, ["privacy", "citizen-create", "--email", "a@example.kz", "--name", "Aruzhan"]
    )
    assert made.exit_code == 0, made.output
    assert person not in made.output and person[-4:] in made.output
    answers = iter([person, "Ulytau-Kenges-Citizen-2026"])
    again = runner.invoke(
        app, ["privacy", "citizen-create", "--email", "b@example.kz", "--name", "Aruzhan"]
    )
    assert again.exit_code == 2 and "already has an account" in again.output
    engine = make_engine(cli_env)
    try:
        with unit_of_work(session_factory(engine)) as session:
            assert session.scalar(select(func.count()).select_from(CitizenAccount)) == 1
            assert citizens.CITIZENS in {a.organisation.name for a in session.scalars(select(User))}
    finally:
        engine.dispose()


def _leak(reg: Registry, start: int, count: int, submitted: datetime) -> int:
    """A report of ``count`` subjects (from the ``start``-th example person), submitted at
    ``submitted``, its notices sent."""
    with unit_of_work(reg.factory) as session:
        leak = submitted_leak(session, reg, count, start=start)
        leak.submitted_at = submitted
        for notice in session.scalars(select(LeakNotice).where(LeakNotice.leak_id == leak.id)):
            notice.status = NoticeStatus.sent
        for subject in session.scalars(select(Subject)):
            subject.created_at = OLD
        return leak.id


def test_a_leaks_list_and_notices_go_after_the_term_once_nothing_waits(
    privacy_registry: Registry,
) -> None:
    reg = privacy_registry
    old = _leak(reg, 0, 3, OLD)
    waiting = _leak(reg, 10, 2, OLD)
    recent = _leak(reg, 20, 2, RECENT)
    with unit_of_work(reg.factory) as session:
        first = session.scalars(select(LeakNotice).where(LeakNotice.leak_id == waiting)).first()
        assert first is not None
        first.status = NoticeStatus.pending  # still to be sent: the list stays
    with unit_of_work(reg.factory) as session:
        purged = retention.purge(session=session, now=NOW, years=5)
    assert (purged.leak_subjects, purged.leak_notices) == (3, 3)
    # The old report's three subjects had nothing else: they go; the others' stay, although
    # they too were first seen before the cutoff.
    assert purged.subjects == 3
    with unit_of_work(reg.factory) as session:
        left = Counter(session.scalars(select(LeakSubject.leak_id)))
        assert left == {waiting: 2, recent: 2}
        assert Counter(session.scalars(select(LeakNotice.leak_id))) == {waiting: 2, recent: 2}
        assert session.get(LeakReport, old) is not None  # the organisation's record stays
        assert session.scalar(select(func.count()).select_from(Subject)) == 4
