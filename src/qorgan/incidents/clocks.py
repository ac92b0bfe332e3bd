"""Incident clocks: time to acknowledge, to contain and to close, against the organisation's
deadlines per KZ-CERT class, and the one-working-day breach-report deadline for incidents that
involve personal data.

Deadlines count in calendar hours, working hours or working days of the working-day calendar
(:mod:`qorgan.core.workdays`: Asia/Almaty, Kazakhstan's holidays and transferred days off, kept
as data). Due times are computed when an incident is created, reclassified or flagged, and
stored on it; :func:`next_due` keeps ``next_due_at`` (the earliest deadline not yet met) so
lists find overdue and soon-due incidents with an index. Service functions take
``*, session`` and never commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from qorgan.core import audit
from qorgan.incidents.lifecycle import IncidentError
from qorgan.incidents.models import Deadline, Incident

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qorgan.core.workdays import WorkCalendar

MEASURES = ("acknowledge", "contain", "close")
UNITS = ("hours", "working_hours", "working_days")
#: The class key of an organisation's default deadlines.
ANY_CLASS = "*"
#: Deadlines of an organisation that has set none (per measure: amount, unit).
DEFAULT_DEADLINES: Mapping[str, tuple[int, str]] = {
    "acknowledge": (4, "working_hours"),
    "contain": (2, "working_days"),
    "close": (10, "working_days"),
}
#: The breach report to the authorised body: one working day (Law on Personal Data, Art. 20-1).
BREACH_REPORT = (1, "working_days")
#: A deadline this close is "due soon" in lists and notifications.
SOON = timedelta(hours=2)
#: Limits on a deadline (a year of working days is the most anyone needs).
MAX_AMOUNT = {"hours": 24 * 365, "working_hours": 9 * 260, "working_days": 260}


def due_at(start: datetime, amount: int, unit: str, calendar: WorkCalendar) -> datetime:
    """The moment a deadline of ``amount`` ``unit`` counted from ``start`` falls due."""
    if unit == "hours":
        return start + timedelta(hours=amount)
    if unit == "working_hours":
        return calendar.add_working_time(start, timedelta(hours=amount))
    if unit == "working_days":
        return calendar.add_working_days(start, amount)
    raise IncidentError(f"unknown deadline unit {unit!r}; use one of {', '.join(UNITS)}")


def deadlines(
    *, session: Session, organisation_id: int, kz_cert_class: str | None
) -> dict[str, tuple[int, str]]:
    """The organisation's deadlines for a class: the class's own, else its default (``*``),
    else :data:`DEFAULT_DEADLINES`, measure by measure."""
    rows = session.scalars(
        select(Deadline).where(
            Deadline.organisation_id == organisation_id,
            Deadline.kz_cert_class.in_([kz_cert_class or ANY_CLASS, ANY_CLASS]),
        )
    ).all()
    result = dict(DEFAULT_DEADLINES)
    for specific in (False, True):  # the default first, then the class's own over it
        for row in rows:
            if (row.kz_cert_class != ANY_CLASS) is specific:
                result[row.measure] = (row.amount, row.unit)
    return result


def all_deadlines(*, session: Session, organisation_id: int) -> list[Deadline]:
    """Every deadline the organisation has set, by class and measure."""
    return list(
        session.scalars(
            select(Deadline)
            .where(Deadline.organisation_id == organisation_id)
            .order_by(Deadline.kz_cert_class, Deadline.measure)
        )
    )


def set_deadline(
    *,
    session: Session,
    organisation_id: int,
    actor_id: int,
    kz_cert_class: str,
    measure: str,
    amount: int | None,
    unit: str = "working_hours",
) -> None:
    """Set (or with ``amount`` None, remove) one deadline; applies to incidents created or
    reclassified afterwards. Audited."""
    if measure not in MEASURES:
        raise IncidentError(f"unknown measure {measure!r}; use one of {', '.join(MEASURES)}")
    if unit not in UNITS:
        raise IncidentError(f"unknown deadline unit {unit!r}; use one of {', '.join(UNITS)}")
    if amount is not None and not 1 <= amount <= MAX_AMOUNT[unit]:
        raise IncidentError(f"a deadline in {unit} must be between 1 and {MAX_AMOUNT[unit]}")
    audit.lock(session)
    row = session.get(Deadline, (organisation_id, kz_cert_class, measure))
    if amount is None:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(
            Deadline(
                organisation_id=organisation_id,
                kz_cert_class=kz_cert_class,
                measure=measure,
                amount=amount,
                unit=unit,
            )
        )
    else:
        row.amount, row.unit = amount, unit
    audit.record(
        "incident.deadline",
        session=session,
        actor=str(actor_id),
        organisation_id=organisation_id,
        target_type="deadline",
        target_id=f"{kz_cert_class}/{measure}",
        details={"amount": amount, "unit": unit},
    )


def schedule(
    incident: Incident, rules: Mapping[str, tuple[int, str]], calendar: WorkCalendar
) -> None:
    """Set the incident's due times from its start and ``rules`` (see :func:`deadlines`)."""
    start = incident.started_at
    incident.acknowledge_due_at = due_at(start, *rules["acknowledge"], calendar)
    incident.contain_due_at = due_at(start, *rules["contain"], calendar)
    incident.close_due_at = due_at(start, *rules["close"], calendar)
    next_due(incident)


def flag_personal_data(incident: Incident, at: datetime, calendar: WorkCalendar) -> None:
    """Start the breach-report clock (once): one working day from ``at``."""
    incident.personal_data = True
    if incident.breach_report_due_at is None:
        incident.breach_report_due_at = due_at(at, *BREACH_REPORT, calendar)
    next_due(incident)


def open_deadlines(incident: Incident) -> dict[str, datetime]:
    """The deadlines not yet met, by measure (``breach_report`` included when running)."""
    if incident.status == "closed":
        return {}
    pending = {
        "acknowledge": None if incident.acknowledged_at else incident.acknowledge_due_at,
        "contain": None if incident.contained_at else incident.contain_due_at,
        "close": incident.close_due_at,
        "breach_report": None if incident.breach_reported_at else incident.breach_report_due_at,
    }
    return {measure: due for measure, due in pending.items() if due is not None}


def next_due(incident: Incident) -> None:
    """Keep ``next_due_at``: the earliest deadline still open (None when none is)."""
    pending = open_deadlines(incident)
    incident.next_due_at = min(pending.values()) if pending else None


@dataclass(frozen=True, slots=True)
class Clock:
    """One measure of an incident as a page shows it."""

    measure: str
    due_at: datetime | None
    met_at: datetime | None
    #: ``met``, ``met_late``, ``running``, ``soon``, ``overdue`` or ``none`` (no deadline).
    state: str
    #: Time from the incident's start to the moment met (or to now, while running).
    elapsed: timedelta


def clocks(incident: Incident, now: datetime) -> list[Clock]:
    """The incident's clocks: acknowledge, contain, close, and the breach report if running."""
    measures = [
        ("acknowledge", incident.acknowledge_due_at, incident.acknowledged_at),
        ("contain", incident.contain_due_at, incident.contained_at),
        ("close", incident.close_due_at, incident.closed_at),
    ]
    if incident.personal_data:
        measures.append(
            ("breach_report", incident.breach_report_due_at, incident.breach_reported_at)
        )
    result = []
    for measure, due, met in measures:
        if met is not None:
            state = "met_late" if due is not None and met > due else "met"
        elif due is None or incident.status == "closed":
            state = "none"
        elif now > due:
            state = "overdue"
        elif due - now <= SOON:
            state = "soon"
        else:
            state = "running"
        elapsed = (met or now) - incident.started_at
        result.append(Clock(measure, due, met, state, max(elapsed, timedelta(0))))
    return result


def state(incident: Incident, now: datetime) -> str:
    """``overdue``, ``soon`` or ``ok``: how a list flags the incident."""
    if incident.next_due_at is None:
        return "ok"
    if now > incident.next_due_at:
        return "overdue"
    return "soon" if incident.next_due_at - now <= SOON else "ok"
