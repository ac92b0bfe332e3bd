"""Receivers: a set of listeners started and stopped together, and refused configurations."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from qorgan.telemetry.errors import TelemetryError
from qorgan.telemetry.receivers.base import Limits
from qorgan.telemetry.receivers.framing import Oversize
from qorgan.telemetry.receivers.listeners import Listen, Receivers
from qorgan.telemetry.receivers.syslog import SyslogUdpListener
from qorgan.telemetry.receivers.tls import server_context

from .conftest import DEADLINE, Pki, RecordingIntake, Running

Serve = Callable[..., Running]


def test_every_kind_on_its_own_port_then_stopped(
    serve: Serve, intake: RecordingIntake, pki: Pki
) -> None:
    context = server_context(pki.server_cert, pki.server_key)
    running = serve(
        Listen("udp", "127.0.0.1", 0),
        Listen("tcp", "127.0.0.1", 0),
        Listen("tls", "127.0.0.1", 0, context),
        Listen("relp", "127.0.0.1", 0),
        Listen("relp", "127.0.0.1", 0, context),
    )
    assert sorted(running.ports) == [
        "relp 127.0.0.1:0", "relp+tls 127.0.0.1:0", "tcp 127.0.0.1:0", "tls 127.0.0.1:0",
        "udp 127.0.0.1:0",
    ]  # fmt: skip
    assert len(set(running.ports.values())) == 5 and 0 not in running.ports.values()
    tcp = running.ports["tcp 127.0.0.1:0"]
    running.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", tcp), timeout=DEADLINE)


def test_a_port_in_use_is_a_clear_error_and_nothing_stays_open(intake: RecordingIntake) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        receivers = Receivers(
            intake, [Listen("udp", "127.0.0.1", 0), Listen("tcp", "127.0.0.1", port)]
        )
        with pytest.raises(TelemetryError, match=f"cannot listen on tcp 127.0.0.1:{port}"):
            asyncio.run(receivers.start())
    udp = receivers.listeners["udp 127.0.0.1:0"]
    assert isinstance(udp, SyslogUdpListener) and udp.receive_buffer > 0  # it had started
    assert udp._transport is None  # started, then stopped again


@pytest.mark.parametrize(
    ("listen", "error"),
    [
        ([Listen("tls", "127.0.0.1", 0)], "a tls listener needs a TLS context"),
        ([Listen("tcp", "::1", 1), Listen("tcp", "::1", 1)], "configured twice"),
        ([Listen("nntp", "::1", 1)], "unknown listener kind 'nntp'"),  # type: ignore[arg-type]
    ],
)
def test_refused_configurations(intake: RecordingIntake, listen: list[Listen], error: str) -> None:
    with pytest.raises(TelemetryError, match=error):
        Receivers(intake, listen)


def test_tls_context_on_udp_or_tcp_is_refused(intake: RecordingIntake, pki: Pki) -> None:
    context = server_context(pki.server_cert, pki.server_key)
    with pytest.raises(TelemetryError, match="syslog over UDP has no TLS"):
        Receivers(intake, [Listen("udp", "127.0.0.1", 0, context)])
    with pytest.raises(TelemetryError, match="a TLS listener is of kind tls"):
        Receivers(intake, [Listen("tcp", "127.0.0.1", 0, context)])


def test_limits_take_names_and_refuse_nonsense() -> None:
    assert Limits(oversize="skip").oversize is Oversize.skip  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_message"):
        Limits(max_message=0)
    with pytest.raises(ValueError):
        Limits(oversize="drop")  # type: ignore[arg-type]
