"""Administrators manage their organisation's users from the console."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from qorgan.core import audit
from qorgan.core.db import unit_of_work
from qorgan.core.models import AuditEntry, User

from .conftest import PASSWORD, World, csrf_of, sign_in


def test_only_administrators_manage_users(client: TestClient, world: World) -> None:
    sign_in(client, world["a.analyst"])
    assert client.get("/users").status_code == 403


def test_create_change_reset_unlock(client: TestClient, world: World) -> None:
    csrf = sign_in(client, world["a.admin"])
    created = client.post(
        "/users",
        data={
            "csrf_token": csrf,
            "email": "New.Analyst@a.example.kz",
            "name": "New Analyst",
            "role": "soc_analyst",
            "language": "ru",
        },
    )
    assert created.status_code == 200
    password = re.search(r"<code data-password>([^<]+)</code>", created.text)
    assert password, created.text
    # The new user signs in with that password and must enrol a second factor.
    other = TestClient(client.app, base_url="http://127.0.0.1")
    page = other.get("/login")
    response = other.post(
        "/login",
        data={
            "email": "new.analyst@a.example.kz",
            "password": password.group(1),
            "csrf_token": csrf_of(page.text),
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/login/enrol"
    duplicate = client.post(
        "/users",
        data={
            "csrf_token": csrf,
            "email": "new.analyst@a.example.kz",
            "name": "X",
            "role": "auditor",
        },
    )
    assert duplicate.status_code == 400 and "exists" in duplicate.text

    analyst = world["a.analyst"]
    assert (
        client.post(
            f"/users/{analyst.id}/role",
            data={"csrf_token": csrf, "role": "auditor", "confirm": "yes"},
        ).status_code
        == 200
    )
    demote_self = client.post(
        f"/users/{world['a.admin'].id}/role",
        data={"csrf_token": csrf, "role": "auditor", "confirm": "yes"},
    )
    assert demote_self.status_code == 400
    # A reset second factor ends the user's sessions; the next sign-in enrols again.
    victim = TestClient(client.app, base_url="http://127.0.0.1")
    sign_in(victim, world["a.coordinator"])
    assert victim.get("/api/v1/me").status_code == 200
    reset = client.post(
        f"/users/{world['a.coordinator'].id}/reset-second-factor",
        data={"csrf_token": csrf, "confirm": "yes"},
    )
    assert reset.status_code == 200
    assert victim.get("/api/v1/me").status_code == 401
    with unit_of_work(world.factory) as session:
        coordinator = session.get(User, world["a.coordinator"].id)
        assert coordinator is not None and coordinator.totp_secret is None
        changed = session.get(User, analyst.id)
        assert changed is not None and changed.role == "auditor"
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.actor == str(world["a.admin"].id))
        ).all()
        assert {"user.create", "user.role", "user.totp_reset"} <= set(actions)
        assert audit.verify(session=session) == []


def test_recovery_codes_renewed_with_a_fresh_code(client: TestClient, world: World) -> None:
    analyst = world["a.analyst"]
    csrf = sign_in(client, analyst)
    stale = client.post("/account/recovery-codes", data={"csrf_token": csrf, "code": "000000"})
    assert stale.status_code == 400
    renewed = client.post(
        "/account/recovery-codes", data={"csrf_token": csrf, "code": analyst.code()}
    )
    assert renewed.status_code == 200
    codes = re.findall(r"<li><code>([0-9a-f]{8}-[0-9a-f]{8})</code></li>", renewed.text)
    assert len(codes) == 10
    # A new code signs in once, in place of the authenticator app.
    other = TestClient(client.app, base_url="http://127.0.0.1")
    page = other.get("/login")
    other.post(
        "/login",
        data={"email": analyst.email, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
    )
    page = other.get("/login/second-factor")
    used = other.post(
        "/login/second-factor",
        data={"code": codes[0], "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert used.status_code == 303


def _new_user_form(html: str) -> str:
    found = re.search(r'<form method="post" action="/users">.*?</form>', html, re.S)
    assert found, html
    return found.group(0)


def test_a_new_user_has_no_role_until_the_administrator_chooses(
    client: TestClient, world: World
) -> None:
    csrf = sign_in(client, world["a.admin"])
    form = _new_user_form(client.get("/users").text)
    select_ = re.search(r'<select name="role"[^>]*>(.*?)</select>', form, re.S)
    assert select_ and "required" in select_.group(0)
    options = re.findall(r"<option ([^>]*)>", select_.group(1))
    selected = [o for o in options if "selected" in o]
    assert selected == ['value="" selected disabled'], options
    refused = client.post(
        "/users", data={"csrf_token": csrf, "email": "norole@a.example.kz", "name": "No Role"}
    )
    assert refused.status_code == 400
    with unit_of_work(world.factory) as session:
        assert session.scalar(select(User.id).where(User.email == "norole@a.example.kz")) is None


def test_role_change_and_reset_ask_for_confirmation(client: TestClient, world: World) -> None:
    csrf = sign_in(client, world["a.admin"])
    analyst, coordinator = world["a.analyst"], world["a.coordinator"]
    asked = client.post(f"/users/{analyst.id}/role", data={"csrf_token": csrf, "role": "auditor"})
    assert asked.status_code == 200
    action = f"/users/{analyst.id}/role"
    confirm = re.search(
        rf'<form method="post" action="{action}" data-confirm[^>]*>(.*?)</form>', asked.text, re.S
    )
    assert confirm, asked.text
    assert 'name="confirm" value="yes"' in confirm.group(1)
    assert 'name="role" value="auditor"' in confirm.group(1)
    assert "onclick" not in asked.text  # the CSP allows no inline script
    reset = client.post(f"/users/{coordinator.id}/reset-second-factor", data={"csrf_token": csrf})
    assert reset.status_code == 200 and 'name="confirm" value="yes"' in reset.text
    with unit_of_work(world.factory) as session:
        assert session.scalar(select(User.role).where(User.id == analyst.id)) == "soc_analyst"
        assert session.scalar(select(User.totp_secret).where(User.id == coordinator.id))
        actions = session.scalars(select(AuditEntry.action)).all()
        assert "user.role" not in actions and "user.totp_reset" not in actions


def test_a_second_factor_reset_revokes_the_api_tokens(client: TestClient, world: World) -> None:
    coordinator = world["a.coordinator"]
    token = world.token("a.coordinator", ["alerts:read"])
    csrf = sign_in(client, world["a.admin"])
    reset = client.post(
        f"/users/{coordinator.id}/reset-second-factor",
        data={"csrf_token": csrf, "confirm": "yes"},
    )
    assert reset.status_code == 200 and "API tokens revoked: 1." in reset.text
    other = TestClient(client.app, base_url="http://127.0.0.1")
    assert other.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    with unit_of_work(world.factory) as session:
        revoked = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "token.revoke")
        ).all()
        assert [(e.actor, e.details["reason"]) for e in revoked] == [
            (str(world["a.admin"].id), "second factor reset")
        ]


def test_an_address_of_another_organisation_reveals_nothing(
    client: TestClient, world: World
) -> None:
    csrf = sign_in(client, world["a.admin"])

    def create(email: str) -> str:
        response = client.post(
            "/users",
            data={"csrf_token": csrf, "email": email, "name": "Same Name", "role": "auditor"},
        )
        assert response.status_code == 200, response.text
        return response.text

    elsewhere = create(world["b.analyst"].email)  # an address of organisation B
    fresh = create("fresh@a.example.kz")
    assert "exists" not in elsewhere

    def shape(html: str) -> str:
        html = re.sub(r"<code data-password>[^<]+</code>", "", html)
        html = re.sub(r'\s*<tr id="user-\d+">.*?</tr>', "", html, flags=re.S)
        return html.replace(world["b.analyst"].email, "X").replace("fresh@a.example.kz", "X")

    assert shape(elsewhere) == shape(fresh)
    again = client.post(
        "/users",
        data={
            "csrf_token": csrf,
            "email": world["b.analyst"].email,
            "name": "X",
            "role": "auditor",
        },
    )
    assert again.status_code == 400 and "exists" in again.text  # only within A
    with unit_of_work(world.factory) as session:
        organisations = session.scalars(
            select(User.organisation_id).where(User.email == world["b.analyst"].email)
        ).all()
        assert sorted(organisations) == sorted(
            [world["a.admin"].organisation_id, world["b.admin"].organisation_id]
        )
