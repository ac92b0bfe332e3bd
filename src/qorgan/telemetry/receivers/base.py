"""What every stream receiver shares: limits, the listening socket, one task per connection,
the admission of a sender, backpressure, and a clean stop.

A stream receiver (:class:`StreamListener`) implements :meth:`StreamListener.serve`: it gets a
:class:`Connection` whose sender the intake admitted, reads with
:meth:`Connection.next_chunk` (which waits first for :meth:`Intake.ready`: while the intake is
behind we do not read, the socket's buffers fill and the sender's writes block), and hands
messages to :meth:`Intake.write`. An ``OSError`` from the intake (or the socket) ends the
connection with a reset, having acknowledged nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import struct
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from qorgan.telemetry.receivers import Peer
from qorgan.telemetry.receivers.framing import DEFAULT_MAX_MESSAGE, SAMPLE_BYTES, Oversize

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from qorgan.telemetry.receivers import Intake

log = logging.getLogger(__name__)
MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that keep a receiver's memory fixed whatever senders do."""

    #: Longest message (octets); longer ones are truncated or skipped, and reported.
    max_message: int = DEFAULT_MAX_MESSAGE
    oversize: Oversize = Oversize.truncate
    #: Octets asked of the socket per read; one read's messages go to the intake together.
    read_size: int = 256 * 1024
    #: Octets a connection may hold received but unread; past twice this the socket is paused.
    max_buffered: int = 256 * 1024
    #: Open connections per listener; more are closed at once (and counted).
    max_connections: int = 1000
    #: SO_RCVBUF asked for the UDP socket (the kernel doubles it; as root past rmem_max).
    udp_receive_buffer: int = 8 * MiB
    #: Seconds a TLS client has to complete its handshake (it holds a socket meanwhile).
    tls_handshake_timeout: float = 10.0
    #: Seconds a stop waits for connections to finish what they are doing.
    stop_grace: float = 5.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "oversize", Oversize(self.oversize))  # "skip" works too
        for name in ("max_message", "read_size", "max_buffered", "max_connections"):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be at least 1")


def certificate_name(transport: asyncio.BaseTransport) -> str | None:
    """The subject common name of the TLS client certificate, if one was presented."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def peer_address(transport: asyncio.BaseTransport) -> str:
    name = transport.get_extra_info("peername")
    return str(name[0]) if isinstance(name, tuple) else str(name or "")


def reset(transport: asyncio.BaseTransport) -> None:
    """Close with a TCP reset, not a FIN: the sender must not take it for an orderly end
    (after a half-close, our orderly close says its messages are durable)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class Connection:
    """One admitted sender's connection, as seen by :meth:`StreamListener.serve`."""

    __slots__ = ("_listener", "peer", "reader", "source", "writer")

    def __init__(
        self,
        listener: StreamListener,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: Peer,
        source: object,
    ) -> None:
        self._listener = listener
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.source = source

    @property
    def stopping(self) -> bool:
        return self._listener.stopping

    async def next_chunk(self) -> bytes | None:
        """The next octets the sender sent, after the intake is ready for more: ``b""`` at
        the end of the stream, ``None`` when the listener is stopping."""
        listener = self._listener
        if await listener.unless_stopping(listener.intake.ready(self.source)) is None:
            return None
        read = await listener.unless_stopping(self.reader.read(listener.limits.read_size))
        return None if read is None else cast("bytes", read.result())

    def malformed(self, reason: str, sample: bytes) -> None:
        self._listener.intake.malformed(self.source, self.peer, reason, sample[:SAMPLE_BYTES])


class StreamListener(ABC):
    """A TCP (optionally TLS) listener handing each admitted connection to :meth:`serve`."""

    #: ``Peer.protocol`` of senders without TLS (with TLS: ``tls_protocol``).
    protocol: str = "tcp"
    tls_protocol: str = "tls"

    def __init__(
        self,
        intake: Intake,
        host: str,
        port: int,
        *,
        limits: Limits | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.intake = intake
        self.host = host
        self.port = port
        self.limits = limits or Limits()
        self.tls = tls
        self.stopping = False
        #: Connections closed at once because ``max_connections`` were open.
        self.refused_connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop: asyncio.Future[None] | None = None

    @property
    def connections(self) -> int:
        return len(self._tasks)

    async def start(self) -> int:
        """Listen; the bound port (useful with port 0)."""
        self._stop = asyncio.get_running_loop().create_future()
        self._server = await asyncio.start_server(
            self._connected,
            self.host,
            self.port,
            ssl=self.tls,
            limit=self.limits.max_buffered,
            reuse_address=True,
            ssl_handshake_timeout=self.limits.tls_handshake_timeout if self.tls else None,
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening, let each connection finish what it is doing (a write to the intake,
        acknowledgements), then close them; after ``stop_grace`` seconds, cancel the rest and
        reset their connections (what they had read was not acknowledged)."""
        self.stopping = True
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(None)
        if self._server is not None:
            self._server.close()
        tasks = set(self._tasks)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.limits.stop_grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)
        if self._server is not None:
            await self._server.wait_closed()

    async def unless_stopping(self, awaitable: Awaitable[object]) -> asyncio.Future[Any] | None:
        """Run ``awaitable`` to its end (its future) unless the listener stops first (None)."""
        if self.stopping:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            return None
        assert self._stop is not None
        task = asyncio.ensure_future(awaitable)
        try:
            await asyncio.wait((task, self._stop), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # the connection itself cancelled (a stop past its grace)
            task.cancel()
            raise
        if task.done():
            task.result()  # raises what it raised
            return task
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        transport = writer.transport
        if self.stopping or len(self._tasks) >= self.limits.max_connections:
            self.refused_connections += 1
            log.warning(
                "%s listener on port %s: %d connections open, refused one more",
                self.protocol,
                self.port,
                len(self._tasks),
            )
            transport.abort()
            return
        name = certificate_name(transport) if self.tls is not None else None
        protocol = self.tls_protocol if self.tls is not None else self.protocol
        peer = Peer(protocol, peer_address(transport), name)
        source = self.intake.admit(peer)
        if source is None:
            transport.abort()  # the intake counted the refusal
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        connection = Connection(self, reader, writer, peer, source)
        try:
            await self.serve(connection)
        except (OSError, asyncio.IncompleteReadError) as exc:
            log.warning("%s connection from %s reset: %s", protocol, peer.address, exc)
            reset(transport)
        except asyncio.CancelledError:  # a stop past its grace: what was read is not durable
            reset(transport)
            raise
        except Exception:  # a bug must not leave the connection open or go unsaid
            log.exception("%s connection from %s failed", protocol, peer.address)
            reset(transport)
        finally:
            self._tasks.discard(task)
            await close_writer(writer)

    @abstractmethod
    async def serve(self, connection: Connection) -> None:
        """Read the connection to its end (or until :attr:`stopping`); it is closed after."""


async def close_writer(writer: asyncio.StreamWriter, timeout: float = 5.0) -> None:
    """Close our side; a reset when it does not close in time (a TLS peer not reading)."""
    if writer.transport.is_closing():
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), timeout)
        return
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), timeout)
    except (OSError, TimeoutError, ssl.SSLError):
        writer.transport.abort()
