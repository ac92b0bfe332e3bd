"""A registry to decide against: an organisation with two information systems."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import accounts
from qorgan.core.db import unit_of_work
from qorgan.core.models import OrganisationKind
from qorgan.core.settings import Settings
from qorgan.privacy import registry
from qorgan.privacy.models import InformationSystem
from qorgan.privacy.protection import Protection, protection

from .examples import system_in


@dataclass
class Registry:
    factory: sessionmaker[Session]
    keys: Protection
    organisation_id: int
    clinic: InformationSystem
    clinic_token: str
    police: InformationSystem
    police_token: str


@pytest.fixture
def keys(settings: Settings, tmp_path: Path) -> Protection:
    """The service's keys, made in the test's own var folder."""
    return protection(settings.model_copy(update={"var_dir": tmp_path / "var"}))


@pytest.fixture
def privacy_registry(factory: sessionmaker[Session], keys: Protection) -> Iterator[Registry]:
    with unit_of_work(factory) as session:
        organisation = accounts.create_organisation(
            session=session, actor="test", name="Health", kind=OrganisationKind.ministry
        )
        clinic, clinic_token = registry.register(
            session=session,
            protection=keys,
            organisation_id=organisation.id,
            system=system_in("Clinic records"),
            actor="test",
        )
        police, police_token = registry.register(
            session=session,
            protection=keys,
            organisation_id=organisation.id,
            system=system_in(
                "Case management",
                purposes=["pre-trial investigation"],
                legal_bases=["law_enforcement"],
                categories=["general"],
            ),
            actor="test",
        )
        session.expunge_all()
    yield Registry(factory, keys, organisation.id, clinic, clinic_token, police, police_token)
