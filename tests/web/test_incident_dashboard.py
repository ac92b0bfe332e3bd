"""The incident dashboard, its statistics API and the monthly report: what needs action first,
the period's figures, a CSV with one row per incident of the month, a PDF in the user's
language with the font embedded, and the coordinator's view only for those allowed it."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from incidents.test_referral import _pdf_text
from qorgan.core.db import unit_of_work
from qorgan.core.models import Organisation, User
from qorgan.incidents.models import Incident

from .conftest import World, sign_in

#: Every letter of the Kazakh alphabet that Russian lacks, both cases.
KAZAKH = "ӘәҒғҚқҢңӨөҰұҮүҺһІі"


def _add(world: World, organisation: str, **values: Any) -> int:
    with unit_of_work(world.factory) as session:
        incident = Incident(organisation_id=world[organisation].organisation_id, **values)
        session.add(incident)
        session.flush()
        return incident.id


def _november(world: World) -> dict[str, int]:
    """Organisation A's November 2026 (Almaty time): three incidents, one overdue; B's one."""
    at = lambda text: datetime.fromisoformat(text).replace(tzinfo=UTC)  # noqa: E731
    return {
        "closed": _add(
            world,
            "a.analyst",
            title="Password guessing on the mail server",
            kz_cert_class="credential-attack",
            severity=3,
            status="closed",
            resolution="true-positive-impact",
            created_at=at("2026-11-02T10:00:00"),
            started_at=at("2026-11-02T08:00:00"),
            acknowledged_at=at("2026-11-02T09:00:00"),
            contained_at=at("2026-11-02T13:00:00"),
            closed_at=at("2026-11-03T09:00:00"),
        ),
        "overdue": _add(
            world,
            "a.analyst",
            title='=HYPERLINK("http://evil") malware',
            kz_cert_class="scanning",
            severity=4,
            status="containment",
            created_at=at("2026-11-20T04:00:00"),
            started_at=at("2026-11-20T03:00:00"),
            acknowledged_at=at("2026-11-20T05:00:00"),
            contain_due_at=at("2026-11-21T00:00:00"),
            next_due_at=at("2026-11-21T00:00:00"),
        ),
        "new": _add(
            world,
            "a.analyst",
            title="Unclassified finding",
            severity=1,
            status="new",
            created_at=at("2026-11-30T18:30:00"),  # 23:30 on 30 November in Almaty
            started_at=at("2026-11-30T18:30:00"),
        ),
        "december": _add(
            world,
            "a.analyst",
            title="December",
            severity=2,
            status="new",
            created_at=at("2026-11-30T19:00:00"),  # midnight of 1 December in Almaty
        ),
        "b": _add(
            world,
            "b.analyst",
            title="B's November",
            severity=4,
            status="new",
            created_at=at("2026-11-10T00:00:00"),
            next_due_at=at("2026-11-11T00:00:00"),
        ),
    }


def test_the_first_screen_is_what_needs_action(client: TestClient, world: World) -> None:
    now = datetime.now(UTC)
    overdue = _add(
        world,
        "a.analyst",
        title="Ransomware on the file server",
        severity=4,
        status="triage",
        created_at=now - timedelta(days=2),
        started_at=now - timedelta(days=2),
        next_due_at=now - timedelta(hours=5),
    )
    _add(world, "a.analyst", title="Fresh", severity=2, status="new", created_at=now)
    _add(world, "b.analyst", title="B-secret", severity=3, status="new", created_at=now)
    sign_in(client, world["a.analyst"])
    page = client.get("/incidents/dashboard")
    assert page.status_code == 200, page.text
    text = page.text
    # The overdue count and list come before the period's figures.
    assert text.index('data-overdue="1"') < text.index('id="period-heading"')
    assert f'href="/incidents/{overdue}"' in text and "Ransomware on the file server" in text
    assert 'data-open="2"' in text
    assert 'data-open-severity="critical" data-count="1"' in text
    assert 'data-open-severity="medium" data-count="1"' in text
    assert 'data-total="2"' in text and "B-secret" not in text
    assert '<script src="/static/incident_dashboard.js" defer>' in text
    assert 'data-api="/api/v1/incidents/stats?period=30d"' in text
    assert client.get("/static/incident_dashboard.js").status_code == 200
    # The list links to it; a period it does not know is said, and the default shown.
    assert 'href="/incidents/dashboard"' in client.get("/incidents").text
    odd = client.get("/incidents/dashboard?period=fortnight")
    assert odd.status_code == 200 and "YYYY-MM" in odd.text and 'data-total="2"' in odd.text
    assert client.get("/incidents/dashboard?period=2026-11").status_code == 200


def test_the_statistics_api(client: TestClient, world: World) -> None:
    made = _november(world)
    headers = {"Authorization": f"Bearer {world.token('a.analyst', ['incidents:read'])}"}
    found = client.get("/api/v1/incidents/stats?period=2026-11", headers=headers)
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["total"] == 3 and body["bucket"] == "day" and len(body["series"]) == 30
    assert body["period"]["first_day"] == "2026-11-01"
    assert body["period"]["last_day"] == "2026-11-30"
    assert {c["key"]: c["count"] for c in body["by_class"]} == {
        "credential-attack": 1,
        "scanning": 1,
        None: 1,
    }
    assert {c["key"]: c["count"] for c in body["by_severity"]} == {
        "critical": 1,
        "high": 1,
        "medium": 0,
        "low": 1,
    }
    times = {t["measure"]: t for t in body["times"]}
    assert (times["acknowledge"]["count"], times["acknowledge"]["mean_hours"]) == (2, 1.5)
    assert times["close"]["mean_hours"] == 25
    assert body["open"] == {
        "total": 3,
        "by_severity": {"critical": 1, "high": 0, "medium": 1, "low": 1},
        "overdue": 1,
    }
    assert body["by_organisation"] == [] and body["scope"] == "own"
    weekly = client.get("/api/v1/incidents/stats?period=2026-11&bucket=week", headers=headers)
    assert [p["bucket"] for p in weekly.json()["series"]][:2] == ["2026-10-26", "2026-11-02"]
    assert client.get("/api/v1/incidents/stats", headers=headers).json()["period"]["label"] == "30d"
    for bad in ("period=2026-13", "period=soon", "bucket=year", "scope=everyone"):
        answer = client.get(f"/api/v1/incidents/stats?{bad}", headers=headers)
        assert answer.status_code in (400, 422), bad
    assert client.get("/api/v1/incidents/stats").status_code == 401
    assert made["b"] not in [o["id"] for o in body["by_organisation"]]


def test_the_monthly_csv(client: TestClient, world: World) -> None:
    made = _november(world)
    sign_in(client, world["a.analyst"])
    answer = client.get("/incidents/reports/monthly?month=2026-11&format=csv")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert "qorgan-incidents-2026-11.csv" in answer.headers["content-disposition"]
    assert answer.content.startswith(b"\xef\xbb\xbf")  # a BOM: spreadsheets read Cyrillic
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert [r["reference"] for r in rows] == [
        f"INC-{made[name]:06d}" for name in ("closed", "overdue", "new")
    ]
    closed, late, fresh = rows
    assert closed["organisation"] == "Organisation A" and closed["severity"] == "high"
    assert closed["started_at"] == "2026-11-02T13:00:00+05:00"
    assert closed["closed_at"] == "2026-11-03T14:00:00+05:00"
    assert (
        closed["hours_to_acknowledge"],
        closed["hours_to_contain"],
        closed["hours_to_close"],
    ) == ("1.00", "5.00", "25.00")
    assert (closed["resolution"], closed["overdue"]) == ("true-positive-impact", "false")
    assert (late["overdue"], late["deadlines_missed"], late["hours_to_contain"]) == (
        "true",
        "contain",
        "",
    )
    assert (fresh["kz_cert_class"], fresh["status"], fresh["acknowledged_at"]) == ("", "new", "")
    assert "B's" not in answer.text
    assert client.get("/incidents/reports/monthly?month=2026-12&format=csv").text.count("\n") == 2
    for bad in ("month=2026-13&format=csv", "month=2026-11&format=xlsx", "format=csv"):
        assert client.get(f"/incidents/reports/monthly?{bad}").status_code == 400, bad


def test_the_monthly_pdf_in_kazakh(client: TestClient, world: World) -> None:
    made = _november(world)
    with unit_of_work(world.factory) as session:
        organisation = session.get(Organisation, world["a.analyst"].organisation_id)
        assert organisation is not None
        organisation.name = f"Алматы әкімдігі {KAZAKH}"
        user = session.get(User, world["a.analyst"].id)
        assert user is not None
        user.language = "kk"
    sign_in(client, world["a.analyst"])
    answer = client.get("/incidents/reports/monthly?month=2026-11&format=pdf")
    assert answer.status_code == 200, answer.text[:200]
    assert answer.headers["content-type"] == "application/pdf"
    pdf = answer.content
    assert pdf.startswith(b"%PDF-")
    assert b"/FontFile2" in pdf and b"DejaVuSans" in pdf
    text, pages = _pdf_text(pdf)  # also checks every font is embedded
    assert pages >= 1
    assert f"Алматы әкімдігі {KAZAKH}" in text and "<U+" not in text
    assert "Қараша 2026" in text  # the month, in Kazakh
    assert "Желілер мен хосттарды сканерлеу" in text  # a KZ-CERT class, in Kazakh
    assert f"INC-{made['overdue']:06d}" in text  # the overdue list
    assert "B's" not in text


def test_the_coordinators_view_needs_its_permission(client: TestClient, world: World) -> None:
    made = _november(world)
    with unit_of_work(world.factory) as session:
        incident = session.get(Incident, made["b"])
        assert incident is not None
        incident.reported_to_id = world["a.coordinator"].organisation_id
        incident.reported_at = datetime(2026, 11, 12, tzinfo=UTC)
    analyst = {"Authorization": f"Bearer {world.token('a.analyst', ['incidents:read'])}"}
    refused = client.get("/api/v1/incidents/stats?scope=reported", headers=analyst)
    assert refused.status_code == 403
    coordinator = {"Authorization": f"Bearer {world.token('a.coordinator', ['incidents:read'])}"}
    narrowed = client.get("/api/v1/incidents/stats?scope=reported", headers=coordinator)
    assert narrowed.status_code == 403  # the token lacks incidents:coordinate
    allowed = {
        "Authorization": "Bearer "
        + world.token("a.coordinator", ["incidents:read", "incidents:coordinate"])
    }
    found = client.get("/api/v1/incidents/stats?scope=reported&period=2026-11", headers=allowed)
    assert found.status_code == 200
    assert found.json()["total"] == 1
    assert found.json()["by_organisation"] == [
        {"id": world["b.analyst"].organisation_id, "name": "Organisation B", "count": 1}
    ]
    sign_in(client, world["a.analyst"])
    for path in (
        "/incidents/dashboard?scope=reported",
        "/incidents/reports/monthly?month=2026-11&format=csv&scope=reported",
        "/incidents/reports/monthly?month=2026-11&format=pdf&scope=reported",
    ):
        assert client.get(path).status_code == 403, path
    assert "scope=reported" not in client.get("/incidents/dashboard").text
    client.cookies.clear()
    sign_in(client, world["a.coordinator"])
    page = client.get("/incidents/dashboard?scope=reported&period=2026-11")
    assert page.status_code == 200 and "Organisation B" in page.text
    assert f'href="/incidents/{made["b"]}"' in page.text  # overdue: reported to us
    report = client.get("/incidents/reports/monthly?month=2026-11&format=csv&scope=reported")
    rows = list(csv.DictReader(io.StringIO(report.content.decode("utf-8-sig"))))
    assert [(r["reference"], r["organisation"]) for r in rows] == [
        (f"INC-{made['b']:06d}", "Organisation B")
    ]
    pdf = client.get("/incidents/reports/monthly?month=2026-11&format=pdf&scope=reported")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert "Organisation B" in _pdf_text(pdf.content)[0]
