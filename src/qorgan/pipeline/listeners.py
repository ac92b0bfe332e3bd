"""The collector's listeners as the settings name them, started on the receivers' loop."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qorgan.core.settings import Settings
from qorgan.telemetry.receivers import Intake


def _address(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class ListenerConfig:
    udp: tuple[str, int] | None = None
    tcp: tuple[str, int] | None = None
    relp: tuple[str, int] | None = None
    tls: tuple[str, int] | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    tls_client: str = "optional"

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
        )


class Receivers:
    """The running listeners (placeholder until the receivers land)."""

    def __init__(self) -> None:
        self.ports: dict[str, int] = {}

    @classmethod
    async def start(cls, intake: Intake, config: ListenerConfig) -> Receivers:
        return cls()

    async def close(self) -> None:
        return None


def receive_errors() -> int:
    return 0
