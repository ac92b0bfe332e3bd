"""Incident statistics against figures worked out by hand: a month of a few incidents with
known moments (boundaries of the local month included), on SQLite and PostgreSQL alike; the
coordinator's constituency and one reporter within it; an empty period; the pure arithmetic."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core.accounts import create_organisation
from qorgan.core.db import unit_of_work
from qorgan.core.models import OrganisationKind
from qorgan.incidents import figures, stats
from qorgan.incidents.lifecycle import IncidentError
from qorgan.incidents.listing import Scope
from qorgan.incidents.models import Incident

from .test_alert_store import World

ZONE = "Asia/Almaty"
NOW = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
NOVEMBER = figures.month("2026-11", ZONE)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _incident(
    organisation_id: int,
    created: str,
    *,
    started: str | None = None,
    hours: dict[str, float] | None = None,
    **values: Any,
) -> Incident:
    start = at(started or created)
    moments = {
        f"{name}_at": start + timedelta(hours=h)
        for name, h in (hours or {}).items()
        if name in ("acknowledged", "contained", "closed")
    }
    return Incident(
        organisation_id=organisation_id,
        title=values.pop("title", "incident"),
        created_at=at(created),
        started_at=start,
        **moments,
        **values,
    )


@pytest.fixture
def month(factory: sessionmaker[Session], world: World) -> dict[str, int]:
    """Almaty's November (five incidents, one each side of the month), Astana's, and the
    national coordinator two of Almaty's and one of Astana's were reported to."""
    with unit_of_work(factory) as session:
        cert = create_organisation(
            session=session, actor="test", name="KZ-CERT", kind=OrganisationKind.cert
        ).id
        reported = {"reported_to_id": cert, "reported_at": at("2026-11-04T00:00:00")}
        made = {
            # Closed: acknowledged after 1 h, contained after 5 h, closed after 25 h.
            "one": _incident(
                world.almaty,
                "2026-11-02T10:00:00",
                started="2026-11-02T08:00:00",
                hours={"acknowledged": 1, "contained": 5, "closed": 25},
                kz_cert_class="credential-attack",
                severity=3,
                status="closed",
                resolution="true-positive-impact",
                acknowledge_due_at=at("2026-11-02T12:00:00"),
                contain_due_at=at("2026-11-02T12:00:00"),  # contained late
                close_due_at=at("2026-11-20T00:00:00"),
                **reported,
            ),
            # In containment, acknowledged after 2 h, overdue since 5 November.
            "two": _incident(
                world.almaty,
                "2026-11-03T04:00:00",
                started="2026-11-03T03:00:00",
                hours={"acknowledged": 2},
                kz_cert_class="malware-spam",
                severity=4,
                status="containment",
                contain_due_at=at("2026-11-05T00:00:00"),
                next_due_at=at("2026-11-05T00:00:00"),
                **reported,
            ),
            "three": _incident(
                world.almaty,
                "2026-11-10T12:00:00",
                kz_cert_class="credential-attack",
                severity=2,
                status="new",
                next_due_at=at("2026-12-10T00:00:00"),
            ),
            # 23:59 on 30 November in Almaty: still November.
            "four": _incident(
                world.almaty,
                "2026-11-30T18:59:00",
                hours={"acknowledged": 0.5, "closed": 1},
                severity=1,
                status="closed",
                resolution="false-positive",
            ),
            # Midnight of 1 December in Almaty: December, open and overdue.
            "five": _incident(
                world.almaty,
                "2026-11-30T19:00:00",
                severity=2,
                status="new",
                next_due_at=at("2026-11-30T20:00:00"),
            ),
            # Midnight of 1 November in Almaty (still 31 October in UTC): November.
            "six": _incident(
                world.almaty,
                "2026-10-31T19:00:00",
                hours={"acknowledged": 4},
                kz_cert_class="scanning",
                severity=3,
                status="triage",
                next_due_at=at("2026-12-05T00:00:00"),
            ),
            "astana": _incident(
                world.astana,
                "2026-11-15T06:00:00",
                hours={"acknowledged": 100, "contained": 200, "closed": 300},
                kz_cert_class="network-attack",
                severity=4,
                status="closed",
                resolution="true-positive-no-impact",
                reported_to_id=cert,
                reported_at=at("2026-11-20T00:00:00"),
            ),
            "astana_december": _incident(
                world.astana,
                "2026-11-25T06:00:00",
                severity=4,
                status="new",
                next_due_at=at("2026-11-26T00:00:00"),
                reported_to_id=cert,
                reported_at=at("2026-12-02T00:00:00"),
            ),
        }
        session.add_all(made.values())
        session.flush()
        return {"cert": cert, **{name: incident.id for name, incident in made.items()}}


def _figures(factory: sessionmaker[Session], selection: stats.Selection, **kw: Any) -> Any:
    with unit_of_work(factory) as session:
        return stats.period_stats(session=session, selection=selection, period=NOVEMBER, **kw)


def test_a_month_of_one_organisation(
    factory: sessionmaker[Session], world: World, month: dict[str, int]
) -> None:
    found = _figures(factory, stats.Selection(world.almaty))
    assert found.total == 5 and found.bucket == "day"
    assert found.by_class == [
        ("credential-attack", 2),
        (None, 1),
        ("malware-spam", 1),
        ("scanning", 1),
    ]
    assert found.by_status == {
        "new": 1,
        "triage": 1,
        "containment": 1,
        "eradication": 0,
        "recovery": 0,
        "review": 0,
        "closed": 2,
    }
    assert found.by_severity == {4: 1, 3: 2, 2: 1, 1: 1}
    assert found.by_organisation == []
    # Acknowledged after 1, 2, 0.5 and 4 h: mean 1.875; P90 at rank 2.7 of [0.5, 1, 2, 4].
    times = {d.measure: d for d in found.durations}
    assert times["acknowledge"].count == 4
    assert times["acknowledge"].mean_hours == pytest.approx(1.875, abs=1e-6)
    assert times["acknowledge"].p90_hours == pytest.approx(3.4, abs=1e-6)
    assert (times["contain"].count, times["contain"].mean_hours) == (1, pytest.approx(5))
    assert times["contain"].p90_hours == pytest.approx(5, abs=1e-6)
    # Closed after 25 and 1 h: mean 13, P90 at rank 0.9 of [1, 25].
    assert times["close"].count == 2
    assert times["close"].mean_hours == pytest.approx(13, abs=1e-6)
    assert times["close"].p90_hours == pytest.approx(22.6, abs=1e-6)
    # Thirty local days, each with its incidents by severity.
    assert [day for day, _ in found.series] == [
        date(2026, 11, 1) + timedelta(days=n) for n in range(30)
    ]
    per_day = {day: counts for day, counts in found.series if any(counts.values())}
    assert per_day == {
        date(2026, 11, 1): {4: 0, 3: 1, 2: 0, 1: 0},
        date(2026, 11, 2): {4: 0, 3: 1, 2: 0, 1: 0},
        date(2026, 11, 3): {4: 1, 3: 0, 2: 0, 1: 0},
        date(2026, 11, 10): {4: 0, 3: 0, 2: 1, 1: 0},
        date(2026, 11, 30): {4: 0, 3: 0, 2: 0, 1: 1},
    }


def test_the_times_the_same_either_way(
    factory: sessionmaker[Session], world: World, month: dict[str, int], monkeypatch: Any
) -> None:
    """On SQLite, a large period's times come from a sort per measure in the database rather
    than from one fetch: the same figures."""
    fetched = _figures(factory, stats.Selection(world.almaty)).durations
    monkeypatch.setattr(stats, "IN_PYTHON", 0)
    sorted_ = _figures(factory, stats.Selection(world.almaty)).durations
    for one, other in zip(fetched, sorted_, strict=True):
        assert (one.measure, one.count) == (other.measure, other.count)
        assert one.mean_hours == pytest.approx(other.mean_hours, abs=1e-6)
        assert one.p90_hours == pytest.approx(other.p90_hours, abs=1e-6)


def test_weeks_and_months(factory: sessionmaker[Session], world: World, month: Any) -> None:
    weekly = _figures(factory, stats.Selection(world.almaty), bucket="week")
    # 1 November 2026 is a Sunday: its week began on 26 October.
    assert [(day, sum(counts.values())) for day, counts in weekly.series] == [
        (date(2026, 10, 26), 1),
        (date(2026, 11, 2), 2),
        (date(2026, 11, 9), 1),
        (date(2026, 11, 16), 0),
        (date(2026, 11, 23), 0),
        (date(2026, 11, 30), 1),
    ]
    monthly = _figures(factory, stats.Selection(world.almaty), bucket="month")
    assert [(day, sum(c.values())) for day, c in monthly.series] == [(date(2026, 11, 1), 5)]
    with pytest.raises(IncidentError, match="unknown bucket"):
        _figures(factory, stats.Selection(world.almaty), bucket="fortnight")


def test_the_coordinators_constituency(
    factory: sessionmaker[Session], world: World, month: dict[str, int]
) -> None:
    everyone = _figures(factory, stats.Selection(month["cert"], Scope.reported))
    # Reported in November: two of Almaty's and one of Astana's (the other came in December).
    assert everyone.total == 3
    assert everyone.by_organisation == [
        (world.almaty, "Almaty akimat", 2),
        (world.astana, "Astana akimat", 1),
    ]
    times = {d.measure: d for d in everyone.durations}
    assert times["acknowledge"].count == 3
    assert times["acknowledge"].mean_hours == pytest.approx(103 / 3, abs=1e-6)
    # [1, 2, 100]: rank 1.8, so 2 + 0.8 * 98.
    assert times["acknowledge"].p90_hours == pytest.approx(80.4, abs=1e-6)
    # The coordinator places incidents by when they were reported: all on 4 and 20 November.
    assert {day for day, c in everyone.series if any(c.values())} == {
        date(2026, 11, 4),
        date(2026, 11, 20),
    }
    one = _figures(factory, stats.Selection(month["cert"], Scope.reported, world.astana))
    assert (one.total, one.by_organisation) == (1, [(world.astana, "Astana akimat", 1)])
    # Astana counts its own by creation (both in November), never the coordinator's view.
    astana = _figures(factory, stats.Selection(world.astana))
    assert astana.total == 2 and astana.by_severity == {4: 2, 3: 0, 2: 0, 1: 0}


def test_an_empty_period_gives_zeros(
    factory: sessionmaker[Session], world: World, month: dict[str, int]
) -> None:
    with unit_of_work(factory) as session:
        for selection in (
            stats.Selection(world.almaty),
            stats.Selection(month["cert"]),  # the coordinator has no incidents of its own
        ):
            period = figures.month("2025-02", ZONE)
            found = stats.period_stats(session=session, selection=selection, period=period)
            assert found.total == 0 and found.by_class == [] and found.by_organisation == []
            assert set(found.by_status.values()) == {0}
            assert found.by_severity == {4: 0, 3: 0, 2: 0, 1: 0}
            assert len(found.series) == 28
            assert all(not any(counts.values()) for _, counts in found.series)
            assert [(d.count, d.mean_hours, d.p90_hours) for d in found.durations] == [
                (0, None, None)
            ] * 3
            assert list(stats.rows(session=session, selection=selection, period=period)) == []
        nothing = stats.current(session=session, selection=stats.Selection(month["cert"]), now=NOW)
        assert (nothing.open_total, nothing.overdue_total, nothing.overdue) == (0, 0, [])


def test_what_needs_action_now(
    factory: sessionmaker[Session], world: World, month: dict[str, int]
) -> None:
    with unit_of_work(factory) as session:
        now = stats.current(session=session, selection=stats.Selection(world.almaty), now=NOW)
        assert now.open_total == 4
        assert now.open_by_severity == {4: 1, 3: 1, 2: 2, 1: 0}
        assert now.overdue_total == 2
        assert [i.id for i in now.overdue] == [month["two"], month["five"]]  # most overdue first
        limited = stats.current(
            session=session, selection=stats.Selection(world.almaty), now=NOW, limit=1
        )
        assert ([i.id for i in limited.overdue], limited.overdue_total) == ([month["two"]], 2)
        # Of the month's incidents only "two"; the coordinator sees the overdue it was told of.
        assert stats.overdue(
            session=session, selection=stats.Selection(world.almaty), now=NOW, period=NOVEMBER
        ) == ([session.get(Incident, month["two"])], 1)
        coordinator = stats.current(
            session=session, selection=stats.Selection(month["cert"], Scope.reported), now=NOW
        )
        assert [i.id for i in coordinator.overdue] == [month["two"], month["astana_december"]]


def test_report_rows(factory: sessionmaker[Session], world: World, month: dict[str, int]) -> None:
    with unit_of_work(factory) as session:
        found = list(
            stats.rows(session=session, selection=stats.Selection(world.almaty), period=NOVEMBER)
        )
        assert [r.id for r in found] == [
            month[name] for name in ("six", "one", "two", "three", "four")
        ]
        assert {r.organisation for r in found} == {"Almaty akimat"}
        one = found[1]
        assert [one.hours(m) for m in stats.MEASURES] == [1, 5, 25]
        assert (one.overdue(NOW), one.late(NOW)) == (False, ["contain"])
        two = found[2]
        assert [two.hours(m) for m in stats.MEASURES] == [2, None, None]
        assert (two.overdue(NOW), two.late(NOW)) == (True, ["contain"])
        reported = list(
            stats.rows(
                session=session,
                selection=stats.Selection(month["cert"], Scope.reported),
                period=NOVEMBER,
            )
        )
        assert [(r.id, r.organisation) for r in reported] == [
            (month["one"], "Almaty akimat"),
            (month["two"], "Almaty akimat"),
            (month["astana"], "Astana akimat"),
        ]


# --- the arithmetic ---------------------------------------------------------------------------


def test_percentile_as_postgresql_computes_it() -> None:
    assert figures.percentile([], 0.9) is None
    assert figures.percentile([7.0], 0.9) == 7.0
    assert figures.percentile([4, 1, 2, 0.5], 0.9) == pytest.approx(3.4)
    assert figures.percentile([1, 25], 0.9) == pytest.approx(22.6)
    assert figures.percentile(list(range(11)), 0.9) == pytest.approx(9)
    assert figures.percentile([3, 1, 2], 0.5) == 2
    assert figures.rank(4, 0.9) == (2, pytest.approx(0.7))
    with pytest.raises(ValueError):
        figures.rank(0, 0.9)


def test_periods_in_the_local_zone() -> None:
    november = figures.month("2026-11", ZONE)
    assert (november.start, november.end) == (at("2026-10-31T19:00:00"), at("2026-11-30T19:00:00"))
    assert (november.first_day(), november.last_day()) == (date(2026, 11, 1), date(2026, 11, 30))
    december = figures.month("2026-12", ZONE)
    assert december.end == at("2026-12-31T19:00:00")
    # Almaty was UTC+6 until 1 March 2024.
    assert figures.month("2024-01", ZONE).start == at("2023-12-31T18:00:00")
    last = figures.parse_period("30d", at("2026-11-30T20:00:00"), ZONE)  # 1 December locally
    assert (last.first_day(), last.last_day(), last.label) == (
        date(2026, 11, 2),
        date(2026, 12, 1),
        "30d",
    )
    assert figures.auto_bucket(last) == "day"
    assert figures.auto_bucket(figures.parse_period("365d", NOW, ZONE)) == "week"
    for bad in ("2026-13", "2026-1", "November", "1969-12", "31d", ""):
        with pytest.raises(IncidentError):
            figures.parse_period(bad, NOW, ZONE)
    assert figures.bucket_starts(figures.month("2026-02", ZONE), "month") == [date(2026, 2, 1)]
    assert len(figures.bucket_starts(figures.parse_period("365d", NOW, ZONE), "month")) == 13
