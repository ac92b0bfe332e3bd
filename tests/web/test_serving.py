"""How `qorgan serve` runs uvicorn: X-Forwarded-For is believed only from configured proxies,
so a client cannot choose the address that sign-in throttling counts (checked on a live
server, not just in the options)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn

from qorgan.cli import uvicorn_options
from qorgan.core.settings import Settings, get_settings
from qorgan.testing import free_port
from qorgan.web.app import create_app
from qorgan.web.throttle import Throttle

from .conftest import World

pytestmark = pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
ATTEMPTS = 3


@contextmanager
def _serve(settings: Settings) -> Iterator[str]:
    """The console served as `qorgan serve` would, with a throttle of a few attempts."""
    port = free_port()
    options = uvicorn_options(settings, "127.0.0.1", port, 1)
    app = create_app(settings)
    app.state.qorgan.throttle = Throttle(attempts=ATTEMPTS)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="error",
        proxy_headers=options["proxy_headers"],  # type: ignore[arg-type]
        forwarded_allow_ips=options["forwarded_allow_ips"],  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _wrong_passwords(url: str, forwarded: list[str]) -> list[int]:
    """Sign-in attempts with a wrong password, each claiming another client address."""
    statuses = []
    with httpx.Client(base_url=url) as client:
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        for address in forwarded:
            response = client.post(
                "/login",
                data={"email": "nobody@a.example.kz", "password": "wrong", "csrf_token": token},
                headers={"X-Forwarded-For": address},
            )
            statuses.append(response.status_code)
    return statuses


def test_forwarded_addresses_are_believed_only_from_trusted_proxies(world: World) -> None:
    addresses = [f"198.51.100.{i}" for i in range(1, ATTEMPTS + 2)]
    assert uvicorn_options(world.settings, "127.0.0.1", 8000, 1)["proxy_headers"] is False
    # By default the header is ignored: every attempt counts against the real address.
    with _serve(world.settings) as url:
        assert _wrong_passwords(url, addresses) == [401] * ATTEMPTS + [429]
    # Behind a configured proxy (here: loopback), each forwarded client counts on its own.
    behind = get_settings(
        database_url=world.settings.database_url,
        var_dir=str(world.settings.var_dir),
        trusted_proxies=["127.0.0.1"],
    )
    with _serve(behind) as url:
        assert _wrong_passwords(url, addresses) == [401] * (ATTEMPTS + 1)
