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
            f"/users/{analyst.id}/role", data={"csrf_token": csrf, "role": "auditor"}
        ).status_code
        == 200
    )
    demote_self = client.post(
        f"/users/{world['a.admin'].id}/role", data={"csrf_token": csrf, "role": "auditor"}
    )
    assert demote_self.status_code == 400
    # A reset second factor ends the user's sessions; the next sign-in enrols again.
    victim = TestClient(client.app, base_url="http://127.0.0.1")
    sign_in(victim, world["a.coordinator"])
    assert victim.get("/api/v1/me").status_code == 200
    reset = client.post(
        f"/users/{world['a.coordinator'].id}/reset-second-factor", data={"csrf_token": csrf}
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
