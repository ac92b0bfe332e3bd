"""Signing in through the pages: password, second factor, lockout, sessions, CSRF, sign-out."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pyotp
from fastapi.testclient import TestClient
from sqlalchemy import select

from qorgan.core import security
from qorgan.core.db import unit_of_work
from qorgan.core.models import ApiToken, AuditEntry, Role, SessionStage, User, WebSession
from qorgan.core.roles import ROLE_PERMISSIONS
from qorgan.web.throttle import Throttle

from .conftest import PASSWORD, Person, World, csrf_of, password_hash, sign_in


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
    # Counted in the sign-in metrics (read from the app's registry: serving /metrics has its
    # own access rules).
    registry = client.app.state.metrics.registry
    assert registry.get_sample_value("qorgan_sign_ins_total", {"outcome": "throttled"}) == 2.0


def test_throttle_window_slides() -> None:
    from qorgan.web.throttle import Throttle

    now = [0.0]
    throttle = Throttle(attempts=2, window=10, clock=lambda: now[0])
    assert throttle.allow("a") and throttle.allow("a") and not throttle.allow("a")
    assert throttle.allow("b")  # other addresses are not affected
    assert throttle.retry_after("a") == 11
    now[0] = 10.5
    assert throttle.allow("a")


# --- API tokens never reach the pages -----------------------------------------------------------


def test_a_token_never_reaches_the_pages_nor_mints_a_stronger_token(
    client: TestClient, world: World
) -> None:
    analyst = world["a.analyst"]
    weak = world.token("a.analyst", ["alerts:read"])
    world.token("a.analyst", ["alerts:write"])  # another token, which must survive
    bearer = {"Authorization": f"Bearer {weak}"}
    with unit_of_work(world.factory) as session:
        before = session.scalars(select(ApiToken.id).where(ApiToken.user_id == analyst.id)).all()
        password_hash = session.scalar(select(User.password_hash).where(User.id == analyst.id))
    everything = sorted(str(p) for p in ROLE_PERMISSIONS[Role.soc_analyst])
    attempts = [
        ("/account/tokens", {"name": "stronger", "scopes": everything, "days": "365"}),
        *((f"/account/tokens/{token_id}/revoke", {}) for token_id in before),
        ("/account/password", {"current": PASSWORD, "new": "Zhetisu-Kolsai-8-Tau"}),
        ("/account/recovery-codes", {"code": analyst.code()}),
        ("/language", {"language": "ru"}),
    ]
    for path, data in attempts:
        response = client.post(path, data=data, headers=bearer, follow_redirects=False)
        assert response.status_code in (303, 403), (path, response.status_code)
        assert response.headers.get("location", "/login").startswith("/login"), path
        assert "qgn_" not in response.text
    for path in ("/account", "/alerts", "/"):
        page = client.get(path, headers=bearer, follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
    htmx = client.get("/alerts", headers={**bearer, "HX-Request": "true"}, follow_redirects=False)
    assert htmx.status_code == 401
    with unit_of_work(world.factory) as session:
        after = session.scalars(select(ApiToken.id).where(ApiToken.user_id == analyst.id)).all()
        assert after == before  # nothing issued, nothing revoked
        assert session.scalar(select(User.password_hash).where(User.id == analyst.id)) == (
            password_hash
        )
        assert session.scalar(select(User.language).where(User.id == analyst.id)) == "en"
    # The API answers with the token's own scopes, never more.
    assert client.get("/api/v1/me", headers=bearer).json()["permissions"] == ["alerts:read"]


# --- every second-factor check counts, throttles, locks and is audited -------------------------


def _wrong_code(person: Person) -> str:
    """A six-digit code that is not the person's code for now or a step either side."""
    assert person.totp_secret is not None
    totp = pyotp.TOTP(person.totp_secret)
    near = {totp.at(time.time() + drift) for drift in (-60, -30, 0, 30, 60)}
    return next(c for c in ("000000", "111111", "222222", "333333", "444444") if c not in near)


def _failures(world: World, user_id: int) -> list[dict[str, object]]:
    with unit_of_work(world.factory) as session:
        return list(
            session.scalars(
                select(AuditEntry.details).where(
                    AuditEntry.action == "auth.failure", AuditEntry.target_id == str(user_id)
                )
            )
        )


def test_recovery_code_renewal_counts_guesses_and_a_lockout_ends_the_sessions(
    client: TestClient, world: World
) -> None:
    analyst = world["a.analyst"]
    csrf = sign_in(client, analyst)
    other = TestClient(client.app, base_url="http://127.0.0.1")
    sign_in(other, analyst)  # a second session of the same user
    wrong = _wrong_code(analyst)
    statuses = [
        client.post("/account/recovery-codes", data={"csrf_token": csrf, "code": wrong}).status_code
        for _ in range(security.MAX_FAILED_LOGINS - 1)
    ]
    assert statuses == [400] * (security.MAX_FAILED_LOGINS - 1)
    locked = client.post("/account/recovery-codes", data={"csrf_token": csrf, "code": wrong})
    assert locked.status_code == 401 and "locked" in locked.text
    # Both sessions ended; the page shown is the sign-in form, and its form works.
    assert client.get("/api/v1/me").status_code == 401
    assert other.get("/api/v1/me").status_code == 401
    again = client.post(
        "/login",
        data={"email": analyst.email, "password": PASSWORD, "csrf_token": csrf_of(locked.text)},
    )
    assert again.status_code == 401 and "locked" in again.text  # not a CSRF refusal (403)
    with unit_of_work(world.factory) as session:
        user = session.get(User, analyst.id)
        assert user is not None and user.failed_logins == security.MAX_FAILED_LOGINS
        assert user.locked_until is not None
    failures = _failures(world, analyst.id)
    assert len(failures) == security.MAX_FAILED_LOGINS
    assert {f["reason"] for f in failures} == {"recovery codes renewal"}


def test_recovery_code_renewal_is_throttled(client: TestClient, world: World) -> None:
    analyst = world["a.analyst"]
    csrf = sign_in(client, analyst)
    client.app.state.qorgan.throttle = Throttle(attempts=2)
    wrong = _wrong_code(analyst)
    statuses = [
        client.post("/account/recovery-codes", data={"csrf_token": csrf, "code": wrong})
        for _ in range(3)
    ]
    assert [s.status_code for s in statuses] == [400, 400, 429]
    assert int(statuses[2].headers["retry-after"]) > 0
    # The refused attempt was not even checked: two failures count.
    assert len(_failures(world, analyst.id)) == 2


def test_enrolment_codes_count_towards_the_lockout(client: TestClient, world: World) -> None:
    with unit_of_work(world.factory) as session:
        user = User(
            organisation_id=world["a.admin"].organisation_id,
            email="enrol@a.example.kz",
            display_name="Enrol Test",
            role=Role.auditor,
            password_hash=password_hash(),
            language="en",
        )
        session.add(user)
        session.flush()
        user_id = user.id
    assert _login(client, "enrol@a.example.kz") == (303, "/login/enrol")
    csrf = csrf_of(client.get("/login/enrol").text)
    wrong = [
        client.post("/login/enrol", data={"csrf_token": csrf, "code": "000000"})
        for _ in range(security.MAX_FAILED_LOGINS)
    ]
    assert [r.status_code for r in wrong[:-1]] == [400] * (security.MAX_FAILED_LOGINS - 1)
    assert wrong[-1].status_code == 401 and "locked" in wrong[-1].text
    # The half session ended with the lockout.
    assert client.get("/login/enrol", follow_redirects=False).headers["location"] == "/login"
    failures = _failures(world, user_id)
    assert len(failures) == security.MAX_FAILED_LOGINS
    assert {f["reason"] for f in failures} == {"enrolment code"}
    # Throttled too.
    client.app.state.qorgan.throttle = Throttle(attempts=0)
    assert _login(client, "enrol@a.example.kz")[0] == 429


def test_a_second_factor_lockout_ends_every_session(client: TestClient, world: World) -> None:
    analyst = world["a.analyst"]
    other = TestClient(client.app, base_url="http://127.0.0.1")
    sign_in(other, analyst)
    assert _login(client, analyst.email) == (303, "/login/second-factor")
    csrf = csrf_of(client.get("/login/second-factor").text)
    wrong = _wrong_code(analyst)
    for _ in range(security.MAX_FAILED_LOGINS):
        response = client.post("/login/second-factor", data={"csrf_token": csrf, "code": wrong})
    assert response.status_code == 401 and "locked" in response.text
    assert other.get("/api/v1/me").status_code == 401
    assert {f["reason"] for f in _failures(world, analyst.id)} == {"second factor"}


# --- a password change revokes the API tokens ---------------------------------------------------


def test_password_change_revokes_the_api_tokens(client: TestClient, world: World) -> None:
    analyst = world["a.analyst"]
    tokens = [world.token("a.analyst", ["alerts:read"]) for _ in range(2)]
    kept = world.token("a.coordinator", ["alerts:read"])  # another user's token stays
    csrf = sign_in(client, analyst)
    changed = client.post(
        "/account/password",
        data={"csrf_token": csrf, "current": PASSWORD, "new": "Zhetisu-Kolsai-8-Tau"},
    )
    assert changed.status_code == 200
    assert "API tokens revoked: 2." in changed.text
    client.cookies.clear()
    for token in tokens:
        assert (
            client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code
            == 401
        )
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {kept}"}).status_code == 200
    with unit_of_work(world.factory) as session:
        revoked = session.scalars(
            select(AuditEntry.details).where(
                AuditEntry.action == "token.revoke", AuditEntry.target_id == str(analyst.id)
            )
        ).all()
        assert [d["reason"] for d in revoked] == ["password change"] * 2


# --- one address in several organisations -------------------------------------------------------


def _shared_address(world: World) -> int:
    """B's analyst's address also names a new user of A, with the same password."""
    with unit_of_work(world.factory) as session:
        user = User(
            organisation_id=world["a.admin"].organisation_id,
            email=world["b.analyst"].email,
            display_name="Namesake A",
            role=Role.auditor,
            password_hash=password_hash(),
            language="en",
        )
        session.add(user)
        session.flush()
        return user.id


def test_the_same_address_in_two_organisations_asks_which(client: TestClient, world: World) -> None:
    namesake = _shared_address(world)
    email = world["b.analyst"].email
    wrong = client.post(
        "/login",
        data={
            "email": email,
            "password": "Wrong-Guess-2026",
            "csrf_token": csrf_of(client.get("/login").text),
        },
    )
    assert wrong.status_code == 401
    assert "Organisation A" not in wrong.text and "Organisation B" not in wrong.text
    with unit_of_work(world.factory) as session:
        counts = session.scalars(
            select(User.failed_logins).where(User.email == email).order_by(User.id)
        ).all()
        assert counts == [1, 1]  # a failure on each account holding the address

    page = client.post(
        "/login",
        data={
            "email": email,
            "password": PASSWORD,
            "csrf_token": csrf_of(client.get("/login").text),
        },
    )
    assert page.status_code == 200
    choices = dict(
        (int(value), name)
        for value, name in re.findall(
            r'<input type="radio" name="organisation" value="(\d+)"[^>]*> ([^<]+)</label>',
            page.text,
        )
    )
    assert choices == {
        world["a.admin"].organisation_id: "Organisation A",
        world["b.admin"].organisation_id: "Organisation B",
    }
    assert "qorgan_session" not in client.cookies  # nobody is signed in yet
    chosen = client.post(
        "/login",
        data={
            "email": email,
            "password": PASSWORD,
            "organisation": str(world["a.admin"].organisation_id),
            "csrf_token": csrf_of(page.text),
        },
        follow_redirects=False,
    )
    assert chosen.status_code == 303 and chosen.headers["location"] == "/login/enrol"
    with unit_of_work(world.factory) as session:
        pending = session.scalar(select(WebSession.user_id).order_by(WebSession.id.desc()))
        assert pending == namesake


# --- housekeeping -------------------------------------------------------------------------------


def test_expired_sessions_are_purged_at_sign_in(client: TestClient, world: World) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=2)
    with unit_of_work(world.factory) as session:
        session.add(
            WebSession(
                token_hash="0" * 64,
                user_id=world["a.auditor"].id,
                stage=SessionStage.full,
                created_at=long_ago,
                last_seen_at=long_ago,
                expires_at=long_ago + timedelta(hours=12),
            )
        )
    sign_in(client, world["a.partner"])
    with unit_of_work(world.factory) as session:
        assert (
            session.scalar(select(WebSession.id).where(WebSession.token_hash == "0" * 64)) is None
        )


def test_signing_in_again_after_the_session_expired(client: TestClient, world: World) -> None:
    # The browser still holds the dead session's cookie; the sign-in form must work all the
    # same (its CSRF token is derived from that cookie).
    analyst = world["a.analyst"]
    sign_in(client, analyst)
    with unit_of_work(world.factory) as session:
        for row in session.scalars(select(WebSession)):
            row.last_seen_at = datetime.now(UTC) - timedelta(hours=1)
    assert client.get("/api/v1/me").status_code == 401
    assert client.cookies.get("qorgan_session")
    sign_in(client, analyst)
    assert client.get("/api/v1/me").json()["id"] == analyst.id
