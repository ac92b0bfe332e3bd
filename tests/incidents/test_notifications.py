"""Notifications as a service: who is told of an assignment, a report to the national
coordinator and its answer, and of deadlines due soon or passed (once each, however often the
sweep runs); each user's choice of kinds and channels; never anyone of another organisation.
E-mail delivery through a real SMTP server is tested in tests/web/test_notifications.py."""

from __future__ import annotations

import smtplib
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core.accounts import create_organisation, create_user
from qorgan.core.db import unit_of_work
from qorgan.core.models import AuditEntry, OrganisationKind, Role, User
from qorgan.core.workdays import default_calendar
from qorgan.incidents import clocks, notifications, reporting, service
from qorgan.incidents.lifecycle import IncidentError
from qorgan.incidents.models import Incident
from qorgan.incidents.notification_models import Notification

from .test_alert_store import PASSWORD, World

CALENDAR = default_calendar()


def _create(
    factory: sessionmaker[Session], world: World, assignee_id: int | None = None, **draft: object
) -> int:
    with unit_of_work(factory) as session:
        incident, _ = service.create(
            session=session,
            organisation_id=world.almaty,
            actor_id=world.analyst,
            draft=service.Draft(title="Brute force on the mail server", assignee_id=assignee_id),
            calendar=CALENDAR,
            **draft,  # type: ignore[arg-type]
        )
        return incident.id


def _told(factory: sessionmaker[Session], **where: object) -> list[tuple[int, str]]:
    """(user, kind) of every notification matching ``where``, in order."""
    with unit_of_work(factory) as session:
        query = select(Notification.user_id, Notification.kind).order_by(Notification.id)
        for column, value in where.items():
            query = query.where(getattr(Notification, column) == value)
        return [(u, k) for u, k in session.execute(query)]


def _assign(factory: sessionmaker[Session], world: World, incident_id: int, to: int | None) -> None:
    with unit_of_work(factory) as session:
        service.assign(
            session=session,
            organisation_id=world.almaty,
            incident_id=incident_id,
            actor_id=world.analyst,
            assignee_id=to,
        )


def test_assignment_notifies_the_assignee_and_nobody_else(
    factory: sessionmaker[Session], world: World
) -> None:
    incident_id = _create(factory, world)
    assert _told(factory) == []  # a new unassigned incident concerns nobody yet
    _assign(factory, world, incident_id, world.colleague)
    assert _told(factory) == [(world.colleague, "assigned")]
    with unit_of_work(factory) as session:
        row = session.scalars(select(Notification)).one()
        assert row.incident_id == incident_id and row.console
        # By default an assignment also comes by e-mail, due at once.
        assert row.email_state == "pending" and row.email_next_at == row.created_at
        assert row.dedup_key is None and row.read_at is None
    # Assigning oneself, or unassigning, tells nobody.
    _assign(factory, world, incident_id, world.analyst)
    _assign(factory, world, incident_id, None)
    assert _told(factory) == [(world.colleague, "assigned")]


def test_an_incident_created_with_an_assignee_tells_the_assignee(
    factory: sessionmaker[Session], world: World
) -> None:
    _create(factory, world, assignee_id=world.colleague)
    _create(factory, world, assignee_id=world.analyst)  # the creator's own: nobody
    assert _told(factory) == [(world.colleague, "assigned")]


def test_another_organisations_users_are_never_told(
    factory: sessionmaker[Session], world: World
) -> None:
    incident_id = _create(factory, world)
    with unit_of_work(factory) as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        # Even an event naming an outsider (which the service would refuse) tells nobody.
        made = notifications.notify_for_event(
            session, incident, world.analyst, "assigned", {"from": None, "to": world.outsider}
        )
        assert made == 0
        due = incident.next_due_at
        assert due is not None
    with unit_of_work(factory) as session:
        notifications.sweep_deadlines(session=session, now=due + timedelta(minutes=1))
    told = _told(factory)
    assert told and world.outsider not in {user for user, _ in told}
    assert {user for user, _ in told} == {world.analyst, world.colleague}


def test_preferences_decide_the_channels(factory: sessionmaker[Session], world: World) -> None:
    with unit_of_work(factory) as session:
        chosen = notifications.preferences(session=session, user_id=world.colleague)
        assert chosen == notifications.DEFAULTS
        assert chosen[("due_soon", "console")] and not chosen[("due_soon", "email")]
        user = session.get(User, world.colleague)
        assert user is not None
        notifications.set_preferences(session=session, user=user, enabled=set())
    first = _create(factory, world)
    _assign(factory, world, first, world.colleague)
    assert _told(factory) == []  # everything off: no notification at all
    with unit_of_work(factory) as session:
        user = session.get(User, world.colleague)
        assert user is not None
        notifications.set_preferences(session=session, user=user, enabled={("assigned", "email")})
        assert notifications.preferences(session=session, user_id=world.colleague)[
            ("assigned", "email")
        ]
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "notification.preferences")
        ).all()
        assert [(e.target_type, e.target_id, e.actor) for e in entries] == [
            ("user", str(world.colleague), str(world.colleague))
        ] * 2
        assert entries[-1].details == {"enabled": ["assigned/email"]}
    second = _create(factory, world)
    _assign(factory, world, second, world.colleague)
    with unit_of_work(factory) as session:
        row = session.scalars(select(Notification)).one()
        # E-mail only: not in the console's list nor its count.
        assert (row.console, row.email_state) == (False, "pending")
        assert notifications.unread_count(session=session, user_id=world.colleague) == 0
        assert notifications.listing(session=session, user_id=world.colleague) == []


def test_unknown_choices_are_refused(factory: sessionmaker[Session], world: World) -> None:
    with unit_of_work(factory) as session:
        user = session.get(User, world.analyst)
        assert user is not None
        with pytest.raises(IncidentError, match="unknown notification"):
            notifications.set_preferences(session=session, user=user, enabled={("hug", "pigeon")})


def test_due_soon_then_overdue_each_once(factory: sessionmaker[Session], world: World) -> None:
    incident_id = _create(factory, world)
    with unit_of_work(factory) as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None and incident.acknowledge_due_at is not None
        due = incident.acknowledge_due_at
        assert incident.next_due_at == due
    workers = {world.analyst, world.colleague}  # unassigned: everyone who works incidents

    def sweep(at: timedelta) -> int:
        with unit_of_work(factory) as session:
            return notifications.sweep_deadlines(session=session, now=due + at)

    assert sweep(-timedelta(hours=3)) == 0  # not due soon yet
    assert sweep(-timedelta(hours=1)) == 2
    assert sweep(-timedelta(minutes=30)) == 0  # idempotent
    assert {u for u, k in _told(factory) if k == "due_soon"} == workers
    assert sweep(timedelta(minutes=1)) == 2
    assert sweep(timedelta(minutes=2)) == 0
    assert sweep(timedelta(days=3)) == 0
    assert sorted(_told(factory, kind="overdue")) == sorted((u, "overdue") for u in workers)
    with unit_of_work(factory) as session:
        keys = set(session.scalars(select(Notification.dedup_key)))
        stamp = due.strftime("%Y%m%dT%H%M%S")
        assert keys == {
            f"due_soon:{incident_id}:acknowledge:{stamp}",
            f"overdue:{incident_id}:acknowledge:{stamp}",
        }
        details = session.scalars(select(Notification.details)).first()
        assert details == {"measure": "acknowledge", "due_at": due.isoformat()}
    # Assigned (and so acknowledged): the next deadline is containment, told to the assignee.
    _assign(factory, world, incident_id, world.colleague)
    with unit_of_work(factory) as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None and incident.contain_due_at is not None
        contain = incident.contain_due_at
        assert incident.next_due_at == contain
    before = len(_told(factory))
    with unit_of_work(factory) as session:
        assert notifications.sweep_deadlines(session=session, now=contain + timedelta(hours=1)) == 1
    assert _told(factory)[before:] == [(world.colleague, "overdue")]  # first seen overdue


def test_closed_incidents_are_not_swept(factory: sessionmaker[Session], world: World) -> None:
    incident_id = _create(factory, world)
    with unit_of_work(factory) as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None and incident.next_due_at is not None
        due = incident.next_due_at
        incident.status = "closed"
        clocks.next_due(incident)
    with unit_of_work(factory) as session:
        assert notifications.sweep_deadlines(session=session, now=due + timedelta(days=1)) == 0


def _coordination(factory: sessionmaker[Session], world: World) -> tuple[int, int, int]:
    """KZ-CERT's organisation: a coordinator, an analyst (who does not coordinate)."""
    with unit_of_work(factory) as session:
        cert = create_organisation(
            session=session, actor="system", name="KZ-CERT", kind=OrganisationKind.cert
        )
        coordinator, analyst = (
            create_user(
                session=session,
                actor="system",
                organisation_id=cert.id,
                email=email,
                display_name=name,
                role=role,
                password=PASSWORD,
            ).id
            for email, name, role in (
                ("duty@cert.kz", "Duty officer", Role.cert_coordinator),
                ("analyst@cert.kz", "Analyst", Role.soc_analyst),
            )
        )
        return cert.id, coordinator, analyst


def test_report_and_answer(factory: sessionmaker[Session], world: World) -> None:
    cert, coordinator, cert_analyst = _coordination(factory, world)
    incident_id = _create(factory, world)
    with unit_of_work(factory) as session:
        reporting.report(
            session=session,
            organisation_id=world.almaty,
            incident_id=incident_id,
            actor_id=world.analyst,
        )
    # Those of the coordinator who coordinate; not its analyst, not the reporter's people.
    assert _told(factory) == [(coordinator, "reported")]
    with unit_of_work(factory) as session:
        row = session.scalars(select(Notification)).one()
        assert row.details == {"organisation": world.almaty}
        assert row.email_state == "none"  # not by e-mail unless chosen

    def post(organisation: int, actor: int, kind: str) -> None:
        with unit_of_work(factory) as session:
            reporting.post_message(
                session=session,
                organisation_id=organisation,
                incident_id=incident_id,
                actor_id=actor,
                text="Which accounts were tried?",
                kind=kind,
            )

    post(cert, coordinator, "question")
    answered = _told(factory, kind="answered")
    # Unassigned: everyone of the reporting organisation who works incidents.
    assert sorted(answered) == sorted((u, "answered") for u in (world.analyst, world.colleague))
    with unit_of_work(factory) as session:
        details = session.scalars(
            select(Notification.details).where(Notification.kind == "answered")
        ).all()
        assert details == [{"message": "question"}] * 2
    post(world.almaty, world.analyst, "message")  # the reporter's reply tells nobody
    assert len(_told(factory)) == 3
    _assign(factory, world, incident_id, world.colleague)
    post(cert, coordinator, "recommendation")  # now the assignee alone
    assert _told(factory)[-1:] == [(world.colleague, "answered")]
    assert len(_told(factory)) == 5
    assert cert_analyst not in {u for u, _ in _told(factory)}
    assert world.outsider not in {u for u, _ in _told(factory)}


def test_read_and_unread(factory: sessionmaker[Session], world: World) -> None:
    ids = [_create(factory, world) for _ in range(3)]
    for incident_id in ids:
        _assign(factory, world, incident_id, world.colleague)
    _create(factory, world)  # unassigned: nothing for anyone
    with unit_of_work(factory) as session:
        assert notifications.unread_count(session=session, user_id=world.colleague) == 3
        listed = notifications.listing(session=session, user_id=world.colleague)
        assert [item.reference for item in listed] == [service.reference(i) for i in ids[::-1]]
        assert listed[0].title == "Brute force on the mail server"
        first = listed[-1].notification.id
        # Another user cannot mark them read.
        assert notifications.mark_read(session=session, user_id=world.analyst, ids=[first]) == 0
        assert notifications.mark_read(session=session, user_id=world.colleague, ids=[first]) == 1
        assert notifications.mark_read(session=session, user_id=world.colleague, ids=[first]) == 0
    with unit_of_work(factory) as session:
        assert notifications.unread_count(session=session, user_id=world.colleague) == 2
        unread = notifications.listing(session=session, user_id=world.colleague, unread_only=True)
        assert len(unread) == 2 and first not in {i.notification.id for i in unread}
        assert notifications.mark_read(session=session, user_id=world.colleague) == 2
    with unit_of_work(factory) as session:
        assert notifications.unread_count(session=session, user_id=world.colleague) == 0
        assert len(notifications.listing(session=session, user_id=world.colleague)) == 3


def test_errors_are_described_without_addresses() -> None:
    refused = smtplib.SMTPRecipientsRefused(
        {"aigerim@almaty.kz": (550, b"5.1.1 <aigerim@almaty.kz>: Recipient address rejected")}
    )
    text = notifications.describe(refused)
    assert text == "recipient refused: 550 5.1.1 <<address>>: Recipient address rejected"
    sender = smtplib.SMTPSenderRefused(553, b"not yours: qorgan@almaty.kz", "qorgan@almaty.kz")
    assert "@" not in notifications.describe(sender)
    assert notifications.describe(ConnectionRefusedError(111, "Connection refused")) == (
        "ConnectionRefusedError: Connection refused"
    )
    assert len(notifications.describe(OSError("x" * 2000))) == notifications.MAX_ERROR


def test_many_due_incidents_are_each_told_once(
    factory: sessionmaker[Session], world: World
) -> None:
    """Many due incidents: each is told once, in one sweep, and again never."""
    ids = [_create(factory, world) for _ in range(5)]
    with unit_of_work(factory) as session:
        last = session.scalar(select(func.max(Incident.next_due_at)))
        assert last is not None
        assert notifications.sweep_deadlines(session=session, now=last + timedelta(hours=1)) == 10
    with unit_of_work(factory) as session:
        assert notifications.sweep_deadlines(session=session, now=last + timedelta(hours=2)) == 0
        told = session.execute(
            select(Notification.incident_id, func.count()).group_by(Notification.incident_id)
        ).all()
        assert sorted(told) == [(i, 2) for i in ids]


def test_a_backlog_long_overdue_is_not_news(factory: sessionmaker[Session], world: World) -> None:
    """At volume (20,000 incidents, a year's backlog overdue) the sweep told thousands at once
    and held the write lock for seconds every minute: only deadlines passed within a day are
    told; the neighbour, passed an hour ago, is."""
    ids = [_create(factory, world) for _ in range(3)]
    with unit_of_work(factory) as session:
        last = session.scalar(select(func.max(Incident.next_due_at)))
        assert last is not None
        late = last + notifications.LOOKBACK + timedelta(minutes=1)
        assert notifications.sweep_deadlines(session=session, now=late) == 0
    with unit_of_work(factory) as session:
        assert notifications.sweep_deadlines(session=session, now=last + timedelta(hours=1)) == 6
        told = {i for (i,) in session.execute(select(Notification.incident_id).distinct()).all()}
    assert told == set(ids)
