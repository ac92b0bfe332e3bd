"""Threat intelligence in a real browser: B's analyst shares an incident with the constituency
through its redaction preview (personal data highlighted as removed, never shown as sent); A's
partner signs in, lands on /intel, reads B's GREEN collection, does not see B's AMBER+STRICT
object (absent from the list, its address answers 404), opens the indicator that came from B's
incident and reports a sighting; B's analyst then sees the sighting on the incident.
Screenshots go to build/screenshots/intel-*.png.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect

from qorgan.core.db import make_engine, session_factory
from qorgan.core.settings import get_settings
from qorgan.migrations import upgrade
from web.conftest import World, populate
from web.intel_setup import EMAIL, IIN, PERSON, PHONE, Exchange, setup_exchange

from .helpers import Visitor, sign_in


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Organisations A and B (tests/web/conftest.py), members of one constituency."""
    root = tmp_path_factory.mktemp("intel")
    settings = get_settings(
        database_url=f"sqlite:///{root / 'qorgan.db'}",
        var_dir=str(root / "var"),
        hunt_root=str(root / "logs"),
    )
    upgrade(settings)
    engine = make_engine(settings)
    factory = session_factory(engine)
    yield World(settings, factory, populate(factory))
    engine.dispose()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def ex(world: World) -> Exchange:
    return setup_exchange(world)


def test_a_partner_reads_green_and_its_sighting_reaches_the_incident(
    world: World,
    ex: Exchange,
    visit: Callable[[], Visitor],
    screenshots: Callable[[Page, str], None],
) -> None:
    # B's analyst shares the incident: the preview first, then the confirmation.
    analyst = visit()
    page = analyst.page
    sign_in(analyst, world["b.analyst"])
    analyst.go(f"/incidents/{ex.incident}")
    share = page.locator("#share-form")
    share.locator("select[name=collection]").select_option(ex.shared)
    share.locator("button[type=submit]").click()
    page.wait_for_url("**/share?collection=*")
    expect(page.locator("h1")).to_have_text("Redaction preview")
    for kind in ("iin", "phone", "person_name", "victim"):
        expect(page.locator(f"mark[data-kind={kind}]").first).to_be_visible()
    # The e-mail address, as an observable and as an indicator: redaction took its value.
    expect(page.locator(".withheld li")).to_have_count(2)
    expect(page.locator(".withheld li").first).to_contain_text(EMAIL)
    main = page.locator("#objects").inner_text()
    for secret in (IIN, PHONE, PERSON):
        assert secret not in main
    screenshots(page, "intel-1-redaction-preview")
    with page.expect_navigation():
        page.click("#confirm-share")
    expect(page.locator("p.message")).to_contain_text("shared with the constituency")
    assert analyst.clean() == []

    # A's partner: /intel first, then B's GREEN collection.
    partner = visit()
    page = partner.page
    sign_in(partner, world["a.partner"])
    partner.go("/")
    page.wait_for_url("**/intel")
    expect(page.locator(f"tr[data-collection='{ex.shared}']")).to_contain_text("read and write")
    page.click(f"tr[data-collection='{ex.shared}'] a")
    page.wait_for_url(f"**/intel/collections/{ex.shared}")
    rows = page.locator("#objects tbody tr")
    expect(page.locator(f"tr[data-id='{ex.green}']")).to_contain_text("TLP:GREEN")
    expect(page.locator(f"tr[data-id='{ex.strict}']")).to_have_count(0)
    assert "strict-secret" not in page.content()
    assert rows.count() >= 4
    screenshots(page, "intel-2-partner-collection")
    hidden = page.goto(f"{partner.base}/intel/objects/{ex.strict}?collection={ex.shared}")
    assert hidden is not None and hidden.status == 404
    assert "strict-secret" not in page.content()

    # The indicator from B's incident, and a sighting of it.
    partner.go(f"/intel/collections/{ex.shared}?type=indicator")
    page.locator("#objects a", has_text="evil-c2.example").click()
    page.wait_for_url("**/intel/objects/indicator--*")
    expect(page.locator("h1")).to_contain_text("evil-c2.example")
    expect(page.locator(".intel-fields")).to_contain_text("a bank")
    form = page.locator("#report-sighting")
    form.locator("input[name=first_seen]").fill("2026-11-21T10:00")
    form.locator("input[name=last_seen]").fill("2026-11-22T11:30")
    form.locator("input[name=count]").fill("7")
    screenshots(page, "intel-3-object-with-sighting-form")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    expect(page.locator("p.message")).to_have_text("The sighting is reported.")
    expect(page.locator("table.sightings tbody tr")).to_contain_text("Organisation A")
    screenshots(page, "intel-4-object-with-sighting")
    assert partner.clean(allow=("HTTP 404",)) == []

    # B's analyst sees it on the incident.
    analyst.go(f"/incidents/{ex.incident}")
    sightings = analyst.page.locator("ul.partner-sightings li")
    expect(sightings).to_have_count(1)
    expect(sightings).to_contain_text("Organisation A saw it 7 times")
    analyst.page.locator("#share-section").scroll_into_view_if_needed()
    screenshots(analyst.page, "intel-5-incident-with-sighting")
    assert analyst.clean() == []
