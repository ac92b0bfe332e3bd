"""The organisation's active indicators as the file detection reads (``qorgan hunt --indicators``,
:mod:`qorgan.detection.indicator_files`): one JSON object a line, ``kind``, ``value``, ``ref``
(the STIX indicator id), ``source`` (the collection's title), ``confidence`` (after decay) and
``valid_until``.

Detection may not import the intel store (``detection`` imports only ``telemetry`` and
``core``), so this file is the boundary: intel writes it, a hunt or the live pipeline reads it.
Only indicators the organisation may receive under TLP, active now (newest version, not revoked,
not expired) and whose pattern is a plain list of values detection can match are written; the
others are counted by reason (a CIDR range, an AND of two properties, ...), never silently lost.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from qorgan.intel import store
from qorgan.intel.models import Collection
from qorgan.intel.patterns import Kind, PatternError, observables_of

__all__ = ["ExportReport", "export_indicators"]

_HEX_LENGTHS = frozenset({32, 40, 64})  # the file hashes detection matches
_ADDRESSES = frozenset({Kind.ipv4, Kind.ipv6})


@dataclass
class ExportReport:
    """What an export wrote, and what it left out by reason."""

    indicators: int = 0
    lines: int = 0
    left_out: Counter[str] = field(default_factory=Counter)


def export_indicators(
    out: TextIO, *, session: Session, organisation_id: int, now: datetime | None = None
) -> ExportReport:
    """Write the active indicators ``organisation_id`` may receive to ``out``, one a line."""
    now = now or datetime.now(UTC)
    titles = {row.id: row.title for row in session.execute(select(Collection.id, Collection.title))}
    report = ExportReport()
    for active in store.active_indicators(
        session=session, organisation_id=organisation_id, now=now
    ):
        report.indicators += 1
        body = orjson.loads(active.body)
        pattern, pattern_type = body.get("pattern"), body.get("pattern_type", "stix")
        if pattern_type != "stix" or not isinstance(pattern, str):
            report.left_out["not a STIX pattern"] += 1
            continue
        try:
            observables = observables_of(pattern)
        except PatternError as error:
            report.left_out[(error.reasons[0] if error.reasons else str(error))[:80]] += 1
            continue
        until = active.valid_until.isoformat() if active.valid_until is not None else None
        for observable in observables:
            if observable.kind in _ADDRESSES and "/" in observable.value:
                # A CIDR range: detection matches single addresses.
                report.left_out["an address range"] += 1
                continue
            if observable.kind is Kind.file_hash and len(observable.value) not in _HEX_LENGTHS:
                report.left_out["a hash other than MD5, SHA-1 or SHA-256"] += 1
                continue
            line = {
                "kind": observable.kind.value,
                "value": observable.value,
                "ref": active.stix_id,
                "source": titles.get(active.collection_id, "intel"),
                "confidence": 50 if active.confidence is None else active.confidence,
                "valid_until": until,
            }
            out.write(orjson.dumps(line).decode() + "\n")
            report.lines += 1
    return report
