"""The registry of live log sources (services: ``*, session``, no commit) and the collector's
view of it (:class:`Directory`): which registered source a sender is.

A network sender is matched by transport, then by address (the most specific of the sources'
``senders`` networks wins; a source with none takes any address), and over TLS by the common
name of its client certificate when the source names one. An HTTP sender is matched by its
token. Two enabled sources of one transport may not claim the same network and certificate
name: the match would be ambiguous.
"""

from __future__ import annotations

import ipaddress
import secrets
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import audit
from qorgan.core.errors import QorganError
from qorgan.core.security import digest
from qorgan.pipeline.models import LogSource, Overflow, Transport
from qorgan.telemetry.formats import FORMATS
from qorgan.telemetry.receivers import Peer

#: Formats a live source may declare: one message is one record in them.
LIVE_FORMATS = ("syslog", "json", "cef", "accesslog", "apache_error", "auditd")
TOKEN_PREFIX = "qls_"
NAME_MAX = 100


class SourceError(QorganError):
    """A source cannot be registered or changed as asked."""


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What the collector needs to know of a source, immutable so threads can share it."""

    id: int
    organisation_id: int
    name: str
    transport: Transport
    format: str
    timezone: str
    overflow: Overflow
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    certificate_cn: str | None

    @classmethod
    def of(cls, source: LogSource) -> SourceInfo:
        return cls(
            id=source.id,
            organisation_id=source.organisation_id,
            name=source.name,
            transport=Transport(source.transport),
            format=source.format,
            timezone=source.timezone,
            overflow=Overflow(source.overflow),
            networks=tuple(ipaddress.ip_network(n, strict=False) for n in source.senders),
            certificate_cn=source.certificate_cn,
        )

    def takes(self, peer: Peer) -> int:
        """How specifically this source claims ``peer``: -1 not at all, else the prefix
        length of the matching network (0 for a source without networks)."""
        if self.certificate_cn is not None and peer.certificate != self.certificate_cn:
            return -1
        if not self.networks:
            return 0
        try:
            address = ipaddress.ip_address(peer.address.split("%", 1)[0])
        except ValueError:
            return -1
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        best = -1
        for network in self.networks:
            if address.version == network.version and address in network:
                best = max(best, network.prefixlen)
        return best


# --------------------------------------------------------------------------- validation


def _networks(values: Collection[str]) -> list[str]:
    out = []
    for value in values:
        text = value.strip()
        if not text:
            continue
        try:
            out.append(str(ipaddress.ip_network(text, strict=False)))
        except ValueError:
            raise SourceError(f"not an address or network: {text[:60]!r}") from None
    return sorted(set(out))


def _check(
    *,
    name: str,
    format: str,
    timezone: str,
    expected_interval: int,
) -> None:
    if not name.strip() or len(name) > NAME_MAX or any(ord(c) < 32 for c in name):
        raise SourceError(f"a source's name is 1 to {NAME_MAX} printable characters")
    if format not in LIVE_FORMATS or format not in FORMATS:
        known = ", ".join(f for f in LIVE_FORMATS if f in FORMATS)
        raise SourceError(f"unknown live format {format!r}; known: {known}")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SourceError(f"unknown time zone {timezone!r}") from None
    if not 10 <= expected_interval <= 30 * 86400:
        raise SourceError("the expected interval is 10 seconds to 30 days")


def _overlap(session: Session, source: LogSource) -> None:
    """Refuse a source that would claim the same senders as another enabled one."""
    if source.transport is Transport.http or not source.enabled:
        return
    others = session.scalars(
        select(LogSource).where(
            LogSource.transport == source.transport,
            LogSource.enabled.is_(True),
            LogSource.id != (source.id or -1),
        )
    ).all()
    mine = set(source.senders) or {"*"}
    for other in others:
        theirs = set(other.senders) or {"*"}
        if mine & theirs and other.certificate_cn == source.certificate_cn:
            raise SourceError(
                f"source {other.name!r} already takes these senders over {source.transport}; "
                "give each source its own addresses or certificate name"
            )


# --------------------------------------------------------------------------- services


def create_source(
    *,
    session: Session,
    organisation_id: int,
    actor: str,
    name: str,
    transport: Transport | str,
    format: str,
    timezone: str = "Asia/Almaty",
    senders: Collection[str] = (),
    certificate_cn: str | None = None,
    expected_interval: int = 900,
    overflow: Overflow | str = Overflow.wait,
    created_by: int | None = None,
) -> tuple[LogSource, str | None]:
    """Register a source; returns it and, for HTTP, its token (shown once, kept as a digest)."""
    transport = Transport(transport)
    _check(
        name=name,
        format=format,
        timezone=timezone,
        expected_interval=expected_interval,
    )
    if session.scalar(
        select(LogSource.id).where(
            LogSource.organisation_id == organisation_id, LogSource.name == name.strip()
        )
    ):
        raise SourceError(f"the organisation already has a source named {name.strip()!r}")
    token = None
    source = LogSource(
        organisation_id=organisation_id,
        name=name.strip(),
        transport=transport,
        format=format,
        timezone=timezone,
        senders=_networks(senders),
        certificate_cn=(certificate_cn or "").strip() or None,
        expected_interval=expected_interval,
        overflow=Overflow(overflow),
        enabled=True,
        created_by=created_by,
    )
    if transport is Transport.http:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        source.token_hash = digest(token)
    _overlap(session, source)
    session.add(source)
    session.flush()
    audit.record(
        "source.create",
        session=session,
        actor=actor,
        organisation_id=organisation_id,
        target_type="log_source",
        target_id=source.id,
        details={"name": source.name, "transport": transport.value, "format": format},
    )
    return source, token


def rotate_token(*, session: Session, source: LogSource, actor: str) -> str:
    """A new HTTP token for ``source``; the old one stops working at once."""
    if source.transport is not Transport.http:
        raise SourceError("only HTTP sources have tokens")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    source.token_hash = digest(token)
    audit.record(
        "source.rotate_token",
        session=session,
        actor=actor,
        organisation_id=source.organisation_id,
        target_type="log_source",
        target_id=source.id,
    )
    return token


EDITABLE = ("format", "timezone", "senders", "certificate_cn", "expected_interval", "overflow")


def edit_source(
    *, session: Session, source: LogSource, actor: str, **changes: Any
) -> dict[str, Any]:
    """Change what :data:`EDITABLE` names, and ``enabled``; returns what changed."""
    values = {k: v for k, v in changes.items() if k in (*EDITABLE, "enabled")}
    if "senders" in values:
        values["senders"] = _networks(values["senders"])
    if "overflow" in values:
        values["overflow"] = Overflow(values["overflow"])
    if "certificate_cn" in values:
        values["certificate_cn"] = (values["certificate_cn"] or "").strip() or None
    _check(
        name=source.name,
        format=values.get("format", source.format),
        timezone=values.get("timezone", source.timezone),
        expected_interval=values.get("expected_interval", source.expected_interval),
    )
    changed = {k: v for k, v in values.items() if getattr(source, k) != v}
    for key, value in changed.items():
        setattr(source, key, value)
    _overlap(session, source)
    if changed:
        audit.record(
            "source.edit",
            session=session,
            actor=actor,
            organisation_id=source.organisation_id,
            target_type="log_source",
            target_id=source.id,
            details={k: str(v) for k, v in changed.items()},
        )
    return changed


def list_sources(*, session: Session, organisation_ids: Collection[int]) -> list[LogSource]:
    return list(
        session.scalars(
            select(LogSource)
            .where(LogSource.organisation_id.in_(list(organisation_ids)))
            .order_by(LogSource.organisation_id, LogSource.name)
        )
    )


def source_by_token(*, session: Session, token: str) -> LogSource | None:
    """The enabled HTTP source whose token this is."""
    return session.scalar(
        select(LogSource).where(
            LogSource.token_hash == digest(token),
            LogSource.enabled.is_(True),
            LogSource.transport == Transport.http,
        )
    )


def all_sources(*, session: Session) -> list[LogSource]:
    """Every organisation's sources (the command line's view)."""
    return list(session.scalars(select(LogSource).order_by(LogSource.id)))


def get_source(
    *, session: Session, organisation_ids: Collection[int], source_id: int
) -> LogSource | None:
    """The source, if it belongs to one of ``organisation_ids`` (another's is not found)."""
    source = session.get(LogSource, source_id)
    if source is None or source.organisation_id not in organisation_ids:
        return None
    return source


# --------------------------------------------------------------------------- the directory


class Directory:
    """The sources, as the collector matches senders against the enabled ones (and detection
    reads what any of them sent, also after it was disabled); reloaded from the
    database at most every ``refresh`` seconds (a change in the console reaches a running
    collector within that)."""

    def __init__(self, factory: sessionmaker[Session], *, refresh: float = 5.0) -> None:
        self.factory = factory
        self.refresh = refresh
        self._lock = threading.Lock()
        self._loaded = 0.0
        self._by_transport: dict[Transport, list[SourceInfo]] = {}
        self._by_token: dict[str, SourceInfo] = {}
        self._by_id: dict[int, SourceInfo] = {}

    def reload(self) -> None:
        with self.factory() as session:
            rows = session.scalars(select(LogSource)).all()
            infos = [(SourceInfo.of(s), s.token_hash, s.enabled) for s in rows]
        by_transport: dict[Transport, list[SourceInfo]] = {}
        by_token = {}
        for info, token_hash, enabled in infos:
            if not enabled:
                continue
            by_transport.setdefault(info.transport, []).append(info)
            if token_hash:
                by_token[token_hash] = info
        with self._lock:
            self._by_transport = by_transport
            self._by_token = by_token
            self._by_id = {info.id: info for info, _, _ in infos}
            self._loaded = time.monotonic()

    def _fresh(self) -> None:
        if time.monotonic() - self._loaded > self.refresh:
            self.reload()

    def match(self, peer: Peer) -> SourceInfo | None:
        """The source ``peer`` sends for: the most specific claim (see the module doc)."""
        self._fresh()
        transport = Transport(peer.protocol)
        best, best_score = None, -1
        for info in self._by_transport.get(transport, ()):
            score = info.takes(peer)
            if score > best_score:
                best, best_score = info, score
        return best

    def by_token(self, token: str) -> SourceInfo | None:
        self._fresh()
        return self._by_token.get(digest(token)) if token else None

    def get(self, source_id: int) -> SourceInfo | None:
        self._fresh()
        found = self._by_id.get(source_id)
        if found is None:  # created since the last load
            self.reload()
            found = self._by_id.get(source_id)
        return found
