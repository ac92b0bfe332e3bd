"""The search box against a plain-Python reference: whatever the texts and terms (Kazakh and
Russian letters, LIKE wildcards, quotes, backslashes, short and long terms), an alert is found
exactly when its search text holds every term, case-insensitively, on SQLite's FTS5 trigram
index and on PostgreSQL's pg_trgm index alike."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core.accounts import create_organisation
from qorgan.core.db import unit_of_work
from qorgan.core.models import OrganisationKind
from qorgan.incidents import inbox
from qorgan.incidents.alerts import AlertError
from qorgan.incidents.inbox import AlertFilter
from qorgan.incidents.observables import search_text
from qorgan.incidents.search import MIN_INDEXED, Search

from .test_alert_store import alert, ingest

#: Letters that fold differently or not at all, and the characters search must treat literally.
ALPHABET = "abcAB019ӘәҚқҰұІіЖжЁёß%_\\\"'-.: "
_organisations = itertools.count(1)


def _search_ids(factory: sessionmaker[Session], organisation_id: int, query: str) -> set[int]:
    with unit_of_work(factory) as session:
        rows, _ = inbox.list_alerts(
            session=session,
            organisation_ids=[organisation_id],
            filters=AlertFilter(query=query),
            limit=1000,
        )
        return {r.body["source"]["record"] for r in rows}


def _expected(texts: list[str], query: str) -> set[int]:
    terms = Search.parse(query).terms
    found = set()
    for record, value in enumerate(texts, 1):
        haystack = search_text(alert(record, event={"message": value}))
        if all(term in haystack for term in terms):
            found.add(record)
    return found


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(st.text(ALPHABET, min_size=0, max_size=24), min_size=1, max_size=8),
    query=st.text(ALPHABET, min_size=1, max_size=16),
    data=st.data(),
)
@example(texts=["100% sure", "1005 x"], query="100%", data=None)
@example(texts=["a_b_c", "abc"], query="a_b", data=None)
@example(texts=['say "hi" now', "say hi"], query='"y "h', data=None)
@example(texts=["ҚАЗАҚ тілі", "қазақ", "казак"], query="ҚАЗ", data=None)
@example(texts=["STRASSE", "straße"], query="ßE", data=None)
def test_search_matches_the_reference(
    factory: sessionmaker[Session], texts: list[str], query: str, data: Any
) -> None:
    if data is not None and texts:  # sometimes search for a piece of a text
        source = data.draw(st.sampled_from(texts))
        if len(source) >= MIN_INDEXED:
            start = data.draw(st.integers(0, len(source) - MIN_INDEXED))
            query = source[start : start + data.draw(st.integers(MIN_INDEXED, 8))]
    try:
        expected = _expected(texts, query)
    except Exception:
        # A query the search refuses (too short, empty): the store refuses it too.
        try:
            AlertFilter(query=query)
        except AlertError:
            return
        raise
    name = f"Property {next(_organisations)}"
    with unit_of_work(factory) as session:
        organisation = create_organisation(
            session=session, actor="test", name=name, kind=OrganisationKind.other
        )
        organisation_id = organisation.id
    ingest(
        factory,
        organisation_id,
        *(alert(i, event={"message": value}) for i, value in enumerate(texts, 1)),
    )
    assert _search_ids(factory, organisation_id, query) == expected, (texts, query)
