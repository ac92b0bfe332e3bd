"""What browser tests share besides fixtures: Chromium's settings, a visitor that records what
goes wrong in its page, signing in through the forms, and small waits."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import BrowserContext, ConsoleMessage, Frame, Page, Request, Response

from qorgan.web.i18n import translations
from web.conftest import PASSWORD, Person

CHROMIUM = Path("/usr/bin/chromium")
# The machine may have no internet: nothing Chromium does on its own may reach out.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[3] / "build" / "screenshots"
TIMEOUT_MS = 10_000
#: The chart's data; its failures are test_timeline_chart's to report, not every inbox visit's.
TIMELINE = "/api/v1/alerts/timeline"


def missing(reason: str) -> None:
    """Skip, or fail under CI=true (the rule of tests/conftest.py)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}: required under CI=true")
    pytest.skip(f"{reason} (install Debian's chromium package to run the browser tests)")


def text(language: str, message: str) -> str:
    """``message`` as the console shows it in ``language``."""
    return translations(language).gettext(message)


# --------------------------------------------------------------------------- fixtures


@dataclass
class Console:
    """The app served by uvicorn on a loopback port, in a background thread."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread


@dataclass
class Visitor:
    """A browser context (its own cookies) with one page, and what went wrong in it: uncaught
    script errors, console errors (a CSP refusal, say) and requests leaving loopback."""

    context: BrowserContext
    page: Page
    base: str
    problems: list[str] = field(default_factory=list)
    #: The status of the chart's data request on the page shown now (None: not answered yet).
    timeline_status: int | None = None

    def watch(self) -> None:
        self.page.on("framenavigated", self._navigated)
        self.page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        self.page.on("console", self._console)
        self.page.on("response", self._response)
        self.page.on("request", self._request)

    def _console(self, message: ConsoleMessage) -> None:
        # A failed load is reported with its address by _response.
        if message.type in ("error", "warning") and "Failed to load resource" not in message.text:
            self.problems.append(f"console {message.type}: {message.text}")

    def _navigated(self, frame: Frame) -> None:
        if frame == self.page.main_frame:
            self.timeline_status = None

    def _response(self, response: Response) -> None:
        if TIMELINE in response.url:
            self.timeline_status = response.status
        if response.status >= 400:
            self.problems.append(
                f"HTTP {response.status}: {response.request.method} {response.url}"
            )

    def _request(self, request: Request) -> None:
        if not request.url.startswith((self.base, "data:", "about:")):
            self.problems.append(f"request off loopback: {request.url}")

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def clean(self, *, allow: tuple[str, ...] = ()) -> list[str]:
        return [p for p in self.problems if not any(a in p for a in allow)]


def sign_in(visitor: Visitor, person: Person, *, password: str = PASSWORD) -> None:
    """Sign in through the forms: the password, then the code from the authenticator app."""
    page = visitor.page
    visitor.go("/login")
    page.fill("input[name=email]", person.email)
    page.fill("input[name=password]", password)
    page.click("form[action='/login'] button[type=submit]")
    if person.totp_secret is not None:
        page.wait_for_url("**/login/second-factor")
        page.fill("input[name=code]", person.code())
        page.click("form[action='/login/second-factor'] button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def wait_for_chart(visitor: Visitor, *, required: bool = True) -> int:
    """Wait until qorgan.js has drawn the timeline; the number of points it drew. When its
    data request fails or it is not drawn in time: an error, or -1 when not ``required``
    (before a screenshot)."""
    chart = visitor.page.locator("#timeline[data-drawn]")
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not chart.count():
        failed = visitor.timeline_status is not None and visitor.timeline_status >= 400
        if failed or time.monotonic() > deadline:
            if not required:
                return -1
            raise AssertionError(
                f"the chart was not drawn (its data request: HTTP {visitor.timeline_status}); "
                f"in the page: {visitor.problems}"
            )
        visitor.page.wait_for_timeout(100)
    return int(chart.get_attribute("data-drawn") or "0")


def for_results(response: Response) -> bool:
    """Whether ``response`` answers htmx's request for ``#results`` (the filtered inbox)."""
    return "/alerts?" in response.url and response.request.headers.get("hx-target") == "results"


def api_total(page: Page, **params: str) -> int:
    response = page.request.get("/api/v1/alerts", params=params)
    assert response.ok, response.text()
    return int(response.json()["total"])
