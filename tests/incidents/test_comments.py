"""Comments on alerts: added by members of the alert's organisation, refused with reasons,
audited by id (never by text), read by organisations the alert is shared with."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core.db import unit_of_work
from qorgan.core.models import AuditEntry
from qorgan.incidents import comments
from qorgan.incidents.comments import AlertNotFound, CommentError

from .detail_world import alert, make_pair, store_alerts


def test_add_and_list_comments(factory: sessionmaker[Session]) -> None:
    pair = make_pair(factory)
    (alert_id,) = store_alerts(factory, pair.a, alert(1))
    with unit_of_work(factory) as session:
        first = comments.add_comment(
            session=session,
            organisation_id=pair.a,
            alert_id=alert_id,
            author_id=pair.a_user,
            text="Line one\r\nline two <b>",
        )
        comments.add_comment(
            session=session,
            organisation_id=pair.a,
            alert_id=alert_id,
            author_id=pair.a_user,
            text="second",
        )
    assert first.text == "Line one\nline two <b>" and first.author_name == "Aigerim"
    with unit_of_work(factory) as session:
        listed = comments.list_comments(
            session=session, organisation_ids=[pair.a], alert_id=alert_id
        )
        assert [c.text for c in listed] == ["Line one\nline two <b>", "second"]
        assert {c.author_name for c in listed} == {"Aigerim"}
        audited = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "alert.comment").order_by(AuditEntry.id)
        ).all()
        assert [e.details for e in audited] == [{"comment_id": c.id} for c in listed]
        assert {(e.actor, e.target_type, e.target_id) for e in audited} == {
            (str(pair.a_user), "alert", str(alert_id))
        }
        assert "Line one" not in str([e.details for e in audited])


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("  \n\t ", "empty"),
        ("x" * 10_001, "10,000"),
        ("a\x00b", "NUL"),
        ("half \ud800 a pair", "surrogate"),
        (12, "text"),
    ],
)
def test_bad_comments_are_refused(
    factory: sessionmaker[Session], text: object, reason: str
) -> None:
    pair = make_pair(factory)
    (alert_id,) = store_alerts(factory, pair.a, alert(1))
    with unit_of_work(factory) as session, pytest.raises(CommentError, match=reason):
        comments.add_comment(
            session=session,
            organisation_id=pair.a,
            alert_id=alert_id,
            author_id=pair.a_user,
            text=text,  # type: ignore[arg-type]
        )
    with unit_of_work(factory) as session:
        assert not comments.list_comments(
            session=session, organisation_ids=[pair.a], alert_id=alert_id
        )
        assert comments.add_comment(
            session=session,
            organisation_id=pair.a,
            alert_id=alert_id,
            author_id=pair.a_user,
            text="y" * 10_000,
        )


def test_only_the_alerts_own_organisation_comments(factory: sessionmaker[Session]) -> None:
    pair = make_pair(factory)
    (b_alert,) = store_alerts(factory, pair.b, alert(1))
    with unit_of_work(factory) as session:
        # A member of A, on B's alert: not found, whether A names its own organisation...
        with pytest.raises(AlertNotFound):
            comments.add_comment(
                session=session,
                organisation_id=pair.a,
                alert_id=b_alert,
                author_id=pair.a_user,
                text="hi",
            )
        # ...or B's (the author must belong to the organisation).
        with pytest.raises(AlertNotFound):
            comments.add_comment(
                session=session,
                organisation_id=pair.b,
                alert_id=b_alert,
                author_id=pair.a_user,
                text="hi",
            )
        comments.add_comment(
            session=session,
            organisation_id=pair.b,
            alert_id=b_alert,
            author_id=pair.b_user,
            text="B",
        )
    with unit_of_work(factory) as session:
        with pytest.raises(AlertNotFound):
            comments.list_comments(session=session, organisation_ids=[pair.a], alert_id=b_alert)
        # A reader of B's alerts (shared: B among the organisations it may see) reads them.
        shared = comments.list_comments(
            session=session, organisation_ids=[pair.a, pair.b], alert_id=b_alert
        )
        assert [c.text for c in shared] == ["B"]
        assert not session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "alert.comment", AuditEntry.organisation_id == pair.a
            )
        ).all()
