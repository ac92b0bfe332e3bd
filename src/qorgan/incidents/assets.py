"""The register of an organisation's assets and information systems: owner, criticality, the
flag for critical information and communication infrastructure, and the host names and
addresses its alerts carry (so an incident finds its affected assets from its alerts).

Service functions take ``*, session`` and never commit; every change is audited.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import select

from qorgan.core import audit
from qorgan.incidents.lifecycle import IncidentError, NotFound
from qorgan.incidents.models import Asset
from qorgan.incidents.service import check_text

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

KINDS = ("host", "information-system", "network", "application", "database", "other")
MAX_NAMES = 100


def _clean(
    name: str, kind: str, owner: str, criticality: int, names: Iterable[str], description: str
) -> tuple[str, list[str]]:
    check_text(name, kind, owner, description, *names)
    name = name.strip()
    if not name or len(name) > 200:
        raise IncidentError("an asset's name has 1 to 200 characters")
    if kind not in KINDS:
        raise IncidentError(f"unknown asset kind {kind!r}; use one of {', '.join(KINDS)}")
    if len(owner) > 200:
        raise IncidentError("an owner has at most 200 characters")
    if not 1 <= criticality <= 4:
        raise IncidentError("criticality is 1 (low) to 4 (critical)")
    if len(description) > 10_000:
        raise IncidentError("a description has at most 10,000 characters")
    cleaned = list(dict.fromkeys(n.strip().lower() for n in names if n.strip()))
    if len(cleaned) > MAX_NAMES or any(len(n) > 255 for n in cleaned):
        raise IncidentError(f"an asset has at most {MAX_NAMES} host names of 255 characters")
    return name, cleaned


def list_assets(*, session: Session, organisation_id: int) -> list[Asset]:
    return list(
        session.scalars(
            select(Asset).where(Asset.organisation_id == organisation_id).order_by(Asset.name)
        )
    )


def save_asset(
    *,
    session: Session,
    organisation_id: int,
    actor_id: int,
    name: str,
    kind: str = "host",
    owner: str = "",
    criticality: int = 2,
    critical_infrastructure: bool = False,
    names: Iterable[str] = (),
    description: str = "",
    asset_id: int | None = None,
) -> Asset:
    """Add an asset, or change one (``asset_id``) of the organisation's."""
    name, cleaned = _clean(name, kind, owner, criticality, names, description)
    audit.lock(session)
    if asset_id is not None:
        found = session.get(Asset, asset_id)
        if found is None or found.organisation_id != organisation_id:
            raise NotFound("no such asset", source=f"asset {asset_id}")
    clash = session.scalar(
        select(Asset.id).where(Asset.organisation_id == organisation_id, Asset.name == name)
    )
    if clash is not None and clash != asset_id:
        raise IncidentError("an asset with this name exists")
    if asset_id is None:
        asset = Asset(organisation_id=organisation_id)
        session.add(asset)
    else:
        asset = found
    asset.name, asset.kind, asset.owner = name, kind, owner
    asset.criticality, asset.critical_infrastructure = criticality, critical_infrastructure
    asset.names, asset.description = cleaned, description
    session.flush()
    audit.record(
        "asset.save",
        session=session,
        actor=str(actor_id),
        organisation_id=organisation_id,
        target_type="asset",
        target_id=asset.id,
        details={
            "criticality": criticality,
            "critical_infrastructure": critical_infrastructure,
            "created": asset_id is None,
        },
    )
    return asset
