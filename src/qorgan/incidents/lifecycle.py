"""The incident lifecycle (NIST SP 800-61), severity, TLP 2.0 and PAP: pure rules, no I/O.

An incident moves through the phases in order, may skip ahead (a false positive goes from
triage straight to closed) and may step back (containment failed: back to triage), but closing
needs a resolution, and a closed incident only reopens to triage. The clocks read three
moments from the moves: *acknowledged* (the first move, or an assignment),
*contained* (the first move past ``containment``), *closed* (entering ``closed``).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from qorgan.core.errors import QorganError


class IncidentError(QorganError):
    """An incident operation cannot be done as asked (the message says why)."""


class NotFound(IncidentError):
    """No such incident (or task, note, asset) in the caller's organisation."""


class Status(StrEnum):
    """The phases, in order."""

    new = "new"
    triage = "triage"
    containment = "containment"
    eradication = "eradication"
    recovery = "recovery"
    review = "review"  # post-incident review (lessons learned)
    closed = "closed"


ORDER: dict[Status, int] = {status: rank for rank, status in enumerate(Status)}
#: Phases that count as "open" in lists and clocks.
OPEN = frozenset(set(Status) - {Status.closed})


class Resolution(StrEnum):
    """How a closed incident ended."""

    true_positive_impact = "true-positive-impact"
    true_positive_no_impact = "true-positive-no-impact"
    false_positive = "false-positive"
    duplicate = "duplicate"


class Severity(StrEnum):
    """An incident's severity, lowest first (alert levels map onto it)."""

    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


SEVERITY_RANK: dict[Severity, int] = {s: rank for rank, s in enumerate(Severity, start=1)}
RANK_SEVERITY: dict[int, Severity] = {rank: s for s, rank in SEVERITY_RANK.items()}
#: An alert level's rank (0 informational ... 4 critical) as a severity rank (1 ... 4).
ALERT_RANK_TO_SEVERITY = {0: 1, 1: 1, 2: 2, 3: 3, 4: 4}


def check_move(current: Status, target: Status, resolution: Resolution | None) -> None:
    """Refuse a move the lifecycle does not allow, with the reason."""
    if target is current:
        raise IncidentError(f"the incident is already in {current.value}")
    if current is Status.closed and target is not Status.triage:
        raise IncidentError("a closed incident can only be reopened to triage")
    if target is Status.new:
        raise IncidentError("an incident cannot go back to new; move it to triage")
    if target is Status.closed and resolution is None:
        raise IncidentError("closing an incident needs a resolution")
    if target is not Status.closed and resolution is not None:
        raise IncidentError("a resolution is given only when closing")


def contains(target: Status) -> bool:
    """Whether reaching ``target`` means containment is done."""
    return ORDER[target] > ORDER[Status.containment]


def derive_severity(alert_ranks: Iterable[int], asset_criticality: Iterable[int]) -> Severity:
    """Severity from the alerts' levels (0-4) and the affected assets' criticality (1-4).

    The worst alert gives the base (informational and low alerts make a low incident). An asset
    at least as critical as that raises it one step, capped at critical, since the same
    activity on a key system matters more; no alerts and no assets give ``low``.
    """
    base = max((ALERT_RANK_TO_SEVERITY.get(r, 1) for r in alert_ranks), default=1)
    worst_asset = max(asset_criticality, default=0)
    if worst_asset and worst_asset >= base:
        base = min(base + 1, SEVERITY_RANK[Severity.critical])
    return RANK_SEVERITY[base]
