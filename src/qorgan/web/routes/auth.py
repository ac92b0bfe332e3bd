"""Signing in (password, then a TOTP code or recovery code, or enrolling one), signing out,
and choosing the interface language."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

import segno
from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from qorgan.core import accounts, audit, security, sessions
from qorgan.core.i18n import LANGUAGES
from qorgan.core.models import SessionStage
from qorgan.core.settings import Environment
from qorgan.web.deps import (
    LANGUAGE_COOKIE,
    PRE_SESSION_COOKIE,
    SESSION_COOKIE,
    Db,
    check_csrf,
    cookie_session,
    state,
)
from qorgan.web.i18n import _l
from qorgan.web.templating import render

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


def _safe_next(target: str | None) -> str:
    """Only local paths: never redirect to another site after sign-in."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _throttled(request: Request, template: str, **context: object) -> Response | None:
    """The page again with status 429 when this address has made too many attempts."""
    address = request.client.host if request.client else "unknown"
    throttle = state(request).throttle
    if throttle.allow(address):
        return None
    request.app.state.metrics.logins.labels("throttled").inc()
    response = render(
        request,
        template,
        {"error": _l("Too many attempts from your address. Wait a few minutes and try again."),
         **context},
        status_code=429,
    )  # fmt: skip
    response.headers["Retry-After"] = str(throttle.retry_after(address))
    return response


async def _check_pre_csrf(request: Request) -> None:
    await check_csrf(request, "pre:" + request.cookies.get(PRE_SESSION_COOKIE, ""))


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", {"next": _safe_next(next)})


@router.post("/login")
async def login(
    request: Request,
    db: Db,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form()] = "/",
) -> Response:
    await _check_pre_csrf(request)
    refused = _throttled(request, "login.html", email=email, next=_safe_next(next))
    if refused is not None:
        return refused
    # Argon2 takes a good part of a second of CPU on purpose: never on the event loop.
    result = await run_in_threadpool(accounts.sign_in, session=db, email=email, password=password)
    outcome = result.outcome
    request.app.state.metrics.logins.labels(str(outcome)).inc()
    if outcome in (accounts.Outcome.bad_credentials, accounts.Outcome.locked):
        db.commit()  # the failure counts towards the lockout
        error = (
            _l("This account is locked after repeated failures. Try again later.")
            if outcome is accounts.Outcome.locked
            else _l("Wrong e-mail or password.")
        )
        return render(
            request,
            "login.html",
            {"error": error, "email": email, "next": _safe_next(next)},
            status_code=401,
        )
    assert result.user is not None
    stage = {
        accounts.Outcome.ok: SessionStage.full,
        accounts.Outcome.second_factor_needed: SessionStage.second_factor,
        accounts.Outcome.enrolment_needed: SessionStage.enrolment,
    }[outcome]
    token = sessions.start(session=db, user=result.user, stage=stage)
    db.commit()
    target = {
        SessionStage.full: _safe_next(next),
        SessionStage.second_factor: "/login/second-factor",
        SessionStage.enrolment: "/login/enrol",
    }[stage]
    response = RedirectResponse(target, status_code=303)
    _set_session_cookie(request, response, token)
    if result.user.language in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, result.user.language, max_age=YEAR, samesite="lax")
    return response


def _pending(request: Request, db: Db, stage: SessionStage) -> sessions.Current:
    current = cookie_session(request, db)
    if current is None or current.session.stage is not stage:
        db.commit()
        raise HTTPException(303, headers={"Location": "/login"})
    request.state.pending_token = request.cookies[SESSION_COOKIE]
    return current


@router.get("/login/second-factor")
def second_factor_page(request: Request, db: Db) -> Response:
    _pending(request, db, SessionStage.second_factor)
    db.commit()
    return render(request, "second_factor.html")


@router.post("/login/second-factor")
async def second_factor(
    request: Request, db: Db, code: Annotated[str, Form(max_length=64)]
) -> Response:
    current = await run_in_threadpool(_pending, request, db, SessionStage.second_factor)
    await check_csrf(request, request.cookies[SESSION_COOKIE])
    refused = _throttled(request, "second_factor.html")
    if refused is not None:
        return refused
    result = await run_in_threadpool(
        accounts.complete_second_factor, session=db, user=current.user, code=code
    )
    request.app.state.metrics.logins.labels(f"second_factor_{result.outcome}").inc()
    if result.outcome is not accounts.Outcome.ok:
        if result.outcome is accounts.Outcome.locked:
            sessions.end(session=db, token=request.cookies[SESSION_COOKIE])
        db.commit()
        error = (
            _l("This account is locked after repeated failures. Try again later.")
            if result.outcome is accounts.Outcome.locked
            else _l("The code is not right. Check the authenticator app and try again.")
        )
        return render(request, "second_factor.html", {"error": error}, status_code=401)
    token = sessions.promote(session=db, current=current.session)
    db.commit()
    response = RedirectResponse("/", status_code=303)
    _set_session_cookie(request, response, token)
    return response


def _qr_data_uri(uri: str) -> str:
    """The otpauth:// URI as a PNG QR code, inline (nothing leaves the server)."""
    return str(segno.make(uri, error="m").png_data_uri(scale=5, dark="#0b1f33", light="#ffffff"))


@router.get("/login/enrol")
def enrol_page(request: Request, db: Db) -> Response:
    current = _pending(request, db, SessionStage.enrolment)
    if current.session.pending_totp is None:
        secret, _uri = accounts.start_totp(current.user)
        current.session.pending_totp = secret
    secret = current.session.pending_totp
    db.commit()
    uri = security.totp_uri(secret, current.user.email)
    return render(request, "enrol.html", {"secret": secret, "qr": _qr_data_uri(uri)})


@router.post("/login/enrol")
async def enrol(request: Request, db: Db, code: Annotated[str, Form(max_length=64)]) -> Response:
    current = await run_in_threadpool(_pending, request, db, SessionStage.enrolment)
    await check_csrf(request, request.cookies[SESSION_COOKIE])
    secret = current.session.pending_totp
    if secret is None:
        return RedirectResponse("/login/enrol", status_code=303)
    try:
        codes = accounts.confirm_totp(session=db, user=current.user, secret=secret, code=code)
    except accounts.AccountError:
        db.rollback()
        uri = security.totp_uri(secret, current.user.email)
        return render(
            request,
            "enrol.html",
            {
                "secret": secret,
                "qr": _qr_data_uri(uri),
                "error": _l("The code is not right. Check the authenticator app and try again."),
            },
            status_code=400,
        )
    accounts.signed_in(db, current.user)
    token = sessions.promote(session=db, current=current.session)
    db.commit()
    response = render(request, "recovery_codes.html", {"codes": codes})
    _set_session_cookie(request, response, token)
    return response


@router.post("/logout")
async def logout(request: Request, db: Db) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    current = await run_in_threadpool(cookie_session, request, db)
    if current is not None and token:
        await check_csrf(request, token)
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
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


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
    if current is not None and current.session.stage is SessionStage.full:
        await check_csrf(request, request.cookies[SESSION_COOKIE])
        if current.user.language != language:
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
    else:
        token = request.cookies.get(SESSION_COOKIE)
        if current is not None and token:
            await check_csrf(request, token)
        else:
            await _check_pre_csrf(request)
    db.commit()
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(LANGUAGE_COOKIE, language, max_age=YEAR, samesite="lax")
    return response
