"""The personal-data service's "done when" walk in a real browser, in Kazakh and in Russian: a
citizen signs in with their IIN, sees accesses by two information systems, withdraws a
consent, and the next decision for that purpose is denied with the reason; a consent the law
keeps is refused with the law's reason; a complaint is filed, and the organisation's
data-protection officer opens it (which the citizen's log then shows) and answers it, and the
citizen reads the answer. Screenshots of each page go to build/screenshots/privacy-*.png.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date

import httpx
import pyotp
import pytest
from playwright.sync_api import Page, expect

from privacy.examples import iin, system_in
from qorgan.core.db import make_engine, session_factory, unit_of_work
from qorgan.core.models import Role, User
from qorgan.core.settings import get_settings
from qorgan.migrations import upgrade
from qorgan.privacy import citizens, consents, registry
from qorgan.privacy.consents import ConsentIn
from qorgan.privacy.protection import protection
from qorgan.privacy.receipts import receipt_key
from web.conftest import PASSWORD, Person, World, password_hash, populate

from .conftest import Console
from .helpers import Visitor, sign_in, text

RESTRICTION = {
    "kk": "ҚР 94-V Заңының 8-бабының 5-тармағы: ипотекалық шарт әлі орындалмаған",
    "ru": "п. 5 ст. 8 Закона РК № 94-V: ипотечный договор ещё не исполнен",
}
DPO_NAMES = {"kk": "Гүлнар Серікова", "ru": "Гульнара Серикова"}
#: The viewport's height: the access log must start within the first screen.
FIRST_SCREEN = 900


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Organisations A and B (tests/web/conftest.py) on a database of the module's own."""
    root = tmp_path_factory.mktemp("privacy")
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


@dataclass
class Scene:
    """One language's walk: a citizen with two consents to A's two systems, A's DPO."""

    language: str
    number: str  # the citizen's IIN
    citizen: Person
    dpo: Person
    clinic_id: int
    clinic_token: str
    land_token: str
    clinic_consent: int
    land_consent: int


def _scene(world: World, language: str, born: date) -> Scene:
    keys = protection(world.settings)
    key = receipt_key(world.settings)
    a = world["a.admin"].organisation_id
    number = iin(born)
    with unit_of_work(world.factory) as session:
        clinic, clinic_token = registry.register(
            session=session,
            protection=keys,
            organisation_id=a,
            system=system_in(f"Емхана / Поликлиника ({language})"),
            actor="test",
        )
        land, land_token = registry.register(
            session=session,
            protection=keys,
            organisation_id=a,
            system=system_in(
                f"Жер кадастры / Земельный кадастр ({language})",
                purposes=["property registration"],
                categories=["general"],
                legal_bases=["consent", "legal_obligation"],
            ),
            actor="test",
        )
        user = citizens.register(
            session=session,
            protection=keys,
            iin=number,
            email=f"citizen-{language}@example.kz",
            display_name={"kk": "Әлия Қасымқызы", "ru": "Алия Касымова"}[language],
            password=PASSWORD,
            language=language,
        )
        user.totp_secret = pyotp.random_base32()
        citizen = Person(user.id, user.email, Role.citizen, user.organisation_id, user.totp_secret)
        clinic_consent = consents.give(
            session=session,
            protection=keys,
            key=key,
            system=clinic,
            consent=ConsentIn(
                number, ["medical care"], ["general"], ["тегі / фамилия", "мекенжай"]
            ),
        ).id
        land_consent = consents.give(
            session=session,
            protection=keys,
            key=key,
            system=land,
            consent=ConsentIn(
                number,
                ["property registration"],
                ["general"],
                ["мекенжай"],
                withdrawal_restriction=RESTRICTION[language],
            ),
        ).id
        officer = User(
            organisation_id=a,
            email=f"dpo-{language}@a.example.kz",
            display_name=DPO_NAMES[language],
            role=Role.dpo,
            password_hash=password_hash(),
            language=language,
            totp_secret=pyotp.random_base32(),
        )
        session.add(officer)
        session.flush()
        dpo = Person(officer.id, officer.email, Role.dpo, a, officer.totp_secret)
    return Scene(
        language, number, citizen, dpo, clinic.id, clinic_token, land_token,
        clinic_consent, land_consent,
    )  # fmt: skip


def _ask(console: Console, token: str, number: str, **changes: str) -> dict:
    body = {
        "subject_iin": number,
        "categories": ["general"],
        "purpose": "medical care",
        "legal_basis": "consent",
        "official": "Dr. Omarova",
        **changes,
    }
    response = httpx.post(
        f"{console.url}/api/v1/privacy/decisions",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


def _citizen_sign_in(visitor: Visitor, scene: Scene) -> None:
    page = visitor.page
    visitor.go("/citizen/login")
    page.click(f"form.language button[data-language={scene.language}]")
    expect(page.locator("html")).to_have_attribute("lang", scene.language)
    page.fill("input[name=iin]", scene.number)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/citizen/login'] button[type=submit]")
    page.wait_for_url("**/login/second-factor")
    page.fill("input[name=code]", scene.citizen.code())
    page.click("form[action='/login/second-factor'] button[type=submit]")
    page.wait_for_url("**/citizen")


def _first_screen(page: Page, selector: str) -> None:
    """``selector`` begins within the first screen (no scrolling to reach it)."""
    box = page.locator(selector).first.bounding_box()
    assert box is not None and box["y"] < FIRST_SCREEN - 150, (selector, box)


@pytest.mark.parametrize(
    ("language", "born"), [("kk", date(1988, 3, 22)), ("ru", date(1979, 11, 5))]
)
def test_a_citizen_walks_the_portal_and_the_dpo_answers(
    world: World,
    console: Console,
    visit: Callable[[], Visitor],
    screenshots: Callable[[Page, str], None],
    language: str,
    born: date,
) -> None:
    scene = _scene(world, language, born)

    def t(message: str) -> str:
        return text(language, message)

    # Two systems ask for the citizen's data: one under the consent, one under the law.
    allowed = _ask(console, scene.clinic_token, scene.number)
    assert (allowed["decision"], allowed["reason"]) == ("allow", "consent")
    by_law = _ask(
        console,
        scene.land_token,
        scene.number,
        purpose="property registration",
        legal_basis="legal_obligation",
        official="Registrar Bekova",
    )
    assert (by_law["decision"], by_law["reason"]) == ("allow", "legal_basis")

    citizen = visit()
    page = citizen.page
    _citizen_sign_in(citizen, scene)
    log = page.locator("table.access-log")
    expect(page.locator("h1")).to_have_text(t("Your personal data"))
    expect(log.locator("tbody tr")).to_have_count(2)
    expect(log).to_contain_text("Емхана / Поликлиника")
    expect(log).to_contain_text("Жер кадастры / Земельный кадастр")
    expect(log).to_contain_text(t("Your consent covers this purpose and these data."))
    expect(log).to_contain_text(t("A duty set by law"))
    _first_screen(page, "table.access-log tbody tr")
    screenshots(page, f"privacy-{language}-1-citizen-record")

    # The consent the law keeps: the refusal gives the law's reason.
    page.click(f"#consent-{scene.land_consent} button.withdraw")
    refusal = page.locator(f"#consent-{scene.land_consent} .error")
    expect(refusal).to_contain_text(RESTRICTION[language])
    expect(page.locator("p.error[role=alert]")).to_contain_text(
        t("The law does not allow withdrawing this consent: %(reason)s").split(":")[0]
    )
    screenshots(page, f"privacy-{language}-2-withdrawal-refused")

    # One click withdraws the clinic's consent; its next decision is denied with the reason.
    page.click(f"#consent-{scene.clinic_consent} button.withdraw")
    expect(page.locator("p.message[data-withdrawn]")).to_be_visible()
    expect(page.locator(f"#consent-{scene.clinic_consent} .badge")).to_have_text(t("Withdrawn"))
    denied = _ask(console, scene.clinic_token, scene.number)
    assert (denied["decision"], denied["reason"]) == ("deny", "consent_withdrawn")
    page.reload()
    refused_row = log.locator("tr[data-reason=consent_withdrawn]")
    expect(refused_row).to_contain_text(t("Refused"))
    expect(refused_row).to_contain_text(t("You withdrew your consent."))
    _first_screen(page, "tr[data-reason=consent_withdrawn]")
    screenshots(page, f"privacy-{language}-3-consent-withdrawn")

    # A complaint to the organisation, about the clinic's system.
    page.click("a[href='/citizen/complaints#form']")
    page.wait_for_url("**/citizen/complaints*")
    form = page.locator("form[action='/citizen/complaints']")
    form.locator("select[name=organisation]").select_option(str(world["a.admin"].organisation_id))
    form.locator("select[name=system]").select_option(str(scene.clinic_id))
    form.locator("input[name=period_from]").fill("2026-01-10")
    form.locator("input[name=period_to]").fill("2026-02-01")
    description = {
        "kk": "Емхана менің мекенжайымды сақтандыру компаниясына берді.",
        "ru": "Поликлиника передала мой адрес страховой компании.",
    }[language]
    form.locator("textarea[name=description]").fill(description)
    form.locator("textarea[name=evidence]").fill("№ 17-45")
    form.locator("input[name=contacts]").fill("+7 701 555 12 34")
    form.locator("button[type=submit]").click()
    filed = page.locator("p.message[data-filed]")
    expect(filed).to_be_visible()
    number = filed.get_attribute("data-filed")
    row = page.locator(f"tr[data-complaint='{number}']")
    expect(row).to_contain_text(t("Awaiting an answer"))
    screenshots(page, f"privacy-{language}-4-complaint-filed")

    # The DPO: the complaint with its deadline, opened and answered.
    officer = visit()
    sign_in(officer, scene.dpo)
    officer.go("/")
    officer.page.wait_for_url("**/privacy")
    listed = officer.page.locator(f"#complaints tr[data-complaint='{number}']")
    expect(listed).to_be_visible()
    _first_screen(officer.page, f"#complaints tr[data-complaint='{number}']")
    screenshots(officer.page, f"privacy-{language}-5-dpo-overview")
    listed.locator("a").first.click()
    officer.page.wait_for_url(f"**/privacy/complaints/{number}")
    expect(officer.page.locator("dl.facts")).to_contain_text("+7 701 555 12 34")
    expect(officer.page.locator(".complaint-text").first).to_have_text(description)
    answer = {
        "kk": "Беру тоқтатылды, сақтандыру компаниясына мекенжайыңызды жою тапсырылды.",
        "ru": "Передача прекращена, страховой компании поручено удалить ваш адрес.",
    }[language]
    officer.page.fill("textarea[name=text]", answer)
    screenshots(officer.page, f"privacy-{language}-6-dpo-complaint")
    officer.page.click("form[action$='/answer'] button[type=submit]")
    officer.page.wait_for_url("**/privacy?answered=*")
    expect(officer.page.locator("p.message")).to_have_text(
        text(language, "The answer is sent: the citizen sees it on their page.")
    )

    # The citizen reads the answer, and sees the DPO's reading of the complaint in the log.
    page.reload()
    expect(row).to_contain_text(answer)
    expect(row).to_contain_text(t("Answered"))
    screenshots(page, f"privacy-{language}-7-complaint-answered")
    citizen.go("/citizen")
    staff_read = log.locator("tr[data-reason=staff_read]")
    expect(staff_read).to_have_count(1)
    expect(staff_read).to_contain_text(DPO_NAMES[language])
    expect(staff_read).to_contain_text(
        t("Reading your complaint no. %(number)s") % {"number": number}
    )
    expect(staff_read).to_contain_text("Organisation A")
    screenshots(page, f"privacy-{language}-8-citizen-log-with-staff-read")

    assert citizen.clean(allow=("HTTP 409",)) == [], citizen.problems
    assert officer.clean() == [], officer.problems
