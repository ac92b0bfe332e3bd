"""The start page, and the account page (password, recovery codes, API tokens, the choice of
notifications, which ``routes/notifications.py`` keeps).

The account page is reached with the signed-in session only (``page_actor`` never accepts an
API token), so a token can neither mint another token nor change its user's credentials."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from qorgan.core import accounts, sessions
from qorgan.core.errors import QorganError
from qorgan.core.models import ApiToken, Role
from qorgan.core.roles import ROLE_PERMISSIONS, Permission
from qorgan.web.deps import SESSION_COOKIE, Actor, Db, RecordId, page_actor
from qorgan.web.i18n import _l
from qorgan.web.routes import notifications
from qorgan.web.templating import render
from qorgan.web.throttle import over_limit

router = APIRouter(include_in_schema=False)
SignedIn = Annotated[Actor, Depends(page_actor())]
TOKEN_DAYS = (30, 90, 365)
TOO_MANY = _l("Too many attempts from your address. Wait a few minutes and try again.")
LOCKED = _l("This account is locked after repeated failures. Try again later.")


@router.get("/")
def home(request: Request, actor: SignedIn) -> Response:
    if actor.can(Permission.alerts_read):
        return RedirectResponse("/alerts", status_code=303)
    if actor.can(Permission.audit_read):
        return RedirectResponse("/audit", status_code=303)
    if actor.user.role is Role.citizen:
        return RedirectResponse("/citizen", status_code=303)
    if actor.can(Permission.privacy_read):
        return RedirectResponse("/privacy", status_code=303)
    if actor.can(Permission.intel_read):  # a partner: threat intelligence is all it has
        return RedirectResponse("/intel", status_code=303)
    return render(request, "home.html")


def _account(
    request: Request, db: Db, actor: Actor, status: int = 200, **extra: object
) -> Response:
    tokens = db.scalars(
        select(ApiToken).where(ApiToken.user_id == actor.user.id).order_by(ApiToken.id.desc())
    ).all()
    scopes = sorted(str(p) for p in ROLE_PERMISSIONS[actor.user.role])
    return render(
        request,
        "account.html",
        {
            "tokens": tokens,
            "scopes": scopes,
            "token_days": TOKEN_DAYS,
            **notifications.account_context(request, db, actor),
            **extra,
        },
        status_code=status,
    )


@router.get("/account")
def account(request: Request, db: Db, actor: SignedIn) -> Response:
    return _account(request, db, actor)


@router.post("/account/password")
def change_password(
    request: Request,
    db: Db,
    actor: SignedIn,
    current: Annotated[str, Form(max_length=1024)],
    new: Annotated[str, Form(max_length=1024)],
) -> Response:
    try:
        revoked = accounts.change_password(session=db, user=actor.user, old=current, new=new)
    except QorganError as exc:
        db.rollback()
        return _account(request, db, actor, password_error=exc.message, status=400)
    # Every other session of the user ends; this one goes on. The API tokens were revoked.
    token = request.cookies.get(SESSION_COOKIE)
    sessions.end_all(session=db, user_id=actor.user.id, keep=token)
    db.commit()
    return _account(
        request, db, actor, message=_l("The password is changed."), revoked_tokens=revoked
    )


def _signed_out(request: Request, error: str) -> Response:
    """The sign-in page, for a user whose sessions just ended. The dead session's cookie
    stays: the page's CSRF token is derived from it, and the sign-in accepts that."""
    request.state.actor = None
    return render(request, "login.html", {"error": error, "next": "/"}, status_code=401)


@router.post("/account/recovery-codes")
def renew_recovery_codes(
    request: Request, db: Db, actor: SignedIn, code: Annotated[str, Form(max_length=64)]
) -> Response:
    # A second-factor check like the sign-in's: throttled per address, failures count towards
    # the lockout, and a lockout reached here ends every session of the user.
    wait = over_limit(request)
    if wait is not None:
        response = _account(request, db, actor, recovery_error=TOO_MANY, status=429)
        response.headers["Retry-After"] = str(wait)
        return response
    try:
        codes = accounts.renew_recovery_codes(session=db, user=actor.user, code=code)
    except accounts.SecondFactorFailed as exc:
        if exc.result.outcome is accounts.Outcome.locked:
            sessions.end_all(session=db, user_id=actor.user.id)
            db.commit()
            return _signed_out(request, LOCKED)
        db.commit()  # the failure counts towards the lockout
        return _account(request, db, actor, recovery_error=exc.message, status=400)
    except QorganError as exc:
        db.rollback()
        return _account(request, db, actor, recovery_error=exc.message, status=400)
    db.commit()
    return render(request, "recovery_codes.html", {"codes": codes})


@router.post("/account/tokens")
def issue_token(
    request: Request,
    db: Db,
    actor: SignedIn,
    name: Annotated[str, Form(min_length=1, max_length=200)],
    scopes: Annotated[list[str], Form()],
    days: Annotated[int, Form()] = 90,
) -> Response:
    # Only a signed-in session reaches this page (never a token), and a token gets at most the
    # permissions of its user's role.
    allowed = {str(p) for p in ROLE_PERMISSIONS[actor.user.role]}
    if not scopes or not set(scopes) <= allowed or days not in TOKEN_DAYS:
        raise HTTPException(400, "choose scopes your role holds and a listed lifetime")
    secret = accounts.issue_token(
        session=db,
        user=actor.user,
        name=name.strip(),
        scopes=sorted(set(scopes)),
        lifetime=timedelta(days=days),
    )
    db.commit()
    return _account(request, db, actor, new_token=secret)


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(request: Request, db: Db, actor: SignedIn, token_id: RecordId) -> Response:
    if not accounts.revoke_token(session=db, user=actor.user, token_id=token_id):
        raise HTTPException(404, _l("no such token"))
    db.commit()
    return RedirectResponse("/account", status_code=303)
