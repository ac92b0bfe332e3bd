"""The inbox's search box: partial, case-insensitive matching over an alert's search text
(rule title, host, observables and the event's values; see :mod:`qorgan.incidents.observables`).

Every term must occur (AND). A term is a word, or a phrase in double quotes. Matching uses an
index, never a scan of the alerts: an FTS5 table with the trigram tokenizer on SQLite, a pg_trgm
GIN index on a copy of the texts on PostgreSQL (migration 0006). Both work on trigrams, so at
least one term must have three characters or more; shorter terms then narrow what the longer
ones found. A page of the newest matches may instead read the newest alerts' texts
(:func:`contains`), when they hold enough of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, column, func, literal_column, select, table, text

from qorgan.core.errors import QorganError

#: Characters of the longest query accepted, and terms at most.
MAX_QUERY = 500
MAX_TERMS = 16
#: Shortest term an index can find (a trigram).
MIN_INDEXED = 3
_TERM = re.compile(r'"([^"]*)"|(\S+)')


class SearchError(QorganError):
    """The search cannot be run as typed; the message is fit for the user."""


@dataclass(frozen=True, slots=True)
class Search:
    """A parsed search: lower-cased terms, the indexable ones first."""

    terms: tuple[str, ...]

    @classmethod
    def parse(cls, query: str) -> Search:
        """Terms of ``query``: words, or phrases in double quotes; refused when none is long
        enough for the index, when too long, or holding NUL or lone surrogates."""
        if len(query) > MAX_QUERY:
            raise SearchError(f"a search has at most {MAX_QUERY} characters")
        if "\x00" in query or any(0xD800 <= ord(c) <= 0xDFFF for c in query):
            raise SearchError("a search cannot contain NUL or unpaired surrogate characters")
        terms: list[str] = []
        for quoted, word in _TERM.findall(query):
            term = (quoted or word).strip().lower()
            if term and term not in terms:
                terms.append(term)
        if not terms:
            raise SearchError("type something to search for")
        if len(terms) > MAX_TERMS:
            raise SearchError(f"a search has at most {MAX_TERMS} terms")
        if all(len(t) < MIN_INDEXED for t in terms):
            raise SearchError(f"at least one search term needs {MIN_INDEXED} characters or more")
        terms.sort(key=lambda t: len(t) < MIN_INDEXED)
        return cls(tuple(terms))

    @property
    def indexed(self) -> tuple[str, ...]:
        return tuple(t for t in self.terms if len(t) >= MIN_INDEXED)

    @property
    def short(self) -> tuple[str, ...]:
        return tuple(t for t in self.terms if len(t) < MIN_INDEXED)


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _fts_query(terms: tuple[str, ...]) -> str:
    """An FTS5 query: each term a quoted string (substrings with the trigram tokenizer)."""
    return " AND ".join('"' + t.replace('"', '""') + '"' for t in terms)


def clause(
    search: Search, dialect: str, id_column: Any, text_column: Any, *, probe: bool = False
) -> ColumnElement[bool]:
    """A condition on the alerts table: the alert's search text holds every term.

    On SQLite the index's matches are gathered first, then either each is looked up by its
    id, or (``probe``, when the other conditions keep few alerts) those alerts are read through
    their own index and each probed among the matches: the planner cannot tell which is
    cheaper (it has no idea how many alerts a term matches), so the caller says.
    """
    shorts = [text_column.like(_like(t), escape="\\") for t in search.short]
    if dialect == "sqlite":
        matched = (
            select(literal_column("rowid"))
            .select_from(text("alerts_search"))
            .where(text("alerts_search MATCH :search_query"))
            .params(search_query=_fts_query(search.indexed))
        )
        # "id + 0" is not the primary key to the planner: it keeps the other conditions' index.
        return and_((id_column + 0 if probe else id_column).in_(matched), *shorts)
    if dialect == "postgresql":
        # Lower-cased on both sides in Python: LIKE on the trigram index then behaves the same
        # whatever the database's locale.
        texts = table("alerts_search", column("id"), column("search_text"))
        found = select(texts.c.id).where(
            *(texts.c.search_text.like(_like(t), escape="\\") for t in search.terms)
        )
        return id_column.in_(found)
    raise SearchError(f"search is not supported on the {dialect} database")


def contains(search: Search, dialect: str, text_column: Any) -> ColumnElement[bool]:
    """A condition checking the text itself, without the index: cheaper than the index when
    only a few rows need checking (the newest ones, for a page of a common term's matches)."""
    find = func.instr if dialect == "sqlite" else func.strpos
    return and_(*(find(text_column, term) > 0 for term in search.terms))


#: SQLite's search index, to drive a join from it (its matches in rowid order, lazily).
SQLITE_INDEX = table("alerts_search", column("rowid"))


def sqlite_match(search: Search, text_column: Any) -> ColumnElement[bool]:
    """On SQLite, for a query joining :data:`SQLITE_INDEX` to the alerts: the indexed row
    matches every term (and the alert's text holds the short ones)."""
    matched = text("alerts_search MATCH :search_query").bindparams(
        search_query=_fts_query(search.indexed)
    )
    return and_(matched, *(text_column.like(_like(t), escape="\\") for t in search.short))
