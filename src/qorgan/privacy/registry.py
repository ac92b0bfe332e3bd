"""The registry of information systems: who owns and operates each (names and BINs, checked),
who is responsible and how to reach them (encrypted), which categories of data it holds, and
for which purposes and under which legal bases it may ask for a subject's data. Each system
gets a token of its own for the decision API; only the token's SHA-256 is kept.

Service functions take ``*, session`` and never commit; every change is in the audit trail.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from qorgan.core import audit
from qorgan.core.errors import QorganError
from qorgan.core.identifiers import IdentifierError, parse_bin
from qorgan.core.security import digest
from qorgan.privacy.models import DataCategory, InformationSystem, LegalBasis
from qorgan.privacy.protection import Protection

#: What a system token starts with, so a leaked one is recognisable (secret scanners).
TOKEN_PREFIX = "qps_"
MAX_PURPOSES = 50
PURPOSE_MAX = 200


class RegistryError(QorganError):
    """A registry change was refused; the message is fit for the user."""


@dataclass(frozen=True)
class SystemIn:
    name: str
    owner_name: str
    owner_bin: str
    operator_name: str
    operator_bin: str
    responsible_person: str
    contacts: str
    categories: Sequence[str]
    purposes: Sequence[str]
    legal_bases: Sequence[str]


def _bin(value: str, what: str) -> str:
    try:
        return parse_bin(value).value
    except IdentifierError as exc:
        raise RegistryError(f"{what}: {exc}") from exc


def _choices(values: Sequence[str], allowed: type[DataCategory] | type[LegalBasis], what: str):
    out: list[str] = []
    for value in values:
        try:
            member = allowed(value).value
        except ValueError:
            choices = ", ".join(m.value for m in allowed)
            raise RegistryError(f"unknown {what} {value!r}; one of {choices}") from None
        if member not in out:
            out.append(member)
    if not out:
        raise RegistryError(f"name at least one {what}")
    return out


def _purposes(values: Sequence[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        value = " ".join(value.split())
        if not value or len(value) > PURPOSE_MAX:
            raise RegistryError(f"a purpose has 1 to {PURPOSE_MAX} characters")
        if value not in out:
            out.append(value)
    if not out or len(out) > MAX_PURPOSES:
        raise RegistryError(f"name 1 to {MAX_PURPOSES} purposes")
    return out


def register(
    *,
    session: Session,
    protection: Protection,
    organisation_id: int,
    system: SystemIn,
    actor: str,
    created_by: int | None = None,
) -> tuple[InformationSystem, str]:
    """Register ``system`` for the organisation; returns it and its token (shown once)."""
    name = " ".join(system.name.split())
    if not name:
        raise RegistryError("a system needs a name")
    exists = session.scalar(
        select(InformationSystem.id).where(
            InformationSystem.organisation_id == organisation_id,
            InformationSystem.name == name,
        )
    )
    if exists is not None:
        raise RegistryError(f"the organisation already has a system named {name!r}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = InformationSystem(
        organisation_id=organisation_id,
        name=name,
        owner_name=system.owner_name.strip(),
        owner_bin=_bin(system.owner_bin, "owner's BIN"),
        operator_name=system.operator_name.strip(),
        operator_bin=_bin(system.operator_bin, "operator's BIN"),
        responsible_person=system.responsible_person.strip(),
        contacts=protection.encrypt(system.contacts.strip()),
        categories=_choices(system.categories, DataCategory, "data category"),
        purposes=_purposes(system.purposes),
        legal_bases=_choices(system.legal_bases, LegalBasis, "legal basis"),
        token_hash=digest(token),
        created_by=created_by,
    )
    if not (row.owner_name and row.operator_name and row.responsible_person):
        raise RegistryError("owner, operator and responsible person are required")
    session.add(row)
    session.flush()
    audit.record(
        "privacy.system_register",
        session=session,
        actor=actor,
        organisation_id=organisation_id,
        target_type="privacy_system",
        target_id=row.id,
        details={"name": name},
    )
    return row, token


def rotate_token(*, session: Session, system: InformationSystem, actor: str) -> str:
    """A new token for ``system``; the old one stops working at once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    system.token_hash = digest(token)
    audit.record(
        "privacy.system_token",
        session=session,
        actor=actor,
        organisation_id=system.organisation_id,
        target_type="privacy_system",
        target_id=system.id,
    )
    return token


def system_by_token(*, session: Session, token: str) -> InformationSystem | None:
    """The enabled system whose token this is."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    return session.scalar(
        select(InformationSystem).where(
            InformationSystem.token_hash == digest(token),
            InformationSystem.enabled.is_(True),
        )
    )


def systems_by_tokens(*, session: Session, tokens: Collection[str]) -> dict[str, InformationSystem]:
    """The enabled systems whose tokens these are, by token, in one query."""
    hashes = {digest(t): t for t in tokens if t.startswith(TOKEN_PREFIX)}
    if not hashes:
        return {}
    found = session.scalars(
        select(InformationSystem).where(
            InformationSystem.token_hash.in_(list(hashes)), InformationSystem.enabled.is_(True)
        )
    )
    return {hashes[system.token_hash]: system for system in found}


def list_systems(*, session: Session, organisation_ids: Collection[int]) -> list[InformationSystem]:
    return list(
        session.scalars(
            select(InformationSystem)
            .where(InformationSystem.organisation_id.in_(list(organisation_ids)))
            .order_by(InformationSystem.organisation_id, InformationSystem.name)
        )
    )


def get_system(
    *, session: Session, organisation_ids: Collection[int], system_id: int
) -> InformationSystem | None:
    """The system, or None when the organisations have none with that id."""
    row = session.get(InformationSystem, system_id)
    if row is None or row.organisation_id not in set(organisation_ids):
        return None
    return row
