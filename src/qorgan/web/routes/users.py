"""Administrators manage the users of their own organisation: create (with a generated
password shown once), change roles, reset a lost second factor, lift a lockout.

A new user has no preselected role: the least privileged console role (auditor) still reads
alerts, with their personal data, and the audit trail, so any default would grant something by
accident; the administrator chooses. A role change and a second-factor reset ask for
confirmation first (a page with a form carrying ``confirm=yes``; no script needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select

from qorgan.core import accounts, security, sessions
from qorgan.core.errors import QorganError
from qorgan.core.i18n import LANGUAGES
from qorgan.core.models import Role, User
from qorgan.core.roles import Permission
from qorgan.web.deps import Actor, Db, RecordId, page_actor
from qorgan.web.i18n import _l
from qorgan.web.templating import render

router = APIRouter(include_in_schema=False)
Admin = Annotated[Actor, Depends(page_actor(Permission.users_manage))]


def _page(request: Request, db: Db, actor: Actor, status: int = 200, **extra: object) -> Response:
    members = db.scalars(
        select(User).where(User.organisation_id == actor.organisation_id).order_by(User.email)
    ).all()
    return render(
        request,
        "users.html",
        {
            "members": members,
            "roles": list(Role),
            "mfa_roles": accounts.MFA_ROLES,
            "now": datetime.now(UTC),
            **extra,
        },
        status_code=status,
    )


def _member(db: Db, actor: Actor, user_id: int) -> User:
    user = db.get(User, user_id)
    if user is None or user.organisation_id != actor.organisation_id:
        raise HTTPException(404, _l("no such user in your organisation"))
    return user


@router.get("/users")
def users_page(request: Request, db: Db, actor: Admin) -> Response:
    return _page(request, db, actor)


@router.post("/users")
def create_user(
    request: Request,
    db: Db,
    actor: Admin,
    email: Annotated[str, Form(max_length=320)],
    name: Annotated[str, Form(min_length=1, max_length=200)],
    role: Annotated[Role | None, Form()] = None,
    language: Annotated[str, Form(max_length=8)] = "kk",
) -> Response:
    if language not in LANGUAGES:
        raise HTTPException(400, "unsupported language")
    if role is None:
        # No role is preselected: the administrator grants one on purpose.
        return _page(request, db, actor, status=400, error=_l("Choose a role for the new user."))
    password = security.generate_password()
    try:
        user = accounts.create_user(
            session=db,
            actor=actor.id,
            organisation_id=actor.organisation_id,
            email=email,
            display_name=name,
            role=role,
            password=password,
            language=language,
        )
    except QorganError as exc:
        db.rollback()
        return _page(request, db, actor, status=400, error=exc.message)
    db.commit()
    return _page(request, db, actor, created=(user.email, password))


#: Changes that take effect on a person at once ask for an explicit confirmation (the form
#: field ``confirm=yes``); without it the page asks and nothing changes.
CONFIRMED = "yes"


@router.post("/users/{user_id}/{action}")
def change_user(
    request: Request,
    db: Db,
    actor: Admin,
    user_id: RecordId,
    action: Literal["role", "reset-second-factor", "unlock"],
    role: Annotated[Role | None, Form()] = None,
    confirm: Annotated[str | None, Form(max_length=8)] = None,
) -> Response:
    user = _member(db, actor, user_id)
    if action == "role" and role is None:
        raise HTTPException(400, "choose a role")
    needs_confirmation = action == "reset-second-factor" or (action == "role" and role != user.role)
    if needs_confirmation and confirm != CONFIRMED:
        return _page(request, db, actor, confirming={"action": action, "user": user, "role": role})
    revoked = 0
    try:
        if action == "role":
            assert role is not None
            accounts.set_role(session=db, actor=actor.user, user=user, role=role)
        elif action == "reset-second-factor":
            revoked = accounts.reset_second_factor(session=db, actor=actor.user, user=user)
            sessions.end_all(session=db, user_id=user.id)
        else:
            accounts.unlock(session=db, actor=actor.user, user=user)
    except accounts.AccountError as exc:
        db.rollback()
        return _page(request, db, actor, status=400, error=exc.message)
    db.commit()
    return _page(request, db, actor, message=_l("The change is saved."), revoked_tokens=revoked)
