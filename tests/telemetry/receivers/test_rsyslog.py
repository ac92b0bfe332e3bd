"""rsyslog (Debian's rsyslogd, with rsyslog-relp and rsyslog-gnutls) forwarding to the
receivers, with the configurations of docs/collect.md read from the page, so the page and what
runs cannot drift apart.

Each test starts ``rsyslogd -n`` as a child with its own work directory and no socket input
(``imuxsock`` is not loaded: /dev/log is not touched); ``imfile`` reads lines the test wrote and
the doc's action forwards them to receivers on loopback. Waits are on the intake, bounded.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from qorgan.telemetry.receivers.listeners import Listen
from qorgan.telemetry.receivers.tls import server_context

from .conftest import (
    CLIENT_CN,
    DEADLINE,
    FORWARDED,
    Forwarder,
    Pki,
    RecordingIntake,
    Running,
    forwarded,
    localise,
    require,
    snippet,
    started_forwarders,
)

Serve = Callable[..., Running]

LINES = FORWARDED


def at(port: str, actual: int) -> dict[str, str]:
    """Replacements sending to the test's receiver instead of the doc's collector."""
    return {
        'target="collector.example.kz"': 'target="127.0.0.1"',
        f'port="{port}"': f'port="{actual}"',
    }


def tls_files(pki: Pki) -> dict[str, str]:
    return {
        "/etc/rsyslog.d/qorgan/ca.pem": str(pki.ca),
        "/etc/rsyslog.d/qorgan/client.pem": str(pki.client_cert),
        "/etc/rsyslog.d/qorgan/client-key.pem": str(pki.client_key),
    }


class Rsyslog(Forwarder):
    """rsyslogd forwarding a file's lines with ``action`` (a doc snippet, localised)."""

    def __init__(self, folder: Path, action: str) -> None:
        super().__init__(folder)
        self.program = require("rsyslogd", "rsyslog")
        work = folder / "work"
        work.mkdir()
        self.log = folder / "rsyslog.log"
        self.stderr = folder / "stderr.log"
        self.conf = folder / "rsyslog.conf"
        self.conf.write_text(
            f'global(workDirectory="{work}" maxMessageSize="64k")\n'
            'module(load="imfile")\n'
            f'input(type="imfile" file="{self.input}" tag="qorgan-test:")\n'
            f'*.* action(type="omfile" file="{self.log}")\n' + action,  # rsyslog's own messages too
            encoding="utf-8",
        )

    def start(self) -> None:
        check = subprocess.run(
            [self.program, "-N1", "-f", str(self.conf)], capture_output=True, timeout=DEADLINE
        )
        assert check.returncode == 0, check.stderr.decode()
        with self.stderr.open("wb") as stderr:
            self.process = subprocess.Popen(
                [self.program, "-n", "-f", str(self.conf), "-i", str(self.folder / "pid")],
                stdout=stderr,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
            )

    def said(self) -> str:
        parts = [p.read_text(errors="replace") for p in (self.log, self.stderr) if p.exists()]
        return "\n".join(parts)[-3000:]


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Callable[[str], Rsyslog]]:
    yield from started_forwarders(lambda config: Rsyslog(tmp_path, config))


def _line(message: bytes) -> bytes | None:
    """The line an rsyslog message of the qorgan-test tag carries."""
    return message.split(b" - - - ", 1)[-1] if b" qorgan-test " in message else None


def _check_format(messages: list[bytes]) -> None:
    for message in messages:
        # RSYSLOG_SyslogProtocol23Format: <PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG, with
        # imfile's local0.notice; its trailing LF dropped
        assert re.match(
            rb"<133>1 \d{4}-\d\d-\d\dT[\d:.]+[+-]\d\d:\d\d \S+ qorgan-test - - - ", message
        )
        assert not message.endswith(b"\n")


# ------------------------------------------------------------------ RELP


def test_omrelp(serve: Serve, intake: RecordingIntake, rsyslog: Callable[[str], Rsyslog]) -> None:
    running = serve(Listen("relp", "127.0.0.1", 0))
    action = localise(
        snippet("rsyslog-omrelp"),
        at("2514", running.port("relp")),
    )
    daemon = rsyslog(action)
    lines = LINES + [f"event {i:04d}" for i in range(1000)]
    daemon.write(lines)
    daemon.start()
    messages = forwarded(intake, lines, daemon, _line)
    _check_format(messages)
    assert {peer.protocol for peer, _ in intake.written} == {"relp"}
    assert len(intake.writes) < len(lines) / 5  # rsyslog's window: many frames per write
    assert sum(b" qorgan-test " in m for m in intake.messages()) == len(lines)  # each once
    daemon.stop()
    assert intake.reports == []


def test_omrelp_resends_what_a_failed_write_did_not_store(
    serve: Serve, intake: RecordingIntake, rsyslog: Callable[[str], Rsyslog]
) -> None:
    """Our write fails twice: the connection is reset unanswered, rsyslog reconnects and
    sends the unacknowledged messages again. Every line arrives (at least once)."""
    running = serve(Listen("relp", "127.0.0.1", 0))
    action = localise(
        snippet("rsyslog-omrelp"),
        at("2514", running.port("relp")),
    )
    daemon = rsyslog(action)
    intake.fail_writes = 2
    lines = [f"must not be lost {i:04d}" for i in range(300)]
    daemon.write(lines)
    daemon.start()
    forwarded(intake, lines, daemon, _line, once=False)  # resent: some may come twice
    assert intake.failed_writes == 2
    assert len(intake.admitted) == 3  # it came back after each reset


def test_omrelp_over_tls_with_client_certificate(
    serve: Serve, intake: RecordingIntake, rsyslog: Callable[[str], Rsyslog], pki: Pki
) -> None:
    context = server_context(
        pki.server_cert, pki.server_key, ca=pki.ca, client_certificates="required"
    )
    running = serve(Listen("relp", "127.0.0.1", 0, context))
    action = localise(
        snippet("rsyslog-omrelp-tls"),
        {
            **at("2515", running.port("relp")),
            **tls_files(pki),
        },
    )
    daemon = rsyslog(action)
    daemon.write(LINES)
    daemon.start()
    _check_format(forwarded(intake, LINES, daemon, _line))
    peers = {peer for peer, _ in intake.written}
    assert {(p.protocol, p.certificate) for p in peers} == {("relp", CLIENT_CN)}


# ------------------------------------------------------------------ omfwd


@pytest.mark.parametrize("framing", ["octet-counted", "traditional"])
def test_omfwd_tcp(
    serve: Serve, intake: RecordingIntake, rsyslog: Callable[[str], Rsyslog], framing: str
) -> None:
    running = serve(Listen("tcp", "127.0.0.1", 0))
    action = localise(
        snippet("rsyslog-omfwd-tcp"),
        {
            **at("514", running.port("tcp")),
            'TCP_Framing="octet-counted"': f'TCP_Framing="{framing}"',
        },
    )
    daemon = rsyslog(action)
    daemon.write(LINES)
    daemon.start()
    messages = forwarded(intake, LINES, daemon, _line)
    _check_format(messages)
    assert {peer.protocol for peer, _ in intake.written} == {"tcp"}
    assert intake.reports == []


def test_omfwd_tls_with_client_certificate(
    serve: Serve, intake: RecordingIntake, rsyslog: Callable[[str], Rsyslog], pki: Pki
) -> None:
    context = server_context(
        pki.server_cert, pki.server_key, ca=pki.ca, client_certificates="required"
    )
    running = serve(Listen("tls", "127.0.0.1", 0, context))
    action = localise(
        snippet("rsyslog-omfwd-tls"),
        {
            **at("6514", running.port("tls")),
            **tls_files(pki),
        },
    )
    daemon = rsyslog(action)
    daemon.write(LINES)
    daemon.start()
    messages = forwarded(intake, LINES, daemon, _line)
    _check_format(messages)
    assert {(p.protocol, p.certificate) for p, _ in intake.written} == {("tls", CLIENT_CN)}
