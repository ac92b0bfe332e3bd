"""The public report form (no account): a citizen or an organisation reports an incident, a
phishing or fraud site or a pyramid scheme, gets a tracking number and follows the status.

Anti-abuse needs no third-party service: a sliding window per client address and one for
everyone (:data:`PER_ADDRESS`, :data:`EVERYONE`, checked before the body is read), a body
limit for the route (``web.limits``), a field people leave empty (a honeypot), and a
proof-of-work challenge the page's script solves (``web.proof_of_work``, ``static/report.js``)
whose id the report keeps, so a solved challenge is spent once. The windows live in the
serving process's memory, like the sign-in throttle's.

A report is acknowledged (redirected to its status page) only after its unit of work
committed: the report and its incident are durable together or not at all, and its files
(the incident's evidence) were fsynced before.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from qorgan.core.db import unit_of_work
from qorgan.incidents import evidence, reports
from qorgan.web.deps import PRE_SESSION_COOKIE, SESSION_COOKIE, check_csrf, state, work_calendar
from qorgan.web.i18n import _l
from qorgan.web.proof_of_work import ProofError, ProofOfWork
from qorgan.web.templating import render, request_language
from qorgan.web.throttle import Throttle

router = APIRouter(include_in_schema=False)

#: Reports one client address may send (accepted or not) per window, and all addresses
#: together: a flood from many addresses cannot bury the coordinator either.
PER_ADDRESS = (5, 600.0)
EVERYONE = (200, 600.0)
#: The form's fields as the parser takes them (the description is the longest: 20,000
#: characters of up to 4 bytes each).
MAX_FIELDS = 30
MAX_FIELD_BYTES = 128 << 10
#: The field people never see nor fill; a program filling every field does.
HONEYPOT = "contact_time"

KIND_LABELS = {
    "incident": _l("A cyber incident: an attack, a break-in, a leak of data"),
    "phishing-site": _l("A phishing site (it imitates a bank, a shop or a public body)"),
    "fraud-site": _l("A fraud site (it takes money and gives nothing)"),
    "pyramid-scheme": _l("A financial pyramid scheme"),
    "other": _l("Something else"),
}
PHASE_LABELS = {
    "received": _l("Received"),
    "assessment": _l("Being assessed by the coordinator"),
    "response": _l("Being dealt with"),
    "closed": _l("Closed"),
}
#: Every message a refusal can show, marked for translation: the service's
#: (``qorgan.incidents.reports``), the proof of work's and the form's own.
MESSAGES = frozenset(
    {
        _l("text cannot contain NUL characters"),
        _l("text cannot contain unpaired surrogate characters"),
        _l("text cannot contain control characters"),
        _l("not a date (YYYY-MM-DD)"),
        _l("a web address has at most 2,000 characters"),
        _l("the web address is not valid (https://example.kz/...)"),
        _l("a file is empty"),
        _l("a file is larger than 4 MiB"),
        _l("choose what you are reporting"),
        _l("a name is required"),
        _l("a name has at most 200 characters"),
        _l("an e-mail address has at most 254 characters"),
        _l("the e-mail address is not valid (name@example.kz)"),
        _l("the phone number is not valid (+7 701 234 56 78)"),
        _l("give an e-mail address or a phone number, so that the coordinator can reach you"),
        _l("the organisation's name has at most 300 characters"),
        _l("give the site's web address"),
        _l("name the scheme's organisation or give its web address"),
        _l("a date must be between 2000-01-01 and today"),
        _l("the period ends before it begins"),
        _l("describe what happened (at least 10 characters)"),
        _l("a description has at most 20,000 characters"),
        _l("at most 3 files can be attached"),
        _l("the anti-spam check is not valid; reload the page"),
        _l("this form was already sent; reload the page to send another report"),
        _l("reports cannot be received now: no national coordinator is set up"),
        _l("no report has this tracking number"),
        # web.proof_of_work's (MISSING, INVALID, EXPIRED: a test keeps them the same).
        _l("the anti-spam check is missing: this form needs JavaScript"),
        _l("the anti-spam check is not valid; reload the page and send the form again"),
        _l("the anti-spam check has expired; send the form again"),
    }
)
TOO_MANY = _l("Too many reports from your address. Wait a few minutes and try again.")
TOO_MANY_EVERYONE = _l(
    "The form is receiving too many reports just now. Wait a few minutes and try again."
)
UNREADABLE = _l(
    "The form could not be read: too many files or fields, or a field too long. "
    "Check the form and send it again."
)
HONEYPOT_FILLED = _l(
    "A field that people leave empty was filled in, as programs do. "
    "Reload the page and send the form again."
)
BAD_CSRF = _l("The page has expired. Reload it and send the form again.")
#: The form's fields (what is given back to the page after a refusal).
FIELDS = (
    "kind",
    "reporter_name",
    "email",
    "phone",
    "organisation_involved",
    "url",
    "period_from",
    "period_to",
    "description",
)


@dataclass
class ReportGuard:
    """The public form's protection: the proof of work and the two windows."""

    proof: ProofOfWork
    per_address: Throttle
    everyone: Throttle

    @classmethod
    def for_secret(cls, secret: bytes) -> ReportGuard:
        return cls(
            proof=ProofOfWork(secret),
            per_address=Throttle(*PER_ADDRESS),
            everyone=Throttle(*EVERYONE),
        )


_GUARD_LOCK = threading.Lock()


def guard(request: Request) -> ReportGuard:
    """The application's guard (``app.state.public_reports``), made on first use."""
    app_state = request.app.state
    found: ReportGuard | None = getattr(app_state, "public_reports", None)
    if found is None:
        with _GUARD_LOCK:
            found = getattr(app_state, "public_reports", None)
            if found is None:
                found = ReportGuard.for_secret(state(request).secret)
                app_state.public_reports = found
    return found


def _form_page(
    request: Request,
    *,
    values: dict[str, str] | None = None,
    error: str | None = None,
    error_field: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "report.html",
        {
            "kinds": KIND_LABELS,
            "values": values or {},
            "error": error,
            "error_field": error_field,
            "honeypot": HONEYPOT,
            "max_files": reports.MAX_FILES,
            "max_file_mib": reports.MAX_FILE_BYTES >> 20,
            "max_description": reports.MAX_DESCRIPTION,
        },
        status_code=status_code,
    )


@router.get("/report")
def report_page(request: Request) -> Response:
    """The form; the page's script fetches and solves a challenge before it is sent."""
    return _form_page(request)


@router.get("/report/challenge")
def challenge(request: Request) -> Response:
    """A fresh proof-of-work challenge (JSON): token, difficulty, expiry (Unix time)."""
    issued = guard(request).proof.issue()
    return JSONResponse(
        {"token": issued.token, "difficulty": issued.difficulty, "expires": issued.expires}
    )


def _throttled(request: Request) -> Response | None:
    """The form with 429 and Retry-After when this address, or everyone, sent too many."""
    address = request.client.host if request.client else "unknown"
    checks = guard(request)
    for throttle, key, message in (
        (checks.per_address, address, TOO_MANY),
        (checks.everyone, "*", TOO_MANY_EVERYONE),
    ):
        if not throttle.allow(key):
            response = _form_page(request, error=message, status_code=429)
            response.headers["Retry-After"] = str(throttle.retry_after(key))
            return response
    return None


async def _csrf_valid(request: Request) -> bool:
    """The anonymous form's CSRF token: bound to the pre-session nonce, or to the session
    cookie a visitor who is (or was) signed in holds (as the sign-in forms accept it)."""
    nonce = request.cookies.get(PRE_SESSION_COOKIE)
    for bound in (request.cookies.get(SESSION_COOKIE), f"pre:{nonce}" if nonce else None):
        if bound is None:
            continue
        try:
            await check_csrf(request, bound)
            return True
        except HTTPException:
            continue
    return False


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


async def _attachments(form: FormData) -> tuple[reports.Attachment, ...]:
    """The files chosen (an empty file input sends an unnamed empty part: skipped); each is
    read up to one byte over the limit, which the service refuses."""
    found = []
    for item in form.getlist("files"):
        if not isinstance(item, UploadFile) or (not item.filename and not item.size):
            continue
        content = await item.read(reports.MAX_FILE_BYTES + 1)
        found.append(
            reports.Attachment(
                item.filename or "", item.content_type or "application/octet-stream", content
            )
        )
    return tuple(found)


def _submit(request: Request, submission: reports.Submission, challenge_id: str) -> str:
    """Store the report in its own unit of work (blocking: run in the thread pool); the
    tracking number is returned only once it is committed."""
    calendar = work_calendar(request)
    app = state(request)
    with unit_of_work(app.factory) as session:
        return reports.submit(
            session=session,
            submission=submission,
            calendar=calendar,
            store_root=evidence.store_folder(app.settings.var_dir),
            challenge=challenge_id,
        )


@router.post("/report")
async def send_report(request: Request) -> Response:
    """Check the address's and everyone's windows before reading the body, then the form's
    CSRF token, the honeypot and the proof of work; store the report and redirect to its
    status page."""
    refused = _throttled(request)
    if refused is not None:
        return refused
    try:
        # One file over the limit is the service's to refuse with its own message.
        form = await request.form(
            max_files=reports.MAX_FILES + 1, max_fields=MAX_FIELDS, max_part_size=MAX_FIELD_BYTES
        )
    except StarletteHTTPException:  # the parser's refusal (FastAPI's is a subclass)
        return _form_page(request, error=UNREADABLE, status_code=400)
    try:
        return await _received(request, form)
    finally:
        await form.close()  # the uploaded files' temporary files


async def _received(request: Request, form: FormData) -> Response:
    values = {name: _text(form, name) for name in FIELDS}
    if not await _csrf_valid(request):
        return _form_page(request, values=values, error=BAD_CSRF, status_code=403)
    if _text(form, HONEYPOT):
        return _form_page(request, values=values, error=HONEYPOT_FILLED, status_code=400)
    try:
        challenge_id = guard(request).proof.verify(
            _text(form, "pow_token"), _text(form, "pow_solution")
        )
    except ProofError as exc:
        return _form_page(request, values=values, error=str(exc), status_code=400)
    try:
        submission = reports.Submission(
            kind=values["kind"],
            reporter_name=values["reporter_name"],
            description=values["description"],
            email=values["email"],
            phone=values["phone"],
            organisation_involved=values["organisation_involved"],
            url=values["url"],
            period_from=reports.parse_date(values["period_from"], "period_from"),
            period_to=reports.parse_date(values["period_to"], "period_to"),
            language=request_language(request),
            attachments=await _attachments(form),
        )
        tracking = await run_in_threadpool(_submit, request, submission, challenge_id)
    except reports.NoCoordinator as exc:
        return _form_page(request, values=values, error=exc.message, status_code=503)
    except reports.ReportError as exc:
        return _form_page(
            request, values=values, error=exc.message, error_field=exc.field, status_code=400
        )
    return RedirectResponse(f"/report/status/{tracking}?new=1", status_code=303)


@router.get("/report/status")
def status_lookup(
    request: Request, tracking: Annotated[str, Query(max_length=64)] = ""
) -> Response:
    """The page to enter a tracking number; a number given goes to its status page."""
    if tracking.strip():
        wanted = reports.normalise_tracking(tracking) or "unknown"
        return RedirectResponse(f"/report/status/{wanted}", status_code=303)
    return render(request, "report_status.html", {"report": None})


def _status(request: Request, tracking: str) -> reports.ReportStatus:
    with unit_of_work(state(request).factory) as session:
        return reports.status(session=session, tracking=tracking)


@router.get("/report/status/{tracking}")
async def status_page(request: Request, tracking: str, new: str = "") -> Response:
    """A report's status: its number, kind, when it was sent and its phase in words. An
    unknown number is a 404 that says only that."""
    try:
        found = await run_in_threadpool(_status, request, tracking[:64])
    except reports.ReportNotFound:
        return render(
            request,
            "report_status.html",
            {"report": None, "error": _l("no report has this tracking number")},
            status_code=404,
        )
    context: dict[str, Any] = {
        "report": found,
        "new": bool(new),
        "kind_label": KIND_LABELS[found.kind],
        "phase_label": PHASE_LABELS[found.phase],
        "phases": PHASE_LABELS,
    }
    return render(request, "report_status.html", context)
