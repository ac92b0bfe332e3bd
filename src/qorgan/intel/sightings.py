"""Sightings: "we saw this indicator", as STIX 2.1 ``sighting`` objects, and reading them back.

A sighting links what was seen (``sighting_of_ref``: an indicator, malware ...) with who saw it
(``where_sighted_refs``: identities) and the evidence (``observed_data_refs``). Qorgan writes
one when an incident's observable matches an indicator a partner shared, and reads partners'
sightings of the indicators it published, to show them on the originating incident.

A sighting's id is derived from what it is about (the indicator, the sighting organisation and
the incident or alert that saw it), so reporting the same sighting again, with a larger count or
a later ``last_seen``, is a new version of one object rather than a second object.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from qorgan.core.errors import QorganError
from qorgan.core.tlp import Tlp
from qorgan.intel.ids import derived_id
from qorgan.intel.incident_share import stix_timestamp
from qorgan.intel.markings import mark

__all__ = ["Sighting", "SightingError", "read_sighting", "sighting"]

_ID = re.compile(
    r"^[a-z0-9][a-z0-9-]*[a-z0-9]--[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)
_MAX_COUNT = 999_999_999  # the STIX maximum of a sighting's count


class SightingError(QorganError):
    """A sighting that cannot be written or read; the message never repeats the input."""


@dataclass(frozen=True, slots=True)
class Sighting:
    """A sighting as the console shows it."""

    id: str
    sighting_of_ref: str
    where_sighted_refs: tuple[str, ...]
    first_seen: str | None
    last_seen: str | None
    count: int
    observed_data_refs: tuple[str, ...]
    created_by_ref: str | None
    description: str | None


def _check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise SightingError(f"{what} is not a STIX identifier")
    return value


def sighting(
    of_ref: str,
    *,
    sighted_by: str,
    about: str,
    first_seen: datetime,
    last_seen: datetime,
    count: int = 1,
    observed_data_refs: tuple[str, ...] = (),
    created: datetime,
    modified: datetime | None = None,
    tlp: Tlp = Tlp.amber,
    description: str | None = None,
) -> dict[str, Any]:
    """A sighting of ``of_ref`` by the identity ``sighted_by``, marked ``tlp``.

    ``about`` names the local thing that saw it (``incident:42``): it only feeds the derived id,
    and never appears in the object.
    """
    _check_id(of_ref, "what was sighted")
    _check_id(sighted_by, "the sighting organisation")
    for ref in observed_data_refs:
        if not _check_id(ref, "an observed data reference").startswith("observed-data--"):
            raise SightingError("observed data references must point to observed-data objects")
    if not 1 <= count <= _MAX_COUNT:
        raise SightingError(f"a sighting's count is 1 to {_MAX_COUNT}")
    if last_seen < first_seen:
        raise SightingError("last_seen is before first_seen")
    stamp = stix_timestamp(created)
    obj: dict[str, Any] = {
        "type": "sighting",
        "spec_version": "2.1",
        "id": derived_id("sighting", of_ref, sighted_by, about),
        "created_by_ref": sighted_by,
        "created": stamp,
        "modified": stix_timestamp(max(modified or created, created)),
        "sighting_of_ref": of_ref,
        "where_sighted_refs": [sighted_by],
        "first_seen": stix_timestamp(first_seen),
        "last_seen": stix_timestamp(last_seen),
        "count": count,
    }
    if observed_data_refs:
        obj["observed_data_refs"] = list(observed_data_refs)
    if description:
        obj["description"] = description
    return mark(obj, tlp)


def read_sighting(obj: Mapping[str, Any]) -> Sighting:
    """A received sighting, checked; a malformed one is refused with the reason."""
    if obj.get("type") != "sighting":
        raise SightingError("not a sighting")
    count = obj.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= _MAX_COUNT:
        raise SightingError("a sighting's count is not a number from 0 to 999,999,999")

    def refs(key: str) -> tuple[str, ...]:
        value = obj.get(key, [])
        if not isinstance(value, list):
            raise SightingError(f"{key} is not a list")
        return tuple(_check_id(ref, key) for ref in value)

    def text(key: str) -> str | None:
        value = obj.get(key)
        return value if isinstance(value, str) else None

    created_by = obj.get("created_by_ref")
    return Sighting(
        id=_check_id(obj.get("id"), "the sighting's id"),
        sighting_of_ref=_check_id(obj.get("sighting_of_ref"), "sighting_of_ref"),
        where_sighted_refs=refs("where_sighted_refs"),
        first_seen=text("first_seen"),
        last_seen=text("last_seen"),
        count=count,
        observed_data_refs=refs("observed_data_refs"),
        created_by_ref=_check_id(created_by, "created_by_ref") if created_by else None,
        description=text("description"),
    )
