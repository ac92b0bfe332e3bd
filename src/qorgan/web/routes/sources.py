"""The Sources pages: which live log sources send, which went silent, drop or fail, and how far
detection is behind; a live chart of events per second; registering and changing a source.

``/sources`` lists the sources the user may read (the organisation's own and those of
organisations sharing their alerts with it), those needing attention first. Its figures and
chart data come in a fragment (``/sources/live``) that the page polls every few seconds with
htmx; ``static/sources.js`` redraws the chart in place from it. ``/sources/{id}`` is one
source: figures, chart, the newest problems (quarantined messages with the reason), how to
send to it, and, for ``sources:configure`` in its own organisation, the edit form and (HTTP)
a new token. A token is shown in the answer that made it and never again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from babel.dates import format_timedelta
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from qorgan.core.db import utcnow
from qorgan.core.models import Organisation
from qorgan.core.roles import Permission
from qorgan.pipeline import source_health, source_stats
from qorgan.pipeline import sources as service
from qorgan.pipeline.models import LogSource, Overflow, Transport
from qorgan.pipeline.source_health import WINDOW, Health
from qorgan.pipeline.sources import SourceError
from qorgan.web.api.sources import commit, visible
from qorgan.web.deps import Actor, Db, RecordId, page_actor, state
from qorgan.web.i18n import _l, translations
from qorgan.web.templating import render, request_language

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, Depends(page_actor(Permission.sources_read))]
Configurer = Annotated[Actor, Depends(page_actor(Permission.sources_configure))]
#: Seconds between the pages' polls of their live fragment.
POLL_SECONDS = 5
#: Sources drawn on the list's chart (the busiest); the rest are summed as one line.
CHART_SOURCES = 8

STATE_LABELS = {
    "live": _l("Live"),
    "silent": _l("Silent"),
    "never": _l("Never sent"),
    "disabled": _l("Disabled"),
}
TRANSPORT_LABELS = {
    "udp": _l("Syslog over UDP"),
    "tcp": _l("Syslog over TCP"),
    "tls": _l("Syslog over TLS"),
    "relp": _l("RELP (reliable syslog)"),
    "http": _l("HTTP ingest"),
}
OVERFLOW_LABELS = {
    "wait": _l("Hold the sender back"),
    "drop": _l("Drop and count"),
}
#: The source service's refusals, read back by pattern so the page says them translated.
REFUSALS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), message)
    for pattern, message in (
        (r"not an address or network: (?P<value>.+)", _l("not an address or network: %(value)s")),
        (
            r"a source's name is 1 to (?P<max>\d+) printable characters",
            _l("a source's name is 1 to %(max)s printable characters"),
        ),
        (
            r"unknown live format (?P<format>.+); known: (?P<known>.+)",
            _l("unknown live format %(format)s; known: %(known)s"),
        ),
        (r"unknown time zone (?P<zone>.+)", _l("unknown time zone %(zone)s")),
        (
            r"the expected interval is 10 seconds to 30 days",
            _l("the expected interval is 10 seconds to 30 days"),
        ),
        (
            r"source (?P<name>.+) already takes these senders over (?P<transport>\w+); give each "
            r"source its own addresses or certificate name",
            _l(
                "source %(name)s already takes these senders over %(transport)s; give each "
                "source its own addresses or certificate name"
            ),
        ),
        (
            r"the organisation already has a source named (?P<name>.+)",
            _l("the organisation already has a source named %(name)s"),
        ),
        (r"only HTTP sources have tokens", _l("only HTTP sources have tokens")),
        (
            r"the expected interval is a number of seconds",
            _l("the expected interval is a number of seconds"),
        ),
    )
)


def refusal(message: str, language: str) -> str:
    """A service's refusal in ``language`` (as written when it is not one of :data:`REFUSALS`),
    as a sentence."""
    gettext = translations(language).gettext
    text = message
    for pattern, template in REFUSALS:
        found = pattern.fullmatch(message)
        if found is not None:
            text = gettext(template) % found.groupdict()
            break
    return text[:1].upper() + text[1:]


# --------------------------------------------------------------------------- shared views


def collector_of(request: Request) -> Any:
    """The collector running in this process, or None (``qorgan collect`` may run elsewhere)."""
    return getattr(request.app.state, "collector", None)


def _ago(value: datetime | None, now: datetime, language: str) -> str:
    if value is None:
        return "—"
    return format_timedelta(
        min(value - now, timedelta(0)), add_direction=True, threshold=1.5, locale=language
    )


def _span(seconds: float | None, language: str) -> str:
    if seconds is None:
        return "—"
    return format_timedelta(timedelta(seconds=seconds), threshold=1.5, locale=language)


def _local(value: datetime, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def chart(
    rates: Mapping[int, Sequence[source_stats.Rate]],
    lines: Sequence[tuple[str, Callable[[source_stats.Rate], int], Sequence[int]]],
    now: datetime,
    zone: ZoneInfo,
) -> dict[str, Any]:
    """The chart's figure for ``static/sources.js``: local bucket times over the last
    :data:`WINDOW` (every bucket, also empty ones, so the line moves on) and one line per
    ``(name, what to count, source ids)``, in events per second."""
    step = source_stats.BUCKET
    last = int(now.timestamp()) // step * step
    first = last - int(WINDOW.total_seconds()) + step
    starts = list(range(first, last + step, step))
    x = [_local(datetime.fromtimestamp(s, zone), zone) for s in starts]
    traces = []
    for name, measure, ids in lines:
        counts = dict.fromkeys(starts, 0)
        for source_id in ids:
            for rate in rates.get(source_id, ()):
                key = int(rate.at.timestamp())
                if key in counts:
                    counts[key] += measure(rate)
        traces.append({"name": name, "y": [round(counts[s] / step, 2) for s in starts]})
    return {"x": x, "traces": traces}


def _organisations(db: Db, ids: Sequence[int]) -> dict[int, str]:
    if len(ids) < 2:
        return {}
    rows = db.execute(select(Organisation.id, Organisation.name).where(Organisation.id.in_(ids)))
    return dict(rows.all())


def _banners(request: Request) -> dict[str, Any]:
    collector = collector_of(request)
    if collector is None:
        return {"collector": None}
    intake = collector.intake
    return {
        "collector": {
            "backlog": intake.lag,
            "max_lag": intake.max_lag,
            "log_mib": intake.log_bytes >> 20,
            "max_log_mib": intake.max_log_bytes >> 20,
            "overloaded": intake.overloaded,
        }
    }


def _row(source: LogSource, health: Health, now: datetime, language: str, zone: ZoneInfo) -> Any:
    return {
        "source": source,
        "health": health,
        "last_ago": _ago(source.last_event_at, now, language),
        "last_local": _local(source.last_event_at, zone) if source.last_event_at else "",
        "lag": _span(health.lag_seconds, language),
    }


def _list_context(request: Request, db: Db, actor: Actor) -> dict[str, Any]:
    now = utcnow()
    language = request_language(request)
    zone = ZoneInfo(state(request).settings.timezone)
    organisation_ids = visible(db, actor)
    sources = service.list_sources(session=db, organisation_ids=organisation_ids)
    found = source_health.overview(session=db, sources=sources, now=now)
    busiest = sorted(
        found.rows,
        key=lambda row: -sum(r.events for r in found.rates.get(row[0].id, ())),
    )
    lines: list[tuple[str, Callable[[source_stats.Rate], int], Sequence[int]]] = [
        (source.name, _events, [source.id]) for source, _h in busiest[:CHART_SOURCES]
    ]
    rest = [source.id for source, _h in busiest[CHART_SOURCES:]]
    if rest:
        lines.append((translations(language).gettext(_l("Other sources")), _events, rest))
    return {
        "rows": [_row(s, h, now, language, zone) for s, h in found.rows],
        "attention": sum(1 for _s, h in found.rows if h.attention),
        "organisations": _organisations(db, organisation_ids),
        "figure": chart(found.rates, lines, now, zone),
        "poll": POLL_SECONDS,
        **_vocabulary(),
        **_banners(request),
    }


def _events(rate: source_stats.Rate) -> int:
    return rate.events


def _dropped(rate: source_stats.Rate) -> int:
    return rate.dropped


def _failures(rate: source_stats.Rate) -> int:
    return rate.failures


# --------------------------------------------------------------------------- the list


@router.get("/sources")
def sources_page(request: Request, db: Db, actor: Reader) -> Response:
    return render(request, "sources.html", _list_context(request, db, actor))


@router.get("/sources/live")
def sources_live(request: Request, db: Db, actor: Reader) -> Response:
    """The list's polled fragment: banners, the table and the chart's data."""
    return render(request, "_sources_live.html", _list_context(request, db, actor))


# --------------------------------------------------------------------------- registering


def _form_values(**values: str) -> dict[str, str]:
    defaults = {
        "name": "",
        "transport": "tcp",
        "format": "syslog",
        "timezone": "Asia/Almaty",
        "senders": "",
        "certificate_cn": "",
        "expected_interval": "900",
        "overflow": "wait",
    }
    return {**defaults, **{k: v for k, v in values.items() if v is not None}}


def _form_page(
    request: Request, values: dict[str, str], error: str | None = None, status: int = 200
) -> Response:
    return render(
        request,
        "source_form.html",
        {"values": values, "error": error, **_vocabulary()},
        status_code=status,
    )


def _vocabulary() -> dict[str, Any]:
    return {
        "transports": list(Transport),
        "formats": list(service.LIVE_FORMATS),
        "overflows": list(Overflow),
        "transport_names": TRANSPORT_LABELS,
        "overflow_names": OVERFLOW_LABELS,
        "state_names": STATE_LABELS,
    }


def _senders(text: str) -> list[str]:
    return [s for s in re.split(r"[\s,]+", text) if s]


def _interval(text: str) -> int:
    if not text.strip().isdigit() or len(text.strip()) > 8:
        raise SourceError("the expected interval is a number of seconds")
    return int(text.strip())


@router.get("/sources/new")
def new_source(request: Request, actor: Configurer) -> Response:
    return _form_page(request, _form_values())


@router.post("/sources")
def create_source(
    request: Request,
    db: Db,
    actor: Configurer,
    name: Annotated[str, Form(max_length=service.NAME_MAX)],
    transport: Annotated[str, Form(max_length=8)],
    format: Annotated[str, Form(max_length=32)],
    timezone: Annotated[str, Form(max_length=64)] = "Asia/Almaty",
    senders: Annotated[str, Form(max_length=10_000)] = "",
    certificate_cn: Annotated[str, Form(max_length=255)] = "",
    expected_interval: Annotated[str, Form(max_length=16)] = "900",
    overflow: Annotated[str, Form(max_length=8)] = "wait",
) -> Response:
    """Register a source in the user's organisation; an HTTP source's token is on the answer,
    once."""
    values = _form_values(
        name=name,
        transport=transport,
        format=format,
        timezone=timezone,
        senders=senders,
        certificate_cn=certificate_cn,
        expected_interval=expected_interval,
        overflow=overflow,
    )
    try:
        if transport not in set(Transport) or overflow not in set(Overflow):
            raise HTTPException(400, _l("invalid form"))  # only a made-up request gives them
        source, token = service.create_source(
            session=db,
            organisation_id=actor.organisation_id,
            actor=actor.id,
            created_by=actor.user.id,
            name=name,
            transport=transport,
            format=format,
            timezone=timezone.strip(),
            senders=_senders(senders),
            certificate_cn=certificate_cn,
            expected_interval=_interval(expected_interval),
            overflow=overflow,
        )
        commit(db, name.strip())
    except SourceError as exc:
        db.rollback()
        message = refusal(exc.message, request_language(request))
        return _form_page(request, values, message, status=400)
    if token is None:
        return RedirectResponse(f"/sources/{source.id}", status_code=303)
    return _source_page(request, db, actor, source, token=token, status=201)


# --------------------------------------------------------------------------- one source


#: Listener hosts that mean every address: senders reach them by the server's own name.
WILDCARDS = ("0.0.0.0", "::", "[::]")


def _address(request: Request, transport: Transport) -> str | None:
    """Where a sender of ``transport`` sends: the listener's address as set (its bound port
    when the collector runs here; a wildcard host as the console's own name)."""
    settings = state(request).settings
    collector = collector_of(request)
    public = urlsplit(settings.public_url)
    if transport is Transport.http:
        if collector is not None:
            return settings.public_url.rstrip("/") + "/api/v1/ingest"
        if settings.collect_http is None:
            return None
        host, _, port = settings.collect_http.rpartition(":")
        if host in WILDCARDS:
            host = public.hostname or host
        return f"http://{host}:{port}/api/v1/ingest"
    configured = {
        Transport.udp: settings.collect_udp,
        Transport.tcp: settings.collect_tcp,
        Transport.tls: settings.collect_tls,
        Transport.relp: settings.collect_relp,
    }[transport]
    if configured is None:
        return None
    host, _, port = configured.rpartition(":")
    if collector is not None:
        bound = collector.ports.get(transport.value)
        if bound is None:
            return None
        port = str(bound)
    if host in WILDCARDS:
        host = public.hostname or host
    return f"{host}:{port}"


def _live_context(request: Request, db: Db, source: LogSource) -> dict[str, Any]:
    now = utcnow()
    language = request_language(request)
    zone = ZoneInfo(state(request).settings.timezone)
    found = source_health.overview(session=db, sources=[source], now=now)
    _source, health = found.rows[0]
    gettext = translations(language).gettext
    lines: list[tuple[str, Callable[[source_stats.Rate], int], Sequence[int]]] = [
        (gettext(_l("Events")), _events, [source.id]),
        (gettext(_l("Dropped")), _dropped, [source.id]),
        (gettext(_l("Parse failures")), _failures, [source.id]),
    ]
    return {
        "source": source,
        "row": _row(source, health, now, language, zone),
        "problems": source_stats.problems(session=db, source_id=source.id),
        "figure": chart(found.rates, lines, now, zone),
        "poll": POLL_SECONDS,
        **_vocabulary(),
        **_banners(request),
    }


def _source_page(
    request: Request,
    db: Db,
    actor: Actor,
    source: LogSource,
    *,
    token: str | None = None,
    error: str | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    own = source.organisation_id == actor.organisation_id
    organisation = db.get(Organisation, source.organisation_id)
    context = {
        **_live_context(request, db, source),
        "own": own,
        "organisation": organisation.name if organisation else "",
        "configure": own and actor.can(Permission.sources_configure),
        "address": _address(request, Transport(source.transport)) if own else None,
        "token": token,
        "error": error,
        "saved": request.query_params.get("saved") == "1",
        "values": values
        or _form_values(
            format=source.format,
            timezone=source.timezone,
            senders="\n".join(source.senders),
            certificate_cn=source.certificate_cn or "",
            expected_interval=str(source.expected_interval),
            overflow=str(source.overflow),
        ),
    }
    return render(request, "source.html", context, status_code=status)


def _found(db: Db, organisation_ids: Sequence[int], source_id: int) -> LogSource:
    source = service.get_source(session=db, organisation_ids=organisation_ids, source_id=source_id)
    if source is None:
        raise HTTPException(404, _l("Not found"))
    return source


@router.get("/sources/{source_id}")
def source_page(request: Request, db: Db, actor: Reader, source_id: RecordId) -> Response:
    return _source_page(request, db, actor, _found(db, visible(db, actor), source_id))


@router.get("/sources/{source_id}/live")
def source_live(request: Request, db: Db, actor: Reader, source_id: RecordId) -> Response:
    """The source page's polled fragment: figures, problems and the chart's data."""
    source = _found(db, visible(db, actor), source_id)
    return render(request, "_source_live.html", _live_context(request, db, source))


@router.post("/sources/{source_id}")
def edit_source(
    request: Request,
    db: Db,
    actor: Configurer,
    source_id: RecordId,
    format: Annotated[str, Form(max_length=32)] = "",
    timezone: Annotated[str, Form(max_length=64)] = "",
    senders: Annotated[str, Form(max_length=10_000)] = "",
    certificate_cn: Annotated[str, Form(max_length=255)] = "",
    expected_interval: Annotated[str, Form(max_length=16)] = "",
    overflow: Annotated[str, Form(max_length=8)] = "",
    enabled: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Change the source as the form says (a field left out keeps its value, except the
    senders, the certificate name and ``enabled``, which the form always sends)."""
    source = _found(db, [actor.organisation_id], source_id)
    format = format or source.format
    timezone = timezone or source.timezone
    expected_interval = expected_interval or str(source.expected_interval)
    overflow = overflow or str(source.overflow)
    try:
        if overflow not in set(Overflow):
            raise HTTPException(400, _l("invalid form"))
        service.edit_source(
            session=db,
            source=source,
            actor=actor.id,
            format=format,
            timezone=timezone.strip(),
            senders=_senders(senders),
            certificate_cn=certificate_cn,
            expected_interval=_interval(expected_interval),
            overflow=overflow,
            enabled=bool(enabled),
        )
        db.commit()
    except SourceError as exc:
        db.rollback()
        values = _form_values(
            format=format,
            timezone=timezone,
            senders=senders,
            certificate_cn=certificate_cn,
            expected_interval=expected_interval,
            overflow=overflow,
        )
        message = refusal(exc.message, request_language(request))
        return _source_page(request, db, actor, source, error=message, values=values, status=400)
    return RedirectResponse(f"/sources/{source.id}?saved=1", status_code=303)


@router.post("/sources/{source_id}/token")
def rotate_token(request: Request, db: Db, actor: Configurer, source_id: RecordId) -> Response:
    """A new token for an HTTP source, shown on this answer only; the old one stops at once."""
    source = _found(db, [actor.organisation_id], source_id)
    try:
        token = service.rotate_token(session=db, source=source, actor=actor.id)
    except SourceError as exc:
        raise HTTPException(400, exc.message) from None
    db.commit()
    return _source_page(request, db, actor, source, token=token)
