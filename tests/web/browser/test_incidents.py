"""An incident walked in a real browser, in English, Kazakh and Russian: alerts picked in the
inbox become an incident; a task template, a note and an evidence file are added; it moves
through every phase; it is reported to KZ-CERT, whose coordinator answers in the thread, sets
the candidate articles and exports the legal-referral package (checked with the verifier);
then it is closed. Screenshots of each stage go to build/screenshots/.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select, update

from qorgan.core import accounts
from qorgan.core.db import make_engine, session_factory, unit_of_work
from qorgan.core.models import OrganisationKind, Role, User
from qorgan.core.settings import get_settings
from qorgan.incidents import referral
from qorgan.incidents.models import Incident
from qorgan.migrations import upgrade
from qorgan.pipeline.hunts import create_hunt, default_plan, execute, hunt_folder
from qorgan.pipeline.models import HuntSource
from web.conftest import EXAMPLES, Person, World, password_hash, populate

from .helpers import Visitor, sign_in, text

PHASES = ("triage", "containment", "eradication", "recovery", "review")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Organisations A and B (tests/web/conftest.py) with A's alerts from a hunt over the
    shipped examples, and KZ-CERT, the national coordinator, with its duty officer."""
    root = tmp_path_factory.mktemp("incidents")
    settings = get_settings(
        database_url=f"sqlite:///{root / 'qorgan.db'}",
        var_dir=str(root / "var"),
        hunt_root=str(root / "logs"),
    )
    upgrade(settings)
    engine = make_engine(settings)
    factory = session_factory(engine)
    people = populate(factory)
    examples = hunt_folder(settings.hunt_root, people["a.analyst"].organisation_id) / "examples"
    shutil.copytree(EXAMPLES, examples)
    with unit_of_work(factory) as session:
        hunt_id = create_hunt(
            session=session,
            organisation_id=people["a.analyst"].organisation_id,
            user_id=people["a.analyst"].id,
            paths=[examples],
            source=HuntSource.server,
        ).id
    execute(hunt_id, factory=factory, plan=default_plan)
    with unit_of_work(factory) as session:
        cert = accounts.create_organisation(
            session=session, actor="test", name="KZ-CERT", kind=OrganisationKind.cert
        )
        secret = pyotp.random_base32()
        officer = User(
            organisation_id=cert.id,
            email="duty@cert.example.kz",
            display_name="Duty officer",
            role=Role.cert_coordinator,
            password_hash=password_hash(),
            language="en",
            totp_secret=secret,
        )
        session.add(officer)
        session.flush()
        people["cert.coordinator"] = Person(
            officer.id, officer.email, officer.role, cert.id, secret
        )
    yield World(settings, factory, people)
    engine.dispose()


def _speak(world: World, key: str, language: str) -> None:
    with unit_of_work(world.factory) as session:
        session.execute(update(User).where(User.id == world[key].id).values(language=language))


def _post_and_wait(page: Page, selector: str) -> None:
    """Press a form's button and wait for the page the redirect lands on."""
    with page.expect_navigation():
        page.click(selector)


@pytest.mark.parametrize("language", ["en", "kk", "ru"])
def test_an_incident_from_alerts_to_closed(
    world: World,
    visit: Callable[[], Visitor],
    screenshots: Callable[[Page, str], None],
    language: str,
    tmp_path: Path,
) -> None:
    _speak(world, "a.analyst", language)
    _speak(world, "cert.coordinator", language)
    analyst = visit()
    sign_in(analyst, world["a.analyst"])
    page = analyst.page
    analyst.go("/alerts")
    free = page.locator("table.alerts tbody tr:not(:has(a.incident-link)) input[name=ids]")
    expect(free.first).to_be_visible()
    for index in range(2):
        free.nth(index).check()
    with page.expect_navigation(url="**/incidents/*"):
        page.click("button[formaction^='/incidents/from-alerts'][value=new]")
    incident_id = int(page.url.rstrip("/").rsplit("/", 1)[-1].split("?")[0])
    # The first screen: the reference, severity, phases and the clocks.
    expect(page.locator("h1 .reference")).to_have_text(f"INC-{incident_id:06d}")
    expect(page.locator("ol.phases li[aria-current=step]")).to_have_attribute("data-phase", "new")
    expect(page.locator("li.clock[data-measure=acknowledge]")).to_be_visible()
    screenshots(page, f"incident-new-{language}")

    _post_and_wait(page, "form[action$='/tasks/template'] button")
    tasks = page.locator("li.task")
    expect(tasks.first).to_be_visible()
    _post_and_wait(page, "li.task form[action*='/tasks/'] input[value=done] + button")
    expect(page.locator("li.task-done")).to_have_count(1)
    page.fill("#note-text", "Blocked the source at the edge. **Escalated** to the duty officer.")
    _post_and_wait(page, "form[action$='/notes'] button")
    expect(page.locator(".note-text strong", has_text="Escalated")).to_be_visible()
    evidence = tmp_path / "auth.log"
    evidence.write_text("Failed password for admin from 203.0.113.7 port 52311 ssh2\n")
    page.set_input_files("form[action$='/evidence'] input[type=file]", str(evidence))
    _post_and_wait(page, "form[action$='/evidence'] button")
    expect(page.locator("table.evidence tr[data-evidence-id]")).to_have_count(1)
    for phase in PHASES:
        _post_and_wait(page, "form[action$='/status'] button[data-next]")
        expect(page.locator("ol.phases li[aria-current=step]")).to_have_attribute(
            "data-phase", phase
        )
    _post_and_wait(page, "form[action$='/report'] button")
    expect(page.locator("p.reported")).to_be_visible()
    screenshots(page, f"incident-reported-{language}")

    officer = visit()
    sign_in(officer, world["cert.coordinator"])
    cert_page = officer.page
    officer.go("/incidents?scope=reported")
    expect(cert_page.locator(f"tr[data-incident-id='{incident_id}']")).to_be_visible()
    screenshots(cert_page, f"incidents-reported-to-cert-{language}")
    officer.go(f"/incidents/{incident_id}")
    expect(cert_page.locator("section[aria-labelledby=tasks]")).to_have_count(0)
    cert_page.select_option("select[name=kind]", "recommendation")
    cert_page.fill("#message-text", "Reset the administrator's password and enable MFA.")
    _post_and_wait(cert_page, "form[action$='/messages'] button")
    expect(cert_page.locator("article[data-kind=recommendation]")).to_be_visible()
    cert_page.check("form[action$='/articles'] input[value='205']")
    _post_and_wait(cert_page, "form[action$='/articles'] button")
    cert_page.select_option(
        "form[action$='/referral'] select[name=language]", "ru" if language == "ru" else "kk"
    )
    with cert_page.expect_download() as download:
        cert_page.click("form[action$='/referral'] button")
    package = tmp_path / "referral.zip"
    download.value.save_as(package)
    checked = referral.verify_package(package)
    assert checked.ok, checked.problems
    screenshots(cert_page, f"incident-coordinator-{language}")

    analyst.go(f"/incidents/{incident_id}")
    expect(page.locator("article[data-kind=recommendation]")).to_be_visible()
    page.click("details.confirm summary:has-text('" + text(language, "Close") + "')")
    page.select_option("select[name=resolution]", "true-positive-impact")
    _post_and_wait(page, "form:has(select[name=resolution]) button")
    expect(page.locator("ol.phases li[aria-current=step]")).to_have_attribute(
        "data-phase", "closed"
    )
    expect(page.locator("li.clock[data-measure=close]")).to_have_attribute("data-state", "met")
    screenshots(page, f"incident-closed-{language}")
    with world.factory() as session:
        closed = session.scalar(select(Incident).where(Incident.id == incident_id))
        assert closed is not None and closed.resolution == "true-positive-impact"
        assert closed.reported_to_id == world["cert.coordinator"].organisation_id
    assert analyst.clean() == [] and officer.clean() == []
