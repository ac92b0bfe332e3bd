"""Leak reports over the API: the DPO starts a report (its deadline shown), uploads the subjects
(refused with every bad row, or taken), submits it (an incident with personal data is opened,
its breach-report clock met; the notices queued once however often it is submitted), and gets
the report to the authorised body as JSON and as Kazakh and Russian PDFs; another organisation
cannot read or submit it, nor link another organisation's incident."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from incidents.test_referral import _pdf_text
from privacy.leak_examples import HOLDER_BIN, person, subjects_csv
from qorgan.core.db import unit_of_work
from qorgan.incidents.models import Incident
from qorgan.privacy import outbox
from qorgan.privacy.channels import FileChannel
from qorgan.privacy.protection import protection

from .conftest import World

DETECTED = "2026-03-06T10:00:00Z"  # a Friday, 15:00 in Almaty
REPORT = {
    "categories": ["general", "special"],
    "description": "Выгрузка записей пациентов оказалась в открытом хранилище.",
    "detected_at": DETECTED,
    "occurred_at": "2026-03-04T08:00:00Z",
    "measures": "Доступ к хранилищу закрыт, ключи заменены.",
    "responsible_person": "Ахметова Д. К.",
    "contacts": "+7 701 000 00 00, dpo@clinic.kz",
    "holder_name": "ТОО «Клиника»",
    "holder_bin": HOLDER_BIN,
}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _upload(client: TestClient, leak_id: int, raw: bytes, headers: dict[str, str]) -> Any:
    return client.post(
        f"/api/v1/privacy/leaks/{leak_id}/subjects",
        files={"file": ("subjects.csv", raw, "text/csv")},
        headers=headers,
    )


def test_a_dpo_reports_a_leak_and_its_subjects_are_notified_once(
    client: TestClient, world: World, tmp_path: Any
) -> None:
    admin = _bearer(world.token("a.admin", ["*"]))
    made = client.post("/api/v1/privacy/leaks", json=REPORT, headers=admin)
    assert made.status_code == 201, made.text
    leak = made.json()
    assert (leak["status"], leak["reference"]) == ("draft", f"LEAK-{leak['id']:06d}")
    # A weekend and Monday 9 March (a day off for 8 March) later: Tuesday 15:00 in Almaty.
    assert leak["deadline"]["due_at"] == "2026-03-10T10:00:00Z"
    assert leak["deadline"]["overdue"] is True  # the test runs after March 2026
    assert "contacts" not in leak
    leak_id = leak["id"]

    # A file with bad rows is refused whole, each row named, no value echoed.
    raw = subjects_csv(6)
    name, number = person(2)
    bad = raw.replace(number.encode(), (number[:-1] + str((int(number[-1]) + 1) % 10)).encode())
    bad = bad.replace(b"+77010000003", b"+7701000")
    refused = _upload(client, leak_id, bad, admin)
    assert refused.status_code == 422, refused.text
    assert refused.json()["problems"] == [
        {"row": 4, "reason": "the IIN's check digit does not match"},
        {"row": 5, "reason": "the phone number is not +7 followed by 10 digits"},
    ]
    assert number[:-1] not in refused.text and "+7701000" not in refused.text
    assert client.get(f"/api/v1/privacy/leaks/{leak_id}", headers=admin).json()["subjects"] == 0

    taken = _upload(client, leak_id, subjects_csv(300, bom=True, delimiter=";"), admin)
    assert taken.json() == {"added": 300, "already": 0, "subjects": 300}, taken.text
    submitted = client.post(f"/api/v1/privacy/leaks/{leak_id}/submit", headers=admin)
    assert submitted.status_code == 200, submitted.text
    answer = submitted.json()
    assert (answer["queued"], answer["first"]) == (300, True)
    assert answer["leak"]["notices"]["pending"] == 300
    assert answer["leak"]["deadline"]["late"] is True
    incident_id = answer["incident_id"]
    with unit_of_work(world.factory) as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        assert incident.organisation_id == world["a.admin"].organisation_id
        assert incident.personal_data and incident.rsit_type == "data-leak"
        assert incident.breach_report_due_at == datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
        assert incident.breach_reported_at is not None
    shown = client.get(f"/api/v1/incidents/{incident_id}", headers=admin)
    assert shown.status_code == 200 and "LEAK-" in shown.json()["title"]

    # More subjects later, the report submitted again: only the new ones are queued.
    more = _upload(client, leak_id, subjects_csv(320), admin)
    assert more.json() == {"added": 20, "already": 300, "subjects": 320}
    again = client.post(f"/api/v1/privacy/leaks/{leak_id}/submit", headers=admin, json={})
    assert (again.json()["queued"], again.json()["first"]) == (20, False)
    assert again.json()["incident_id"] == incident_id
    sink = tmp_path / "notices.jsonl"
    file = FileChannel(sink)
    done = outbox.deliver(
        world.factory, {"email": file, "sms": file}, protection=protection(world.settings)
    )
    assert done.sent == 320
    assert (
        client.post(f"/api/v1/privacy/leaks/{leak_id}/submit", headers=admin).json()["queued"] == 0
    )
    assert len(sink.read_bytes().splitlines()) == 320

    # The report to the authorised body.
    document = client.get(f"/api/v1/privacy/leaks/{leak_id}/report", headers=admin)
    assert document.status_code == 200 and document.headers["content-type"] == "application/json"
    data = document.json()
    assert data["incident"] == f"INC-{incident_id:06d}"
    assert data["affected_subjects"]["count"] == 320
    assert data["affected_subjects"]["notified"] == 320
    assert data["responsible_person"]["contacts"] == REPORT["contacts"]
    assert number not in document.text and name not in document.text
    for language, title in (
        ("kk", "Дербес деректердің заңсыз таралуы"),
        ("ru", "Уведомление о неправомерном распространении"),
    ):
        pdf = client.get(
            f"/api/v1/privacy/leaks/{leak_id}/report?format=pdf&language={language}",
            headers=admin,
        )
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        assert f"LEAK-{leak_id:06d}-{language}.pdf" in pdf.headers["content-disposition"]
        text = " ".join(_pdf_text(pdf.content)[0].split())
        assert title in text and f"INC-{incident_id:06d}" in text
        assert "********" + number[-4:] in text and number not in text
    english = client.get(f"/api/v1/privacy/leaks/{leak_id}/report?format=pdf&language=en")
    assert english.status_code in (401, 422)
    listed = client.get("/api/v1/privacy/leaks", headers=admin).json()
    assert [r["id"] for r in listed] == [leak_id]
    entries = client.get("/api/v1/audit?limit=1000", headers=admin).json()
    actions = {e["action"] for e in entries}
    assert {"privacy.leak_create", "privacy.leak_subjects", "privacy.leak_submit"} <= actions
    assert "privacy.leak_report" in actions
    assert not any(number in str(e) for e in entries)


def test_a_leak_links_an_incident_of_the_same_organisation_only(
    client: TestClient, world: World
) -> None:
    admin = _bearer(world.token("a.admin", ["*"]))
    own = client.post("/api/v1/incidents", json={"title": "Exposed bucket"}, headers=admin).json()[
        "incident"
    ]["id"]
    other = client.post(
        "/api/v1/incidents",
        json={"title": "B's own"},
        headers=_bearer(world.token("b.admin", ["*"])),
    ).json()["incident"]["id"]
    leak_id = client.post("/api/v1/privacy/leaks", json=REPORT, headers=admin).json()["id"]
    url = f"/api/v1/privacy/leaks/{leak_id}/submit"
    stolen = client.post(url, json={"incident_id": other}, headers=admin)
    assert stolen.status_code == 404, stolen.text
    assert client.get(f"/api/v1/privacy/leaks/{leak_id}", headers=admin).json()["status"] == "draft"
    linked = client.post(url, json={"incident_id": own}, headers=admin)
    assert linked.status_code == 200 and linked.json()["incident_id"] == own
    assert linked.json()["queued"] == 0  # no subjects yet: the report still goes in time
    with unit_of_work(world.factory) as session:
        incident = session.get(Incident, own)
        assert incident is not None and incident.personal_data
    moved = client.post(url, json={"incident_id": own + 1000}, headers=admin)
    assert moved.status_code == 409 and "linked to" in moved.text


def test_another_organisation_cannot_read_or_submit_a_report(
    client: TestClient, world: World
) -> None:
    admin = _bearer(world.token("a.admin", ["*"]))
    leak_id = client.post("/api/v1/privacy/leaks", json=REPORT, headers=admin).json()["id"]
    other = _bearer(world.token("b.admin", ["*"]))
    for method, path in (
        ("GET", ""),
        ("GET", "/report"),
        ("GET", "/report?format=pdf&language=ru"),
        ("POST", "/submit"),
    ):
        answer = client.request(method, f"/api/v1/privacy/leaks/{leak_id}{path}", headers=other)
        assert answer.status_code == 404, (method, path, answer.text)
    assert _upload(client, leak_id, subjects_csv(2), other).status_code == 404
    assert client.get("/api/v1/privacy/leaks", headers=other).json() == []
    # The analyst has neither permission; the auditor role does not write.
    analyst = _bearer(world.token("a.analyst", ["*"]))
    assert client.get("/api/v1/privacy/leaks", headers=analyst).status_code == 403
    assert client.post("/api/v1/privacy/leaks", json=REPORT, headers=analyst).status_code == 403
    assert client.get(f"/api/v1/privacy/leaks/{leak_id}", headers=admin).json()["status"] == "draft"


def test_bad_reports_and_files_are_refused_with_a_reason(client: TestClient, world: World) -> None:
    admin = _bearer(world.token("a.admin", ["*"]))
    for changes, status, words in (
        ({"description": "NUL \u0000 inside"}, 422, "description"),
        ({"measures": "\ud800"}, 422, "measures"),
        ({"categories": []}, 422, "categories"),
        ({"holder_bin": "123456789012"}, 422, "holder's BIN"),
        ({"detected_at": "2099-01-01T00:00:00Z"}, 422, "in the future"),
        ({"system_id": 999_999}, 422, "no such information system"),
    ):
        refused = client.post(
            "/api/v1/privacy/leaks",
            content=json.dumps({**REPORT, **changes}),  # ASCII: a lone surrogate as \\ud800
            headers={**admin, "Content-Type": "application/json"},
        )
        assert refused.status_code == status and words in refused.text, (changes, refused.text)
        assert "123456789012" not in refused.text
    leak_id = client.post("/api/v1/privacy/leaks", json=REPORT, headers=admin).json()["id"]
    oversize = b"name,iin,email\n" + b"x" * (20 * 1024 * 1024)
    big = _upload(client, leak_id, oversize, admin)
    assert big.status_code == 422 and "larger than 20 MiB" in big.json()["detail"]
    far_too_big = _upload(client, leak_id, oversize + b"x" * (1 << 20), admin)
    assert far_too_big.status_code == 413
    nul = _upload(client, leak_id, f"name,iin,email\nA\x00,{person(1)[1]},a@b.kz\n".encode(), admin)
    assert nul.json()["problems"] == [{"row": 2, "reason": "the name contains a NUL character"}]
    wrong = client.post(f"/api/v1/privacy/leaks/{leak_id}/subjects", data={"x": "1"}, headers=admin)
    assert wrong.status_code == 400 and "multipart field file" in wrong.text
