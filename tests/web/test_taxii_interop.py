"""The TAXII 2.1 server judged by independent implementations, on loopback: the console runs in
uvicorn in a process of its own, OASIS's ``taxii2-client`` reads and writes every endpoint
(discovery, API root, collections, collection, objects GET and POST, object GET and DELETE,
versions, manifest, status), a bundle with TLP 2.0 and PAP markings, an extension definition,
a custom property and many object types comes back without losing anything, and what the
server emits passes OASIS's ``stix2-validator``. Then the neighbours that must not work."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from stix2validator import ValidationOptions, validate_instance
from taxii2client.v21 import Server, as_pages

from qorgan.core import accounts
from qorgan.core.db import unit_of_work
from qorgan.core.models import AuditEntry, OrganisationKind, Role, User
from qorgan.core.settings import Settings
from qorgan.core.tlp import Pap, Tlp
from qorgan.intel import store
from qorgan.intel.markings import (
    PAP_EXTENSION_ID,
    TLP2_EXTENSION_ID,
    mark,
    mark_pap,
    pap_marking_definition,
    tlp_marking_definition,
)
from qorgan.intel.models import StixObject
from qorgan.testing import free_port
from serving import wait_until_answering

SERVER = """
import sys

import uvicorn

from qorgan.cli import uvicorn_options
from qorgan.core.settings import get_settings
from qorgan.web.app import create_app

settings = get_settings(database_url=sys.argv[1], var_dir=sys.argv[2])
app = create_app(settings, start_runner=False, start_notifier=False)
options = uvicorn_options(settings, "127.0.0.1", int(sys.argv[3]), 1)
options.update(factory=False, log_level="warning")
uvicorn.run(app, **options)
"""
T0 = "2026-03-01T08:00:00.000Z"
INCIDENT_CORE = "extension-definition--ef765651-680c-498d-9894-99799f2fa126"
OUR_EXTENSION = "extension-definition--3b4c2a0e-5a57-4c0e-9b3a-6f1d2a7e8c11"


@dataclass
class Hub:
    url: str
    factory: sessionmaker[Session]
    tokens: dict[str, str]  # "a", "b" (read-only), "c" (no grant), "a.write-only", "a.password"
    shared: str  # A's collection, B reads it
    private: str  # B's own collection
    emails: dict[str, str]

    def collection_url(self, collection: str | None = None) -> str:
        return f"{self.url}/taxii2/kz-cert/collections/{collection or self.shared}/"


PASSWORD = "a-user-password-never-taken-by-taxii-0001"


def _world(factory: sessionmaker[Session]) -> tuple[dict[str, str], str, str, dict[str, str]]:
    tokens: dict[str, str] = {}
    emails: dict[str, str] = {}
    with unit_of_work(factory) as session:
        orgs = {}
        for name in "abc":
            org = accounts.create_organisation(
                session=session, actor="test", name=f"Bank {name}", kind=OrganisationKind.bank
            )
            orgs[name] = org.id
            user = accounts.create_user(
                session=session,
                actor="test",
                organisation_id=org.id,
                email=f"partner@{name}.example.kz",
                display_name=f"Partner {name}",
                role=Role.partner,
                password=PASSWORD,
            )
            emails[name] = user.email
            tokens[name] = accounts.issue_token(
                session=session, user=user, name="taxii", scopes=["intel:*"],
                lifetime=timedelta(days=1),
            )  # fmt: skip
        a_user = session.scalar(select(User).where(User.organisation_id == orgs["a"]))
        assert a_user is not None
        tokens["a.write-only"] = accounts.issue_token(
            session=session, user=a_user, name="w", scopes=["intel:write"],
            lifetime=timedelta(days=1),
        )  # fmt: skip
        root = store.create_api_root(
            session=session, slug="kz-cert", title="KZ-CERT", description="The constituency"
        )
        for name in "ab":
            store.add_member(session=session, api_root=root, organisation_id=orgs[name])
        shared = store.create_collection(
            session=session, actor="test", api_root=root, owner_id=orgs["a"], title="Shared",
            description="A's indicators", alias="shared",
        )  # fmt: skip
        store.grant(
            session=session, collection=shared, organisation_id=orgs["b"], can_read=True,
            can_write=False,
        )  # fmt: skip
        private = store.create_collection(
            session=session, actor="test", api_root=root, owner_id=orgs["b"], title="B only"
        )
        return tokens, shared.taxii_id, private.taxii_id, emails


@pytest.fixture
def hub(settings: Settings, factory: sessionmaker[Session], tmp_path: Path) -> Iterator[Hub]:
    tokens, shared, private, emails = _world(factory)
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVER, settings.database_url, str(tmp_path / "var"), str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(process, f"{url}/healthz", log, timeout=60)
        yield Hub(url, factory, tokens, shared, private, emails)
    finally:
        process.kill()
        process.wait(timeout=30)


class Bearer(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def _id(kind: str) -> str:
    return f"{kind}--{uuid.uuid4()}"


def bundle_objects() -> list[dict[str, Any]]:
    """A realistic exchange: markings, an extension definition and an object using it, a
    custom property, SDOs, an SCO, SROs, a report and an incident with the core extension."""
    identity = {
        "type": "identity", "spec_version": "2.1", "id": _id("identity"), "created": T0,
        "modified": T0, "name": "Bank A SOC", "identity_class": "organization",
    }  # fmt: skip
    extension = {
        "type": "extension-definition", "spec_version": "2.1", "id": OUR_EXTENSION,
        "created_by_ref": identity["id"], "created": T0, "modified": T0,
        "name": "Qorgan feed context", "schema": "https://example.kz/schema.json",
        "version": "1.0.0", "extension_types": ["property-extension"],
    }  # fmt: skip
    indicator = {
        "type": "indicator", "spec_version": "2.1", "id": _id("indicator"), "created": T0,
        "modified": T0, "created_by_ref": identity["id"], "name": "C2 address",
        "indicator_types": ["malicious-activity"], "pattern": "[ipv4-addr:value = '203.0.113.7']",
        "pattern_type": "stix", "valid_from": T0, "valid_until": "2027-03-01T08:00:00Z",
        "confidence": 85, "x_qorgan_feed": "kz-banks",
        "extensions": {OUR_EXTENSION: {"extension_type": "property-extension", "rank": 3}},
    }  # fmt: skip
    address = {"type": "ipv4-addr", "spec_version": "2.1", "id": _id("ipv4-addr"),
               "value": "203.0.113.7"}  # fmt: skip
    malware = {
        "type": "malware", "spec_version": "2.1", "id": _id("malware"), "created": T0,
        "modified": T0, "name": "Loader", "is_family": True, "malware_types": ["bot"],
    }  # fmt: skip
    vulnerability = {
        "type": "vulnerability", "spec_version": "2.1", "id": _id("vulnerability"),
        "created": T0, "modified": T0, "name": "CVE-2026-0001",
        "external_references": [{"source_name": "cve", "external_id": "CVE-2026-0001"}],
    }  # fmt: skip
    observed = {
        "type": "observed-data", "spec_version": "2.1", "id": _id("observed-data"),
        "created": T0, "modified": T0, "first_observed": T0, "last_observed": T0,
        "number_observed": 3, "object_refs": [address["id"]],
    }  # fmt: skip
    relationship = {
        "type": "relationship", "spec_version": "2.1", "id": _id("relationship"),
        "created": T0, "modified": T0, "relationship_type": "indicates",
        "source_ref": indicator["id"], "target_ref": malware["id"],
    }  # fmt: skip
    sighting = {
        "type": "sighting", "spec_version": "2.1", "id": _id("sighting"), "created": T0,
        "modified": T0, "sighting_of_ref": indicator["id"], "count": 2,
        "where_sighted_refs": [identity["id"]],
    }  # fmt: skip
    incident = {
        "type": "incident", "spec_version": "2.1", "id": _id("incident"), "created": T0,
        "modified": T0, "name": "Phishing wave",
        "extensions": {
            INCIDENT_CORE: {
                "extension_type": "property-extension", "determination": "confirmed",
                "investigation_status": "open", "incident_types": ["phishing"],
            }
        },
    }  # fmt: skip
    report = {
        "type": "report", "spec_version": "2.1", "id": _id("report"), "created": T0,
        "modified": T0, "name": "Weekly", "published": T0, "report_types": ["threat-report"],
        "object_refs": [indicator["id"], malware["id"], incident["id"]],
    }  # fmt: skip
    marked = [
        mark_pap(mark(o, Tlp.green), Pap.amber)
        for o in (identity, extension, indicator, address, malware, vulnerability, observed,
                  relationship, sighting, incident, report)
    ]  # fmt: skip
    return [tlp_marking_definition(Tlp.green), pap_marking_definition(Pap.amber), *marked]


def test_taxii2_client_reads_and_writes_every_endpoint(hub: Hub) -> None:
    # Basic with the token as password for A, Bearer for B: both ways in.
    server = Server(f"{hub.url}/taxii2/", user=hub.emails["a"], password=hub.tokens["a"])
    assert server.title == "Qorgan TAXII 2.1"
    assert [r.url for r in server.api_roots] == [f"{hub.url}/taxii2/kz-cert/"]
    root = server.api_roots[0]
    assert root.title == "KZ-CERT" and root.versions == ["application/taxii+json;version=2.1"]
    assert root.max_content_length >= 1 << 20
    listed = {c.id: c for c in root.collections}
    assert set(listed) == {hub.shared}  # B's private collection is not A's to see
    shared = listed[hub.shared]
    assert (shared.title, shared.alias, shared.can_read, shared.can_write) == (
        "Shared", "shared", True, True,
    )  # fmt: skip

    sent = bundle_objects()
    status = shared.add_objects({"objects": sent})
    assert status.status == "complete"
    assert (status.total_count, status.success_count, status.failure_count) == (len(sent),) * 2 + (
        0,
    )
    again = root.get_status(status.id)
    assert again.success_count == len(sent) and len(again.successes) == len(sent)

    # objects, page by page (3 a page), through the client's own pager
    received: list[dict[str, Any]] = []
    for envelope in as_pages(shared.get_objects, per_request=3):
        received += envelope.get("objects", [])
    assert received == sent  # every object, marking, extension and custom property
    results = validate_instance(
        {"type": "bundle", "id": _id("bundle"), "objects": received},
        ValidationOptions(version="2.1"),
    )
    assert results.is_valid, [str(e) for e in results.errors]

    # filters
    indicator = next(o for o in sent if o["type"] == "indicator")
    only = shared.get_objects(type=["indicator", "malware"])
    assert sorted(o["type"] for o in only["objects"]) == ["indicator", "malware"]
    assert shared.get_object(indicator["id"])["objects"] == [indicator]
    newer = {**indicator, "modified": "2026-04-01T00:00:00.000Z", "confidence": 40}
    shared.add_objects({"objects": [newer]})
    assert shared.get_object(indicator["id"])["objects"] == [newer]
    assert shared.get_object(indicator["id"], version="first")["objects"] == [indicator]
    assert shared.get_object(indicator["id"], version="all")["objects"] == [indicator, newer]
    versions = shared.object_versions(indicator["id"])
    assert versions["versions"] == [T0, "2026-04-01T00:00:00.000Z"]
    manifest = shared.get_manifest(id=indicator["id"], version="all")
    assert [m["version"] for m in manifest["objects"]] == [T0, newer["modified"]]
    assert all(m["media_type"] == "application/stix+json;version=2.1" for m in manifest["objects"])
    first_added = manifest["objects"][0]["date_added"]
    later = shared.get_objects(added_after=first_added)
    assert indicator["id"] not in [o["id"] for o in later["objects"][:-1]]
    assert later["objects"][-1] == newer

    # B (Bearer, read-only grant) reads the GREEN objects of its community, cannot write
    b_root = Server(f"{hub.url}/taxii2/", auth=Bearer(hub.tokens["b"])).api_roots[0]
    b_shared = next(c for c in b_root.collections if c.id == hub.shared)
    assert (b_shared.can_read, b_shared.can_write) == (True, False)
    assert len(b_shared.get_objects()["objects"]) == len(sent)

    # delete: A sent them
    shared.delete_object(indicator["id"], version=T0)
    assert shared.object_versions(indicator["id"])["versions"] == [newer["modified"]]
    shared.delete_object(indicator["id"])
    with pytest.raises(requests.HTTPError) as gone:
        shared.get_object(indicator["id"])
    assert gone.value.response.status_code == 404
    assert gone.value.response.json()["http_status"] == "404"

    # every page served is in the audit trail, one entry per response
    with hub.factory() as session:
        served = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "intel.objects_serve")
        ).all()
        assert sum(len(e.details["objects"]) for e in served) >= len(sent) * 2


def _get(hub: Hub, path: str, token: str, **headers: str) -> httpx.Response:
    return httpx.get(
        hub.url + path,
        headers={"Authorization": f"Bearer {token}", "Accept": "application/taxii+json", **headers},
    )


def _post(hub: Hub, token: str, body: bytes, collection: str | None = None,
          content_type: str = "application/taxii+json;version=2.1") -> httpx.Response:  # fmt: skip
    return httpx.post(
        hub.collection_url(collection) + "objects/",
        content=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/taxii+json;version=2.1",
            "Content-Type": content_type,
        },
    )


def test_neighbours_that_must_not_work(hub: Hub) -> None:
    base = f"/taxii2/kz-cert/collections/{hub.shared}/"
    objects = f"{base}objects/"
    taxii = "application/taxii+json;version=2.1"
    # another organisation's collection: exactly like one that does not exist
    for token in (hub.tokens["a"], hub.tokens["c"]):
        for collection in (hub.private, str(uuid.uuid4())):
            answer = _get(hub, f"/taxii2/kz-cert/collections/{collection}/objects/", token)
            assert answer.status_code == 404
            assert answer.headers["content-type"] == taxii
            assert answer.json()["title"] == "Not found"
    assert _get(hub, "/taxii2/kz-cert/", hub.tokens["c"]).status_code == 404  # not a member
    assert _get(hub, "/taxii2/", hub.tokens["c"]).json()["api_roots"] == []
    # no credentials, a wrong token, a user password as Basic
    assert httpx.get(hub.url + objects).status_code == 401
    assert _get(hub, objects, "not-a-token").status_code == 401
    basic = httpx.get(hub.url + objects, auth=(hub.emails["a"], PASSWORD))
    assert basic.status_code == 401 and basic.json()["http_status"] == "401"
    # a token without intel:read
    assert _get(hub, objects, hub.tokens["a.write-only"]).status_code == 403
    # a write to a read-only grant
    good = orjson.dumps({"objects": bundle_objects()[2:3]})
    assert _post(hub, hub.tokens["b"], good).status_code == 403
    # media types
    assert _get(hub, objects, hub.tokens["a"], Accept="text/html").status_code == 406
    assert _post(hub, hub.tokens["a"], good, content_type="application/json").status_code == 415
    assert _post(hub, hub.tokens["a"], good, content_type="text/plain").status_code == 415
    stix = _post(hub, hub.tokens["a"], good, content_type="application/stix+json;version=2.1")
    assert stix.status_code == 202
    # the date-added headers bracket the page, as the manifest says
    page = _get(hub, objects, hub.tokens["a"])
    manifest = _get(hub, f"{base}manifest/", hub.tokens["a"]).json()["objects"]
    assert page.headers["content-type"] == taxii
    assert page.headers["x-taxii-date-added-first"] == manifest[0]["date_added"]
    assert page.headers["x-taxii-date-added-last"] == manifest[-1]["date_added"]
    moved = httpx.get(hub.url + objects.rstrip("/") + "?limit=1", follow_redirects=False)
    assert moved.status_code == 308 and moved.headers["location"].endswith("objects/?limit=1")
    # a forged next
    for token in ("AAAAAAAAAAAAAAAAAAAAAAAAAAA", "not base64!", "x" * 500):
        answer = _get(hub, f"{objects}?next={token}", hub.tokens["a"])
        assert answer.status_code == 400 and "next" in answer.json()["description"]
    assert _get(hub, f"{objects}?limit=-3", hub.tokens["a"]).status_code == 400
    assert _get(hub, f"{objects}?added_after=yesterday", hub.tokens["a"]).status_code == 400
    # NUL inside an object: that object fails, with its reason; a lone surrogate: no JSON
    nul = dict(bundle_objects()[2], name="a\x00b")
    answer = _post(hub, hub.tokens["a"], orjson.dumps({"objects": [nul]}))
    assert answer.status_code == 202
    assert answer.json()["failure_count"] == 1 and "NUL" in answer.json()["failures"][0]["message"]
    surrogate = b'{"objects": [{"type": "indicator", "name": "\\ud800"}]}'
    assert _post(hub, hub.tokens["a"], surrogate).status_code == 400
    assert _post(hub, hub.tokens["a"], b'{"objects": []}').status_code == 400
    # an oversized body
    big = orjson.dumps({"objects": [dict(bundle_objects()[2], description="x" * (2 << 20))]})
    assert _post(hub, hub.tokens["a"], big).status_code == 413
    # someone else's status
    status_id = stix.json()["id"]
    assert _get(hub, f"/taxii2/kz-cert/status/{status_id}/", hub.tokens["b"]).status_code == 404
    # unknown addresses under /taxii2/ answer TAXII errors too
    assert _get(hub, "/taxii2/kz-cert/nothing/", hub.tokens["a"]).json()["http_status"] == "404"


def test_concurrent_posts_of_one_version_store_one_row(hub: Hub) -> None:
    body = orjson.dumps({"objects": bundle_objects()[2:]})
    answers: list[httpx.Response] = []

    def send() -> None:
        answers.append(_post(hub, hub.tokens["a"], body))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [202] * 4
    assert all(a.json()["failure_count"] == 0 for a in answers)
    with hub.factory() as session:
        assert session.scalar(select(func.count()).select_from(StixObject)) == len(
            bundle_objects()[2:]
        )


def test_marking_ids_are_the_oasis_ones() -> None:
    """The bundle above carries the published TLP 2.0 and PAP extensions' objects."""
    objects = bundle_objects()
    assert TLP2_EXTENSION_ID in objects[0]["extensions"]
    assert PAP_EXTENSION_ID in objects[1]["extensions"]
