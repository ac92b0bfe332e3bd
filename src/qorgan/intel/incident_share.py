"""An incident as STIX 2.1, for sharing with a constituency: the Incident Core Extension.

STIX 2.1's ``incident`` is a stub; OASIS's Incident Core Extension
(``extension-definition--ef765651-680c-498d-9894-99799f2fa126``, cti-stix-common-objects,
``extension-definition-specifications/incident-core/``) adds what a CERT exchanges: the
``determination`` (required), the ``investigation_status`` (required), ``incident_types``,
``criticality`` (0-100) and ``detection_methods``. This module maps a Qorgan incident onto it,
with the incident's observables as SCOs inside one ``observed-data`` object, the producer as an
``identity``, and every object marked with the incident's TLP and PAP.

It is pure (plain data in, JSON dicts out); the caller redacts the result with the collection's
policy before anything leaves (:func:`qorgan.intel.redaction.redact_object`, whose victim rule
turns the producer's name into its sector, Chatham House style).

The mapping, one documented choice per field:

- ``investigation_status``: ``new`` while the incident is new, ``closed`` once closed, ``open``
  in every phase between (triage to review). The extension leaves the vocabulary open and names
  these three.
- ``determination``: from the resolution. A true positive with impact is a
  ``successful-attempt``, without impact a ``failed-attempt``, a false positive a
  ``false-positive``; an open incident is ``suspected``. A duplicate is not shared (the incident
  it duplicates is), so asking is an error.
- ``incident_types``: the ENISA RSIT class and type as ``rsit:<class>/<type>`` and the KZ-CERT
  class as ``kz-cert:<class>`` (the property is an open vocabulary).
- ``criticality``: Qorgan's severity 1-4 (low ... critical) as 25, 50, 75, 100.
- ``detection_methods``: ``qorgan`` and how the incident was opened (``alert``, ``manual``,
  ``public-report`` ...).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from qorgan.core.errors import QorganError
from qorgan.core.tlp import Pap, Tlp
from qorgan.intel.ids import IdError, derived_id, stix_time
from qorgan.intel.markings import mark, mark_pap
from qorgan.intel.redaction import PathMark, RedactionPolicy, redact_object

__all__ = [
    "INCIDENT_CORE_EXTENSION_ID",
    "IncidentShareError",
    "Producer",
    "Share",
    "SharedIncident",
    "SharedObservable",
    "incident_objects",
    "share",
    "stix_timestamp",
]

INCIDENT_CORE_EXTENSION_ID = "extension-definition--ef765651-680c-498d-9894-99799f2fa126"

_CRITICALITY = {1: 25, 2: 50, 3: 75, 4: 100}
_DETERMINATION = {
    "true-positive-impact": "successful-attempt",
    "true-positive-no-impact": "failed-attempt",
    "false-positive": "false-positive",
}
#: SCO types of Qorgan's observable kinds (``incidents.observables.KINDS``). Accounts and
#: file names are not shared: an account names a person, and a bare file name identifies
#: nothing outside the victim's machines.
_SCO_KINDS = ("ip", "domain", "url", "hash", "email")
_SCO_TYPES = frozenset({"ipv4-addr", "ipv6-addr", "domain-name", "url", "email-addr", "file"})
_HASH_NAMES = {32: "MD5", 40: "SHA-1", 64: "SHA-256"}


class IncidentShareError(QorganError):
    """An incident that cannot be shared as it stands (a duplicate, no observables ...)."""


@dataclass(frozen=True, slots=True)
class Producer:
    """The organisation that shares: its name and its sectors (STIX industry-sector-ov)."""

    identity_id: str  # "identity--<uuid>", stable per organisation
    name: str
    sectors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SharedObservable:
    """One observable of the incident: Qorgan's kind (``ip``, ``domain``, ...) and value."""

    kind: str
    value: str


@dataclass(frozen=True, slots=True)
class SharedIncident:
    """What of an incident is shared; the service fills it from the incident's record."""

    share_id: str  # "incident--<uuid>", stable per incident so a re-share is a new version
    title: str
    description: str
    status: str  # incidents.lifecycle.Status value
    resolution: str | None
    severity: int  # 1..4
    created: datetime
    modified: datetime
    started: datetime
    origin: str = "manual"
    rsit_class: str | None = None
    rsit_type: str | None = None
    kz_cert_class: str | None = None
    tlp: Tlp = Tlp.amber
    pap: Pap = Pap.amber
    observables: tuple[SharedObservable, ...] = field(default=())


def stix_timestamp(at: datetime) -> str:
    """A STIX timestamp; a naive time is refused (:class:`IncidentShareError`)."""
    try:
        return stix_time(at)
    except IdError:
        raise IncidentShareError("a time without a zone cannot be shared") from None


def _sco(observable: SharedObservable) -> dict[str, Any] | None:
    """The SCO for one observable (deterministic id, computed by ``stix2``), or None."""
    # The OASIS library computes the SCOs' deterministic (UUIDv5) ids; imported here because
    # it takes a third of a second, which pages and commands that never share should not pay.
    import stix2

    kind, value = observable.kind, observable.value.strip()
    try:
        if kind == "ip":
            made: Any = (stix2.IPv6Address if ":" in value else stix2.IPv4Address)(value=value)
        elif kind == "domain":
            made = stix2.DomainName(value=value.lower().rstrip("."))
        elif kind == "url":
            made = stix2.URL(value=value)
        elif kind == "email":
            made = stix2.EmailAddress(value=value)
        elif kind == "hash":
            name = _HASH_NAMES.get(len(value))
            if name is None:
                return None
            made = stix2.File(hashes={name: value.lower()})
        else:
            return None
    except stix2.exceptions.STIXError:
        return None
    return json.loads(made.serialize())


def incident_objects(incident: SharedIncident, producer: Producer) -> list[dict[str, Any]]:
    """The STIX objects that share ``incident``: identity, incident, observed data and SCOs.

    Every SDO is marked with the incident's TLP and PAP and created by the producer; SCOs carry
    the same markings (STIX 2.1 allows ``object_marking_refs`` on SCOs) so a receiver never
    holds an unmarked piece of an AMBER incident. Unsupported or invalid observables are left
    out, never guessed.
    """
    if incident.resolution == "duplicate":
        raise IncidentShareError("a duplicate is not shared: share the incident it duplicates")
    if incident.severity not in _CRITICALITY:
        raise IncidentShareError("severity must be 1 to 4")
    created = stix_timestamp(incident.created)
    modified = stix_timestamp(max(incident.modified, incident.created))
    status = incident.status
    investigation = "new" if status == "new" else "closed" if status == "closed" else "open"
    determination = (
        _DETERMINATION.get(incident.resolution or "", "suspected")
        if status == "closed"
        else "suspected"
    )
    types = []
    if incident.rsit_class:
        rsit = incident.rsit_class + (f"/{incident.rsit_type}" if incident.rsit_type else "")
        types.append(f"rsit:{rsit}")
    if incident.kz_cert_class:
        types.append(f"kz-cert:{incident.kz_cert_class}")
    extension: dict[str, Any] = {
        "extension_type": "property-extension",
        "determination": determination,
        "investigation_status": investigation,
        "criticality": _CRITICALITY[incident.severity],
        "detection_methods": ["qorgan", incident.origin],
    }
    if types:
        extension["incident_types"] = types

    def marked(obj: dict[str, Any]) -> dict[str, Any]:
        return mark_pap(mark(obj, incident.tlp), incident.pap)

    identity = {
        "type": "identity",
        "spec_version": "2.1",
        "id": producer.identity_id,
        "created": created,
        "modified": created,
        "name": producer.name,
        "identity_class": "organization",
    }
    if producer.sectors:
        identity["sectors"] = list(producer.sectors)
    shared: dict[str, Any] = {
        "type": "incident",
        "spec_version": "2.1",
        "id": incident.share_id,
        "created_by_ref": producer.identity_id,
        "created": created,
        "modified": modified,
        "name": incident.title,
        "extensions": {INCIDENT_CORE_EXTENSION_ID: extension},
    }
    if incident.description.strip():
        shared["description"] = incident.description
    objects = [marked(identity), marked(shared)]
    scos = _unique_scos(incident.observables)
    if scos:
        # The observed data's id follows the incident's, so a re-share replaces it.
        observed_id = _derived_id("observed-data", incident.share_id)
        observed = {
            "type": "observed-data",
            "spec_version": "2.1",
            "id": observed_id,
            "created_by_ref": producer.identity_id,
            "created": created,
            "modified": modified,
            "first_observed": stix_timestamp(incident.started),
            "last_observed": modified,
            "number_observed": 1,
            "object_refs": [sco["id"] for sco in scos],
        }
        objects.append(marked(observed))
        objects.extend(marked(sco) for sco in scos)
        relationship = {
            "type": "relationship",
            "spec_version": "2.1",
            "id": _derived_id("relationship", incident.share_id),
            "created_by_ref": producer.identity_id,
            "created": created,
            "modified": modified,
            "relationship_type": "related-to",
            "source_ref": incident.share_id,
            "target_ref": observed_id,
        }
        objects.append(marked(relationship))
    return objects


def _derived_id(object_type: str, share_id: str) -> str:
    """A stable id for an object that belongs to one shared incident, so a re-share is a new
    version of the same objects."""
    return derived_id(object_type, "incident", share_id)


def _unique_scos(observables: Sequence[SharedObservable]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    scos: list[dict[str, Any]] = []
    for observable in observables:
        if observable.kind not in _SCO_KINDS:
            continue
        sco = _sco(observable)
        if sco is None or sco["id"] in seen:
            continue
        seen.add(sco["id"])
        scos.append(sco)
    return scos


@dataclass(frozen=True, slots=True)
class Share:
    """What leaves, as the sender previews it: the redacted objects, each redaction with the
    object it was made in, and the observables withheld because redaction took their value."""

    objects: tuple[dict[str, Any], ...]
    marks: tuple[tuple[str, PathMark], ...]
    withheld: tuple[str, ...]


def share(incident: SharedIncident, producer: Producer, policy: RedactionPolicy) -> Share:
    """The incident's objects after ``policy``: the one function both the preview and the send
    call, so the sender approves exactly what leaves.

    An SCO whose identifying value was redacted (an e-mail address under a policy that removes
    e-mail addresses) is withheld whole, and its reference leaves the observed data: ``[e-mail]``
    is not an e-mail address, and a receiver could not match it anyway. If no observable is
    left, the observed data and its relationship go too.
    """
    objects: list[dict[str, Any]] = []
    marks: list[tuple[str, PathMark]] = []
    withheld: list[str] = []
    for obj in incident_objects(incident, producer):
        redacted = redact_object(obj, policy)
        if obj["type"] in _SCO_TYPES and any(m.path[:1] == ("value",) for m in redacted.marks):
            withheld.append(obj["id"])
            continue
        objects.append(redacted.object)
        marks.extend((obj["id"], mark) for mark in redacted.marks)
    if withheld:
        gone = set(withheld)
        kept: list[dict[str, Any]] = []
        for obj in objects:
            if obj["type"] == "observed-data":
                refs = [ref for ref in obj["object_refs"] if ref not in gone]
                if not refs:
                    gone.add(obj["id"])
                    continue
                obj = {**obj, "object_refs": refs}
            elif obj["type"] == "relationship" and obj["target_ref"] in gone:
                continue
            kept.append(obj)
        objects = kept
    return Share(objects=tuple(objects), marks=tuple(marks), withheld=tuple(withheld))
