"""Browser tests: Playwright drives Debian's Chromium against the console served by uvicorn on
loopback. One server and one browser serve each test module, on the module's own ``world``
fixture (its database); each test opens its own browser contexts, so cookies never leak
between tests.

Full-page screenshots go to ``build/screenshots/`` at the repository root. Chromium missing: the
tests are skipped, and fail under CI=true (``.ci/run`` installs it).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from qorgan.web.app import create_app
from web.conftest import World

from .helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SCREENSHOTS,
    TIMEOUT_MS,
    Console,
    Visitor,
    missing,
)

#: How long a full-page screenshot may take; the checks keep TIMEOUT_MS.
SCREENSHOT_MS = 60_000


@pytest.fixture(scope="module", autouse=True)
def chromium() -> Path:
    """Debian's Chromium, looked for before anything is set up."""
    if not CHROMIUM.exists():
        missing(f"Chromium is not installed ({CHROMIUM} is absent)")
    return CHROMIUM


@pytest.fixture(scope="module")
def console(world: World) -> Iterator[Console]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # bound here and handed over: no race for a free port
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(world.settings),
        log_level="warning",
        access_log=False,
        ws="none",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="qorgan-console", daemon=True
    )
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
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
            pytest.fail("the console did not answer /healthz within 20 s")
        time.sleep(0.05)
    yield Console(url, server, thread)
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()
    assert not thread.is_alive(), "the console did not stop"


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS, timeout=60_000
        )
        expect.set_options(timeout=TIMEOUT_MS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def screenshots() -> Callable[[Page, str], None]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def shoot(page: Page, name: str) -> None:
        # A picture for people, not a check, so not held to TIMEOUT_MS: a full page of
        # thousands of alerts takes Chromium seconds to paint, and more while the tests run on
        # every core (pytest-xdist), Chromium sharing them with the other workers.
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True, timeout=SCREENSHOT_MS)

    return shoot


@pytest.fixture
def visit(browser: Browser, console: Console) -> Iterator[Callable[[], Visitor]]:
    """``visit()``: a fresh browser context, as a new visitor, English by the browser's
    preference; all are closed at the end of the test."""
    contexts: list[BrowserContext] = []

    def new() -> Visitor:
        context = browser.new_context(
            base_url=console.url, locale="en-GB", viewport={"width": 1280, "height": 900}
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        visitor = Visitor(context, context.new_page(), console.url)
        visitor.watch()
        return visitor

    yield new
    for context in contexts:
        context.close()
