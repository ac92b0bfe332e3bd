"""Receivers: network listeners that take log messages from senders (syslog over UDP, TCP and
TLS, RELP; HTTP ingest lives in the web layer) and hand them to an :class:`Intake`.

A receiver knows framing and protocols, nothing of storage: it asks the intake which source a
sender is (:meth:`Intake.admit`), waits while the intake is over its backlog
(:meth:`Intake.ready`: TCP and RELP stop reading, so senders slow down), and hands messages
over with :meth:`Intake.write`, which returns once they are durable: only then does RELP
acknowledge them, and a TCP connection that the sender ends is closed by us only after what it
sent is durable. UDP has no acknowledgement: :meth:`Intake.offer` queues without waiting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Peer:
    """Who sends: the protocol it reached us by, its address, and, over TLS, the subject
    common name of the client certificate it presented (``None`` without one)."""

    protocol: str  # "udp", "tcp", "tls", "relp", "http"
    address: str
    certificate: str | None = None


class Intake(Protocol):
    """Where receivers hand messages (implemented by :mod:`qorgan.pipeline.intake`)."""

    def admit(self, peer: Peer) -> object | None:
        """The source ``peer`` sends for (an opaque handle), or ``None`` when no registered
        source takes it: the receiver then refuses (closes the connection, drops the datagram)
        and the intake has counted the refusal."""

    async def ready(self, source: object) -> None:
        """Return when the intake can take more from ``source`` (at once unless detection is
        behind past its limit)."""

    async def write(self, source: object, messages: list[bytes], peer: Peer) -> None:
        """Store ``messages`` (without their framing); return once durable. Raises ``OSError``
        when they could not be stored (the receiver must not acknowledge them)."""

    def offer(self, source: object, messages: list[bytes], peer: Peer) -> None:
        """Queue ``messages`` without waiting (UDP)."""

    def malformed(self, source: object | None, peer: Peer, reason: str, sample: bytes) -> None:
        """Count and quarantine a frame that could not be read (bad octet count, oversized)."""
