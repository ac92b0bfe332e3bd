"""Syslog over UDP and TCP with real senders (Python's ``SysLogHandler``, util-linux ``logger``
and raw sockets that misbehave), the intake's answers (refusal, backpressure, failed writes), the
limits, and a clean stop."""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from qorgan.telemetry.receivers.base import Limits
from qorgan.telemetry.receivers.listeners import Listen
from qorgan.telemetry.receivers.syslog import SyslogUdpListener

from .conftest import DEADLINE, RecordingIntake, Running, require

KAZAKH = "Қорған: пайдаланушы admin жүйеге кіре алмады (құпиясөз қате), IP 10.20.30.40"
SPACES = "message   with  several    spaces and a tab\tinside"
LONG = "long " + "0123456789abcdef" * 1200  # 19,205 octets: over logger's 1 KiB default

TCP = Listen("tcp", "127.0.0.1", 0)
UDP = Listen("udp", "127.0.0.1", 0)
Serve = Callable[..., Running]


def _handler(port: int, socktype: socket.SocketKind) -> logging.Logger:
    logger = logging.Logger(f"qorgan-test-{socktype.name}")
    handler = logging.handlers.SysLogHandler(("127.0.0.1", port), socktype=socktype)
    handler.setFormatter(logging.Formatter("qorgan-test: %(message)s"))
    logger.addHandler(handler)
    return logger


def _close(logger: logging.Logger) -> None:
    for handler in logger.handlers:
        handler.close()


# ------------------------------------------------------------------ real senders


def test_python_syslog_handler_over_udp(serve: Serve, intake: RecordingIntake) -> None:
    running = serve(UDP)
    logger = _handler(running.port("udp"), socket.SOCK_DGRAM)
    try:
        logger.warning(KAZAKH)
        logger.error("line one\nline two of the same record")
    finally:
        _close(logger)
    intake.wait_for(lambda: len(intake.offered) == 2)
    (peer, first), (_, second) = intake.offered
    assert peer.protocol == "udp" and peer.address == "127.0.0.1"
    assert first == f"<12>qorgan-test: {KAZAKH}".encode()  # the NUL the handler adds is gone
    assert second == b"<11>qorgan-test: line one\nline two of the same record"  # kept whole
    assert intake.written == []


def test_python_syslog_handler_over_tcp_is_nul_delimited(
    serve: Serve, intake: RecordingIntake
) -> None:
    running = serve(TCP)
    logger = _handler(running.port("tcp"), socket.SOCK_STREAM)
    try:
        for i in range(100):
            logger.warning("event %d %s", i, KAZAKH)
    finally:
        _close(logger)
    intake.wait_for(lambda: len(intake.written) == 100)
    assert intake.messages() == [
        f"<12>qorgan-test: event {i} {KAZAKH}".encode() for i in range(100)
    ]
    assert {peer.protocol for peer, _ in intake.written} == {"tcp"}


@pytest.mark.parametrize(
    "options", [["--udp"], ["--tcp"], ["--tcp", "--octet-count"]], ids=["udp", "tcp", "octet"]
)
def test_util_linux_logger(serve: Serve, intake: RecordingIntake, options: list[str]) -> None:
    logger = require("logger", "util-linux")
    running = serve(TCP, UDP)
    port = running.port("udp" if "--udp" in options else "tcp")
    texts = [SPACES, KAZAKH, LONG]
    for text in texts:
        command = [logger, *options, "-n", "127.0.0.1", "-P", str(port), "--size", "30000"]
        command += ["-t", "qorgan-test", "-p", "auth.warning", "--", text]
        subprocess.run(command, check=True, timeout=DEADLINE)
    received = intake.offered if "--udp" in options else intake.written
    intake.wait_for(lambda: len(received) == 3)
    for (_, message), text in zip(received, texts, strict=True):
        assert message.startswith(b"<36>") and b"qorgan-test" in message  # auth.warning
        assert message.endswith(text.encode()), message[-60:]
    assert intake.reports == []


def test_logger_sends_a_file_line_by_line_on_one_connection(
    serve: Serve, intake: RecordingIntake, tmp_path: Path
) -> None:
    logger = require("logger", "util-linux")
    running = serve(TCP)
    lines = [f"line {i:05d} {SPACES}" for i in range(2000)]
    source = tmp_path / "lines.txt"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    command = [logger, "--tcp", "--octet-count", "-n", "127.0.0.1", "-P", str(running.port("tcp"))]
    subprocess.run([*command, "-t", "bulk", "-f", str(source)], check=True, timeout=DEADLINE)
    intake.wait_for(lambda: len(intake.written) == 2000)
    assert all(m.endswith(line.encode()) for m, line in zip(intake.messages(), lines, strict=True))
    assert len(intake.admitted) == 1 and len(intake.writes) < 2000  # batched per read


# ------------------------------------------------------------------ the TCP close


def test_tcp_closes_only_after_the_last_messages_are_durable(
    serve: Serve, intake: RecordingIntake
) -> None:
    """The one acknowledgement plain TCP syslog has: a sender that half-closes sees our close
    only once what it sent is durable, an unterminated last line included."""
    running = serve(TCP)
    intake.gate_writes()
    with socket.create_connection(("127.0.0.1", running.port("tcp")), timeout=DEADLINE) as sock:
        sock.sendall(b"<13>first\n<13>second\n<13>last, without LF")
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # no close while the write waits
        assert intake.written == []
        intake.open_writes()
        sock.settimeout(DEADLINE)
        assert sock.recv(1) == b""  # our close, after the write
    assert intake.messages() == [b"<13>first", b"<13>second", b"<13>last, without LF"]


def test_a_failed_write_resets_the_connection(serve: Serve, intake: RecordingIntake) -> None:
    running = serve(TCP)
    intake.fail_writes = 1
    with socket.create_connection(("127.0.0.1", running.port("tcp")), timeout=DEADLINE) as sock:
        sock.sendall(b"<13>never stored\n")
        sock.shutdown(socket.SHUT_WR)
        with pytest.raises(ConnectionResetError):
            sock.recv(1)  # a reset, not a clean close: nothing was acknowledged
    assert intake.failed_writes == 1 and intake.written == []


# ------------------------------------------------------------------ refusal


def test_a_refused_tcp_sender_is_disconnected(serve: Serve, intake: RecordingIntake) -> None:
    running = serve(TCP)
    intake.refuse = lambda peer: True
    address = ("127.0.0.1", running.port("tcp"))
    with (
        socket.create_connection(address, timeout=DEADLINE) as sock,
        contextlib.suppress(ConnectionResetError, BrokenPipeError),
    ):
        sock.sendall(b"<13>unwanted\n")
        assert sock.recv(1) == b""
    assert [p.protocol for p in intake.refused] == ["tcp"] and intake.written == []


def test_a_refused_udp_sender_is_dropped_and_told(serve: Serve, intake: RecordingIntake) -> None:
    running = serve(UDP)
    intake.refuse = lambda peer: True
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"<13>unwanted", ("127.0.0.1", running.port("udp")))
    intake.wait_for(lambda: intake.refused)
    assert intake.refused[0].protocol == "udp" and intake.offered == []


# ------------------------------------------------------------------ backpressure


def test_tcp_stops_reading_while_the_intake_is_not_ready(
    serve: Serve, intake: RecordingIntake
) -> None:
    """While the intake holds, we read nothing: the kernel's buffers fill and the sender's
    send blocks (here: times out); once released, everything sent arrives."""
    running = serve(TCP, limits=Limits(max_buffered=64 * 1024, stop_grace=2.0))
    intake.hold()
    line = b"<13>" + b"b" * 95 + b"\n"  # 100 octets
    chunk = line * 640  # 64,000 octets
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
        sock.connect(("127.0.0.1", running.port("tcp")))
        sock.settimeout(1.0)
        blocked = False
        while sent < 256 * 1024 * 1024:
            try:
                sent += sock.send(chunk[sent % len(chunk) :] or chunk)
            except TimeoutError:
                blocked = True
                break
        assert blocked, f"sent {sent} octets without blocking"
        assert intake.written == [] and intake.waiting == 1
        intake.release()
        sock.settimeout(DEADLINE)
        # Finish the last chunk, if the send that blocked stopped inside one (at a chunk's
        # boundary there is nothing left: slicing from 0 would send a whole extra chunk).
        rest = (len(chunk) - sent % len(chunk)) % len(chunk)
        sock.sendall(chunk[len(chunk) - rest :] if rest else b"")
        total = sent + rest
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(1) == b""
    assert total % 100 == 0
    intake.wait_for(lambda: len(intake.written) == total // 100)
    assert set(intake.messages()) == {line[:-1]}


# ------------------------------------------------------------------ limits


def test_oversized_messages_are_truncated_and_reported(
    serve: Serve, intake: RecordingIntake
) -> None:
    running = serve(TCP, UDP, limits=Limits(max_message=1000, stop_grace=2.0))
    big = b"<13>" + b"x" * 5000
    with socket.create_connection(("127.0.0.1", running.port("tcp")), timeout=DEADLINE) as sock:
        sock.sendall(big + b"\n" + b"5000 " + big[:5000] + b"<13>small\n")
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(1) == b""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(big, ("127.0.0.1", running.port("udp")))
    intake.wait_for(lambda: len(intake.reports) == 3 and intake.offered)
    assert intake.messages() == [big[:1000], big[:1000], b"<13>small"]
    assert intake.offered[0][1] == big[:1000]
    reasons = [reason for _, reason, _ in intake.reports]
    assert reasons == [
        "oversized message: a line longer than the limit of 1000 octets: truncated",
        "oversized message: 5000 octets, over the limit of 1000: truncated",
        "oversized message: 5004 octets, over the limit of 1000: truncated",
    ]
    assert all(len(sample) <= 512 for _, _, sample in intake.reports)


def test_skip_policy_delivers_nothing_of_an_oversized_message(
    serve: Serve, intake: RecordingIntake
) -> None:
    running = serve(UDP, limits=Limits(max_message=10, oversize="skip", stop_grace=2.0))  # type: ignore[arg-type]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"<13>too long for ten", ("127.0.0.1", running.port("udp")))
        sock.sendto(b"<13>short", ("127.0.0.1", running.port("udp")))
    intake.wait_for(lambda: intake.offered and intake.reports)
    assert [m for _, m in intake.offered] == [b"<13>short"]
    assert intake.reports[0][1].endswith("skipped")


def test_connections_over_the_limit_are_closed_at_once(
    serve: Serve, intake: RecordingIntake
) -> None:
    running = serve(TCP, limits=Limits(max_connections=2, stop_grace=2.0))
    port = running.port("tcp")
    open_ = [socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) for _ in range(2)]
    try:
        intake.wait_for(lambda: len(intake.admitted) == 2)
        with (
            socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as third,
            contextlib.suppress(ConnectionResetError),
        ):
            assert third.recv(1) == b""
        (listener,) = running.receivers.listeners.values()
        assert listener.refused_connections == 1  # type: ignore[union-attr]
        assert len(intake.admitted) == 2
    finally:
        for sock in open_:
            sock.close()


def test_udp_socket_gets_the_receive_buffer_asked_for(serve: Serve) -> None:
    running = serve(UDP, limits=Limits(udp_receive_buffer=4 * 1024 * 1024))
    (listener,) = running.receivers.listeners.values()
    assert isinstance(listener, SyslogUdpListener)
    # Linux doubles the request; without CAP_NET_ADMIN it is capped at net.core.rmem_max.
    rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
    assert listener.receive_buffer >= min(4 * 1024 * 1024, rmem_max)


# ------------------------------------------------------------------ stop


def test_stop_reports_an_incomplete_message_and_closes(
    serve: Serve, intake: RecordingIntake
) -> None:
    running = serve(TCP)
    with socket.create_connection(("127.0.0.1", running.port("tcp")), timeout=DEADLINE) as sock:
        sock.sendall(b"<13>complete\n<13>half a mess")
        intake.wait_for(lambda: intake.written)
        running.stop()
        # A reset, not an orderly close: the sender must not take its stream as durable.
        with pytest.raises(ConnectionResetError):
            sock.recv(1)
    assert intake.messages() == [b"<13>complete"]
    ((_, reason, sample),) = intake.reports
    assert reason.startswith("connection closed by the receiver's shutdown: an incomplete")
    assert sample == b"<13>half a mess"


def test_stop_cancels_a_write_that_outlasts_the_grace(
    serve: Serve, intake: RecordingIntake
) -> None:
    running = serve(TCP, limits=Limits(stop_grace=0.5))
    intake.gate_writes()  # never opened: the write hangs
    with socket.create_connection(("127.0.0.1", running.port("tcp")), timeout=DEADLINE) as sock:
        sock.sendall(b"<13>stuck\n")
        intake.wait_for(lambda: intake.writing == 1)
        started = time.monotonic()
        running.stop()
        assert time.monotonic() - started < DEADLINE / 2
        with pytest.raises(ConnectionResetError):
            sock.recv(1)  # a reset: what it sent was not stored
    assert intake.written == []
