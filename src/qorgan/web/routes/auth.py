"""Signing in (password, then a TOTP code or recovery code, or enrolling one), signing out,
and choosing the interface language. Citizens sign in to the personal-data portal with their
IIN instead of an e-mail address (``/citizen/login``), then go through the same second-factor
and enrolment stages.

Every database write (and Argon2) runs in the thread pool; the event loop only checks CSRF
tokens, which may need to read the form, and renders.
"""

from __future__ import annotations

import time
from typing import Annotated
from urllib.parse import urlsplit

import segno
from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from qorgan.core import accounts, audit, security, sessions
from qorgan.core.db import unit_of_work
from qorgan.core.i18n import LANGUAGES
from qorgan.core.identifiers import IdentifierError
from qorgan.core.models import SessionStage
from qorgan.core.settings import Environment
from qorgan.privacy import identity
from qorgan.privacy.protection import protection
from qorgan.web.deps import (
    LANGUAGE_COOKIE,
    PRE_SESSION_COOKIE,
    SESSION_COOKIE,
    Db,
    check_csrf,
    cookie_session,
    state,
)
from qorgan.web.i18n import _l, translations
from qorgan.web.privacy_labels import refusal
from qorgan.web.templating import render, request_language
from qorgan.web.throttle import over_limit

router = APIRouter(include_in_schema=False)
YEAR = 365 * 24 * 3600


def _secure(request: Request) -> bool:
    return state(request).settings.environment is Environment.production


def _set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        max_age=int(sessions.LIFETIME.total_seconds()),
    )


def _set_language_cookie(request: Request, response: Response, language: str) -> None:
    # Not secret, but marked Secure like every cookie in production (HTTPS only).
    response.set_cookie(
        LANGUAGE_COOKIE, language, max_age=YEAR, samesite="lax", secure=_secure(request)
    )


def _safe_next(target: str | None) -> str:
    """Only local paths: never redirect to another site after sign-in."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


#: Expired sessions are deleted at a sign-in, at most this often (seconds) per process.
PURGE_EVERY = 60.0
LOCKED = _l("This account is locked after repeated failures. Try again later.")
WRONG_CODE = _l("The code is not right. Check the authenticator app and try again.")


def _throttled(request: Request, template: str, **context: object) -> Response | None:
    """The page again with status 429 when this address has made too many attempts."""
    wait = over_limit(request)
    if wait is None:
        return None
    response = render(
        request,
        template,
        {"error": _l("Too many attempts from your address. Wait a few minutes and try again."),
         **context},
        status_code=429,
    )  # fmt: skip
    response.headers["Retry-After"] = str(wait)
    return response


async def _check_pre_csrf(request: Request) -> None:
    """The CSRF token of a form shown before sign-in: bound to the pre-session nonce, or to the
    session cookie the browser still holds when that session expired, ended or is half done
    (the page derived the token from that cookie). Either is an HttpOnly secret."""
    stale = request.cookies.get(SESSION_COOKIE)
    if stale:
        try:
            await check_csrf(request, stale)
            return
        except HTTPException:
            pass
    await check_csrf(request, "pre:" + request.cookies.get(PRE_SESSION_COOKIE, ""))


def _purge_sessions(request: Request) -> None:
    """Delete expired sessions, at most once a minute, in a transaction of its own (blocking:
    called from the thread pool)."""
    app = state(request)
    moment = time.monotonic()
    if moment - app.sessions_purged_at < PURGE_EVERY:
        return
    app.sessions_purged_at = moment
    with unit_of_work(app.factory) as session:
        sessions.purge(session=session)


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", {"next": _safe_next(next)})


STAGES = {
    accounts.Outcome.ok: SessionStage.full,
    accounts.Outcome.second_factor_needed: SessionStage.second_factor,
    accounts.Outcome.enrolment_needed: SessionStage.enrolment,
}


def _sign_in(
    request: Request, db: Db, email: str, password: str, organisation: int | None
) -> tuple[accounts.SignIn, str | None]:
    """Check the password (Argon2: a good part of a second of CPU on purpose) and start the
    session; blocking, so run in the thread pool. Returns the outcome and the session token."""
    _purge_sessions(request)
    result = accounts.sign_in(
        session=db, email=email, password=password, organisation_id=organisation
    )
    token = None
    stage = STAGES.get(result.outcome)
    if stage is not None:
        assert result.user is not None
        token = sessions.start(session=db, user=result.user, stage=stage)
    db.commit()  # a failure counts towards the lockout
    return result, token


@router.post("/login")
async def login(
    request: Request,
    db: Db,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form()] = "/",
    organisation: Annotated[int | None, Form(ge=1, le=2**31 - 1)] = None,
) -> Response:
    await _check_pre_csrf(request)
    refused = _throttled(request, "login.html", email=email, next=_safe_next(next))
    if refused is not None:
        return refused
    result, token = await run_in_threadpool(_sign_in, request, db, email, password, organisation)
    outcome = result.outcome
    request.app.state.metrics.logins.labels(str(outcome)).inc()
    if outcome is accounts.Outcome.choose_organisation:
        # The password matched accounts in several organisations: the page asks which, and
        # the password again (it is never kept between requests).
        return render(
            request,
            "login.html",
            {"email": email, "next": _safe_next(next), "organisations": result.organisations},
        )
    if token is None:
        error = LOCKED if outcome is accounts.Outcome.locked else _l("Wrong e-mail or password.")
        return render(
            request,
            "login.html",
            {"error": error, "email": email, "next": _safe_next(next)},
            status_code=401,
        )
    assert result.user is not None
    stage = STAGES[outcome]
    target = {
        SessionStage.full: _safe_next(next),
        SessionStage.second_factor: "/login/second-factor",
        SessionStage.enrolment: "/login/enrol",
    }[stage]
    response = RedirectResponse(target, status_code=303)
    _set_session_cookie(request, response, token)
    if result.user.language in LANGUAGES:
        _set_language_cookie(request, response, result.user.language)
    return response


# --------------------------------------------------------------------------- citizens

#: Where a citizen lands once signed in.
CITIZEN_HOME = "/citizen"
WRONG_IIN = _l("Wrong IIN or password.")


@router.get("/citizen/login")
def citizen_login_page(request: Request) -> Response:
    return render(request, "citizen_login.html")


def begin_citizen_session(db: Db, result: accounts.SignIn) -> str | None:
    """Where every way a citizen proves who they are ends (:mod:`qorgan.privacy.identity`:
    the IIN and password form now; eGov's OpenID Connect callback when it is added): a session
    at the stage the outcome calls for (second factor, enrolment, or signed in), committed
    with the failures counted. Returns the session's token, or None when refused."""
    token = None
    stage = STAGES.get(result.outcome)
    if stage is not None:
        assert result.user is not None
        token = sessions.start(session=db, user=result.user, stage=stage)
    db.commit()  # a failure counts towards the lockout
    return token


def _citizen_sign_in(
    request: Request, db: Db, iin: str, password: str
) -> tuple[accounts.SignIn | None, str | None, str | None]:
    """Check the IIN, then the password (Argon2, also for an unknown IIN); blocking. Returns
    the outcome, the session's token and, for a malformed IIN, the reason (nothing checked)."""
    _purge_sessions(request)
    keys = protection(state(request).settings)
    try:
        result = identity.PASSWORD.identify(
            session=db, protection=keys, proof={"iin": iin, "password": password}
        )
    except IdentifierError as exc:
        db.rollback()
        return None, None, exc.message
    return result, begin_citizen_session(db, result), None


@router.post("/citizen/login")
async def citizen_login(
    request: Request,
    db: Db,
    iin: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
) -> Response:
    await _check_pre_csrf(request)
    iin = "".join(iin.split())  # 12 digits, often typed in groups
    refused = _throttled(request, "citizen_login.html", iin=iin)
    if refused is not None:
        return refused
    result, token, malformed = await run_in_threadpool(_citizen_sign_in, request, db, iin, password)
    if result is None:
        assert malformed is not None
        gettext = translations(request_language(request)).gettext
        context = {"error": refusal(malformed, gettext), "iin": iin}
        return render(request, "citizen_login.html", context, status_code=400)
    request.app.state.metrics.logins.labels(f"citizen_{result.outcome}").inc()
    if token is None:
        # An unknown IIN and a wrong password: the same answer, after the same Argon2 work.
        error = LOCKED if result.outcome is accounts.Outcome.locked else WRONG_IIN
        return render(request, "citizen_login.html", {"error": error, "iin": iin}, status_code=401)
    assert result.user is not None
    target = {
        SessionStage.full: CITIZEN_HOME,
        SessionStage.second_factor: "/login/second-factor",
        SessionStage.enrolment: "/login/enrol",
    }[STAGES[result.outcome]]
    response = RedirectResponse(target, status_code=303)
    _set_session_cookie(request, response, token)
    if result.user.language in LANGUAGES:
        _set_language_cookie(request, response, result.user.language)
    return response


def _pending(request: Request, db: Db, stage: SessionStage) -> sessions.Current:
    current = cookie_session(request, db)
    if current is None or current.session.stage is not stage:
        db.commit()
        raise HTTPException(303, headers={"Location": "/login"})
    request.state.pending_token = request.cookies[SESSION_COOKIE]
    return current


def _locked_out(db: Db, result: accounts.SignIn, user_id: int) -> None:
    """A lockout reached at a second-factor check ends every session of the user: whoever
    guesses there already holds the password or a session."""
    if result.outcome is accounts.Outcome.locked:
        sessions.end_all(session=db, user_id=user_id)


@router.get("/login/second-factor")
def second_factor_page(request: Request, db: Db) -> Response:
    _pending(request, db, SessionStage.second_factor)
    db.commit()
    return render(request, "second_factor.html")


def _complete_second_factor(
    db: Db, current: sessions.Current, code: str
) -> tuple[accounts.SignIn, str | None]:
    result = accounts.complete_second_factor(session=db, user=current.user, code=code)
    token = None
    if result.outcome is accounts.Outcome.ok:
        token = sessions.promote(session=db, current=current.session)
    else:
        _locked_out(db, result, current.user.id)
    db.commit()  # a failure counts towards the lockout
    return result, token


@router.post("/login/second-factor")
async def second_factor(
    request: Request, db: Db, code: Annotated[str, Form(max_length=64)]
) -> Response:
    current = await run_in_threadpool(_pending, request, db, SessionStage.second_factor)
    await check_csrf(request, request.cookies[SESSION_COOKIE])
    refused = _throttled(request, "second_factor.html")
    if refused is not None:
        return refused
    result, token = await run_in_threadpool(_complete_second_factor, db, current, code)
    request.app.state.metrics.logins.labels(f"second_factor_{result.outcome}").inc()
    if token is None:
        error = LOCKED if result.outcome is accounts.Outcome.locked else WRONG_CODE
        return render(request, "second_factor.html", {"error": error}, status_code=401)
    response = RedirectResponse("/", status_code=303)
    _set_session_cookie(request, response, token)
    return response


def _qr_data_uri(uri: str) -> str:
    """The otpauth:// URI as a PNG QR code, inline (nothing leaves the server)."""
    return str(segno.make(uri, error="m").png_data_uri(scale=5, dark="#0b1f33", light="#ffffff"))


def _enrol_context(current: sessions.Current, secret: str) -> dict[str, object]:
    uri = security.totp_uri(secret, current.user.email)
    return {"secret": secret, "qr": _qr_data_uri(uri)}


@router.get("/login/enrol")
def enrol_page(request: Request, db: Db) -> Response:
    current = _pending(request, db, SessionStage.enrolment)
    if current.session.pending_totp is None:
        secret, _uri = accounts.start_totp(current.user)
        current.session.pending_totp = secret
    secret = current.session.pending_totp
    db.commit()
    return render(request, "enrol.html", _enrol_context(current, secret))


def _enrol(
    db: Db, current: sessions.Current, secret: str, code: str
) -> tuple[accounts.SignIn, list[str], str | None]:
    """Confirm the new second factor and sign in; the outcome, the recovery codes (shown once)
    and the full session's token."""
    try:
        codes = accounts.confirm_totp(session=db, user=current.user, secret=secret, code=code)
    except accounts.SecondFactorFailed as exc:
        _locked_out(db, exc.result, current.user.id)
        db.commit()  # the failure counts towards the lockout
        return exc.result, [], None
    except accounts.AccountError:  # set up meanwhile by a request sent at the same time
        db.rollback()
        return accounts.SignIn(accounts.Outcome.bad_credentials), [], None
    result = accounts.signed_in(db, current.user)
    if result.outcome is not accounts.Outcome.ok:  # locked meanwhile: nothing is kept
        db.rollback()
        return result, [], None
    token = sessions.promote(session=db, current=current.session)
    db.commit()
    return result, codes, token


@router.post("/login/enrol")
async def enrol(request: Request, db: Db, code: Annotated[str, Form(max_length=64)]) -> Response:
    current = await run_in_threadpool(_pending, request, db, SessionStage.enrolment)
    await check_csrf(request, request.cookies[SESSION_COOKIE])
    secret = current.session.pending_totp
    if secret is None:
        return RedirectResponse("/login/enrol", status_code=303)
    context = await run_in_threadpool(_enrol_context, current, secret)
    refused = _throttled(request, "enrol.html", **context)
    if refused is not None:
        return refused
    result, codes, token = await run_in_threadpool(_enrol, db, current, secret, code)
    request.app.state.metrics.logins.labels(f"enrolment_{result.outcome}").inc()
    if token is None:
        if result.outcome is accounts.Outcome.locked:
            return render(request, "enrol.html", {**context, "error": LOCKED}, status_code=401)
        return render(request, "enrol.html", {**context, "error": WRONG_CODE}, status_code=400)
    response = render(request, "recovery_codes.html", {"codes": codes})
    _set_session_cookie(request, response, token)
    return response


def _sign_out(db: Db, current: sessions.Current | None, token: str | None) -> None:
    if current is not None and token:
        audit.record(
            "auth.logout",
            session=db,
            actor=str(current.user.id),
            organisation_id=current.user.organisation_id,
            target_type="user",
            target_id=current.user.id,
        )
        sessions.end(session=db, token=token)
    db.commit()


@router.post("/logout")
async def logout(request: Request, db: Db) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    current = await run_in_threadpool(cookie_session, request, db)
    if current is not None and token:
        await check_csrf(request, token)
    await run_in_threadpool(_sign_out, db, current, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


def _store_language(db: Db, current: sessions.Current | None, language: str) -> None:
    if current is not None and current.user.language != language:
        current.user.language = language
        audit.record(
            "user.language",
            session=db,
            actor=str(current.user.id),
            organisation_id=current.user.organisation_id,
            target_type="user",
            target_id=current.user.id,
            details={"language": language},
        )
    db.commit()


@router.post("/language")
async def choose_language(
    request: Request,
    db: Db,
    language: Annotated[str, Form(max_length=8)],
    next: Annotated[str, Form()] = "/",
) -> Response:
    if language not in LANGUAGES:
        raise HTTPException(400, "unsupported language")
    current = await run_in_threadpool(cookie_session, request, db)
    token = request.cookies.get(SESSION_COOKIE)
    if current is not None and token:
        await check_csrf(request, token)
    else:
        await _check_pre_csrf(request)
    # Only a full session's user keeps the choice; a half-signed-in one gets the cookie.
    full = current if current is not None and current.session.stage is SessionStage.full else None
    await run_in_threadpool(_store_language, db, full, language)
    response = RedirectResponse(_safe_next(next), status_code=303)
    _set_language_cookie(request, response, language)
    return response
