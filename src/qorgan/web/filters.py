"""The alert filters shared by the inbox page and the API: one query-string vocabulary."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import HTTPException, Query, Request

from qorgan.incidents.alerts import AlertFilter
from qorgan.incidents.models import AlertLevel, AlertStatus
from qorgan.web.deps import state


def _moment(value: str | None, zone: str, *, end: bool) -> datetime | None:
    """An ISO date-time with its offset, or a date (a whole day in ``zone``; ``end`` means the
    day after it, so ``until=2026-11-23`` includes the 23rd)."""
    if not value:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            if end:
                day += timedelta(days=1)
            return datetime.combine(day, time(), tzinfo=ZoneInfo(zone)).astimezone(UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is not None:
            return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise HTTPException(
            422,
            f"not a date (YYYY-MM-DD) or a date-time with offset, or out of range: {value[:40]!r}",
        ) from None
    raise HTTPException(422, f"a date-time needs its offset (Z or +05:00): {value[:40]!r}")


def alert_filter(
    request: Request,
    level: Annotated[list[AlertLevel] | None, Query(description="Levels to show.")] = None,
    rule: Annotated[str | None, Query(max_length=200, description="A rule id.")] = None,
    host: Annotated[str | None, Query(max_length=255, description="A host name.")] = None,
    kz_cert: Annotated[str | None, Query(max_length=64, description="A KZ-CERT class id.")] = None,
    status: Annotated[
        AlertStatus | Literal[""] | None, Query(description="An alert status (empty: any).")
    ] = None,
    since: Annotated[
        str | None,
        Query(max_length=40, description="From this date (Almaty day) or ISO date-time."),
    ] = None,
    until: Annotated[
        str | None,
        Query(max_length=40, description="Up to this date (inclusive) or ISO date-time."),
    ] = None,
    assignee: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="An assignee's user id.")
    ] = None,
) -> AlertFilter:
    zone = state(request).settings.timezone
    return AlertFilter(
        levels=frozenset(str(v) for v in level or ()),
        rule_id=rule or None,
        host=host or None,
        kz_cert_class=kz_cert or None,
        status=status or None,
        since=_moment(since, zone, end=False),
        until=_moment(until, zone, end=True),
        assignee_id=assignee,
    )
