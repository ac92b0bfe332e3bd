"""Live monitoring in a real browser, with the collector running in the console's process:
an HTTP source and a TCP source are registered through the forms, events are sent to them
(HTTP ingest with the source's token, syslog lines over TCP) while the Sources page is open,
and its chart moves between two polls; once the senders stop, both sources are shown silent
and "Log source went silent" alerts are in the inbox. The pages pass axe-core at desktop
width and at 390 px; screenshots go to ``build/screenshots/``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.error import URLError
from urllib.request import urlopen

import httpx
import pytest
import uvicorn
from playwright.sync_api import Page, expect

from qorgan.core.db import make_engine, session_factory
from qorgan.core.settings import get_settings
from qorgan.migrations import upgrade
from web.conftest import World, populate

from .helpers import Console, Visitor, sign_in
from .test_volume import MOBILE, _axe, _fits

#: The shortest expected interval a source may have: silent after 10 s without an event.
INTERVAL = 10
SILENT_RULE = "qorgan-collector-silent-source"
#: How long the silence may take to show: the interval, the collector's sweep (every 10 s),
#: its flush (every 2 s) and a poll of the page (every 5 s), with room to spare.
SILENCE_WITHIN = 45


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Organisations A and B (tests/web/conftest.py); the collector's listeners on free
    loopback ports (port 0), no RELP, TLS or archive."""
    root = tmp_path_factory.mktemp("sources-live")
    settings = get_settings(
        database_url=f"sqlite:///{root / 'qorgan.db'}",
        var_dir=str(root / "var"),
        hunt_root=str(root / "logs"),
        collect_udp="127.0.0.1:0",
        collect_tcp="127.0.0.1:0",
        collect_relp="",
        collect_tls="",
        collect_http="",
        archive_days=0,
    )
    upgrade(settings)
    engine = make_engine(settings)
    factory = session_factory(engine)
    yield World(settings, factory, populate(factory))
    engine.dispose()


@pytest.fixture(scope="module")
def console(world: World) -> Iterator[Console]:
    """The console served by uvicorn with the collector in-process (as ``qorgan serve``)."""
    from qorgan.web.app import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = world.settings.model_copy(update={"public_url": url})
    app = create_app(settings, start_collector=True)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, ws="none", lifespan="on")
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="qorgan-console", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 60
    while True:
        try:
            with urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200:
                    break
        except (URLError, ConnectionError, TimeoutError):
            pass
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            pytest.fail("the console did not answer /healthz within 60 s")
        time.sleep(0.05)
    collector = app.state.collector
    if collector is None:
        server.should_exit = True
        pytest.fail("the collector did not start in the console's process")
    yield Console(url, server, thread)
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()
    assert not thread.is_alive(), "the console did not stop"


class Senders:
    """Send events to an HTTP source (its token) and syslog lines to the TCP listener, a few
    every 0.3 s from a thread, until stopped; what was accepted is counted. Refusals at first
    are expected: a running collector learns of new sources within seconds."""

    def __init__(self, url: str, token: str, tcp_port: int) -> None:
        self.url, self.token, self.tcp_port = url, token, tcp_port
        self.http_accepted = 0
        self.tcp_batches = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="senders", daemon=True)

    def start(self) -> Senders:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        number = 0
        with httpx.Client(timeout=5) as client:
            while not self._stop.wait(0.3):
                number += 1
                self._http(client, number)
                self._tcp(number)

    def _http(self, client: httpx.Client, number: int) -> None:
        events = [
            {"EventID": 4624, "Computer": "web-01", "TargetUserName": f"user{number}", "n": i}
            for i in range(5)
        ]
        body = "\n".join(json.dumps(e) for e in events).encode()
        try:
            answer = client.post(
                f"{self.url}/api/v1/ingest",
                content=body,
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "application/x-ndjson",
                },
            )
        except httpx.HTTPError as exc:
            self.errors.append(f"http: {exc}")
            return
        if answer.status_code == 200:
            self.http_accepted += answer.json()["accepted"]
        elif answer.status_code != 401:  # 401: not known to the collector yet
            self.errors.append(f"http: {answer.status_code} {answer.text[:200]}")

    def _tcp(self, number: int) -> None:
        stamp = time.strftime("%b %d %H:%M:%S", time.gmtime())
        lines = b"".join(
            f"<134>{stamp} fw-01 filterlog: packet {number}.{i} passed\n".encode() for i in range(8)
        )
        try:
            with socket.create_connection(("127.0.0.1", self.tcp_port), timeout=5) as sock:
                sock.sendall(lines)
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(1024):  # closed by the receiver once what we sent is durable
                    pass
            self.tcp_batches += 1
        except OSError as exc:  # refused while the source is not known yet
            self.errors.append(f"tcp: {exc}")


CHART = """(id) => {
  const box = document.getElementById(id);
  if (!box || !box.data) return null;
  return { drawn: Number(box.dataset.drawn || 0), traces: box.data.map((t) => [t.name, t.y]) };
}"""


def _chart(page: Page, chart: str = "sources-chart") -> dict[str, Any] | None:
    return page.evaluate(CHART, chart)  # type: ignore[no-any-return]


def _next_poll(page: Page, chart: str = "sources-chart") -> dict[str, Any]:
    """The chart once the page's next poll has redrawn it."""
    drawn = (_chart(page, chart) or {"drawn": 0})["drawn"]
    page.wait_for_function(
        "([id, n]) => Number(document.getElementById(id)?.dataset.drawn || 0) > n",
        arg=[chart, drawn],
        timeout=12_000,
    )
    found = _chart(page, chart)
    assert found is not None
    return found


def _register(page: Page, name: str, transport: str, fmt: str) -> int:
    page.goto("/sources/new")
    page.fill("input[name=name]", name)
    page.select_option("select[name=transport]", transport)
    page.select_option("select[name=format]", fmt)
    page.fill("input[name=expected_interval]", str(INTERVAL))
    page.click("form[action='/sources'] button[type=submit]")
    expect(page.locator("h1")).to_have_text(name)
    return int(page.locator("#source-live").get_attribute("hx-get").split("/")[2])  # type: ignore[union-attr]


def _shoot_both_widths(
    visitor: Visitor, path: str, name: str, screenshots: Callable[[Page, str], None]
) -> None:
    page = visitor.page
    page.set_viewport_size({"width": 1280, "height": 900})
    visitor.go(path)
    page.wait_for_selector("[data-drawn]", state="attached")
    _axe(page, name)
    screenshots(page, f"60-{name}-desktop")
    page.set_viewport_size(MOBILE)
    visitor.go(path)
    page.wait_for_selector("[data-drawn]", state="attached")
    screenshots(page, f"61-{name}-390px")
    _fits(page, name)
    _axe(page, f"{name} at 390px")
    page.set_viewport_size({"width": 1280, "height": 900})


@pytest.mark.slow
def test_sources_move_live_then_fall_silent_with_an_alert(
    world: World,
    console: Console,
    visit: Callable[[], Visitor],
    screenshots: Callable[[Page, str], None],
) -> None:
    collector = console.server.config.app.state.collector  # type: ignore[attr-defined]
    tcp_port = collector.ports["tcp"]
    visitor = visit()
    page = visitor.page
    sign_in(visitor, world["a.admin"])

    # Registered through the forms; the HTTP source's token is shown once.
    http_id = _register(page, "Web proxy", "http", "json")
    token = page.locator("[data-source-token]").inner_text().strip()
    assert token.startswith("qls_")
    tcp_id = _register(page, "Edge firewall", "tcp", "syslog")
    expect(page.locator("pre.instructions")).to_contain_text(f'port="{tcp_port}"')

    senders = Senders(console.url, token, tcp_port).start()
    try:
        visitor.go("/sources")
        expect(page.locator(f'tr[data-source-id="{http_id}"][data-state="live"]')).to_be_visible(
            timeout=20_000
        )
        expect(page.locator(f'tr[data-source-id="{tcp_id}"][data-state="live"]')).to_be_visible(
            timeout=20_000
        )
        # The chart moves between two polls, both sources drawn with events.
        before = _next_poll(page)
        after = _next_poll(page)
        assert after["traces"] != before["traces"]
        drawn = {name: sum(y) for name, y in after["traces"]}
        assert drawn["Web proxy"] > 0 and drawn["Edge firewall"] > 0, drawn
        _shoot_both_widths(visitor, "/sources", "sources-live", screenshots)
        _shoot_both_widths(visitor, f"/sources/{tcp_id}", "source-live", screenshots)
        # A source's page polls too: its figures and chart are replaced out of band.
        events = page.locator("[data-events]").get_attribute("data-events")
        polled = _next_poll(page, "source-chart")
        assert [name for name, _y in polled["traces"]] == ["Events", "Dropped", "Parse failures"]
        expect(page.locator("[data-events]")).not_to_have_attribute("data-events", events or "")
    finally:
        senders.stop()
    assert senders.http_accepted > 0 and senders.tcp_batches > 0, senders.errors[-5:]

    # Silent: the collector's sweep marks both, the page shows it at its next poll.
    visitor.go("/sources")
    for source_id in (http_id, tcp_id):
        expect(
            page.locator(f'tr[data-source-id="{source_id}"][data-state="silent"]')
        ).to_be_visible(timeout=SILENCE_WITHIN * 1000)
    screenshots(page, "62-sources-silent-desktop")
    # The collector's sweep (every 10 s) raises one alert per silence: bounded polling.
    deadline = time.monotonic() + SILENCE_WITHIN
    while True:
        alerts = page.request.get("/api/v1/alerts", params={"limit": "500"}).json()["items"]
        silent = [a for a in alerts if a["rule_id"] == SILENT_RULE]
        if len(silent) >= 2 or time.monotonic() > deadline:
            break
        page.wait_for_timeout(500)
    assert len(silent) == 2, [a["rule_id"] for a in alerts]
    visitor.go("/alerts")
    expect(page.locator("#results").get_by_text("Log source went silent").first).to_be_visible()
    # The figures reached the database: events counted against each source.
    listed = {s["id"]: s for s in page.request.get("/api/v1/sources").json()}
    assert listed[http_id]["events"] >= senders.http_accepted
    assert listed[tcp_id]["events"] > 0 and listed[tcp_id]["state"] == "silent"
    assert not visitor.clean(), visitor.clean()
