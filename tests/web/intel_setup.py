"""A constituency for the intel pages' tests: organisations A and B of the ``world`` are members
of the API root ``kz-cert``; B owns a GREEN collection under the GREEN redaction policy that A
may read and write, holding one GREEN and one AMBER+STRICT indicator of B's; B has an incident
whose description and observables hold personal data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from privacy.examples import iin
from qorgan.core.db import unit_of_work
from qorgan.core.tlp import Tlp
from qorgan.core.workdays import default_calendar
from qorgan.incidents import service
from qorgan.intel import patterns, store
from qorgan.web.intel_exchange import identity_id

from .conftest import World

IIN = iin(date(1988, 4, 12))
PHONE = "+7 701 234 56 78"
EMAIL = "asel.nurlanova@mail.kz"
PERSON = "Асель Нурланова"
DESCRIPTION = (
    f"Фишинговое письмо получила {PERSON} (ИИН {IIN}), тел. {PHONE}, почта {EMAIL}. "
    "The payload called back to evil-c2.example."
)


@dataclass
class Exchange:
    root: str
    shared: str  # B's GREEN collection, A reads and writes
    private: str  # B's collection, A reads only
    green: str  # a GREEN indicator of B's in ``shared``
    strict: str  # an AMBER+STRICT indicator of B's in ``shared``
    incident: int  # B's incident, with personal data


def setup_exchange(world: World) -> Exchange:
    a, b = world["a.partner"].organisation_id, world["b.analyst"].organisation_id
    with unit_of_work(world.factory) as session:
        root = store.create_api_root(session=session, slug="kz-cert", title="KZ-CERT")
        for org in (a, b):
            store.add_member(session=session, api_root=root, organisation_id=org)
        shared = store.create_collection(
            session=session, actor="test", api_root=root, owner_id=b, title="B to the community",
            redaction_policy="green", default_tlp=Tlp.green,
        )  # fmt: skip
        store.grant(session=session, collection=shared, organisation_id=a, can_read=True,
                    can_write=True)  # fmt: skip
        private = store.create_collection(
            session=session, actor="test", api_root=root, owner_id=b, title="B read-only",
        )  # fmt: skip
        store.grant(session=session, collection=private, organisation_id=a, can_read=True,
                    can_write=False)  # fmt: skip
        when = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
        made = [
            patterns.indicator(
                patterns.Observable.of("domain-name", domain),
                created_by_ref=identity_id(b),
                confidence=70,
                valid_from=when,
                tlp=level,
            )
            for domain, level in (
                ("green-shared.example", Tlp.green),
                ("strict-secret.example", Tlp.amber_strict),
            )
        ]
        store.add_objects(made, session=session, collection=shared, sender_id=b, actor="test")
        incident, _ = service.create(
            session=session,
            organisation_id=b,
            actor_id=world["b.analyst"].id,
            draft=service.Draft(title="Phishing at B", description=DESCRIPTION),
            calendar=default_calendar(),
        )
        incident.tlp, incident.pap, incident.severity = "green", "green", 3
        for kind, value in (
            ("ip", "203.0.113.9"),
            ("domain", "evil-c2.example"),
            ("email", EMAIL),
            ("hash", "a" * 64),
            ("account", "asel.n"),
        ):
            service.add_observable(
                session=session, organisation_id=b, incident_id=incident.id,
                actor_id=world["b.analyst"].id, kind=kind, value=value,
            )  # fmt: skip
        return Exchange(
            root="kz-cert",
            shared=shared.taxii_id,
            private=private.taxii_id,
            green=made[0]["id"],
            strict=made[1]["id"],
            incident=incident.id,
        )
