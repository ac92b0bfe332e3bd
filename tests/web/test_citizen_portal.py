"""The citizen portal and the data-protection officer's pages, through the console's HTTP
interface: a citizen signs in with their IIN (password, then a second factor, enrolled on the
first sign-in), reads who accessed their data, withdraws a consent (the next decision is
denied), downloads the record and complains; the organisation's DPO answers, and reading the
complaint shows in the citizen's log. Citizens see only their own subject; staff none."""

from __future__ import annotations

import ast
import html
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from incidents.test_referral import _pdf_text
from privacy.examples import iin, system_in
from qorgan.core import identifiers, security
from qorgan.core.db import unit_of_work
from qorgan.core.models import AuditEntry, Role, User
from qorgan.privacy import citizens, complaints, consents, decisions, registry
from qorgan.privacy.consents import ConsentIn
from qorgan.privacy.models import (
    ComplaintKind,
    ComplaintStatus,
    Consent,
    ConsentStatus,
    DataCategory,
    LegalBasis,
    Outcome,
)
from qorgan.privacy.protection import protection
from qorgan.privacy.receipts import receipt_key
from qorgan.web.i18n import translations
from qorgan.web.privacy_labels import (
    CATEGORY_LABELS,
    COMPLAINT_KIND_LABELS,
    COMPLAINT_STATUS_LABELS,
    CONSENT_STATUS_LABELS,
    FIELD_LABELS,
    LEGAL_BASIS_LABELS,
    OUTCOME_LABELS,
    REASON_LABELS,
    REGISTRY_BASIS_LABELS,
    UNKNOWN_REFUSAL,
    refusal,
)

from .conftest import PASSWORD, Person, World, csrf_of, password_hash, sign_in

DANA = iin(date(1992, 2, 29), female=True)
ARMAN = iin(date(1985, 7, 14))
ALMATY = ZoneInfo("Asia/Almaty")
RESTRICTION = "Art. 8(5) of Law 94-V: the mortgage contract is not yet fulfilled"


def today() -> date:
    return datetime.now(ALMATY).date()


@dataclass
class Portal:
    """Organisation A with two information systems and its DPO; B's DPO; two citizens with
    consents; accesses by both systems to Dana's data and by the clinic to Arman's."""

    world: World
    clinic_id: int
    clinic_token: str
    land_token: str
    dana: Person
    arman: Person
    dana_consent: int  # to the clinic, withdrawable
    kept_consent: int  # to the land registry, which the law keeps
    arman_consent: int
    dpo_a: Person
    dpo_b: Person

    def ask(self, client: TestClient, token: str, subject: str, **changes: object) -> dict:
        body = {
            "subject_iin": subject,
            "categories": ["general"],
            "purpose": "medical care",
            "legal_basis": "consent",
            "official": "Dr. Omarova",
            **changes,
        }
        response = client.post(
            "/api/v1/privacy/decisions", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.text
        return response.json()


def _staff(session, organisation_id: int, email: str, role: Role) -> Person:
    secret = pyotp.random_base32()
    user = User(
        organisation_id=organisation_id,
        email=email,
        display_name=email.split("@")[0].title(),
        role=role,
        password_hash=password_hash(),
        language="en",
        totp_secret=secret,
    )
    session.add(user)
    session.flush()
    return Person(user.id, user.email, role, organisation_id, secret)


def _citizen(session, keys, number: str, email: str, name: str, *, totp: bool = True) -> Person:
    user = citizens.register(
        session=session,
        protection=keys,
        iin=number,
        email=email,
        display_name=name,
        password=PASSWORD,
        language="en",
    )
    secret = pyotp.random_base32() if totp else None
    user.totp_secret = secret
    return Person(user.id, user.email, Role.citizen, user.organisation_id, secret)


def make_portal(world: World, client: TestClient) -> Portal:
    keys = protection(world.settings)
    key = receipt_key(world.settings)
    a = world["a.admin"].organisation_id
    with unit_of_work(world.factory) as session:
        clinic, clinic_token = registry.register(
            session=session,
            protection=keys,
            organisation_id=a,
            system=system_in("Clinic records"),
            actor="test",
        )
        land, land_token = registry.register(
            session=session,
            protection=keys,
            organisation_id=a,
            system=system_in(
                "Land registry",
                purposes=["property registration"],
                categories=["general"],
                legal_bases=["consent", "legal_obligation"],
            ),
            actor="test",
        )
        dana = _citizen(session, keys, DANA, "dana@example.kz", "Дана Сейітқали")
        arman = _citizen(session, keys, ARMAN, "arman@example.kz", "Arman Nurlan")

        def give(system, subject: str, purpose: str, **extra: object) -> int:
            consent = ConsentIn(subject, [purpose], ["general"], ["surname", "address"], **extra)
            return consents.give(
                session=session, protection=keys, key=key, system=system, consent=consent
            ).id

        dana_consent = give(clinic, DANA, "medical care", term_until=date(2030, 1, 1))
        kept = give(land, DANA, "property registration", withdrawal_restriction=RESTRICTION)
        arman_consent = give(clinic, ARMAN, "medical care")
        dpo_a = _staff(session, a, "dpo@a.example.kz", Role.dpo)
        dpo_b = _staff(session, world["b.admin"].organisation_id, "dpo@b.example.kz", Role.dpo)
    portal = Portal(
        world, clinic.id, clinic_token, land_token, dana, arman, dana_consent, kept,
        arman_consent, dpo_a, dpo_b,
    )  # fmt: skip
    allowed = portal.ask(client, clinic_token, DANA)
    assert (allowed["decision"], allowed["reason"]) == ("allow", "consent")
    by_law = portal.ask(
        client,
        land_token,
        DANA,
        purpose="property registration",
        legal_basis="legal_obligation",
        official="Registrar Bekova",
    )
    assert (by_law["decision"], by_law["reason"]) == ("allow", "legal_basis")
    portal.ask(client, clinic_token, ARMAN, official="Dr. Arman-Only")
    return portal


@pytest.fixture
def portal(world: World, client: TestClient) -> Portal:
    return make_portal(world, client)


def citizen_sign_in(client: TestClient, person: Person, number: str) -> str:
    """The citizen's sign-in through the pages: IIN and password, then the TOTP code; lands on
    /citizen. Returns the CSRF token of the page."""
    page = client.get("/citizen/login")
    response = client.post(
        "/citizen/login",
        data={"iin": number, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/login/second-factor"
    page = client.get("/login/second-factor")
    response = client.post(
        "/login/second-factor",
        data={"code": person.code(), "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/"
    home = client.get("/", follow_redirects=False)
    assert home.status_code == 303 and home.headers["location"] == "/citizen"
    page = client.get("/citizen")
    assert page.status_code == 200, page.text
    return csrf_of(page.text)


def error_of(page: str) -> str:
    found = re.search(r'<p class="error" role="alert"[^>]*>(.*?)</p>', page, re.S)
    assert found, "no error on the page"
    return html.unescape(found.group(1).strip())


# --------------------------------------------------------------------------- signing in


def test_sign_in_by_iin_enrols_the_second_factor_and_lands_on_the_record(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = protection(world.settings)
    with unit_of_work(world.factory) as session:
        newcomer = _citizen(session, keys, DANA, "dana@example.kz", "Dana", totp=False)
    client.cookies.set("qorgan_lang", "en")
    page = client.get("/citizen/login")
    assert page.status_code == 200 and 'name="iin"' in page.text
    csrf = csrf_of(page.text)

    # A mistyped IIN is refused with the reason, before any account is looked at.
    wrong_digit = DANA[:-1] + str((int(DANA[-1]) + 1) % 10)
    refused = client.post(
        "/citizen/login", data={"iin": wrong_digit, "password": PASSWORD, "csrf_token": csrf}
    )
    assert refused.status_code == 400
    assert "check digit" in error_of(refused.text) and wrong_digit not in error_of(refused.text)
    assert client.cookies.get("qorgan_session") is None

    # An unknown IIN and a wrong password: the same answer, after one Argon2 check each.
    checks: list[str] = []
    real = security.verify_password

    def counted(hashed: str, password: str) -> bool:
        checks.append(password)
        return real(hashed, password)

    monkeypatch.setattr(security, "verify_password", counted)
    unknown = client.post(
        "/citizen/login",
        data={"iin": iin(date(1970, 1, 1)), "password": PASSWORD, "csrf_token": csrf},
    )
    wrong = client.post(
        "/citizen/login", data={"iin": DANA, "password": "not the password", "csrf_token": csrf}
    )
    assert unknown.status_code == wrong.status_code == 401
    assert error_of(unknown.text) == error_of(wrong.text) == "Wrong IIN or password."
    assert len(checks) == 2
    monkeypatch.undo()

    # The right IIN (typed in groups) and password: enrolment, as for staff.
    grouped = f"{DANA[:6]} {DANA[6:]}"
    response = client.post(
        "/citizen/login",
        data={"iin": grouped, "password": PASSWORD, "csrf_token": csrf},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/login/enrol"
    enrol = client.get("/login/enrol")
    secret = re.search(r"<code[^>]*>([A-Z2-7]{16,})</code>", enrol.text)
    assert secret, enrol.text
    codes = client.post(
        "/login/enrol",
        data={"code": pyotp.TOTP(secret.group(1)).now(), "csrf_token": csrf_of(enrol.text)},
    )
    assert codes.status_code == 200 and 'href="/"' in codes.text
    assert client.get("/", follow_redirects=False).headers["location"] == "/citizen"
    page = client.get("/citizen")
    assert page.status_code == 200 and "Who accessed your data" in page.text
    with unit_of_work(world.factory) as session:
        user = session.get(User, newcomer.id)
        assert user is not None and user.totp_secret == secret.group(1)


def test_citizen_sign_in_is_throttled_like_the_staff_one(client: TestClient) -> None:
    csrf = csrf_of(client.get("/citizen/login").text)
    statuses = []
    for _ in range(25):  # malformed IINs: no Argon2, but each an attempt
        response = client.post(
            "/citizen/login", data={"iin": "12345", "password": "x", "csrf_token": csrf}
        )
        statuses.append(response.status_code)
    assert statuses[:20] == [400] * 20 and statuses[-1] == 429
    assert response.headers["retry-after"].isdigit()
    assert client.post("/citizen/login", data={"iin": DANA, "password": "x"}).status_code == 403


def test_citizens_and_staff_stay_on_their_own_side(
    client: TestClient, world: World, portal: Portal
) -> None:
    assert client.get("/citizen", follow_redirects=False).headers["location"] == "/citizen/login"
    client.cookies.set("qorgan_lang", "en")
    citizen_sign_in(client, portal.dana, DANA)
    for path in ("/alerts", "/incidents", "/audit", "/users", "/sources", "/privacy", "/hunts"):
        assert client.get(path).status_code == 403, path
    assert client.get("/api/v1/alerts").status_code == 403
    assert client.get("/api/v1/privacy/systems").status_code == 403
    client.post("/logout", data={"csrf_token": csrf_of(client.get("/citizen").text)})
    client.cookies.clear()

    # An administrator holds every permission but has no subject: a 404 that says so.
    sign_in(client, world["a.admin"])
    page = client.get("/citizen")
    assert page.status_code == 404 and "not a citizen" in page.text
    assert "Dr. Omarova" not in page.text
    for path in ("/citizen/record.json", "/citizen/complaints"):
        assert client.get(path).status_code == 404, path
    client.cookies.clear()
    sign_in(client, world["a.analyst"])
    assert client.get("/citizen").status_code == 403


# --------------------------------------------------------------------------- the record


def test_the_record_withdrawal_and_the_next_decision(client: TestClient, portal: Portal) -> None:
    csrf = citizen_sign_in(client, portal.dana, DANA)
    page = client.get("/citizen").text
    # The access log comes first: both systems, with who, on whose behalf, why, in words.
    log = page.index("Who accessed your data")
    assert log < page.index("Your consents") < page.index("Complaints and objections</h2>")
    assert page.count('<tr class="outcome-allow"') == 2
    for text in (
        "Clinic records (АО «Национальные информационные технологии»)",
        "Land registry",
        "Dr. Omarova",
        "Registrar Bekova",
        "Your consent covers this purpose and these data.",
        "The law allows this access without your consent, on the basis named.",
        "A duty set by law",
        "General personal data",
    ):
        assert text in page, text
    assert "Dr. Arman-Only" not in page  # Arman's entries are his
    assert "legal_obligation" not in page.replace('data-reason="legal_basis"', "")

    # One click withdraws; the next decision for that purpose is denied with the reason.
    assert client.post(f"/citizen/consents/{portal.dana_consent}/withdraw").status_code == 403
    done = client.post(
        f"/citizen/consents/{portal.dana_consent}/withdraw",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"].startswith(f"/citizen?withdrawn={portal.dana_consent}")
    shown = client.get(done.headers["location"]).text
    assert f'data-withdrawn="{portal.dana_consent}"' in shown
    denied = portal.ask(client, portal.clinic_token, DANA)
    assert (denied["decision"], denied["reason"]) == ("deny", "consent_withdrawn")
    page = client.get("/citizen").text
    assert '<tr class="outcome-deny" data-reason="consent_withdrawn">' in page
    assert "You withdrew your consent." in page

    # A consent the law keeps: the refusal says why, and the consent stays.
    kept = client.post(
        f"/citizen/consents/{portal.kept_consent}/withdraw", data={"csrf_token": csrf}
    )
    assert kept.status_code == 409
    assert error_of(kept.text) == "The law does not allow withdrawing this consent: " + RESTRICTION
    # Another citizen's consent is not found, and stays as it was.
    other = client.post(
        f"/citizen/consents/{portal.arman_consent}/withdraw", data={"csrf_token": csrf}
    )
    assert other.status_code == 404
    missing = client.post("/citizen/consents/999999/withdraw", data={"csrf_token": csrf})
    assert missing.status_code == 404
    with unit_of_work(portal.world.factory) as session:
        statuses = {
            c.id: c.status
            for c in session.scalars(
                select(Consent).where(
                    Consent.id.in_([portal.dana_consent, portal.kept_consent, portal.arman_consent])
                )
            )
        }
    assert statuses == {
        portal.dana_consent: ConsentStatus.withdrawn,
        portal.kept_consent: ConsentStatus.active,
        portal.arman_consent: ConsentStatus.active,
    }
    # ?withdrawn= naming someone else's consent names nothing.
    assert "data-withdrawn" not in client.get(f"/citizen?withdrawn={portal.arman_consent}").text


def test_downloads_hold_the_citizens_own_record_only(client: TestClient, portal: Portal) -> None:
    csrf = citizen_sign_in(client, portal.dana, DANA)
    response = client.get("/citizen/record.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"].startswith("attachment;")
    data = response.json()
    assert {e["who"].split(" (")[0] for e in data["access_log"]} == {
        "Clinic records",
        "Land registry",
    }
    assert {e["official"] for e in data["access_log"]} == {"Dr. Omarova", "Registrar Bekova"}
    assert {c["id"] for c in data["consents"]} == {portal.dana_consent, portal.kept_consent}
    assert "Dr. Arman-Only" not in response.text and ARMAN not in response.text
    assert DANA not in response.text  # the IIN is not kept in clear, so not in the record either
    first = data["access_log"][0]
    assert first["reason_text"] in {
        "Your consent covers this purpose and these data.",
        "The law allows this access without your consent, on the basis named.",
    }
    receipt = data["consents"][0]["receipts"]["given"]
    assert receipt["signature"]["algorithm"] == "Ed25519"

    # The PDF in the page's language, Kazakh letters intact.
    client.post("/language", data={"language": "kk", "csrf_token": csrf})
    pdf = client.get("/citizen/record.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    text, pages = _pdf_text(pdf.content)
    kk = translations("kk").gettext
    flat = " ".join(text.split())
    for wanted in (
        kk("Your personal-data record"),
        kk("Who accessed your data"),
        kk("Your consents"),
        kk("Your consent covers this purpose and these data."),
        "Dr. Omarova",
        "Registrar Bekova",
        "Clinic records",
        RESTRICTION,
    ):
        assert " ".join(wanted.split()) in flat, wanted
    assert re.search(r"[әғқңөұүһі]", flat), "no Kazakh letter in the PDF"
    assert "Dr. Arman-Only" not in flat and pages >= 1


# --------------------------------------------------------------------------- complaints


def _file(client: TestClient, csrf: str, organisation: int, **changes: str):
    form = {
        "csrf_token": csrf,
        "kind": "complaint",
        "organisation": str(organisation),
        "system": "",
        "period_from": "2026-01-10",
        "period_to": "2026-02-01",
        "description": "The clinic gave my address to an insurer.",
        "evidence": "Letter from the insurer, no. 17-45",
        "name": "Дана Сейітқали",
        "contacts": "+7 701 555 12 34",
        **changes,
    }
    return client.post("/citizen/complaints", data=form, follow_redirects=False)


def test_a_complaint_is_answered_and_its_reading_is_in_the_citizens_log(
    client: TestClient, portal: Portal
) -> None:
    world = portal.world
    a = world["a.admin"].organisation_id
    csrf = citizen_sign_in(client, portal.dana, DANA)
    form = client.get("/citizen/complaints").text
    assert f'<option value="{a}"' in form and "Organisation A" in form
    assert f'<option value="{portal.clinic_id}"' in form
    filed = _file(client, csrf, a, system=str(portal.clinic_id))
    assert filed.status_code == 303, filed.text
    number = int(re.search(r"filed=(\d+)", filed.headers["location"]).group(1))
    page = client.get(filed.headers["location"]).text
    assert f'data-filed="{number}"' in page
    assert f'data-complaint="{number}" data-status="open"' in page
    objection = _file(client, csrf, a, kind="objection", description="No automated scoring.")
    assert objection.status_code == 303
    client.cookies.clear()

    # B's DPO neither sees nor opens it.
    sign_in(client, portal.dpo_b)
    assert f'data-complaint="{number}"' not in client.get("/privacy").text
    assert client.get(f"/privacy/complaints/{number}").status_code == 404
    csrf_b = csrf_of(client.get("/privacy").text)
    refused = client.post(
        f"/privacy/complaints/{number}/answer", data={"csrf_token": csrf_b, "text": "B"}
    )
    assert refused.status_code == 404
    client.cookies.clear()

    # A's DPO: listed with its deadline, opened (the read recorded), answered once.
    assert client.get("/", follow_redirects=False).headers["location"] == "/login?next=%2F"
    sign_in(client, portal.dpo_a)
    assert client.get("/", follow_redirects=False).headers["location"] == "/privacy"
    overview = client.get("/privacy").text
    assert f'data-complaint="{number}"' in overview and 'href="/privacy"' in overview
    assert "Clinic records" in overview and "Land registry" in overview  # the registry
    opened = client.get(f"/privacy/complaints/{number}")
    assert opened.status_code == 200
    for text in ("+7 701 555 12 34", "Дана Сейітқали", "Letter from the insurer, no. 17-45"):
        assert text in opened.text
    csrf_a = csrf_of(opened.text)
    empty = client.post(
        f"/privacy/complaints/{number}/answer", data={"csrf_token": csrf_a, "text": "  "}
    )
    assert empty.status_code == 400 and error_of(empty.text) == "Fill in the field “Answer”."
    answer = "We have stopped the transfer and told the insurer to delete your address."
    sent = client.post(
        f"/privacy/complaints/{number}/answer",
        data={"csrf_token": csrf_a, "text": answer},
        follow_redirects=False,
    )
    assert sent.status_code == 303 and sent.headers["location"].startswith("/privacy?answered=")
    again = client.post(
        f"/privacy/complaints/{number}/answer", data={"csrf_token": csrf_a, "text": "Again"}
    )
    assert again.status_code == 400
    assert error_of(again.text) == "This complaint is already answered."
    with unit_of_work(world.factory) as session:
        reads = session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "privacy.subject_read",
                AuditEntry.actor == str(portal.dpo_a.id),
            )
        ).all()
        assert len(reads) == 3  # opened, and shown again with each refused answer
        row = complaints.get(session=session, organisation_ids=[a], complaint_id=number)
        assert row is not None and row.status is ComplaintStatus.answered
    client.cookies.clear()

    # The citizen sees the answer, and the DPO's reading in their own log, in words.
    citizen_sign_in(client, portal.dana, DANA)
    mine = client.get("/citizen/complaints").text
    assert answer in mine and f'data-complaint="{number}" data-status="answered"' in mine
    log = client.get("/citizen").text
    assert f"Reading your complaint no. {number}" in log
    assert "A member of the organisation&#39;s staff read your record in this service." in log
    assert "Organisation A" in log and "Dpo" in log


def test_the_complaint_form_refuses_what_cannot_be_stored(
    client: TestClient, portal: Portal
) -> None:
    a = portal.world["a.admin"].organisation_id
    csrf = citizen_sign_in(client, portal.dana, DANA)
    nul = _file(client, csrf, a, description="before\x00after")
    assert nul.status_code == 400
    assert error_of(nul.text) == (
        "The field “What happened” cannot contain NUL or unpaired surrogate characters."
    )
    assert "before\ufffdafter" in nul.text  # shown again as typed, the NUL marked
    # A lone surrogate cannot be sent as UTF-8: encoded by hand (CESU-8's bytes), the form
    # parser makes U+FFFD of it, which is refused rather than stored in its place.
    body = (
        f"csrf_token={csrf}&kind=complaint&organisation={a}&name=Dana&contacts=x"
        "&description=%ED%A0%80"
    )
    surrogate = client.post(
        "/citizen/complaints",
        content=body.encode("ascii"),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert surrogate.status_code == 400
    assert error_of(surrogate.text) == (
        "The field “What happened” holds something that is not text (bytes that are not "
        "UTF-8, such as an unpaired surrogate)."
    )
    bad_date = _file(client, csrf, a, period_from="10.01.2026")
    assert bad_date.status_code == 400
    assert error_of(bad_date.text) == "Write dates as YYYY-MM-DD."
    no_name = _file(client, csrf, a, name=" ")
    assert error_of(no_name.text) == "Fill in the field “Your name”."
    nowhere = _file(client, csrf, 999_999_999_999)
    assert error_of(nowhere.text) == "Choose an organisation that holds personal data."
    b = portal.world["b.admin"].organisation_id
    other = _file(client, csrf, b)  # B holds no registered system
    assert error_of(other.text) == "Choose an organisation that holds personal data."
    wrong_system = _file(client, csrf, a, system="2147483647")
    assert error_of(wrong_system.text) == "The system chosen is not one of that organisation's."
    future = _file(client, csrf, a, period_to=(today() + timedelta(days=3)).isoformat())
    assert error_of(future.text) == "The period cannot end in the future."
    with unit_of_work(portal.world.factory) as session:
        subject = citizens.subject_of(session=session, user=session.get(User, portal.dana.id))
        record = citizens.record(session=session, subject=subject, today=today())
        assert record.complaints == []


# --------------------------------------------------------------------------- overdue deletions


def test_the_dpo_confirms_overdue_deletions_of_its_own_systems(
    client: TestClient, portal: Portal
) -> None:
    world = portal.world
    with unit_of_work(world.factory) as session:
        key = receipt_key(world.settings)
        consents.withdraw(session=session, key=key, consent_id=portal.arman_consent)
        consent = session.get(Consent, portal.arman_consent)
        assert consent is not None
        consent.deletion_due = today() - timedelta(days=2)
    sign_in(client, portal.dpo_b)
    csrf_b = csrf_of(client.get("/privacy").text)
    path = f"/privacy/consents/{portal.arman_consent}/deletion-confirmed"
    assert client.post(path, data={"csrf_token": csrf_b}).status_code == 404
    client.cookies.clear()
    sign_in(client, portal.dpo_a)
    overview = client.get("/privacy").text
    assert f'data-consent="{portal.arman_consent}"' in overview
    confirmed = client.post(path, data={"csrf_token": csrf_of(overview)}, follow_redirects=False)
    assert confirmed.status_code == 303
    assert f'data-consent="{portal.arman_consent}"' not in client.get("/privacy").text
    twice = client.post(path, data={"csrf_token": csrf_of(overview)})
    assert twice.status_code == 409
    assert error_of(twice.text) == "The deletion was already confirmed."


# --------------------------------------------------------------------------- the words


def test_every_code_of_the_service_has_words() -> None:
    assert set(REASON_LABELS) == set(decisions.REASONS)
    assert set(LEGAL_BASIS_LABELS) == set(REGISTRY_BASIS_LABELS) == {b.value for b in LegalBasis}
    assert set(CATEGORY_LABELS) == {c.value for c in DataCategory}
    assert set(OUTCOME_LABELS) == {o.value for o in Outcome}
    assert set(CONSENT_STATUS_LABELS) == {s.value for s in ConsentStatus}
    assert set(COMPLAINT_STATUS_LABELS) == {s.value for s in ComplaintStatus}
    assert set(COMPLAINT_KIND_LABELS) == {k.value for k in ComplaintKind}


def _raised(module: object, error: str, *functions: str) -> set[str]:
    """The messages ``module`` (only its ``functions``, if named) raises ``error`` with:
    literals, and f-strings' fixed text with each placeholder as ``{}``."""
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))  # type: ignore[attr-defined]
    roots = [
        node
        for node in tree.body
        if not functions or (isinstance(node, ast.FunctionDef) and node.name in functions)
    ]
    found = set()
    for node in (inner for root in roots for inner in ast.walk(root)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == error and node.args:
            argument = node.args[0]
            if isinstance(argument, ast.Constant):
                found.add(argument.value)
            elif isinstance(argument, ast.JoinedStr):
                found.add(
                    "".join(
                        v.value if isinstance(v, ast.Constant) else "{}" for v in argument.values
                    )
                )
    return found


def test_every_refusal_a_page_can_show_is_translated() -> None:
    samples = {
        "{} is required": [f"{field} is required" for field in FIELD_LABELS],
        "{} has at most {} characters": [f"{f} has at most 200 characters" for f in FIELD_LABELS],
        "{} cannot contain NUL or unpaired surrogate characters": [
            f"{f} cannot contain NUL or unpaired surrogate characters" for f in FIELD_LABELS
        ],
        "this consent cannot be withdrawn: {}": ["this consent cannot be withdrawn: a law"],
        "you have {} complaints open: wait for their answers": [
            "you have 20 complaints open: wait for their answers"
        ],
        "you filed {} complaints in the last day: try tomorrow": [
            "you filed 5 complaints in the last day: try tomorrow"
        ],
        "this consent is already {}": [
            f"this consent is already {s.value}" for s in ConsentStatus if s.value != "active"
        ],
        # IINs (BINs are not on these pages).
        "{} has 12 digits, not {}": ["an IIN has 12 digits, not 5"],
        "{} has only the digits 0-9": ["an IIN has only the digits 0-9"],
        "{} is text of 12 digits": ["an IIN is text of 12 digits"],
        "the {}'s check digit does not match": ["the IIN's check digit does not match"],
        "a check digit is computed from 11 digits": [],  # a programming error
    }
    messages = (
        _raised(complaints, "ComplaintError")
        # What the pages call: withdrawing (the citizen), confirming a deletion (the DPO).
        | _raised(consents, "ConsentError", "withdraw", "confirm_deletion")
        | _raised(identifiers, "IdentifierError")
    )
    fields = re.findall(r'_text\([^,]+, "([^"]+)"', Path(complaints.__file__).read_text())
    assert set(fields) == set(FIELD_LABELS)
    untranslated = []
    for message in sorted(messages):
        if message.startswith(("the BIN", "a BIN")) or "{} must be" in message:
            continue
        for sample in samples.get(message, [message]):
            for language in ("kk", "ru", "en"):
                gettext = translations(language).gettext
                said = refusal(sample, gettext)
                if said == gettext(UNKNOWN_REFUSAL) or (language != "en" and said == sample):
                    untranslated.append((language, sample))
    assert not untranslated, untranslated


def test_the_record_json_matches_the_page_for_a_hidden_entry(
    client: TestClient, portal: Portal
) -> None:
    """An access hidden by law is on neither the page nor the download until its date."""
    with unit_of_work(portal.world.factory) as session:
        keys = protection(portal.world.settings)
        police = registry.register(
            session=session,
            protection=keys,
            organisation_id=portal.world["a.admin"].organisation_id,
            system=system_in(
                "Case management",
                purposes=["pre-trial investigation"],
                legal_bases=["law_enforcement"],
                categories=["general"],
            ),
            actor="test",
        )[0]
        decisions.record(
            session=session,
            protection=keys,
            system=police,
            request=decisions.AccessRequest(
                DANA,
                ["general"],
                "pre-trial investigation",
                "law_enforcement",
                "Investigator Secret",
                hidden_until=today() + timedelta(days=30),
                hidden_because="pre-trial secrecy",
                hidden_visible_to="the prosecutor",
            ),
            now=datetime.now(UTC),
        )
    citizen_sign_in(client, portal.dana, DANA)
    assert "Investigator Secret" not in client.get("/citizen").text
    assert "Investigator Secret" not in client.get("/citizen/record.json").text
    assert json.loads(client.get("/citizen/record.json").text)["access_log"]
