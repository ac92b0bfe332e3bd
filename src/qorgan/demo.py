"""The demonstration set-up behind ``make run``: a demo organisation with one user per console
role (passwords generated and printed once), a second organisation to show that tenants are
kept apart, a bank whose partner account exchanges intel with them in the KZ-CERT
constituency (a collection of indicators under TLP:GREEN), and example alerts from a real hunt
over the shipped example logs."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import accounts, security
from qorgan.core.db import unit_of_work
from qorgan.core.models import Organisation, OrganisationKind, Role, User
from qorgan.pipeline import hunts
from qorgan.pipeline.models import Hunt, HuntSource
from qorgan.telemetry.options import DEFAULT_OPTIONS, ReadOptions

DEMO_ORGANISATION = "Almaty akimat (demo)"
OTHER_ORGANISATION = "KZ-CERT (demo)"
PARTNER_ORGANISATION = "Turan Bank (demo)"
DEMO_DOMAIN = "demo.qorgan.kz"
DEMO_USERS = (
    ("admin", "Demo Administrator", Role.administrator, DEMO_ORGANISATION),
    ("analyst", "Demo SOC Analyst", Role.soc_analyst, DEMO_ORGANISATION),
    ("auditor", "Demo Auditor", Role.auditor, DEMO_ORGANISATION),
    ("coordinator", "Demo CERT Coordinator", Role.cert_coordinator, OTHER_ORGANISATION),
    ("partner", "Demo Bank Partner", Role.partner, PARTNER_ORGANISATION),
)
#: The demo constituency's indicators (KZ-CERT's, TLP:GREEN): addresses that the example
#: access log holds, so `qorgan intel indicators` and a hunt show them matching.
DEMO_INDICATORS = (
    ("ipv4-addr", "198.51.100.23", "Scanner seen probing akimat web portals"),
    ("ipv4-addr", "203.0.113.45", "Source of credential-stuffing attempts"),
    ("domain-name", "evil-c2.example", "Command-and-control domain of a phishing campaign"),
)
ACTOR = "system:demo"
#: The model the demo leaves for a person to approve (see :func:`_demo_models`).
LINE_MODEL = "qorgan-line-rarity"


@dataclass(frozen=True, slots=True)
class DemoAccount:
    email: str
    role: Role
    organisation: str
    password: str


def create_demo(factory: sessionmaker[Session]) -> list[DemoAccount] | None:
    """Create the demo organisations and users; None when they exist already (passwords are
    never printed twice)."""
    with unit_of_work(factory) as session:
        if session.scalar(select(Organisation.id).where(Organisation.name == DEMO_ORGANISATION)):
            return None
        organisations = {
            DEMO_ORGANISATION: accounts.create_organisation(
                session=session, actor=ACTOR, name=DEMO_ORGANISATION, kind=OrganisationKind.akimat
            ),
            OTHER_ORGANISATION: accounts.create_organisation(
                session=session, actor=ACTOR, name=OTHER_ORGANISATION, kind=OrganisationKind.cert
            ),
            PARTNER_ORGANISATION: accounts.create_organisation(
                session=session, actor=ACTOR, name=PARTNER_ORGANISATION, kind=OrganisationKind.bank
            ),
        }
        created = []
        for local, name, role, organisation in DEMO_USERS:
            password = security.generate_password()
            email = f"{local}@{DEMO_DOMAIN}"
            accounts.create_user(
                session=session,
                actor=ACTOR,
                organisation_id=organisations[organisation].id,
                email=email,
                display_name=name,
                role=role,
                password=password,
            )
            created.append(DemoAccount(email, role, organisation, password))
        _demo_intel(session, {name: org.id for name, org in organisations.items()})
        _demo_models(session, organisations[DEMO_ORGANISATION].id)
        return created


def _demo_models(session: Session, organisation_id: int) -> None:
    """The akimat's register holds the default anomaly models, approved by its administrator,
    so live monitoring runs them on what the demo receives; all but the line model, which
    proposes about one line in fifty of a live source (docs/anomaly.md)."""
    from qorgan.incidents import findings
    from qorgan.pipeline.anomaly import register_default_models

    register_default_models(session, organisation_id, ACTOR)
    admin = session.scalar(select(User.id).where(User.email == f"admin@{DEMO_DOMAIN}"))
    assert admin is not None
    for model in findings.list_models(session, organisation_id):
        if model.name == LINE_MODEL:
            continue
        findings.approve_model(
            session,
            organisation_id=organisation_id,
            name=model.name,
            version=model.version,
            approver=admin,
            actor=ACTOR,
        )


def _demo_intel(session: Session, organisations: dict[str, int]) -> None:
    """The KZ-CERT constituency of the three organisations, and KZ-CERT's GREEN indicators."""
    from datetime import UTC, datetime, timedelta

    from qorgan.core.tlp import Tlp
    from qorgan.intel import store
    from qorgan.intel.patterns import Observable, indicator
    from qorgan.web.intel_exchange import identity_id

    root = store.create_api_root(
        session=session, slug="kz-cert", title="KZ-CERT constituency (demo)"
    )
    for organisation_id in organisations.values():
        store.add_member(session=session, api_root=root, organisation_id=organisation_id)
    cert = organisations[OTHER_ORGANISATION]
    collection = store.create_collection(
        session=session,
        actor=ACTOR,
        api_root=root,
        owner_id=cert,
        title="KZ-CERT indicators (demo)",
        description="Indicators KZ-CERT shares with its constituency.",
        redaction_policy="green",
        default_tlp=Tlp.green,
    )
    for name, organisation_id in organisations.items():
        if organisation_id != cert:
            store.grant(
                session=session,
                collection=collection,
                organisation_id=organisation_id,
                can_read=True,
                can_write=name == PARTNER_ORGANISATION,
            )
    now = datetime.now(UTC)
    objects = [
        {
            **indicator(
                Observable.of(kind, value),
                created_by_ref=identity_id(cert),
                confidence=80,
                valid_from=now - timedelta(days=1),
                valid_until=now + timedelta(days=90),
                tlp=Tlp.green,
            ),
            "description": description,
        }
        for kind, value, description in DEMO_INDICATORS
    ]
    store.add_objects(objects, session=session, collection=collection, sender_id=cert, actor=ACTOR)


def load_examples(
    factory: sessionmaker[Session],
    examples: Path,
    hunt_root: Path,
    *,
    options: ReadOptions = DEFAULT_OPTIONS,
) -> Hunt:
    """Copy the example logs into the demo organisation's hunt folder
    (``<hunt root>/<its id>/examples``) and hunt them into its inbox, reading them with
    ``options`` as the console's hunts do (alerts already loaded are not loaded twice)."""
    with unit_of_work(factory) as session:
        organisation_id = session.scalar(
            select(Organisation.id).where(Organisation.name == DEMO_ORGANISATION)
        )
        assert organisation_id is not None, "create the demo organisation first"
    target = hunts.hunt_folder(hunt_root, organisation_id) / "examples"
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(examples.iterdir()):
        if path.is_file():
            shutil.copy2(path, target / path.name)
    with unit_of_work(factory) as session:
        hunt = hunts.create_hunt(
            session=session,
            organisation_id=organisation_id,
            user_id=None,
            paths=[target],
            source=HuntSource.server,
        )
        hunt_id = hunt.id
    hunts.execute(
        hunt_id, factory=factory, plan=hunts.default_plan, options=options, hunt_root=hunt_root
    )
    with unit_of_work(factory) as session:
        finished = session.get(Hunt, hunt_id)
        assert finished is not None
        session.expunge(finished)
        return finished
