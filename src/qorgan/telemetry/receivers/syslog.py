"""Syslog receivers: UDP (RFC 5426), TCP (RFC 6587) and TLS (RFC 5425, same framing).

**UDP**: one datagram is one message (RFC 5426 3.1). Trailing LF, CR and NUL are dropped (Python's
``SysLogHandler`` ends each datagram with NUL, some senders with LF); a datagram with LFs inside
is *not* split: it is one multi-line message (a stack trace), as the RFC says, and splitting it
would cut such messages apart. UDP has no acknowledgement and cannot be slowed: messages go to
:meth:`Intake.offer`, and what the kernel drops when our socket buffer is full shows in
:func:`qorgan.telemetry.receivers.udp_stats.udp_counters` (``RcvbufErrors``). A datagram from a
sender the intake does not admit is dropped (the intake counted it).

**TCP and TLS**: per connection, the sender is admitted (or the connection closed), then we read
while the intake is ready (else we stop reading and the sender's writes block), frame with
:class:`~qorgan.telemetry.receivers.framing.SyslogStreamDecoder` and hand each read's messages to
:meth:`Intake.write`. When the sender closes its side, what remains (a last line without LF is a
message) is written and only *then* do we close ours: for a sender that half-closes and waits
for our close (``shutdown(SHUT_WR)``, then read until EOF), that close is the one
acknowledgement plain syslog over TCP has. It says everything sent is durable. A write that fails
resets the connection instead (nothing is acknowledged); a sender that does not wait for our
close cannot tell: use RELP where every message must be acknowledged. Over TLS the close says
nothing: asyncio's TLS transport cannot stay half-open and answers the sender's close_notify at
once (what was received is still written, after).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from typing import TYPE_CHECKING, cast

from qorgan.telemetry.receivers import Peer
from qorgan.telemetry.receivers.base import Connection, Limits, StreamListener
from qorgan.telemetry.receivers.framing import SAMPLE_BYTES, Oversize, SyslogStreamDecoder

if TYPE_CHECKING:
    from qorgan.telemetry.receivers import Intake

log = logging.getLogger(__name__)


class SyslogStreamListener(StreamListener):
    """Syslog over TCP, or over TLS when given an :class:`ssl.SSLContext`."""

    protocol = "tcp"
    tls_protocol = "tls"

    async def serve(self, connection: Connection) -> None:
        limits = self.limits
        decoder = SyslogStreamDecoder(
            connection.malformed, max_message=limits.max_message, oversize=limits.oversize
        )
        intake, source, peer = self.intake, connection.source, connection.peer
        # Until the sender's messages are durable, any end of a TCP connection is a reset, even
        # the kernel's when this process dies: a FIN would read as the orderly close below.
        # (TLS closes are no acknowledgement at all: asyncio answers close_notify at once.)
        transport = connection.writer.transport
        sock = (
            None if transport.get_extra_info("ssl_object") else transport.get_extra_info("socket")
        )
        linger(sock, reset=True)
        while True:
            data = await connection.next_chunk()
            if data is None:
                decoder.abort("connection closed by the receiver's shutdown")
                return
            messages = decoder.feed(data) if data else decoder.close()
            if messages:
                await intake.write(source, messages, peer)
            if not data:
                linger(sock, reset=False)
                return  # the sender is done and all it sent is durable: close our side
            if self.stopping:
                decoder.abort("connection closed by the receiver's shutdown")
                return


class SyslogDatagramProtocol(asyncio.DatagramProtocol):
    """One datagram, one message, offered to the intake (see the module doc)."""

    def __init__(self, intake: Intake, limits: Limits) -> None:
        self.intake = intake
        self.limits = limits
        self.transport: asyncio.DatagramTransport | None = None
        #: Datagrams that were empty once their trailing LF/CR/NUL were dropped.
        self.empty = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.DatagramTransport", transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        peer = Peer("udp", str(addr[0]))
        source = self.intake.admit(peer)
        if source is None:
            return  # refused: the intake counted it
        message = data.rstrip(b"\n\r\0")
        if not message:
            self.empty += 1
            return
        limit = self.limits.max_message
        if len(message) > limit:
            truncate = self.limits.oversize is Oversize.truncate
            self.intake.malformed(
                source,
                peer,
                f"oversized message: {len(message)} octets, over the limit of {limit}: "
                + ("truncated" if truncate else "skipped"),
                message[:SAMPLE_BYTES],
            )
            if not truncate:
                return
            message = message[:limit]
        self.intake.offer(source, [message], peer)

    def error_received(self, exc: Exception) -> None:
        log.warning("syslog UDP socket error: %s", exc)


class SyslogUdpListener:
    """A UDP syslog socket with a large receive buffer."""

    protocol = "udp"

    def __init__(
        self, intake: Intake, host: str, port: int, *, limits: Limits | None = None
    ) -> None:
        self.intake = intake
        self.host = host
        self.port = port
        self.limits = limits or Limits()
        self.protocol_object = SyslogDatagramProtocol(intake, self.limits)
        self.receive_buffer = 0  # what the kernel granted (it doubles the request)
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            set_receive_buffer(sock, self.limits.udp_receive_buffer)
            self.receive_buffer = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            sock.bind(address)
            sock.setblocking(False)
            transport, _ = await loop.create_datagram_endpoint(
                lambda: self.protocol_object, sock=sock
            )
        except BaseException:
            sock.close()
            raise
        self._transport = transport
        return int(sock.getsockname()[1])

    async def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


def linger(sock: socket.socket | None, *, reset: bool) -> None:
    """``reset``: closing ``sock`` (also by the kernel, when the process ends) sends a TCP
    reset; otherwise an orderly FIN."""
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1 if reset else 0, 0)
            )


def set_receive_buffer(sock: socket.socket, size: int) -> None:
    """Ask for ``size`` octets of receive buffer: past ``net.core.rmem_max`` when we may
    (SO_RCVBUFFORCE needs CAP_NET_ADMIN), else as much as the kernel allows."""
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    if force is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, force, size)
            return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
