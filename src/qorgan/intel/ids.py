"""STIX identifiers and timestamps as Qorgan writes them, in one place.

Ids we derive (an indicator per producer and pattern, a feed's identity, the objects of a
shared incident, a sighting per indicator and incident) must be stable, so that writing the same
thing again is a new *version* of one object, not a second object. STIX 2.1 asks SDOs and SROs
for UUIDv4 ids (section 2.9; the OASIS validator warns on anything else), so a derived id is a
version-4 UUID whose 122 free bits are the first bits of a SHA-256 of what the object is about:
indistinguishable from a random one, and the same every time. SCOs keep the deterministic
UUIDv5 ids STIX defines for them (the ``stix2`` library computes those).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

from qorgan.core.errors import QorganError

__all__ = ["IdError", "derived_id", "stix_time"]


class IdError(QorganError):
    """An id or time that cannot be written (a naive time)."""


def derived_id(object_type: str, *about: str) -> str:
    """``<object_type>--<uuid4>``, the same for the same ``about`` parts (joined unambiguously)."""
    text = "\x1f".join((object_type, *about))  # the unit separator is in no id or pattern part
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    return f"{object_type}--{uuid.UUID(bytes=digest[:16], version=4)}"


def stix_time(moment: datetime) -> str:
    """A STIX timestamp: UTC, millisecond precision, ``Z``; a naive time is refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise IdError("timestamps must be timezone-aware")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
