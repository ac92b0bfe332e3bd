"""Signing in through the pages: password, second factor, lockout, sessions, CSRF, sign-out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from qorgan.core.db import unit_of_work
from qorgan.core.models import AuditEntry, User, WebSession

from .conftest import PASSWORD, World, csrf_of, sign_in


def _login(client: TestClient, email: str, password: str = PASSWORD) -> tuple[int, str]:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    return response.status_code, response.headers.get("location", "")


def test_pages_need_a_session(client: TestClient) -> None:
    response = client.get("/alerts?level=high", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Falerts%3Flevel%3Dhigh"
    htmx = client.get("/alerts", headers={"HX-Request": "true"}, follow_redirects=False)
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login")


def test_mfa_role_needs_the_code_and_a_half_session_is_no_session(
    client: TestClient, world: World
) -> None:
    analyst = world["a.analyst"]
    status, location = _login(client, analyst.email)
    assert (status, location) == (303, "/login/second-factor")
    # Password accepted, code not yet given: the pages and the API still refuse.
    assert client.get("/alerts", follow_redirects=False).status_code == 303
    assert client.get("/api/v1/me").status_code == 401
    page = client.get("/login/second-factor")
    wrong = client.post(
        "/login/second-factor", data={"code": "000000", "csrf_token": csrf_of(page.text)}
    )
    assert wrong.status_code == 401 and 'role="alert"' in wrong.text
    half_token = client.cookies.get("qorgan_session")
    right = client.post(
        "/login/second-factor",
        data={"code": analyst.code(), "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert right.status_code == 303
    # A new token after the second factor: the one seen before sign-in is worthless.
    assert client.cookies.get("qorgan_session") != half_token
    assert client.get("/api/v1/me").json()["id"] == analyst.id


def test_role_without_mfa_signs_in_with_the_password(client: TestClient, world: World) -> None:
    status, location = _login(client, world["a.partner"].email)
    assert (status, location) == (303, "/")
    assert client.get("/api/v1/me").json()["role"] == "partner"
    # A partner has no console pages yet: the start page says so, alerts are forbidden.
    assert client.get("/").status_code == 200
    assert client.get("/alerts").status_code == 403


def test_wrong_passwords_lock_the_account(client: TestClient, world: World) -> None:
    email = world["a.partner"].email
    for _ in range(5):
        status, _location = _login(client, email, "Not-The-Password-1")
        assert status == 401
    status, _location = _login(client, email)  # even the right password now
    assert status == 401
    assert "locked" in client.get("/login").text or status == 401
    with unit_of_work(world.factory) as session:
        user = session.get(User, world["a.partner"].id)
        assert user is not None and user.locked_until is not None
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.target_id == str(user.id))
        ).all()
    assert actions.count("auth.failure") == 5 and "auth.refused_locked" in actions


def test_unknown_and_wrong_password_look_the_same(client: TestClient, world: World) -> None:
    unknown = client.post(
        "/login",
        data={
            "email": "nobody@example.kz",
            "password": PASSWORD,
            "csrf_token": csrf_of(client.get("/login").text),
        },
    )
    wrong = client.post(
        "/login",
        data={
            "email": world["a.partner"].email,
            "password": "Wrong-Password-22",
            "csrf_token": csrf_of(client.get("/login").text),
        },
    )
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.text.replace("nobody@example.kz", "") == wrong.text.replace(
        world["a.partner"].email, ""
    )


def test_forms_need_the_csrf_token(client: TestClient, world: World) -> None:
    refused = client.post("/login", data={"email": world["a.partner"].email, "password": PASSWORD})
    assert refused.status_code == 403
    forged = client.post(
        "/login",
        data={"email": world["a.partner"].email, "password": PASSWORD, "csrf_token": "0" * 64},
    )
    assert forged.status_code == 403
    token = sign_in(client, world["a.analyst"])
    assert client.post("/logout", follow_redirects=False).status_code == 403
    # The pre-session token no longer works once signed in: tokens are bound to the session.
    alerts = client.post("/language", data={"language": "ru", "csrf_token": "x" * 64})
    assert alerts.status_code == 403
    assert client.post("/language", data={"language": "ru", "csrf_token": token}).status_code == 200


def test_sign_out_ends_the_session(client: TestClient, world: World) -> None:
    token = sign_in(client, world["a.analyst"])
    cookie = client.cookies.get("qorgan_session")
    assert (
        client.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code
        == 303
    )
    client.cookies.set("qorgan_session", cookie or "")
    assert client.get("/api/v1/me").status_code == 401


def test_idle_sessions_expire(client: TestClient, world: World) -> None:
    sign_in(client, world["a.analyst"])
    with unit_of_work(world.factory) as session:
        for row in session.scalars(select(WebSession)):
            row.last_seen_at = datetime.now(UTC) - timedelta(hours=1)
    assert client.get("/api/v1/me").status_code == 401


def test_sign_in_redirects_only_to_local_pages(client: TestClient, world: World) -> None:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={
            "email": world["a.partner"].email,
            "password": PASSWORD,
            "next": "https://evil.example/",
            "csrf_token": csrf_of(page.text),
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"


def test_security_headers(client: TestClient) -> None:
    response = client.get("/login")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    cookie = response.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()


def test_one_address_is_throttled_across_accounts(client: TestClient, world: World) -> None:
    # Spraying: one wrong password against many accounts never locks one account, so the
    # address itself is slowed down after 20 attempts in five minutes.
    emails = [p.email for p in world.people.values()]
    statuses = [
        _login(client, emails[i % len(emails)], "Spray-Password-2026")[0] for i in range(21)
    ]
    assert statuses[:20] == [401] * 20 and statuses[20] == 429
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"email": emails[0], "password": PASSWORD, "csrf_token": csrf_of(page.text)},
    )
    assert response.status_code == 429 and int(response.headers["retry-after"]) > 0
    assert 'qorgan_sign_ins_total{outcome="throttled"} 2.0' in client.get("/metrics").text


def test_throttle_window_slides() -> None:
    from qorgan.web.throttle import Throttle

    now = [0.0]
    throttle = Throttle(attempts=2, window=10, clock=lambda: now[0])
    assert throttle.allow("a") and throttle.allow("a") and not throttle.allow("a")
    assert throttle.allow("b")  # other addresses are not affected
    assert throttle.retry_after("a") == 11
    now[0] = 10.5
    assert throttle.allow("a")
