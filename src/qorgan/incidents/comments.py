"""Analysts' comments on an alert: added, never edited, each one in the audit trail.

Service functions take ``*, session`` and never commit. Only members of the alert's own
organisation comment (the web layer also requires the ``alerts:triage`` permission); members of
an organisation the alert is shared with read the comments. The audit entry names the comment
by id, never its text: a comment may hold personal data.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from qorgan.core import audit
from qorgan.core.errors import QorganError
from qorgan.core.models import User
from qorgan.incidents.models import AlertComment, StoredAlert

MAX_COMMENT = 10_000


class CommentError(QorganError):
    """A comment was refused; the message is fit for the user (the web layer answers 422)."""


class AlertNotFound(CommentError):
    """No such alert among those the caller may see, or may comment on (404)."""


@dataclass(frozen=True, slots=True)
class Comment:
    id: int
    alert_id: int
    author_id: int | None
    author_name: str | None
    created_at: datetime
    text: str


def clean_text(text: str) -> str:
    """The comment as stored: line breaks as ``\\n``; refused when empty (or only blanks),
    longer than :data:`MAX_COMMENT` characters, or holding NUL or a lone surrogate (neither
    can be stored on every database nor shown)."""
    if not isinstance(text, str):
        raise CommentError("a comment must be text")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise CommentError("a comment cannot be empty")
    if len(text) > MAX_COMMENT:
        raise CommentError("a comment may have at most 10,000 characters")
    if "\x00" in text:
        raise CommentError("a comment cannot contain NUL characters")
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        raise CommentError("a comment cannot contain unpaired surrogate characters")
    return text


def add_comment(
    *, session: Session, organisation_id: int, alert_id: int, author_id: int, text: str
) -> Comment:
    """Add a comment by ``author_id`` (a member of ``organisation_id``) to one of that
    organisation's alerts, and audit it (``alert.comment``, with the comment's id)."""
    clean = clean_text(text)
    alert = session.scalar(
        select(StoredAlert.id).where(
            StoredAlert.id == alert_id, StoredAlert.organisation_id == organisation_id
        )
    )
    if alert is None:
        raise AlertNotFound("no such alert in your organisation", source=f"alert {alert_id}")
    author = session.get(User, author_id)
    if author is None or author.organisation_id != organisation_id:
        raise AlertNotFound("no such alert in your organisation", source=f"alert {alert_id}")
    comment = AlertComment(
        alert_id=alert_id, organisation_id=organisation_id, author_id=author_id, text=clean
    )
    session.add(comment)
    session.flush()
    audit.record(
        "alert.comment",
        session=session,
        actor=str(author_id),
        organisation_id=organisation_id,
        target_type="alert",
        target_id=alert_id,
        details={"comment_id": comment.id},
    )
    return Comment(
        comment.id, alert_id, author_id, author.display_name, comment.created_at, comment.text
    )


def list_comments(
    *, session: Session, organisation_ids: Collection[int], alert_id: int, limit: int = 500
) -> list[Comment]:
    """The alert's comments, oldest first, for a reader of the alert (its own organisation or
    one it is shared with); :class:`AlertNotFound` when the alert is not among theirs."""
    owner = session.scalar(select(StoredAlert.organisation_id).where(StoredAlert.id == alert_id))
    if owner is None or owner not in set(organisation_ids):
        raise AlertNotFound("no such alert", source=f"alert {alert_id}")
    rows = session.execute(
        select(AlertComment, User.display_name)
        .outerjoin(User, User.id == AlertComment.author_id)
        .where(AlertComment.alert_id == alert_id, AlertComment.organisation_id == owner)
        .order_by(AlertComment.created_at, AlertComment.id)
        .limit(limit)
    )
    return [Comment(c.id, c.alert_id, c.author_id, name, c.created_at, c.text) for c, name in rows]
