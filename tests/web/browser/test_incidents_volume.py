"""Incidents at volume, in a real browser: 20,000 incidents over a year (as a busy SOC keeps
them) and 20,000 alerts, a few incidents made through the service with thousands of alerts.

The list puts the overdue count and the most urgent deadline first; every incident page and
list is free of serious accessibility violations (axe-core), fits a 390 px phone without
scrolling sideways, and answers; screenshots go to ``build/screenshots/``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import insert, select

from qorgan.core.db import make_engine, session_factory, unit_of_work
from qorgan.core.settings import get_settings
from qorgan.core.workdays import default_calendar
from qorgan.incidents import alerts as store
from qorgan.incidents import service
from qorgan.incidents.models import Incident, StoredAlert
from qorgan.incidents.schemas import AlertIn
from qorgan.migrations import upgrade
from web.conftest import World, populate

from .helpers import Visitor, sign_in
from .test_volume import MOBILE, _alerts, _axe, _fits

INCIDENTS = 20_000
CLASSES = (
    "credential-attack",
    "malware-spam",
    "unauthorised-access",
    "network-attack",
    "scanning",
    "protection-bypass",
)
STATUSES = ("new", "triage", "containment", "eradication", "recovery", "review", "closed")
NOW = datetime.now(UTC).replace(microsecond=0)
KINDS = ("Password guessing", "Malware", "Web shell", "DDoS", "Phishing site")


def _incident_rows(organisation_id: int, assignees: list[int]) -> list[dict[str, object]]:
    """A year of incidents: most closed, some open with deadlines past, near and far."""
    rng = random.Random(20261130)
    rows = []
    for n in range(INCIDENTS):
        started = NOW - timedelta(seconds=rng.randrange(365 * 86400))
        status = rng.choices(STATUSES, (3, 4, 3, 2, 2, 1, 85))[0]
        closed = status == "closed"
        due = started + timedelta(hours=rng.choice((4, 16, 48, 240)))
        rows.append(
            {
                "organisation_id": organisation_id,
                "title": f"{rng.choice(KINDS)} on akimat-ws-{rng.randrange(300):03d} #{n}",
                "description": "",
                "kz_cert_class": rng.choice(CLASSES),
                "severity": rng.choices((1, 2, 3, 4), (40, 35, 20, 5))[0],
                "tlp": "amber",
                "pap": "amber",
                "status": status,
                "resolution": rng.choice(("true-positive-impact", "false-positive"))
                if closed
                else None,
                "assignee_id": rng.choice([None, *assignees]),
                "tags": [],
                "personal_data": rng.random() < 0.03,
                "origin": "alerts",
                "criminal_code": [],
                "created_at": started,
                "updated_at": started,
                "started_at": started,
                "acknowledged_at": None if status == "new" else started + timedelta(hours=1),
                "closed_at": started + timedelta(days=3) if closed else None,
                "close_due_at": due,
                "next_due_at": None if closed else due,
                "rule_ids": [],
            }
        )
    return rows


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("incidents-volume")
    settings = get_settings(
        database_url=f"sqlite:///{root / 'qorgan.db'}",
        var_dir=str(root / "var"),
        hunt_root=str(root / "logs"),
    )
    upgrade(settings)
    engine = make_engine(settings)
    factory = session_factory(engine)
    people = populate(factory)
    organisation_id = people["a.analyst"].organisation_id
    with unit_of_work(factory) as session:
        store.ingest(
            session=session,
            organisation_id=organisation_id,
            alerts=[AlertIn.model_validate(a) for a in _alerts()],
            actor="test",
        )
        session.execute(
            insert(Incident),
            _incident_rows(organisation_id, [people["a.analyst"].id, people["a.admin"].id]),
        )
    # A few made as analysts make them: one with thousands of alerts, the rest by host.
    with unit_of_work(factory) as session:
        hosts = session.scalars(
            select(StoredAlert.host).where(StoredAlert.host.is_not(None)).distinct().limit(20)
        ).all()
    for host in hosts:
        with unit_of_work(factory) as session:
            ids = session.scalars(select(StoredAlert.id).where(StoredAlert.host == host)).all()
            service.create(
                session=session,
                organisation_id=organisation_id,
                actor_id=people["a.analyst"].id,
                draft=service.Draft(),
                calendar=default_calendar(),
                alert_ids=ids,
            )
    with unit_of_work(factory) as session:
        rule = session.scalar(select(StoredAlert.rule_id).limit(1))
        free = session.scalars(
            select(StoredAlert.id).where(StoredAlert.rule_id == rule).limit(3000)
        ).all()
        service.create(
            session=session,
            organisation_id=organisation_id,
            actor_id=people["a.analyst"].id,
            draft=service.Draft(title="The big one"),
            calendar=default_calendar(),
            alert_ids=free,
        )
    yield World(settings, factory, people)
    engine.dispose()


def _big_incident(world: World) -> int:
    with world.factory() as session:
        found = session.scalar(select(Incident.id).where(Incident.title == "The big one"))
        assert found is not None
        return found


def test_the_list_puts_what_is_late_first(
    world: World, visit: Callable[[], Visitor], screenshots: Callable[[Page, str], None]
) -> None:
    visitor = visit()
    page = visitor.page
    sign_in(visitor, world["a.analyst"])
    visitor.go("/incidents")
    overdue = page.locator("nav.tabs a[data-tab=overdue] .count")
    expect(overdue).to_be_visible()
    late = int(overdue.get_attribute("data-count") or "0")
    assert late > 100  # open incidents of a year, most past their deadline
    # Most urgent first: the first row's deadline is the earliest of the open incidents.
    first = page.locator("table.incidents tbody tr").first
    expect(first).to_have_class("due-overdue")
    assert page.locator("table.incidents tbody tr").count() == 50
    screenshots(page, "40-incidents-volume")
    visitor.go("/incidents?tab=overdue")
    expect(page.locator("p.total strong")).to_have_attribute("data-total", str(late))
    assert not visitor.clean()


PAGES = [
    ("/incidents", "incidents"),
    ("/incidents?tab=closed&order=severity", "incidents-closed"),
    ("/incidents/settings", "incident-settings"),
    ("/incidents/new", "incident-new"),
]


@pytest.mark.parametrize(("path", "name"), PAGES)
def test_incident_pages_are_accessible(
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
    expect(page.locator("main h1")).to_be_visible()
    _axe(page, name)
    screenshots(page, f"41-{name}-desktop")
    page.set_viewport_size(MOBILE)
    visitor.go(path)
    screenshots(page, f"42-{name}-390px")
    _fits(page, name)
    _axe(page, f"{name} at 390px")
    assert not visitor.clean()


def test_an_incident_of_thousands_of_alerts(
    world: World, visit: Callable[[], Visitor], screenshots: Callable[[Page, str], None]
) -> None:
    visitor = visit()
    page = visitor.page
    sign_in(visitor, world["a.analyst"])
    incident_id = _big_incident(world)
    visitor.go(f"/incidents/{incident_id}")
    expect(page.locator("ol.phases li[aria-current=step]")).to_be_visible()
    expect(page.locator("ul.clocks li.clock")).to_have_count(3)
    assert page.locator("section[aria-labelledby=alerts] tbody tr").count() == 100
    assert (
        "more alerts are not shown"
        in page.locator("section[aria-labelledby=timeline]").inner_text()
    )
    _axe(page, "incident")
    screenshots(page, "43-incident-big-desktop")
    page.set_viewport_size(MOBILE)
    visitor.go(f"/incidents/{incident_id}")
    _fits(page, "incident")
    screenshots(page, "44-incident-big-390px")
    assert not visitor.clean()
