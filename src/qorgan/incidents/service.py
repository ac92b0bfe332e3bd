"""Incidents: created from alerts (picked, or all matching a filter), from a report or by hand;
alerts added, incidents merged and split with their history kept; moved through the lifecycle,
assigned, classified and edited.

Service functions take ``*, session`` and never commit. Every change is a timeline event on the
incident (``incident_events``) and an entry in the audit trail. Only the incident's own
organisation changes it; the national coordinator it was reported to reads it
(:func:`visible`) and writes in its thread (``qorgan.incidents.reporting``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, or_, select, update

from qorgan.core import audit
from qorgan.core.db import utcnow
from qorgan.core.models import User
from qorgan.core.roles import ROLE_PERMISSIONS, Permission
from qorgan.core.tlp import Pap, Tlp
from qorgan.incidents import clocks, similar
from qorgan.incidents.inbox import NO_FILTER, AlertFilter, filtered
from qorgan.incidents.lifecycle import (
    RANK_SEVERITY,
    SEVERITY_RANK,
    IncidentError,
    NotFound,
    Resolution,
    Severity,
    Status,
    check_move,
    contains,
    derive_severity,
)
from qorgan.incidents.models import (
    Asset,
    Incident,
    IncidentAlert,
    IncidentAsset,
    IncidentEvent,
    IncidentObservable,
    StoredAlert,
)
from qorgan.incidents.observables import KINDS, incident_observables

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qorgan.core.workdays import WorkCalendar

#: Alerts one incident may take in one step (a larger set: narrow the filter first).
MAX_ALERTS = 100_000
#: Alerts whose events are read for observables when an incident takes many.
OBSERVABLE_SAMPLE = 2_000
#: Observables kept per incident from its alerts (those added by hand are not counted).
MAX_OBSERVABLES = 1_000
MAX_TAGS = 50
#: Fields :func:`update` may change, with what each must be.
EDITABLE = (
    "title",
    "description",
    "kz_cert_class",
    "rsit_class",
    "rsit_type",
    "tlp",
    "pap",
    "tags",
    "personal_data",
    "criminal_code",
)
ARTICLES = tuple(str(n) for n in range(205, 214))


#: What an incident's timeline records (``incident_events.kind``); each is also audited as
#: ``incident.<kind>``.
EVENT_KINDS = (
    "created",
    "alerts_added",
    "status",
    "assigned",
    "updated",
    "severity",
    "assets",
    "merged_into",
    "merged_from",
    "split_to",
    "split_from",
    "observable",
    "template",
    "task_added",
    "task",
    "note",
    "evidence_added",
    "reported",
    "message",
    "articles",
    "referral",
)
AUDIT_ACTIONS = frozenset(f"incident.{kind}" for kind in EVENT_KINDS)


def reference(incident_id: int) -> str:
    """The incident's reference as people quote it."""
    return f"INC-{incident_id:06d}"


@dataclass(slots=True)
class Draft:
    """What a person gives when creating an incident; blanks are filled from the alerts."""

    title: str = ""
    description: str = ""
    kz_cert_class: str | None = None
    rsit_class: str | None = None
    rsit_type: str | None = None
    tlp: str = Tlp.amber.value
    pap: str = Pap.amber.value
    tags: list[str] = field(default_factory=list)
    personal_data: bool = False
    assignee_id: int | None = None
    severity: str | None = None
    severity_reason: str | None = None
    asset_ids: list[int] = field(default_factory=list)
    criminal_code: list[str] | None = None


@dataclass(frozen=True, slots=True)
class Linked:
    """What adding alerts did: how many it linked, and how many were in another incident."""

    added: int
    elsewhere: int


def check_text(*values: str | None) -> None:
    """Refuse text that no database can store: NUL characters and lone surrogates."""
    for value in values:
        if value is None:
            continue
        if "\x00" in value:
            raise IncidentError("text cannot contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise IncidentError("text cannot contain unpaired surrogate characters") from None


def _check_choice(value: str, allowed: Iterable[str], what: str) -> str:
    options = [str(v) for v in allowed]
    if value not in options:
        raise IncidentError(f"unknown {what} {value!r}; use one of {', '.join(options)}")
    return value


def _clean_tags(tags: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for tag in tags:
        tag = tag.strip()
        if not tag:
            continue
        if len(tag) > 100:
            raise IncidentError("a tag has at most 100 characters")
        seen[tag] = None
    if len(seen) > MAX_TAGS:
        raise IncidentError(f"an incident has at most {MAX_TAGS} tags")
    return list(seen)


def clean_articles(articles: Iterable[str]) -> list[str]:
    wanted = sorted({str(a).strip() for a in articles if str(a).strip()})
    for article in wanted:
        _check_choice(article, ARTICLES, "Criminal Code article (chapter 7)")
    return wanted


def check_assignee(session: Session, organisation_id: int, assignee_id: int | None) -> None:
    """An incident is assigned only to a member of its organisation who works incidents."""
    if assignee_id is None:
        return
    user = session.get(User, assignee_id)
    if (
        user is None
        or user.organisation_id != organisation_id
        or Permission.incidents_write not in ROLE_PERMISSIONS[user.role]
    ):
        raise IncidentError("incidents can only be assigned to members who work incidents")


def assignable(*, session: Session, organisation_id: int) -> list[User]:
    """The organisation's members an incident can be assigned to."""
    roles = [r for r, p in ROLE_PERMISSIONS.items() if Permission.incidents_write in p]
    return list(
        session.scalars(
            select(User)
            .where(
                User.organisation_id == organisation_id,
                User.role.in_(roles),
            )
            .order_by(User.display_name)
        )
    )


def event(
    session: Session,
    incident: Incident,
    actor_id: int | None,
    kind: str,
    details: Mapping[str, Any] | None = None,
    *,
    audited: bool = True,
    organisation_id: int | None = None,
) -> None:
    """Add a timeline event to the incident, and (unless ``audited`` is False, where the
    caller records its own entry) the same change to the audit trail, in the trail of
    ``organisation_id`` (the actor's organisation; by default the incident's)."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown incident event {kind!r}")
    now = utcnow()
    session.add(
        IncidentEvent(
            incident_id=incident.id,
            at=now,
            actor_id=actor_id,
            kind=kind,
            details=dict(details or {}),
        )
    )
    incident.updated_at = now
    if audited:
        audit.record(
            f"incident.{kind}",
            session=session,
            actor=str(actor_id) if actor_id is not None else "system",
            organisation_id=organisation_id or incident.organisation_id,
            target_type="incident",
            target_id=incident.id,
            details=details,
        )
    # Whom the change concerns is told in the same unit of work (assignee, coordinator...).
    from qorgan.incidents.notifications import notify_for_event

    notify_for_event(session, incident, actor_id, kind, details)


def visible(
    *, session: Session, incident_id: int, organisation_id: int, writing: bool = False
) -> Incident:
    """The incident if the organisation may see it: its own, or (reading only) one reported
    to it as national coordinator. :class:`NotFound` otherwise (never "forbidden": another
    organisation's ids reveal nothing)."""
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFound("no such incident", source=f"incident {incident_id}")
    if incident.organisation_id == organisation_id:
        return incident
    if not writing and incident.reported_to_id == organisation_id:
        return incident
    raise NotFound("no such incident", source=f"incident {incident_id}")


def lock(session: Session) -> None:
    """Serialise this unit of work's changes of incidents with the others' (check-then-write)."""
    audit.lock(session)


def owned(session: Session, incident_id: int, organisation_id: int) -> Incident:
    """The organisation's own incident for a change (after taking the lock)."""
    audit.lock(session)  # check-then-write: concurrent changes of one incident queue
    incident = visible(
        session=session, incident_id=incident_id, organisation_id=organisation_id, writing=True
    )
    session.refresh(incident)  # what another writer committed before the lock
    return incident


def _alert_ids(
    session: Session,
    organisation_id: int,
    alert_ids: Collection[int] | None,
    filters: AlertFilter | None,
) -> list[int]:
    """The organisation's alerts named by id (others' ids dropped), or all matching a filter."""
    if alert_ids is not None:
        wanted = sorted({int(i) for i in alert_ids})
        if len(wanted) > MAX_ALERTS:
            raise IncidentError(f"an incident takes at most {MAX_ALERTS:,} alerts at once")
        found: list[int] = []
        for start in range(0, len(wanted), 10_000):
            chunk = wanted[start : start + 10_000]
            found.extend(
                session.scalars(
                    select(StoredAlert.id).where(
                        StoredAlert.organisation_id == organisation_id, StoredAlert.id.in_(chunk)
                    )
                )
            )
        return sorted(found)
    query = filtered(session, [organisation_id], filters or NO_FILTER, StoredAlert.id)
    rows = list(session.scalars(query.order_by(StoredAlert.id).limit(MAX_ALERTS + 1)))
    if len(rows) > MAX_ALERTS:
        raise IncidentError(
            f"more than {MAX_ALERTS:,} alerts match; narrow the filter to take them at once"
        )
    return rows


def _unlinked(session: Session, alert_ids: list[int]) -> list[int]:
    taken: set[int] = set()
    for start in range(0, len(alert_ids), 10_000):
        chunk = alert_ids[start : start + 10_000]
        taken.update(
            session.scalars(select(IncidentAlert.alert_id).where(IncidentAlert.alert_id.in_(chunk)))
        )
    return [i for i in alert_ids if i not in taken]


def _link(session: Session, incident: Incident, alert_ids: list[int], actor_id: int | None) -> None:
    now = utcnow()
    rows = [
        {"alert_id": a, "incident_id": incident.id, "added_at": now, "added_by_id": actor_id}
        for a in alert_ids
    ]
    for start in range(0, len(rows), 1000):
        session.execute(insert(IncidentAlert), rows[start : start + 1000])


@dataclass(frozen=True, slots=True)
class _Summary:
    count: int
    first: datetime | None
    received: datetime | None
    top_rank: int
    rule_ids: list[str]
    rule_title: str | None
    host: str | None
    kz_cert_class: str | None
    hosts: list[str]


def _summarise(session: Session, incident_id: int) -> _Summary:
    """The incident's alerts in figures: count, first event, worst level, main rule."""
    a = StoredAlert
    linked = select(IncidentAlert.alert_id).where(IncidentAlert.incident_id == incident_id)
    count, first, received, top = session.execute(
        select(func.count(), func.min(a.time), func.min(a.received_at), func.max(a.severity)).where(
            a.id.in_(linked)
        )
    ).one()
    rules = session.execute(
        select(a.rule_id, a.rule_title, func.count())
        .where(a.id.in_(linked))
        .group_by(a.rule_id, a.rule_title)
        .order_by(func.count().desc(), a.rule_id)
        .limit(20)
    ).all()
    hosts = session.execute(
        select(a.host, func.count())
        .where(a.id.in_(linked), a.host.is_not(None))
        .group_by(a.host)
        .order_by(func.count().desc(), a.host)
        .limit(200)
    ).all()
    classes = session.execute(
        select(a.kz_cert_class, func.count())
        .where(a.id.in_(linked), a.kz_cert_class.is_not(None))
        .group_by(a.kz_cert_class)
        .order_by(func.count().desc(), a.kz_cert_class)
        .limit(1)
    ).all()
    return _Summary(
        count=count,
        first=first,
        received=received,
        top_rank=top or 0,
        rule_ids=[r.rule_id for r in rules],
        rule_title=rules[0].rule_title if rules else None,
        host=hosts[0].host if hosts else None,
        kz_cert_class=classes[0][0] if classes else None,
        hosts=[h.host for h in hosts],
    )


def _classification(session: Session, incident_id: int) -> tuple[str | None, str | None, list[str]]:
    """RSIT class and type and candidate articles, from the alerts' classifications (a sample
    of one alert per rule: alerts of one rule share its classification)."""
    a = StoredAlert
    one_per_rule = (
        select(func.min(a.id))
        .where(
            a.id.in_(select(IncidentAlert.alert_id).where(IncidentAlert.incident_id == incident_id))
        )
        .group_by(a.rule_id)
        .limit(50)
    )
    rsit: Counter[tuple[str, str | None]] = Counter()
    articles: set[str] = set()
    for body in session.scalars(select(a.body).where(a.id.in_(one_per_rule))):
        found = body.get("classification") or {}
        named = found.get("rsit") if isinstance(found.get("rsit"), dict) else {}
        if named.get("class"):
            rsit[(str(named["class"])[:64], str(named.get("type") or "")[:64] or None)] += 1
        articles.update(str(x) for x in found.get("criminal_code") or [] if str(x) in ARTICLES)
    (rsit_class, rsit_type), _ = rsit.most_common(1)[0] if rsit else ((None, None), 0)
    return rsit_class, rsit_type, sorted(articles)


def _collect_observables(session: Session, incident: Incident, alert_ids: list[int]) -> int:
    """Add the observables of (a sample of) the alerts; returns how many are new."""
    have = set(
        tuple(row)
        for row in session.execute(
            select(IncidentObservable.kind, IncidentObservable.value).where(
                IncidentObservable.incident_id == incident.id
            )
        )
    )
    room = MAX_OBSERVABLES - sum(1 for _ in have)
    new: dict[tuple[str, str], None] = {}
    sample = alert_ids[:OBSERVABLE_SAMPLE]
    for start in range(0, len(sample), 1000):
        bodies = session.scalars(
            select(StoredAlert.body).where(StoredAlert.id.in_(sample[start : start + 1000]))
        )
        for body in bodies:
            for pair in incident_observables(body):
                if pair not in have and len(new) < room:
                    new[pair] = None
    for rule_id in incident.rule_ids or []:  # kept for similarity (``similar.py``), not shown
        if ("rule", rule_id) not in have:
            new[("rule", rule_id)] = None
    now = utcnow()
    rows = [
        {
            "incident_id": incident.id,
            "organisation_id": incident.organisation_id,
            "kind": kind,
            "value": value,
            "origin": "alert",
            "created_at": now,
        }
        for kind, value in new
    ]
    for start in range(0, len(rows), 1000):
        session.execute(insert(IncidentObservable), rows[start : start + 1000])
    return len(rows)


def _assets_for_hosts(session: Session, organisation_id: int, hosts: list[str]) -> list[Asset]:
    if not hosts:
        return []
    wanted = {h.lower() for h in hosts}
    assets = session.scalars(select(Asset).where(Asset.organisation_id == organisation_id)).all()
    return [
        asset
        for asset in assets
        if asset.name.lower() in wanted or any(n.lower() in wanted for n in asset.names or [])
    ]


def _asset_ids(session: Session, incident_id: int) -> set[int]:
    return set(
        session.scalars(
            select(IncidentAsset.asset_id).where(IncidentAsset.incident_id == incident_id)
        )
    )


def _attach_assets(session: Session, incident: Incident, asset_ids: Iterable[int]) -> list[int]:
    have = _asset_ids(session, incident.id)
    added = []
    for asset_id in sorted(set(asset_ids) - have):
        asset = session.get(Asset, asset_id)
        if asset is None or asset.organisation_id != incident.organisation_id:
            raise IncidentError(f"no such asset: {asset_id}")
        session.add(IncidentAsset(incident_id=incident.id, asset_id=asset_id))
        added.append(asset_id)
    session.flush()
    return added


def _asset_ranks(session: Session, incident_id: int) -> list[int]:
    rows = session.execute(
        select(Asset.criticality, Asset.critical_infrastructure).where(
            Asset.id.in_(
                select(IncidentAsset.asset_id).where(IncidentAsset.incident_id == incident_id)
            )
        )
    ).all()
    return [4 if cii else criticality for criticality, cii in rows]


def _rederive(session: Session, incident: Incident, top_alert_rank: int | None = None) -> None:
    """Set the derived severity unless a person overrode it (``severity_reason`` set)."""
    if incident.severity_reason:
        return
    if top_alert_rank is None:
        top_alert_rank = _summarise(session, incident.id).top_rank if incident.id else 0
    ranks = [top_alert_rank] if incident.origin == "alerts" or top_alert_rank else []
    derived = derive_severity(ranks, _asset_ranks(session, incident.id))
    incident.severity = SEVERITY_RANK[derived]


def create(
    *,
    session: Session,
    organisation_id: int,
    actor_id: int | None,
    draft: Draft,
    calendar: WorkCalendar,
    alert_ids: Collection[int] | None = None,
    filters: AlertFilter | None = None,
    origin: str | None = None,
    started_at: datetime | None = None,
) -> tuple[Incident, Linked]:
    """Create an incident: from the organisation's alerts named by ``alert_ids`` or matching
    ``filters`` (alerts already in another incident stay there and are counted), or by hand
    (neither given). Blank fields are filled from the alerts; the clocks start at the first
    event, alert or ``started_at`` (a report's time)."""
    from_alerts = alert_ids is not None or filters is not None
    _validate_draft(draft)
    check_assignee(session, organisation_id, draft.assignee_id)
    audit.lock(session)
    picked: list[int] = []
    elsewhere = 0
    if from_alerts:
        named = _alert_ids(session, organisation_id, alert_ids, filters)
        picked = _unlinked(session, named)
        elsewhere = len(named) - len(picked)
        if not picked:
            raise IncidentError(
                "none of these alerts can start an incident: "
                + ("they are all in other incidents" if named else "no alert of yours matches")
            )
    now = utcnow()
    incident = Incident(
        organisation_id=organisation_id,
        title=draft.title.strip() or "Incident",
        description=draft.description,
        kz_cert_class=draft.kz_cert_class,
        rsit_class=draft.rsit_class,
        rsit_type=draft.rsit_type,
        tlp=draft.tlp,
        pap=draft.pap,
        tags=_clean_tags(draft.tags),
        status=Status.new.value,
        assignee_id=draft.assignee_id,
        origin=origin or ("alerts" if from_alerts else "manual"),
        created_by_id=actor_id,
        created_at=now,
        updated_at=now,
        started_at=min(started_at or now, now),
        criminal_code=clean_articles(draft.criminal_code or []),
        rule_ids=[],
    )
    if draft.assignee_id is not None:
        incident.acknowledged_at = now
    session.add(incident)
    session.flush()
    summary = None
    if picked:
        _link(session, incident, picked, actor_id)
        summary = _summarise(session, incident.id)
        _fill_from_alerts(session, incident, draft, summary)
        _collect_observables(session, incident, picked)
        hosts_assets = _assets_for_hosts(session, organisation_id, summary.hosts)
        _attach_assets(session, incident, [a.id for a in hosts_assets])
    _attach_assets(session, incident, draft.asset_ids)
    if draft.severity:
        if not (draft.severity_reason or "").strip():
            raise IncidentError("setting the severity by hand needs a reason")
        incident.severity = SEVERITY_RANK[Severity(draft.severity)]
        incident.severity_reason = draft.severity_reason.strip()  # type: ignore[union-attr]
    else:
        _rederive(session, incident, summary.top_rank if summary else 0)
    rules = clocks.deadlines(
        session=session, organisation_id=organisation_id, kz_cert_class=incident.kz_cert_class
    )
    clocks.schedule(incident, rules, calendar)
    if draft.personal_data:
        clocks.flag_personal_data(incident, now, calendar)
    similar.refresh(session=session, incident=incident)
    event(
        session,
        incident,
        actor_id,
        "created",
        {
            "origin": incident.origin,
            "alerts": len(picked),
            "alerts_elsewhere": elsewhere,
            "severity": RANK_SEVERITY[incident.severity].value,
        },
    )
    session.flush()
    return incident, Linked(added=len(picked), elsewhere=elsewhere)


def _validate_draft(draft: Draft) -> None:
    check_text(draft.title, draft.description, draft.severity_reason, *draft.tags)
    if len(draft.title) > 300:
        raise IncidentError("a title has at most 300 characters")
    if len(draft.description) > 100_000:
        raise IncidentError("a description has at most 100,000 characters")
    _check_choice(draft.tlp, [t.value for t in Tlp], "TLP")
    _check_choice(draft.pap, [p.value for p in Pap], "PAP")
    if draft.severity:
        _check_choice(draft.severity, [s.value for s in Severity], "severity")


def _fill_from_alerts(
    session: Session, incident: Incident, draft: Draft, summary: _Summary
) -> None:
    first = [t for t in (summary.first, summary.received) if t is not None]
    if first:
        incident.started_at = min([incident.started_at, *first])
    incident.rule_ids = summary.rule_ids[:20]
    if not draft.title.strip() and summary.rule_title:
        more = f" ({summary.count} alerts)" if summary.count > 1 else ""
        on = f" on {summary.host}" if summary.host else ""
        incident.title = f"{summary.rule_title}{on}{more}"[:300]
    if draft.kz_cert_class is None:
        incident.kz_cert_class = summary.kz_cert_class
    rsit_class, rsit_type, articles = _classification(session, incident.id)
    if draft.rsit_class is None:
        incident.rsit_class, incident.rsit_type = rsit_class, rsit_type
    if draft.criminal_code is None:
        incident.criminal_code = articles


def add_alerts(
    *,
    session: Session,
    organisation_id: int,
    incident_id: int,
    actor_id: int,
    alert_ids: Collection[int] | None = None,
    filters: AlertFilter | None = None,
) -> Linked:
    """Link more of the organisation's alerts to an open incident (those in another incident
    stay there and are counted); the severity and observables follow."""
    incident = owned(session, incident_id, organisation_id)
    if incident.status == Status.closed:
        raise IncidentError("a closed incident takes no alerts; reopen it first")
    named = _alert_ids(session, organisation_id, alert_ids, filters)
    picked = _unlinked(session, named)
    if picked:
        _link(session, incident, picked, actor_id)
        summary = _summarise(session, incident.id)
        incident.rule_ids = summary.rule_ids[:20]
        if summary.first and summary.first < incident.started_at:
            incident.started_at = summary.first  # the clocks' start; due times stay as set
        _collect_observables(session, incident, picked)
        _attach_assets(
            session,
            incident,
            [a.id for a in _assets_for_hosts(session, organisation_id, summary.hosts)],
        )
        _rederive(session, incident, summary.top_rank)
        similar.refresh(session=session, incident=incident)
        event(
            session,
            incident,
            actor_id,
            "alerts_added",
            {"alerts": len(picked), "alerts_elsewhere": len(named) - len(picked)},
        )
    return Linked(added=len(picked), elsewhere=len(named) - len(picked))


def move(
    *,
    session: Session,
    organisation_id: int,
    incident_id: int,
    actor_id: int,
    status: str,
    resolution: str | None = None,
    reason: str = "",
) -> Incident:
    """Move the incident to another phase (closing needs a resolution); the clocks record
    the first acknowledgement, containment and closure."""
    check_text(reason)
    target = Status(_check_choice(status, [s.value for s in Status], "status"))
    outcome = (
        Resolution(_check_choice(resolution, [r.value for r in Resolution], "resolution"))
        if resolution
        else None
    )
    incident = owned(session, incident_id, organisation_id)
    current = Status(incident.status)
    check_move(current, target, outcome)
    now = utcnow()
    # Any move acknowledges an incident not yet acknowledged: a public report arrives in
    # triage, and moving it on is its acknowledgement.
    if target is not Status.new and incident.acknowledged_at is None:
        incident.acknowledged_at = now
    if contains(target) and incident.contained_at is None:
        incident.contained_at = now
    if target is Status.closed:
        incident.closed_at = now
        incident.resolution = outcome.value if outcome else None
    elif current is Status.closed:  # reopened: closure and resolution no longer hold
        incident.closed_at = None
        incident.resolution = None
    incident.status = target.value
    clocks.next_due(incident)
    details: dict[str, Any] = {"from": current.value, "to": target.value}
    if outcome:
        details["resolution"] = outcome.value
    if reason.strip():
        details["reason"] = reason.strip()[:1000]
    event(session, incident, actor_id, "status", details)
    return incident


def assign(
    *,
    session: Session,
    organisation_id: int,
    incident_id: int,
    actor_id: int,
    assignee_id: int | None,
) -> Incident:
    """Assign the incident (None: unassign). An assignment acknowledges a new incident."""
    incident = owned(session, incident_id, organisation_id)
    check_assignee(session, organisation_id, assignee_id)
    if incident.assignee_id == assignee_id:
        return incident
    previous = incident.assignee_id
    incident.assignee_id = assignee_id
    if assignee_id is not None and incident.acknowledged_at is None:
        incident.acknowledged_at = utcnow()
        clocks.next_due(incident)
    event(session, incident, actor_id, "assigned", {"from": previous, "to": assignee_id})
    return incident


def edit(
    *,
    session: Session,
    organisation_id: int,
    incident_id: int,
    actor_id: int,
    changes: Mapping[str, Any],
    calendar: WorkCalendar,
) -> Incident:
    """Change the incident's fields (:data:`EDITABLE`). A new KZ-CERT class reschedules the
    deadlines not yet met; marking personal data starts the breach-report clock."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise IncidentError(f"these fields cannot be changed here: {', '.join(sorted(unknown))}")
    check_text(*(v for v in changes.values() if isinstance(v, str)))
    check_text(*(t for key in ("tags", "criminal_code") for t in changes.get(key) or []))
    incident = owned(session, incident_id, organisation_id)
    clean = dict(changes)
    if "title" in clean:
        clean["title"] = str(clean["title"]).strip()
        if not clean["title"] or len(clean["title"]) > 300:
            raise IncidentError("a title has 1 to 300 characters")
    if "description" in clean and len(clean["description"]) > 100_000:
        raise IncidentError("a description has at most 100,000 characters")
    if "tlp" in clean:
        _check_choice(clean["tlp"], [t.value for t in Tlp], "TLP")
    if "pap" in clean:
        _check_choice(clean["pap"], [p.value for p in Pap], "PAP")
    if "tags" in clean:
        clean["tags"] = _clean_tags(clean["tags"])
    if "criminal_code" in clean:
        clean["criminal_code"] = clean_articles(clean["criminal_code"])
    if "personal_data" in clean:
        clean["personal_data"] = bool(clean["personal_data"])
    changed = {k: v for k, v in clean.items() if getattr(incident, k) != v}
    if not changed:
        return incident
    before = {k: getattr(incident, k) for k in changed}
    for key, value in changed.items():
        setattr(incident, key, value)
    if "kz_cert_class" in changed:
        rules = clocks.deadlines(
            session=session, organisation_id=organisation_id, kz_cert_class=incident.kz_cert_class
        )
        due = {m: clocks.due_at(incident.started_at, *rules[m], calendar) for m in clocks.MEASURES}
        if incident.acknowledged_at is None:
            incident.acknowledge_due_at = due["acknowledge"]
        if incident.contained_at is None:
            incident.contain_due_at = due["contain"]
        if incident.closed_at is None:
            incident.close_due_at = due["close"]
    if changed.get("personal_data"):
        clocks.flag_personal_data(incident, utcnow(), calendar)
    clocks.next_due(incident)
    shown = {
        k: {"from": before[k], "to": v}
        for k, v in changed.items()
        if k != "description"  # long; the timeline says it changed
    }
    if "description" in changed:
        shown["description"] = {"changed": True}
    event(session, incident, actor_id, "updated", shown)
    return incident


def set_severity(
    *,
    session: Session,
    organisation_id: int,
    incident_id: int,
    actor_id: int,
    severity: str | None,
    reason: str = "",
) -> Incident:
    """Override the derived severity (a reason is required), or with None go back to it."""
    check_text(reason)
    incident = owned(session, incident_id, organisation_id)
    before = RANK_SEVERITY[incident.severity].value
    if severity is None:
        incident.severity_reason = None
        _rederive(session, incident)
        details: dict[str, Any] = {"from": before, "to": RANK_SEVERITY[incident.severity].value}
        details["derived"] = True
    else:
        chosen = Severity(_check_choice(severity, [s.value for s in Severity], "severity"))
        if not reason.strip():
            raise IncidentError("overriding the severity needs a reason")
        if len(reason) > 1000:
            raise IncidentError("a reason has at most 1,000 characters")
        incident.severity = SEVERITY_RANK[chosen]
        incident.severity_reason = reason.strip()
        details = {"from": before, "to": chosen.value, "reason": incident.severity_reason}
    event(session, incident, actor_id, "severity", details)
    return incident


def set_assets(
    *,
    session: Session,
    organisation_id: int,
    incident_id: int,
    actor_id: int,
    asset_ids: Collection[int],
) -> Incident:
    """Set the affected assets; the derived severity follows their criticality."""
    incident = owned(session, incident_id, organisation_id)
    have = _asset_ids(session, incident.id)
    wanted = {int(a) for a in asset_ids}
    removed = sorted(have - wanted)
    if removed:
        session.execute(
            delete(IncidentAsset).where(
                IncidentAsset.incident_id == incident.id, IncidentAsset.asset_id.in_(removed)
            )
        )
    added = _attach_assets(session, incident, wanted)
    if added or removed:
        _rederive(session, incident)
        event(session, incident, actor_id, "assets", {"added": added, "removed": removed})
    return incident


def merge(
    *,
    session: Session,
    organisation_id: int,
    source_id: int,
    target_id: int,
    actor_id: int,
) -> Incident:
    """Merge ``source`` into ``target``: its alerts, observables and assets move over, and it
    is closed as a duplicate pointing at the target. Both timelines say so."""
    source = owned(session, source_id, organisation_id)
    if source_id == target_id:
        raise IncidentError("an incident cannot be merged into itself")
    target = visible(
        session=session, incident_id=target_id, organisation_id=organisation_id, writing=True
    )
    if target.status == Status.closed:
        raise IncidentError("merge into an open incident; reopen the target first")
    if source.status == Status.closed:
        raise IncidentError("a closed incident cannot be merged")
    moved = session.execute(
        update(IncidentAlert)
        .where(IncidentAlert.incident_id == source.id)
        .values(incident_id=target.id),
        execution_options={"synchronize_session": False},
    ).rowcount
    have = set(
        tuple(row)
        for row in session.execute(
            select(IncidentObservable.kind, IncidentObservable.value).where(
                IncidentObservable.incident_id == target.id
            )
        )
    )
    for observable in session.scalars(
        select(IncidentObservable).where(IncidentObservable.incident_id == source.id)
    ):
        if (observable.kind, observable.value) not in have:
            session.add(
                IncidentObservable(
                    incident_id=target.id,
                    organisation_id=organisation_id,
                    kind=observable.kind,
                    value=observable.value,
                    origin=observable.origin,
                )
            )
    _attach_assets(session, target, _asset_ids(session, source.id))
    if source.started_at < target.started_at:
        target.started_at = source.started_at
    target.tags = _clean_tags([*target.tags, *source.tags])[:MAX_TAGS]
    target.criminal_code = sorted(set(target.criminal_code) | set(source.criminal_code))
    target.personal_data = target.personal_data or source.personal_data
    if source.breach_report_due_at and not target.breach_report_due_at:
        target.breach_report_due_at = source.breach_report_due_at
    summary = _summarise(session, target.id)
    target.rule_ids = summary.rule_ids[:20]
    _rederive(session, target, summary.top_rank)
    clocks.next_due(target)
    now = utcnow()
    source.status = Status.closed.value
    source.resolution = Resolution.duplicate.value
    source.closed_at = now
    source.merged_into_id = target.id
    clocks.next_due(source)
    similar.refresh(session=session, incident=target)
    event(session, source, actor_id, "merged_into", {"into": target.id, "alerts": moved})
    event(session, target, actor_id, "merged_from", {"from": source.id, "alerts": moved})
    return target


def split(
    *,
    session: Session,
    organisation_id: int,
    incident_id: int,
    actor_id: int,
    alert_ids: Collection[int],
    title: str,
    calendar: WorkCalendar,
) -> Incident:
    """Move some of an incident's alerts to a new incident with the same markings (its class
    and title blanks filled from those alerts); both timelines say so. Returns the new one."""
    source = owned(session, incident_id, organisation_id)
    wanted = sorted({int(a) for a in alert_ids})
    if not wanted:
        raise IncidentError("pick the alerts that go to the new incident")
    ours = set(
        session.scalars(
            select(IncidentAlert.alert_id).where(
                IncidentAlert.incident_id == source.id, IncidentAlert.alert_id.in_(wanted)
            )
        )
    )
    if ours != set(wanted):
        raise IncidentError("only alerts of this incident can be split off")
    total = session.scalar(
        select(func.count())
        .select_from(IncidentAlert)
        .where(IncidentAlert.incident_id == source.id)
    )
    if len(wanted) >= (total or 0):
        raise IncidentError("leave at least one alert in the incident")
    # Markings and tags carry over; the class comes from the alerts that move.
    draft = Draft(title=title, tlp=source.tlp, pap=source.pap, tags=list(source.tags))
    session.execute(delete(IncidentAlert).where(IncidentAlert.alert_id.in_(wanted)))
    new, _ = create(
        session=session,
        organisation_id=organisation_id,
        actor_id=actor_id,
        draft=draft,
        calendar=calendar,
        alert_ids=wanted,
    )
    event(session, new, actor_id, "split_from", {"from": source.id, "alerts": len(wanted)})
    summary = _summarise(session, source.id)
    source.rule_ids = summary.rule_ids[:20]
    _rederive(session, source, summary.top_rank)
    event(session, source, actor_id, "split_to", {"to": new.id, "alerts": len(wanted)})
    return new


def incident_of_alerts(*, session: Session, alert_ids: Collection[int]) -> dict[int, int]:
    """Each linked alert's incident id (for the inbox's links)."""
    ids = sorted({int(a) for a in alert_ids})
    if not ids:
        return {}
    return dict(
        session.execute(
            select(IncidentAlert.alert_id, IncidentAlert.incident_id).where(
                IncidentAlert.alert_id.in_(ids)
            )
        ).all()
    )


def add_observable(
    *,
    session: Session,
    organisation_id: int,
    incident_id: int,
    actor_id: int,
    kind: str,
    value: str,
) -> IncidentObservable:
    """Add an observable by hand."""
    _check_choice(kind, KINDS, "observable kind")
    check_text(value)
    value = value.strip()
    if not value or len(value) > 500:
        raise IncidentError("an observable has 1 to 500 characters")
    incident = owned(session, incident_id, organisation_id)
    found = session.scalar(
        select(IncidentObservable).where(
            IncidentObservable.incident_id == incident.id,
            IncidentObservable.kind == kind,
            IncidentObservable.value == value,
        )
    )
    if found is not None:
        return found
    observable = IncidentObservable(
        incident_id=incident.id,
        organisation_id=organisation_id,
        kind=kind,
        value=value,
        origin="manual",
    )
    session.add(observable)
    event(session, incident, actor_id, "observable", {"kind": kind})
    session.flush()
    return observable


def search_filter(query: str) -> Any:
    """The condition of incidents whose title or reference matches ``query``."""
    text = query.strip()
    reference_id = text.upper().removeprefix("INC-").lstrip("0")
    conditions = [Incident.title.ilike(f"%{_escape(text)}%", escape="\\")]
    if reference_id.isdigit():
        conditions.append(Incident.id == int(reference_id))
    return or_(*conditions)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def alert_count(*, session: Session, incident_id: int) -> int:
    """How many alerts the incident holds."""
    found = session.scalar(
        select(func.count())
        .select_from(IncidentAlert)
        .where(IncidentAlert.incident_id == incident_id)
    )
    return found or 0


def observables(*, session: Session, incident_id: int) -> list[IncidentObservable]:
    """The incident's observables by kind (in :data:`KINDS` order), then value."""
    rank = {kind: i for i, kind in enumerate(KINDS)}
    rows = session.scalars(
        select(IncidentObservable).where(
            IncidentObservable.incident_id == incident_id, IncidentObservable.kind.in_(KINDS)
        )
    ).all()
    return sorted(rows, key=lambda o: (rank.get(o.kind, len(KINDS)), o.value))
