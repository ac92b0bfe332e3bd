"""TLP through the TAXII server, for every level and every pair of organisations: five
organisations with every relation the rule distinguishes (same organisation, client, community
member, named RED recipient, outsider) each add one object per TLP level and one unmarked over
HTTP; each then reads the collection, and receives exactly what
:func:`qorgan.intel.markings.may_receive` allows, no more and no less. An object a reader may
not receive answers like one that does not exist, on every endpoint that names objects."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import accounts
from qorgan.core.db import unit_of_work
from qorgan.core.models import OrganisationKind, Role, User
from qorgan.core.settings import Settings
from qorgan.core.tlp import Tlp
from qorgan.intel import store
from qorgan.intel.markings import Audience, mark, may_receive
from qorgan.web.app import create_app

from .conftest import password_hash

ORGS = "abcde"
#: (sender, reader) pairs by relation; the community is the constituency's members.
CLIENTS = {("a", "b"), ("c", "e"), ("b", "a")}
NAMED = {("a", "d"), ("d", "e"), ("b", "c")}
MEMBERS = set("acd")
TAXII = "application/taxii+json;version=2.1"


def relation(sender: str, reader: str) -> str:
    if sender == reader:
        return "same organisation"
    kinds = [
        name
        for name, present in (
            ("client", (sender, reader) in CLIENTS),
            ("named", (sender, reader) in NAMED),
            ("community", reader in MEMBERS),
        )
        if present
    ]
    return "+".join(kinds) or "outsider"


@pytest.fixture
def tlp_world(
    web_settings: Settings, factory: sessionmaker[Session]
) -> Iterator[tuple[TestClient, dict[str, str], dict[str, int], str]]:
    tokens: dict[str, str] = {}
    with unit_of_work(factory) as session:
        orgs = {}
        for name in ORGS:
            org = accounts.create_organisation(
                session=session, actor="t", name=f"Org {name}", kind=OrganisationKind.soc
            )
            orgs[name] = org.id
            user = User(
                organisation_id=org.id, email=f"p@{name}.kz", display_name=name,
                password_hash=password_hash(), role=Role.partner, language="en",
            )  # fmt: skip
            session.add(user)
            session.flush()
            tokens[name] = accounts.issue_token(
                session=session, user=user, name="t", scopes=["intel:*"],
                lifetime=timedelta(days=1),
            )  # fmt: skip
        root = store.create_api_root(session=session, slug="kz-cert", title="KZ-CERT")
        for name in MEMBERS:
            store.add_member(session=session, api_root=root, organisation_id=orgs[name])
        for sender, client in CLIENTS:
            store.add_client(session=session, organisation_id=orgs[sender], client_id=orgs[client])
        for sender, named in NAMED:
            store.name_red_recipient(
                session=session, sender_id=orgs[sender], recipient_id=orgs[named]
            )
        collection = store.create_collection(
            session=session, actor="t", api_root=root, owner_id=orgs["a"], title="All"
        )
        for name in ORGS[1:]:
            store.grant(
                session=session, collection=collection, organisation_id=orgs[name],
                can_read=True, can_write=True,
            )  # fmt: skip
        collection_id = collection.taxii_id
    app = create_app(web_settings, start_runner=False, start_notifier=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client, tokens, orgs, collection_id


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": TAXII, "Content-Type": TAXII}


def _object(sender: str, level: Tlp | None) -> dict[str, Any]:
    obj = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.uuid4()}",
        "created": "2026-05-01T00:00:00.000Z",
        "modified": "2026-05-01T00:00:00.000Z",
        "name": f"from {sender}, {level.value if level else 'unmarked'}",
        "pattern": "[domain-name:value = 'bad.example']",
        "pattern_type": "stix",
        "valid_from": "2026-05-01T00:00:00Z",
    }
    return mark(obj, level) if level is not None else obj


def test_every_level_for_every_pair_of_organisations(
    tlp_world: tuple[TestClient, dict[str, str], dict[str, int], str],
) -> None:
    client, tokens, orgs, collection = tlp_world
    url = f"/taxii2/kz-cert/collections/{collection}/objects/"
    sent: dict[str, tuple[str, Tlp]] = {}  # object id -> (sender, level that governs it)
    for sender in ORGS:
        objects = [_object(sender, level) for level in [*Tlp, None]]
        answer = client.post(url, json={"objects": objects}, headers=_headers(tokens[sender]))
        assert answer.status_code == 202 and answer.json()["success_count"] == 6
        for obj, level in zip(objects, [*Tlp, Tlp.amber], strict=True):  # unmarked: AMBER
            sent[obj["id"]] = (sender, level)
    ids = {name: str(org) for name, org in orgs.items()}

    def audience(sender: str) -> Audience:
        return Audience.of(
            named=[ids[r] for s, r in NAMED if s == sender],
            clients={ids[sender]: [ids[c] for s, c in CLIENTS if s == sender]},
            community=[ids[m] for m in MEMBERS],
        )

    table: dict[tuple[str, Tlp], set[str]] = {}
    for reader in ORGS:
        received: set[str] = set()
        next_token = None
        while True:
            params = {"limit": "7", **({"next": next_token} if next_token else {})}
            page = client.get(url, params=params, headers=_headers(tokens[reader])).json()
            received |= {o["id"] for o in page.get("objects", [])}
            next_token = page.get("next")
            if not page["more"]:
                break
        for stix_id, (sender, level) in sent.items():
            allowed = may_receive(
                level, sender=ids[sender], recipient=ids[reader], audience=audience(sender)
            )
            assert (stix_id in received) == allowed, (sender, reader, relation(sender, reader))
            if allowed:
                table.setdefault((relation(sender, reader), level), set()).add(reader)
            # a hidden object is a missing object, wherever it is named
            if not allowed:
                for path in (f"{stix_id}/", f"{stix_id}/versions/"):
                    hidden = client.get(url + path, headers=_headers(tokens[reader]))
                    missing = client.get(
                        url + f"indicator--{uuid.uuid4()}/" + path[len(stix_id) + 1 :],
                        headers=_headers(tokens[reader]),
                    )
                    assert hidden.status_code == missing.status_code == 404
                    assert hidden.json() == missing.json()
    relations = {relation(s, r) for s in ORGS for r in ORGS}
    assert {"same organisation", "outsider", "community", "named", "client"} <= relations | {
        part for r in relations for part in r.split("+")
    }
    # the rule's shape shows in the table: RED only to its named and its sender, AMBER+STRICT
    # never beyond the sender, CLEAR to everyone
    assert {r for (rel, lvl) in table if lvl is Tlp.amber_strict for r in [rel]} == {
        "same organisation"
    }
    assert all("named" in rel or rel == "same organisation" for rel, lvl in table if lvl is Tlp.red)
    assert {rel for rel, lvl in table if lvl is Tlp.clear} == relations
