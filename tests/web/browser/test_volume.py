"""The inbox at volume, in a real browser: 20,000 alerts from 400 rules, as an analyst uses it.

The critical rules are on the first page of every grouping; search, pivots, bulk triage of all
matching, keyboard triage and Back/Forward work; axe-core finds no serious or critical
accessibility violation on any page; screenshots at desktop width and at 390 px go to
``build/screenshots/``. The browser, server and visitor fixtures are in ``conftest.py`` of this
folder; this module brings its own, larger world.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from qorgan.core.db import make_engine, session_factory, unit_of_work
from qorgan.core.settings import get_settings
from qorgan.incidents import alerts as store
from qorgan.incidents.schemas import AlertIn
from qorgan.migrations import upgrade
from web.conftest import World, populate

from .helpers import Visitor, sign_in

ALERTS = 20_000
RULES = 400
#: Rules whose alerts are critical: few alerts each, so counting alone would bury them.
CRITICAL_RULES = 7
HOSTS = 300
USERS = 2_000
MOBILE = {"width": 390, "height": 844}


def _rule_id(n: int) -> str:
    return f"7a1c{n:04d}-3f2e-4b6d-9c8a-{n:012d}"


def _alerts() -> list[dict[str, Any]]:
    """Alerts as real hunts give them: many rules, skewed (a few rules fire thousands of
    times), hosts, users and addresses from realistic pools, two weeks of event times."""
    rng = random.Random(20261129)
    start = datetime(2026, 11, 14, tzinfo=UTC)
    weights = [1 / (r + 1) for r in range(RULES - CRITICAL_RULES)]
    levels = ["informational", "low", "medium", "high"]
    out = []
    for i in range(ALERTS):
        if i < CRITICAL_RULES * 3:  # three alerts for each critical rule
            rule, level = RULES - CRITICAL_RULES + i % CRITICAL_RULES, "critical"
        else:
            rule = rng.choices(range(RULES - CRITICAL_RULES), weights)[0]
            level = levels[rule % 4]
        host = f"akimat-ws-{rng.randrange(HOSTS):03d}"
        user = f"user{rng.randrange(USERS):04d}"
        moment = start + timedelta(seconds=rng.randrange(14 * 86400))
        out.append(
            {
                "rule": {
                    "id": _rule_id(rule),
                    "title": f"Detection rule {rule:03d}" + (" (critical)" * (level == "critical")),
                    "level": level,
                    "tags": ["attack.t1110"],
                    "status": "test",
                    "path": f"rules/r{rule}.yml",
                },
                "time": moment.isoformat().replace("+00:00", "Z"),
                "host": host,
                "source": {"path": "/var/log/x.log", "record": i + 1, "format": "json"},
                "event": {
                    "TargetUserName": user,
                    "IpAddress": f"10.{rng.randrange(256)}.{rng.randrange(1, 255)}.{i % 250 + 1}",
                    "CommandLine": f"cmd.exe /c task-{rng.randrange(10**6)} --run",
                },
                "classification": {"kz_cert": "credential-attack"},
            }
        )
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("volume")
    settings = get_settings(
        database_url=f"sqlite:///{root / 'qorgan.db'}",
        var_dir=str(root / "var"),
        hunt_root=str(root / "logs"),
    )
    upgrade(settings)
    engine = make_engine(settings)
    factory = session_factory(engine)
    people = populate(factory)
    batch = [AlertIn.model_validate(a) for a in _alerts()]
    with unit_of_work(factory) as session:
        result = store.ingest(
            session=session,
            organisation_id=people["a.analyst"].organisation_id,
            alerts=batch,
            actor="test",
        )
    assert result.created == ALERTS
    yield World(settings, factory, people)
    engine.dispose()


def _axe(page: Page, name: str) -> None:
    """No serious or critical accessibility violation on the page (axe-core, WCAG 2.1 AA)."""
    results = Axe().run(
        page,
        options={"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21aa"]}},
    )
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes'][:3]]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"{name}: {bad}"


WIDEST = """() => {
  const out = [];
  for (const el of document.querySelectorAll("body *")) {
    const box = el.getBoundingClientRect();
    const scrolled = el.parentElement && el.parentElement.closest(".table-scroll");
    if (box.right > window.innerWidth + 1 && !scrolled) {
      const name = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + "." + el.className;
      out.push(`${name} ${Math.round(box.right)}`);
    }
  }
  return out.slice(0, 8);
}"""


def _fits(page: Page, name: str) -> None:
    """Nothing wider than the screen: the page never scrolls sideways (tables scroll alone)."""
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name} is {overflow}px too wide: {page.evaluate(WIDEST)}"


def _results_total(page: Page) -> int:
    return int(page.locator("#results [data-total]").get_attribute("data-total") or "-1")


def _critical_titles() -> set[str]:
    return {f"Detection rule {r:03d} (critical)" for r in range(RULES - CRITICAL_RULES, RULES)}


def test_critical_rules_lead_every_grouping(
    world: World, visit: Callable[[], Visitor], screenshots: Callable[[Page, str], None]
) -> None:
    visitor = visit()
    page = visitor.page
    sign_in(visitor, world["a.analyst"])
    visitor.go("/alerts?group=rule")
    rows = page.locator("#results table.grouped tbody tr")
    expect(rows).to_have_count(50)
    titles = set(rows.locator("td:first-child").all_inner_texts())
    assert _critical_titles() <= titles
    first_seven = rows.locator("td:first-child").all_inner_texts()[:CRITICAL_RULES]
    assert set(first_seven) == _critical_titles()  # most severe first, before the largest
    counts = page.locator("#result-count").inner_text()
    assert re.search(r"1–50\s+of\s+400", counts), counts
    screenshots(page, "20-volume-grouped-by-rule")
    # By host and by rule and host, the groups holding a critical alert come first too.
    for grouping in ("host", "rule_host", "user", "address"):
        visitor.go(f"/alerts?group={grouping}")
        badges = page.locator("#results table.grouped tbody tr .badge")
        expect(badges.first).to_be_visible()
        levels = badges.evaluate_all("els => els.map(e => e.className)")
        critical = [i for i, c in enumerate(levels) if "level-critical" in c]
        expected = min(len(levels), CRITICAL_RULES * 3)
        assert critical == list(range(len(critical))) and len(critical) >= 1, (grouping, levels)
        assert len(critical) <= expected
    visitor.go("/alerts?group=rule_host")
    titles = set(page.locator("#results table.grouped tbody tr td:first-child").all_inner_texts())
    assert _critical_titles() <= titles
    assert not visitor.clean()


def test_search_pivot_back_and_forward(
    world: World, visit: Callable[[], Visitor], screenshots: Callable[[Page, str], None]
) -> None:
    visitor = visit()
    page = visitor.page
    sign_in(visitor, world["a.analyst"])
    visitor.go("/alerts")
    expect(page.locator("#results [data-total]")).to_have_attribute("data-total", str(ALERTS))
    screenshots(page, "21-volume-inbox")
    # Search: the box takes a part of a user name, case-insensitively.
    page.fill("#q", "USER000")
    with page.expect_response(lambda r: "/alerts?" in r.url and "q=USER000" in r.url):
        page.press("#q", "Enter")
    api = page.request.get("/api/v1/alerts", params={"q": "user000", "status": "new"}).json()
    expect(page.locator("#results [data-total]")).to_have_attribute("data-total", str(api["total"]))
    assert 0 < api["total"] < ALERTS
    assert "q=USER000" in page.url
    # Pivot: a host in a row narrows the view; a chip shows it, and can be taken off.
    host_link = page.locator("#results tr[data-alert-id] a.pivot-value").first
    host = host_link.inner_text()
    host_link.click()
    page.wait_for_url(re.compile(r"host="))
    with_host = page.request.get(
        "/api/v1/alerts", params={"q": "user000", "status": "new", "host": host}
    ).json()["total"]
    expect(page.locator("#results [data-total]")).to_have_attribute("data-total", str(with_host))
    expect(page.locator("ul.pivots")).to_contain_text(host)
    expect(page.locator("#q")).to_have_value("USER000")
    screenshots(page, "22-volume-search-and-pivot")
    # Back: the search alone again, exactly; Forward: the pivot again.
    page.go_back()
    page.wait_for_url(lambda url: "host=" not in url)
    expect(page.locator("#results [data-total]")).to_have_attribute("data-total", str(api["total"]))
    expect(page.locator("#q")).to_have_value("USER000")
    page.go_forward()
    page.wait_for_url(re.compile(r"host="))
    expect(page.locator("#results [data-total]")).to_have_attribute("data-total", str(with_host))
    assert not visitor.clean()


def test_bulk_triage_of_all_matching_and_keyboard(
    world: World, visit: Callable[[], Visitor], screenshots: Callable[[Page, str], None]
) -> None:
    visitor = visit()
    page = visitor.page
    sign_in(visitor, world["a.analyst"])
    host = "akimat-ws-042"
    visitor.go(f"/alerts?host={host}")
    before = _results_total(page)
    assert before > 50  # more than a page: "all matching" reaches beyond what is shown
    page.check("#bulk input[name=scope][value=all]")
    with page.expect_response(lambda r: r.url.endswith(f"/alerts/triage?host={host}")):
        page.click("#bulk button[value=acknowledge]")
    expect(page.locator("#results .message")).to_contain_text(f"{before} of {before}.")
    left = page.request.get("/api/v1/alerts", params={"host": host, "status": "new"}).json()
    assert left["total"] == 0
    done = page.request.get("/api/v1/alerts", params={"host": host, "status": "acknowledged"})
    assert done.json()["total"] == before

    # Keyboard: j j x a acknowledges the selected row; focus stays on the inbox's rows.
    visitor.go("/alerts?host=akimat-ws-043")
    rows = page.locator("#results tr[data-alert-id]")
    expect(rows.first).to_be_visible()
    second_id = rows.nth(1).get_attribute("data-alert-id")
    page.keyboard.press("j")
    page.keyboard.press("j")
    expect(rows.nth(1)).to_have_class(re.compile(r"\bcurrent\b"))
    page.keyboard.press("x")
    expect(page.locator("#selected-count")).to_have_text("1")
    with page.expect_response(lambda r: "/alerts/triage" in r.url):
        page.keyboard.press("a")
    status = page.request.get(f"/api/v1/alerts/{second_id}").json()["status"]
    assert status == "acknowledged"
    # A single row: k moves up, f asks for confirmation, then marks it a false positive.
    visitor.go("/alerts?host=akimat-ws-044")
    first_id = rows.first.get_attribute("data-alert-id")
    page.keyboard.press("j")
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_response(lambda r: r.url.endswith(f"/alerts/{first_id}/false-positive")):
        page.keyboard.press("f")
    swapped = page.locator(f"#alert-{first_id}")
    expect(swapped).to_have_class(re.compile(r"status-false_positive"))
    expect(swapped).to_be_focused()
    screenshots(page, "23-volume-keyboard-triage")
    assert not visitor.clean()


PAGES = [
    ("/alerts", "inbox"),
    ("/alerts?group=rule", "inbox-grouped"),
    ("/alerts?q=user0001&sort=-level", "inbox-search"),
    ("/hunts", "hunts"),
    ("/account", "account"),
]


@pytest.mark.parametrize(("path", "name"), PAGES)
def test_pages_are_accessible_at_desktop_and_phone_width(
    world: World,
    visit: Callable[[], Visitor],
    screenshots: Callable[[Page, str], None],
    path: str,
    name: str,
) -> None:
    visitor = visit()
    page = visitor.page
    sign_in(visitor, world["a.admin"])
    visitor.go(path)
    expect(page.locator("main")).to_be_visible()
    _axe(page, name)
    screenshots(page, f"30-{name}-desktop")
    page.set_viewport_size(MOBILE)
    visitor.go(path)
    screenshots(page, f"31-{name}-390px")
    _fits(page, name)
    _axe(page, f"{name} at 390px")
    assert not visitor.clean()


def test_an_alert_and_the_admin_pages_are_accessible(
    world: World, visit: Callable[[], Visitor], screenshots: Callable[[Page, str], None]
) -> None:
    visitor = visit()
    page = visitor.page
    sign_in(visitor, world["a.admin"])
    visitor.go("/alerts?level=critical")
    page.locator("#results tr[data-alert-id] a.open").first.click()
    page.wait_for_url(re.compile(r"/alerts/\d+$"))
    alert_path = page.url.split(visitor.base)[1]
    for path, name in ((alert_path, "alert"), ("/audit", "audit"), ("/users", "users")):
        visitor.go(path)
        _axe(page, name)
        screenshots(page, f"32-{name}-desktop")
        page.set_viewport_size(MOBILE)
        visitor.go(path)
        screenshots(page, f"33-{name}-390px")
        _fits(page, name)
        _axe(page, f"{name} at 390px")
        page.set_viewport_size({"width": 1280, "height": 900})
    # Signed out: the sign-in page.
    anonymous = visit()
    anonymous.go("/login")
    _axe(anonymous.page, "login")
    assert not visitor.clean()
