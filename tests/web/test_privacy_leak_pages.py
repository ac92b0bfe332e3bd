"""The DPO's leak pages: the list (own organisation's, newest first, the deadline and overdue
shown), the form (refusals re-render it as typed, in the page's language), the CSV upload
(every bad row named, nothing kept; thousands of rows taken), submitting (notices queued once,
the incident linked), another organisation's report not found, and CSRF refused."""

from __future__ import annotations

import ast
import html
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from privacy.leak_examples import HOLDER_BIN, leak_in, person, subjects_csv
from qorgan.core import identifiers
from qorgan.core.db import unit_of_work
from qorgan.core.models import Role
from qorgan.core.workdays import default_calendar
from qorgan.privacy import leak_csv, leaks
from qorgan.privacy.leak_models import LeakNotice, LeakReport
from qorgan.privacy.protection import protection
from qorgan.web.i18n import translations
from qorgan.web.privacy_labels import UNKNOWN_REFUSAL, leak_refusal
from qorgan.web.routes.privacy_leak_pages import TEXT_FIELDS

from .conftest import Person, World, sign_in
from .test_citizen_portal import _raised, _staff

FORM = {
    "categories": ["general", "special"],
    "description": "Выгрузка записей пациентов оказалась в открытом хранилище.",
    "detected_at": "2026-03-06T15:00",  # a Friday afternoon in Almaty
    "occurred_at": "2026-03-04T13:00",
    "measures": "Доступ к хранилищу закрыт, ключи заменены.",
    "responsible_person": "Ахметова Д. К.",
    "contacts": "+7 701 000 00 00, dpo@clinic.kz",
    "holder_name": "ТОО «Клиника»",
    "holder_bin": HOLDER_BIN,
}


def _dpo(world: World, letter: str) -> Person:
    with unit_of_work(world.factory) as session:
        return _staff(
            session, world[f"{letter}.admin"].organisation_id, f"dpo@{letter}.example.kz", Role.dpo
        )


def _leak(world: World, letter: str, **changes: Any) -> int:
    with unit_of_work(world.factory) as session:
        return leaks.create(
            session=session,
            protection=protection(world.settings),
            calendar=default_calendar(),
            organisation_id=world[f"{letter}.admin"].organisation_id,
            leak=leak_in(**changes),
            actor="test",
        ).id


def _upload(client: TestClient, leak_id: int, csrf: str, raw: bytes) -> Any:
    return client.post(
        f"/privacy/leaks/{leak_id}/subjects",
        data={"csrf_token": csrf},
        files={"file": ("subjects.csv", raw, "text/csv")},
        follow_redirects=False,
    )


def test_the_list_shows_the_own_leaks_newest_first_with_their_deadline(
    client: TestClient, world: World
) -> None:
    older = _leak(world, "a", description="first")
    newer = _leak(world, "a", detected_at=datetime.now(UTC) - timedelta(minutes=1))
    _leak(world, "b", description="b-secret-host leak")
    sign_in(client, _dpo(world, "a"))
    page = client.get("/privacy/leaks")
    assert page.status_code == 200
    rows = re.findall(r'data-leak="(\d+)"', page.text)
    assert rows == [str(newer), str(older)]
    assert "b-secret-host" not in page.text
    older_row = page.text.split(f'data-leak="{older}"')[0].rsplit("<tr", 1)[1]
    assert "due-overdue" in older_row  # detected in March 2026: long overdue
    assert f"LEAK-{older:06d}" in page.text and "Overdue" in page.text
    # Tuesday 10 March 15:00 in Almaty: a weekend and the 9 March holiday later.
    assert "Mar 10, 2026, 3:00:00" in page.text, re.findall(r"Mar \d+, 2026[^<]*", page.text)
    newer_row = page.text.split(f'data-leak="{newer}"')[1].split("</tr>")[0]
    assert "Overdue" not in newer_row
    # The overview lists the drafts too, with a way to the list and the form.
    overview = client.get("/privacy")
    assert overview.status_code == 200
    assert re.findall(r'data-leak="(\d+)"', overview.text) == [str(newer), str(older)]
    assert 'href="/privacy/leaks/new"' in overview.text


def test_the_form_refuses_bad_input_and_keeps_what_was_typed(
    client: TestClient, world: World
) -> None:
    csrf = sign_in(client, _dpo(world, "a"))
    assert client.get("/privacy/leaks/new").status_code == 200

    def post(**changes: Any) -> Any:
        body = {**FORM, **changes, "csrf_token": csrf}
        return client.post("/privacy/leaks", data=body, follow_redirects=False)

    en = translations("en").gettext
    for changes, message in (
        ({"categories": []}, "Choose at least one category of data that leaked."),
        ({"categories": ["gossip"]}, "Choose the categories of data from the list."),
        ({"holder_bin": HOLDER_BIN[:-1] + "0"}, "The holder's BIN is not a valid BIN"),
        ({"holder_bin": "", "holder_name": ""}, "Give the holder's BIN, or choose the system"),
        ({"system": "99999999999999999999"}, "No such information system in your organisation."),
        ({"system": "x"}, "No such information system in your organisation."),
        ({"detected_at": ""}, "Write the time in the field “Detected at”"),
        ({"occurred_at": "yesterday"}, "Write the time in the field “Happened at”"),
        ({"detected_at": "2999-01-01T00:00"}, "The time of detection is in the future."),
        ({"occurred_at": "2026-03-07T10:00"}, "The leak cannot have happened after it"),
        ({"measures": "   "}, "Fill in the field “Measures taken” (at most 20,000 characters)."),
        ({"contacts": "x" * 501}, "Fill in the field “Contacts” (at most 500 characters)."),
        ({"description": "a\x00b"}, "“What leaked” cannot contain NUL"),
    ):
        refused = post(**changes)
        assert refused.status_code == 400, (changes, refused.text[:300])
        shown = html.unescape(refused.text)
        assert 'role="alert"' in shown and message in shown, (changes, message)
        assert 'id="leak-form"' in refused.text
        assert en("The request was refused.") not in refused.text
    # What was typed comes back.
    refused = post(holder_bin="123")
    assert "Ахметова Д. К." in refused.text and 'value="2026-03-06T15:00"' in refused.text
    assert 'value="special" checked' in refused.text
    with unit_of_work(world.factory) as session:
        assert session.scalar(select(func.count()).select_from(LeakReport)) == 0

    # In Russian, the refusal is Russian.
    client.post("/language", data={"language": "ru", "csrf_token": csrf})
    ru = translations("ru").gettext
    refused = post(categories=[])
    assert ru("Choose at least one category of data that leaked.") in refused.text

    made = post()
    assert made.status_code == 303, made.text
    leak_id = int(made.headers["location"].split("/")[-1].split("?")[0])
    page = client.get(made.headers["location"])
    assert page.status_code == 200 and "data-created" in page.text
    assert 'data-due="2026-03-10T10:00:00+00:00"' in page.text and "data-overdue" in page.text
    assert "+7 701 000 00 00" not in page.text  # the contacts are in the report only
    with unit_of_work(world.factory) as session:
        row = session.get(LeakReport, leak_id)
        assert row is not None and row.categories == ["general", "special"]
        assert row.detected_at.replace(tzinfo=UTC) == datetime(2026, 3, 6, 10, 0, tzinfo=UTC)


def test_a_csv_with_bad_rows_is_refused_row_by_row_and_thousands_are_taken(
    client: TestClient, world: World
) -> None:
    leak_id = _leak(world, "a")
    csrf = sign_in(client, _dpo(world, "a"))
    raw = subjects_csv(20)
    _, number = person(15)  # row 17: the header is row 1
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    bad = raw.replace(number.encode(), wrong.encode()).replace(b"+77010000003", b"+7701")
    refused = _upload(client, leak_id, csrf, bad)
    assert refused.status_code == 400
    rows = re.findall(
        r'<tr data-row="(\d+)"><td class="number">\d+</td><td>([^<]+)</td>', refused.text
    )
    assert rows == [
        ("5", "The phone number is not +7 followed by 10 digits."),
        ("17", "The last digit of the IIN (its check digit) does not match: look for a typo."),
    ]
    assert "Rows that cannot be used: 2." in refused.text
    assert wrong not in refused.text and number not in refused.text
    assert 'data-subjects="0"' in refused.text
    assert "data-added" not in refused.text and "data-queued" not in refused.text  # not done
    # No file chosen: said so.
    empty = client.post(
        f"/privacy/leaks/{leak_id}/subjects",
        data={"csrf_token": csrf},
        files={"file": ("", b"", "text/csv")},
    )
    assert empty.status_code == 400 and "Choose the CSV file" in empty.text

    taken = _upload(client, leak_id, csrf, subjects_csv(3000, bom=True, delimiter=";"))
    assert taken.status_code == 303, taken.text[:500]
    assert taken.headers["location"].endswith("?added=3000&already=0#subjects")
    page = client.get(taken.headers["location"])
    assert 'data-added="3000"' in page.text and 'data-subjects="3000"' in page.text

    submitted = client.post(
        f"/privacy/leaks/{leak_id}/submit", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert submitted.status_code == 303
    page = client.get(submitted.headers["location"])
    assert 'data-queued="3000"' in page.text
    assert 'data-notices="pending" data-count="3000"' in page.text
    incident = re.search(r'data-incident="(\d+)"', page.text)
    assert incident is not None
    assert client.get(f"/incidents/{incident.group(1)}").status_code in (200, 403)
    # Again: nobody is queued twice; the same incident.
    _upload(client, leak_id, csrf, subjects_csv(3010))
    again = client.post(f"/privacy/leaks/{leak_id}/submit", data={"csrf_token": csrf})
    assert 'data-queued="10"' in again.text and f'data-incident="{incident.group(1)}"' in again.text
    with unit_of_work(world.factory) as session:
        count = session.scalar(select(func.count()).where(LeakNotice.leak_id == leak_id))
        assert count == 3010
    # The downloads the page links to answer the console's session.
    for query in ("format=pdf&language=kk", "format=pdf&language=ru", "format=json"):
        assert f"/api/v1/privacy/leaks/{leak_id}/report?{query.replace('&', '&amp;')}" in page.text
        assert client.get(f"/api/v1/privacy/leaks/{leak_id}/report?{query}").status_code == 200


@pytest.mark.parametrize("who", ["dpo", "admin"])
def test_another_organisations_leak_is_not_found(
    client: TestClient, world: World, who: str
) -> None:
    b_leak = _leak(world, "b", description="b-secret-host leak")
    person_a = _dpo(world, "a") if who == "dpo" else world["a.admin"]
    csrf = sign_in(client, person_a)
    assert client.get(f"/privacy/leaks/{b_leak}").status_code == 404
    assert _upload(client, b_leak, csrf, subjects_csv(3)).status_code == 404
    submitted = client.post(f"/privacy/leaks/{b_leak}/submit", data={"csrf_token": csrf})
    assert submitted.status_code == 404
    report = client.get(f"/api/v1/privacy/leaks/{b_leak}/report?format=json")
    assert report.status_code == 404
    with unit_of_work(world.factory) as session:
        row = session.get(LeakReport, b_leak)
        assert row is not None and (row.status.value, row.incident_id) == ("draft", None)
        assert leaks.subject_count(session=session, leak_id=b_leak) == 0


def test_writes_without_the_csrf_token_are_refused(client: TestClient, world: World) -> None:
    leak_id = _leak(world, "a")
    sign_in(client, _dpo(world, "a"))
    made = client.post("/privacy/leaks", data=FORM, follow_redirects=False)
    assert made.status_code == 403
    wrong = {"csrf_token": "forged"}
    assert client.post(f"/privacy/leaks/{leak_id}/submit", data=wrong).status_code == 403
    assert client.post(f"/privacy/leaks/{leak_id}/submit").status_code == 403
    upload = client.post(
        f"/privacy/leaks/{leak_id}/subjects",
        data=wrong,
        files={"file": ("subjects.csv", subjects_csv(3), "text/csv")},
    )
    assert upload.status_code == 403
    with unit_of_work(world.factory) as session:
        assert session.scalar(select(func.count()).select_from(LeakReport)) == 1
        assert leaks.subject_count(session=session, leak_id=leak_id) == 0
        assert session.get(LeakReport, leak_id).status.value == "draft"  # type: ignore[union-attr]


def test_a_reader_sees_the_pages_but_no_forms(client: TestClient, world: World) -> None:
    """The auditor reads the trail, not leaks; an analyst has no privacy pages at all."""
    leak_id = _leak(world, "a")
    sign_in(client, world["a.analyst"])
    assert client.get("/privacy/leaks").status_code == 403
    assert client.get(f"/privacy/leaks/{leak_id}").status_code == 403
    assert client.get("/privacy/leaks/new").status_code == 403


def _said(module: object) -> set[str]:
    """What ``module`` says in refusals: ``_raised``'s, plus the reasons its functions return
    and the problems they name (the CSV's row reasons), with each placeholder as ``{}``."""
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))  # type: ignore[attr-defined]

    def text(node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        return None

    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Return) and node.value is not None:
            said = text(node.value)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in (
            "Problem",
            "problem",
        ):
            said = text(node.args[1]) if len(node.args) > 1 else None
        else:
            continue
        if said and " " in said:
            found.add(said)
    return found


#: A sample of each message with placeholders, as the service fills them in.
SAMPLES = {
    "the {} contains a NUL character": [
        f"the {f} contains a NUL character" for f in TEXT_FIELDS.values()
    ]
    + ["the name contains a NUL character", "the e-mail address contains a NUL character"],
    "the {} contains an unpaired surrogate character": [
        "the iin contains an unpaired surrogate character",
        "the phone contains an unpaired surrogate character",
        "the measures taken contains an unpaired surrogate character",
    ],
    "the {} has 1 to {} characters": [
        f"the {f} has 1 to 20,000 characters" for f in TEXT_FIELDS.values()
    ],
    "the {} needs a time zone": ["the detection time needs a time zone"],
    "unknown data category; one of {}": ["unknown data category; one of general, special"],
    "the holder's BIN: {}": ["the holder's BIN: the BIN's check digit does not match"],
    "the file is not UTF-8 text (row {} holds bytes that are not); save it as “CSV UTF-8” and "
    "upload it again": [
        "the file is not UTF-8 text (row 3 holds bytes that are not); save it as “CSV UTF-8” "
        "and upload it again"
    ],
    "the file is larger than {} MiB; split it and upload the parts to the same report": [
        "the file is larger than 20 MiB; split it and upload the parts to the same report"
    ],
    "the file has more than {} rows; split it and upload the parts to the same report": [
        "the file has more than 100,000 rows; split it and upload the parts to the same report"
    ],
    "row {} is not valid CSV (a quote is not closed or is misplaced)": [
        "row 12 is not valid CSV (a quote is not closed or is misplaced)"
    ],
    "{} rows cannot be used{}; nothing was stored": [
        "2 rows cannot be used; nothing was stored",
        "1,500 rows cannot be used (the first 1,000 are listed); nothing was stored",
    ],
    "column {} is not one of {}": ["column 5 is not one of name, iin, email, phone"],
    "the column {} appears twice": ["the column iin appears twice"],
    "the header has no {} column": ["the header has no name or iin column"],
    "the row has {} cells; the header names {}": ["the row has 5 cells; the header names 4"],
    "the name is longer than {} characters": ["the name is longer than 300 characters"],
    "the same IIN as row {}": ["the same IIN as row 2"],
    # The IIN's, as test_citizen_portal.py fills them in.
    "{} has 12 digits, not {}": ["an IIN has 12 digits, not 5"],
    "{} has only the digits 0-9": ["an IIN has only the digits 0-9"],
    "{} is text of 12 digits": ["an IIN is text of 12 digits"],
    "the {}'s check digit does not match": ["the IIN's check digit does not match"],
    "a check digit is computed from 11 digits": [],  # a programming error
    "unsupported database {}": [],  # likewise
    "row {}: {}": [],  # a Problem as text: the page shows the row and the reason apart
}


def test_every_refusal_of_the_leak_pages_is_translated() -> None:
    messages = (
        _raised(leaks, "LeakError", "create", "check_text", "_aware", "_categories")
        | _raised(leak_csv, "CsvRejected")
        | _said(leak_csv)
        | _raised(identifiers, "IdentifierError", "parse_iin", "_digits", "_check")
    )
    assert "the e-mail address is not of the form name@domain.kz" in messages
    assert "the same IIN as row {}" in messages and "the file is empty" in " ".join(messages)
    untranslated = []
    for message in sorted(messages):
        if message.startswith(("the BIN", "a BIN")) or "{} must be" in message:
            continue
        for sample in SAMPLES.get(message, [message]):
            for language in ("kk", "ru", "en"):
                gettext = translations(language).gettext
                said = leak_refusal(sample, gettext)
                if said == gettext(UNKNOWN_REFUSAL) or (language != "en" and said == sample):
                    untranslated.append((language, sample))
    assert not untranslated, untranslated
