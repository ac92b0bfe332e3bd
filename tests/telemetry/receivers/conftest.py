"""The receivers' test bench: a recording intake, receivers running on their own event loop in
a thread (so real, blocking clients can talk to them), a test PKI, and the external programs
(``logger``, ``rsyslogd``), skipped when absent and a failure under CI=true."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from qorgan.telemetry.receivers import Peer
from qorgan.telemetry.receivers.base import Limits
from qorgan.telemetry.receivers.framing import RelpDecoder, RelpFrame, encode_relp
from qorgan.telemetry.receivers.listeners import Listen, Receivers

#: Every wait in these tests ends by then.
DEADLINE = 20.0
#: The collector's name in the docs' snippets; the test server certificate carries it.
COLLECTOR = "collector.example.kz"
SOURCE = "source-1"


class RecordingIntake:
    """A real :class:`qorgan.telemetry.receivers.Intake` that keeps everything in memory and can
    refuse senders, hold them back (not ready) and fail writes. Its methods run on the receivers'
    loop; tests read it from their own thread through :meth:`wait_for`."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.admitted: list[Peer] = []
        self.refused: list[Peer] = []
        self.written: list[tuple[Peer, bytes]] = []
        self.writes: list[int] = []  # messages per write call
        self.offered: list[tuple[Peer, bytes]] = []
        self.reports: list[tuple[Peer, str, bytes]] = []
        self.refuse: Callable[[Peer], bool] = lambda peer: False
        self.fail_writes = 0  # the next so many writes raise OSError
        self.failed_writes = 0
        self.ready_calls = 0
        self.waiting = 0  # ready() calls waiting now
        self.writing = 0  # writes that reached the gate
        self._open: asyncio.Event | None = None  # set: ready; None: always ready
        self._gate: asyncio.Event | None = None  # writes wait for it

    # ------------------------------------------------------------------ the protocol

    def admit(self, peer: Peer) -> object | None:
        with self.cond:
            if self.refuse(peer):
                self.refused.append(peer)
                self.cond.notify_all()
                return None
            self.admitted.append(peer)
            self.cond.notify_all()
        return SOURCE

    async def ready(self, source: object) -> None:
        assert source == SOURCE
        self.ready_calls += 1
        if self._open is not None and not self._open.is_set():
            with self.cond:
                self.waiting += 1
                self.cond.notify_all()
            try:
                await self._open.wait()
            finally:
                with self.cond:
                    self.waiting -= 1

    async def write(self, source: object, messages: list[bytes], peer: Peer) -> None:
        assert source == SOURCE and messages and all(isinstance(m, bytes) for m in messages)
        if self._gate is not None:
            with self.cond:
                self.writing += 1
                self.cond.notify_all()
            await self._gate.wait()
        with self.cond:
            if self.fail_writes:
                self.fail_writes -= 1
                self.failed_writes += 1
                self.cond.notify_all()
                raise OSError(28, "No space left on device (test)")
            self.written.extend((peer, m) for m in messages)
            self.writes.append(len(messages))
            self.cond.notify_all()

    def offer(self, source: object, messages: list[bytes], peer: Peer) -> None:
        assert source == SOURCE
        with self.cond:
            self.offered.extend((peer, m) for m in messages)
            self.cond.notify_all()

    def malformed(self, source: object | None, peer: Peer, reason: str, sample: bytes) -> None:
        with self.cond:
            self.reports.append((peer, reason, sample))
            self.cond.notify_all()

    # ------------------------------------------------------------------ the tests' side

    def messages(self) -> list[bytes]:
        with self.cond:
            return [m for _, m in self.written]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = DEADLINE) -> Any:
        """Wait until ``predicate()`` (called under the lock) is true; fail the test at the
        deadline, saying what was received."""
        with self.cond:
            result = self.cond.wait_for(predicate, timeout)
            if not result:
                pytest.fail(
                    f"timed out after {timeout} s: {len(self.written)} written, "
                    f"{len(self.offered)} offered, reports {self.reports[-3:]}, "
                    f"last {[m[:80] for _, m in self.written[-3:]]}"
                )
            return result

    def hold(self) -> None:
        """From now on ready() waits, until :meth:`release`."""
        self._call(lambda: setattr(self, "_open", asyncio.Event()))

    def release(self) -> None:
        self._call(lambda: self._open and self._open.set())

    def gate_writes(self) -> None:
        self._call(lambda: setattr(self, "_gate", asyncio.Event()))

    def open_writes(self) -> None:
        self._call(lambda: self._gate and self._gate.set())

    def _call(self, fn: Callable[[], object]) -> None:
        assert self.loop is not None
        done: Future[None] = Future()

        def run() -> None:
            fn()
            done.set_result(None)

        self.loop.call_soon_threadsafe(run)
        done.result(DEADLINE)


class Running:
    """Receivers started on an event loop of their own thread."""

    def __init__(self, intake: RecordingIntake, listen: list[Listen], limits: Limits) -> None:
        self.intake = intake
        self.receivers = Receivers(intake, listen, limits=limits)
        self.loop = asyncio.new_event_loop()
        intake.loop = self.loop
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.ports = self.call(self.receivers.start())
        self.stopped = False

    def call(self, coroutine: Any, timeout: float = DEADLINE) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def port(self, kind: str) -> int:
        (port,) = [p for name, p in self.ports.items() if name.split(" ")[0].split("+")[0] == kind]
        return int(port)

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        try:
            self.call(self.receivers.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(DEADLINE)
            self.loop.close()


@pytest.fixture
def intake() -> RecordingIntake:
    return RecordingIntake()


@pytest.fixture
def serve(intake: RecordingIntake) -> Iterator[Callable[..., Running]]:
    """``serve(Listen("tcp", "127.0.0.1", 0), ..., limits=Limits(...))``: running receivers."""
    started: list[Running] = []

    def start(*listen: Listen, limits: Limits | None = None) -> Running:
        running = Running(intake, list(listen), limits or Limits(stop_grace=2.0))
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


# ------------------------------------------------------------------ external programs


#: Lines the forwarders' tests have a forwarder read from a file and send.
FORWARDED = [
    "sshd[4242]: Failed password for invalid user admin from 203.0.113.7 port 52144 ssh2",
    "Қорған: пайдаланушы жүйеге кірді",
    "message   with  several    spaces",
    "long " + "x" * 6000,
]


F = TypeVar("F", bound="Forwarder")


class Forwarder:
    """A log forwarder (rsyslogd, syslog-ng) run as a child in ``folder``: it reads the lines
    :meth:`write` appends to ``input.log`` and sends them on as its configuration says."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.input = folder / "input.log"
        self.input.touch()
        self.process: subprocess.Popen[bytes] | None = None

    def write(self, lines: list[str]) -> None:
        with self.input.open("a", encoding="utf-8") as out:
            out.writelines(line + "\n" for line in lines)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(DEADLINE)

    def said(self) -> str:
        """What the forwarder logged (for failure messages)."""
        return ""


def started_forwarders(make: Callable[[str], F]) -> Iterator[Callable[[str], F]]:
    """A fixture's body: ``start(config)`` makes a forwarder (not yet started); every one made
    is stopped after the test."""
    made: list[F] = []

    def start(config: str) -> F:
        forwarder = make(config)
        made.append(forwarder)
        return forwarder

    yield start
    for forwarder in made:
        forwarder.stop()


def forwarded(
    intake: RecordingIntake,
    lines: list[str],
    forwarder: Forwarder,
    line_of: Callable[[bytes], bytes | None],
    *,
    once: bool = True,
) -> list[bytes]:
    """Wait until every line arrived (in any order: forwarders promise none), ``line_of``
    saying which line a message carries (None: not one of ours); each line's (first) message.
    ``once``: each must have come once (a forwarder resending may send some twice)."""
    wanted = {line.encode() for line in lines}

    def ours() -> dict[bytes, list[bytes]]:
        found: dict[bytes, list[bytes]] = {}
        for _, message in intake.written:
            line = line_of(message)
            if line is not None:
                found.setdefault(line, []).append(message)
        return found

    with intake.cond:
        arrived = intake.cond.wait_for(lambda: wanted <= ours().keys(), DEADLINE)
        found = ours()
    if not arrived:
        pytest.fail(
            f"{len(wanted & found.keys())} of {len(lines)} lines arrived; "
            f"{type(forwarder).__name__} said:\n{forwarder.said()}"
        )
    assert found.keys() == wanted, found.keys() - wanted
    if once:
        assert all(len(found[line]) == 1 for line in wanted), "a line came more than once"
    return [found[line.encode()][0] for line in lines]


#: The page whose forwarder configurations the tests run.
DOC = Path(__file__).resolve().parents[3] / "docs" / "collect.md"


def snippet(name: str) -> str:
    """The code block that follows ``<!-- test: name -->`` in docs/collect.md."""
    found = re.search(
        rf"<!-- test: {re.escape(name)} -->\n```\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S
    )
    assert found, f"docs/collect.md has no snippet {name!r}"
    return found[1]


def localise(text: str, replacements: dict[str, str]) -> str:
    """The doc's snippet with the test's host, port and files; each must be there to replace."""
    for old, new in replacements.items():
        assert old in text, f"{old!r} is no longer in the snippet: update the test"
        text = text.replace(old, new)
    return text


def require(program: str, package: str) -> str:
    """The path of ``program``; skip when missing (a failure under CI=true)."""
    found = shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin")
    if found is None:
        message = f"{program} is not installed (Debian package {package})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}: required under CI=true (.ci/run installs it)")
        pytest.skip(message)
    return found


# ------------------------------------------------------------------ a test PKI


@dataclass(frozen=True)
class Pki:
    folder: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path  # CN = CLIENT_CN, signed by the CA
    client_key: Path
    stranger_cert: Path  # signed by another CA
    stranger_key: Path


CLIENT_CN = "web-01.akimat.example.kz"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    subject: str,
    key: rsa.RSAPrivateKey,
    issuer: tuple[x509.Name, rsa.RSAPrivateKey] | None,
    *,
    ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
    names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
    else:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=True,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(folder: Path, name: str, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> Path:
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = folder / f"{name}-key.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return folder / f"{name}.pem"


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, a server certificate for ``collector.example.kz`` (and localhost, 127.0.0.1), a
    client certificate it signed and one from a stranger CA."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key, stranger_ca_key = _key(), _key()
    ca = _issue("Qorgan test CA", ca_key, None, ca=True)
    stranger_ca = _issue("Stranger CA", stranger_ca_key, None, ca=True)
    server_key, client_key, stranger_key = _key(), _key(), _key()
    server = _issue(
        COLLECTOR,
        server_key,
        (ca.subject, ca_key),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        names=[
            x509.DNSName(COLLECTOR),
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ],
    )
    client = _issue(
        CLIENT_CN,
        client_key,
        (ca.subject, ca_key),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        names=[x509.DNSName(CLIENT_CN)],
    )
    stranger = _issue(
        "intruder.example.com",
        stranger_key,
        (stranger_ca.subject, stranger_ca_key),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return Pki(
        folder=folder,
        ca=folder / "ca.pem",
        server_cert=_write(folder, "server", server, server_key),
        server_key=folder / "server-key.pem",
        client_cert=_write(folder, "client", client, client_key),
        client_key=folder / "client-key.pem",
        stranger_cert=_write(folder, "stranger", stranger, stranger_key),
        stranger_key=folder / "stranger-key.pem",
    )


# ------------------------------------------------------------------ a small RELP client


class RelpClient:
    """A blocking RELP client for the tests that need to misbehave or watch the wire (rsyslog
    itself is the real client of test_rsyslog.py)."""

    OFFERS = b"relp_version=0\nrelp_software=qorgan-test,1,\ncommands=syslog"

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(DEADLINE)
        self.decoder = RelpDecoder()
        self.txnr = 0
        self.received: list[RelpFrame] = []

    @classmethod
    def connect(cls, port: int) -> RelpClient:
        return cls(socket.create_connection(("127.0.0.1", port), timeout=DEADLINE))

    def send(self, command: str, data: bytes = b"") -> int:
        self.txnr += 1
        self.sock.sendall(encode_relp(self.txnr, command, data))
        return self.txnr

    def open(self) -> RelpFrame:
        txnr = self.send("open", self.OFFERS)
        (answer,) = self.responses(1)
        assert answer.txnr == txnr and answer.command == "rsp"
        return answer

    def responses(self, count: int) -> list[RelpFrame]:
        """The next ``count`` frames from the server (fails at the deadline or at EOF)."""
        while len(self.received) < count:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError(f"closed after {len(self.received)} frames")
            self.received += self.decoder.feed(data)
        taken, self.received = self.received[:count], self.received[count:]
        return taken

    def rest(self) -> tuple[list[RelpFrame], str]:
        """Every frame until the server closes, and how it closed ("eof" or "reset")."""
        frames, end = list(self.received), "eof"
        self.received = []
        try:
            while data := self.sock.recv(65536):
                frames += self.decoder.feed(data)
        except ConnectionResetError:
            end = "reset"
        return frames, end

    def close(self) -> None:
        self.sock.close()
