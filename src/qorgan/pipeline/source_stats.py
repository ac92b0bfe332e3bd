"""The collector's figures in the database: counts per source and per ten seconds, the newest
problems, silences (services: ``*, session``, no commit), and reading them for the Sources page.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from qorgan.incidents.alerts import ingest
from qorgan.pipeline.alerting import collector_alert
from qorgan.pipeline.detector import Progress
from qorgan.pipeline.intake import PROBLEMS_KEPT, SourceCounts
from qorgan.pipeline.models import LogSource, SourceProblem, SourceRate

#: Seconds per bucket of the rate chart.
BUCKET = 10
#: How long rate buckets are kept.
RATES_KEPT = timedelta(days=2)
ACTOR = "collector"


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def flush(
    *, session: Session, counts: Mapping[int, SourceCounts], progress: Progress | None = None
) -> None:
    """Add the intake's ``counts`` and detection's ``progress`` to the sources' figures."""
    ids = set(counts)
    if progress is not None:
        ids |= set(progress.failures) | set(progress.analysed)
    sources = {s.id: s for s in session.scalars(select(LogSource).where(LogSource.id.in_(ids)))}
    for source_id, c in counts.items():
        source = sources.get(source_id)
        if source is None:
            continue
        source.events += c.events
        source.received_bytes += c.received_bytes
        source.dropped += c.dropped
        source.malformed += c.malformed
        if c.last_event:
            last = _at(c.last_event)
            if source.last_event_at is None or source.last_event_at < last:
                source.last_event_at = last
        for start, (events, size, dropped, failures) in c.buckets.items():
            _add_rate(session, source_id, _at(start), events, size, dropped, failures)
        _problems(session, source_id, c.problems)
    if progress is not None:
        bucket = _at(datetime.now(UTC).timestamp() // BUCKET * BUCKET)
        for source_id, failures in progress.failures.items():
            source = sources.get(source_id)
            if source is not None:
                source.parse_failures += failures
                _add_rate(session, source_id, bucket, 0, 0, 0, failures)
                _problems(session, source_id, progress.problems.get(source_id, ()))
        for source_id, received in progress.analysed.items():
            source = sources.get(source_id)
            through = _at(received)
            if source is not None and (
                source.analysed_through is None or source.analysed_through < through
            ):
                source.analysed_through = through
    session.flush()
    _trim_problems(session, {*counts, *(progress.failures if progress else ())} & set(sources))


def _problems(session: Session, source_id: int, problems: Iterable[tuple[float, str, str]]) -> None:
    for at, reason, text in problems:
        session.add(
            SourceProblem(
                source_id=source_id, at=_at(at), reason=_clean(reason), excerpt=_clean(text)
            )
        )


def _clean(text: str) -> str:
    """Storable on every backend: no NUL (PostgreSQL refuses it), no lone surrogate."""
    return text[:300].replace("\x00", "\\0").encode("utf-8", "replace").decode("utf-8")


def _add_rate(
    session: Session,
    source_id: int,
    bucket: datetime,
    events: int,
    size: int,
    dropped: int,
    failures: int,
) -> None:
    row = session.get(SourceRate, (source_id, bucket))
    if row is None:
        session.add(
            SourceRate(
                source_id=source_id,
                bucket=bucket,
                events=events,
                received_bytes=size,
                dropped=dropped,
                failures=failures,
            )
        )
        session.flush()
    else:
        row.events += events
        row.received_bytes += size
        row.dropped += dropped
        row.failures += failures


def _trim_problems(session: Session, source_ids: Collection[int]) -> None:
    for source_id in source_ids:
        keep = select(SourceProblem.id).where(SourceProblem.source_id == source_id)
        keep = keep.order_by(SourceProblem.id.desc()).limit(PROBLEMS_KEPT)
        session.execute(
            delete(SourceProblem).where(
                SourceProblem.source_id == source_id,
                SourceProblem.id.not_in(keep.scalar_subquery()),
            )
        )


def prune_rates(*, session: Session, now: datetime) -> None:
    session.execute(delete(SourceRate).where(SourceRate.bucket < now - RATES_KEPT))


# --------------------------------------------------------------------------- alerts


def check_silence(*, session: Session, now: datetime) -> list[int]:
    """Raise an alert for each enabled source silent past its expected interval (once per
    silence), and end the silence of those that sent again; the ids newly silent."""
    silent = []
    enabled = select(LogSource).where(LogSource.enabled.is_(True)).order_by(LogSource.id)
    for source in session.scalars(enabled):
        last = source.last_event_at or source.created_at
        if source.silent_since is not None:
            if source.last_event_at is not None and source.last_event_at > source.silent_since:
                source.silent_since = None
            continue
        if now - last > timedelta(seconds=source.expected_interval):
            source.silent_since = now
            silent.append(source.id)
            alert = collector_alert(
                "silent",
                at=now,
                record=int(last.timestamp()),
                host=None,
                event={
                    "source": source.name,
                    "transport": str(source.transport),
                    "last_event": last.isoformat() if source.last_event_at else None,
                    "expected_interval_seconds": source.expected_interval,
                },
            )
            ingest(
                session=session,
                organisation_id=source.organisation_id,
                alerts=[alert],
                actor=ACTOR,
            )
    return silent


def alert_drops(*, session: Session, counts: Mapping[int, SourceCounts], now: datetime) -> None:
    """One alert per source and ten minutes in which the intake dropped its events."""
    window = int(now.timestamp() // 600)
    for source_id, c in counts.items():
        if not c.dropped:
            continue
        source = session.get(LogSource, source_id)
        if source is None:
            continue
        reason = c.problems[-1][1] if c.problems else "dropped"
        ingest(
            session=session,
            organisation_id=source.organisation_id,
            alerts=[
                collector_alert(
                    "dropped",
                    at=now,
                    record=source_id * 10_000_000 + window,
                    host=None,
                    event={"source": source.name, "dropped": c.dropped, "reason": reason},
                )
            ],
            actor=ACTOR,
        )


def alert_udp_errors(*, session: Session, errors: int, now: datetime) -> None:
    """An alert to each organisation with UDP sources: the kernel dropped ``errors`` more
    datagrams (once per ten minutes)."""
    window = int(now.timestamp() // 600)
    orgs = session.scalars(
        select(LogSource.organisation_id)
        .where(LogSource.transport == "udp", LogSource.enabled.is_(True))
        .distinct()
    ).all()
    for org in orgs:
        ingest(
            session=session,
            organisation_id=org,
            alerts=[
                collector_alert(
                    "udp", at=now, record=window, host=None, event={"receive_errors": errors}
                )
            ],
            actor=ACTOR,
        )


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Rate:
    at: datetime
    events: int
    dropped: int
    failures: int


def rates(
    *, session: Session, source_ids: Collection[int], since: datetime
) -> dict[int, list[Rate]]:
    """Each source's ten-second counts since ``since``, oldest first."""
    out: dict[int, list[Rate]] = {i: [] for i in source_ids}
    rows = session.execute(
        select(SourceRate)
        .where(SourceRate.source_id.in_(list(source_ids)), SourceRate.bucket >= since)
        .order_by(SourceRate.source_id, SourceRate.bucket)
    ).scalars()
    for row in rows:
        out[row.source_id].append(Rate(row.bucket, row.events, row.dropped, row.failures))
    return out


def problems(*, session: Session, source_id: int) -> list[SourceProblem]:
    return list(
        session.scalars(
            select(SourceProblem)
            .where(SourceProblem.source_id == source_id)
            .order_by(SourceProblem.id.desc())
        )
    )
