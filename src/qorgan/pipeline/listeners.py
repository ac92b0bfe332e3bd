"""The collector's listeners as the settings name them, started on the receivers' loop."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qorgan.core.settings import Settings
from qorgan.telemetry.errors import TelemetryError
from qorgan.telemetry.receivers import Intake
from qorgan.telemetry.receivers.listeners import Listen
from qorgan.telemetry.receivers.listeners import Receivers as Listeners
from qorgan.telemetry.receivers.tls import server_context
from qorgan.telemetry.receivers.udp_stats import udp_counters


def _address(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class ListenerConfig:
    """Where each listener binds (``None``: off); TLS files for the ``tls`` listener (and RELP
    over TLS when ``relp_tls``)."""

    udp: tuple[str, int] | None = None
    tcp: tuple[str, int] | None = None
    relp: tuple[str, int] | None = None
    tls: tuple[str, int] | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    tls_client: str = "optional"
    relp_tls: bool = False

    @classmethod
    def of(cls, settings: Settings) -> ListenerConfig:
        return cls(
            udp=_address(settings.collect_udp),
            tcp=_address(settings.collect_tcp),
            relp=_address(settings.collect_relp),
            tls=_address(settings.collect_tls),
            tls_cert=settings.collect_tls_cert,
            tls_key=settings.collect_tls_key,
            tls_ca=settings.collect_tls_ca,
            tls_client=settings.collect_tls_client,
            relp_tls=settings.collect_relp_tls,
        )

    def listen(self) -> list[Listen]:
        context = None
        if self.tls is not None or self.relp_tls:
            if self.tls_cert is None or self.tls_key is None:
                raise TelemetryError("a TLS listener needs QORGAN_COLLECT_TLS_CERT and _KEY")
            context = server_context(
                self.tls_cert,
                self.tls_key,
                ca=self.tls_ca,
                client_certificates=self.tls_client if self.tls_ca else "none",
            )
        out = []
        for kind in ("udp", "tcp", "tls", "relp"):
            address = getattr(self, kind)
            if address is not None:
                tls = context if kind == "tls" or (kind == "relp" and self.relp_tls) else None
                out.append(Listen(kind, address[0], address[1], tls))  # type: ignore[arg-type]
        return out


class Receivers:
    """The running listeners; :attr:`ports` by kind (``udp``, ``tcp``, ``tls``, ``relp``)."""

    def __init__(self, listeners: Listeners, ports: dict[str, int]) -> None:
        self.listeners = listeners
        self.ports = {
            name.split(" ", 1)[0].removesuffix("+tls"): port for name, port in ports.items()
        }

    @classmethod
    async def start(cls, intake: Intake, config: ListenerConfig) -> Receivers:
        listeners = Listeners(intake, config.listen())
        return cls(listeners, await listeners.start())

    async def close(self) -> None:
        await self.listeners.stop()


def receive_errors() -> int:
    """The kernel's UDP receive-buffer drops since boot (IPv4 and IPv6)."""
    counters = udp_counters()
    return counters.get("RcvbufErrors", 0) + counters.get("Udp6RcvbufErrors", 0)
