"""Browser sessions: a random token in an HttpOnly cookie, its digest in ``web_sessions``.

A session starts when a password is accepted. Roles that need a second factor stay at stage
``second_factor`` (or ``enrolment``) until it is given; only ``full`` sessions act as the user.
Sessions end on sign-out, after ``idle`` without use, or at ``lifetime`` after they began.
CSRF tokens are derived from the session token with the application's secret key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from qorgan.core import security
from qorgan.core.models import SessionStage, User, WebSession

#: A half-finished sign-in (awaiting the second factor) lasts this long.
PENDING_LIFETIME = timedelta(minutes=10)
IDLE = timedelta(minutes=30)
LIFETIME = timedelta(hours=12)
#: ``last_seen_at`` is written at most this often, so reads do not all become writes.
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Current:
    """The session behind a request, and its user."""

    session: WebSession
    user: User


def start(*, session: Session, user: User, stage: SessionStage, now: datetime | None = None) -> str:
    """A new session for ``user``; returns the cookie token (shown once, digest stored)."""
    now = now or datetime.now(UTC)
    token = secrets.token_urlsafe(32)
    lifetime = LIFETIME if stage is SessionStage.full else PENDING_LIFETIME
    session.add(
        WebSession(
            token_hash=security.digest(token),
            user_id=user.id,
            stage=stage,
            created_at=now,
            last_seen_at=now,
            expires_at=now + lifetime,
        )
    )
    session.flush()
    return token


def find(*, session: Session, token: str | None, now: datetime | None = None) -> Current | None:
    """The live session for a cookie token, touched; None when unknown, idle or expired."""
    if not token:
        return None
    now = now or datetime.now(UTC)
    row = session.scalar(select(WebSession).where(WebSession.token_hash == security.digest(token)))
    if row is None:
        return None
    if row.expires_at <= now or (row.stage is SessionStage.full and row.last_seen_at + IDLE <= now):
        session.delete(row)
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    user = session.get(User, row.user_id)
    if user is None:
        return None
    return Current(row, user)


def promote(*, session: Session, current: WebSession, now: datetime | None = None) -> str:
    """The second factor was given: replace the pending session by a full one (a new token, so
    a token seen before sign-in is worthless after it)."""
    user = session.get(User, current.user_id)
    assert user is not None
    session.delete(current)
    return start(session=session, user=user, stage=SessionStage.full, now=now)


def end(*, session: Session, token: str | None) -> None:
    if token:
        session.execute(delete(WebSession).where(WebSession.token_hash == security.digest(token)))


def end_all(*, session: Session, user_id: int, keep: str | None = None) -> None:
    """Sign a user out everywhere (after a password change, or by an administrator), except
    the session whose cookie token is ``keep``."""
    statement = delete(WebSession).where(WebSession.user_id == user_id)
    if keep:
        statement = statement.where(WebSession.token_hash != security.digest(keep))
    session.execute(statement)


def purge(*, session: Session, now: datetime | None = None) -> int:
    """Delete expired sessions; returns how many."""
    now = now or datetime.now(UTC)
    result = session.execute(delete(WebSession).where(WebSession.expires_at <= now))
    return int(getattr(result, "rowcount", 0) or 0)


def csrf_token(secret: bytes, session_token: str) -> str:
    """The CSRF token of a session (or of an anonymous visitor's pre-session nonce)."""
    mac = hmac.new(secret, b"csrf:" + session_token.encode(), hashlib.sha256)
    return mac.hexdigest()


def csrf_valid(secret: bytes, session_token: str, offered: str | None) -> bool:
    return bool(offered) and hmac.compare_digest(csrf_token(secret, session_token), offered or "")
