"""The console in a real browser, on a SQLite database holding the alerts of a hunt over the
shipped examples: sign-in, languages, filters, triage, the audit trail, enrolment, hunts.

One database, one server and one browser serve the whole module (building the users of the
world takes seconds: their passwords are hashed with Argon2id). Tests that change what others
read use their own users (sign-in failures, a new user enrolling) or put it back (the interface
language). The fixtures are in ``conftest.py`` of this folder.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator

import pyotp
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from qorgan.core import accounts, security
from qorgan.core.db import make_engine, session_factory, unit_of_work
from qorgan.core.models import Role, User
from qorgan.core.settings import get_settings
from qorgan.migrations import upgrade
from qorgan.pipeline.hunts import create_hunt, default_plan, execute, hunt_folder
from qorgan.pipeline.models import Hunt, HuntSource, HuntStatus
from qorgan.web.routes.alerts import PAGE
from web.conftest import EXAMPLES, PASSWORD, World, populate

from .helpers import (
    TIMELINE,
    Visitor,
    api_total,
    for_results,
    sign_in,
    text,
    wait_for_chart,
)


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
    expect(page.locator("h1")).to_have_text(text("en", "Sign in"))
    screenshots(page, "01-login")
    page.fill("input[name=email]", analyst.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url("**/login/second-factor")
    expect(page.locator("h1")).to_have_text(text("en", "Second factor"))
    screenshots(page, "02-second-factor")
    page.fill("input[name=code]", analyst.code())
    page.click("form[action='/login/second-factor'] button[type=submit]")
    page.wait_for_url("**/alerts")
    expect(page.locator("h1")).to_have_text(text("en", "Alerts"))
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
                expect(page.locator("h1")).to_have_text(text(language, "Alerts"))
                expect(page.locator("header nav a[href='/alerts']")).to_have_text(
                    text(language, "Alerts")
                )
                expect(page.locator("form.signout button")).to_have_text(text(language, "Sign out"))
                expect(page.locator("#filters .levels legend")).to_have_text(
                    text(language, "Level")
                )
            if language != "en":
                wait_for_chart(visitor, required=False)
                screenshots(page, {"kk": "06-inbox-kk", "ru": "07-inbox-ru"}[language])
                untranslated += [
                    f"{language}: {message!r}"
                    for message in ("Alerts", "Sign out", "Level")
                    if text(language, message) == message
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
    assert set(badges.all_inner_texts()) == {text("en", "High")}
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
    expected = {g["rule_title"]: g["count"] for g in groups.json()["items"]}
    expect(grouped).to_have_count(len(expected))
    shown = {
        row.locator("td").nth(0).inner_text(): int(row.locator("td.count").inner_text())
        for row in grouped.all()
    }
    assert shown == expected
    assert sum(shown.values()) == high
    # The grouped view says how many groups there are, and still how many alerts.
    groups_total = page.locator("#results [data-groups-total]")
    expect(groups_total).to_have_attribute("data-groups-total", str(len(expected)))
    expect(page.locator("#results [data-total]")).to_have_attribute("data-total", str(high))
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
    expect(row.locator("td.status")).to_have_text(text("en", "New"))
    with page.expect_response(f"**/alerts/{alert_id}/acknowledge"):
        row.locator("button.ack").click()
    swapped = page.locator(f"#alert-{alert_id}")
    expect(swapped.locator("td.status")).to_have_text(text("en", "Acknowledged"))
    expect(swapped).to_have_class("status-acknowledged")
    expect(swapped.locator("button.reopen")).to_be_visible()
    expect(swapped.locator("button.ack")).to_have_count(0)

    analyst.go(f"/alerts/{alert_id}")
    expect(page.locator("dd.status")).to_have_text(text("en", "Acknowledged"))
    expect(page.locator(".triage form[action$='/acknowledge'] button")).to_be_disabled()
    screenshots(page, "10-alert")

    admin = visit()
    sign_in(admin, world["a.admin"])
    admin.go("/audit")
    expect(admin.page.locator("h1")).to_have_text(text("en", "Audit trail"))
    entry = admin.page.locator("tr[data-action='alert.acknowledge']").filter(
        has=admin.page.locator("td", has_text=re.compile(rf"^alert {alert_id}$"))
    )
    expect(entry).to_have_count(1)
    # The trail names users by id; the page shows the organisation's members by name.
    expect(entry.locator("td").nth(2)).to_have_text("Analyst A")
    admin.page.click("a.button[href='/audit?verify=1']")
    expect(admin.page.locator("[data-verified]")).to_have_attribute("data-verified", "intact")
    expect(admin.page.locator("[data-verified]")).to_have_text(
        text("en", "The audit trail is intact.")
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
    expect(page.locator("h1")).to_have_text(text("en", "Set up the second factor"))
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
    expect(page.locator("h1")).to_have_text(text("en", "Recovery codes"))
    codes = page.locator("ul.codes li code")
    expect(codes).to_have_count(security.RECOVERY_CODES)
    for code in codes.all_inner_texts():
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{8}", code), code
    screenshots(page, "04-recovery-codes")

    page.click("a.button.primary[href='/']")
    page.wait_for_url("**/alerts")
    expect(page.locator("h1")).to_have_text(text("en", "Alerts"))
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
    sign_in_error = text("en", "Wrong e-mail or password.")
    visitor.go("/login")
    page.fill("input[name=email]", person.email)
    page.fill("input[name=password]", "Not-The-Passphrase-2026")
    page.click("form[action='/login'] button[type=submit]")
    expect(page.locator("p.error[role=alert]")).to_have_text(sign_in_error)
    assert page.url.split("?")[0] == f"{visitor.base}/login"
    expect(page.locator("h1")).to_have_text(text("en", "Sign in"))
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
        text("en", "The code is not right. Check the authenticator app and try again.")
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
    assert box is not None and box["height"] >= 150 and box["width"] >= 600, box
    # The chart draws what the API gives for the inbox's view (new alerts), hours or days
    # as the span asks: the examples span one day, so hours.
    timeline = page.request.get("/api/v1/alerts/timeline", params={"status": "new"})
    assert timeline.ok
    data = timeline.json()
    assert data["bucket"] == "hour" == chart.get_attribute("data-bucket")
    assert points == len(data["points"])
    levels = {p["level"] for p in data["points"]}
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
    expect(page.locator("h1")).to_have_text(text("en", "Hunts"))
    hunt = page.locator("tr.hunt[data-status=done]")
    expect(hunt).to_have_count(1)
    expect(hunt).to_contain_text(text("en", "Done"))
    expect(page.locator("input[name=server_paths]").first).to_be_attached()
    screenshots(page, "11-hunts")

    visitor.go("/account")
    expect(page.locator("h1")).to_have_text(text("en", "Account"))
    expect(page.locator("form[action='/account/password']")).to_be_visible()
    expect(page.locator("form[action='/account/tokens'] input[name=scopes]").first).to_be_visible()
    screenshots(page, "13-account")
    assert not visitor.clean(allow=(TIMELINE,))
