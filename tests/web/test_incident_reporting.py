"""Reporting an incident to the national coordinator (KZ-CERT): one step for the reporter,
a read-only view and a list with clocks for the coordinator, and one thread both sides see."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pyotp
from fastapi.testclient import TestClient

from qorgan.core import accounts
from qorgan.core.db import unit_of_work
from qorgan.core.models import OrganisationKind, Role, User
from qorgan.incidents import referral

from .conftest import Person, World, alert_payload, password_hash, sign_in


def _coordinator(world: World) -> Person:
    with unit_of_work(world.factory) as session:
        cert = accounts.create_organisation(
            session=session, actor="test", name="KZ-CERT", kind=OrganisationKind.cert
        )
        secret = pyotp.random_base32()
        user = User(
            organisation_id=cert.id,
            email="duty@cert.example.kz",
            display_name="Duty officer",
            role=Role.cert_coordinator,
            password_hash=password_hash(),
            language="en",
            totp_secret=secret,
        )
        session.add(user)
        session.flush()
        person = Person(user.id, user.email, user.role, cert.id, secret)
    world.people["cert.coordinator"] = person
    return person


def _headers(world: World, key: str, scopes: list[str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.token(key, scopes)}"}


def test_report_answered_by_the_coordinator(client: TestClient, world: World) -> None:
    coordinator = _coordinator(world)
    a = _headers(
        world, "a.analyst", ["alerts:write", "alerts:read", "incidents:read", "incidents:write"]
    )
    client.post(
        "/api/v1/alerts", json=[alert_payload(i, host="secret-host") for i in range(2)], headers=a
    )
    ids = [x["id"] for x in client.get("/api/v1/alerts", headers=a).json()["items"]]
    incident = client.post("/api/v1/incidents", json={"alert_ids": ids}, headers=a).json()[
        "incident"
    ]
    url = f"/api/v1/incidents/{incident['id']}"
    cert = _headers(
        world, "cert.coordinator", ["incidents:read", "incidents:coordinate", "incidents:write"]
    )
    # Before the report the coordinator sees nothing.
    assert client.get(url, headers=cert).status_code == 404
    assert client.get("/api/v1/incidents?scope=reported", headers=cert).json()["total"] == 0
    asked = client.post(f"{url}/messages", json={"text": "hello"}, headers=a)
    assert asked.status_code == 400 and "report" in asked.json()["detail"]
    reported = client.post(f"{url}/report", json={}, headers=a)
    assert reported.status_code == 200, reported.text
    assert reported.json()["reported_to_id"] == coordinator.organisation_id
    again = client.post(f"{url}/report", json={}, headers=a)
    assert again.status_code == 400 and "already" in again.json()["detail"]
    # The coordinator reads it and lists it with its clock, but changes nothing.
    listed = client.get("/api/v1/incidents?scope=reported", headers=cert).json()
    assert [i["id"] for i in listed["items"]] == [incident["id"]]
    assert listed["items"][0]["next_due_at"]
    assert client.get(url, headers=cert).json()["title"] == incident["title"]
    for method, path, body in (
        ("PATCH", url, {"title": "taken over"}),
        ("POST", f"{url}/status", {"status": "triage"}),
        ("POST", f"{url}/notes", {"text": "x"}),
    ):
        assert client.request(method, path, json=body, headers=cert).status_code == 404
    question = client.post(
        f"{url}/messages",
        json={"text": "Which accounts were used?", "kind": "question"},
        headers=cert,
    )
    assert question.status_code == 201, question.text
    # The reporter answers; a reporter cannot write a "recommendation".
    refused = client.post(
        f"{url}/messages", json={"text": "x", "kind": "recommendation"}, headers=a
    )
    assert refused.status_code == 400
    answer = client.post(f"{url}/messages", json={"text": "Only admin."}, headers=a)
    assert answer.status_code == 201
    recommendation = client.post(
        f"{url}/messages",
        json={"text": "Reset the admin password and enable MFA.", "kind": "recommendation"},
        headers=cert,
    )
    assert recommendation.status_code == 201
    thread = client.get(f"{url}/messages", headers=a).json()
    assert [m["kind"] for m in thread] == ["question", "message", "recommendation"]
    assert thread == client.get(f"{url}/messages", headers=cert).json()
    # Another organisation sees neither the incident nor its thread.
    b = _headers(world, "b.analyst", ["incidents:read", "incidents:write"])
    assert client.get(f"{url}/messages", headers=b).status_code == 404
    assert client.post(f"{url}/messages", json={"text": "x"}, headers=b).status_code == 404
    # The coordinator's page shows the report, the thread and no tasks or notes.
    sign_in(client, coordinator)
    page = client.get(f"/incidents/{incident['id']}").text
    assert "Reported to your organisation by Organisation A" in page
    assert "Reset the admin password" in page and 'aria-labelledby="tasks"' not in page
    listing = client.get("/incidents?scope=reported").text
    assert f"INC-{incident['id']:06d}" in listing and "Organisation A" in listing


def test_without_a_coordinator_the_report_says_so(client: TestClient, world: World) -> None:
    a = _headers(world, "a.analyst", ["incidents:read", "incidents:write"])
    incident = client.post("/api/v1/incidents", json={"title": "x"}, headers=a).json()["incident"]
    answer = client.post(f"/api/v1/incidents/{incident['id']}/report", json={}, headers=a)
    assert answer.status_code == 400 and "no national coordinator" in answer.json()["detail"]


def test_the_coordinator_exports_a_signed_referral(
    client: TestClient, world: World, tmp_path: Path
) -> None:
    coordinator = _coordinator(world)
    a = _headers(
        world, "a.analyst", ["alerts:write", "alerts:read", "incidents:read", "incidents:write"]
    )
    client.post("/api/v1/alerts", json=[alert_payload(1, host="payments")], headers=a)
    ids = [x["id"] for x in client.get("/api/v1/alerts", headers=a).json()["items"]]
    incident = client.post("/api/v1/incidents", json={"alert_ids": ids}, headers=a).json()[
        "incident"
    ]
    url = f"/api/v1/incidents/{incident['id']}"
    upload = client.post(
        f"{url}/evidence",
        files={"file": ("auth.log", b"Failed password for admin from 203.0.113.7\n", "text/plain")},
        headers=a,
    )
    assert upload.status_code == 201, upload.text
    client.post(f"{url}/report", json={}, headers=a)
    csrf = sign_in(client, coordinator)
    articles = client.post(
        f"/incidents/{incident['id']}/articles",
        data={"csrf_token": csrf, "articles": ["205", "208"]},
    )
    assert articles.status_code == 200 and 'data-article="208"' in articles.text
    opened = client.get(f"/incidents/{incident['id']}/evidence/{upload.json()['id']}")
    assert opened.status_code == 200 and opened.content.startswith(b"Failed password")
    package = client.post(
        f"/incidents/{incident['id']}/referral", data={"csrf_token": csrf, "language": "kk"}
    )
    assert package.status_code == 200, package.text
    assert package.headers["content-type"] == "application/zip"
    path = tmp_path / "package.zip"
    path.write_bytes(package.content)
    checked = referral.verify_package(path)
    assert checked.ok, checked.problems
    assert checked.manifest is not None
    members = {m.path for m in checked.manifest.members}
    assert "summary.pdf" in members and any(p.startswith("evidence/") for p in members)
    custody = zipfile.ZipFile(path).read("custody.csv").decode()
    assert "Analyst A,added" in custody and "Duty officer,opened" in custody
    with zipfile.ZipFile(path) as archive:
        assert archive.read(next(p for p in members if p.startswith("evidence/"))).startswith(
            b"Failed password"
        )
    # The export is in the trail and the timeline; another organisation cannot export.
    kinds = [e["kind"] for e in client.get(f"{url}/timeline", headers=a).json()["entries"]]
    assert "referral" in kinds and "articles" in kinds
    sign_in(client, world["b.admin"])
    other = client.post(f"/incidents/{incident['id']}/referral", data={"csrf_token": csrf})
    assert other.status_code in (403, 404)
