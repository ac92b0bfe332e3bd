"""Sign-in requests at the same instant against a real server (uvicorn on loopback, SQLite and
PostgreSQL): threads wait at a barrier, then send together. Every wrong password counts, and a
TOTP code or a recovery code opens one session however many requests carry it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from qorgan.core import security
from qorgan.core.db import unit_of_work
from qorgan.core.models import RecoveryCode, User
from qorgan.web.app import create_app

from .conftest import PASSWORD, Person, World, csrf_of

T = TypeVar("T")
Browsers = Callable[[int], list[httpx.Client]]


@pytest.fixture
def console(world: World) -> Iterator[str]:
    """A console served by uvicorn in a thread. The socket listens before the server starts,
    so requests queue in its backlog instead of being polled for."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    app = create_app(world.settings, start_runner=False)
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    listener.close()


def at_once(clients: list[httpx.Client], send: Callable[[httpx.Client], T]) -> list[T]:
    barrier = threading.Barrier(len(clients), timeout=30)

    def run(client: httpx.Client) -> T:
        barrier.wait()
        return send(client)

    with ThreadPoolExecutor(len(clients)) as pool:
        return list(pool.map(run, clients))


@pytest.fixture
def browsers(console: str) -> Iterator[Callable[[int], list[httpx.Client]]]:
    """``browsers(n)``: n HTTP clients of the console, each with its own cookies; closed after
    the test (before the server stops, so it has no open connection to wait for)."""
    made: list[httpx.Client] = []

    def make(n: int) -> list[httpx.Client]:
        clients = [httpx.Client(base_url=console, timeout=60) for _ in range(n)]
        made.extend(clients)
        return clients

    yield make
    for client in made:
        client.close()


def _post_login(client: httpx.Client, email: str, password: str) -> httpx.Response:
    page = client.get("/login")
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(page.text)},
    )


def _pending_second_factor(client: httpx.Client, person: Person) -> str:
    """Password accepted: the client holds a half session; returns its CSRF token."""
    response = _post_login(client, person.email, PASSWORD)
    assert response.status_code == 303 and response.headers["location"] == "/login/second-factor"
    return csrf_of(client.get("/login/second-factor").text)


def _send_code(client: httpx.Client, csrf: str, code: str) -> int:
    return client.post("/login/second-factor", data={"code": code, "csrf_token": csrf}).status_code


def test_parallel_wrong_passwords_all_count(browsers: Browsers, world: World) -> None:
    person = world["a.partner"]
    n = security.MAX_FAILED_LOGINS
    clients = browsers(n)
    tokens = {id(c): csrf_of(c.get("/login").text) for c in clients}

    def guess(client: httpx.Client) -> int:
        data = {
            "email": person.email,
            "password": "Wrong-Guess-2026",
            "csrf_token": tokens[id(client)],
        }
        return client.post("/login", data=data).status_code

    assert at_once(clients, guess) == [401] * n
    with unit_of_work(world.factory) as session:
        user = session.get(User, person.id)
        assert user is not None and user.failed_logins == n and user.locked_until is not None
    # The lockout engaged: the right password is refused too.
    assert _post_login(clients[0], person.email, PASSWORD).status_code == 401


def test_one_totp_code_sent_twice_at_once_opens_one_session(
    browsers: Browsers, world: World
) -> None:
    person = world["a.analyst"]
    clients = browsers(2)
    tokens = {id(c): _pending_second_factor(c, person) for c in clients}
    code = person.code()
    statuses = at_once(clients, lambda c: _send_code(c, tokens[id(c)], code))
    assert sorted(statuses) == [303, 401]


def test_one_recovery_code_sent_twice_at_once_opens_one_session(
    browsers: Browsers, world: World
) -> None:
    person = world["a.coordinator"]
    code = security.new_recovery_codes(1)[0]
    with unit_of_work(world.factory) as session:
        session.add(RecoveryCode(user_id=person.id, code_hash=security.recovery_digest(code)))
    clients = browsers(2)
    tokens = {id(c): _pending_second_factor(c, person) for c in clients}
    statuses = at_once(clients, lambda c: _send_code(c, tokens[id(c)], code))
    assert sorted(statuses) == [303, 401]
    with unit_of_work(world.factory) as session:
        used = session.scalars(
            select(RecoveryCode.used_at).where(RecoveryCode.user_id == person.id)
        ).all()
        assert len(used) == 1 and used[0] is not None
