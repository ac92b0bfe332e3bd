"""A console on a migrated database (SQLite, and PostgreSQL on loopback), with two
organisations and users of each role, driven through Starlette's TestClient (real HTTP
semantics, cookies and all, in process)."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import accounts, security
from qorgan.core.db import unit_of_work
from qorgan.core.models import OrganisationKind, Role, User
from qorgan.core.settings import Settings, get_settings
from qorgan.pipeline.hunts import hunt_folder
from qorgan.web.app import create_app

PASSWORD = "Qorgan-Test-Passphrase-2026!"
#: The bearer token /metrics asks for in these tests.
METRICS_TOKEN = "metrics-token-for-the-tests-0123456789"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "logs"


@dataclass
class Person:
    id: int
    email: str
    role: Role
    organisation_id: int
    totp_secret: str | None

    last_step: int = -1

    def code(self) -> str:
        """A TOTP code the console has not seen yet: each code signs in once, so a second
        sign-in within 30 s takes the next step's code (accepted for clock drift), and a
        third waits for the clock."""
        assert self.totp_secret is not None
        totp = pyotp.TOTP(self.totp_secret)
        while True:
            now = totp.timecode(datetime.now(UTC))
            step = max(now, self.last_step + 1)
            if step <= now + 1:
                self.last_step = step
                return totp.generate_otp(step)
            time.sleep(0.5)


@dataclass
class World:
    """Two organisations, A and B, each with one user per role that the console serves."""

    settings: Settings
    factory: sessionmaker[Session]
    people: dict[str, Person]  # "a.analyst", "b.auditor", ...

    def __getitem__(self, key: str) -> Person:
        return self.people[key]

    def token(self, key: str, scopes: list[str], days: int = 30) -> str:
        with unit_of_work(self.factory) as session:
            user = session.get(User, self.people[key].id)
            assert user is not None
            return accounts.issue_token(
                session=session, user=user, name="test", scopes=scopes, lifetime=timedelta(days)
            )


ROLES = (Role.administrator, Role.soc_analyst, Role.cert_coordinator, Role.auditor, Role.partner)
SHORT = {
    Role.administrator: "admin",
    Role.soc_analyst: "analyst",
    Role.cert_coordinator: "coordinator",
    Role.auditor: "auditor",
    Role.partner: "partner",
}


@functools.cache
def password_hash() -> str:
    return security.hash_password(PASSWORD)


@pytest.fixture
def web_settings(settings: Settings, tmp_path: Path) -> Settings:
    hunt_root = tmp_path / "logs"
    hunt_root.mkdir()
    return get_settings(
        database_url=settings.database_url,
        var_dir=str(tmp_path / "var"),
        hunt_root=str(hunt_root),
        metrics_token=METRICS_TOKEN,
    )


def populate(factory: sessionmaker[Session]) -> dict[str, Person]:
    """Organisations A and B, each with one user per role; MFA users' TOTP secrets known."""
    people: dict[str, Person] = {}
    with unit_of_work(factory) as session:
        for letter, kind in (("a", OrganisationKind.akimat), ("b", OrganisationKind.bank)):
            organisation = accounts.create_organisation(
                session=session, actor="test", name=f"Organisation {letter.upper()}", kind=kind
            )
            for role in ROLES:
                # Rows made directly with one precomputed hash: Argon2 is slow on purpose, and
                # the account service itself is tested in tests/core.
                user = User(
                    organisation_id=organisation.id,
                    email=f"{SHORT[role]}@{letter}.example.kz",
                    display_name=f"{SHORT[role].title()} {letter.upper()}",
                    role=role,
                    password_hash=password_hash(),
                    language="en",
                )
                session.add(user)
                session.flush()
                secret = None
                if role in accounts.MFA_ROLES:
                    secret = pyotp.random_base32()
                    user.totp_secret = secret
                key = f"{letter}.{SHORT[role]}"
                people[key] = Person(user.id, user.email, role, organisation.id, secret)
    return people


@pytest.fixture
def world(web_settings: Settings, factory: sessionmaker[Session]) -> World:
    """A and B; the example logs are in A's hunt folder (``<hunt root>/<A's id>/examples``)."""
    people = populate(factory)
    examples = hunt_folder(web_settings.hunt_root, people["a.admin"].organisation_id) / "examples"
    examples.mkdir(parents=True)
    for path in EXAMPLES.iterdir():
        (examples / path.name).write_bytes(path.read_bytes())
    return World(web_settings, factory, people)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    app = create_app(world.settings)
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def sign_in(client: TestClient, person: Person) -> str:
    """Sign ``person`` in through the pages (password, then TOTP); returns the CSRF token."""
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"email": person.email, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    if response.headers["location"] == "/login/second-factor":
        page = client.get("/login/second-factor")
        response = client.post(
            "/login/second-factor",
            data={"code": person.code(), "csrf_token": csrf_of(page.text)},
            follow_redirects=False,
        )
        assert response.status_code == 303, response.text
    return csrf_of(client.get("/account").text)


def alert_payload(index: int, *, level: str = "high", host: str = "host-1") -> dict[str, object]:
    """An alert in the documented ingestion shape."""
    return {
        "rule": {
            "id": f"00000000-0000-4000-8000-{index % 7:012d}",
            "title": f"Test rule {index % 7}",
            "level": level,
            "tags": ["attack.credential_access", "attack.t1110"],
            "status": "test",
            "path": "rules/test.yml",
        },
        "time": f"2026-11-{20 + index % 3:02d}T{index % 24:02d}:00:00Z",
        "host": host,
        "source": {"path": "/logs/auth.log", "record": index, "format": "syslog"},
        "event": {"user": f"user{index}", "src_ip": "203.0.113.7"},
        "classification": {"kz_cert": "credential-attack"},
    }
