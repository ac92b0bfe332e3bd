"""A data-protection officer reports a leak in a real browser, in Kazakh and in Russian: the
form refuses a mistyped BIN and keeps what was typed, the report's page shows its deadline and
status on the first screen, a CSV of 1,000 subjects with a mistyped IIN is refused with that
row named, the corrected file is taken, and the report is submitted. Notices then go out
through the file channel, as ``qorgan privacy deliver-notices --file`` sends them: each of the
1,000 subjects is notified exactly once, and submitting again from the page then delivering
again notifies nobody. Screenshots go to build/screenshots/privacy-leak-*.png.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from playwright.sync_api import Page, expect

from privacy.leak_examples import HOLDER_BIN, person, subjects_csv
from qorgan.core.db import unit_of_work
from qorgan.core.models import Role, User
from qorgan.privacy import outbox
from qorgan.privacy.channels import FileChannel
from qorgan.privacy.protection import protection
from web.conftest import World
from web.test_citizen_portal import _staff

from .conftest import Console
from .helpers import Visitor, sign_in, text
from .test_privacy_portal import _first_screen, world  # noqa: F401 (the module's database)

SUBJECTS = 1_000
TEXTS = {
    "kk": {
        "description": "Пациенттер тізімінің көшірмесі ашық қоймада жатыр (1 000 жазба).",
        "measures": "Қоймаға қолжетімділік жабылды, кілттер ауыстырылды.",
        "person": "Ахметова Д. К.",
    },
    "ru": {
        "description": "Выгрузка списка пациентов оказалась в открытом хранилище (1 000 записей).",
        "measures": "Доступ к хранилищу закрыт, ключи заменены.",
        "person": "Ахметова Д. К.",
    },
}


def _deliver(on: World, sink: Path) -> outbox.Delivery:
    """What ``qorgan privacy deliver-notices --file sink`` does: every due notice to the file."""
    channel = FileChannel(sink)
    return outbox.deliver(
        on.factory, {"email": channel, "sms": channel}, protection=protection(on.settings)
    )


def _lines(sink: Path) -> list[dict]:
    return [orjson.loads(line) for line in sink.read_bytes().splitlines()] if sink.exists() else []


@pytest.mark.parametrize(("language", "start"), [("kk", 0), ("ru", 5_000)])
def test_a_dpo_reports_a_leak_and_each_subject_is_notified_once(
    world: World,  # noqa: F811
    console: Console,
    visit: Callable[[], Visitor],
    screenshots: Callable[[Page, str], None],
    tmp_path: Path,
    language: str,
    start: int,
) -> None:
    def t(message: str) -> str:
        return text(language, message)

    with unit_of_work(world.factory) as session:
        dpo = _staff(
            session,
            world["a.admin"].organisation_id,
            f"leak-dpo-{language}@a.example.kz",
            Role.dpo,
        )
        session.get(User, dpo.id).language = language  # type: ignore[union-attr]
    officer = visit()
    page = officer.page
    sign_in(officer, dpo)
    officer.go("/")
    page.wait_for_url("**/privacy")
    page.click("#leaks a[href='/privacy/leaks/new']")
    page.wait_for_url("**/privacy/leaks/new")
    expect(page.locator("h1")).to_have_text(t("Report a leak"))

    # The form, with a BIN one digit off: refused, and what was typed is kept.
    detected = datetime.now(ZoneInfo("Asia/Almaty")) - timedelta(hours=2)
    form = page.locator("#leak-form")
    form.locator("input[name=categories][value=general]").check()
    form.locator("input[name=categories][value=special]").check()
    form.locator("textarea[name=description]").fill(TEXTS[language]["description"])
    form.locator("input[name=detected_at]").fill(detected.strftime("%Y-%m-%dT%H:%M"))
    form.locator("textarea[name=measures]").fill(TEXTS[language]["measures"])
    form.locator("input[name=responsible_person]").fill(TEXTS[language]["person"])
    form.locator("input[name=contacts]").fill("+7 701 000 00 00, dpo@clinic.kz")
    form.locator("input[name=holder_name]").fill("ТОО «Клиника»")
    typo = HOLDER_BIN[:-1] + str((int(HOLDER_BIN[-1]) + 1) % 10)
    form.locator("input[name=holder_bin]").fill(typo)
    form.locator("button[type=submit]").click()
    expect(page.locator("p.error[role=alert]")).to_have_text(
        t("The holder's BIN is not a valid BIN: check its 12 digits for a typo.")
    )
    expect(form.locator("textarea[name=description]")).to_have_value(TEXTS[language]["description"])
    screenshots(page, f"privacy-leak-{language}-1-form-refused")
    form.locator("input[name=holder_bin]").fill(HOLDER_BIN)
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/privacy/leaks/*?created=1")
    leak_id = int(page.url.split("/")[-1].split("?")[0])

    # The report's page: its deadline and status come first.
    state = page.locator(".leak-state")
    expect(state.locator("dd[data-status=draft]")).to_contain_text(t("Not submitted yet"))
    expect(state.locator("dd.due")).not_to_have_attribute("data-overdue", "")
    _first_screen(page, ".leak-state dd.due")
    _first_screen(page, ".leak-state dd[data-status]")
    screenshots(page, f"privacy-leak-{language}-2-created")

    # 1,000 subjects, one IIN mistyped in row 17: the file is refused with that row named.
    raw = subjects_csv(SUBJECTS, start=start)
    _, number = person(start + 15)  # row 17: the header is row 1
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    upload = page.locator("form.upload-subjects")
    upload.locator("input[type=file]").set_input_files(
        files=[
            {
                "name": "subjects.csv",
                "mimeType": "text/csv",
                "buffer": raw.replace(number.encode(), wrong.encode()),
            }
        ]
    )
    upload.locator("button[type=submit]").click()
    problem = page.locator("table.csv-problems tr[data-row='17']")
    expect(problem).to_contain_text(
        t("The last digit of the IIN (its check digit) does not match: look for a typo.")
    )
    expect(page.locator("table.csv-problems tbody tr")).to_have_count(1)
    expect(page.locator("dd[data-subjects]")).to_have_attribute("data-subjects", "0")
    assert wrong not in page.content()
    screenshots(page, f"privacy-leak-{language}-3-csv-refused")

    # The corrected file is taken whole.
    upload.locator("input[type=file]").set_input_files(
        files=[{"name": "subjects.csv", "mimeType": "text/csv", "buffer": raw}]
    )
    upload.locator("button[type=submit]").click()
    page.wait_for_url("**?added=*")
    expect(page.locator("p.message[data-added]")).to_have_attribute("data-added", str(SUBJECTS))
    expect(page.locator("dd[data-subjects]")).to_have_attribute("data-subjects", str(SUBJECTS))

    # Submitted: the notices are queued, the incident is opened and linked.
    page.locator("form.submit-leak button[type=submit]").click()
    page.wait_for_url("**?queued=*")
    expect(page.locator("p.message[data-queued]")).to_have_attribute("data-queued", str(SUBJECTS))
    expect(state.locator("dd[data-status=submitted]")).to_contain_text(t("Submitted"))
    expect(state.locator("li[data-notices=pending]")).to_have_attribute("data-count", str(SUBJECTS))
    expect(state.locator("a[data-incident]")).to_have_text(
        # INC-000123: the incident this leak opened.
        f"INC-{int(state.locator('a[data-incident]').get_attribute('data-incident') or 0):06d}"
    )
    _first_screen(page, ".leak-state dd.due")
    screenshots(page, f"privacy-leak-{language}-4-submitted")

    # The notices go out through the file channel: each subject once.
    sink = tmp_path / f"notices-{language}.jsonl"
    done = _deliver(world, sink)
    assert (done.sent, done.retried, done.failed) == (SUBJECTS, 0, 0), done.errors
    lines = _lines(sink)
    assert len(lines) == SUBJECTS
    assert len({line["notice_id"] for line in lines}) == SUBJECTS
    assert {line["leak_id"] for line in lines} == {leak_id}
    expected = {
        f"subject{i}@example.kz" if i % 2 == 0 else f"+7701{i:07d}"
        for i in range(start, start + SUBJECTS)
    }
    assert sorted(line["to"] for line in lines) == sorted(expected)
    page.reload()
    expect(state.locator("li[data-notices=sent]")).to_have_attribute("data-count", str(SUBJECTS))
    expect(state.locator("li[data-notices=pending]")).to_have_attribute("data-count", "0")
    _first_screen(page, ".leak-state li[data-notices=sent]")
    screenshots(page, f"privacy-leak-{language}-5-notices-sent")

    # Submitted again from the page, delivered again: nobody is notified twice.
    expect(page.locator("form.submit-leak button[type=submit]")).to_have_text(t("Submit again"))
    page.locator("form.submit-leak button[type=submit]").click()
    page.wait_for_url("**?queued=*")
    expect(page.locator("p.message[data-queued]")).to_have_attribute("data-queued", "0")
    again = _deliver(world, sink)
    assert (again.sent, again.retried, again.failed) == (0, 0, 0)
    assert len(_lines(sink)) == SUBJECTS
    expect(state.locator("li[data-notices=sent]")).to_have_attribute("data-count", str(SUBJECTS))
    screenshots(page, f"privacy-leak-{language}-6-submitted-again")

    # The report to the authorised body, in this language, from the page's link.
    link = page.locator(f"a[href*='format=pdf&language={language}']")
    response = page.request.get(link.get_attribute("href") or "")
    assert response.ok and response.headers["content-type"] == "application/pdf"

    # The list: newest first, submitted, with its deadline.
    officer.go("/privacy/leaks")
    row = page.locator(f"tr[data-leak='{leak_id}']")
    expect(row).to_have_attribute("data-status", "submitted")
    expect(row.locator("td.due strong.overdue")).to_have_count(0)
    screenshots(page, f"privacy-leak-{language}-7-list")
    assert officer.clean(allow=("HTTP 400",)) == [], officer.problems
