"""The alert page and its API: classification with names, the rule, the event with matched
fields highlighted and empty ones folded, correlation members, related alerts, comments and
history; each where it works and a neighbour where it must not (another organisation's alerts
never show up, an auditor cannot comment, NUL is refused)."""

from __future__ import annotations

import copy
import functools
import html
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from qorgan.core import accounts
from qorgan.core.db import unit_of_work
from qorgan.core.models import AuditEntry
from qorgan.detection.hunt import run_hunt
from qorgan.pipeline.hunts import default_plan
from qorgan.telemetry.quarantine import Quarantine

from .conftest import EXAMPLES, World, alert_payload, csrf_of, sign_in

SHADOW = "Shadow Copies Deleted"
GUESSING = "SSH Password Guessing From One Address"
CLASSES = {
    "kz_cert": "credential-attack",
    "rsit": {"class": "intrusion-attempts", "type": "brute-force"},
    "criminal_code": ["205"],
    "attack": {"techniques": ["T1110"], "tactics": ["credential-access"]},
}


@functools.cache
def _hunted() -> tuple[dict[str, Any], ...]:
    """The alerts of a real hunt of ``examples/logs`` with the built-in rules."""
    found: list[Any] = []
    run_hunt(sorted(EXAMPLES.iterdir()), default_plan(), sink=found.extend, quarantine=Quarantine())
    return tuple(a.to_dict() for a in found)


def hunted() -> list[dict[str, Any]]:
    return copy.deepcopy(list(_hunted()))


def bearer(world: World, key: str, scopes: list[str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.token(key, scopes)}"}


def send(client: TestClient, world: World, key: str, alerts: list[dict[str, Any]]) -> None:
    response = client.post(
        "/api/v1/alerts", json=alerts, headers=bearer(world, key, ["alerts:write"])
    )
    assert response.status_code == 200, response.text


def ids_by_title(client: TestClient, headers: dict[str, str]) -> dict[str, list[int]]:
    """Alert ids per rule title, oldest event first."""
    items = client.get("/api/v1/alerts?limit=500", headers=headers).json()["items"]
    out: dict[str, list[int]] = {}
    for item in sorted(items, key=lambda i: (i["time"] or "", i["id"])):
        out.setdefault(item["rule_title"], []).append(item["id"])
    return out


def section(page: str, anchor: str) -> str:
    """The HTML of the page's section whose heading has the id ``anchor``."""
    found = re.search(rf'<section aria-labelledby="{anchor}">(.*?)</section>', page, re.S)
    assert found, f"no section {anchor}"
    return found.group(1)


def test_a_hunted_alert_in_full(client: TestClient, world: World) -> None:
    send(client, world, "a.analyst", hunted())
    reader = bearer(world, "a.analyst", ["alerts:read"])
    shadow = ids_by_title(client, reader)[SHADOW][0]
    sign_in(client, world["a.analyst"])
    page = client.get(f"/alerts/{shadow}")
    assert page.status_code == 200, page.text
    text = page.text

    # ATT&CK with names, linked; the classes as labels, the articles with their names.
    classification = section(text, "classification")
    assert '<a href="https://attack.mitre.org/techniques/T1490/"' in classification
    assert "Inhibit System Recovery" in classification
    assert 'href="https://attack.mitre.org/tactics/TA0040/"' in classification  # Impact
    assert "Distribution of malware and spam" in text  # KZ-CERT, in English for this user
    assert "Malicious Code / Infected System" in classification  # ENISA RSIT class / type
    assert re.search(r'data-article="206">Article 206\. Unlawful destruction', classification)

    # The rule: description, false positives, references, author.
    rule = section(text, "rule")
    assert "vssadmin" in rule.lower() and "<h3>False positives</h3>" in rule
    assert 'data-rule="not-loaded"' not in rule
    assert "Qorgan" in rule  # the pack's author

    # The event: the fields the rule matched are marked, the others are not.
    event = section(text, "event")
    for name in ("CommandLine", "Image"):
        assert re.search(rf'<tr class="matched" data-field="{name}">', event), name
    assert '<tr class="" data-field="ParentImage">' in event
    # Reading the page is audited.
    with unit_of_work(world.factory) as session:
        reads = session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "alert.read", AuditEntry.target_id == str(shadow)
            )
        ).all()
        assert len(reads) == 1


def test_empty_fields_are_folded_and_links_pivot(client: TestClient, world: World) -> None:
    send(client, world, "a.analyst", hunted())
    reader = bearer(world, "a.analyst", ["alerts:read"])
    ssh = ids_by_title(client, reader)["SSH Password Authentication Failed"][0]
    sign_in(client, world["a.analyst"])
    text = client.get(f"/alerts/{ssh}").text
    event = section(text, "event")
    folded = re.search(r'<details class="empty-fields">(.*?)</details>', event, re.S)
    assert folded, "empty fields are not folded"
    # syslog leaves facility, severity, msgid and structured_data null: folded, not shown open.
    assert "Show 4 empty fields" in folded.group(1)
    for name in ("facility", "severity", "msgid", "structured_data"):
        assert f'data-field="{name}"' in folded.group(1)
        assert f'data-field="{name}"' not in event.replace(folded.group(0), "")
    assert '<tr class="matched" data-field="event_type">' in event
    # Observables pivot into the inbox.
    assert 'href="/alerts?host=gov-web-01"' in text
    assert 'href="/alerts?address=203.0.113.77"' in text
    assert 'href="/alerts?user=test"' in text
    assert re.search(r'href="/alerts\?rule=[0-9a-f-]{36}"', text)


def test_correlation_members_link_to_their_alerts(client: TestClient, world: World) -> None:
    alerts = hunted()
    send(client, world, "a.analyst", alerts)
    # B stores the same hunt: its copies must never be linked from A's correlation.
    send(client, world, "b.analyst", alerts)
    a_reader = bearer(world, "a.analyst", ["alerts:read"])
    a_ids = ids_by_title(client, a_reader)
    b_ids = ids_by_title(client, bearer(world, "b.analyst", ["alerts:read"]))
    correlation = a_ids[GUESSING][0]
    members = client.get(
        f"/api/v1/alerts/{correlation}/correlation-members", headers=a_reader
    ).json()
    assert len(members) >= 5
    assert all(m["alert_id"] in a_ids["SSH Password Authentication Failed"] for m in members)
    assert not {m["alert_id"] for m in members} & set(b_ids["SSH Password Authentication Failed"])
    assert len({m["alert_id"] for m in members}) == len(members)
    sign_in(client, world["a.analyst"])
    part = section(client.get(f"/alerts/{correlation}").text, "members")
    for m in members:
        assert f'href="/alerts/{m["alert_id"]}"' in part


def test_members_not_stored_are_plain_references(client: TestClient, world: World) -> None:
    lone = next(a for a in hunted() if a["rule"]["title"] == GUESSING)
    send(client, world, "a.analyst", [lone])
    reader = bearer(world, "a.analyst", ["alerts:read"])
    alert_id = ids_by_title(client, reader)[GUESSING][0]
    members = client.get(f"/api/v1/alerts/{alert_id}/correlation-members", headers=reader).json()
    assert members and all(m["alert_id"] is None for m in members)
    assert all(
        m["path"] == "examples/logs/auth.log" or m["path"].endswith("auth.log") for m in members
    )
    sign_in(client, world["a.analyst"])
    part = section(client.get(f"/alerts/{alert_id}").text, "members")
    assert 'data-member="none"' in part and 'href="/alerts/' not in part


def _at(
    index: int, time: str, host: str, user: str = "u", ip: str = "198.51.100.1"
) -> dict[str, Any]:
    alert = alert_payload(index, host=host)
    alert["time"] = time
    alert["event"] = {"user": user, "src_ip": ip}
    return alert


def test_related_alerts_within_an_hour(client: TestClient, world: World) -> None:
    send(
        client,
        world,
        "a.analyst",
        [
            _at(1, "2026-11-20T10:00:00Z", "web-01", "aigerim", "198.51.100.1"),  # the alert
            _at(2, "2026-11-20T10:40:00Z", "web-01", "x1", "192.0.2.1"),  # same host
            _at(3, "2026-11-20T09:30:00Z", "db-02", "aigerim", "192.0.2.2"),  # same user
            _at(4, "2026-11-20T10:59:00Z", "db-03", "x2", "198.51.100.1"),  # same address
            _at(5, "2026-11-20T12:00:00Z", "web-01", "aigerim", "198.51.100.1"),  # 2 h away
            _at(6, "2026-11-20T10:05:00Z", "web-99", "x3", "192.0.2.9"),  # nothing shared
        ],
    )
    send(client, world, "b.analyst", [_at(7, "2026-11-20T10:01:00Z", "web-01", "aigerim")])
    reader = bearer(world, "a.analyst", ["alerts:read"])
    items = client.get("/api/v1/alerts?limit=50", headers=reader).json()["items"]
    alert = next(i["id"] for i in items if i["time"].startswith("2026-11-20T10:00"))
    related = client.get(f"/api/v1/alerts/{alert}/related", headers=reader).json()
    assert related["window_minutes"] == 60
    groups = {g["kind"]: g for g in related["groups"]}
    assert set(groups) == {"host", "user", "address"}
    found = {k: {a["time"][11:16] for a in g["alerts"]} for k, g in groups.items()}
    assert found == {"host": {"10:40"}, "user": {"09:30"}, "address": {"10:59"}}
    assert {g["total"] for g in groups.values()} == {1}
    # B's alert at 10:01 on web-01, same user, never appears.
    assert all(
        a["organisation_id"] == world["a.analyst"].organisation_id
        for g in groups.values()
        for a in g["alerts"]
    )
    sign_in(client, world["a.analyst"])
    part = section(client.get(f"/alerts/{alert}").text, "related")
    for g in groups.values():
        for a in g["alerts"]:
            assert f'href="/alerts/{a["id"]}"' in part
    assert 'href="/alerts?host=web-01"' in part and 'href="/alerts?user=aigerim"' in part
    assert 'href="/alerts?address=198.51.100.1"' in part


def test_comments_on_the_page_and_in_the_api(client: TestClient, world: World) -> None:
    send(client, world, "a.analyst", [alert_payload(1)])
    reader = bearer(world, "a.analyst", ["alerts:read"])
    alert_id = client.get("/api/v1/alerts", headers=reader).json()["items"][0]["id"]
    csrf = sign_in(client, world["a.analyst"])
    text = "Checked with the owner.\nNot expected: <script>alert(1)</script>"
    posted = client.post(
        f"/alerts/{alert_id}/comments/new",
        data={"csrf_token": csrf, "text": text},
        follow_redirects=False,
    )
    assert posted.status_code == 303, posted.text
    assert posted.headers["location"].startswith(f"/alerts/{alert_id}#comment-")
    page = client.get(f"/alerts/{alert_id}").text
    part = section(page, "comments")
    assert html.escape(text, quote=False) in part or html.escape(text) in part
    assert "<script>alert(1)</script>" not in page
    assert "Analyst A" in part
    # Without the CSRF token the form is refused.
    refused = client.post(f"/alerts/{alert_id}/comments/new", data={"text": "x"})
    assert refused.status_code == 403
    # The API: an analyst comments; the audit names the comment, never its text.
    triager = bearer(world, "a.analyst", ["alerts:triage", "alerts:read"])
    created = client.post(
        f"/api/v1/alerts/{alert_id}/comments", json={"text": "second"}, headers=triager
    )
    assert created.status_code == 201, created.text
    listed = client.get(f"/api/v1/alerts/{alert_id}/comments", headers=reader).json()
    assert [c["text"] for c in listed] == [text, "second"]
    assert listed[0]["author_name"] == "Analyst A"
    with unit_of_work(world.factory) as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "alert.comment")
        ).all()
        assert [e.details for e in entries] == [{"comment_id": c["id"]} for c in listed]
        assert all(e.target_id == str(alert_id) for e in entries)


def test_comments_refused(client: TestClient, world: World) -> None:
    send(client, world, "a.analyst", [alert_payload(1)])
    reader = bearer(world, "a.analyst", ["alerts:read"])
    alert_id = client.get("/api/v1/alerts", headers=reader).json()["items"][0]["id"]
    triager = bearer(world, "a.analyst", ["alerts:triage"])
    url = f"/api/v1/alerts/{alert_id}/comments"
    for bad in ("bad\x00text", "", " \n ", "x" * 10_001):
        response = client.post(url, json={"text": bad}, headers=triager)
        assert response.status_code == 422, (bad[:10], response.text)
    lone = client.post(
        url,
        content=b'{"text": "half a pair \\ud800"}',
        headers={**triager, "content-type": "application/json"},
    )
    assert lone.status_code == 422
    assert client.post(url, json={"text": "x" * 10_000}, headers=triager).status_code == 201
    # An auditor reads alerts but may not comment (no alerts:triage).
    auditor = bearer(world, "a.auditor", ["alerts:read"])
    assert client.post(url, json={"text": "hi"}, headers=auditor).status_code == 403
    csrf = sign_in(client, world["a.auditor"])
    page = client.get(f"/alerts/{alert_id}").text
    assert f'action="/alerts/{alert_id}/comments/new"' not in page
    refused = client.post(
        f"/alerts/{alert_id}/comments/new", data={"csrf_token": csrf, "text": "hi"}
    )
    assert refused.status_code == 403
    # The NUL refusal on the page is shown, in the page's language.
    client.post("/logout", data={"csrf_token": csrf})
    csrf = sign_in(client, world["a.analyst"])
    nul = client.post(
        f"/alerts/{alert_id}/comments/new", data={"csrf_token": csrf, "text": "a\x00b"}
    )
    assert nul.status_code == 422 and "NUL" in nul.text
    assert len(client.get(url, headers=reader).json()) == 1


def test_shared_alerts_comments_are_read_not_written(client: TestClient, world: World) -> None:
    send(client, world, "b.analyst", [alert_payload(1, host="b-host")])
    b_reader = bearer(world, "b.analyst", ["alerts:read"])
    b_alert = client.get("/api/v1/alerts", headers=b_reader).json()["items"][0]["id"]
    b_triager = bearer(world, "b.analyst", ["alerts:triage"])
    url = f"/api/v1/alerts/{b_alert}/comments"
    assert client.post(url, json={"text": "from B"}, headers=b_triager).status_code == 201
    a_triager = bearer(world, "a.analyst", ["alerts:read", "alerts:triage"])
    assert client.get(url, headers=a_triager).status_code == 404  # not shared yet
    with unit_of_work(world.factory) as session:
        accounts.share(
            session=session,
            actor=str(world["b.admin"].id),
            owner_id=world["b.admin"].organisation_id,
            partner_id=world["a.admin"].organisation_id,
            resource="alerts",
        )
    assert [c["text"] for c in client.get(url, headers=a_triager).json()] == ["from B"]
    assert client.post(url, json={"text": "from A"}, headers=a_triager).status_code == 404
    sign_in(client, world["a.analyst"])
    page = client.get(f"/alerts/{b_alert}").text
    assert "from B" in page and "/comments/new" not in page


def test_history_newest_first_with_names(client: TestClient, world: World) -> None:
    send(client, world, "a.analyst", [alert_payload(1)])
    reader = bearer(world, "a.analyst", ["alerts:read"])
    alert_id = client.get("/api/v1/alerts", headers=reader).json()["items"][0]["id"]
    triager = bearer(world, "a.coordinator", ["alerts:triage", "alerts:read"])
    assert client.post(f"/api/v1/alerts/{alert_id}/acknowledge", headers=triager).status_code == 200
    client.put(
        f"/api/v1/alerts/{alert_id}/assignee",
        json={"assignee_id": world["a.analyst"].id},
        headers=triager,
    )
    client.post(f"/api/v1/alerts/{alert_id}/comments", json={"text": "mine"}, headers=triager)
    history = client.get(f"/api/v1/alerts/{alert_id}/history", headers=reader).json()
    assert [h["action"] for h in history] == ["alert.comment", "alert.assign", "alert.acknowledge"]
    assert {h["actor_name"] for h in history} == {"Coordinator A"}
    assert "mine" not in str(history)
    sign_in(client, world["a.analyst"])
    page = client.get(f"/alerts/{alert_id}").text
    part = section(page, "history")
    actions = re.findall(r'<tr data-action="([a-z._]+)">', part)
    assert actions == ["alert.read", "alert.comment", "alert.assign", "alert.acknowledge"]
    assert "Commented" in part and "Assigned: Analyst A" in part and "Acknowledged" in part
    assert "Coordinator A" in part and "Viewed the alert" in part
    # Another organisation's alert: 404 on the page and every API route.
    send(client, world, "b.analyst", [alert_payload(2, host="b-host")])
    b_alert = client.get(
        "/api/v1/alerts", headers=bearer(world, "b.analyst", ["alerts:read"])
    ).json()["items"][0]["id"]
    assert client.get(f"/alerts/{b_alert}").status_code == 404
    for tail in ("comments", "related", "history", "correlation-members"):
        assert client.get(f"/api/v1/alerts/{b_alert}/{tail}", headers=reader).status_code == 404


def test_alert_from_elsewhere_shows_what_it_carries(client: TestClient, world: World) -> None:
    send(client, world, "a.analyst", [alert_payload(1)])  # its rule is not loaded here
    reader = bearer(world, "a.analyst", ["alerts:read"])
    alert_id = client.get("/api/v1/alerts", headers=reader).json()["items"][0]["id"]
    sign_in(client, world["a.analyst"])
    rule = section(client.get(f"/alerts/{alert_id}").text, "rule")
    assert 'data-rule="not-loaded"' in rule and "not loaded in this console" in rule
    assert "<code>attack.t1110</code>" in rule and "rules/test.yml" in rule


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("kk", ["Жүйеге кіру әрекеттері", "205-бап", "құқыққа сыйымсыз қол жеткізу"]),
        ("ru", ["Попытки входа", "Статья 205", "Неправомерный доступ"]),
    ],
)
def test_labels_in_the_users_language(
    client: TestClient, world: World, language: str, expected: list[str]
) -> None:
    alert = alert_payload(1)
    alert["classification"] = CLASSES
    send(client, world, "a.analyst", [alert])
    reader = bearer(world, "a.analyst", ["alerts:read"])
    alert_id = client.get("/api/v1/alerts", headers=reader).json()["items"][0]["id"]
    csrf = sign_in(client, world["a.analyst"])
    client.post("/language", data={"language": language, "next": "/", "csrf_token": csrf})
    page = client.get(f"/alerts/{alert_id}")
    assert page.headers["content-language"] == language
    part = section(page.text, "classification")
    for text in expected:
        assert text in part, text
    assert "Brute Force" in part  # ATT&CK names stay in English, as MITRE publishes them
    assert csrf_of(page.text)
