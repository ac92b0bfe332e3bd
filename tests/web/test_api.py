"""The REST API: idempotent ingestion, validation, lists and filters, triage with audit
entries, token scopes, hunts in the background, health and metrics."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from qorgan.core import audit
from qorgan.core.db import unit_of_work
from qorgan.core.models import AuditEntry

from .conftest import METRICS_TOKEN, World, alert_payload, sign_in


def _bearer(world: World, key: str, scopes: list[str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.token(key, scopes)}"}


def test_ingestion_is_idempotent(client: TestClient, world: World) -> None:
    headers = _bearer(world, "a.analyst", ["alerts:write", "alerts:read"])
    batch = [alert_payload(i) for i in range(10)]
    first = client.post("/api/v1/alerts", json=batch + batch[:2], headers=headers)
    assert first.json() == {"received": 12, "created": 10, "duplicates": 2}
    again = client.post("/api/v1/alerts", json=batch, headers=headers)
    assert again.json() == {"received": 10, "created": 0, "duplicates": 10}
    assert client.get("/api/v1/alerts", headers=headers).json()["total"] == 10
    # The same alert in another organisation is that organisation's own alert.
    other = client.post(
        "/api/v1/alerts", json=batch[:1], headers=_bearer(world, "b.analyst", ["alerts:write"])
    )
    assert other.json()["created"] == 1


def test_bad_alerts_are_refused_with_reasons(client: TestClient, world: World) -> None:
    headers = _bearer(world, "a.analyst", ["alerts:write", "alerts:read"])
    bad_level = alert_payload(1) | {"rule": {**alert_payload(1)["rule"], "level": "urgent"}}  # type: ignore[dict-item]
    huge = alert_payload(2) | {"event": {"blob": "x" * 70_000}}
    bad_time = alert_payload(3) | {"time": "yesterday"}
    for body in (
        [bad_level],
        [huge],
        [bad_time],
        {"not": "a list"},
        "[",
        [alert_payload(4)] * 5001,
    ):
        kwargs: dict[str, Any] = {"content": body} if isinstance(body, str) else {"json": body}
        response = client.post("/api/v1/alerts", headers=headers, **kwargs)
        assert response.status_code == 422, response.text[:200]
        assert response.json()["detail"]
    # Nothing of a refused request is stored, not even its good alerts.
    mixed = client.post("/api/v1/alerts", json=[alert_payload(5), bad_level], headers=headers)
    assert mixed.status_code == 422
    assert client.get("/api/v1/alerts", headers=headers).json()["total"] == 0


def test_nul_characters_in_events_are_kept_visibly(client: TestClient, world: World) -> None:
    # PostgreSQL refuses NUL in text and JSON; log events carry it. Stored as U+2400 on both
    # databases, and an escaped backslash followed by "u0000" stays as it was.
    headers = _bearer(world, "a.analyst", ["alerts:write", "alerts:read"])
    alert = alert_payload(1) | {"event": {"cmd\x00line": "a\x00b", "text": "\\u0000"}}
    assert client.post("/api/v1/alerts", json=[alert], headers=headers).json()["created"] == 1
    alert_id = client.get("/api/v1/alerts", headers=headers).json()["items"][0]["id"]
    body = client.get(f"/api/v1/alerts/{alert_id}", headers=headers).json()["body"]
    assert body["event"] == {"cmd\u2400line": "a\u2400b", "text": "\\u0000"}


def test_filters_groups_and_timeline(client: TestClient, world: World) -> None:
    headers = _bearer(world, "a.analyst", ["alerts:write", "alerts:read"])
    batch = [
        alert_payload(i, level="high" if i % 2 else "low", host=f"h{i % 3}") for i in range(30)
    ]
    client.post("/api/v1/alerts", json=batch, headers=headers)

    def total(query: str) -> int:
        return int(client.get(f"/api/v1/alerts?{query}", headers=headers).json()["total"])

    assert total("level=high") == 15
    assert total("level=high&level=low") == 30
    assert total("host=h1") == 10
    assert total("host=h1&level=low") == sum(1 for i in range(30) if i % 3 == 1 and i % 2 == 0)
    assert total("kz_cert=credential-attack") == 30
    assert total(f"rule={batch[0]['rule']['id']}") == sum(1 for i in range(30) if i % 7 == 0)  # type: ignore[index]
    # Dates are Almaty days: 2026-11-20 runs from 19:00Z on the 19th to 19:00Z on the 20th.
    in_day = sum(
        1 for i in range(30) if (20 + i % 3, i % 24) in {(20, h) for h in range(19)} | {(19, 0)}
    )
    assert total("since=2026-11-20&until=2026-11-20") == in_day
    assert total("since=2026-11-21T00:00:00Z") == sum(1 for i in range(30) if i % 3 >= 1)
    assert (
        client.get("/api/v1/alerts?since=2026-11-21T00:00:00", headers=headers).status_code == 422
    )
    groups = client.get("/api/v1/alerts/groups?by=host", headers=headers).json()
    assert groups["total"] == 3
    assert sorted((g["host"], g["count"]) for g in groups["items"]) == [
        ("h0", 10),
        ("h1", 10),
        ("h2", 10),
    ]
    timeline = client.get("/api/v1/alerts/timeline?bucket=day", headers=headers).json()
    assert timeline["bucket"] == "day"
    assert sum(p["count"] for p in timeline["points"]) == 30
    assert all(p["bucket"].endswith("+05:00") for p in timeline["points"])


def test_triage_is_audited_and_needs_the_permission(client: TestClient, world: World) -> None:
    client.post(
        "/api/v1/alerts",
        json=[alert_payload(1)],
        headers=_bearer(world, "a.analyst", ["alerts:write"]),
    )
    reader = _bearer(world, "a.auditor", ["alerts:read"])
    alert_id = client.get("/api/v1/alerts", headers=reader).json()["items"][0]["id"]
    # The auditor reads (the read is audited) but may not triage.
    assert client.get(f"/api/v1/alerts/{alert_id}", headers=reader).status_code == 200
    assert client.post(f"/api/v1/alerts/{alert_id}/acknowledge", headers=reader).status_code == 403
    # A token without the scope may not either, whatever its user's role.
    narrow = _bearer(world, "a.analyst", ["alerts:read"])
    assert client.post(f"/api/v1/alerts/{alert_id}/acknowledge", headers=narrow).status_code == 403
    triage = _bearer(world, "a.analyst", ["alerts:*"])
    acked = client.post(f"/api/v1/alerts/{alert_id}/acknowledge", headers=triage)
    assert acked.json()["status"] == "acknowledged"
    assigned = client.put(
        f"/api/v1/alerts/{alert_id}/assignee",
        json={"assignee_id": world["a.coordinator"].id},
        headers=triage,
    )
    assert assigned.json()["assignee_id"] == world["a.coordinator"].id
    foreign = client.put(
        f"/api/v1/alerts/{alert_id}/assignee",
        json={"assignee_id": world["b.analyst"].id},
        headers=triage,
    )
    assert foreign.status_code == 400
    fp = client.post(f"/api/v1/alerts/{alert_id}/false-positive", headers=triage)
    assert fp.json()["status"] == "false_positive"
    with unit_of_work(world.factory) as session:
        trail = session.scalars(
            select(AuditEntry).where(
                AuditEntry.target_type == "alert", AuditEntry.target_id == str(alert_id)
            )
        ).all()
        assert [e.action for e in trail] == [
            "alert.read",
            "alert.acknowledge",
            "alert.assign",
            "alert.false_positive",
        ]
        assert {e.actor for e in trail} == {
            str(world["a.auditor"].id),
            str(world["a.analyst"].id),
        }
        assert audit.verify(session=session) == []


def test_unauthenticated_and_bad_tokens(client: TestClient, world: World) -> None:
    assert client.get("/api/v1/alerts").status_code == 401
    bad = client.get("/api/v1/alerts", headers={"Authorization": "Bearer qgn_nope"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
    partner = _bearer(world, "a.partner", ["*"])
    assert client.get("/api/v1/alerts", headers=partner).status_code == 403
    # A partner exchanges intel and sees nothing else of the console.
    assert client.get("/api/v1/me", headers=partner).json()["permissions"] == [
        "intel:read",
        "intel:write",
    ]


def test_browser_session_on_the_api_needs_csrf_for_writes(client: TestClient, world: World) -> None:
    csrf = sign_in(client, world["a.analyst"])
    assert client.get("/api/v1/alerts").status_code == 200
    assert client.post("/api/v1/alerts", json=[alert_payload(1)]).status_code == 403
    ok = client.post("/api/v1/alerts", json=[alert_payload(1)], headers={"X-CSRF-Token": csrf})
    assert ok.json()["created"] == 1


def _wait_for(client: TestClient, headers: dict[str, str], hunt_id: int) -> dict[str, Any]:
    for _ in range(600):
        hunt = client.get(f"/api/v1/hunts/{hunt_id}", headers=headers).json()
        if hunt["status"] in ("done", "failed"):
            return dict(hunt)
        time.sleep(0.1)
    raise AssertionError(f"hunt {hunt_id} did not finish")


def test_hunt_over_server_files_in_the_background(client: TestClient, world: World) -> None:
    headers = _bearer(world, "a.analyst", ["hunts:*", "alerts:read"])
    files = client.get("/api/v1/hunts/files", headers=headers).json()
    assert {f["path"] for f in files} >= {"examples/auth.log", "examples/access.log"}
    started = client.post("/api/v1/hunts", json={"paths": ["examples"]}, headers=headers)
    assert started.status_code == 202 and started.json()["status"] == "queued"
    hunt = _wait_for(client, headers, started.json()["id"])
    assert hunt["status"] == "done", hunt
    assert hunt["done_bytes"] == hunt["total_bytes"] > 0
    assert hunt["alerts_found"] == hunt["alerts_new"] > 0
    assert hunt["quarantined"] == 3  # one bad record is planted in each example file
    alerts = client.get("/api/v1/alerts", headers=headers).json()
    assert alerts["total"] == hunt["alerts_new"]
    # The same files again: the same alerts, none new.
    again = client.post("/api/v1/hunts", json={"paths": ["examples"]}, headers=headers)
    second = _wait_for(client, headers, again.json()["id"])
    assert second["alerts_found"] == hunt["alerts_found"] and second["alerts_new"] == 0


def test_hunts_stay_inside_the_hunt_folder(client: TestClient, world: World) -> None:
    headers = _bearer(world, "a.analyst", ["hunts:*"])
    for path in ("../../etc/passwd", "/etc/passwd", "examples/../../..", "missing.log"):
        response = client.post("/api/v1/hunts", json={"paths": [path]}, headers=headers)
        assert response.status_code == 400, path
    assert client.get("/api/v1/hunts", headers=headers).json() == []


def test_hunt_of_an_upload_from_the_page(client: TestClient, world: World) -> None:
    csrf = sign_in(client, world["a.analyst"])
    log = b"".join(
        b"Nov 20 08:00:%02d gov-web-01 sshd[4242]: Failed password for root from "
        b"203.0.113.77 port 5%04d ssh2\n" % (i, i)
        for i in range(12)
    )
    response = client.post(
        "/hunts",
        data={"csrf_token": csrf},
        files=[("files", ("../../evil name.log", log, "text/plain"))],
        follow_redirects=False,
    )
    assert response.status_code == 303
    headers = _bearer(world, "a.analyst", ["hunts:read"])
    hunt_id = client.get("/api/v1/hunts", headers=headers).json()[0]["id"]
    hunt = _wait_for(client, headers, hunt_id)
    assert hunt["status"] == "done" and hunt["events"] == 12 and hunt["alerts_found"] > 0
    assert hunt["files"] == ["evil_name.log"]
    uploads = list((world.settings.var_dir / "uploads").rglob("*"))
    assert all(world.settings.var_dir in p.parents for p in uploads)
    assert client.get("/hunts").status_code == 200
    row = client.get(f"/hunts/{hunt_id}")
    assert 'data-status="done"' in row.text and "hx-trigger" not in row.text


def test_health_readiness_and_metrics(client: TestClient, world: World) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    client.post(
        "/api/v1/alerts",
        json=[alert_payload(1), alert_payload(1)],
        headers=_bearer(world, "a.analyst", ["alerts:write"]),
    )
    metrics = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    assert 'qorgan_alerts_ingested_total{outcome="created"} 1.0' in metrics
    assert 'qorgan_alerts_ingested_total{outcome="duplicate"} 1.0' in metrics
    assert 'route="/api/v1/alerts"' in metrics
