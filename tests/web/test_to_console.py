"""`qorgan hunt --to-console`: a real hunt sends its alerts to a real console over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from qorgan.testing import free_port
from qorgan.web.app import create_app

from .conftest import EXAMPLES, World

QORGAN = [sys.executable, "-m", "qorgan.cli"]
#: One database is enough for the HTTP client: the API suite runs on both.
pytestmark = pytest.mark.parametrize("settings", ["sqlite"], indirect=True)


@pytest.fixture
def console_url(world: World) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(world.settings), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


def _hunt(url: str, token: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QORGAN_API_TOKEN": token}
    return subprocess.run(
        [*QORGAN, "hunt", str(EXAMPLES), "--to-console", url, *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_hunt_sends_alerts_once(console_url: str, world: World) -> None:
    token = world.token("a.analyst", ["alerts:write"])
    first = _hunt(console_url, token)
    assert first.returncode == 1, first.stderr  # alerts fired
    assert first.stdout == ""  # sent, not printed
    sent = int(first.stderr.split("sent ")[1].split(" alerts")[0].replace(",", ""))
    assert sent > 0 and f"{sent:,} new" in first.stderr
    second = _hunt(console_url, token)
    assert f"0 new, {sent:,} already there" in second.stderr
    reader = world.token("a.analyst", ["alerts:read"])
    listed = httpx.get(
        f"{console_url}/api/v1/alerts", headers={"Authorization": f"Bearer {reader}"}
    ).json()
    assert listed["total"] == sent
    # With --output the alerts are also written out.
    out = Path(world.settings.var_dir) / "alerts.jsonl"
    third = _hunt(console_url, token, "--output", str(out))
    assert len(out.read_text().splitlines()) == sent and third.returncode == 1


def test_refusals_are_clear(console_url: str, world: World) -> None:
    missing = _hunt(console_url, "")
    assert missing.returncode == 2 and "QORGAN_API_TOKEN" in missing.stderr
    reader = _hunt(console_url, world.token("a.analyst", ["alerts:read"]))
    assert reader.returncode == 2 and "403" in reader.stderr
    unreachable = _hunt(f"http://127.0.0.1:{free_port()}", "qgn_x")
    assert unreachable.returncode == 2 and "cannot reach the console" in unreachable.stderr
