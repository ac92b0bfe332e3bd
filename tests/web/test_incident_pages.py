"""The incident pages: from the inbox's selection to an incident's page, worked through the
phases by forms, with notes rendered safely and the inbox linking each alert to its incident."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from qorgan.core.db import unit_of_work
from qorgan.incidents.models import Incident

from .conftest import World, alert_payload, sign_in


def _ingest(client: TestClient, world: World, count: int) -> list[int]:
    headers = {
        "Authorization": f"Bearer {world.token('a.analyst', ['alerts:write', 'alerts:read'])}"
    }
    client.post(
        "/api/v1/alerts",
        json=[alert_payload(i, host="web-01") for i in range(count)],
        headers=headers,
    )
    items = client.get("/api/v1/alerts?limit=500", headers=headers).json()["items"]
    return sorted(item["id"] for item in items)


def _incident_id(location: str) -> int:
    found = re.fullmatch(r"/incidents/(\d+)(\?.*)?", location)
    assert found, location
    return int(found.group(1))


def test_from_the_inbox_to_closed(client: TestClient, world: World) -> None:
    ids = _ingest(client, world, 5)
    csrf = sign_in(client, world["a.analyst"])
    inbox = client.get("/alerts").text
    assert "Create incident" in inbox
    made = client.post(
        "/incidents/from-alerts",
        data={"csrf_token": csrf, "ids": [str(i) for i in ids[:3]], "scope": "selected"},
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    incident_id = _incident_id(made.headers["location"])
    page = client.get(f"/incidents/{incident_id}").text
    reference = f"INC-{incident_id:06d}"
    assert reference in page and "Time to acknowledge" in page
    assert 'data-phase="new"' in page and 'aria-current="step"' in page
    # The inbox links each alert to its incident; the others have no link.
    inbox = client.get("/alerts").text
    assert inbox.count(f'href="/incidents/{incident_id}"') == 3
    # All matching the filter, added to the same incident by its reference.
    added = client.post(
        "/incidents/from-alerts?host=web-01",
        data={"csrf_token": csrf, "scope": "all", "mode": "add", "incident": reference},
        follow_redirects=False,
    )
    assert added.status_code == 303
    assert client.get("/alerts").text.count(f'href="/incidents/{incident_id}"') == 5
    note = client.post(
        f"/incidents/{incident_id}/notes",
        data={"csrf_token": csrf, "text": "Blocked at the **edge** <script>alert(1)</script>"},
        follow_redirects=False,
    )
    assert note.status_code == 303
    page = client.get(f"/incidents/{incident_id}").text
    assert "<strong>edge</strong>" in page and "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    applied = client.post(
        f"/incidents/{incident_id}/tasks/template",
        data={"csrf_token": csrf, "template_id": "password-guessing"},
    )
    assert applied.status_code == 200 and "data-task-id" in applied.text
    for phase in ("triage", "containment", "eradication", "recovery", "review"):
        moved = client.post(
            f"/incidents/{incident_id}/status", data={"csrf_token": csrf, "status": phase}
        )
        assert moved.status_code == 200
        assert f'data-phase="{phase}"' in moved.text
    refused = client.post(
        f"/incidents/{incident_id}/status", data={"csrf_token": csrf, "status": "closed"}
    )
    assert refused.status_code == 400 and "resolution" in refused.text
    closed = client.post(
        f"/incidents/{incident_id}/status",
        data={"csrf_token": csrf, "status": "closed", "resolution": "true-positive-no-impact"},
    )
    assert "True positive, without impact" in closed.text
    listed = client.get("/incidents?tab=closed").text
    assert reference in listed
    assert reference not in client.get("/incidents").text  # the open tab


def test_the_list_flags_overdue_incidents(client: TestClient, world: World) -> None:
    csrf = sign_in(client, world["a.analyst"])
    for title in ("Old phishing report", "Fresh report"):
        client.post("/incidents", data={"csrf_token": csrf, "title": title})
    with unit_of_work(world.factory) as session:
        old = session.scalars(select(Incident).where(Incident.title == "Old phishing report")).one()
        old.next_due_at = datetime(2026, 1, 1, tzinfo=UTC)
    page = client.get("/incidents?tab=overdue").text
    assert "Old phishing report" in page and "Fresh report" not in page
    assert 'data-tab="overdue"' in page and 'data-count="1"' in page


def test_pages_need_the_role_and_refuse_tokens(client: TestClient, world: World) -> None:
    token = world.token("a.analyst", ["incidents:read"])
    page = client.get(
        "/incidents", headers={"Authorization": f"Bearer {token}"}, follow_redirects=False
    )
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    sign_in(client, world["a.auditor"])
    assert client.get("/incidents").status_code == 200
    assert client.get("/incidents/new").status_code == 403


def test_the_inbox_proposes_alerts_that_belong_together(client: TestClient, world: World) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    alerts = []
    for index in range(4):
        payload = alert_payload(7 * index, host="mail-01")  # one rule (index % 7 == 0)
        payload["time"] = (now - timedelta(minutes=10 * index)).isoformat()
        alerts.append(payload)
    lone = alert_payload(3, host="web-02")  # alone on its host, but from the same address
    lone["time"] = now.isoformat()
    old = alert_payload(14, host="db-01")
    old["time"] = (now - timedelta(days=3)).isoformat()
    old_too = alert_payload(21, host="db-01")
    old_too["time"] = (now - timedelta(days=3, minutes=5)).isoformat()
    headers = {"Authorization": f"Bearer {world.token('a.analyst', ['alerts:write'])}"}
    client.post("/api/v1/alerts", json=[*alerts, lone, old, old_too], headers=headers)
    csrf = sign_in(client, world["a.analyst"])
    assert 'hx-get="/incidents/proposals"' in client.get("/alerts").text
    panel = client.get("/incidents/proposals").text
    assert panel.count("data-proposal=") == 2
    assert "4 alerts of «Test rule 0» on mail-01" in panel
    assert "5 alerts from the address 203.0.113.7" in panel  # two hosts, two rules
    assert "on web-02" not in panel and "db-01" not in panel  # alone, and outside the window
    action = re.search(r'action="(/incidents/from-alerts\?rule=[^"]+)"', panel)
    assert action
    made = client.post(
        action.group(1).replace("&amp;", "&"),
        data={"csrf_token": csrf, "scope": "all"},
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    incident_id = _incident_id(made.headers["location"])
    page = client.get(f"/incidents/{incident_id}").text
    assert 'id="alerts">Alerts (4)' in page
    # Once in an incident, they are proposed no more.
    assert "data-proposal=" not in client.get("/incidents/proposals").text
