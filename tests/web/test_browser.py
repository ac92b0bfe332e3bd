"""The console in a real browser: Playwright drives Debian's Chromium against the app served by
uvicorn on loopback, on a SQLite database holding the alerts of a hunt over the shipped examples.

One database, one server and one browser serve the whole module (building the users of the
world takes seconds: their passwords are hashed with Argon2id); each test opens its own browser
context, so cookies never leak between tests. Tests that change what others read use their own
users (sign-in failures, a new user enrolling) or put it back (the interface language).

Full-page screenshots of the main pages go to ``build/screenshots/`` at the repository root.
Chromium missing: the tests are skipped, and fail under CI=true (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

import pyotp
import pytest
import uvicorn
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Frame,
    Page,
    Request,
    Response,
    expect,
    sync_playwright,
)
from sqlalchemy import select

from qorgan.core import accounts, security
from qorgan.core.db import make_engine, session_factory, unit_of_work
from qorgan.core.models import Role, User
from qorgan.core.settings import get_settings
from qorgan.migrations import upgrade
from qorgan.pipeline.hunts import create_hunt, default_plan, execute, hunt_folder
from qorgan.pipeline.models import Hunt, HuntSource, HuntStatus
from qorgan.web.app import create_app
from qorgan.web.i18n import translations
from qorgan.web.routes.alerts import PAGE

from .conftest import EXAMPLES, PASSWORD, Person, World, populate

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
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
TIMEOUT_MS = 10_000
#: The chart's data; its failures are test_timeline_chart's to report, not every inbox visit's.
TIMELINE = "/api/v1/alerts/timeline"


def _missing(reason: str) -> None:
    """Skip, or fail under CI=true (the rule of tests/conftest.py)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}: required under CI=true")
    pytest.skip(f"{reason} (install Debian's chromium package to run the browser tests)")


def _text(language: str, message: str) -> str:
    """``message`` as the console shows it in ``language``."""
    return translations(language).gettext(message)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def chromium() -> Path:
    """Debian's Chromium, looked for before anything is set up."""
    if not CHROMIUM.exists():
        _missing(f"Chromium is not installed ({CHROMIUM} is absent)")
    return CHROMIUM


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The world of tests/web/conftest.py (two organisations, a user per role, each MFA
    user's TOTP secret known), built once for the module, on SQLite only (the other suites
    cover PostgreSQL), with the alerts of a hunt over the shipped examples for organisation A."""
    root = tmp_path_factory.mktemp("browser")
    hunt_root = root / "logs"
    settings = get_settings(
        database_url=f"sqlite:///{root / 'qorgan.db'}",
        var_dir=str(root / "var"),
        hunt_root=str(hunt_root),
    )
    upgrade(settings)
    engine = make_engine(settings)
    factory = session_factory(engine)
    people = populate(factory)
    # The examples in A's own hunt folder, as an administrator would place them.
    examples = hunt_folder(hunt_root, people["a.analyst"].organisation_id) / "examples"
    shutil.copytree(EXAMPLES, examples)
    # Real alerts: the built-in rules over the shipped examples, as a hunt from the console.
    with unit_of_work(factory) as session:
        hunt = create_hunt(
            session=session,
            organisation_id=people["a.analyst"].organisation_id,
            user_id=people["a.analyst"].id,
            paths=[examples],
            source=HuntSource.server,
        )
        hunt_id = hunt.id
    execute(hunt_id, factory=factory, plan=default_plan)
    with factory() as session:
        done = session.get(Hunt, hunt_id)
        assert done is not None
        assert done.status is HuntStatus.done, done.error
        assert done.alerts_new > 0, "the hunt over the examples found no alerts"
    yield World(settings, factory, people)
    engine.dispose()


@dataclass
class Console:
    """The app served by uvicorn on a loopback port, in a background thread."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread


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
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)

    return shoot


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


# --------------------------------------------------------------------------- helpers


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


# --------------------------------------------------------------------------- scenarios


def test_sign_in_and_switch_language(
    world: World, visit: Callable[[], Visitor], screenshots: Callable[[Page, str], None]
) -> None:
    """Password and TOTP code lead to the inbox; Kazakh, Russian and English each take over
    the page and survive a reload."""
    analyst = world["a.analyst"]
    visitor = visit()
    page = visitor.page
    visitor.go("/login")
    expect(page.locator("h1")).to_have_text(_text("en", "Sign in"))
    screenshots(page, "01-login")
    page.fill("input[name=email]", analyst.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url("**/login/second-factor")
    expect(page.locator("h1")).to_have_text(_text("en", "Second factor"))
    screenshots(page, "02-second-factor")
    page.fill("input[name=code]", analyst.code())
    page.click("form[action='/login/second-factor'] button[type=submit]")
    page.wait_for_url("**/alerts")
    expect(page.locator("h1")).to_have_text(_text("en", "Alerts"))
    expect(page.locator("form.signout .who")).to_contain_text("Analyst A")
    wait_for_chart(visitor, required=False)
    screenshots(page, "05-inbox-en")

    untranslated: list[str] = []
    try:
        for language in ("kk", "ru", "en"):
            page.click(f"header form.language button[data-language={language}]")
            for step in ("switched", "reloaded"):
                if step == "reloaded":
                    page.reload()
                html = page.locator("html")
                expect(html, f"{language} {step}").to_have_attribute("lang", language)
                expect(page.locator(f"button[data-language={language}]")).to_have_class("current")
                expect(page.locator("h1")).to_have_text(_text(language, "Alerts"))
                expect(page.locator("header nav a[href='/alerts']")).to_have_text(
                    _text(language, "Alerts")
                )
                expect(page.locator("form.signout button")).to_have_text(
                    _text(language, "Sign out")
                )
                expect(page.locator("#filters .levels legend")).to_have_text(
                    _text(language, "Level")
                )
            if language != "en":
                wait_for_chart(visitor, required=False)
                screenshots(page, {"kk": "06-inbox-kk", "ru": "07-inbox-ru"}[language])
                untranslated += [
                    f"{language}: {message!r}"
                    for message in ("Alerts", "Sign out", "Level")
                    if _text(language, message) == message
                ]
    finally:
        with unit_of_work(world.factory) as session:  # other tests read the inbox in English
            user = session.get(User, analyst.id)
            assert user is not None
            user.language = "en"
    assert not untranslated, (
        "the interface catalogues lack translations (src/qorgan/web/translations/<lang>/"
        f"LC_MESSAGES/messages.po): {', '.join(untranslated)}"
    )
    assert not visitor.clean(allow=(TIMELINE,))


def test_filters_and_grouping(
    world: World, visit: Callable[[], Visitor], screenshots: Callable[[Page, str], None]
) -> None:
    """Ticking a level replaces the results (htmx) with that level's alerts, as many as the API
    counts; grouping by rule counts the same alerts per rule."""
    visitor = visit()
    page = visitor.page
    sign_in(visitor, world["a.analyst"])
    visitor.go("/alerts")
    everything = api_total(page)
    expect(page.locator("#results [data-total]")).to_have_attribute("data-total", str(everything))
    high = api_total(page, level="high")
    assert 0 < high < everything, "the examples should give high alerts and others"

    with page.expect_response(for_results) as answer:
        page.check("#filters input[name=level][value=high]")
    assert answer.value.ok, (
        f"the inbox refused the filter form: HTTP {answer.value.status} for {answer.value.url}"
    )
    expect(page.locator("#results [data-total]")).to_have_attribute("data-total", str(high))
    assert "level=high" in page.url  # hx-push-url: the filtered inbox can be bookmarked
    badges = page.locator("#results tr[data-alert-id] .badge")
    expect(badges).to_have_count(min(high, PAGE))
    classes = badges.evaluate_all("els => els.map(e => e.className)")
    assert set(classes) == {"badge level-high"}, classes
    assert set(badges.all_inner_texts()) == {_text("en", "High")}
    wait_for_chart(visitor, required=False)
    screenshots(page, "08-inbox-high")

    with page.expect_response(for_results) as answer:
        page.select_option("#filters select[name=group]", "rule")
    assert answer.value.ok, (
        f"the inbox refused the filter form: HTTP {answer.value.status} for {answer.value.url}"
    )
    grouped = page.locator("#results table.alerts.grouped tbody tr")
    groups = page.request.get("/api/v1/alerts/groups", params={"level": "high", "by": "rule"})
    assert groups.ok, groups.text()
    expected = {g["rule_title"]: g["count"] for g in groups.json()}
    expect(grouped).to_have_count(len(expected))
    shown = {
        row.locator("td").nth(0).inner_text(): int(row.locator("td.count").inner_text())
        for row in grouped.all()
    }
    assert shown == expected
    assert sum(shown.values()) == high
    expect(page.locator("#results [data-total]")).to_have_count(0)
    screenshots(page, "09-inbox-grouped-by-rule")
    assert not visitor.clean(allow=(TIMELINE,))


def test_acknowledge_then_audit_trail(
    world: World, visit: Callable[[], Visitor], screenshots: Callable[[Page, str], None]
) -> None:
    """The analyst acknowledges an alert in the inbox; the organisation's administrator finds
    it in the audit trail, whose chain verifies."""
    analyst = visit()
    page = analyst.page
    sign_in(analyst, world["a.analyst"])
    analyst.go("/alerts?status=new")
    row = page.locator("#results tr[data-alert-id]:has(button.ack)").first
    alert_id = row.get_attribute("data-alert-id")
    assert alert_id is not None
    expect(row.locator("td.status")).to_have_text(_text("en", "New"))
    with page.expect_response(f"**/alerts/{alert_id}/acknowledge"):
        row.locator("button.ack").click()
    swapped = page.locator(f"#alert-{alert_id}")
    expect(swapped.locator("td.status")).to_have_text(_text("en", "Acknowledged"))
    expect(swapped).to_have_class("status-acknowledged")
    expect(swapped.locator("button.reopen")).to_be_visible()
    expect(swapped.locator("button.ack")).to_have_count(0)

    analyst.go(f"/alerts/{alert_id}")
    expect(page.locator("dd.status")).to_have_text(_text("en", "Acknowledged"))
    expect(page.locator(".triage form[action$='/acknowledge'] button")).to_be_disabled()
    screenshots(page, "10-alert")

    admin = visit()
    sign_in(admin, world["a.admin"])
    admin.go("/audit")
    expect(admin.page.locator("h1")).to_have_text(_text("en", "Audit trail"))
    entry = admin.page.locator("tr[data-action='alert.acknowledge']").filter(
        has=admin.page.locator("td", has_text=re.compile(rf"^alert {alert_id}$"))
    )
    expect(entry).to_have_count(1)
    # The trail names users by id; the page shows the organisation's members by name.
    expect(entry.locator("td").nth(2)).to_have_text("Analyst A")
    admin.page.click("a.button[href='/audit?verify=1']")
    expect(admin.page.locator("[data-verified]")).to_have_attribute("data-verified", "intact")
    expect(admin.page.locator("[data-verified]")).to_have_text(
        _text("en", "The audit trail is intact.")
    )
    screenshots(admin.page, "12-audit-verified")
    assert not analyst.clean(allow=(TIMELINE,))
    assert not admin.clean(allow=(TIMELINE,))


def test_first_sign_in_enrols_totp(
    world: World, visit: Callable[[], Visitor], screenshots: Callable[[Page, str], None]
) -> None:
    """A new analyst without a second factor scans the QR code (here: reads the key), confirms
    a code, gets recovery codes once, and goes on to the inbox."""
    with unit_of_work(world.factory) as session:
        user = accounts.create_user(
            session=session,
            actor="test",
            organisation_id=world["a.analyst"].organisation_id,
            email="new.analyst@a.example.kz",
            display_name="New Analyst",
            role=Role.soc_analyst,
            password=PASSWORD,
            language="en",
        )
        user_id = user.id
    visitor = visit()
    page = visitor.page
    visitor.go("/login")
    page.fill("input[name=email]", "new.analyst@a.example.kz")
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url("**/login/enrol")
    expect(page.locator("h1")).to_have_text(_text("en", "Set up the second factor"))
    screenshots(page, "03-enrol-qr")
    qr = page.locator("img.qr")
    expect(qr).to_be_visible()
    assert (qr.get_attribute("src") or "").startswith("data:image/")  # nothing fetched
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0"), (
        "the QR code image is broken: Chromium cannot decode its data: URI (naturalWidth 0)"
    )
    secret = page.locator("[data-totp-secret]").get_attribute("data-totp-secret")
    assert secret and re.fullmatch(r"[A-Z2-7]{16,}", secret), secret

    page.fill("input[name=code]", pyotp.TOTP(secret).now())
    page.click("form[action='/login/enrol'] button[type=submit]")
    expect(page.locator("h1")).to_have_text(_text("en", "Recovery codes"))
    codes = page.locator("ul.codes li code")
    expect(codes).to_have_count(security.RECOVERY_CODES)
    for code in codes.all_inner_texts():
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{8}", code), code
    screenshots(page, "04-recovery-codes")

    page.click("a.button.primary[href='/']")
    page.wait_for_url("**/alerts")
    expect(page.locator("h1")).to_have_text(_text("en", "Alerts"))
    expect(page.locator("form.signout .who")).to_contain_text("New Analyst")
    with world.factory() as session:
        assert session.scalar(select(User.totp_secret).where(User.id == user_id)) == secret
    assert not visitor.clean(allow=(TIMELINE,))


def test_wrong_password_and_wrong_code(
    world: World, visit: Callable[[], Visitor], screenshots: Callable[[Page, str], None]
) -> None:
    """A wrong password keeps the visitor on the sign-in page with the error; so does a wrong
    code on the second-factor page."""
    person = world["a.coordinator"]  # failures count towards a lockout: not the analyst's
    visitor = visit()
    page = visitor.page
    sign_in_error = _text("en", "Wrong e-mail or password.")
    visitor.go("/login")
    page.fill("input[name=email]", person.email)
    page.fill("input[name=password]", "Not-The-Passphrase-2026")
    page.click("form[action='/login'] button[type=submit]")
    expect(page.locator("p.error[role=alert]")).to_have_text(sign_in_error)
    assert page.url.split("?")[0] == f"{visitor.base}/login"
    expect(page.locator("h1")).to_have_text(_text("en", "Sign in"))
    expect(page.locator("input[name=email]")).to_have_value(person.email)
    screenshots(page, "14-login-wrong-password")

    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url("**/login/second-factor")
    assert person.totp_secret is not None
    totp = pyotp.TOTP(person.totp_secret)
    now = time.time()
    near = {totp.at(now + drift) for drift in (-30, 0, 30)}
    wrong = next(c for c in ("000000", "111111", "222222", "333333") if c not in near)
    page.fill("input[name=code]", wrong)
    page.click("form[action='/login/second-factor'] button[type=submit]")
    expect(page.locator("p.error[role=alert]")).to_have_text(
        _text("en", "The code is not right. Check the authenticator app and try again.")
    )
    assert page.url.endswith("/login/second-factor")
    screenshots(page, "15-second-factor-wrong-code")
    # The right code still works afterwards.
    page.fill("input[name=code]", person.code())
    page.click("form[action='/login/second-factor'] button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    # The failed attempts are answered 401, with the page telling why.
    assert not visitor.clean(allow=("HTTP 401: POST", TIMELINE))


def test_timeline_chart(
    world: World, visit: Callable[[], Visitor], screenshots: Callable[[Page, str], None]
) -> None:
    """The inbox's chart is drawn by Plotly served from the console itself."""
    visitor = visit()
    page = visitor.page
    sign_in(visitor, world["a.analyst"])
    scripts: dict[str, int] = {}
    page.on(
        "response",
        lambda r: scripts.__setitem__(r.url, r.status) if "/static/" in r.url else None,
    )
    visitor.go("/alerts")
    points = wait_for_chart(visitor)
    assert points > 0
    assert scripts.get(f"{visitor.base}/static/plotly.min.js") == 200, scripts
    chart = page.locator("#timeline")
    expect(chart.locator("svg.main-svg").first).to_be_visible()
    bars = chart.locator(".trace.bars .point")
    assert bars.count() > 0, "the chart has no bars"
    box = chart.bounding_box()
    assert box is not None and box["height"] >= 200 and box["width"] >= 600, box
    timeline = page.request.get("/api/v1/alerts/timeline", params={"bucket": "day"})
    assert timeline.ok
    assert points == len(timeline.json())
    levels = {p["level"] for p in timeline.json()}
    expect(chart.locator(".legend .traces")).to_have_count(len(levels))
    assert not visitor.clean()


def test_hunts_and_account_pages(
    world: World, visit: Callable[[], Visitor], screenshots: Callable[[Page, str], None]
) -> None:
    """The other pages of the header: the hunt over the examples is listed as done, with its
    alerts; the account page offers the password change and API tokens."""
    visitor = visit()
    page = visitor.page
    sign_in(visitor, world["a.analyst"])
    visitor.go("/hunts")
    expect(page.locator("h1")).to_have_text(_text("en", "Hunts"))
    hunt = page.locator("tr.hunt[data-status=done]")
    expect(hunt).to_have_count(1)
    expect(hunt).to_contain_text(_text("en", "Done"))
    expect(page.locator("input[name=server_paths]").first).to_be_attached()
    screenshots(page, "11-hunts")

    visitor.go("/account")
    expect(page.locator("h1")).to_have_text(_text("en", "Account"))
    expect(page.locator("form[action='/account/password']")).to_be_visible()
    expect(page.locator("form[action='/account/tokens'] input[name=scopes]").first).to_be_visible()
    screenshots(page, "13-account")
    assert not visitor.clean(allow=(TIMELINE,))
