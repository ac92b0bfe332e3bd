"""Incident settings: deadlines per class, an organisation's own task templates, and the asset
register that raises the severity of incidents on critical systems."""

from __future__ import annotations

import yaml
from fastapi.testclient import TestClient

from .conftest import World, alert_payload, sign_in


def test_deadlines_templates_and_assets(client: TestClient, world: World) -> None:
    csrf = sign_in(client, world["a.admin"])
    page = client.post(
        "/incidents/settings/deadlines",
        data={
            "csrf_token": csrf,
            "kz_cert_class": "credential-attack",
            "measure": "close",
            "amount": "3",
            "unit": "working_days",
        },
    )
    assert page.status_code == 200 and 'data-class="credential-attack"' in page.text
    assert "3 working days" in page.text
    refused = client.post(
        "/incidents/settings/deadlines",
        data={"csrf_token": csrf, "kz_cert_class": "no-such", "measure": "close", "amount": "3"},
    )
    assert refused.status_code == 400
    # A template edited as YAML: a broken one is refused with the reason, a good one is kept.
    edit = client.get("/incidents/settings/templates/password-guessing")
    assert edit.status_code == 200
    data = yaml.safe_load(
        edit.text.split('name="text"')[1]
        .split(">", 1)[1]
        .split("</textarea>")[0]
        .replace("&#39;", "'")
        .replace("&quot;", '"')
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
    )
    data["tasks"][0]["phase"] = "lunch"
    bad = client.post(
        "/incidents/settings/templates/password-guessing",
        data={"csrf_token": csrf, "text": yaml.safe_dump(data, allow_unicode=True)},
    )
    assert bad.status_code == 400 and "lunch" in bad.text
    data["tasks"][0]["phase"] = "triage"
    data["tasks"][0]["title"]["en"] = "Call the duty officer of the akimat"
    good = client.post(
        "/incidents/settings/templates/password-guessing",
        data={"csrf_token": csrf, "text": yaml.safe_dump(data, allow_unicode=True)},
    )
    assert good.status_code == 200
    asset = client.post(
        "/incidents/settings/assets",
        data={
            "csrf_token": csrf,
            "name": "Payments gateway",
            "criticality": "4",
            "critical_infrastructure": "1",
            "names": "pay-01, PAY-02",
        },
    )
    assert asset.status_code == 200 and "pay-01, pay-02" in asset.text
    # An incident from alerts on that host finds the asset and is raised to critical.
    headers = {
        "Authorization": "Bearer "
        + world.token(
            "a.analyst", ["alerts:write", "alerts:read", "incidents:write", "incidents:read"]
        )
    }
    client.post(
        "/api/v1/alerts", json=[alert_payload(1, level="high", host="pay-02")], headers=headers
    )
    ids = [a["id"] for a in client.get("/api/v1/alerts", headers=headers).json()["items"]]
    made = client.post(
        "/api/v1/incidents",
        json={"alert_ids": ids, "kz_cert_class": "credential-attack"},
        headers=headers,
    ).json()["incident"]
    assert made["severity"] == "critical"
    tasks = client.post(
        f"/api/v1/incidents/{made['id']}/tasks/template",
        json={"template_id": "password-guessing", "language": "en"},
        headers=headers,
    ).json()
    assert tasks[0]["title"] == "Call the duty officer of the akimat"
    # Another organisation keeps the built-in template and sees none of A's assets.
    other = {"Authorization": "Bearer " + world.token("b.analyst", ["incidents:read"])}
    templates = client.get("/api/v1/task-templates", headers=other).json()
    assert (
        templates["password-guessing"]["tasks"][0]["title"]["en"]
        != "Call the duty officer of the akimat"
    )
    assert client.get("/api/v1/assets", headers=other).json() == []
    deadlines = client.get("/api/v1/incident-deadlines", headers=other).json()
    assert deadlines == []


def test_settings_need_their_permissions(client: TestClient, world: World) -> None:
    csrf = sign_in(client, world["a.analyst"])
    assert client.get("/incidents/settings").status_code == 200
    refused = client.post(
        "/incidents/settings/deadlines",
        data={"csrf_token": csrf, "kz_cert_class": "*", "measure": "close", "amount": "3"},
    )
    assert refused.status_code == 403
    assert client.get("/incidents/settings/templates/malware").status_code == 403
    # Analysts keep the asset register.
    added = client.post(
        "/incidents/settings/assets", data={"csrf_token": csrf, "name": "Web portal"}
    )
    assert added.status_code == 200 and "Web portal" in added.text
