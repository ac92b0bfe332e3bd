"""AI findings in a real browser: an analyst reads two findings of the real entity model
(learned on the real SSH and Linux logs, then given an injected attack and a new account),
labelled as an AI model's output, confirms one with a reason (it becomes an alert, linked
from the finding) and rejects the other with a reason; the auditor's page of the audit trail
shows both decisions. The pages are shown in Kazakh and Russian; screenshots go to
build/screenshots/findings-*.png.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import update

from qorgan.core.db import make_engine, session_factory, unit_of_work
from qorgan.core.models import User
from qorgan.core.settings import get_settings
from qorgan.detection.anomaly.behaviour import EntityBehaviour
from qorgan.detection.anomaly.defaults import default_suite
from qorgan.detection.anomaly.findings import MAX_FEATURE, Finding
from qorgan.incidents import findings as service
from qorgan.incidents.finding_models import AnomalyFinding
from qorgan.migrations import upgrade
from qorgan.telemetry.quarantine import Quarantine
from qorgan.telemetry.sources import read_file
from web.conftest import World, populate

from .helpers import Visitor, sign_in, text


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("findings")
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


def _speak(world: World, key: str, language: str) -> None:
    with unit_of_work(world.factory) as session:
        session.execute(update(User).where(User.id == world[key].id).values(language=language))


SSH = "loghub/OpenSSH/OpenSSH_2k.log"
LINUX = "loghub/Linux/Linux_2k.log"
#: A planned service account on the Linux host, in its own log's format: the model reports it
#: as a new account, and the administrators know it was planned.
NEW_ACCOUNT = [
    "Jul 27 14:50:01 combo useradd[31337]: new group: name=sysbackup, GID=503",
    "Jul 27 14:50:01 combo useradd[31337]: new user: name=sysbackup, UID=503, GID=503, "
    "home=/home/sysbackup, shell=/bin/bash",
]


def _findings(
    shared_file: Callable[[str], Path], ssh_attack: Callable[..., list[str]], folder: Path
) -> list[Finding]:
    """What the real entity model reports after learning the real SSH and Linux logs: the
    password-guessing attack's 03:00 logon from a new address, and a new account on the Linux
    host (the model's output as it is, only read back as a hunt reads it)."""
    model = EntityBehaviour("browser-org")
    quarantine = Quarantine()

    def observe(path: Path) -> list[Finding]:
        return [f for batch in read_file(path, quarantine) for f in model.observe(batch)]

    observe(shared_file(SSH)), observe(shared_file(LINUX))  # learning; its findings unused
    found = []
    for name, lines in (("attack.log", ssh_attack()), ("accounts.log", NEW_ACCOUNT)):
        path = folder / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        found += observe(path)
    assert quarantine.count == 0
    assert [f.detector for f in found] == ["entity.logon", "entity.account"], found
    return found


def _decide(page: Page, kind: str, reason: str) -> None:
    form = page.locator(f"form[data-decision={kind}]")
    form.locator("textarea[name=reason]").fill(reason)
    with page.expect_navigation():
        form.locator("button").click()


def test_an_analyst_confirms_one_finding_and_rejects_another(
    world: World,
    visit: Callable[[], Visitor],
    screenshots: Callable[[Page, str], None],
    shared_file: Callable[[str], Path],
    ssh_attack: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    org = world["a.analyst"].organisation_id
    attack, account = _findings(shared_file, ssh_attack, tmp_path)
    with unit_of_work(world.factory) as session:
        logon, new_account = service.save_findings(
            session, org, [attack.to_dict(), account.to_dict()]
        ).ids
    _speak(world, "a.analyst", "kk")
    analyst = visit()
    page = analyst.page
    sign_in(analyst, world["a.analyst"])

    # The inbox points to the findings awaiting a decision.
    analyst.go("/alerts")
    banner = page.locator(".findings-banner")
    expect(banner).to_have_attribute("data-pending", "2")
    banner.locator("a").click()
    page.wait_for_url("**/findings?status=pending")
    label = text("kk", "AI model's finding: needs a person's decision")
    expect(page.locator(".ai-label").first).to_contain_text(label)
    expect(page.locator("tr[data-finding]")).to_have_count(2)
    expect(page.locator("tr[data-finding] .badge.ai")).to_have_count(2)
    screenshots(page, "findings-1-list-kk")

    # The logon: explained, then confirmed with a reason.
    page.click(f"tr[data-finding='{logon}'] td.what a")
    page.wait_for_url(f"**/findings/{logon}")
    expect(page.locator("[data-ai-label]")).to_contain_text(attack.model)
    rows = page.locator("table.contributions tbody tr")
    expect(rows).to_have_count(len(attack.contributions))
    first = attack.contributions[0]
    assert first.feature == "logon.after_failures"
    expect(rows.first).to_contain_text(text("kk", "Failed logons before it"))
    expect(rows.first).to_contain_text(f"{first.share * 100:.0f}%")
    expect(rows.first).to_contain_text(str(first.actual))
    _decide(page, "confirm", "Пайдаланушы бұл кіруді растамады: шабуыл")
    link = page.locator("a[data-alert-link]")
    expect(link).to_be_visible()
    expect(page.locator(".reason")).to_have_text("Пайдаланушы бұл кіруді растамады: шабуыл")
    screenshots(page, "findings-2-finding-kk")
    link.click()
    page.wait_for_url("**/alerts/*")
    expect(page.locator("h1")).to_contain_text(attack.model)

    # The new account: rejected with a reason (its pattern stops firing), now in Russian.
    _speak(world, "a.analyst", "ru")
    analyst.go(f"/findings/{new_account}")
    expect(page.locator("[data-ai-label]")).to_contain_text(
        text("ru", "AI model's finding: needs a person's decision")
    )
    _decide(page, "reject", "Служебная учётная запись резервного копирования создана по плану")
    expect(page.locator(".status-chip")).to_have_text(text("ru", "Rejected"))
    analyst.go(f"/findings/{logon}")
    screenshots(page, "findings-2-finding-ru")
    analyst.go("/findings")
    expect(page.locator("tr[data-status=pending]")).to_have_count(0)
    screenshots(page, "findings-1-list-ru")
    assert analyst.clean() == []
    with unit_of_work(world.factory) as session:
        rows_ = {r.id: r for r in session.query(AnomalyFinding)}
        assert rows_[logon].status == "confirmed" and rows_[logon].alert_id is not None
        assert rows_[new_account].status == "rejected"
        assert [r.pattern for r in service.rejected_patterns(session, org)] == [account.pattern]

    # The auditor sees both decisions in the audit trail.
    for language in ("kk", "ru"):
        _speak(world, "a.auditor", language)
        auditor = visit()
        sign_in(auditor, world["a.auditor"])
        auditor.go("/audit")
        apage = auditor.page
        confirmed = apage.locator("tr[data-action='finding.confirmed']")
        rejected = apage.locator("tr[data-action='finding.rejected']")
        expect(confirmed).to_have_count(1)
        expect(rejected).to_have_count(1)
        expect(confirmed.locator("td.action")).to_have_text(
            text(language, "AI model's finding confirmed by a person")
        )
        expect(rejected.locator("td.action")).to_have_text(
            text(language, "AI model's finding rejected by a person")
        )
        expect(apage.locator("tr[data-action='finding.created']")).to_have_count(2)
        screenshots(apage, f"findings-3-audit-{language}")
        assert auditor.clean() == []


def test_the_register_shows_the_models_and_records_an_objection(
    world: World,
    visit: Callable[[], Visitor],
    screenshots: Callable[[Page, str], None],
) -> None:
    org = world["a.analyst"].organisation_id
    with unit_of_work(world.factory) as session:
        service.register_model(
            session, organisation_id=org, name="entity-baseline", version="1.0.0",
            purpose="Logons, processes and data volumes per user and host, against baselines "
            "learned per organisation and entity",
            inputs=["auth.log", "audit.log", "access.log"],
            training_from=datetime(2026, 10, 1, tzinfo=UTC),
            training_to=datetime(2026, 10, 31, tzinfo=UTC),
            metrics={"injected_attacks_found": "4/4", "findings_on_untouched_logs": 2},
            actor="cli",
        )  # fmt: skip
        service.approve_model(
            session, organisation_id=org, name="entity-baseline", version="1.0.0",
            approver=world["a.admin"].id, actor="cli",
        )  # fmt: skip
    _speak(world, "a.analyst", "kk")
    analyst = visit()
    page = analyst.page
    sign_in(analyst, world["a.analyst"])
    analyst.go("/models")
    expect(page.locator("tr[data-model='entity-baseline']")).to_contain_text("Admin A")
    form = page.locator("form.objection")
    form.locator("textarea[name=identifiers]").fill("aigerim\n+7 701 123 45 67")
    form.locator("input[name=request_ref]").fill("№ 3Т-118/2026")
    with page.expect_navigation():
        form.locator("button").click()
    expect(page.locator("#objections p.message")).to_be_visible()
    # One row for the objection, however many spellings of its two identifiers it keeps.
    expect(page.locator("table.exclusions tbody tr")).to_have_count(1)
    expect(page.locator("table.exclusions tbody tr")).to_contain_text("№ 3Т-118/2026")
    screenshots(page, "findings-4-register-kk")
    assert analyst.clean() == []


WEB = "evtx-attack-samples/Command and Control/web_attack_and_isp_webshell_localhost_access_log.txt"


def test_long_findings_keep_the_list_on_the_screen(
    world: World,
    visit: Callable[[], Visitor],
    screenshots: Callable[[Page, str], None],
    shared_file: Callable[[str], Path],
) -> None:
    """The real models' findings on the real web-attack log, among them words of 2,000
    unbroken characters: the list stays as wide as the screen, a headline takes at most three
    lines, and the detector filter narrows the list to one kind. (Before, one such headline
    made its column 1,696 pixels wide and pushed the decision off the screen.)"""
    suite = default_suite()
    found = [f for batch in read_file(shared_file(WEB), Quarantine()) for f in suite.observe(batch)]
    found += suite.flush()
    longest = max(found, key=lambda f: len(f.contributions[0].feature))
    assert len(longest.contributions[0].feature) == MAX_FEATURE, longest
    org = world["a.analyst"].organisation_id
    with unit_of_work(world.factory) as session:
        ids = service.save_findings(session, org, [f.to_dict() for f in found]).ids
    long_id = ids[found.index(longest)]
    _speak(world, "a.analyst", "ru")
    analyst = visit()
    page = analyst.page
    sign_in(analyst, world["a.analyst"])
    analyst.go(f"/findings?status=pending&detector={longest.detector}")
    rows = page.locator("tr[data-finding]")
    expect(rows.first).to_be_visible()
    assert page.locator(f"tr[data-finding='{long_id}']").count() == 1
    detectors = {f.detector for f in found}
    assert len(detectors) > 1  # the filter had others to leave out
    shown = rows.count()
    assert shown == min(100, sum(f.detector == longest.detector for f in found))
    filter_ = page.locator(f".detector-filter a[data-detector='{longest.detector}']")
    expect(filter_).to_have_attribute("aria-current", "page")
    sizes = page.evaluate(
        """() => {
        const box = document.querySelector('.table-scroll');
        const first = document.querySelector('small.headline');
        const line = parseFloat(getComputedStyle(first).lineHeight);
        const tallest = Math.max(...[...document.querySelectorAll('small.headline')]
            .map(h => h.getBoundingClientRect().height));
        const decision = document.querySelector('tr[data-finding] td:last-child')
            .getBoundingClientRect().right;
        const chip = document.querySelector('tr[data-finding] .status-chip');
        const chipLine = parseFloat(getComputedStyle(chip).lineHeight);
        const entity = document.querySelector('tr[data-finding] td.entity code');
        return {table: box.scrollWidth, box: box.clientWidth, line, tallest, decision,
                screen: window.innerWidth, chip: chip.getBoundingClientRect().height, chipLine,
                entity: entity.textContent, entityTitle: entity.title};
    }"""
    )
    assert sizes["table"] <= sizes["box"], sizes
    assert sizes["decision"] <= sizes["screen"], sizes
    assert sizes["tallest"] <= 3 * sizes["line"] + 1, sizes
    # The decision is one line, and the source is its file, the whole path in the title.
    assert sizes["chip"] < 2 * sizes["chipLine"], sizes
    assert sizes["entity"] == "source=…/" + Path(WEB).name, sizes
    assert sizes["entityTitle"].endswith(WEB), sizes
    screenshots(page, "findings-5-long-ru")
    # The finding's own page shows the whole feature, wrapped.
    analyst.go(f"/findings/{long_id}")
    cell = page.locator("table.contributions tbody tr").first
    expect(cell).to_contain_text(longest.contributions[0].feature[:60])
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], width
    assert analyst.clean() == []
