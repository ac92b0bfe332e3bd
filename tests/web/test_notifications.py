"""Notifications in the console and by e-mail, through a real SMTP server (aiosmtpd on a free
loopback port) that the tests read back: the assignee's e-mail in their language with the
incident's reference and link; a refusing or absent server leaves the e-mail pending with the
error (no address) and a later retry; the notifier thread and ``qorgan incidents notify``
deliver the same way; the header's count, the list page and marking read; the choices on the
account page; the API."""

from __future__ import annotations

import email
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from qorgan.cli import app as cli
from qorgan.core.db import unit_of_work
from qorgan.core.models import User
from qorgan.core.settings import Settings
from qorgan.incidents import notifications
from qorgan.incidents.notification_models import Notification
from qorgan.web import mail
from qorgan.web.app import create_app
from qorgan.web.i18n import translations

from .conftest import World, csrf_of, sign_in

SENDER = "qorgan@cert.example.kz"
PUBLIC = "https://qorgan.example.kz"
WRITE = ["incidents:read", "incidents:write"]
#: A checkbox of the account page's grid: its value, and whether it is ticked.
CHOICE = re.compile(r'<input type="checkbox" name="choices" value="([^"]+)"[^>]*?( checked)?>')


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage


class Inbox:
    """An aiosmtpd handler keeping what it accepts; ``refuse`` answers every recipient 550."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.refuse = False
        self._arrived = threading.Condition()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self._arrived:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
            self._arrived.notify_all()
        return "250 Message accepted for delivery"

    def wait(self, count: int, timeout: float = 30.0) -> bool:
        """Wait until ``count`` messages have arrived (False on timeout)."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.received) >= count, timeout)


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def smtp_settings(world: World, port: int, **extra: object) -> Settings:
    return world.settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_from": SENDER,
            "smtp_starttls": False,
            "smtp_timeout": 10.0,
            "public_url": PUBLIC + "/",
            **extra,
        }
    )


def _bearer(world: World, key: str, scopes: list[str] = WRITE) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.token(key, scopes)}"}


def _language(world: World, key: str, language: str) -> None:
    with unit_of_work(world.factory) as session:
        user = session.get(User, world[key].id)
        assert user is not None
        user.language = language


def _assigned_incident(client: TestClient, world: World, title: str = "Phishing wave") -> int:
    """An incident of A made by A's administrator and assigned to A's analyst (by the API)."""
    admin = _bearer(world, "a.admin")
    made = client.post("/api/v1/incidents", json={"title": title}, headers=admin)
    assert made.status_code == 201, made.text
    incident_id = int(made.json()["incident"]["id"])
    assigned = client.put(
        f"/api/v1/incidents/{incident_id}/assignee",
        json={"assignee_id": world["a.analyst"].id},
        headers=admin,
    )
    assert assigned.status_code == 200, assigned.text
    return incident_id


def _rows(factory: sessionmaker[Session]) -> list[Notification]:
    with unit_of_work(factory) as session:
        rows = list(session.scalars(select(Notification).order_by(Notification.id)))
        session.expunge_all()
        return rows


def _deliver(settings: Settings, world: World, **kwargs: Any) -> notifications.Delivery:
    return notifications.deliver_email(
        world.factory, settings=settings, compose=mail.compose, **kwargs
    )


def test_the_assignee_gets_an_email_in_their_language(
    world: World, inbox: tuple[Inbox, int]
) -> None:
    handler, port = inbox
    settings = smtp_settings(world, port)
    _language(world, "a.analyst", "ru")
    with TestClient(create_app(settings, start_notifier=False), base_url="http://127.0.0.1") as c:
        incident_id = _assigned_incident(c, world, title="Фишинг: поддельный портал eGov")
        done = _deliver(settings, world)
        assert (done.sent, done.failed, done.disabled) == (1, 0, False)
        assert handler.wait(1)
        [got] = handler.received
        reference = f"INC-{incident_id:06d}"
        assert got.sender == SENDER
        assert got.recipients == [world["a.analyst"].email]  # nobody else
        message = got.message
        assert message["To"] == world["a.analyst"].email and message["From"] == SENDER
        ru = translations("ru").gettext
        assert message["Subject"] == ru(mail.SUBJECTS["assigned"]) % {"reference": reference}
        assert message["Content-Language"] == "ru"
        assert message["Auto-Submitted"] == "auto-generated"
        body = message.get_content()
        assert reference in body and "Фишинг: поддельный портал eGov" in body
        lines = body.splitlines()
        assert any(line.endswith(f" {PUBLIC}/incidents/{incident_id}") for line in lines)
        assert f"{PUBLIC}/account#notifications" in body
        assert ru(mail.WHAT["assigned"]) % {"reference": reference} in body
        # Sent once: a second pass finds nothing due.
        assert _deliver(settings, world).sent == 0
        [row] = _rows(world.factory)
        assert (row.email_state, row.email_attempts, row.email_error) == ("sent", 1, None)
        assert row.emailed_at is not None
        listed = c.get("/api/v1/notifications", headers=_bearer(world, "a.analyst")).json()
        assert listed["unread"] == 1 and listed["items"][0]["email"] == "sent"
    assert len(handler.received) == 1


def test_the_mail_is_worded_by_the_recipients_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the catalogues hold today, each part is looked up in the recipient's language."""

    class Tagged:
        def __init__(self, language: str) -> None:
            self.language = language

        def gettext(self, message: str) -> str:
            return f"[{self.language}] {message}"

    monkeypatch.setattr(mail, "translations", Tagged)
    for language in ("kk", "ru", "en"):
        subject, body = mail.compose(
            notifications.Mail(
                kind="overdue",
                language=language,
                timezone="Asia/Almaty",
                reference="INC-000042",
                title="Leak",
                link=f"{PUBLIC}/incidents/42",
                preferences_link=f"{PUBLIC}/account#notifications",
                measure="contain",
                due_at=notifications.utcnow(),
            )
        )
        assert subject.startswith(f"[{language}] [Qorgan] INC-000042")
        assert f"[{language}] Time to contain" in body
        assert all(line.startswith(f"[{language}]") for line in body.splitlines()[:3] if line)
    # A TLP:RED incident's title stays out of the e-mail.
    _, body = mail.compose(
        notifications.Mail(
            kind="answered",
            language="en",
            timezone="Asia/Almaty",
            reference="INC-000042",
            title=None,
            link=f"{PUBLIC}/incidents/42",
            preferences_link=f"{PUBLIC}/account",
            message_kind="question",
        )
    )
    assert "TLP:RED" in body and "asked a question" in body


def test_a_refused_email_stays_pending_and_is_retried(
    world: World, inbox: tuple[Inbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    handler, port = inbox
    settings = smtp_settings(world, port)
    handler.refuse = True
    with TestClient(create_app(settings, start_notifier=False), base_url="http://127.0.0.1") as c:
        _assigned_incident(c, world)
    done = _deliver(settings, world)
    assert (done.sent, done.failed) == (0, 1)
    [row] = _rows(world.factory)
    assert row.email_state == "pending" and row.email_attempts == 1
    assert row.email_error is not None and row.email_error.startswith("recipient refused: 550")
    assert "@" not in row.email_error and "@" not in caplog.text
    assert row.email_next_at is not None and row.email_next_at > notifications.utcnow()
    # Not retried before its time...
    assert _deliver(settings, world).failed == 0
    assert _rows(world.factory)[0].email_attempts == 1
    # ...then delivered once the server accepts.
    handler.refuse = False
    done = _deliver(settings, world, now=row.email_next_at + timedelta(seconds=1))
    assert done.sent == 1 and handler.wait(1)
    assert handler.received[0].recipients == [world["a.analyst"].email]
    [row] = _rows(world.factory)
    assert (row.email_state, row.email_attempts, row.email_error) == ("sent", 2, None)


def test_no_server_listening_is_recorded_and_given_up_after_the_last_try(world: World) -> None:
    settings = smtp_settings(world, free_port())
    with TestClient(create_app(settings, start_notifier=False), base_url="http://127.0.0.1") as c:
        _assigned_incident(c, world, "First")
        _assigned_incident(c, world, "Second")
    done = _deliver(settings, world)
    assert (done.sent, done.failed) == (0, 2)  # the batch stops at the first refused connection
    rows = _rows(world.factory)
    assert [r.email_error for r in rows] == ["ConnectionRefusedError: Connection refused"] * 2
    assert all(r.email_state == "pending" and r.email_attempts == 1 for r in rows)
    passes = 0
    while any(r.email_state == "pending" for r in rows):
        now = max(r.email_next_at for r in rows if r.email_next_at) + timedelta(seconds=1)
        _deliver(settings, world, now=now)
        rows = _rows(world.factory)
        passes += 1
    assert passes == notifications.MAX_ATTEMPTS - 1
    assert {(r.email_state, r.email_attempts) for r in rows} == {
        ("failed", notifications.MAX_ATTEMPTS)
    }
    assert _deliver(settings, world, now=now + timedelta(days=1)).failed == 0


def test_email_is_off_without_a_server(world: World, client: TestClient) -> None:
    _assigned_incident(client, world)
    done = _deliver(world.settings, world)
    assert done.disabled and done.sent == 0
    [row] = _rows(world.factory)
    assert row.email_state == "pending"  # sent once a server is set up (if still recent)
    sign_in(client, world["a.analyst"])
    page = client.get("/account")
    assert "data-email-off" in page.text and "QORGAN_SMTP_HOST" in page.text
    # Set up days later, the server is not sent what is that old (the console still shows it).
    later = smtp_settings(world, free_port())
    done = _deliver(later, world, now=row.created_at + notifications.MAX_AGE + timedelta(1))
    assert (done.abandoned, done.failed) == (1, 0)
    [row] = _rows(world.factory)
    assert (row.email_state, row.email_error) == ("failed", "not sent within 3 days")
    assert 'data-unread="1"' in client.get("/account").text


def test_the_console_notifier_delivers(world: World, inbox: tuple[Inbox, int]) -> None:
    handler, port = inbox
    settings = smtp_settings(world, port, notify_interval=3600.0)
    app = create_app(settings)
    notifier = app.state.notifier
    with TestClient(app, base_url="http://127.0.0.1") as c:
        incident_id = _assigned_incident(c, world)
        notifier.wake()  # rather than waiting an hour
        assert handler.wait(1)
        assert f"INC-{incident_id:06d}" in handler.received[0].message["Subject"]
        assert notifier.wait_for_pass(0, timeout=30)
    assert not notifier.running
    assert [r.email_state for r in _rows(world.factory)] == ["sent"]


def test_the_notify_command(world: World, inbox: tuple[Inbox, int]) -> None:
    handler, port = inbox
    settings = smtp_settings(world, port)
    with TestClient(create_app(settings, start_notifier=False), base_url="http://127.0.0.1") as c:
        _assigned_incident(c, world)
    env = {
        "QORGAN_DATABASE_URL": settings.database_url,
        "QORGAN_VAR_DIR": str(settings.var_dir),
        "QORGAN_SMTP_HOST": "127.0.0.1",
        "QORGAN_SMTP_PORT": str(port),
        "QORGAN_SMTP_FROM": SENDER,
        "QORGAN_SMTP_STARTTLS": "false",
    }
    handler.refuse = True
    refused = CliRunner().invoke(cli, ["incidents", "notify"], env=env)
    assert refused.exit_code == 1, refused.output
    assert "PROBLEM recipient refused: 550" in refused.output and "@a.example" not in refused.output
    handler.refuse = False
    with unit_of_work(world.factory) as session:  # due again now rather than in a minute
        for row in session.scalars(select(Notification)):
            row.email_next_at = notifications.utcnow()
    sent = CliRunner().invoke(cli, ["incidents", "notify"], env=env)
    assert sent.exit_code == 0, sent.output
    assert "e-mails sent: 1, failed: 0" in sent.output
    assert handler.wait(1) and handler.received[0].recipients == [world["a.analyst"].email]
    off = CliRunner().invoke(cli, ["incidents", "notify"], env={**env, "QORGAN_SMTP_HOST": ""})
    assert off.exit_code == 0 and "e-mail is off" in off.output


def test_the_bell_the_page_and_marking_read(client: TestClient, world: World) -> None:
    first = _assigned_incident(client, world, "First incident")
    second = _assigned_incident(client, world, "Second incident")
    sign_in(client, world["a.analyst"])
    page = client.get("/incidents")
    assert 'data-unread="2"' in page.text and 'href="/notifications"' in page.text
    listed = client.get("/notifications")
    assert listed.status_code == 200
    for incident_id, title in ((first, "First incident"), (second, "Second incident")):
        assert f'href="/incidents/{incident_id}"' in listed.text
        assert f"INC-{incident_id:06d}" in listed.text and title in listed.text
    assert listed.text.count('class="unread"') == 2
    rows = _rows(world.factory)
    csrf = csrf_of(listed.text)
    marked = client.post(
        "/notifications/read",
        data={"csrf_token": csrf, "ids": [str(rows[0].id)]},
        follow_redirects=False,
    )
    assert marked.status_code == 303 and marked.headers["location"] == "/notifications"
    listed = client.get("/notifications")
    assert 'data-unread="1"' in listed.text and listed.text.count('class="unread"') == 1
    unread = client.get("/notifications?unread=true")
    assert f"INC-{second:06d}" in unread.text and f"INC-{first:06d}" not in unread.text
    client.post("/notifications/read", data={"csrf_token": csrf, "all": "true"})
    listed = client.get("/notifications")
    assert 'data-unread="0"' in listed.text and 'class="unread"' not in listed.text
    # Without the CSRF token nothing is marked.
    assert client.post("/notifications/read", data={"all": "true"}).status_code == 403


def test_someone_elses_notifications_are_left_alone(client: TestClient, world: World) -> None:
    _assigned_incident(client, world)
    [row] = _rows(world.factory)
    sign_in(client, world["a.admin"])
    page = client.get("/notifications")
    assert 'data-unread="0"' in page.text and "INC-" not in page.text
    client.post("/notifications/read", data={"csrf_token": csrf_of(page.text), "ids": [row.id]})
    b = _bearer(world, "b.admin", ["incidents:read"])
    answer = client.post("/api/v1/notifications/read", json={"ids": [row.id]}, headers=b)
    assert answer.json() == {"marked": 0, "unread": 0}
    assert client.get("/api/v1/notifications", headers=b).json() == {"unread": 0, "items": []}
    assert _rows(world.factory)[0].read_at is None


def test_choices_are_saved_from_the_account_page(client: TestClient, world: World) -> None:
    sign_in(client, world["a.analyst"])
    page = client.get("/account")
    assert 'id="notifications"' in page.text
    boxes = dict(CHOICE.findall(page.text))
    assert set(boxes) == {f"{k}/{c}" for k, c in notifications.DEFAULTS}
    checked = {choice for choice, mark in boxes.items() if mark}
    assert checked == {f"{k}/{c}" for (k, c), on in notifications.DEFAULTS.items() if on}
    saved = client.post(
        "/account/notifications",
        data={"csrf_token": csrf_of(page.text), "choices": ["assigned/console", "overdue/email"]},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    page = client.get(saved.headers["location"])
    assert "The notification choices are saved." in page.text
    with unit_of_work(world.factory) as session:
        chosen = notifications.preferences(session=session, user_id=world["a.analyst"].id)
    assert {pair for pair, on in chosen.items() if on} == {
        ("assigned", "console"),
        ("overdue", "email"),
    }
    _assigned_incident(client, world)
    [row] = _rows(world.factory)
    assert (row.console, row.email_state) == (True, "none")
    refused = client.post(
        "/account/notifications",
        data={"csrf_token": csrf_of(page.text), "choices": ["assigned/pigeon"]},
    )
    assert refused.status_code == 400


def test_the_api(client: TestClient, world: World) -> None:
    first = _assigned_incident(client, world)
    _assigned_incident(client, world)
    a = _bearer(world, "a.analyst", ["incidents:read"])
    listed = client.get("/api/v1/notifications", headers=a).json()
    assert listed["unread"] == 2
    item = listed["items"][-1]
    assert (item["kind"], item["incident_id"], item["reference"]) == (
        "assigned",
        first,
        f"INC-{first:06d}",
    )
    assert item["title"] == "Phishing wave" and item["read_at"] is None
    marked = client.post("/api/v1/notifications/read", json={"ids": [item["id"]]}, headers=a)
    assert marked.json() == {"marked": 1, "unread": 1}
    unread = client.get("/api/v1/notifications?unread=true", headers=a).json()
    assert [i["incident_id"] for i in unread["items"]] == [listed["items"][0]["incident_id"]]
    assert client.post("/api/v1/notifications/read", json={}, headers=a).status_code == 422
    everything = client.post("/api/v1/notifications/read", json={"all": True}, headers=a)
    assert everything.json() == {"marked": 1, "unread": 0}
    no_scope = _bearer(world, "a.analyst", ["alerts:read"])
    assert client.get("/api/v1/notifications", headers=no_scope).status_code == 403
