"""Incidents over the API: created from picked alerts or from a filter, worked through the
lifecycle with tasks and notes, merged and split, within the caller's organisation only."""

from __future__ import annotations

from fastapi.testclient import TestClient

from .conftest import World, alert_payload

ALL = [
    "alerts:read",
    "alerts:write",
    "incidents:read",
    "incidents:write",
]


def _bearer(world: World, key: str, scopes: list[str] = ALL) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.token(key, scopes)}"}


def _alerts(
    client: TestClient, headers: dict[str, str], count: int, host: str = "srv"
) -> list[int]:
    client.post(
        "/api/v1/alerts", json=[alert_payload(i, host=host) for i in range(count)], headers=headers
    )
    page = client.get(f"/api/v1/alerts?host={host}&limit=500", headers=headers).json()
    return sorted(item["id"] for item in page["items"])


def test_an_incident_from_alerts_worked_to_closure(client: TestClient, world: World) -> None:
    a = _bearer(world, "a.analyst")
    ids = _alerts(client, a, 6)
    made = client.post("/api/v1/incidents", json={"alert_ids": ids[:4]}, headers=a)
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["alerts_added"], body["alerts_elsewhere"]) == (4, 0)
    incident = body["incident"]
    assert incident["reference"] == f"INC-{incident['id']:06d}"
    assert incident["kz_cert_class"] == "credential-attack"
    assert incident["severity"] == "high" and incident["status"] == "new"
    url = f"/api/v1/incidents/{incident['id']}"
    # All alerts matching a filter: those already in the incident stay there.
    more = client.post(
        f"{url}/alerts?host=srv&status=new", json={"all_matching": True}, headers=a
    ).json()
    assert more == {"added": 2, "elsewhere": 4}
    tasks = client.post(
        f"{url}/tasks/template",
        json={"template_id": "password-guessing", "language": "ru"},
        headers=a,
    )
    assert tasks.status_code == 201 and len(tasks.json()) >= 4
    assert any("\u0430" <= ch <= "\u044f" for ch in tasks.json()[0]["title"])  # Russian
    again = client.post(
        f"{url}/tasks/template", json={"template_id": "password-guessing"}, headers=a
    )
    assert again.status_code == 400 and "already" in again.json()["detail"]
    first_task = tasks.json()[0]["id"]
    done = client.put(f"{url}/tasks/{first_task}/status", json={"status": "done"}, headers=a)
    assert done.json()["status"] == "done" and done.json()["done_at"]
    note = client.post(
        f"{url}/notes", json={"text": "**Blocked** 203.0.113.7 <script>x</script>"}, headers=a
    )
    assert note.status_code == 201
    for status in ("triage", "containment", "eradication", "recovery", "review"):
        moved = client.post(f"{url}/status", json={"status": status}, headers=a)
        assert moved.status_code == 200, moved.text
    refused = client.post(f"{url}/status", json={"status": "closed"}, headers=a)
    assert refused.status_code == 400 and "resolution" in refused.json()["detail"]
    closed = client.post(
        f"{url}/status", json={"status": "closed", "resolution": "true-positive-impact"}, headers=a
    ).json()
    assert closed["status"] == "closed" and closed["closed_at"]
    states = {c["measure"]: c["state"] for c in closed["clocks"]}
    assert set(states) == {"acknowledge", "contain", "close"}
    assert all(s in ("met", "met_late") for s in states.values())
    kinds = [e["kind"] for e in client.get(f"{url}/timeline", headers=a).json()["entries"]]
    assert kinds.count("alert") == 6
    assert {"created", "alerts_added", "template", "task", "note", "status"} <= set(kinds)
    listed = client.get("/api/v1/incidents?status=closed", headers=a).json()
    assert [i["id"] for i in listed["items"]] == [incident["id"]]
    assert client.get("/api/v1/incidents", headers=a).json()["total"] == 0  # open ones


def test_another_organisation_sees_and_changes_nothing(client: TestClient, world: World) -> None:
    a = _bearer(world, "a.analyst")
    b = _bearer(world, "b.analyst")
    ids = _alerts(client, a, 2)
    incident = client.post("/api/v1/incidents", json={"alert_ids": ids}, headers=a).json()
    url = f"/api/v1/incidents/{incident['incident']['id']}"
    for method, path, body in (
        ("GET", url, None),
        ("GET", f"{url}/timeline", None),
        ("GET", f"{url}/notes", None),
        ("PATCH", url, {"title": "mine now"}),
        ("POST", f"{url}/status", {"status": "triage"}),
        ("POST", f"{url}/notes", {"text": "hello"}),
        ("POST", f"{url}/alerts", {"alert_ids": [1]}),
        ("POST", f"{url}/merge", {"into": 1}),
    ):
        answer = client.request(method, path, json=body, headers=b)
        assert answer.status_code == 404, (method, path, answer.text)
    assert client.get("/api/v1/incidents?status=all", headers=b).json()["total"] == 0
    # B's own incident cannot take A's alerts.
    refused = client.post("/api/v1/incidents", json={"alert_ids": ids}, headers=b)
    assert refused.status_code == 400
    # The neighbour: A reads its own.
    assert client.get(url, headers=a).status_code == 200


def test_scopes_and_roles(client: TestClient, world: World) -> None:
    reader = _bearer(world, "a.analyst", ["incidents:read"])
    made = client.post("/api/v1/incidents", json={"title": "By hand"}, headers=reader)
    assert made.status_code == 403
    auditor = _bearer(world, "a.auditor", ["incidents:read"])
    assert client.get("/api/v1/incidents", headers=auditor).status_code == 200
    by_hand = client.post(
        "/api/v1/incidents", json={"title": "By hand"}, headers=_bearer(world, "a.analyst")
    )
    assert by_hand.status_code == 201 and by_hand.json()["incident"]["origin"] == "manual"
    coordinate = client.get("/api/v1/incidents?scope=reported", headers=_bearer(world, "a.analyst"))
    assert coordinate.status_code == 403


def test_bad_input_is_refused_clearly(client: TestClient, world: World) -> None:
    a = _bearer(world, "a.analyst")
    for body in (
        {"title": "x\x00y"},
        {"title": "x" * 301},
        {"tlp": "purple"},
        {"alert_ids": [0]},
    ):
        answer = client.post("/api/v1/incidents", json=body, headers=a)
        assert answer.status_code == 422, (body, answer.text)
    lone_surrogate = b'{"title": "x\\ud800"}'  # JSON may escape one; UTF-8 cannot hold it
    answer = client.post(
        "/api/v1/incidents",
        content=lone_surrogate,
        headers={**a, "Content-Type": "application/json"},
    )
    assert answer.status_code in (400, 422), answer.text
    made = client.post("/api/v1/incidents", json={"title": "ok"}, headers=a).json()
    url = f"/api/v1/incidents/{made['incident']['id']}"
    answer = client.put(f"{url}/severity", json={"severity": "critical"}, headers=a)
    assert answer.status_code == 400 and "reason" in answer.json()["detail"]
    answer = client.put(
        f"{url}/severity", json={"severity": "critical", "reason": "payments down"}, headers=a
    )
    assert answer.json()["severity"] == "critical" and answer.json()["severity_overridden"]
    answer = client.patch(url, json={"criminal_code": ["190"]}, headers=a)
    assert answer.status_code == 400
