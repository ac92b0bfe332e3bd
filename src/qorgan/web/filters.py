"""The alert filters shared by the inbox page and the API: one query-string vocabulary.

:func:`filter_params` declares the parameters once. The API turns a bad value into a 422
(:func:`alert_filter`); the inbox page shows the reason beside the form and keeps the rest of
the filters (:func:`page_filter`). Without a ``status`` parameter the inbox shows new alerts
(an empty ``status`` means any); the API then means any.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import Depends, HTTPException, Query, Request

from qorgan.incidents.alerts import AlertError
from qorgan.incidents.inbox import AlertFilter
from qorgan.incidents.models import AlertLevel, AlertStatus
from qorgan.web.deps import state


class FilterError(AlertError):
    """A filter value cannot be read; the message is fit for the user."""


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
        raise FilterError(
            f"not a date (YYYY-MM-DD) or a date-time with offset, or out of range: {value[:40]!r}"
        ) from None
    raise FilterError(f"a date-time needs its offset (Z or +05:00): {value[:40]!r}")


@dataclass(frozen=True)
class FilterParams:
    """The filter parameters as given in the query string."""

    level: list[AlertLevel]
    rule: str | None
    host: str | None
    kz_cert: str | None
    status: AlertStatus | None
    status_given: bool
    since: str | None
    until: str | None
    assignee: int | None
    user: str | None
    address: str | None
    q: str | None

    def to_filter(self, zone: str, *, default_status: AlertStatus | None = None) -> AlertFilter:
        """The filter; :class:`AlertError` when a value cannot be used."""
        status = self.status if self.status_given else default_status
        query = self.q.strip() if self.q else ""
        return AlertFilter(
            levels=frozenset(str(v) for v in self.level),
            rule_id=self.rule or None,
            host=self.host or None,
            kz_cert_class=self.kz_cert or None,
            status=status,
            since=_moment(self.since, zone, end=False),
            until=_moment(self.until, zone, end=True),
            assignee_id=self.assignee,
            user=self.user or None,
            address=self.address or None,
            query=query or None,
        )

    def without_search(self) -> FilterParams:
        return FilterParams(**{**self.__dict__, "q": None})


def filter_params(
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
    user: Annotated[
        str | None, Query(max_length=255, description="A user the alerts are about.")
    ] = None,
    address: Annotated[
        str | None, Query(max_length=64, description="A source or destination IP address.")
    ] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=500,
            description=(
                'Search: every word (or "quoted phrase") must occur, case-insensitively, in '
                "the rule title, host, user, addresses or event text; one term needs 3 "
                "characters or more."
            ),
        ),
    ] = None,
) -> FilterParams:
    return FilterParams(
        level=list(level or ()),
        rule=rule,
        host=host,
        kz_cert=kz_cert,
        status=status or None,
        status_given="status" in request.query_params,
        since=since,
        until=until,
        assignee=assignee,
        user=user,
        address=address,
        q=q,
    )


Params = Annotated[FilterParams, Depends(filter_params)]


def alert_filter(request: Request, params: Params) -> AlertFilter:
    """The API's filter: a value that cannot be used is a 422 with the reason."""
    try:
        return params.to_filter(state(request).settings.timezone)
    except AlertError as exc:
        raise HTTPException(422, exc.message) from None


@dataclass(frozen=True)
class PageFilter:
    """The inbox page's filter, and why a part of the query was left out (shown on the page)."""

    filters: AlertFilter
    error: str | None = None


def page_filter(request: Request, params: Params) -> PageFilter:
    """The inbox's filter: new alerts unless a status is given; a search or date that cannot
    be used is left out and its reason shown, the other filters still apply."""
    zone = state(request).settings.timezone
    try:
        return PageFilter(params.to_filter(zone, default_status=AlertStatus.new))
    except AlertError as exc:
        error = exc.message
    try:
        return PageFilter(
            params.without_search().to_filter(zone, default_status=AlertStatus.new), error
        )
    except AlertError:
        return PageFilter(AlertFilter(status=AlertStatus.new), error)
