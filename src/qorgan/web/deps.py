"""What every route needs: the database session, who is asking, and whether they may.

Browsers authenticate with the session cookie, and every state-changing request they make must
carry the session's CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``). Machine
clients send ``Authorization: Bearer <token>`` to the API only; a token acts with its user's
role, narrowed to the token's scopes, and needs no CSRF token (browsers never send it on their
own). Pages never look at a token: account management (issuing and revoking tokens, changing
the password or the recovery codes) and every other page need the signed-in session, so a
token can never mint a stronger token or change its user's credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import accounts, roles, sessions, workdays
from qorgan.core.models import SessionStage, User
from qorgan.core.roles import Permission
from qorgan.core.settings import Settings
from qorgan.core.workdays import WorkCalendar
from qorgan.web.i18n import _l

SESSION_COOKIE = "qorgan_session"
#: An anonymous visitor's nonce, which the CSRF token of the sign-in forms is bound to.
PRE_SESSION_COOKIE = "qorgan_pre"
LANGUAGE_COOKIE = "qorgan_lang"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: A record id in a path: positive and within the databases' integer keys, so a huge number is
#: a 422 rather than an overflow deep in the database driver.
RecordId = Annotated[int, Path(ge=1, le=2**31 - 1, description="A record's id.")]


@dataclass
class AppState:
    settings: Settings
    factory: sessionmaker[Session]
    secret: bytes
    runner: Any  # qorgan.pipeline.hunts.HuntRunner
    throttle: Any  # qorgan.web.throttle.Throttle
    #: Access decisions, committed in shared transactions (qorgan.privacy.batches).
    decisions: Any = None
    #: When expired sessions were last purged (``time.monotonic``; see routes/auth.py).
    sessions_purged_at: float = field(default=float("-inf"))


def state(request: Request) -> AppState:
    return request.app.state.qorgan  # type: ignore[no-any-return]


def work_calendar(request: Request) -> WorkCalendar:
    """The working-day calendar incident deadlines count in (the settings' file, if any)."""
    return workdays.calendar_from_settings(state(request).settings.calendar_file)


def get_db(request: Request) -> Iterator[Session]:
    """A session for the request; routes commit what they change before answering."""
    session = state(request).factory()
    try:
        yield session
    finally:
        # Close (which rolls back anything uncommitted) without expiring the loaded objects:
        # an error page rendered after this still shows who is signed in.
        session.close()


Db = Annotated[Session, Depends(get_db)]


@dataclass
class Actor:
    """Who a request acts for."""

    user: User
    scopes: list[str] | None = None  # None: a browser session (the role decides alone)
    session_token: str | None = None

    @property
    def organisation_id(self) -> int:
        return self.user.organisation_id

    @property
    def id(self) -> str:
        return str(self.user.id)

    def can(self, permission: Permission) -> bool:
        return roles.allows(self.user.role, permission, self.scopes)


class LoginRequired(Exception):
    """A page needs a signed-in user: the app answers with a redirect to the sign-in page."""


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def cookie_session(request: Request, db: Session) -> sessions.Current | None:
    return sessions.find(session=db, token=request.cookies.get(SESSION_COOKIE))


async def check_csrf(request: Request, session_token: str) -> None:
    """Refuse an unsafe browser request without the right CSRF token (403)."""
    if request.method in SAFE_METHODS:
        return
    offered = request.headers.get("x-csrf-token")
    if offered is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get("csrf_token")
        offered = value if isinstance(value, str) else None
    if not sessions.csrf_valid(state(request).secret, session_token, offered):
        await request.close()  # a multipart form's files, which no route will read now
        raise HTTPException(403, _l("missing or invalid CSRF token; reload the page and try again"))


def _identify(request: Request, db: Session, tokens: bool) -> Actor | None:
    """The token's (when ``tokens``) or the full session's user (blocking database work: run
    in a thread)."""
    token = _bearer(request) if tokens else None
    if token is not None:
        found = accounts.resolve_token(session=db, secret=token)
        if found is None:
            raise HTTPException(
                401, "invalid or expired API token", headers={"WWW-Authenticate": "Bearer"}
            )
        user, scopes = found
        db.commit()  # last use of the token
        return Actor(user, scopes=scopes)
    current = cookie_session(request, db)
    db.commit()  # the session touched, or an expired one removed
    if current is None or current.session.stage is not SessionStage.full:
        return None
    return Actor(current.user, session_token=request.cookies[SESSION_COOKIE])


async def authenticate(request: Request, db: Session, *, tokens: bool = True) -> Actor | None:
    """Who the request acts for: an API token's user (only when ``tokens``, i.e. for the API)
    or the signed-in session's; sessions must also carry the CSRF token on writes. The
    database work runs in the thread pool, never on the event loop."""
    actor = await run_in_threadpool(_identify, request, db, tokens)
    if actor is not None and actor.session_token is not None:
        await check_csrf(request, actor.session_token)
    return actor


def api_actor(permission: Permission) -> Callable[..., Any]:
    """A dependency: the API caller, who must hold ``permission`` (401 / 403 otherwise)."""

    async def dependency(request: Request, db: Db) -> Actor:
        actor = await authenticate(request, db)
        if actor is None:
            raise HTTPException(
                401, "sign in or send an API token", headers={"WWW-Authenticate": "Bearer"}
            )
        if not actor.can(permission):
            raise HTTPException(403, f"your role or token does not allow {permission}")
        request.state.actor = actor
        return actor

    return dependency


def page_actor(permission: Permission | None = None) -> Callable[..., Any]:
    """A dependency: the signed-in browser user (redirected to sign in otherwise), who must
    hold ``permission`` when one is given (a 403 page otherwise). An API token is never
    accepted here, whatever its scopes."""

    async def dependency(request: Request, db: Db) -> Actor:
        actor = await authenticate(request, db, tokens=False)
        if actor is None:
            raise LoginRequired()
        if permission is not None and not actor.can(permission):
            raise HTTPException(403, _l("your role does not allow this page"))
        request.state.actor = actor
        return actor

    return dependency
