"""RELP receiver (rsyslog's ``omrelp``, librelp), plain or over TLS.

A session: the client's ``open`` is answered with our offers (``relp_version=0``,
``commands=syslog``); its ``syslog`` frames carry one message each; ``close`` is answered and the
connection closed. The client keeps a window of frames sent but not yet acknowledged, so one read
often holds many: we hand all the messages of one read to :meth:`Intake.write` together and, once
it returned (they are durable), send their ``rsp 200 OK`` in order. Responses to other commands
keep their place in that order (frames before them are written and acknowledged first).

When the intake cannot store them (``OSError``), we reset the connection *without* answering: not
with ``500``, because librelp's client forgets a message answered ``500`` (it logs an error and
drops it from its unacknowledged list) while after a broken connection it reconnects and sends
every unacknowledged frame again. Delivery is thus at least once: a write that failed late may
have stored some messages that come again.

A malformed frame (the RELP spec: "the peer that detects the problem closes the connection") is
reported to :meth:`Intake.malformed` and the connection reset. A message over ``max_message`` is
truncated or skipped (reported) and acknowledged, or the client would resend it forever. When we
stop, each session gets the ``serverclose`` hint (TXNR 0) before we close it.
"""

from __future__ import annotations

import logging
from importlib import metadata

from qorgan.telemetry.receivers.base import Connection, StreamListener, reset
from qorgan.telemetry.receivers.framing import (
    SAMPLE_BYTES,
    Oversize,
    RelpDecoder,
    RelpError,
    RelpFrame,
    encode_relp,
    format_offers,
    parse_offers,
)

log = logging.getLogger(__name__)

RELP_VERSION = "0"  # what librelp speaks (its "experimental" version 0; nobody has 1)
OK = b"200 OK"
SERVERCLOSE = encode_relp(0, "serverclose")


def _software() -> str:
    try:
        version = metadata.version("qorgan")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare tree
        version = "0"
    return f"qorgan,{version},"


class RelpListener(StreamListener):
    """RELP over TCP, or over TLS when given an :class:`ssl.SSLContext`."""

    protocol = "relp"
    tls_protocol = "relp"  # over TLS too: the client certificate's name is in Peer.certificate

    async def serve(self, connection: Connection) -> None:
        session = _Session(self, connection)
        while not self.stopping:
            data = await connection.next_chunk()
            if data is None:
                break
            if not data:
                return  # the client went away; what it sent unacknowledged, it sends again
            try:
                frames = session.decoder.feed(data)
            except RelpError as exc:
                connection.malformed(str(exc), data[:SAMPLE_BYTES])
                reset(connection.writer.transport)
                return
            if not await session.handle(frames):
                return
        connection.writer.write(SERVERCLOSE)
        await connection.writer.drain()


class _Session:
    """One connection's RELP state: opened or not, frames to write, answers to send."""

    __slots__ = ("acks", "batch", "connection", "decoder", "listener", "opened", "txnrs")

    def __init__(self, listener: RelpListener, connection: Connection) -> None:
        self.listener = listener
        self.connection = connection
        self.decoder = RelpDecoder(max_data=listener.limits.max_message)
        self.opened = False
        self.batch: list[bytes] = []
        self.txnrs: list[int] = []
        self.acks = bytearray()

    async def handle(self, frames: list[RelpFrame]) -> bool:
        """Act on one read's frames; False once the connection is to be closed."""
        for frame in frames:
            if frame.command == "syslog" and self.opened:
                self._take(frame)
                continue
            await self.flush()
            if frame.command == "open":
                if not self._open(frame):
                    await self.flush()
                    return False
            elif frame.command == "close":
                self.acks += encode_relp(frame.txnr, "rsp", OK)
                await self.flush()
                return False
            elif frame.command == "syslog":
                self.connection.malformed("RELP syslog frame before open", frame.data)
                self.acks += encode_relp(frame.txnr, "rsp", b"500 session not open")
                await self.flush()
                return False
            elif frame.txnr != 0:  # a hint (TXNR 0) gets no answer
                self.acks += encode_relp(frame.txnr, "rsp", b"500 command not supported")
        await self.flush()
        return True

    def _take(self, frame: RelpFrame) -> None:
        self.txnrs.append(frame.txnr)
        if not frame.oversized:
            data = frame.data[:-1] if frame.data.endswith(b"\n") else frame.data
            if data:  # rsyslog's RFC 5424 templates end with LF: dropped, as rsyslog does
                self.batch.append(data)
            return
        limits = self.listener.limits
        truncate = limits.oversize is Oversize.truncate
        self.connection.malformed(
            f"oversized message: {frame.size} octets, over the limit of {limits.max_message}: "
            + ("truncated" if truncate else "skipped"),
            frame.data,
        )
        if truncate:
            self.batch.append(frame.data)

    def _open(self, frame: RelpFrame) -> bool:
        offers = parse_offers(frame.data)
        if "relp_version" not in offers:
            self.acks += encode_relp(frame.txnr, "rsp", b"500 relp_version offer missing")
            return False
        if "syslog" not in offers.get("commands", []):
            self.acks += encode_relp(
                frame.txnr, "rsp", b"500 required command not supported by client"
            )
            return False
        ours = {
            "relp_version": [RELP_VERSION],
            "relp_software": _software().split(","),
            "commands": ["syslog"],
        }
        self.acks += encode_relp(frame.txnr, "rsp", OK + b"\n" + format_offers(ours))
        self.opened = True
        return True

    async def flush(self) -> None:
        """Write the pending messages; once durable, send the answers in order."""
        if self.txnrs:
            if self.batch:
                connection = self.connection
                await self.listener.intake.write(connection.source, self.batch, connection.peer)
                self.batch = []
            for txnr in self.txnrs:
                self.acks += encode_relp(txnr, "rsp", OK)
            self.txnrs.clear()
        if self.acks:
            writer = self.connection.writer
            writer.write(bytes(self.acks))
            self.acks.clear()
            await writer.drain()
