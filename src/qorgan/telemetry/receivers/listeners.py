"""Starting and stopping a configured set of receivers on one event loop.

receivers = Receivers(intake, [Listen("udp", "0.0.0.0", 514), Listen("relp", "::", 2514)])
ports = await receivers.start()      # {"udp 0.0.0.0:514": 514, ...}: port 0 binds any
...
await receivers.stop()               # RELP sessions get serverclose; writes finish first
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from qorgan.telemetry.errors import TelemetryError
from qorgan.telemetry.receivers.base import Limits, StreamListener
from qorgan.telemetry.receivers.relp import RelpListener
from qorgan.telemetry.receivers.syslog import SyslogStreamListener, SyslogUdpListener

if TYPE_CHECKING:
    from collections.abc import Sequence

    from qorgan.telemetry.receivers import Intake

Kind = Literal["udp", "tcp", "tls", "relp"]


@dataclass(frozen=True, slots=True)
class Listen:
    """One listener: syslog over ``udp``, ``tcp`` or ``tls`` (``tls`` context required), or
    ``relp`` (over TLS when given a ``tls`` context)."""

    kind: Kind
    host: str
    port: int
    tls: ssl.SSLContext | None = None

    @property
    def name(self) -> str:
        secure = "+tls" if self.kind == "relp" and self.tls is not None else ""
        return f"{self.kind}{secure} {self.host}:{self.port}"


class Receivers:
    """The listeners of ``listen``, all handing to ``intake``."""

    def __init__(
        self, intake: Intake, listen: Sequence[Listen], *, limits: Limits | None = None
    ) -> None:
        self.intake = intake
        self.limits = limits or Limits()
        self.listeners: dict[str, StreamListener | SyslogUdpListener] = {}
        for item in listen:
            if item.name in self.listeners:
                raise TelemetryError(f"listener {item.name} is configured twice")
            self.listeners[item.name] = self._make(item)

    def _make(self, item: Listen) -> StreamListener | SyslogUdpListener:
        limits = self.limits
        if item.kind == "udp":
            if item.tls is not None:
                raise TelemetryError(f"{item.name}: syslog over UDP has no TLS (use tls or relp)")
            return SyslogUdpListener(self.intake, item.host, item.port, limits=limits)
        if item.kind == "tcp":
            if item.tls is not None:
                raise TelemetryError(f"{item.name}: a TLS listener is of kind tls")
            return SyslogStreamListener(self.intake, item.host, item.port, limits=limits)
        if item.kind == "tls":
            if item.tls is None:
                raise TelemetryError(f"{item.name}: a tls listener needs a TLS context")
            return SyslogStreamListener(
                self.intake, item.host, item.port, limits=limits, tls=item.tls
            )
        if item.kind == "relp":
            return RelpListener(self.intake, item.host, item.port, limits=limits, tls=item.tls)
        raise TelemetryError(f"unknown listener kind {item.kind!r}")

    async def start(self) -> dict[str, int]:
        """Start every listener (on the running loop); the port each is bound to, by name.
        On a failure the ones already started are stopped, and the error raised."""
        ports: dict[str, int] = {}
        try:
            for name, listener in self.listeners.items():
                try:
                    ports[name] = await listener.start()
                except OSError as exc:
                    raise TelemetryError(f"cannot listen on {name}: {exc}") from exc
        except BaseException:
            await self.stop()
            raise
        return ports

    async def stop(self) -> None:
        """Stop every listener: no new connections; each open one finishes its current write
        and acknowledgements within ``Limits.stop_grace`` seconds, then is closed."""
        await asyncio.gather(*(listener.stop() for listener in self.listeners.values()))

    async def __aenter__(self) -> dict[str, int]:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
