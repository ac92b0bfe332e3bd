"""Syslog and RELP over TLS with Python's ssl client: client certificates required, optional or
not asked for, the common name reported in Peer, refusals, TLS 1.2 at least, and the errors of
a bad configuration."""

from __future__ import annotations

import socket
import ssl
import warnings
from collections.abc import Callable

import pytest

from qorgan.telemetry.errors import TelemetryError
from qorgan.telemetry.receivers.listeners import Listen
from qorgan.telemetry.receivers.tls import server_context

from .conftest import CLIENT_CN, COLLECTOR, DEADLINE, Pki, RecordingIntake, RelpClient, Running

Serve = Callable[..., Running]


def _server(pki: Pki, client_certificates: str) -> ssl.SSLContext:
    return server_context(
        pki.server_cert, pki.server_key, ca=pki.ca, client_certificates=client_certificates
    )


def _client(pki: Pki, cert: str | None = "client") -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        context.load_cert_chain(pki.folder / f"{cert}.pem", pki.folder / f"{cert}-key.pem")
    return context


def _send(port: int, context: ssl.SSLContext, data: bytes) -> None:
    """Connect, send, close the TLS session (close_notify) and wait for the server's close.

    Over TLS that close is no acknowledgement: asyncio's TLS transport cannot stay half-open,
    so it answers close_notify at once (the messages are still written, after)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    with context.wrap_socket(raw, server_hostname=COLLECTOR) as sock:
        sock.sendall(data)
        plain = sock.unwrap()
        assert plain.recv(1) == b""
        plain.close()


@pytest.mark.parametrize("mode", ["required", "optional"])
def test_client_certificate_name_reaches_the_intake(
    serve: Serve, intake: RecordingIntake, pki: Pki, mode: str
) -> None:
    running = serve(Listen("tls", "127.0.0.1", 0, _server(pki, mode)))
    _send(running.port("tls"), _client(pki), "<13>Қорған TLS\n<13>two".encode())
    intake.wait_for(lambda: len(intake.written) == 2)
    assert intake.messages() == ["<13>Қорған TLS".encode(), b"<13>two"]
    (peer,) = intake.admitted
    assert (peer.protocol, peer.address, peer.certificate) == ("tls", "127.0.0.1", CLIENT_CN)


def test_without_a_certificate_when_optional_the_peer_has_none(
    serve: Serve, intake: RecordingIntake, pki: Pki
) -> None:
    running = serve(Listen("tls", "127.0.0.1", 0, _server(pki, "optional")))
    _send(running.port("tls"), _client(pki, cert=None), b"<13>anonymous\n")
    intake.wait_for(lambda: intake.written)
    assert intake.admitted[0].certificate is None


@pytest.mark.parametrize("cert", [None, "stranger"], ids=["no-certificate", "other-ca"])
def test_required_client_certificate_refuses_others(
    serve: Serve, intake: RecordingIntake, pki: Pki, cert: str | None
) -> None:
    running = serve(Listen("tls", "127.0.0.1", 0, _server(pki, "required")))
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        # TLS 1.3: the server's refusal of the certificate arrives after the handshake.
        _send(running.port("tls"), _client(pki, cert=cert), b"<13>should not pass\n" * 100)
    assert intake.admitted == [] and intake.written == []


def test_tls_below_1_2_is_refused(serve: Serve, intake: RecordingIntake, pki: Pki) -> None:
    running = serve(Listen("tls", "127.0.0.1", 0, _server(pki, "optional")))

    def only(version: ssl.TLSVersion) -> ssl.SSLContext:
        context = _client(pki)
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 offers TLS 1.1 only at level 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLSVersion.TLSv1_1 is
            context.minimum_version = context.maximum_version = version
        return context

    with pytest.raises(ssl.SSLError):
        _send(running.port("tls"), only(ssl.TLSVersion.TLSv1_1), b"<13>old\n")
    assert intake.admitted == []
    _send(running.port("tls"), only(ssl.TLSVersion.TLSv1_2), b"<13>1.2\n")  # the same, 1.2
    intake.wait_for(lambda: intake.messages() == [b"<13>1.2"])


def test_relp_over_tls_with_client_certificate(
    serve: Serve, intake: RecordingIntake, pki: Pki
) -> None:
    running = serve(Listen("relp", "127.0.0.1", 0, _server(pki, "required")))
    raw = socket.create_connection(("127.0.0.1", running.port("relp")), timeout=DEADLINE)
    client = RelpClient(_client(pki).wrap_socket(raw, server_hostname=COLLECTOR))
    try:
        client.open()
        txnr = client.send("syslog", b"<13>over RELP and TLS")
        assert client.responses(1)[0].txnr == txnr
    finally:
        client.close()
    assert intake.messages() == [b"<13>over RELP and TLS"]
    assert intake.admitted[0].protocol == "relp" and intake.admitted[0].certificate == CLIENT_CN


def test_configuration_errors_name_the_file(pki: Pki) -> None:
    with pytest.raises(TelemetryError, match=r"cannot use TLS certificate .*missing\.pem"):
        server_context(pki.folder / "missing.pem", pki.server_key)
    with pytest.raises(TelemetryError, match="cannot use TLS certificate"):
        server_context(pki.server_cert, pki.client_key)  # key of another certificate
    with pytest.raises(TelemetryError, match="cannot use CA bundle"):
        server_context(pki.server_cert, pki.server_key, ca=pki.server_key)
    with pytest.raises(TelemetryError, match="a CA bundle is needed to verify them"):
        server_context(pki.server_cert, pki.server_key, client_certificates="required")
    context = server_context(pki.server_cert, pki.server_key)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE
