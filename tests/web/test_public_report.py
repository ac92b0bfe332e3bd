"""The public report form, without an account: the whole flow with a solved proof of work,
refusals of replayed, expired and forged challenges, of floods (429 with Retry-After), of
oversized bodies (413) and of malformed fields, each with a clear message; the status page
shows the phase and nothing internal, and an unknown number is a bare 404."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from qorgan.core import accounts
from qorgan.core.db import unit_of_work
from qorgan.core.models import AuditEntry, Organisation, OrganisationKind, Role, User
from qorgan.core.settings import Settings, get_settings
from qorgan.incidents import evidence, reports
from qorgan.incidents.models import Evidence, Incident, PublicReport
from qorgan.web import limits, proof_of_work
from qorgan.web.i18n import translations
from qorgan.web.proof_of_work import ProofOfWork, solve
from qorgan.web.routes import public_report
from qorgan.web.routes.public_report import KIND_LABELS, MESSAGES, PHASE_LABELS, ReportGuard
from qorgan.web.throttle import Throttle

from .conftest import Person, World, csrf_of, password_hash, sign_in

#: Cheap for the tests; the default difficulty is checked once below.
DIFFICULTY = 6
FIELDS = {
    "kind": "fraud-site",
    "reporter_name": "Дана Ермекқызы",
    "email": "dana.private@mail.kz",
    "phone": "+7 705 111 22 33",
    "organisation_involved": "Kaspi Bank",
    "url": "https://cheap-phones.example.kz/pay",
    "period_from": "2026-11-01",
    "period_to": "2026-11-02",
    "description": "I paid for a phone on this site on 1 November; nothing came and the "
    "site stopped answering.",
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """SQLite only: the form's logic does not depend on the database (the service's tests and
    the crash test run on PostgreSQL as well)."""
    return get_settings(database_url=f"sqlite:///{tmp_path / 'qorgan.db'}")


@pytest.fixture
def guard(client: TestClient, world: World) -> ReportGuard:
    """KZ-CERT's organisation, and the form's guard at a low difficulty with roomy windows."""
    with unit_of_work(world.factory) as session:
        accounts.create_organisation(
            session=session, actor="test", name="KZ-CERT", kind=OrganisationKind.cert
        )
    app_state: Any = client.app.state  # type: ignore[attr-defined]
    chosen = ReportGuard(
        proof=ProofOfWork(app_state.qorgan.secret, difficulty=DIFFICULTY),
        per_address=Throttle(1000, 600),
        everyone=Throttle(1000, 600),
    )
    app_state.public_reports = chosen
    return chosen


def _form(client: TestClient) -> str:
    page = client.get("/report")
    assert page.status_code == 200
    return csrf_of(page.text)


def _solved(client: TestClient) -> dict[str, str]:
    challenge = client.get("/report/challenge")
    assert challenge.status_code == 200
    assert challenge.headers["cache-control"] == "no-store"
    issued = challenge.json()
    return {
        "pow_token": issued["token"],
        "pow_solution": solve(issued["token"], issued["difficulty"]),
    }


def _send(
    client: TestClient, csrf: str, proof: dict[str, str] | None = None, **changes: Any
) -> Any:
    files = changes.pop("files", None)
    data = {**FIELDS, "csrf_token": csrf, **(proof or _solved(client)), **changes}
    return client.post("/report", data=data, files=files, follow_redirects=False)


def _alert(page: Any) -> str:
    found = re.search(r'<p class="error" role="alert"[^>]*>([^<]*)</p>', page.text)
    assert found, page.text[:2000]
    return found.group(1).replace("&#39;", "'").replace("&amp;", "&")


def _sentence(message: str) -> str:
    """The message as the page shows it to a visitor of no stated language: in Kazakh."""
    shown = translations("kk").gettext(message)
    return shown[:1].upper() + shown[1:]


def test_a_report_is_sent_followed_and_reaches_the_coordinator(
    client: TestClient, world: World, guard: ReportGuard
) -> None:
    csrf = _form(client)
    sent = _send(
        client,
        csrf,
        files=[
            ("files", ("receipt.pdf", b"%PDF-1.7 receipt", "application/pdf")),
            ("files", ("", b"", "application/octet-stream")),  # an empty file input
        ],
    )
    assert sent.status_code == 303, sent.text
    location = sent.headers["location"]
    tracking = re.fullmatch(
        r"/report/status/(QR-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})\?new=1", location
    )
    assert tracking, location
    number = tracking.group(1)
    page = client.get(location)
    assert page.status_code == 200
    assert f'data-tracking="{number}"' in page.text
    assert 'data-phase="assessment"' in page.text and 'data-closed="no"' in page.text
    kk = translations("kk").gettext  # the visitor's language: Kazakh, the default
    assert f"<strong>{kk(PHASE_LABELS['assessment'])}</strong>" in page.text
    assert kk(KIND_LABELS["fraud-site"]) in page.text
    assert f'href="/report/status/{number}"' in page.text
    # Nothing internal and nothing the reporter typed is shown back.
    for internal in (
        FIELDS["reporter_name"],
        FIELDS["email"],
        FIELDS["phone"],
        "nothing came",
        "cheap-phones",
        "INC-",
        "Reported fraud site",
        "KZ-CERT",
    ):
        assert internal not in page.text, internal
    with unit_of_work(world.factory) as session:
        report = session.scalars(select(PublicReport)).one()
        assert report.tracking == number and report.language == "kk"
        assert (report.reporter_name, report.email) == (FIELDS["reporter_name"], FIELDS["email"])
        assert report.challenge is not None
        incident = session.get(Incident, report.incident_id)
        assert incident is not None and incident.status == "triage"
        files = session.scalars(select(Evidence)).all()
        assert [(f.incident_id, f.name, f.size) for f in files] == [
            (incident.id, "report-file-1.pdf", 16)
        ]
        assert files[0].description == "Sent with a public report as: receipt.pdf"
        root = evidence.store_folder(world.settings.var_dir)
        assert evidence.stored_path(root, files[0].sha256).read_bytes() == b"%PDF-1.7 receipt"
        assert incident.organisation_id == report.organisation_id
        details = " ".join(repr(e.details) for e in session.scalars(select(AuditEntry)))
        assert FIELDS["reporter_name"] not in details and FIELDS["email"] not in details
    # Looking a number up as people type it leads to the same page.
    looked = client.get("/report/status", params={"tracking": number.lower().replace("-", " ")})
    assert looked.status_code == 200 and f'data-tracking="{number}"' in looked.text
    assert "data-phase" not in client.get("/report/status").text


def test_the_coordinator_sees_the_reported_incident(
    client: TestClient, world: World, guard: ReportGuard
) -> None:
    """The report is the coordinator's work: an incident of KZ-CERT's, not of the
    organisations that happen to use the console (A and B see nothing of it)."""
    assert _send(client, _form(client)).status_code == 303
    sign_in(client, world["a.admin"])
    assert "Reported fraud site" not in client.get("/incidents?tab=all").text


def test_the_coordinators_analysts_see_the_reporters_contacts(
    client: TestClient, world: World, guard: ReportGuard
) -> None:
    """Who reported and how to reach them is on the incident for those who work it at
    KZ-CERT; its auditor reads the incident without them."""
    assert _send(client, _form(client)).status_code == 303
    with unit_of_work(world.factory) as session:
        cert = session.scalar(select(Organisation).where(Organisation.name == "KZ-CERT"))
        assert cert is not None
        incident_id = session.scalar(select(Incident.id).where(Incident.organisation_id == cert.id))
        people = {}
        for role in (Role.soc_analyst, Role.auditor):
            user = User(
                organisation_id=cert.id,
                email=f"{role.value}@cert.example.kz",
                display_name=role.value,
                role=role,
                password_hash=password_hash(),
                language="en",
                totp_secret=pyotp.random_base32() if role in accounts.MFA_ROLES else None,
            )
            session.add(user)
            session.flush()
            people[role] = Person(user.id, user.email, role, cert.id, user.totp_secret)
    sign_in(client, people[Role.soc_analyst])
    page = client.get(f"/incidents/{incident_id}").text
    assert FIELDS["reporter_name"] in page and FIELDS["email"] in page and FIELDS["phone"] in page
    client.cookies.clear()
    sign_in(client, people[Role.auditor])
    page = client.get(f"/incidents/{incident_id}")
    assert page.status_code == 200
    assert FIELDS["reporter_name"] not in page.text and FIELDS["email"] not in page.text


def test_a_spent_challenge_is_refused(client: TestClient, guard: ReportGuard) -> None:
    csrf = _form(client)
    proof = _solved(client)
    assert _send(client, csrf, proof).status_code == 303
    again = _send(client, csrf, proof, reporter_name="Someone else")
    assert again.status_code == 400
    assert _alert(again) == _sentence(
        "this form was already sent; reload the page to send another report"
    )
    # What was typed comes back in the form, to be sent again with a new check.
    assert 'value="Someone else"' in again.text


#: Ways to get the proof of work wrong, with the message each gets.
def _flip_last(token: str) -> str:
    return token[:-1] + ("1" if token.endswith("0") else "0")


TAMPERED = [
    (lambda p: {"pow_token": "", "pow_solution": ""}, proof_of_work.MISSING),
    (lambda p: {**p, "pow_solution": ""}, proof_of_work.MISSING),
    # The signature's last character changed (to another one: "0" ends a sixteenth of tokens).
    (lambda p: {**p, "pow_token": _flip_last(p["pow_token"])}, proof_of_work.INVALID),
    (lambda p: {**p, "pow_token": p["pow_token"].replace(".6.", ".1.")}, proof_of_work.INVALID),
    (lambda p: {**p, "pow_token": "v1.x.6.9999999999.abc"}, proof_of_work.INVALID),
    (lambda p: {**p, "pow_token": "garbage"}, proof_of_work.INVALID),
    (lambda p: {**p, "pow_token": "v1." + "x" * 300}, proof_of_work.INVALID),
    (lambda p: {**p, "pow_solution": "-1"}, proof_of_work.INVALID),
    (lambda p: {**p, "pow_solution": "١٢"}, proof_of_work.INVALID),  # digits, not ASCII
    (lambda p: {**p, "pow_solution": "9" * 30}, proof_of_work.INVALID),
]


def test_a_forged_or_missing_challenge_is_refused(
    client: TestClient, world: World, guard: ReportGuard
) -> None:
    csrf = _form(client)
    for tamper, message in TAMPERED:
        refused = _send(client, csrf, tamper(_solved(client)))
        assert refused.status_code == 400
        assert _alert(refused) == _sentence(message)
    with unit_of_work(world.factory) as session:
        assert session.scalar(select(func.count()).select_from(PublicReport)) == 0


def test_a_wrong_solution_and_one_from_another_key_are_refused(
    client: TestClient, guard: ReportGuard
) -> None:
    csrf = _form(client)
    proof = _solved(client)
    wrong = next(
        str(n)
        for n in range(1000)
        if not proof_of_work.solves(proof["pow_token"], str(n), DIFFICULTY)
    )
    assert _alert(_send(client, csrf, {**proof, "pow_solution": wrong})) == _sentence(
        proof_of_work.INVALID
    )
    elsewhere = ProofOfWork(b"another server's secret", difficulty=DIFFICULTY).issue()
    forged = {"pow_token": elsewhere.token, "pow_solution": solve(elsewhere.token, DIFFICULTY)}
    assert _alert(_send(client, csrf, forged)) == _sentence(proof_of_work.INVALID)
    # A challenge easier than the server now asks for is not accepted either.
    app_state: Any = client.app.state  # type: ignore[attr-defined]
    issued = ProofOfWork(app_state.qorgan.secret, difficulty=1).issue()  # the same key
    cheap = {"pow_token": issued.token, "pow_solution": solve(issued.token, 1)}
    assert _alert(_send(client, csrf, cheap)) == _sentence(proof_of_work.INVALID)


def test_an_expired_challenge_is_refused(client: TestClient, guard: ReportGuard) -> None:
    csrf = _form(client)
    proof = _solved(client)
    guard.proof.clock = lambda: time.time() + proof_of_work.LIFETIME + 1
    refused = _send(client, csrf, proof)
    assert refused.status_code == 400
    assert _alert(refused) == _sentence(proof_of_work.EXPIRED)


def test_the_default_difficulty_is_solved_as_the_browser_does(client: TestClient) -> None:
    issued = client.get("/report/challenge").json()
    assert issued["difficulty"] == proof_of_work.DIFFICULTY
    assert issued["expires"] - time.time() == pytest.approx(proof_of_work.LIFETIME, abs=5)
    started = time.perf_counter()
    solution = solve(issued["token"], issued["difficulty"])
    assert proof_of_work.solves(issued["token"], solution, proof_of_work.DIFFICULTY)
    assert time.perf_counter() - started < 30


def test_flooding_from_one_address_is_stopped(
    client: TestClient, world: World, guard: ReportGuard
) -> None:
    guard.per_address = Throttle(*public_report.PER_ADDRESS)
    csrf = _form(client)
    allowed, _window = public_report.PER_ADDRESS
    answers = [
        _send(client, csrf, description=f"Report number {i} of a flood") for i in range(allowed)
    ]
    assert [a.status_code for a in answers] == [303] * allowed
    flooded = _send(client, csrf)
    assert flooded.status_code == 429
    assert 0 < int(flooded.headers["retry-after"]) <= 600
    assert _alert(flooded) == _sentence(public_report.TOO_MANY)
    with unit_of_work(world.factory) as session:
        assert session.scalar(select(func.count()).select_from(PublicReport)) == allowed
    # The refusal comes before the body is read: even a malformed or oversized one.
    assert client.post("/report", content=b"\x00" * 100).status_code == 429


def test_flooding_from_many_addresses_meets_the_cap(client: TestClient, guard: ReportGuard) -> None:
    guard.everyone = Throttle(2, 600)
    csrf = _form(client)
    assert [_send(client, csrf).status_code for _ in range(2)] == [303, 303]
    capped = _send(client, csrf)
    assert capped.status_code == 429 and int(capped.headers["retry-after"]) > 0
    assert _alert(capped) == _sentence(public_report.TOO_MANY_EVERYONE)


def test_oversized_bodies_and_files_are_refused(
    client: TestClient, world: World, guard: ReportGuard
) -> None:
    csrf = _form(client)
    huge = b"x" * (limits.PUBLIC_REPORT_LIMIT + 1)
    refused = client.post(
        "/report", data={**FIELDS, "csrf_token": csrf}, files=[("files", ("big.bin", huge))]
    )
    assert refused.status_code == 413
    assert "larger than" in refused.json()["detail"]
    # A file over its own limit, in a body under the route's: the form says which limit.
    big = b"x" * (reports.MAX_FILE_BYTES + 1)
    too_big = _send(client, csrf, files=[("files", ("big.bin", big))])
    assert too_big.status_code == 400 and _alert(too_big) == _sentence(
        "a file is larger than 4 MiB"
    )
    many = [("files", (f"{i}.txt", b"x", "text/plain")) for i in range(reports.MAX_FILES + 1)]
    too_many = _send(client, csrf, files=many)
    assert too_many.status_code == 400 and _alert(too_many) == _sentence(
        "at most 3 files can be attached"
    )
    flood = [("files", (f"{i}.txt", b"x", "text/plain")) for i in range(50)]
    unreadable = _send(client, csrf, files=flood)
    assert unreadable.status_code == 400 and _alert(unreadable) == _sentence(
        public_report.UNREADABLE
    )
    long_field = _send(client, csrf, description="d" * (public_report.MAX_FIELD_BYTES + 1))
    assert long_field.status_code == 400 and _alert(long_field) == _sentence(
        public_report.UNREADABLE
    )
    with unit_of_work(world.factory) as session:
        assert session.scalar(select(func.count()).select_from(PublicReport)) == 0


#: Malformed fields as a browser sends them, with the message and the field at fault.
MALFORMED = [
    ({"kind": "lottery"}, "choose what you are reporting", "kind"),
    ({"reporter_name": ""}, "a name is required", "reporter_name"),
    ({"email": "not-an-address"}, "the e-mail address is not valid (name@example.kz)", "email"),
    ({"phone": "call me"}, "the phone number is not valid (+7 701 234 56 78)", "phone"),
    (
        {"url": "javascript:alert(1)"},
        "the web address is not valid (https://example.kz/...)",
        "url",
    ),
    ({"period_from": "01.11.2026"}, "not a date (YYYY-MM-DD)", "period_from"),
    ({"period_to": "2026-10-31"}, "the period ends before it begins", "period_to"),
    (
        {"description": "short"},
        "describe what happened (at least 10 characters)",
        "description",
    ),
    ({"reporter_name": "Dana\x00"}, "text cannot contain NUL characters", "reporter_name"),
]


def test_malformed_fields_are_refused_with_their_message(
    client: TestClient, world: World, guard: ReportGuard
) -> None:
    csrf = _form(client)
    for changes, message, field in MALFORMED:
        refused = _send(client, csrf, **changes)
        assert refused.status_code == 400
        assert _alert(refused) == _sentence(message)
        assert f'data-field="{field}"' in refused.text
        assert re.search(rf'name="{field}"[^>]*aria-invalid="true"', refused.text), field
    with unit_of_work(world.factory) as session:
        assert session.scalar(select(func.count()).select_from(PublicReport)) == 0


def test_the_honeypot_and_the_csrf_token_are_checked(
    client: TestClient, guard: ReportGuard
) -> None:
    csrf = _form(client)
    filled = _send(client, csrf, **{public_report.HONEYPOT: "tomorrow 10:00"})
    assert filled.status_code == 400 and _alert(filled) == _sentence(public_report.HONEYPOT_FILLED)
    forged = _send(client, "not-the-token")
    assert forged.status_code == 403 and _alert(forged) == _sentence(public_report.BAD_CSRF)
    assert f'name="{public_report.HONEYPOT}"' in client.get("/report").text


def test_a_signed_in_visitor_may_report_too(
    client: TestClient, world: World, guard: ReportGuard
) -> None:
    sign_in(client, world["a.analyst"])
    csrf = csrf_of(client.get("/report").text)
    assert _send(client, csrf).status_code == 303


def test_without_a_coordinator_the_form_says_so(client: TestClient) -> None:
    app_state: Any = client.app.state  # type: ignore[attr-defined]
    app_state.public_reports = ReportGuard(
        proof=ProofOfWork(app_state.qorgan.secret, difficulty=DIFFICULTY),
        per_address=Throttle(100, 600),
        everyone=Throttle(100, 600),
    )
    refused = _send(client, _form(client))
    assert refused.status_code == 503
    assert _alert(refused) == _sentence(
        "reports cannot be received now: no national coordinator is set up"
    )


def test_an_unknown_tracking_number_is_a_bare_404(client: TestClient, guard: ReportGuard) -> None:
    assert _send(client, _form(client)).status_code == 303
    for tracking in (
        "QR-0000-0000-0000",
        "QR-ZZZZ-ZZZZ-ZZZZ",
        "nonsense",
        "QR-0000-0000-0000-0000",
        "x" * 500,
    ):
        page = client.get(f"/report/status/{tracking}")
        assert page.status_code == 404
        assert _alert(page) == _sentence("no report has this tracking number")
        assert "data-phase" not in page.text and "data-tracking" not in page.text
        looked = client.get("/report/status", params={"tracking": tracking[:64]})
        assert looked.status_code == 404


def test_the_pages_speak_the_visitors_language(client: TestClient, guard: ReportGuard) -> None:
    for language in ("kk", "ru", "en"):
        client.cookies.set("qorgan_lang", language)
        gettext = translations(language).gettext
        form = client.get("/report")
        assert form.headers["content-language"] == language
        assert f'<html lang="{language}">' in form.text
        assert f"<h1>{gettext('Report an incident')}</h1>" in form.text
        assert gettext(KIND_LABELS["pyramid-scheme"]) in form.text
        assert '<script src="/static/report.js" defer></script>' in form.text
        sent = _send(client, csrf_of(form.text))
        status = client.get(sent.headers["location"])
        assert gettext(PHASE_LABELS["assessment"]) in status.text
    with unit_of_work_of(client) as session:
        stored = session.scalars(select(PublicReport.language).order_by(PublicReport.id)).all()
    assert stored == ["kk", "ru", "en"]


def unit_of_work_of(client: TestClient) -> Any:
    return unit_of_work(client.app.state.qorgan.factory)  # type: ignore[attr-defined]


def test_every_refusal_is_a_marked_message() -> None:
    """Each message the service, the proof of work and the route can show is marked for
    translation, so the catalogues carry it in Kazakh and Russian."""
    source = Path(reports.__file__).read_text(encoding="utf-8")
    written = set(re.findall(r'(?:ReportError|NoCoordinator|ReportNotFound)\(\s*"([^"]+)"', source))
    assert len(written) >= 25, written
    assert written <= MESSAGES, written - MESSAGES
    assert {proof_of_work.MISSING, proof_of_work.INVALID, proof_of_work.EXPIRED} <= MESSAGES
    assert set(KIND_LABELS) == set(reports.KINDS)
    assert set(PHASE_LABELS) == set(reports.PUBLIC_PHASES.values())
    # The route's body limit holds the files at their limit and the fields around them.
    files = reports.MAX_FILES * reports.MAX_FILE_BYTES
    assert files < limits.PUBLIC_REPORT_LIMIT <= files + (1 << 20)


def test_the_script_is_served_and_uses_no_third_party() -> None:
    script = (Path(public_report.__file__).parents[1] / "static" / "report.js").read_text()
    assert "crypto.subtle" in script and "/report/challenge" in script
    assert not re.search(r"https?://", script)
