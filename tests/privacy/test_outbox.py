"""The notice outbox: a report of 1,000 subjects notifies each exactly once through the file
channel and submitting it again notifies nobody; a run that dies between handing a notice over
and recording it (in process, and ``qorgan privacy deliver-notices`` killed with SIGKILL)
resumes without a second line; failures are retried with backoff and recorded without an
address or a number; the SMS gateway and the e-mail channel say the same notice the same way
on every attempt; a notice names what leaked in Kazakh, Russian and English, never the IIN."""

from __future__ import annotations

import email
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from email import policy
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from qorgan.core.db import unit_of_work, utcnow
from qorgan.core.settings import Settings, get_settings
from qorgan.privacy import leaks, outbox
from qorgan.privacy.channels import (
    Channel,
    ChannelError,
    EmailChannel,
    FileChannel,
    HttpSmsGateway,
    Message,
)
from qorgan.privacy.leak_models import LeakNotice, NoticeStatus
from qorgan.privacy.notices import NoticeFacts, email_text, sms_text
from qorgan.testing import free_port

from .conftest import Registry
from .leak_examples import DETECTED, person, submitted

ROOT = Path(__file__).resolve().parents[2]


def _submitted(registry: Registry, count: int) -> int:
    with unit_of_work(registry.factory) as session:
        return submitted(session, registry, count).id


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def _complete_lines(path: Path) -> int:
    """Lines written in full so far: a writer may be half-way through the last one."""
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _statuses(registry: Registry) -> Counter[str]:
    with unit_of_work(registry.factory) as session:
        return Counter(str(s) for s in session.scalars(select(LeakNotice.status)))


def _file(path: Path) -> dict[str, Channel]:
    sink = FileChannel(path)
    return {"email": sink, "sms": sink}


def test_a_thousand_subjects_are_each_notified_exactly_once(
    privacy_registry: Registry, tmp_path: Path
) -> None:
    leak_id = _submitted(privacy_registry, 1_000)
    sink = tmp_path / "notices.jsonl"
    done = outbox.deliver(privacy_registry.factory, _file(sink), protection=privacy_registry.keys)
    assert (done.sent, done.retried, done.failed) == (1_000, 0, 0)
    lines = _lines(sink)
    assert len(lines) == 1_000
    assert len({line["notice_id"] for line in lines}) == 1_000
    addresses = {line["to"] for line in lines}
    assert "subject0@example.kz" in addresses and "+77010000001" in addresses
    assert len(addresses) == 1_000
    assert Counter(line["channel"] for line in lines) == {"email": 500, "sms": 500}
    numbers = {person(i)[1] for i in range(1_000)}
    shown = {n for line in lines for n in re.findall(r"\d{12}", line["text"] + line["subject"])}
    assert not shown & numbers  # no IIN in any notice (a BIN is 12 digits too, and shown)
    assert _statuses(privacy_registry) == {"sent": 1_000}
    assert os.stat(sink).st_mode & 0o777 == 0o600
    # Submitted again, delivered again: nobody is told twice.
    with unit_of_work(privacy_registry.factory) as session:
        leak = leaks.get(
            session=session, organisation_ids=[privacy_registry.organisation_id], leak_id=leak_id
        )
        assert leaks.submit(session=session, leak=leak, actor="test").queued == 0
    again = outbox.deliver(privacy_registry.factory, _file(sink), protection=privacy_registry.keys)
    assert again.sent == 0 and len(_lines(sink)) == 1_000


class Killed(BaseException):
    """The process 'dies': nothing after it runs, as under SIGKILL."""


class DiesAfter(Channel):
    """The file channel, until the ``count``-th notice is written: then the process dies
    before the outbox can record it."""

    def __init__(self, inner: FileChannel, count: int) -> None:
        self.inner, self.count = inner, count

    def send(self, message: Message) -> None:
        self.inner.send(message)
        self.count -= 1
        if self.count == 0:
            raise Killed()


def test_a_run_that_dies_mid_way_resumes_without_a_duplicate(
    privacy_registry: Registry, tmp_path: Path
) -> None:
    _submitted(privacy_registry, 120)
    sink = tmp_path / "notices.jsonl"
    dying = DiesAfter(FileChannel(sink), 45)
    with pytest.raises(Killed):
        outbox.deliver(
            privacy_registry.factory,
            {"email": dying, "sms": dying},
            protection=privacy_registry.keys,
            batch=20,
        )
    assert len(_lines(sink)) == 45
    # 44 recorded; the 45th written but not recorded, the rest of its batch claimed: leased.
    assert _statuses(privacy_registry) == {"sent": 44, "sending": 16, "pending": 60}
    # A new process at once: the leased ones wait for their lease, the others go now.
    now = outbox.deliver(
        privacy_registry.factory, _file(sink), protection=privacy_registry.keys, batch=20
    )
    assert now.sent == 60 and _statuses(privacy_registry) == {"sent": 104, "sending": 16}
    # After the lease: the 16 again, the one written before the crash not written twice.
    later = outbox.deliver(
        privacy_registry.factory,
        _file(sink),
        protection=privacy_registry.keys,
        now=utcnow() + outbox.LEASE + timedelta(seconds=1),
    )
    assert later.sent == 16 and _statuses(privacy_registry) == {"sent": 120}
    ids = [line["notice_id"] for line in _lines(sink)]
    assert len(ids) == 120 == len(set(ids))


def test_a_torn_last_line_is_replaced(tmp_path: Path) -> None:
    sink = tmp_path / "notices.jsonl"
    message = Message(7, 1, "email", "a@example.kz", "subject", "body", "short")
    sink.write_bytes(b'{"notice_id": 6, "to": "x"}\n{"notice_id": 7, "to": "a@exa')
    channel = FileChannel(sink)
    assert channel.seen() == {6}
    channel.send(message)
    channel.send(message)
    assert [line["notice_id"] for line in _lines(sink)] == [6, 7]
    assert FileChannel(sink).seen() == {6, 7}


class Flaky(Channel):
    def __init__(self, *errors: ChannelError) -> None:
        self.errors = list(errors)
        self.sent: list[int] = []

    def send(self, message: Message) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append(message.notice_id)


def test_failures_are_retried_with_backoff_and_recorded_without_personal_data(
    privacy_registry: Registry,
) -> None:
    _submitted(privacy_registry, 2)  # subject 0 by e-mail, subject 1 by SMS
    start = utcnow()
    refusal = "450 <subject0@example.kz> busy; call +7 701 000-00-01 or 900101300123"
    flaky = Flaky(ChannelError(refusal), ChannelError("550 no such user", permanent=True))
    done = outbox.deliver(
        privacy_registry.factory,
        {"email": flaky, "sms": flaky},
        protection=privacy_registry.keys,
        now=start,
    )
    assert (done.sent, done.retried, done.failed) == (0, 1, 1)
    assert done.errors[0] == "450 <<address>> busy; call <number> or <number>"
    with unit_of_work(privacy_registry.factory) as session:
        notices = session.scalars(select(LeakNotice).order_by(LeakNotice.id)).all()
        first, second = notices
        assert (first.status, first.attempts) == (NoticeStatus.pending, 1)
        assert first.next_attempt_at == start + outbox.RETRY_DELAYS[0]
        assert first.last_error == "450 <<address>> busy; call <number> or <number>"
        assert (second.status, second.last_error) == (NoticeStatus.failed, "550 no such user")
    early = outbox.deliver(
        privacy_registry.factory, {"email": flaky}, protection=privacy_registry.keys, now=start
    )
    assert early.sent == 0
    late = outbox.deliver(
        privacy_registry.factory,
        {"email": flaky},
        protection=privacy_registry.keys,
        now=start + outbox.RETRY_DELAYS[0],
    )
    assert late.sent == 1 and flaky.sent == [first.id]
    with unit_of_work(privacy_registry.factory) as session:
        assert session.get(LeakNotice, first.id).last_error is None  # type: ignore[union-attr]


def test_a_notice_is_given_up_after_the_last_attempt(privacy_registry: Registry) -> None:
    _submitted(privacy_registry, 1)
    moment = utcnow()
    flaky = Flaky(*(ChannelError("timeout") for _ in range(outbox.MAX_ATTEMPTS)))
    for attempt in range(outbox.MAX_ATTEMPTS):
        done = outbox.deliver(
            privacy_registry.factory, {"email": flaky}, protection=privacy_registry.keys, now=moment
        )
        assert (done.retried, done.failed) == (
            (1, 0) if attempt < outbox.MAX_ATTEMPTS - 1 else (0, 1)
        )
        moment += outbox.RETRY_DELAYS[-1]
    assert _statuses(privacy_registry) == {"failed": 1}


def test_a_stopped_run_gives_its_claims_back(privacy_registry: Registry) -> None:
    import threading

    _submitted(privacy_registry, 10)
    stop = threading.Event()

    class StopsAfterOne(Flaky):
        def send(self, message: Message) -> None:
            super().send(message)
            stop.set()

    channel = StopsAfterOne()
    done = outbox.deliver(
        privacy_registry.factory,
        {"email": channel, "sms": channel},
        protection=privacy_registry.keys,
        stop=stop,
    )
    assert done.sent == 1 and _statuses(privacy_registry) == {"sent": 1, "pending": 9}
    with unit_of_work(privacy_registry.factory) as session:
        attempts = session.scalars(select(LeakNotice.attempts)).all()
        assert sorted(attempts) == [0] * 9 + [1]


# --- the channels ------------------------------------------------------------------------------


FACTS = NoticeFacts(
    leak_id=42,
    holder_name="ТОО «Клиника»",
    holder_bin="120540012345",
    categories=["general", "special"],
    description="Выгрузка записей пациентов оказалась в открытом хранилище.",
    occurred_at=None,
    detected_at=DETECTED,
    measures="Доступ закрыт.",
    responsible_person="Ахметова Д. К.",
    contacts="+7 701 000 00 00",
    subject_name="Айгерім Серікова",
)


def test_a_notice_says_what_when_what_was_done_and_whom_to_ask_in_three_languages() -> None:
    subject, body = email_text(FACTS)
    assert "LEAK-000042" in subject
    for part in (
        "Құрметті Айгерім Серікова!",
        "Уважаемый(ая) Айгерім Серікова!",
        "Dear Айгерім Серікова,",
        "жалпы дербес деректер",
        "специальные категории данных",
        "general personal data",
        "06.03.2026 15:00 (Asia/Almaty)",
        "белгісіз",  # when it happened: not known
        "Доступ закрыт.",
        "Ахметова Д. К., +7 701 000 00 00",
        "never asks you for a password",
    ):
        assert part in body, part
    short = sms_text(FACTS)
    assert "06.03.2026" in short and "+7 701 000 00 00" in short
    assert "Айгерім" not in short and len(short) < 400
    assert "Айгерім" not in repr(FACTS)


def test_the_sms_gateway_gets_one_reference_per_notice_and_its_answers_decide_retries() -> None:
    requests: list[httpx.Request] = []
    answers = [200, 503, 400, 429]

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(answers.pop(0), json={"echo": "+77011234567"})

    gateway = HttpSmsGateway(
        "https://sms.example.kz/send",
        token="gateway-token",
        sender="CLINIC",
        transport=httpx.MockTransport(handler),
    )
    message = Message(9, 42, "sms", "+77011234567", "s", "b", sms_text(FACTS))
    gateway.send(message)
    outcomes = []
    for _ in range(3):
        with pytest.raises(ChannelError) as caught:
            gateway.send(message)
        outcomes.append((str(caught.value), caught.value.permanent))
    assert outcomes == [
        ("SMS gateway answered 503", False),
        ("SMS gateway answered 400", True),
        ("SMS gateway answered 429", False),
    ]
    body = orjson.loads(requests[0].content)
    assert body == {
        "to": "+77011234567",
        "text": sms_text(FACTS),
        "sender": "CLINIC",
        "client_ref": "leak-notice-9",
    }
    assert {orjson.loads(r.content)["client_ref"] for r in requests} == {"leak-notice-9"}
    assert requests[0].headers["authorization"] == "Bearer gateway-token"
    gateway.close()

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    down = HttpSmsGateway("https://sms.example.kz/send", transport=httpx.MockTransport(unreachable))
    with pytest.raises(ChannelError, match="not reached: ConnectError") as caught:
        down.send(message)
    assert not caught.value.permanent


class _Inbox:
    def __init__(self) -> None:
        self.received: list[tuple[list[str], email.message.EmailMessage]] = []
        self.refuse = False

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, _: Any
    ) -> str:
        if self.refuse:
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        self.received.append((list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[_Inbox, Settings]]:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield (
            inbox,
            get_settings(
                smtp_host="127.0.0.1",
                smtp_port=port,
                smtp_from="dpo@clinic.kz",
                smtp_starttls=False,
                smtp_timeout=10.0,
            ),
        )
    finally:
        controller.stop()


def test_an_email_notice_has_one_message_id_on_every_attempt(
    smtp: tuple[_Inbox, Settings],
) -> None:
    inbox, settings = smtp
    subject, body = email_text(FACTS)
    message = Message(9, 42, "email", "aigerim@example.kz", subject, body, sms_text(FACTS))
    channel = EmailChannel(settings)
    channel.send(message)
    channel.send(message)  # a redelivery after a crash
    channel.close()
    assert [to for to, _ in inbox.received] == [["aigerim@example.kz"]] * 2
    first, second = (m for _, m in inbox.received)
    assert first["Message-ID"] == second["Message-ID"] == "<leak-notice-9.42@clinic.kz>"
    assert first["Subject"] == subject and "Құрметті" in first.get_content()
    inbox.refuse = True
    refused = EmailChannel(settings)
    with pytest.raises(ChannelError) as caught:
        refused.send(message)
    refused.close()
    assert caught.value.permanent and "aigerim" not in str(caught.value)
    assert "<address>" in str(caught.value)


# --- a real process, killed --------------------------------------------------------------------


def test_deliver_notices_killed_with_sigkill_resumes_without_a_duplicate(
    privacy_registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    """``qorgan privacy deliver-notices --file`` is killed once it has written some lines;
    the next run (after the lease) completes the file with one line per notice."""
    _submitted(privacy_registry, 1_000)
    sink = tmp_path / "notices.jsonl"
    env = {
        **os.environ,
        "QORGAN_DATABASE_URL": settings.database_url,
        "QORGAN_VAR_DIR": str(tmp_path / "var"),  # the keys fixture's folder
    }
    command = [sys.executable, "-m", "qorgan.cli", "privacy", "deliver-notices", "--file"]
    process = subprocess.Popen(
        [*command, str(sink), "--batch", "50"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while (
            _complete_lines(sink) < 120 and process.poll() is None and time.monotonic() < deadline
        ):
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        assert process.returncode == -signal.SIGKILL, process.stderr.read()  # type: ignore[union-attr]
    finally:
        process.kill()
        process.wait(10)
        process.stderr.close()  # type: ignore[union-attr]
    written = _complete_lines(sink)  # the kill may have torn the last line: the next run mends it
    assert 120 <= written < 1_000
    statuses = _statuses(privacy_registry)
    assert statuses["sent"] <= written and statuses["sending"] >= 1
    later = outbox.deliver(
        privacy_registry.factory,
        _file(sink),
        protection=privacy_registry.keys,
        now=utcnow() + outbox.LEASE + timedelta(seconds=1),
    )
    assert _statuses(privacy_registry) == {"sent": 1_000}
    ids = [line["notice_id"] for line in _lines(sink)]
    assert len(ids) == 1_000 == len(set(ids))
    assert later.sent == 1_000 - statuses["sent"]
