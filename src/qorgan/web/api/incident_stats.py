"""Incident statistics over the API: a period's counts, series and times, and what is open and
overdue now; the dashboard's charts are drawn from it. Thin: the figures are
:mod:`qorgan.incidents.stats`'.

The coordinator's view (``scope=reported``: the incidents reported to the caller's
organisation, optionally from one ``reporter``) needs ``incidents:coordinate``; without it the
answer is a 403. Registered before the incidents router, so ``/incidents/stats`` is not read as
an incident id.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from qorgan.core.db import utcnow
from qorgan.core.roles import Permission
from qorgan.incidents import figures, stats
from qorgan.incidents.lifecycle import RANK_SEVERITY, IncidentError
from qorgan.incidents.listing import Scope
from qorgan.web.deps import Actor, Db, api_actor, state
from qorgan.web.i18n import _l

router = APIRouter(prefix="/incidents", tags=["incidents"])
Reader = Annotated[Actor, Depends(api_actor(Permission.incidents_read))]
ReporterId = Annotated[
    int | None,
    Query(ge=1, le=2**31 - 1, description="Coordinator scope: one reporting organisation's."),
]
PeriodText = Annotated[
    str,
    Query(
        alias="period",
        max_length=16,
        description="7d, 30d, 90d, 365d (local days up to today) or a month, YYYY-MM.",
    ),
]


def selection(actor: Actor, scope: Scope, reporter: int | None) -> stats.Selection:
    """Whose incidents the caller asked for; the coordinator's view needs its permission."""
    if scope is Scope.reported:
        if not actor.can(Permission.incidents_coordinate):
            raise HTTPException(403, _l("your role does not allow the coordinator's view"))
        return stats.Selection(actor.organisation_id, Scope.reported, reporter)
    return stats.Selection(actor.organisation_id)


def period(request: Request, text: str, now: datetime) -> figures.Period:
    """The period named by ``text`` in the console's zone (400 when it names none)."""
    try:
        return figures.parse_period(text, now, state(request).settings.timezone)
    except IncidentError as exc:
        raise HTTPException(400, exc.message) from None


class PeriodOut(BaseModel):
    label: str = Field(description="As asked: 30d, 2026-11, ...")
    start: datetime = Field(description="Its first moment (UTC).")
    end: datetime = Field(description="The moment after its last (UTC).")
    zone: str = Field(description="The zone its days are counted in.")
    first_day: date
    last_day: date


class KeyCount(BaseModel):
    key: str | None = Field(description="The class, status or severity (null: unclassified).")
    count: int


class OrganisationCount(BaseModel):
    id: int
    name: str
    count: int


class SeriesPoint(BaseModel):
    bucket: date = Field(description="The bucket's first local day (weeks begin on Monday).")
    counts: dict[str, int] = Field(description="Incidents per severity.")


class DurationOut(BaseModel):
    measure: Literal["acknowledge", "contain", "close"]
    count: int = Field(description="Incidents of the period that reached the moment.")
    mean_hours: float | None = Field(description="From the start to the moment, on average.")
    p90_hours: float | None = Field(description="The 90th percentile (interpolated).")


class OpenOut(BaseModel):
    total: int = Field(description="Open incidents now, whatever the period.")
    by_severity: dict[str, int]
    overdue: int = Field(description="Open incidents whose next deadline has passed.")


class StatsOut(BaseModel):
    scope: Scope
    reporter_id: int | None
    period: PeriodOut
    bucket: Literal["day", "week", "month"]
    total: int = Field(
        description="Incidents created in the period (reported, for scope=reported)."
    )
    by_class: list[KeyCount]
    by_status: list[KeyCount]
    by_severity: list[KeyCount]
    by_organisation: list[OrganisationCount] = Field(description="scope=reported only.")
    series: list[SeriesPoint]
    times: list[DurationOut]
    open: OpenOut


def _severity(rank: int) -> str:
    return RANK_SEVERITY[rank].value if rank in RANK_SEVERITY else str(rank)


def stats_out(selection_: stats.Selection, found: stats.Stats, now_: stats.Current) -> StatsOut:
    """The API's shape of a period's figures and the present state."""
    p = found.period
    return StatsOut(
        scope=selection_.scope,
        reporter_id=selection_.reporter_id,
        period=PeriodOut(
            label=p.label,
            start=p.start,
            end=p.end,
            zone=p.zone,
            first_day=p.first_day(),
            last_day=p.last_day(),
        ),
        bucket=found.bucket,  # type: ignore[arg-type]
        total=found.total,
        by_class=[KeyCount(key=k, count=n) for k, n in found.by_class],
        by_status=[KeyCount(key=k, count=n) for k, n in found.by_status.items()],
        by_severity=[KeyCount(key=_severity(k), count=n) for k, n in found.by_severity.items()],
        by_organisation=[
            OrganisationCount(id=i, name=name, count=n) for i, name, n in found.by_organisation
        ],
        series=[
            SeriesPoint(bucket=day, counts={_severity(k): n for k, n in counts.items()})
            for day, counts in found.series
        ],
        times=[
            DurationOut(
                measure=d.measure,  # type: ignore[arg-type]
                count=d.count,
                mean_hours=d.mean_hours,
                p90_hours=d.p90_hours,
            )
            for d in found.durations
        ],
        open=OpenOut(
            total=now_.open_total,
            by_severity={_severity(k): n for k, n in now_.open_by_severity.items()},
            overdue=now_.overdue_total,
        ),
    )


@router.get("/stats", response_model=StatsOut, summary="Incident statistics")
def incident_stats(
    request: Request,
    db: Db,
    actor: Reader,
    period_: PeriodText = figures.DEFAULT_PERIOD,
    bucket: Literal["auto", "day", "week", "month"] = "auto",
    scope: Annotated[Scope, Query(description="own, or reported (coordinator).")] = Scope.own,
    reporter: ReporterId = None,
) -> StatsOut:
    """A period's incidents counted by KZ-CERT class, status, severity and (coordinator)
    reporting organisation, per day, week or month (``auto``: from the period's length), with
    the mean and 90th percentile of the times to acknowledge, contain and close; and the open
    and overdue incidents now."""
    chosen = selection(actor, scope, reporter)
    now = utcnow()
    found = stats.period_stats(
        session=db,
        selection=chosen,
        period=period(request, period_, now),
        bucket=None if bucket == "auto" else bucket,
    )
    current = stats.current(session=db, selection=chosen, now=now, limit=0)
    return stats_out(chosen, found, current)
