"""Similar past incidents: those of the same organisation that share observables or rules
with an incident, scored and kept as a bounded list (:data:`KEEP` per incident).

DFIR-IRIS kept every pair of cases sharing an indicator and its table grew to hundreds of
millions of rows; here an incident keeps only its best :data:`KEEP` links, found through the
indexed (organisation, kind, value) lookup of observables. An incident's rules are kept among
its observables as kind ``rule`` (not shown as observables) so that one index serves both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, insert, select, tuple_

from qorgan.incidents.models import Incident, IncidentObservable, SimilarIncident

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: Links kept per incident.
KEEP = 10
#: Observables of the incident compared (the first by kind and value).
COMPARED = 200
#: Weight of a shared rule against a shared observable.
RULE_WEIGHT = 3
#: Values too common to say anything (shared by more incidents than this are skipped).
TOO_COMMON = 500


@dataclass(frozen=True, slots=True)
class Similar:
    incident: Incident
    score: int
    shared: dict[str, int]


def refresh(*, session: Session, incident: Incident) -> int:
    """Recompute the incident's similar earlier incidents; returns how many are kept."""
    session.flush()
    mine = session.execute(
        select(IncidentObservable.kind, IncidentObservable.value)
        .where(IncidentObservable.incident_id == incident.id)
        .order_by(IncidentObservable.kind, IncidentObservable.value)
        .limit(COMPARED)
    ).all()
    session.execute(delete(SimilarIncident).where(SimilarIncident.incident_id == incident.id))
    if not mine:
        return 0
    o = IncidentObservable
    pairs = [tuple(row) for row in mine]
    common = {
        (kind, value)
        for kind, value, count in session.execute(
            select(o.kind, o.value, func.count())
            .where(
                o.organisation_id == incident.organisation_id, tuple_(o.kind, o.value).in_(pairs)
            )
            .group_by(o.kind, o.value)
        ).all()
        if count > TOO_COMMON
    }
    pairs = [p for p in pairs if p not in common]
    if not pairs:
        return 0
    rows = session.execute(
        select(o.incident_id, o.kind, func.count())
        .where(
            o.organisation_id == incident.organisation_id,
            o.incident_id < incident.id,  # past incidents
            tuple_(o.kind, o.value).in_(pairs),
        )
        .group_by(o.incident_id, o.kind)
    ).all()
    scores: dict[int, int] = {}
    shared: dict[int, dict[str, int]] = {}
    for other, kind, count in rows:
        scores[other] = scores.get(other, 0) + count * (RULE_WEIGHT if kind == "rule" else 1)
        shared.setdefault(other, {})[kind] = count
    best = sorted(scores, key=lambda other: (-scores[other], -other))[:KEEP]
    if best:
        session.execute(
            insert(SimilarIncident),
            [
                {"incident_id": incident.id, "similar_id": other, "score": scores[other],
                 "shared": shared[other]}
                for other in best
            ],
        )  # fmt: skip
    return len(best)


def similar(*, session: Session, incident_id: int) -> list[Similar]:
    """The kept similar incidents, best first."""
    rows = session.execute(
        select(SimilarIncident, Incident)
        .join(Incident, Incident.id == SimilarIncident.similar_id)
        .where(SimilarIncident.incident_id == incident_id)
        .order_by(SimilarIncident.score.desc(), SimilarIncident.similar_id.desc())
    ).all()
    return [Similar(incident=i, score=s.score, shared=dict(s.shared or {})) for s, i in rows]
