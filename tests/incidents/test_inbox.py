"""The inbox's reads and bulk triage on SQLite and PostgreSQL: search, pivots, sort orders,
per-level counts, paths that no longer split one alert in two, and bulk actions."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import audit
from qorgan.core.db import unit_of_work
from qorgan.core.models import AuditEntry
from qorgan.incidents import alerts as store
from qorgan.incidents import inbox, saved_searches, triage
from qorgan.incidents.alerts import AlertError, NotFound
from qorgan.incidents.inbox import AlertFilter, Sort
from qorgan.incidents.models import TALLY_DIMENSIONS, AlertStatus, AlertTally, StoredAlert
from qorgan.incidents.observables import observables, search_text

from .test_alert_store import WEB_RULE, World, _alert_ids, alert, ingest


def records(
    factory: sessionmaker[Session], organisation_ids: list[int], **filters: Any
) -> list[int]:
    sort = filters.pop("sort", Sort.newest)
    with unit_of_work(factory) as session:
        rows, total = inbox.list_alerts(
            session=session,
            organisation_ids=organisation_ids,
            filters=AlertFilter(**filters),
            sort=sort,
        )
        assert total == len(rows)
        return [r.body["source"]["record"] for r in rows]


def _events(factory: sessionmaker[Session], world: World) -> None:
    ingest(
        factory,
        world.almaty,
        alert(1, event={"user": "Aigerim.Sadykova", "src_ip": "203.0.113.77"}),
        alert(2, event={"TargetUserName": "Administrator", "IpAddress": "::ffff:10.1.2.3"}),
        alert(
            3,
            rule_id=WEB_RULE,
            title="Path Traversal Attempt In Request",
            level="high",
            host="web-01",
            event={"c-ip": "198.51.100.9", "cs-uri-stem": "/../../etc/passwd", "c-username": "-"},
        ),
        alert(4, host="ҚАЗАҚ-СЕРВЕР", event={"message": "Сәтсіз кіру әрекеті: Пароль ҚАТЕ"}),
        alert(5, event={"CommandLine": 'powershell -enc "JABz" -nop', "User": "CORP\\svc_backup"}),
    )
    ingest(factory, world.astana, alert(1, event={"user": "aigerim.sadykova"}))


def test_observables_and_search_text() -> None:
    found = observables(alert(1, event={"TargetUserName": "-", "SubjectUserName": "bob"}))
    assert found.user == "bob"  # "-" means nobody: the next field is taken
    mapped = observables(alert(1, event={"IpAddress": "::ffff:10.0.0.5", "DestAddress": "x"}))
    assert (mapped.source_ip, mapped.destination_ip) == ("10.0.0.5", None)
    assert observables(alert(1, event={"src_ip": "not-an-ip"})).source_ip is None
    text = search_text(alert(1, host="WS-01", event={"a": {"b": ["Ключ", 7, None, True]}}))
    assert text.splitlines() == ["ssh password authentication failed", "ws-01", "ключ", "7"]
    # A value the text holds already (the user in the message) is not repeated; its neighbour
    # that the message does not hold is kept.
    sshd = {"message": "Failed password for ROOT from 10.0.0.9", "user": "root", "port": "22"}
    text = search_text(alert(1, host="web-01", event={**sshd, "host": "WEB-01"}))
    assert text.splitlines() == [
        "ssh password authentication failed",
        "web-01",
        "failed password for root from 10.0.0.9",
        "22",
    ]


def test_search_is_partial_case_insensitive_and_indexed(
    factory: sessionmaker[Session], world: World
) -> None:
    _events(factory, world)
    ours = [world.almaty]
    assert records(factory, ours, query="sadyk") == [1]  # a part of a word
    assert records(factory, ours, query="AIGERIM") == [1]  # whatever the case
    assert records(factory, ours, query="traversal") == [3]  # the rule title
    assert records(factory, ours, query="etc/passwd") == [3]  # the event text
    assert records(factory, ours, query="web-01") == [3]  # the host
    assert records(factory, ours, query="қазақ") == [4]  # Kazakh letters fold too
    assert records(factory, ours, query="пароль қате") == [4]  # every term must occur
    assert records(factory, ours, query="пароль wrong") == []  # ... not just one
    assert records(factory, ours, query='"-enc \\"JABz"') == []  # a quote inside is literal
    assert records(factory, ours, query='"-enc"') == [5]  # a phrase with a dash
    assert records(factory, ours, query="corp\\svc") == [5]  # backslashes are literal
    assert records(factory, ours, query="100%") == []  # LIKE wildcards are literal
    assert records(factory, ours, query="ssh") == [5, 4, 2, 1]  # the common rule's title
    # Two-character terms narrow what a longer one found.
    assert records(factory, ours, query="ssh 10") == [2]
    # Filters and search together; the other organisation's alert never shows.
    assert records(factory, ours, query="aigerim", levels={"high"}) == []
    assert records(factory, [world.astana], query="sadykova") == [1]
    # The index follows deletions (SQLite's FTS table is kept in step by triggers).
    with unit_of_work(factory) as session:
        row = session.scalars(
            select(StoredAlert).where(
                StoredAlert.organisation_id == world.almaty, StoredAlert.host == "web-01"
            )
        ).one()
        session.delete(row)
    assert records(factory, ours, query="traversal") == []


@pytest.mark.parametrize("window", [1, 3, 5000])
def test_a_search_page_is_the_same_read_or_indexed(
    factory: sessionmaker[Session], world: World, monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    """A page of a search's matches is read from the newest alerts' texts when they hold
    enough, from the index otherwise: the same page either way, in every order."""
    _events(factory, world)
    ingest(factory, world.almaty, *(alert(10 + i, event={"n": f"item-{i:02d}"}) for i in range(12)))
    monkeypatch.setattr(inbox, "SEARCH_WINDOW", window)
    ours = [world.almaty]
    for query in ("ssh", "sadyk", "item-1", "ssh item-0", "traversal", "nothing-like-it"):
        for sort in Sort:
            with unit_of_work(factory) as session:
                pages = [
                    inbox.list_alerts(
                        session=session,
                        organisation_ids=ours,
                        filters=AlertFilter(query=query),
                        sort=sort,
                        limit=limit,
                        offset=offset,
                    )[0]
                    for limit, offset in ((3, 0), (2, 1), (100, 0))
                ]
            everything = [a.id for a in pages[2]]
            assert [a.id for a in pages[0]] == everything[:3], (query, sort)
            assert [a.id for a in pages[1]] == everything[1:3], (query, sort)
    assert records(factory, ours, query="item-1") == [21, 20]


@pytest.mark.parametrize("broad", [0.0, 2.0])
def test_searches_and_counts_up_to_a_cap_whichever_way_they_run(
    factory: sessionmaker[Session], world: World, monkeypatch: pytest.MonkeyPatch, broad: float
) -> None:
    """Whether the search index's matches drive the query (broad filters) or the other
    filters do: the same alerts and counts; counting up to a cap says when more match."""
    _events(factory, world)
    ingest(factory, world.almaty, *(alert(10 + i, host=f"h{i % 2}") for i in range(8)))
    monkeypatch.setattr(inbox, "BROAD", broad)
    ours = [world.almaty]
    assert records(factory, ours, query="ssh") == [17, 16, 15, 14, 13, 12, 11, 10, 5, 4, 2, 1]
    assert records(factory, ours, query="ssh", host="h1") == [17, 15, 13, 11]
    assert records(factory, ours, query="ssh 10", levels={"low"}) == [2]
    assert records(factory, ours, query="traversal", levels={"high"}) == [3]
    with unit_of_work(factory) as session:
        kwargs: dict[str, Any] = {"session": session, "organisation_ids": ours}
        for filters in (AlertFilter(query="ssh"), AlertFilter(query="ssh", host="h0")):
            exact = inbox.level_counts(filters=filters, **kwargs)
            found = inbox.counted(filters=filters, **kwargs)
            assert found == inbox.Counted(exact, sum(exact.values()), True)
            capped = inbox.counted(filters=filters, cap=3, **kwargs)
            assert capped == inbox.Counted({}, 3, False)
        # The tallies count exactly whatever the cap.
        assert inbox.counted(cap=1, **kwargs) == inbox.Counted({"low": 12, "high": 1}, 13, True)


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)  # its full-text index
def test_a_broad_search_reads_the_index_first_on_sqlite(
    factory: sessionmaker[Session], world: World
) -> None:
    """When the search index's matches drive the count (the other filters keep most alerts),
    the index is the outer loop, also on a database never analysed. The planner once put the
    alerts first there and ran the full-text query once per alert: 13-21 s for a search
    among 20,000 alerts in the browser tests."""
    ingest(factory, world.almaty, *(alert(i, host=f"h{i % 3}") for i in range(30)))
    filters = AlertFilter(status=AlertStatus.new, query="password")
    with unit_of_work(factory) as session:
        query = inbox._search_driven(session, [world.almaty], filters, StoredAlert.severity)
        sql = query.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
        plan = [row[3] for row in session.execute(text(f"EXPLAIN QUERY PLAN {sql}"))]
        assert plan[0].startswith("SCAN alerts_search VIRTUAL TABLE"), plan
        assert "alerts USING INTEGER PRIMARY KEY" in plan[1], plan
        found = inbox.counted(session=session, organisation_ids=[world.almaty], filters=filters)
        assert found.exact and found.total == 30


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("ab", "3 characters"),
        ("   ", "type something"),
        ("a\x00bcd", "NUL"),
        ("abc\ud800", "surrogate"),
        ("x" * 501, "at most 500"),
        (" ".join(f"t{i:02d}" for i in range(17)), "at most 16 terms"),
    ],
)
def test_search_refuses_what_it_cannot_run(query: str, reason: str) -> None:
    with pytest.raises(AlertError, match=reason):
        AlertFilter(query=query)


def test_pivots_by_user_and_address(factory: sessionmaker[Session], world: World) -> None:
    _events(factory, world)
    ours = [world.almaty]
    assert records(factory, ours, user="Administrator") == [2]
    assert records(factory, ours, user="administrator") == []  # a pivot is exact
    assert records(factory, ours, address="10.1.2.3") == [2]  # IPv4-mapped, unwrapped
    assert records(factory, ours, address="198.51.100.9") == [3]
    assert records(factory, ours, address="203.0.113.7") == []  # not a prefix match
    assert records(factory, ours, user="CORP\\svc_backup") == [5]
    with unit_of_work(factory) as session:
        groups, total = inbox.group_alerts(session=session, organisation_ids=ours, by="user")
        assert total == 4
        assert (groups[0].user, groups[0].count) == (None, 2)  # with the high alert: first
        by_address, _ = inbox.group_alerts(session=session, organisation_ids=ours, by="address")
        assert {(g.address, g.count) for g in by_address} == {
            ("198.51.100.9", 1),
            ("10.1.2.3", 1),
            ("203.0.113.77", 1),
            (None, 2),
        }


def test_sort_orders_and_level_counts(factory: sessionmaker[Session], world: World) -> None:
    ingest(
        factory,
        world.almaty,
        alert(1, time="2026-11-20T05:00:00Z", level="low"),
        alert(2, time="2026-11-20T07:00:00Z", level="critical"),
        alert(3, time=None, level="high"),
        alert(4, time="2026-11-20T06:00:00Z", level="high"),
    )
    ingest(factory, world.almaty, alert(5, time="2026-11-19T00:00:00Z", level="medium"))
    ours = [world.almaty]
    assert records(factory, ours, sort=Sort.newest) == [2, 4, 1, 5, 3]  # untimed last
    assert records(factory, ours, sort=Sort.oldest) == [3, 5, 1, 4, 2]  # untimed first
    assert records(factory, ours, sort=Sort.level_highest) == [2, 4, 3, 5, 1]
    assert records(factory, ours, sort=Sort.level_lowest) == [1, 5, 4, 3, 2]
    assert records(factory, ours, sort=Sort.received_newest)[0] == 5  # the later ingestion
    assert records(factory, ours, sort=Sort.received_oldest)[-1] == 5
    with unit_of_work(factory) as session:
        counts = inbox.level_counts(session=session, organisation_ids=ours)
        assert counts == {"low": 1, "medium": 1, "high": 2, "critical": 1}
        only_high = inbox.level_counts(
            session=session, organisation_ids=ours, filters=AlertFilter(levels={"high"})
        )
        assert only_high == {"high": 2}


def test_the_same_event_from_another_path_is_one_alert(
    factory: sessionmaker[Session], world: World
) -> None:
    upload = alert(7)
    upload["source"]["path"] = "/srv/qorgan/var/uploads/1a2b/000-auth.log"
    server = alert(7)
    server["source"]["path"] = "/srv/logs/1/auth.log"
    server["rule"]["path"] = "/opt/qorgan/rules/lnx_sshd_failed_password.yml"
    assert store.fingerprint(upload) == store.fingerprint(server)
    assert ingest(factory, world.almaty, upload).created == 1
    assert ingest(factory, world.almaty, server).duplicates == 1
    # Its neighbour: another record of the same file is another event.
    assert ingest(factory, world.almaty, alert(8)).created == 1


def test_timeline_picks_hours_or_days(factory: sessionmaker[Session], world: World) -> None:
    ingest(
        factory,
        world.almaty,
        alert(1, time="2026-11-20T05:10:00Z"),
        alert(2, time="2026-11-21T05:10:00Z"),
    )
    with unit_of_work(factory) as session:
        points, bucket = inbox.timeline(session=session, organisation_ids=[world.almaty])
        assert bucket == "hour" and [p.count for p in points] == [1, 1]
    ingest(factory, world.almaty, alert(3, time="2026-11-28T05:10:00Z"))
    with unit_of_work(factory) as session:
        points, bucket = inbox.timeline(session=session, organisation_ids=[world.almaty])
        assert bucket == "day" and len(points) == 3
        assert points[0].bucket == datetime(2026, 11, 20, tzinfo=points[0].bucket.tzinfo)


# --------------------------------------------------------------------------- tallies


def _tally_world(factory: sessionmaker[Session], world: World) -> None:
    hosts = ["h1", "h:2", None]  # a ":" and rule ids of several lengths: the pair keys hold both
    levels = ["low", "medium", "high", "critical"]
    ingest(
        factory,
        world.almaty,
        *(
            alert(
                i,
                rule_id=WEB_RULE if i % 3 == 0 else f"rule:{'9' * (i % 4)}",
                title="Web" if i % 3 == 0 else f"Title {i % 4}",
                level=levels[i % 4],
                host=hosts[i % 3],
                time=None if i % 7 == 0 else f"2026-11-{10 + i % 5:02d}T{i % 24:02d}:30:00Z",
                kz_cert=None if i % 5 == 0 else "credential-attack",
                event={"user": f"u{i % 6}", "src_ip": f"203.0.113.{i % 4}"},
            )
            for i in range(40)
        ),
    )
    ingest(factory, world.astana, *(alert(i, host="h1") for i in range(6)))


def _views(
    factory: sessionmaker[Session], organisation_ids: list[int], monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Any], list[Any]]:
    """What the inbox shows, once from the tallies and once counted from the alerts."""
    out = []
    with unit_of_work(factory) as session:
        for tallied in (True, False):
            if not tallied:
                monkeypatch.setattr(inbox, "_tally_plan", lambda filters: None)
            shown: list[Any] = []
            for filters in (
                {},
                {"status": AlertStatus.new},
                {"status": AlertStatus.acknowledged, "levels": {"high", "critical"}},
                {"host": "h1"},
                {"rule_id": WEB_RULE, "status": AlertStatus.new},
                {"user": "u2"},
                {"kz_cert_class": "credential-attack", "levels": {"low"}},
                {"rule_id": WEB_RULE, "host": "h1"},
            ):
                chosen = AlertFilter(**filters)
                kwargs = {"session": session, "organisation_ids": organisation_ids}
                shown.append(inbox.level_counts(filters=chosen, **kwargs))
                shown.append(inbox.count(filters=chosen, **kwargs))
                shown.append(inbox.timeline(filters=chosen, **kwargs))
                for by in ("rule", "host", "user", "address", "rule_host"):
                    shown.append(inbox.group_alerts(filters=chosen, by=by, **kwargs))
                    shown.append(
                        inbox.group_alerts(filters=chosen, by=by, limit=2, offset=1, **kwargs)
                    )
            out.append(shown)
        monkeypatch.undo()
    return out[0], out[1]


def test_tallies_follow_every_change(
    factory: sessionmaker[Session], world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counts, groups and the timeline read from the tallies equal the alerts counted, after
    ingestion, triage of every kind and deletion, for one organisation and for two."""
    _tally_world(factory, world)
    both = [world.almaty, world.astana]
    tallied, counted = _views(factory, [world.almaty], monkeypatch)
    assert tallied == counted
    tallied, counted = _views(factory, both, monkeypatch)
    assert tallied == counted
    ours = _alert_ids(factory, world.almaty)
    kwargs = {"organisation_id": world.almaty, "actor_id": world.analyst}
    with unit_of_work(factory) as session:
        triage.bulk_triage(session=session, action="acknowledge", alert_ids=ours[::2], **kwargs)
        triage.bulk_triage(session=session, action="false-positive", alert_ids=ours[::5], **kwargs)
        triage.bulk_triage(session=session, action="reopen", alert_ids=ours[::10], **kwargs)
        triage.bulk_triage(
            session=session,
            action="assign",
            alert_ids=ours[:7],
            assignee_id=world.colleague,
            **kwargs,
        )
        triage.triage(session=session, action="acknowledge", alert_id=ours[1], **kwargs)
        for row in session.scalars(select(StoredAlert).where(StoredAlert.id.in_(ours[-3:]))):
            session.delete(row)
    for organisations in ([world.almaty], both):
        tallied, counted = _views(factory, organisations, monkeypatch)
        assert tallied == counted
    with unit_of_work(factory) as session:  # every alert is in one key of each dimension
        totals = session.execute(
            select(AlertTally.dimension, func.sum(AlertTally.alerts))
            .where(AlertTally.organisation_id == world.almaty)
            .group_by(AlertTally.dimension)
        ).all()
        assert dict(totals) == dict.fromkeys(TALLY_DIMENSIONS, len(ours) - 3)


def test_rule_and_host_tallies_hold_the_longest_values(
    factory: sessionmaker[Session], world: World
) -> None:
    """The longest rule id (200 characters) and host (255), holding ":" and digits, fit the
    rule-and-host tally's key (PostgreSQL enforces its length: ingestion would fail) and come
    back whole from a grouping; their neighbour with a short rule id stays apart."""
    rule_id, host = "12:" + "r" * 197, "7:=" + "h" * 252
    neighbour = ("r" * 197 + "=" + host)[:255]  # the rest of the first pair's key, as a host
    ingest(
        factory,
        world.almaty,
        alert(1, rule_id=rule_id, host=host, level="critical"),
        alert(2, rule_id=rule_id, host=host, level="low"),
        alert(3, rule_id="12:", host=neighbour, level="high"),
    )
    with unit_of_work(factory) as session:
        kwargs = {"session": session, "organisation_ids": [world.almaty]}
        groups, total = inbox.group_alerts(by="rule_host", **kwargs)
        assert total == 2
        assert [(g.rule_id, g.host, g.count, g.level) for g in groups] == [
            (rule_id, host, 2, "critical"),
            ("12:", neighbour, 1, "high"),
        ]
        narrowed = AlertFilter(rule_id=rule_id, host=host)
        assert inbox.level_counts(filters=narrowed, **kwargs) == {"low": 1, "critical": 1}


# --------------------------------------------------------------------------- bulk triage


def _entries(factory: sessionmaker[Session], action: str) -> list[AuditEntry]:
    with unit_of_work(factory) as session:
        return list(
            session.scalars(
                select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
            )
        )


def test_bulk_triage_of_ids_and_of_all_matching(
    factory: sessionmaker[Session], world: World
) -> None:
    ingest(factory, world.almaty, *(alert(i, host=f"h{i % 3}") for i in range(30)))
    ingest(factory, world.astana, *(alert(i, host="h0") for i in range(5)))
    ours, theirs = _alert_ids(factory, world.almaty), _alert_ids(factory, world.astana)
    kwargs = {"organisation_id": world.almaty, "actor_id": world.analyst}
    with unit_of_work(factory) as session:
        # Named ids: another organisation's are never touched and count as not matched.
        done = triage.bulk_triage(
            session=session, action="acknowledge", alert_ids=ours[:4] + theirs[:2], **kwargs
        )
        assert (done.matched, done.changed) == (4, 4)
    with unit_of_work(factory) as session:
        # All matching a filter: host h0 has ten of ours; two are acknowledged already.
        done = triage.bulk_triage(
            session=session,
            action="acknowledge",
            filters=AlertFilter(host="h0"),
            **kwargs,
        )
        assert done.matched == 10 and done.changed == 10 - sum(1 for i in range(4) if i % 3 == 0)
    with unit_of_work(factory) as session:
        acked = session.scalar(
            select(func.count()).where(StoredAlert.status == AlertStatus.acknowledged)
        )
        assert acked == 4 + done.changed
        assert (
            session.scalar(
                select(func.count()).where(
                    StoredAlert.organisation_id == world.astana,
                    StoredAlert.status != AlertStatus.new,
                )
            )
            == 0
        )
    entries = _entries(factory, "alert.acknowledge")
    assert len(entries) == acked  # one entry per alert changed, none for the unchanged
    assert len({e.target_id for e in entries}) == len(entries)
    assert all(e.organisation_id == world.almaty for e in entries)
    with unit_of_work(factory) as session:
        assert audit.verify(session=session) == []
        # Assign in bulk, then the same again: nothing changes, nothing is recorded.
        first = triage.bulk_triage(
            session=session,
            action="assign",
            alert_ids=ours[:3],
            assignee_id=world.colleague,
            **kwargs,
        )
        again = triage.bulk_triage(
            session=session,
            action="assign",
            alert_ids=ours[:3],
            assignee_id=world.colleague,
            **kwargs,
        )
        assert (first.changed, again.changed) == (3, 0)
        with pytest.raises(AlertError, match="same organisation"):
            triage.bulk_triage(
                session=session,
                action="assign",
                alert_ids=ours[:1],
                assignee_id=world.outsider,
                **kwargs,
            )
    assert len(_entries(factory, "alert.assign")) == 3


def test_concurrent_bulk_triage_records_each_change_once(
    factory: sessionmaker[Session], world: World
) -> None:
    ingest(factory, world.almaty, *(alert(i) for i in range(200)))
    barrier = threading.Barrier(4)
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            with unit_of_work(factory) as session:
                done = triage.bulk_triage(
                    session=session,
                    organisation_id=world.almaty,
                    actor_id=world.analyst,
                    action="false-positive",
                )
                results.append(done.changed)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == [0, 0, 0, 200]
    assert len(_entries(factory, "alert.false_positive")) == 200
    with unit_of_work(factory) as session:
        assert audit.verify(session=session) == []


def test_single_triage_answers_what_changed(factory: sessionmaker[Session], world: World) -> None:
    ingest(factory, world.almaty, alert(1))
    alert_id = _alert_ids(factory, world.almaty)[0]
    kwargs = {"organisation_id": world.almaty, "alert_id": alert_id, "actor_id": world.analyst}
    with unit_of_work(factory) as session:
        first = triage.triage(session=session, action="acknowledge", **kwargs)
        second = triage.triage(session=session, action="acknowledge", **kwargs)
    assert (first.status, first.changed) == (AlertStatus.acknowledged, True)
    assert (second.status, second.changed) == (AlertStatus.acknowledged, False)
    assert len(_entries(factory, "alert.acknowledge")) == 1
    with pytest.raises(NotFound), unit_of_work(factory) as session:
        triage.triage(
            session=session,
            action="acknowledge",
            organisation_id=world.astana,
            alert_id=alert_id,
            actor_id=world.outsider,
        )


# --------------------------------------------------------------------------- saved searches


def test_saved_searches_belong_to_their_user(factory: sessionmaker[Session], world: World) -> None:
    with unit_of_work(factory) as session:
        saved = saved_searches.save(
            session=session,
            user_id=world.analyst,
            name="  Critical  web ",
            query="level=critical&q=traversal&page=3&csrf_token=x&evil=1",
        )
        assert (saved.name, saved.query) == ("Critical web", "level=critical&q=traversal")
        # The same name again replaces the query.
        saved_searches.save(
            session=session, user_id=world.analyst, name="Critical web", query="level=high"
        )
        mine = saved_searches.list_searches(session=session, user_id=world.analyst)
        assert [(s.name, s.query) for s in mine] == [("Critical web", "level=high")]
        assert saved_searches.list_searches(session=session, user_id=world.colleague) == []
        with pytest.raises(NotFound):
            saved_searches.delete(session=session, user_id=world.colleague, search_id=mine[0].id)
        for bad in ("", "x" * 201, "a\x00b"):
            with pytest.raises(AlertError, match="name"):
                saved_searches.save(session=session, user_id=world.analyst, name=bad, query="")
        saved_searches.delete(session=session, user_id=world.analyst, search_id=mine[0].id)
        assert saved_searches.list_searches(session=session, user_id=world.analyst) == []


def test_new_columns_are_filled_at_ingestion(factory: sessionmaker[Session], world: World) -> None:
    ingest(factory, world.almaty, alert(1, level="critical"))
    with unit_of_work(factory) as session:
        row = session.scalars(select(StoredAlert)).one()
        assert (row.severity, row.user_name, row.source_ip) == (4, "aigerim", "203.0.113.77")
        assert row.search_text.startswith("ssh password authentication failed\nakimat-srv-01")
        assert row.time == datetime(2026, 11, 20, 5, tzinfo=UTC)
