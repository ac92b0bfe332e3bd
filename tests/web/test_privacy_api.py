"""The decision API as an information system uses it (its own token, never a user's), and the
registry as the data-protection officer keeps it."""

from __future__ import annotations

import json
from datetime import date

from fastapi.testclient import TestClient

from privacy.examples import bin_number, iin

from .conftest import World

SYSTEM = {
    "name": "Clinic records",
    "owner_name": "Министерство здравоохранения РК",
    "owner_bin": bin_number(serial=1000),
    "operator_name": "АО «НИТ»",
    "operator_bin": bin_number(yy=8, month=11, serial=2000),
    "responsible_person": "Ахметова Д. К.",
    "contacts": "+7 701 000 00 00",
    "categories": ["general", "special"],
    "purposes": ["medical care"],
    "legal_bases": ["consent", "legal_obligation"],
}
CITIZEN = iin(date(1990, 7, 1))


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _ask(client: TestClient, token: str, **changes: object):
    body = {
        "subject_iin": CITIZEN,
        "categories": ["general"],
        "purpose": "medical care",
        "legal_basis": "consent",
        "official": "registrar 17",
        **changes,
    }
    return client.post("/api/v1/privacy/decisions", json=body, headers=_bearer(token))


def test_a_system_asks_with_its_own_token_and_every_answer_is_recorded(
    client: TestClient, world: World
) -> None:
    admin = _bearer(world.token("a.admin", ["*"]))
    made = client.post("/api/v1/privacy/systems", json=SYSTEM, headers=admin)
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    assert token.startswith("qps_") and "contacts" not in made.json()
    denied = _ask(client, token)
    assert denied.status_code == 200, denied.text
    assert (denied.json()["decision"], denied.json()["reason"]) == ("deny", "no_consent")
    allowed = _ask(client, token, legal_basis="legal_obligation", request_id="r-1")
    assert (allowed.json()["decision"], allowed.json()["reason"]) == ("allow", "legal_basis")
    again = _ask(client, token, legal_basis="legal_obligation", request_id="r-1")
    assert again.json()["record_id"] == allowed.json()["record_id"]
    reported = client.post(
        "/api/v1/privacy/accesses",
        json={
            "subject_iin": CITIZEN,
            "categories": ["general"],
            "purpose": "medical care",
            "legal_basis": "legal_obligation",
            "official": "registrar 17",
        },
        headers=_bearer(token),
    )
    assert reported.status_code == 201 and reported.json()["decision"] == "reported"
    # A user's API token, no token, a bad IIN, a rotated token.
    assert _ask(client, world.token("a.admin", ["*"])).status_code == 401
    assert client.post("/api/v1/privacy/decisions", json={}).status_code in (401, 422)
    bad = _ask(client, token, subject_iin=CITIZEN[:-1] + str((int(CITIZEN[-1]) + 1) % 10))
    assert bad.status_code == 422 and CITIZEN[:-1] not in bad.text
    system_id = made.json()["id"]
    rotated = client.post(f"/api/v1/privacy/systems/{system_id}/token", headers=admin)
    assert rotated.status_code == 200
    assert _ask(client, token).status_code == 401
    assert _ask(client, rotated.json()["token"]).status_code == 200


def test_the_registry_is_the_dpos_and_checks_bins(client: TestClient, world: World) -> None:
    analyst = _bearer(world.token("a.analyst", ["*"]))
    assert client.post("/api/v1/privacy/systems", json=SYSTEM, headers=analyst).status_code == 403
    assert client.get("/api/v1/privacy/systems", headers=analyst).status_code == 403
    admin = _bearer(world.token("a.admin", ["*"]))
    wrong = SYSTEM["owner_bin"][:-1] + str((int(SYSTEM["owner_bin"][-1]) + 1) % 10)
    refused = client.post(
        "/api/v1/privacy/systems", json={**SYSTEM, "owner_bin": wrong}, headers=admin
    )
    assert refused.status_code == 422 and "owner's BIN" in refused.text
    assert client.post("/api/v1/privacy/systems", json=SYSTEM, headers=admin).status_code == 201
    twice = client.post("/api/v1/privacy/systems", json=SYSTEM, headers=admin)
    assert twice.status_code == 422 and "already has" in twice.text
    listed = client.get("/api/v1/privacy/systems", headers=admin).json()
    assert [s["name"] for s in listed] == ["Clinic records"]
    other = _bearer(world.token("b.admin", ["*"]))
    assert client.get("/api/v1/privacy/systems", headers=other).json() == []


def test_a_system_records_consents_and_ends_only_its_own(client: TestClient, world: World) -> None:
    admin = _bearer(world.token("a.admin", ["*"]))
    clinic = client.post("/api/v1/privacy/systems", json=SYSTEM, headers=admin).json()
    other = client.post(
        "/api/v1/privacy/systems", json={**SYSTEM, "name": "Lab"}, headers=admin
    ).json()
    body = {"subject_iin": CITIZEN, "purposes": ["medical care"], "categories": ["general"]}
    given = client.post("/api/v1/privacy/consents", json=body, headers=_bearer(clinic["token"]))
    assert given.status_code == 201, given.text
    assert '"signature"' in given.json()["receipt"] and CITIZEN not in given.json()["receipt"]
    assert _ask(client, clinic["token"]).json()["reason"] == "consent"
    refused = client.post(
        "/api/v1/privacy/consents",
        json={**body, "purposes": ["marketing"]},
        headers=_bearer(clinic["token"]),
    )
    assert refused.status_code == 422 and "purposes registered" in refused.text
    consent_id = given.json()["id"]
    path = f"/api/v1/privacy/consents/{consent_id}/fulfil"
    assert client.post(path, headers=_bearer(other["token"])).status_code == 404
    assert client.post(path, headers=admin).status_code == 401  # a user is not a system
    ended = client.post(path, headers=_bearer(clinic["token"]))
    assert ended.status_code == 200 and ended.json()["status"] == "fulfilled"
    assert client.post(path, headers=_bearer(clinic["token"])).status_code == 409
    assert _ask(client, clinic["token"]).json()["reason"] == "consent_expired"
    assert client.get("/api/v1/privacy/consents/overdue", headers=admin).json() == []  # not yet
    deleted = client.post(f"/api/v1/privacy/consents/{consent_id}/deletion", headers=admin)
    assert deleted.status_code == 204
    again = client.post(f"/api/v1/privacy/consents/{consent_id}/deletion", headers=admin)
    assert again.status_code == 409


def test_errors_never_echo_the_personal_data_sent(client: TestClient, world: World) -> None:
    admin = _bearer(world.token("a.admin", ["*"]))
    token = client.post("/api/v1/privacy/systems", json=SYSTEM, headers=admin).json()["token"]
    for wrong in (CITIZEN[:-1], CITIZEN[:-1] + "X", CITIZEN + "7"):
        answer = _ask(client, token, subject_iin=wrong)
        assert answer.status_code == 422, wrong
        assert "subject_iin" in answer.text and CITIZEN[:-1] not in answer.text, answer.text
    # Elsewhere the API still says what it could not read (an alert's field, say).
    other = client.post("/api/v1/alerts", json=[{"rule": 5}], headers=admin)
    assert other.status_code == 422 and '"input"' in other.text


def test_nul_and_lone_surrogates_are_refused_not_stored(client: TestClient, world: World) -> None:
    admin = _bearer(world.token("a.admin", ["*"]))
    token = client.post("/api/v1/privacy/systems", json=SYSTEM, headers=admin).json()["token"]
    for bad in ("registrar\x0017", "registrar \ud800"):
        answer = client.post(
            "/api/v1/privacy/decisions",
            content=json.dumps(
                {
                    "subject_iin": CITIZEN,
                    "categories": ["general"],
                    "purpose": "medical care",
                    "legal_basis": "legal_obligation",
                    "official": bad,
                }
            ),
            headers={**_bearer(token), "Content-Type": "application/json"},
        )
        assert answer.status_code == 422, answer.text
    assert _ask(client, token, legal_basis="legal_obligation").status_code == 200  # neighbour


def test_the_decision_path_answers_as_the_rest_of_the_api(client: TestClient, world: World) -> None:
    """Decisions skip FastAPI's routing (web/decision_path.py), not its guarantees: the
    console's headers, the metrics, the JSON media type, and other methods routed as usual."""
    admin = _bearer(world.token("a.admin", ["*"]))
    token = client.post("/api/v1/privacy/systems", json=SYSTEM, headers=admin).json()["token"]
    answer = _ask(client, token, legal_basis="legal_obligation")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    for name in ("x-content-type-options", "content-security-policy", "cache-control"):
        assert name in answer.headers, name
    assert "set-cookie" not in answer.headers  # no pre-session for the API
    body = json.dumps({"subject_iin": CITIZEN, "categories": ["general"], "purpose": "medical care",
                       "legal_basis": "legal_obligation", "official": "registrar 17"})  # fmt: skip
    as_text = client.post(
        "/api/v1/privacy/decisions",
        content=body,
        headers={**_bearer(token), "Content-Type": "text/plain"},
    )
    assert as_text.status_code == 422 and "application/json" in as_text.text
    as_json = client.post(
        "/api/v1/privacy/decisions",
        content=body,
        headers={**_bearer(token), "Content-Type": "application/json; charset=utf-8"},
    )
    assert as_json.status_code == 200, as_json.text
    assert client.get("/api/v1/privacy/decisions", headers=_bearer(token)).status_code == 405
    scraped = bytes(client.app.state.metrics.exposition().body).decode()  # type: ignore[attr-defined]
    assert 'route="/api/v1/privacy/decisions"' in scraped
    assert (
        'qorgan_http_requests_total{method="POST",route="/api/v1/privacy/decisions",status="422"}'
        in scraped
    )
