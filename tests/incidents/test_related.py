"""Related alerts (same host, user or source address within an hour), a correlation's member
alerts, and an alert's history: never across organisations."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from qorgan.core.db import unit_of_work
from qorgan.incidents import alerts as store
from qorgan.incidents import comments, history, related
from qorgan.incidents.models import StoredAlert

from .detail_world import alert, make_pair, store_alerts

SSH = "8f0f2f7e-1d3a-4c55-9c61-0b7a3e1d2c11"
CORRELATION = "020541a0-04e2-40fd-9594-375331a49d05"


def test_related_alerts(factory: sessionmaker[Session]) -> None:
    pair = make_pair(factory)
    ids = store_alerts(
        factory,
        pair.a,
        alert(1, time="2026-11-20T10:00:00Z", host="web-01", user="aigerim", ip="198.51.100.1"),
        alert(2, time="2026-11-20T10:30:00Z", host="web-01", user="x", ip="192.0.2.1"),
        alert(3, time="2026-11-20T09:00:00Z", host="db-01", user="aigerim", ip="192.0.2.2"),
        alert(4, time="2026-11-20T11:00:00Z", host="db-02", user="y", ip="198.51.100.1"),
        alert(5, time="2026-11-20T12:00:00Z", host="web-01", user="aigerim", ip="198.51.100.1"),
        alert(6, time="2026-11-20T10:10:00Z", host="web-02", user="z", ip="192.0.2.3"),
        alert(7, time=None, host="web-01"),
    )
    # B's alert shares everything with A's first alert, a minute later.
    store_alerts(factory, pair.b, alert(1, time="2026-11-20T10:01:00Z"))
    with unit_of_work(factory) as session:
        first = session.get(StoredAlert, ids[0])
        assert first is not None
        groups = {g.kind: g for g in related.related_alerts(session=session, alert=first)}
        assert {k: [a.id for a in g.alerts] for k, g in groups.items()} == {
            "host": [ids[1]],  # 30 min: related; 2 h later (5) and untimed (7): not
            "user": [ids[2]],  # exactly an hour before: related
            "address": [ids[3]],  # exactly an hour after: related
        }
        assert {g.total for g in groups.values()} == {1}
        assert (groups["host"].value, groups["user"].value) == ("web-01", "aigerim")
        # A narrower window and a smaller limit.
        narrow = related.related_alerts(session=session, alert=first, window=timedelta(minutes=45))
        assert {g.kind: g.total for g in narrow} == {"host": 1, "user": 0, "address": 0}
        # An alert without a time has none.
        untimed = session.get(StoredAlert, ids[6])
        assert untimed is not None and related.related_alerts(session=session, alert=untimed) == []


def test_related_lists_the_nearest_and_counts_all(factory: sessionmaker[Session]) -> None:
    pair = make_pair(factory)
    minutes = [0, 50, -5, 10, -40, 30]
    ids = store_alerts(
        factory,
        pair.a,
        *(
            alert(
                i,
                time=f"2026-11-20T{10 + (m // 60):02d}:{m % 60:02d}:00Z",
                user=f"u{i}",
                ip=f"192.0.2.{i}",
            )
            for i, m in enumerate(minutes, start=1)
        ),
    )
    with unit_of_work(factory) as session:
        first = session.get(StoredAlert, ids[0])
        assert first is not None
        groups = related.related_alerts(session=session, alert=first, limit=3)
        host = next(g for g in groups if g.kind == "host")
        assert host.total == 5
        # The three nearest in time (-5, +10, +30 minutes), listed oldest first.
        assert [a.id for a in host.alerts] == [ids[2], ids[3], ids[5]]


def test_correlation_members_stay_in_the_organisation(factory: sessionmaker[Session]) -> None:
    pair = make_pair(factory)
    events = [alert(n, time=f"2026-11-20T08:00:0{n}Z", rule_id=SSH) for n in range(1, 4)]
    window = {
        "type": "event_count",
        "value": 3.0,
        "start": "2026-11-20T08:00:01Z",
        "end": "2026-11-20T08:00:03Z",
        "events": [
            {
                "path": "/var/log/auth.log",
                "record": n,
                "time": f"2026-11-20T08:00:0{n}Z",
                "rule": SSH,
            }
            for n in range(1, 4)
        ],
    }
    correlation = alert(3, time="2026-11-20T08:00:03Z", rule_id=CORRELATION, correlation=window)
    a_ids = store_alerts(factory, pair.a, *events[:2], correlation)  # A lacks the third event
    b_ids = store_alerts(factory, pair.b, *events)
    with unit_of_work(factory) as session:
        stored = session.get(StoredAlert, a_ids[2])
        assert stored is not None
        members = related.correlation_members(session=session, alert=stored)
        assert [(m.record, m.alert_id) for m in members] == [
            (1, a_ids[0]),
            (2, a_ids[1]),
            (3, None),
        ]
        assert not {m.alert_id for m in members} & set(b_ids)
        plain = session.get(StoredAlert, a_ids[0])
        assert plain is not None and related.correlation_members(session=session, alert=plain) == []


def test_history_newest_first_with_names(factory: sessionmaker[Session]) -> None:
    pair = make_pair(factory)
    (alert_id,) = store_alerts(factory, pair.a, alert(1))
    with unit_of_work(factory) as session:
        store.record_read(
            session=session, user_id=pair.a_user, organisation_id=pair.a, alert_id=alert_id
        )
        comments.add_comment(
            session=session,
            organisation_id=pair.a,
            alert_id=alert_id,
            author_id=pair.a_user,
            text="x",
        )
        # B reads it (shared): B's own entry, seen by B, never by A.
        store.record_read(
            session=session, user_id=pair.b_user, organisation_id=pair.b, alert_id=alert_id
        )
    with unit_of_work(factory) as session:
        stored = session.get(StoredAlert, alert_id)
        assert stored is not None
        entries, names = history.alert_history(
            session=session, alert=stored, reader_organisation_id=pair.a
        )
        assert [e.action for e in entries] == ["alert.comment", "alert.read"]
        assert {e.actor_name for e in entries} == {"Aigerim"} and pair.b_user not in names
        seen_by_b, _names = history.alert_history(
            session=session, alert=stored, reader_organisation_id=pair.b
        )
        assert [(e.action, e.actor_name) for e in seen_by_b] == [
            ("alert.read", "Dana"),
            ("alert.comment", "Aigerim"),
            ("alert.read", "Aigerim"),
        ]
