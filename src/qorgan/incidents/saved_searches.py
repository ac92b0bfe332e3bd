"""Saved searches: a user's named inbox views (the inbox URL's query string: filters, search,
sort and grouping), listed beside the search box."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from qorgan.incidents.alerts import AlertError, NotFound
from qorgan.incidents.models import SavedSearch

MAX_PER_USER = 50
MAX_NAME = 200
MAX_QUERY = 2000
#: Query parameters a saved search keeps (never a page number or a CSRF token).
KEPT = frozenset(
    {"level", "rule", "host", "kz_cert", "status", "since", "until", "assignee", "user",
     "address", "q", "sort", "group"}
)  # fmt: skip


def clean_query(query: str) -> str:
    """The inbox parameters of a query string, in a stable order."""
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k in KEPT]
    return urlencode(pairs)


def _text_ok(value: str) -> bool:
    return "\x00" not in value and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)


def list_searches(*, session: Session, user_id: int) -> list[SavedSearch]:
    return list(
        session.scalars(
            select(SavedSearch).where(SavedSearch.user_id == user_id).order_by(SavedSearch.name)
        )
    )


def save(*, session: Session, user_id: int, name: str, query: str) -> SavedSearch:
    """Save (or replace, by name) one of the user's searches."""
    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME or not _text_ok(name):
        raise AlertError(f"a saved search needs a name of 1 to {MAX_NAME} characters")
    query = clean_query(query)
    if len(query) > MAX_QUERY or not _text_ok(query):
        raise AlertError("this search is too long to save")
    existing = session.scalar(
        select(SavedSearch).where(SavedSearch.user_id == user_id, SavedSearch.name == name)
    )
    if existing is not None:
        existing.query = query
        return existing
    if len(list_searches(session=session, user_id=user_id)) >= MAX_PER_USER:
        raise AlertError(f"at most {MAX_PER_USER} searches can be saved; delete one first")
    search = SavedSearch(user_id=user_id, name=name, query=query)
    try:
        with session.begin_nested():  # the same name saved at the same instant: one wins
            session.add(search)
            session.flush()
    except IntegrityError:
        existing = session.scalar(
            select(SavedSearch).where(SavedSearch.user_id == user_id, SavedSearch.name == name)
        )
        if existing is None:
            raise
        existing.query = query
        return existing
    return search


def delete(*, session: Session, user_id: int, search_id: int) -> None:
    """Delete one of the user's searches (another user's is :class:`NotFound`)."""
    search = session.get(SavedSearch, search_id)
    if search is None or search.user_id != user_id:
        raise NotFound("no such saved search")
    session.delete(search)
