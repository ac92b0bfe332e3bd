"""syslog-ng (Debian 12's 3.38) forwarding to the receivers, with the configurations of
docs/collect.md read from the page.

Debian's syslog-ng and rsyslog packages conflict (both are the system's log daemon), so
``.ci/run`` unpacks ``syslog-ng-core`` into ``/opt/syslog-ng`` instead of installing it; an
installed ``syslog-ng`` on the PATH is used when there is one. Each test starts ``syslog-ng -F``
as a child with its own files and no system source: a ``file()`` source reads lines the test
wrote, and the doc's destination forwards them to receivers on loopback. Waits are bounded.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
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
    snippet,
    started_forwarders,
)

Serve = Callable[..., Running]
#: Where .ci/run unpacks Debian's syslog-ng-core.
UNPACKED = Path("/opt/syslog-ng")
VERSION = "3.38"

LINES = FORWARDED


def _program() -> tuple[list[str], dict[str, str]]:
    """The command that runs syslog-ng and its environment; skip when there is none (a
    failure under CI=true)."""
    found = shutil.which("syslog-ng") or shutil.which("syslog-ng", path="/usr/sbin:/sbin")
    if found is not None:
        return [found], dict(os.environ)
    unpacked = UNPACKED / "usr" / "sbin" / "syslog-ng"
    if unpacked.exists():
        libraries = UNPACKED / "usr" / "lib" / "syslog-ng"
        return (
            [str(unpacked), f"--module-path={libraries / VERSION}"],
            {**os.environ, "LD_LIBRARY_PATH": str(libraries)},
        )
    message = (
        "syslog-ng is not installed (Debian package syslog-ng-core, which conflicts with rsyslog: "
        f"unpack it with `apt-get download syslog-ng-core && dpkg -x syslog-ng-core_*.deb "
        f"{UNPACKED}`, as .ci/run does)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}: required under CI=true")
    pytest.skip(message)


class SyslogNg(Forwarder):
    """syslog-ng forwarding a file's lines with a doc snippet (localised)."""

    def __init__(self, folder: Path, snippet_text: str) -> None:
        super().__init__(folder)
        self.command, self.env = _program()
        self.output = folder / "syslog-ng.out"
        self.conf = folder / "syslog-ng.conf"
        self.conf.write_text(
            f"@version: {VERSION}\n"
            "options { stats-freq(0); };\n"
            f'source s_src {{ file("{self.input}" program-override("qorgan-test") '
            "flags(no-parse) follow-freq(0.1)); };\n" + snippet_text,
            encoding="utf-8",
        )

    def _run(self, *args: str) -> list[str]:
        f = self.folder
        return [
            *self.command,
            *("-f", str(self.conf), "-R", str(f / "persist"), "-p", str(f / "pid")),
            *("-c", str(f / "ctl"), "--no-caps", *args),
        ]

    def start(self) -> None:
        check = subprocess.run(
            self._run("--syntax-only"), capture_output=True, env=self.env, timeout=DEADLINE
        )
        assert check.returncode == 0, check.stderr.decode()
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(
                self._run("-F", "--stderr"),
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                env=self.env,
            )

    def said(self) -> str:
        return self.output.read_text(errors="replace")[-3000:] if self.output.exists() else ""


@pytest.fixture
def syslog_ng(tmp_path: Path) -> Iterator[Callable[[str], SyslogNg]]:
    yield from started_forwarders(lambda config: SyslogNg(tmp_path, config))


def at(port: str, actual: int) -> dict[str, str]:
    """Replacements sending to the test's receiver instead of the doc's collector."""
    return {'"collector.example.kz"': '"127.0.0.1"', f"port({port})": f"port({actual})"}


def _buffered(text: str, folder: Path) -> str:
    """The doc's disk buffer, kept in the test's folder rather than /var/lib/syslog-ng."""
    return localise(text, {"reliable(yes)": f'reliable(yes) dir("{folder}")'})


def _tls_snippet(running: Running, pki: Pki, folder: Path) -> str:
    """The doc's TLS destination, sending to ``running``'s TLS listener with the test PKI."""
    text = localise(
        snippet("syslog-ng-syslog-tls"),
        {
            **at("6514", running.port("tls")),
            "/etc/syslog-ng/qorgan/ca.pem": str(pki.ca),
            "/etc/syslog-ng/qorgan/client.pem": str(pki.client_cert),
            "/etc/syslog-ng/qorgan/client-key.pem": str(pki.client_key),
        },
    )
    return _buffered(text, folder)


OURS = re.compile(rb"qorgan-test(?:\[\d+\])?:? (?:- - (?:\[[^\]]*\]|-) )?")


def _line(message: bytes) -> bytes | None:
    """The line a syslog-ng message of the qorgan-test program carries."""
    return OURS.split(message)[-1] if b"qorgan-test" in message else None


#: What syslog-ng says when the collector's certificate does not verify.
REFUSED = "certificate verify failed"
RFC5424 = re.compile(
    rb"<13>1 \d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:\d\d) \S+ qorgan-test - - "
    rb'\[meta sequenceId="\d+"\] '
)


def test_syslog_destination_over_tcp_octet_counted(
    serve: Serve,
    intake: RecordingIntake,
    syslog_ng: Callable[[str], SyslogNg],
    tmp_path: Path,
) -> None:
    running = serve(Listen("tcp", "127.0.0.1", 0))
    text = localise(snippet("syslog-ng-syslog-tcp"), at("514", running.port("tcp")))
    daemon = syslog_ng(_buffered(text, tmp_path))
    lines = LINES + [f"event {i:04d}" for i in range(500)]
    daemon.write(lines)
    daemon.start()
    messages = forwarded(intake, lines, daemon, _line)
    for message in messages:
        assert RFC5424.match(message), message[:120]
        assert not message.endswith(b"\n")  # the LF syslog-ng puts inside each frame is dropped
    assert {peer.protocol for peer, _ in intake.written} == {"tcp"}
    assert intake.reports == []


def test_syslog_destination_over_tls_with_client_certificate(
    serve: Serve,
    intake: RecordingIntake,
    syslog_ng: Callable[[str], SyslogNg],
    tmp_path: Path,
    pki: Pki,
) -> None:
    context = server_context(
        pki.server_cert, pki.server_key, ca=pki.ca, client_certificates="required"
    )
    daemon = syslog_ng(_tls_snippet(serve(Listen("tls", "127.0.0.1", 0, context)), pki, tmp_path))
    daemon.write(LINES)
    daemon.start()
    messages = forwarded(intake, LINES, daemon, _line)
    assert all(RFC5424.match(m) for m in messages)
    assert {(p.protocol, p.certificate) for p, _ in intake.written} == {("tls", CLIENT_CN)}


def test_syslog_tls_refuses_a_collector_its_ca_did_not_sign(
    serve: Serve,
    intake: RecordingIntake,
    syslog_ng: Callable[[str], SyslogNg],
    tmp_path: Path,
    pki: Pki,
) -> None:
    """The neighbour: the same configuration against a collector whose certificate another CA
    signed sends nothing (peer-verify(required-trusted))."""
    context = server_context(
        pki.stranger_cert, pki.stranger_key, ca=pki.ca, client_certificates="optional"
    )
    daemon = syslog_ng(_tls_snippet(serve(Listen("tls", "127.0.0.1", 0, context)), pki, tmp_path))
    daemon.write(LINES)
    daemon.start()
    deadline = time.monotonic() + DEADLINE
    while REFUSED not in daemon.said() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert REFUSED in daemon.said(), daemon.said()
    assert intake.written == []


def test_network_destination_legacy_lf(
    serve: Serve,
    intake: RecordingIntake,
    syslog_ng: Callable[[str], SyslogNg],
    tmp_path: Path,
) -> None:
    running = serve(Listen("tcp", "127.0.0.1", 0))
    text = localise(snippet("syslog-ng-network-tcp"), at("514", running.port("tcp")))
    daemon = syslog_ng(text)
    daemon.write(LINES)
    daemon.start()
    messages = forwarded(intake, LINES, daemon, _line)
    for message in messages:
        # RFC 3164: <PRI>Mmm dd hh:mm:ss HOST TAG: message
        assert re.match(rb"<13>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ qorgan-test", message)
    assert intake.reports == []
