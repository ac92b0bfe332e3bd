"""Tenant isolation: for every route, a user of organisation A gets 404 or 403 for records of
organisation B, and lists never show them; sharing lets A read (never change) B's alerts.

``test_every_route_is_classified`` fails when a route is added without being listed here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from privacy.examples import iin, system_in
from privacy.leak_examples import leak_in, subjects_csv
from qorgan.core import accounts
from qorgan.core.db import unit_of_work
from qorgan.core.models import Role
from qorgan.core.tlp import Tlp
from qorgan.core.workdays import default_calendar
from qorgan.detection.anomaly.findings import Finding, contributions
from qorgan.incidents import findings
from qorgan.intel import store
from qorgan.intel.patterns import Observable, indicator
from qorgan.pipeline import hunts
from qorgan.pipeline.sources import create_source
from qorgan.privacy import complaints, consents, leaks, registry
from qorgan.privacy.consents import ConsentIn
from qorgan.privacy.models import (
    ComplaintKind,
    Consent,
    ConsentStatus,
    InformationSystem,
    Subject,
)
from qorgan.privacy.protection import protection
from qorgan.web.app import create_app
from qorgan.web.intel_exchange import identity_id

from .conftest import EXAMPLES, World, alert_payload, sign_in
from .test_citizen_portal import _citizen, _staff


def b_finding() -> dict[str, Any]:
    """An AI model's finding about B's secret host."""
    return Finding(
        detector="entity.logon", model="entity-baseline", version="1", time=None,
        source="auth.log", entity={"host": "b-secret-host"}, score=2.0, threshold=1.0,
        confidence=0.5, contributions=contributions([("logon.new_source_ip", 1.0, 0, 1)]),
        summary="b-secret-host", examples=(), pattern="b-secret-host",
    ).to_dict()  # fmt: skip


#: Routes that take the id of an organisation's record, with how to fill the path in.
RECORD_ROUTES = {
    ("GET", "/api/v1/alerts/{alert_id}"),
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"),
    ("POST", "/api/v1/alerts/{alert_id}/false-positive"),
    ("POST", "/api/v1/alerts/{alert_id}/reopen"),
    ("PUT", "/api/v1/alerts/{alert_id}/assignee"),
    ("GET", "/api/v1/alerts/{alert_id}/comments"),
    ("POST", "/api/v1/alerts/{alert_id}/comments"),
    ("GET", "/api/v1/alerts/{alert_id}/related"),
    ("GET", "/api/v1/alerts/{alert_id}/correlation-members"),
    ("GET", "/api/v1/alerts/{alert_id}/history"),
    ("GET", "/api/v1/hunts/{hunt_id}"),
    ("GET", "/alerts/{alert_id}"),
    ("POST", "/alerts/{alert_id}/{action}"),
    ("POST", "/alerts/{alert_id}/comments/new"),
    ("GET", "/hunts/{hunt_id}"),
    ("POST", "/account/tokens/{token_id}/revoke"),
    ("POST", "/users/{user_id}/{action}"),
    ("POST", "/alerts/searches/{search_id}/delete"),
    ("GET", "/api/v1/incidents/{incident_id}"),
    ("PATCH", "/api/v1/incidents/{incident_id}"),
    ("POST", "/api/v1/incidents/{incident_id}/status"),
    ("PUT", "/api/v1/incidents/{incident_id}/assignee"),
    ("PUT", "/api/v1/incidents/{incident_id}/severity"),
    ("POST", "/api/v1/incidents/{incident_id}/alerts"),
    ("POST", "/api/v1/incidents/{incident_id}/merge"),
    ("POST", "/api/v1/incidents/{incident_id}/split"),
    ("GET", "/api/v1/incidents/{incident_id}/timeline"),
    ("GET", "/api/v1/incidents/{incident_id}/tasks"),
    ("POST", "/api/v1/incidents/{incident_id}/tasks"),
    ("POST", "/api/v1/incidents/{incident_id}/tasks/template"),
    ("PUT", "/api/v1/incidents/{incident_id}/tasks/{task_id}/status"),
    ("GET", "/api/v1/incidents/{incident_id}/notes"),
    ("POST", "/api/v1/incidents/{incident_id}/notes"),
    ("POST", "/api/v1/incidents/{incident_id}/report"),
    ("GET", "/api/v1/incidents/{incident_id}/messages"),
    ("POST", "/api/v1/incidents/{incident_id}/messages"),
    ("POST", "/incidents/{incident_id}/report"),
    ("POST", "/incidents/{incident_id}/articles"),
    ("POST", "/incidents/{incident_id}/referral"),
    ("POST", "/incidents/{incident_id}/messages"),
    ("GET", "/api/v1/incidents/{incident_id}/observables"),
    ("POST", "/api/v1/incidents/{incident_id}/observables"),
    ("GET", "/api/v1/incidents/{incident_id}/evidence"),
    ("POST", "/api/v1/incidents/{incident_id}/evidence"),
    ("GET", "/api/v1/incidents/{incident_id}/evidence/{evidence_id}"),
    ("GET", "/incidents/settings/assets/{asset_id}"),
    ("POST", "/api/v1/privacy/systems/{system_id}/token"),
    ("GET", "/api/v1/privacy/leaks/{leak_id}"),
    ("GET", "/api/v1/privacy/leaks/{leak_id}/report"),
    ("POST", "/api/v1/privacy/leaks/{leak_id}/subjects"),
    ("POST", "/api/v1/privacy/leaks/{leak_id}/submit"),
    ("POST", "/api/v1/privacy/consents/{consent_id}/deletion"),
    ("PUT", "/api/v1/assets/{asset_id}"),
    ("GET", "/incidents/{incident_id}"),
    ("POST", "/incidents/{incident_id}/status"),
    ("POST", "/incidents/{incident_id}/assign"),
    ("POST", "/incidents/{incident_id}/edit"),
    ("POST", "/incidents/{incident_id}/severity"),
    ("POST", "/incidents/{incident_id}/assets"),
    ("POST", "/incidents/{incident_id}/tasks/template"),
    ("POST", "/incidents/{incident_id}/tasks"),
    ("POST", "/incidents/{incident_id}/tasks/{task_id}/status"),
    ("POST", "/incidents/{incident_id}/notes"),
    ("POST", "/incidents/{incident_id}/observables"),
    ("POST", "/incidents/{incident_id}/evidence"),
    ("GET", "/incidents/{incident_id}/evidence/{evidence_id}"),
    ("POST", "/incidents/{incident_id}/merge"),
    ("POST", "/incidents/{incident_id}/split"),
    ("GET", "/sources/{source_id}"),
    ("GET", "/sources/{source_id}/live"),
    ("POST", "/sources/{source_id}"),
    ("POST", "/sources/{source_id}/token"),
    ("GET", "/api/v1/sources/{source_id}"),
    ("PATCH", "/api/v1/sources/{source_id}"),
    ("POST", "/api/v1/sources/{source_id}/token"),
    ("GET", "/api/v1/sources/{source_id}/rates"),
    # The DPO's pages: complaints and consents of the caller's organisation only.
    ("GET", "/privacy/complaints/{complaint_id}"),
    ("POST", "/privacy/complaints/{complaint_id}/answer"),
    ("POST", "/privacy/consents/{consent_id}/deletion-confirmed"),
    ("GET", "/privacy/leaks/{leak_id}"),
    ("POST", "/privacy/leaks/{leak_id}/subjects"),
    ("POST", "/privacy/leaks/{leak_id}/submit"),
    # A citizen's own consent only: staff have no subject (404), another citizen's consent is
    # not found (tests/web/test_citizen_portal.py).
    ("POST", "/citizen/consents/{consent_id}/withdraw"),
    # The intel pages: B's collection (no grant to A) and its object are not found, and B's
    # incident cannot be shared; TLP within a shared collection: tests/web/test_intel_pages.py.
    ("GET", "/intel/collections/{taxii_id}"),
    ("GET", "/intel/objects/{stix_id}"),
    ("POST", "/intel/objects/{stix_id}/sightings"),
    ("GET", "/incidents/{incident_id}/share"),
    ("POST", "/incidents/{incident_id}/share"),
    # An AI model's finding, and the decisions on it (tests/web/test_findings_pages.py).
    ("GET", "/findings/{finding_id}"),
    ("POST", "/findings/{finding_id}/confirm"),
    ("POST", "/findings/{finding_id}/reject"),
}
#: Routes listing an organisation's records: B's must never appear in A's answer.
LIST_ROUTES = {
    ("GET", "/api/v1/alerts"),
    ("GET", "/api/v1/alerts/groups"),
    ("GET", "/api/v1/alerts/timeline"),
    ("GET", "/api/v1/alerts/export"),
    ("GET", "/api/v1/hunts"),
    ("GET", "/api/v1/audit"),
    ("GET", "/alerts"),
    ("GET", "/hunts"),
    ("GET", "/audit"),
    ("GET", "/account"),
    ("GET", "/users"),
    ("GET", "/api/v1/incidents"),
    ("GET", "/incidents"),
    ("GET", "/observables"),  # the caller's organisation's incidents with the value
    ("GET", "/notifications"),  # the caller's own (tests/web/test_notifications.py)
    ("GET", "/api/v1/notifications"),
    ("GET", "/incidents/settings"),
    ("GET", "/incidents/proposals"),
    ("GET", "/api/v1/incident-deadlines"),
    ("GET", "/api/v1/task-templates"),
    ("GET", "/api/v1/assets"),
    ("GET", "/incidents/dashboard"),
    ("GET", "/incidents/reports/monthly"),
    ("GET", "/api/v1/incidents/stats"),
    ("GET", "/sources"),
    ("GET", "/sources/live"),
    ("GET", "/api/v1/sources"),
    ("GET", "/api/v1/privacy/systems"),
    ("GET", "/api/v1/privacy/leaks"),
    ("GET", "/api/v1/privacy/consents/overdue"),
    ("GET", "/privacy"),  # the organisation's systems, overdue deletions and complaints
    ("GET", "/privacy/leaks"),
    ("GET", "/intel"),  # the collections the caller's organisation may read or write
    ("GET", "/findings"),  # the organisation's AI findings
    ("GET", "/findings/banner"),  # how many of them await a decision
    ("GET", "/models"),  # the organisation's model register and objections
}
#: Routes that act only on the caller's own organisation or account, or hold no records.
OWN_ONLY_ROUTES = {
    ("GET", "/"),
    # TAXII 2.1: what a reader receives is the intel store's TLP rule, tested for every level
    # and every pair of organisations in tests/web/test_taxii_tlp.py; another organisation's
    # collection answers 404 (tests/web/test_taxii_interop.py).
    ("GET", "/taxii2/"),
    ("GET", "/taxii2/{root}/"),
    ("GET", "/taxii2/{root}/status/{status_id}/"),
    ("GET", "/taxii2/{root}/collections/"),
    ("GET", "/taxii2/{root}/collections/{collection}/"),
    ("GET", "/taxii2/{root}/collections/{collection}/objects/"),
    ("POST", "/taxii2/{root}/collections/{collection}/objects/"),
    ("GET", "/taxii2/{root}/collections/{collection}/manifest/"),
    ("GET", "/taxii2/{root}/collections/{collection}/objects/{object_id}/"),
    ("DELETE", "/taxii2/{root}/collections/{collection}/objects/{object_id}/"),
    ("GET", "/taxii2/{root}/collections/{collection}/objects/{object_id}/versions/"),
    ("GET", "/taxii2/{rest:path}"),
    ("POST", "/taxii2/{rest:path}"),
    ("PUT", "/taxii2/{rest:path}"),
    ("PATCH", "/taxii2/{rest:path}"),
    ("DELETE", "/taxii2/{rest:path}"),
    ("GET", "/login"),
    # Bulk triage changes the caller's organisation's alerts only; another organisation's ids
    # are not touched (tests/web/test_inbox.py, tests/incidents/test_inbox.py).
    ("POST", "/alerts/triage"),
    ("POST", "/api/v1/alerts/triage"),
    ("POST", "/alerts/searches"),  # saved for the caller
    ("GET", "/api/v1/docs"),
    ("GET", "/favicon.ico"),
    ("POST", "/login"),
    ("GET", "/login/second-factor"),
    ("POST", "/login/second-factor"),
    ("GET", "/login/enrol"),
    ("POST", "/login/enrol"),
    ("POST", "/logout"),
    ("POST", "/language"),
    ("POST", "/account/password"),
    ("POST", "/account/tokens"),
    ("POST", "/account/recovery-codes"),
    # The caller's own notifications and choices; another user's ids are left alone.
    ("POST", "/account/notifications"),
    ("POST", "/notifications/read"),
    ("POST", "/api/v1/notifications/read"),
    ("POST", "/users"),  # created in the administrator's own organisation
    ("GET", "/api/v1/me"),
    ("POST", "/api/v1/alerts"),  # stored in the caller's organisation, tested below
    ("POST", "/api/v1/hunts"),  # likewise
    # Incidents are made in the caller's organisation, of its own alerts only (another's
    # alert ids are not taken, another's incident number is not found: tested below).
    ("POST", "/api/v1/incidents"),
    ("POST", "/incidents"),
    ("GET", "/incidents/new"),
    ("POST", "/incidents/from-alerts"),
    # Settings of the caller's own organisation (templates are its copies, keyed by name; an
    # asset id of another organisation is not found).
    ("POST", "/incidents/settings/deadlines"),
    ("PUT", "/api/v1/incident-deadlines"),
    ("GET", "/incidents/settings/templates/{template_id}"),
    ("POST", "/incidents/settings/templates/{template_id}"),
    ("PUT", "/api/v1/task-templates/{template_id}"),
    ("POST", "/incidents/settings/assets"),
    ("POST", "/api/v1/assets"),
    ("POST", "/hunts"),
    ("GET", "/sources/new"),
    ("POST", "/sources"),  # registered in the caller's organisation
    ("POST", "/api/v1/sources"),
    # A live source's events, by the source's own token: no user, no organisation's records.
    ("POST", "/api/v1/ingest"),
    ("POST", "/api/v1/privacy/systems"),  # registered in the caller's organisation
    # Made in the caller's organisation; another's system id is refused
    # (tests/web/test_privacy_leaks_api.py).
    ("POST", "/api/v1/privacy/leaks"),
    ("GET", "/privacy/leaks/new"),  # the form: the caller's organisation's systems to choose
    ("POST", "/privacy/leaks"),  # likewise, through the form
    # An information system asks and reports with its own token, about itself only
    # (tests/web/test_privacy_api.py).
    ("POST", "/api/v1/privacy/decisions"),
    ("POST", "/api/v1/privacy/accesses"),
    ("POST", "/api/v1/privacy/consents"),
    ("POST", "/api/v1/privacy/consents/{consent_id}/fulfil"),
    ("GET", "/api/v1/hunts/files"),  # the server's hunt folder, not an organisation's record
    ("GET", "/api/v1/audit/verify"),  # reports problems of the whole chain, no entries
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/static/plotly.min.js"),
    # The public report form: no account and no organisation's records. A report goes to the
    # national coordinator's organisation, and its tracking number shows its phase only
    # (tests/web/test_public_report.py).
    ("GET", "/report"),
    ("POST", "/report"),
    ("GET", "/report/challenge"),
    ("GET", "/report/status"),
    ("GET", "/report/status/{tracking}"),
    # The citizen portal: every page works on the subject of the signed-in citizen's own
    # account, found from the session, never from the request; staff have no subject (404)
    # and another citizen's record is never reached (tests/web/test_citizen_portal.py).
    ("GET", "/citizen/login"),
    ("POST", "/citizen/login"),
    ("GET", "/citizen"),
    ("GET", "/citizen/record.json"),
    ("GET", "/citizen/record.pdf"),
    ("GET", "/citizen/complaints"),
    ("POST", "/citizen/complaints"),
    # "AI and your data": the approved models, and the citizen's own objection.
    ("GET", "/citizen/ai"),
    ("POST", "/citizen/ai/object"),
    # An objection recorded on request holds for the caller's own organisation.
    ("POST", "/models/objections"),
}


def _routes() -> set[tuple[str, str]]:
    app = create_app(start_runner=False)
    found = set()
    for context in iter_route_contexts(app.routes):
        methods = getattr(context.original_route, "methods", None) or set()
        for method in set(methods) - {"HEAD"}:
            found.add((method, str(context.path)))
    return found


def test_every_route_is_classified(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QORGAN_DATABASE_URL", f"sqlite:///{tmp_path / 'q.db'}")
    monkeypatch.setenv("QORGAN_VAR_DIR", str(tmp_path))
    routes = _routes()
    classified = RECORD_ROUTES | LIST_ROUTES | OWN_ONLY_ROUTES
    assert routes - classified == set(), "classify the new routes in this test"
    assert classified - routes == set(), "these routes no longer exist"


class Records:
    def __init__(self, world: World, client: TestClient) -> None:
        b_token = world.token("b.analyst", ["alerts:write"])
        response = client.post(
            "/api/v1/alerts",
            json=[alert_payload(i, host="b-secret-host") for i in range(3)],
            headers={"Authorization": f"Bearer {b_token}"},
        )
        assert response.status_code == 200, response.text
        admin_b = world.token("b.admin", ["*"])
        listed = client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {admin_b}"})
        self.b_alert = listed.json()["items"][0]["id"]
        with unit_of_work(world.factory) as session:
            hunt = hunts.create_hunt(
                session=session,
                organisation_id=world["b.analyst"].organisation_id,
                user_id=world["b.analyst"].id,
                paths=[EXAMPLES],
                source="server",
            )
            self.b_hunt = hunt.id
        from sqlalchemy import select

        from qorgan.core.models import ApiToken

        with unit_of_work(world.factory) as session:
            self.b_token_id = session.scalars(
                select(ApiToken.id).where(ApiToken.user_id == world["b.analyst"].id)
            ).first()
        self.b_user = world["b.analyst"].id
        from qorgan.incidents import saved_searches

        with unit_of_work(world.factory) as session:
            self.b_search = saved_searches.save(
                session=session, user_id=world["b.admin"].id, name="B's view", query="level=high"
            ).id
        b_work = {"Authorization": f"Bearer {world.token('b.analyst', ['incidents:write'])}"}
        made = client.post(
            "/api/v1/incidents", json={"alert_ids": [self.b_alert], "title": "B"}, headers=b_work
        )
        assert made.status_code == 201, made.text
        self.b_incident = made.json()["incident"]["id"]
        task = client.post(
            f"/api/v1/incidents/{self.b_incident}/tasks",
            json={"phase": "triage", "title": "B's task"},
            headers=b_work,
        )
        self.b_task = task.json()["id"]
        added = client.post(
            f"/api/v1/incidents/{self.b_incident}/evidence",
            files={"file": ("b-secret.pcap", b"B's evidence", "application/vnd.tcpdump.pcap")},
            headers=b_work,
        )
        assert added.status_code == 201, added.text
        self.b_evidence = added.json()["id"]
        asset = client.post("/api/v1/assets", json={"name": "B's secret system"}, headers=b_work)
        assert asset.status_code == 201, asset.text
        self.b_asset = asset.json()["id"]
        with unit_of_work(world.factory) as session:
            self.b_source = create_source(
                session=session,
                organisation_id=world["b.admin"].organisation_id,
                actor="test",
                name="b-secret-host feed",
                transport="http",
                format="json",
            )[0].id
            self.b_system = registry.register(
                session=session,
                protection=protection(world.settings),
                organisation_id=world["b.admin"].organisation_id,
                system=system_in("b-secret-host registry"),
                actor="test",
            )[0].id
            self.b_leak = leaks.create(
                session=session,
                protection=protection(world.settings),
                calendar=default_calendar(),
                organisation_id=world["b.admin"].organisation_id,
                leak=leak_in(system_id=self.b_system, description="b-secret-host leak"),
                actor="test",
            ).id
            self.b_consent = consents.give(
                session=session,
                protection=protection(world.settings),
                key=Ed25519PrivateKey.generate(),
                system=session.get(InformationSystem, self.b_system),
                consent=ConsentIn(iin(date(1990, 1, 1)), ["medical care"], ["general"], []),
            ).id
            ended = session.get(Consent, self.b_consent)  # its data should be deleted by now
            ended.status, ended.deletion_due = ConsentStatus.fulfilled, date(2026, 1, 1)
            # A citizen's complaint to B, which A's DPO pages must not find.
            self.b_complaint = complaints.file(
                session=session,
                protection=protection(world.settings),
                calendar=default_calendar(),
                subject=session.get(Subject, ended.subject_id),
                complaint=complaints.ComplaintIn(
                    kind=ComplaintKind.complaint,
                    organisation_id=world["b.admin"].organisation_id,
                    system_id=self.b_system,
                    name="b-secret-host citizen",
                    contacts="b-secret-host contacts",
                    period_from=None,
                    period_to=None,
                    description="b-secret-host complaint",
                ),
            ).id
        with unit_of_work(world.factory) as session:
            b_org = world["b.admin"].organisation_id
            root = store.create_api_root(session=session, slug="b-secret-host", title="B's root")
            store.add_member(session=session, api_root=root, organisation_id=b_org)
            b_collection = store.create_collection(
                session=session, actor="test", api_root=root, owner_id=b_org,
                title="b-secret-host collection",
            )  # fmt: skip
            self.b_collection = b_collection.taxii_id
            made = indicator(
                Observable.of("domain-name", "b-secret-host.example"),
                created_by_ref=identity_id(b_org), confidence=50,
                valid_from=datetime(2026, 11, 1, tzinfo=UTC), tlp=Tlp.green,
            )  # fmt: skip
            self.b_object = made["id"]
            store.add_objects(
                [made], session=session, collection=b_collection, sender_id=b_org, actor="test"
            )
        with unit_of_work(world.factory) as session:
            (self.b_finding,) = findings.save_findings(session, b_org, [b_finding()]).ids
        a_token = world.token("a.analyst", ["alerts:write"])
        client.post(
            "/api/v1/alerts",
            json=[alert_payload(i, host="a-host") for i in range(100, 102)],
            headers={"Authorization": f"Bearer {a_token}"},
        )

    def path(self, template: str) -> str:
        return (
            template.replace("{alert_id}", str(self.b_alert))
            .replace("{hunt_id}", str(self.b_hunt))
            .replace("{token_id}", str(self.b_token_id))
            .replace("{search_id}", str(self.b_search))
            .replace("{user_id}/{action}", f"{self.b_user}/unlock")
            .replace("{action}", "acknowledge")
            .replace("{incident_id}", str(self.b_incident))
            .replace("{task_id}", str(self.b_task))
            .replace("{evidence_id}", str(self.b_evidence))
            .replace("{asset_id}", str(self.b_asset))
            .replace("{source_id}", str(self.b_source))
            .replace("{system_id}", str(self.b_system))
            .replace("{leak_id}", str(self.b_leak))
            .replace("{consent_id}", str(self.b_consent))
            .replace("{complaint_id}", str(self.b_complaint))
            .replace("{finding_id}", str(self.b_finding))
            .replace("{taxii_id}", self.b_collection)
            .replace("{stix_id}/sightings", f"{self.b_object}/sightings")
            .replace("{stix_id}", f"{self.b_object}?collection={self.b_collection}")
        )


#: A body valid for every JSON route that takes one (each reads its own fields), so that a
#: route answers for the record, not for a malformed body.
JSON_BODY = {
    "name": "taken over",
    "assignee_id": None,
    "severity": None,
    "text": "a note on another organisation's record",
    "title": "taken over",
    "alert_ids": [1],
    "into": 1,
    "phase": "triage",
    "template_id": "malware",
    "kind": "ip",
    "value": "192.0.2.1",
}
#: The same for the pages' forms.
FORM_BODY = {
    "text": "a comment",
    "status": "triage",
    "title": "taken over",
    "phase": "triage",
    "template_id": "malware",
    "kind": "ip",
    "value": "192.0.2.1",
    "into": "1",
}


def _call(client: TestClient, method: str, path: str, **kwargs: Any) -> Any:
    body: dict[str, Any] = {}
    if method == "PUT":
        body["json"] = {**JSON_BODY, "status": "done"}
        if "/assets/" in path:
            body["json"]["kind"] = "host"
    elif method in ("POST", "PATCH"):
        body["json"] = {**JSON_BODY, "status": "triage"}
        if path.endswith("/messages"):
            body["json"]["kind"] = "message"
    return client.request(method, path, **body, **kwargs)


def test_records_of_another_organisation_are_not_found(client: TestClient, world: World) -> None:
    records = Records(world, client)
    # Through the API with A's administrator's token (every permission)...
    token = world.token("a.admin", ["*"])
    for method, template in sorted(r for r in RECORD_ROUTES if r[1].startswith("/api/")):
        response = _call(
            client, method, records.path(template), headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code in (403, 404), (method, template, response.status_code)
    # ...and through the pages, signed in as A's administrator.
    csrf = sign_in(client, world["a.admin"])
    for method, template in sorted(r for r in RECORD_ROUTES if not r[1].startswith("/api/")):
        response = client.request(
            method,
            records.path(template),
            data={"csrf_token": csrf, **FORM_BODY} if method == "POST" else None,
        )
        assert response.status_code in (403, 404), (method, template, response.status_code)
    # B's records are untouched.
    b_admin = world.token("b.admin", ["*"])
    alert = client.get(
        f"/api/v1/alerts/{records.b_alert}", headers={"Authorization": f"Bearer {b_admin}"}
    )
    assert alert.json()["status"] == "new"
    incident = client.get(
        f"/api/v1/incidents/{records.b_incident}", headers={"Authorization": f"Bearer {b_admin}"}
    ).json()
    assert (incident["title"], incident["status"], incident["alerts"]) == ("B", "new", 1)
    evidence = client.get(
        f"/api/v1/incidents/{records.b_incident}/evidence",
        headers={"Authorization": f"Bearer {b_admin}"},
    ).json()
    assert [e["name"] for e in evidence] == ["b-secret.pcap"]
    leak = client.get(
        f"/api/v1/privacy/leaks/{records.b_leak}", headers={"Authorization": f"Bearer {b_admin}"}
    ).json()
    assert (leak["status"], leak["subjects"], leak["incident_id"]) == ("draft", 0, None)
    # A cannot take B's alerts into an incident, nor add alerts to B's incident by number.
    a_alerts = client.post(
        "/incidents/from-alerts",
        data={"csrf_token": csrf, "ids": [str(records.b_alert)], "scope": "selected"},
    )
    assert a_alerts.status_code == 400
    added = client.post(
        "/incidents/from-alerts",
        data={
            "csrf_token": csrf,
            "ids": [str(records.b_alert)],
            "mode": "add",
            "incident": f"INC-{records.b_incident:06d}",
        },
    )
    assert added.status_code == 404


def test_lists_show_only_the_own_organisation(client: TestClient, world: World) -> None:
    records = Records(world, client)
    token = world.token("a.admin", ["*"])
    headers = {"Authorization": f"Bearer {token}"}
    alerts = client.get("/api/v1/alerts", headers=headers).json()
    assert alerts["total"] == 2 and {a["host"] for a in alerts["items"]} == {"a-host"}
    groups = client.get("/api/v1/alerts/groups?by=host", headers=headers).json()
    assert [g["host"] for g in groups["items"]] == ["a-host"]
    timeline = client.get("/api/v1/alerts/timeline", headers=headers).json()
    assert sum(p["count"] for p in timeline["points"]) == 2
    export = client.get("/api/v1/alerts/export?format=jsonl", headers=headers)
    assert export.status_code == 200 and b"b-secret-host" not in export.content
    assert export.content.count(b"\n") == 2
    assert client.get("/api/v1/hunts", headers=headers).json() == []
    assert client.get("/api/v1/sources", headers=headers).json() == []
    assert client.get("/api/v1/privacy/systems", headers=headers).json() == []
    assert client.get("/api/v1/privacy/leaks", headers=headers).json() == []
    assert client.get("/api/v1/privacy/consents/overdue", headers=headers).json() == []
    b_headers = {"Authorization": f"Bearer {world.token('b.admin', ['*'])}"}
    b_overdue = client.get("/api/v1/privacy/consents/overdue", headers=b_headers).json()
    assert [c["id"] for c in b_overdue] == [records.b_consent]  # there was one to show
    assert client.get("/api/v1/incidents?status=all", headers=headers).json()["total"] == 0
    for scope in ("own", "reported"):  # A's administrator may coordinate: nothing reported to A
        found = client.get(f"/api/v1/incidents/stats?scope={scope}", headers=headers).json()
        assert (found["total"], found["open"]["total"], found["by_organisation"]) == (0, 0, [])
    entries = client.get("/api/v1/audit?limit=1000", headers=headers).json()
    b_org = world["b.admin"].organisation_id
    assert entries
    assert not [
        e for e in entries if (e["target_type"], e["target_id"]) == ("hunt", str(records.b_hunt))
    ]
    assert all(e["actor"] != str(world["b.analyst"].id) for e in entries)
    csrf = sign_in(client, world["a.admin"])
    assert csrf
    for path in (
        "/alerts",
        "/alerts?group=host",
        "/hunts",
        "/audit",
        "/account",
        "/users",
        "/incidents?tab=all",
        "/observables?kind=ip&value=203.0.113.7",
        "/notifications",
        "/sources",
        "/sources/live",
        "/privacy",
        "/privacy/leaks",
        "/privacy/leaks/new",
        "/intel",
        "/findings",
        "/findings/banner",
        "/models",
    ):
        page = client.get(path)
        assert page.status_code == 200, path
        assert "b-secret-host" not in page.text, path
        assert "@b.example.kz" not in page.text, path
        assert f'/hunts/{records.b_hunt}"' not in page.text, path
    for path in ("/incidents/dashboard", "/incidents/dashboard?scope=reported"):
        page = client.get(path)
        assert page.status_code == 200 and 'data-total="0"' in page.text, path
        assert f'/incidents/{records.b_incident}"' not in page.text, path
    month = datetime.now(ZoneInfo("Asia/Almaty")).strftime("%Y-%m")  # B's incident's month
    for scope in ("own", "reported"):
        report = f"/incidents/reports/monthly?month={month}&scope={scope}&format="
        assert client.get(report + "csv").text.count("\n") == 1, scope  # the header alone
        assert client.get(report + "pdf").status_code == 200, scope
    assert b_org != world["a.admin"].organisation_id


def test_shared_alerts_can_be_read_but_not_changed(client: TestClient, world: World) -> None:
    records = Records(world, client)
    with unit_of_work(world.factory) as session:
        accounts.share(
            session=session,
            actor=str(world["b.admin"].id),
            owner_id=world["b.admin"].organisation_id,
            partner_id=world["a.admin"].organisation_id,
            resource="alerts",
        )
    headers = {"Authorization": f"Bearer {world.token('a.admin', ['*'])}"}
    assert client.get("/api/v1/alerts", headers=headers).json()["total"] == 5
    assert client.get(f"/api/v1/alerts/{records.b_alert}", headers=headers).status_code == 200
    changed = client.post(f"/api/v1/alerts/{records.b_alert}/acknowledge", headers=headers)
    assert changed.status_code == 404
    # Sharing alerts does not share hunts.
    assert client.get(f"/api/v1/hunts/{records.b_hunt}", headers=headers).status_code == 404


#: Every route that reads or changes one leak report, pages and API.
LEAK_ROUTES = sorted(r for r in RECORD_ROUTES if "{leak_id}" in r[1])


def test_a_leak_is_not_reached_by_another_dpo_a_citizen_or_a_system(
    client: TestClient, world: World
) -> None:
    """B's leak report, tried by A's data-protection officer (signed in, and with a token of
    every scope), a citizen (signed in) and an information system's token: nobody reads or
    changes it, whether through the pages or the API."""
    records = Records(world, client)
    with unit_of_work(world.factory) as session:
        dpo = _staff(session, world["a.admin"].organisation_id, "dpo@a.example.kz", Role.dpo)
        citizen = _citizen(
            session, protection(world.settings), iin(date(1985, 5, 5)), "c@example.kz", "C"
        )
        system_token = registry.register(
            session=session,
            protection=protection(world.settings),
            organisation_id=world["a.admin"].organisation_id,
            system=system_in("A's clinic"),
            actor="test",
        )[1]
    world.people["a.dpo"] = dpo
    dpo_token = world.token("a.dpo", ["*"])

    def attempt(method: str, template: str, **kwargs: Any) -> int:
        path = records.path(template)
        if method == "GET":
            return client.get(path, follow_redirects=False, **kwargs).status_code
        files = {"file": ("s.csv", subjects_csv(3), "text/csv")} if "subjects" in path else None
        return client.post(path, files=files, follow_redirects=False, **kwargs).status_code

    for name, person in (("dpo", dpo), ("citizen", citizen)):
        csrf = sign_in(client, person)
        for method, template in LEAK_ROUTES:
            extra: dict[str, Any] = {}
            if method == "POST":
                extra = {"headers": {"X-CSRF-Token": csrf}}
            status = attempt(method, template, **extra)
            assert status in (403, 404), (name, method, template, status)
        client.post("/logout", data={"csrf_token": csrf})
        client.cookies.clear()
    for name, token in (("system", system_token), ("dpo token", dpo_token)):
        for method, template in LEAK_ROUTES:
            status = attempt(method, template, headers={"Authorization": f"Bearer {token}"})
            # A page never takes a token (to the sign-in page); the API refuses it or finds
            # no such report.
            assert status in (303, 401, 403, 404), (name, method, template, status)
    b_admin = {"Authorization": f"Bearer {world.token('b.admin', ['*'])}"}
    leak = client.get(f"/api/v1/privacy/leaks/{records.b_leak}", headers=b_admin).json()
    assert (leak["status"], leak["subjects"], leak["incident_id"]) == ("draft", 0, None)
