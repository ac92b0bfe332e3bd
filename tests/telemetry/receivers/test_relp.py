"""RELP with a client on a raw socket, where rsyslog cannot be made to misbehave: the session,
acknowledgements only after durable writes and in order, batching of a window, backpressure, a
failed write, malformed frames, refusal and serverclose. rsyslog itself: test_rsyslog.py."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

import pytest

from qorgan.telemetry.receivers.base import Limits
from qorgan.telemetry.receivers.framing import RelpFrame, encode_relp, parse_offers
from qorgan.telemetry.receivers.listeners import Listen

from .conftest import DEADLINE, RecordingIntake, RelpClient, Running

RELP = Listen("relp", "127.0.0.1", 0)
Serve = Callable[..., Running]


def _client(running: Running) -> RelpClient:
    return RelpClient.connect(running.port("relp"))


def test_session_open_syslog_close(serve: Serve, intake: RecordingIntake) -> None:
    running = serve(RELP)
    client = _client(running)
    try:
        answer = client.open()
        status, _, offers = answer.data.partition(b"\n")
        assert status == b"200 OK"
        assert parse_offers(offers)["relp_version"] == ["0"]
        assert parse_offers(offers)["commands"] == ["syslog"]
        txnr = client.send("syslog", "<13>Қорған: RELP арқылы хабар".encode())
        assert client.responses(1) == [RelpFrame(txnr, "rsp", b"200 OK", 6)]
        close = client.send("close")
        frames, end = client.rest()
        assert frames == [RelpFrame(close, "rsp", b"200 OK", 6)] and end == "eof"
    finally:
        client.close()
    assert intake.messages() == ["<13>Қорған: RELP арқылы хабар".encode()]
    (peer,) = intake.admitted
    assert peer.protocol == "relp" and peer.address == "127.0.0.1" and peer.certificate is None


def test_a_window_of_frames_is_written_together_and_acknowledged_in_order(
    serve: Serve, intake: RecordingIntake
) -> None:
    running = serve(RELP)
    client = _client(running)
    try:
        client.open()
        intake.gate_writes()
        # One send: the whole window reaches the receiver in one read.
        window = b"".join(encode_relp(2 + i, "syslog", b"<13>msg %d" % i) for i in range(500))
        client.txnr = 501
        client.sock.sendall(window)
        client.sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            client.sock.recv(1)  # not one acknowledgement before the write is durable
        client.sock.settimeout(DEADLINE)
        intake.open_writes()
        answers = client.responses(500)
    finally:
        client.close()
    assert [a.txnr for a in answers] == list(range(2, 502))
    assert {a.data for a in answers} == {b"200 OK"}
    assert intake.messages() == [b"<13>msg %d" % i for i in range(500)]
    assert len(intake.writes) <= 3  # one per read, not one per frame


def test_a_failed_write_is_not_acknowledged_and_the_connection_reset(
    serve: Serve, intake: RecordingIntake
) -> None:
    """Not a 500 either: librelp's client drops a message answered 500, but resends every
    unacknowledged one after a broken connection (test_rsyslog shows it)."""
    running = serve(RELP)
    client = _client(running)
    try:
        client.open()
        intake.fail_writes = 1
        client.sock.sendall(
            b"".join(encode_relp(2 + i, "syslog", b"<13>lost %d" % i) for i in range(5))
        )
        frames, end = client.rest()
    finally:
        client.close()
    assert frames == [] and end == "reset"
    assert intake.failed_writes == 1 and intake.written == []


def test_relp_stops_reading_while_the_intake_is_not_ready(
    serve: Serve, intake: RecordingIntake
) -> None:
    """While the intake holds, the receiver reads nothing and answers nothing: the client's
    send blocks. Released, every frame is written and acknowledged, in order."""
    running = serve(RELP, limits=Limits(max_buffered=64 * 1024, stop_grace=2.0))
    client = _client(running)
    count = 20_000
    stream = b"".join(
        encode_relp(3 + i, "syslog", b"<13>held %05d " % i + b"r" * 200) for i in range(count)
    )
    try:
        client.open()
        intake.hold()
        # The receiver may be in a read asked for before the hold: this frame ends it (it is
        # then written and answered) or waits with the rest.
        client.send("syslog", b"<13>probe")
        intake.wait_for(lambda: intake.waiting == 1)
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
        client.sock.settimeout(1.0)
        sent = 0
        with pytest.raises(TimeoutError):
            while sent < len(stream):
                sent += client.sock.send(stream[sent : sent + 65536])
        assert 0 < sent < len(stream) // 2
        client.sock.setblocking(False)
        early: list[RelpFrame] = []
        with contextlib.suppress(BlockingIOError):
            while data := client.sock.recv(65536):
                early += client.decoder.feed(data)
        assert [f.txnr for f in early] in ([], [2])  # nothing answered while held
        assert len(intake.written) == len(early)
        intake.release()
        client.sock.settimeout(DEADLINE)
        # Send the rest while reading the answers, as a RELP client does (its window).
        sender = threading.Thread(target=client.sock.sendall, args=(stream[sent:],))
        sender.start()
        answers = early + client.responses(count + 1 - len(early))
        sender.join(DEADLINE)
    finally:
        client.close()
    assert [a.txnr for a in answers] == list(range(2, 3 + count))
    assert {a.data for a in answers} == {b"200 OK"}
    assert [m[:14] for m in intake.messages()[1:]] == [b"<13>held %05d" % i for i in range(count)]


def test_malformed_frame_is_reported_and_the_connection_reset(
    serve: Serve, intake: RecordingIntake
) -> None:
    running = serve(RELP)
    client = _client(running)
    try:
        client.open()
        client.sock.sendall(b"2 syslog 5 <13>toolong\n")
        frames, end = client.rest()
    finally:
        client.close()
    assert frames == [] and end == "reset"
    ((_, reason, sample),) = intake.reports
    assert reason == "RELP frame 2 (syslog): no LF after its 5 octets of data (wrong DATALEN?)"
    assert sample.startswith(b"2 syslog 5")


def test_syslog_before_open_is_refused(serve: Serve, intake: RecordingIntake) -> None:
    running = serve(RELP)
    client = _client(running)
    try:
        client.send("syslog", b"<13>too early")
        frames, _ = client.rest()
    finally:
        client.close()
    assert frames == [RelpFrame(1, "rsp", b"500 session not open", 20)]
    assert intake.written == [] and intake.reports[0][1] == "RELP syslog frame before open"


def test_open_without_syslog_command_is_refused(serve: Serve) -> None:
    running = serve(RELP)
    client = _client(running)
    try:
        client.send("open", b"relp_version=0\ncommands=eventlog")
        frames, _ = client.rest()
    finally:
        client.close()
    assert frames == [RelpFrame(1, "rsp", b"500 required command not supported by client", 44)]


def test_oversized_message_is_truncated_reported_and_acknowledged(
    serve: Serve, intake: RecordingIntake
) -> None:
    running = serve(RELP, limits=Limits(max_message=100, stop_grace=2.0))
    client = _client(running)
    try:
        client.open()
        big = b"<13>" + b"o" * 10_000
        txnr = client.send("syslog", big)
        assert client.responses(1) == [RelpFrame(txnr, "rsp", b"200 OK", 6)]
    finally:
        client.close()
    assert intake.messages() == [big[:100]]
    assert intake.reports[0][1] == (
        "oversized message: 10004 octets, over the limit of 100: truncated"
    )


def test_a_refused_sender_is_disconnected(serve: Serve, intake: RecordingIntake) -> None:
    running = serve(RELP)
    intake.refuse = lambda peer: True
    client = _client(running)
    try:
        client.send("open", RelpClient.OFFERS)
        frames, _ = client.rest()
    finally:
        client.close()
    assert frames == [] and [p.protocol for p in intake.refused] == ["relp"]


def test_stop_sends_serverclose(serve: Serve, intake: RecordingIntake) -> None:
    running = serve(RELP)
    client = _client(running)
    try:
        client.open()
        txnr = client.send("syslog", b"<13>before stop")
        assert client.responses(1)[0].txnr == txnr
        running.stop()
        frames, end = client.rest()
    finally:
        client.close()
    assert frames == [RelpFrame(0, "serverclose", b"", 0)] and end == "eof"
