"""From incidents to intel and back: sharing an incident with a constituency, its partners'
sightings of what it published, and a partner's report of a sighting.

Incidents are the incident service's and intel the intel store's, and neither package may
import the other: they meet here (as leaks and incidents meet in ``leak_incident.py``). Plain
functions taking ``*, session``; they never commit (the caller's unit of work does).

Documented choices:

- Our organisation's STIX identity is ``derived_id("identity", "organisation", <id>)``, named
  as the organisation, so every object it ever shares names one stable producer.
- The collection's ``redaction_policy`` names the policy: ``"green"`` is
  :func:`qorgan.intel.redaction.GREEN` with the sharing organisation as the victim, its name
  replaced by its sector phrase (:data:`SECTORS`), Chatham House style; no name (None) is no
  redaction (a collection among trusted parties, which its owner chose so). Any other name is
  refused rather than guessed: nothing leaves under a policy we do not know.
- One indicator per shareable observable (address, domain, URL, hash, e-mail address): created
  by our identity, with the incident's TLP, valid from the incident's start, and a confidence
  from the incident's severity (:data:`CONFIDENCE`). A false positive publishes no indicators
  (its observables are not malicious). An indicator whose pattern the policy had to redact (an
  e-mail address under GREEN) is withheld whole, as :func:`~qorgan.intel.incident_share.share`
  withholds the SCO: a redacted value matches nothing.
- Every time in the objects comes from the incident's record (created, updated, started), so
  the preview and the send build the same objects; :func:`prepare_share` is the one function
  both call.
- Sightings of an incident's indicators are the ``sighting`` objects the reader may receive
  (the store's TLP condition) in the collections it reads whose stored JSON holds
  ``"sighting_of_ref":"<one of the ids>"``: the store keeps no column for the reference, but
  it stores every object as compact JSON (orjson), so that exact text is there; the ids are
  checked to hold no LIKE wildcard, and each match is checked again in Python (the text could
  sit inside a description). The newest :data:`SIGHTINGS_SHOWN` per collection are shown, and
  only those are recorded in the audit trail as served. A column would be the next step for
  collections of millions of sightings.
- Names of identities (who created an object, who saw it) are those the reader may receive
  as ``identity`` objects, never looked up in the console's organisations: a producer shared
  under GREEN stays "a bank". A reported sighting carries its organisation's identity object
  (with the sighting's marking): a report names its reporter openly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import desc, func, or_, select

from qorgan.core import audit
from qorgan.core.errors import QorganError
from qorgan.core.models import Organisation, OrganisationKind
from qorgan.core.tlp import Pap, Tlp
from qorgan.incidents import service
from qorgan.incidents.lifecycle import NotFound as IncidentNotFound
from qorgan.incidents.models import StoredAlert
from qorgan.intel import patterns, sightings, store
from qorgan.intel.ids import derived_id
from qorgan.intel.incident_share import (
    IncidentShareError,
    Producer,
    SharedIncident,
    SharedObservable,
    incident_objects,
    share,
)
from qorgan.intel.markings import mark, tlp_of
from qorgan.intel.models import StixObject
from qorgan.intel.redaction import GREEN, PathMark, RedactionPolicy, Victim, redact_object
from qorgan.intel.taxii import Forbidden, NotFound, ObjectFilter

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qorgan.incidents.models import Incident

__all__ = [
    "CONFIDENCE",
    "COUNT_CAP",
    "SECTORS",
    "TYPES",
    "ExchangeError",
    "Prepared",
    "SightingView",
    "access_to",
    "collection_counts",
    "collection_page",
    "identity_id",
    "identity_names",
    "incident_sightings",
    "prepare_share",
    "producer_of",
    "published_indicator_ids",
    "readable",
    "redaction_policy",
    "report_sighting",
    "share_incident",
    "sightings_of",
    "writable",
]

#: An organisation's kind as a STIX industry sector and as the phrase that replaces its name.
SECTORS: dict[OrganisationKind, tuple[str, str]] = {
    OrganisationKind.akimat: ("government-local", "a local government body"),
    OrganisationKind.ministry: ("government-national", "a government body"),
    OrganisationKind.bank: ("financial-services", "a bank"),
    OrganisationKind.soc: ("technology", "a security operations centre"),
    OrganisationKind.cert: ("government-national", "a national CERT"),
    OrganisationKind.other: ("", "an organisation"),
}
#: Indicator confidence (STIX 0-100) per incident severity 1-4: how sure the sharer is that the
#: observable is malicious grows with how serious the incident was found to be.
CONFIDENCE = {1: 50, 2: 60, 3: 75, 4: 85}
#: Objects counted per collection on the overview, at most (see :func:`collection_counts`).
COUNT_CAP = 10_000
#: The types a collection's page offers to filter by: STIX 2.1's objects (a fixed list, so the
#: page never scans the collection for the types it holds).
TYPES = (
    "attack-pattern", "campaign", "course-of-action", "grouping", "identity", "incident",
    "indicator", "infrastructure", "intrusion-set", "location", "malware", "malware-analysis",
    "note", "observed-data", "opinion", "report", "threat-actor", "tool", "vulnerability",
    "relationship", "sighting", "marking-definition", "artifact", "autonomous-system",
    "directory", "domain-name", "email-addr", "email-message", "file", "ipv4-addr",
    "ipv6-addr", "mac-addr", "mutex", "network-traffic", "process", "software", "url",
    "user-account", "windows-registry-key", "x509-certificate",
)  # fmt: skip
#: At most this many sightings of an object or incident are shown per collection.
SIGHTINGS_SHOWN = 200
#: Ids looked for per query (an incident's indicators, one LIKE each).
_IDS_PER_QUERY = 100
_PLAIN_ID = re.compile(r"[a-z0-9-]+--[0-9a-f-]{36}\Z")
#: Hash lengths (hex digits) -> STIX algorithm.
_HASHES = {32: "MD5", 40: "SHA-1", 64: "SHA-256", 128: "SHA-512"}


class ExchangeError(QorganError):
    """A share or sighting that cannot be made (an unknown policy, a bad date ...)."""


def identity_id(organisation_id: int) -> str:
    """Our organisation's STIX identity id (stable, derived from its id)."""
    return derived_id("identity", "organisation", str(organisation_id))


def producer_of(organisation: Organisation) -> Producer:
    """The organisation as the producer of what it shares."""
    sector = SECTORS[OrganisationKind(organisation.kind)][0]
    return Producer(
        identity_id=identity_id(organisation.id),
        name=organisation.name,
        sectors=(sector,) if sector else (),
    )


def redaction_policy(name: str | None, organisation: Organisation) -> RedactionPolicy:
    """The policy a collection names (see the module docstring); unknown names refused."""
    if name is None:
        return RedactionPolicy(kinds=frozenset())
    if name == "green":
        phrase = SECTORS[OrganisationKind(organisation.kind)][1]
        return GREEN(victim=Victim(names=(organisation.name,), sector=phrase))
    raise ExchangeError("the collection names a redaction policy this console does not know")


# --- collections ----------------------------------------------------------------------------


def access_to(*, session: Session, organisation_id: int, taxii_id: str) -> store.Access:
    """The collection ``taxii_id`` as the organisation may use it, in whichever API root it
    sees it; :class:`NotFound` when it may neither read nor write it."""
    for root in store.api_roots_for(session=session, organisation_id=organisation_id):
        try:
            return store.find_collection(
                session=session, api_root=root, taxii_id=taxii_id, organisation_id=organisation_id
            )
        except NotFound:
            continue
    raise NotFound("no such collection")


def _accesses(session: Session, organisation_id: int) -> list[store.Access]:
    """Every collection the organisation may read or write, in every API root it sees."""
    found: list[store.Access] = []
    for root in store.api_roots_for(session=session, organisation_id=organisation_id):
        found.extend(
            store.collections_for(session=session, api_root=root, organisation_id=organisation_id)
        )
    return found


def writable(*, session: Session, organisation_id: int) -> list[store.Access]:
    """Every collection the organisation may write, in every API root it sees."""
    return [a for a in _accesses(session, organisation_id) if a.can_write]


def _latest(session: Session, access: store.Access, reader: int) -> Any:
    """The reader's visible rows of the collection, newest version of each object only."""
    return store.receivable_latest(session, access.collection, reader)


def collection_counts(
    *, session: Session, accesses: list[store.Access], reader: int
) -> dict[int, int]:
    """How many objects (latest versions) the reader may receive, per readable collection,
    counted up to :data:`COUNT_CAP` and no further (a count beyond it is :data:`COUNT_CAP` + 1):
    the overview must not scan a collection of millions each time it is opened."""
    counts: dict[int, int] = {}
    for access in accesses:
        if not access.can_read:
            continue
        bounded = (
            select(StixObject.id).where(*_latest(session, access, reader)).limit(COUNT_CAP + 1)
        ).subquery()
        counts[access.collection.id] = (
            session.scalar(select(func.count()).select_from(bounded)) or 0
        )
    return counts


@dataclass(frozen=True, slots=True)
class Listed:
    """One object as a collection's page lists it."""

    stix_id: str
    type: str
    tlp: Tlp | None
    name: str
    created_by: str | None
    date_added: datetime


def _name(obj: dict[str, Any]) -> str:
    for key in ("name", "pattern", "value", "sighting_of_ref", "relationship_type"):
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value[:300]
    return ""


def collection_page(
    *,
    session: Session,
    access: store.Access,
    reader: int,
    actor: str,
    kind: str | None,
    before: datetime | None,
    size: int = 50,
) -> tuple[list[Listed], bool]:
    """A page of the objects the reader may receive (latest versions), newest first, added
    before ``before`` (the last row of the previous page: ``date_added`` strictly increases
    within a collection, so it is a unique key and pages never shift), and whether more
    follow; the page is recorded in the audit trail as the TAXII server records
    what it serves."""
    if not access.can_read:
        raise Forbidden("this collection is not readable for you")
    o = StixObject
    conditions = _latest(session, access, reader)
    if kind:
        conditions.append(o.type == kind)
    if before is not None:
        conditions.append(o.date_added < before)
    rows = session.execute(
        select(o.stix_id, o.type, o.date_added, o.body, o.version)
        .where(*conditions)
        .order_by(desc(o.date_added), desc(o.id))
        .limit(size + 1)
    ).all()
    listed = []
    for stix_id, kind_, added, body, _version in rows[:size]:
        obj = orjson.loads(body)
        try:
            level = tlp_of(obj)
        except QorganError:
            level = None
        created_by = obj.get("created_by_ref")
        listed.append(
            Listed(
                stix_id=stix_id,
                type=kind_,
                tlp=level,
                name=_name(obj),
                created_by=created_by if isinstance(created_by, str) else None,
                date_added=added,
            )
        )
    if listed:
        audit.record(
            "intel.objects_view",
            session=session,
            actor=actor,
            organisation_id=reader,
            target_type="intel_collection",
            target_id=access.collection.taxii_id,
            details={"objects": [[r[0], r[4]] for r in rows[:size]]},
        )
    return listed, len(rows) > size


# --- sharing an incident --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prepared:
    """What a share sends: the redacted objects, each redaction with the object it was made in,
    and what was withheld (SCO and indicator ids, with the original value for the sender)."""

    objects: tuple[dict[str, Any], ...]
    marks: tuple[tuple[str, PathMark], ...]
    withheld: tuple[tuple[str, str], ...]
    indicators: tuple[str, ...]


def _observable(kind: str, value: str) -> patterns.Observable | None:
    """The detection observable of an incident's observable, or None (accounts, file names,
    values that do not parse)."""
    value = value.strip()
    try:
        if kind == "ip":
            return patterns.Observable.of("ipv6-addr" if ":" in value else "ipv4-addr", value)
        if kind == "domain":
            return patterns.Observable.of("domain-name", value)
        if kind == "url":
            return patterns.Observable.of("url", value)
        if kind == "email":
            return patterns.Observable.of("email-addr", value)
        if kind == "hash" and len(value) in _HASHES:
            return patterns.Observable.of("file-hash", value, _HASHES[len(value)])
    except patterns.PatternError:
        return None
    return None


def _shared(session: Session, incident: Incident, organisation: Organisation) -> SharedIncident:
    observables = service.observables(session=session, incident_id=incident.id)
    return SharedIncident(
        share_id=derived_id(
            "incident", "organisation", str(organisation.id), "incident", str(incident.id)
        ),
        title=incident.title,
        description=incident.description or "",
        status=incident.status,
        resolution=incident.resolution,
        severity=incident.severity,
        created=incident.created_at,
        modified=max(incident.updated_at, incident.created_at),
        started=incident.started_at,
        origin=incident.origin,
        rsit_class=incident.rsit_class,
        rsit_type=incident.rsit_type,
        kz_cert_class=incident.kz_cert_class,
        tlp=Tlp(incident.tlp),
        pap=Pap(incident.pap),
        observables=tuple(SharedObservable(o.kind, o.value) for o in observables),
    )


def _indicators(shared: SharedIncident, producer: Producer) -> list[tuple[str, dict[str, Any]]]:
    """(original value, indicator) for each shareable observable, in the incident's order."""
    if shared.resolution == "false-positive":
        return []
    made: dict[str, tuple[str, dict[str, Any]]] = {}
    for item in shared.observables:
        observable = _observable(item.kind, item.value)
        if observable is None:
            continue
        indicator = patterns.indicator(
            observable,
            created_by_ref=producer.identity_id,
            confidence=CONFIDENCE.get(shared.severity, 50),
            valid_from=shared.started,
            created=shared.created,
            modified=max(shared.modified, shared.created),
            tlp=shared.tlp,
        )
        made.setdefault(indicator["id"], (item.value, indicator))
    return list(made.values())


def _sco_value(obj: dict[str, Any]) -> str:
    if "value" in obj:
        return str(obj["value"])
    return ", ".join(str(v) for v in obj.get("hashes", {}).values())


def published_indicator_ids(
    *, session: Session, incident: Incident, organisation: Organisation
) -> set[str]:
    """The ids of the indicators a share of this incident publishes (they are derived from
    the producer and the pattern, so no record of the share is needed to find them)."""
    shared = _shared(session, incident, organisation)
    return {i["id"] for _, i in _indicators(shared, producer_of(organisation))}


def prepare_share(
    *, session: Session, incident: Incident, organisation: Organisation, access: store.Access
) -> Prepared:
    """What sharing ``incident`` into the collection sends, redacted with the collection's
    policy: the one function the preview and the send both call."""
    policy = redaction_policy(access.collection.redaction_policy, organisation)
    shared = _shared(session, incident, organisation)
    producer = producer_of(organisation)
    try:
        result = share(shared, producer, policy)
        originals = {
            o["id"]: _sco_value(o)
            for o in incident_objects(shared, producer)
            if "value" in o or "hashes" in o
        }
    except IncidentShareError as exc:
        raise ExchangeError(exc.message) from None
    objects = list(result.objects)
    marks = list(result.marks)
    withheld = [(sco, originals.get(sco, sco)) for sco in result.withheld]
    indicators: list[str] = []
    for value, indicator in _indicators(shared, producer):
        redacted = redact_object(indicator, policy)
        if any(m.path[:1] == ("pattern",) for m in redacted.marks):
            withheld.append((indicator["id"], value))
            continue
        objects.append(redacted.object)
        marks.extend((indicator["id"], m) for m in redacted.marks)
        indicators.append(indicator["id"])
    return Prepared(tuple(objects), tuple(marks), tuple(withheld), tuple(indicators))


def _own_incident(session: Session, organisation_id: int, incident_id: int) -> Incident:
    try:
        return service.visible(
            session=session, incident_id=incident_id, organisation_id=organisation_id,
            writing=True,
        )  # fmt: skip
    except IncidentNotFound:
        raise NotFound("no such incident in your organisation") from None


def share_incident(
    *,
    session: Session,
    organisation_id: int,
    actor: str,
    incident_id: int,
    taxii_id: str,
    send: bool,
) -> Prepared:
    """Share the organisation's incident into a collection it may write: the preview when
    ``send`` is false, else the same objects stored (sender: the organisation) and audited.
    Another organisation's incident, or a collection the organisation cannot write, is
    :class:`NotFound` / :class:`Forbidden`."""
    incident = _own_incident(session, organisation_id, incident_id)
    access = access_to(session=session, organisation_id=organisation_id, taxii_id=taxii_id)
    if not access.can_write:
        raise Forbidden("this collection is not writable for you")
    organisation = session.get(Organisation, organisation_id)
    assert organisation is not None
    prepared = prepare_share(
        session=session, incident=incident, organisation=organisation, access=access
    )
    if not send:
        return prepared
    status = store.add_objects(
        list(prepared.objects),
        session=session,
        collection=access.collection,
        sender_id=organisation_id,
        actor=actor,
    )
    if status.failure_count:
        raise ExchangeError("the store refused part of the share; nothing was shared")
    audit.record(
        "intel.incident_share",
        session=session,
        actor=actor,
        organisation_id=organisation_id,
        target_type="incident",
        target_id=incident.id,
        details={
            "collection": access.collection.taxii_id,
            "objects": len(prepared.objects),
            "indicators": list(prepared.indicators),
            "redactions": len(prepared.marks),
            "withheld": len(prepared.withheld),
        },
    )
    return prepared


# --- sightings ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SightingView:
    """A sighting as the pages show it."""

    sighting: sightings.Sighting
    tlp: Tlp | None
    sighted_by: str  # the identity's name as the reader knows it, or its id
    collection: str  # the collection's title

    @property
    def first_seen(self) -> datetime | None:
        return _when(self.sighting.first_seen)

    @property
    def last_seen(self) -> datetime | None:
        return _when(self.sighting.last_seen)


def _when(stamp: str | None) -> datetime | None:
    """A STIX timestamp as an aware datetime (None if absent or unreadable), for the pages to
    show in the console's time zone."""
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def identity_names(
    *, session: Session, reader: int, accesses: list[store.Access]
) -> dict[str, str]:
    """Identity id -> name, as the reader may know them: its own organisation, and the
    ``identity`` objects it may receive in the given collections. Never the console's own list
    of organisations: a producer shared under GREEN is "a bank" to its readers, and mapping
    its derived id back to its name would undo the redaction."""
    names: dict[str, str] = {}
    o = StixObject
    for access in accesses:
        if not access.can_read:
            continue
        for body in session.scalars(
            select(o.body).where(*_latest(session, access, reader), o.type == "identity")
        ):
            obj = orjson.loads(body)
            if isinstance(obj.get("name"), str):
                names[obj["id"]] = obj["name"]
    own = session.get(Organisation, reader)
    if own is not None:
        names[identity_id(own.id)] = own.name
    return names


def readable(*, session: Session, organisation_id: int) -> list[store.Access]:
    """Every collection the organisation may read, in every API root it sees."""
    return [a for a in _accesses(session, organisation_id) if a.can_read]


def _sightings_in(
    session: Session, access: store.Access, reader: int, actor: str, wanted: set[str]
) -> list[tuple[dict[str, Any], sightings.Sighting]]:
    """The newest sightings of ``wanted`` the reader may receive in one collection (see the
    module docstring), recorded as served."""
    o = StixObject
    ids = sorted(i for i in wanted if _PLAIN_ID.match(i))
    found: list[tuple[dict[str, Any], sightings.Sighting]] = []
    served: list[list[str]] = []
    for start in range(0, len(ids), _IDS_PER_QUERY):
        likes = [
            o.body.like(f'%"sighting_of_ref":"{i}"%') for i in ids[start : start + _IDS_PER_QUERY]
        ]
        rows = session.execute(
            select(o.stix_id, o.version, o.body)
            .where(*_latest(session, access, reader), o.type == "sighting", or_(*likes))
            .order_by(desc(o.date_added))
            .limit(SIGHTINGS_SHOWN)
        ).all()
        for stix_id, version, body in rows:
            obj = orjson.loads(body)
            if obj.get("sighting_of_ref") not in wanted:
                continue
            try:
                found.append((obj, sightings.read_sighting(obj)))
            except sightings.SightingError:
                continue  # a malformed sighting is not shown
            served.append([stix_id, version])
    if served:
        audit.record(
            "intel.objects_view",
            session=session,
            actor=actor,
            organisation_id=reader,
            target_type="intel_collection",
            target_id=access.collection.taxii_id,
            details={"objects": served},
        )
    return found[:SIGHTINGS_SHOWN]


def sightings_of(
    *, session: Session, reader: int, actor: str, indicator_ids: set[str]
) -> list[SightingView]:
    """The sightings of ``indicator_ids`` the reader may receive, from every collection it
    reads, newest last seen first."""
    if not indicator_ids:
        return []
    accesses = readable(session=session, organisation_id=reader)
    names = identity_names(session=session, reader=reader, accesses=accesses)
    views: list[SightingView] = []
    for access in accesses:
        for obj, seen in _sightings_in(session, access, reader, actor, indicator_ids):
            who = seen.where_sighted_refs[0] if seen.where_sighted_refs else None
            who = who or seen.created_by_ref or ""
            try:
                level = tlp_of(obj)
            except QorganError:
                level = None
            views.append(SightingView(seen, level, names.get(who, who), access.collection.title))
    views.sort(key=lambda v: v.sighting.last_seen or "", reverse=True)
    return views


def incident_sightings(
    *, session: Session, incident: Incident, reader: int, actor: str
) -> list[SightingView]:
    """Partners' sightings of the indicators this incident published, as the reader may
    receive them under TLP (for the incident's own organisation's page)."""
    organisation = session.get(Organisation, incident.organisation_id)
    assert organisation is not None
    wanted = published_indicator_ids(session=session, incident=incident, organisation=organisation)
    return sightings_of(session=session, reader=reader, actor=actor, indicator_ids=wanted)


def report_sighting(
    *,
    session: Session,
    organisation_id: int,
    actor: str,
    source: str,
    stix_id: str,
    target: str,
    first_seen: datetime,
    last_seen: datetime,
    count: int,
    tlp: Tlp,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Report that the organisation saw ``stix_id`` (which it may read in collection
    ``source``), into collection ``target`` (which it may write), as its own identity; stored
    and audited. Reporting again is a new version of the same sighting."""
    readable = access_to(session=session, organisation_id=organisation_id, taxii_id=source)
    store.read_versions(
        session=session,
        access=readable,
        reader=organisation_id,
        actor=actor,
        stix_id=stix_id,
        query=ObjectFilter(limit=1),
    )  # NotFound unless the reader may receive it
    access = access_to(session=session, organisation_id=organisation_id, taxii_id=target)
    if not access.can_write:
        raise Forbidden("this collection is not writable for you")
    now = now or datetime.now(UTC)
    try:
        made = sightings.sighting(
            stix_id,
            sighted_by=identity_id(organisation_id),
            about=f"report:{organisation_id}",
            first_seen=first_seen,
            last_seen=last_seen,
            count=count,
            created=now,
            tlp=tlp,
        )
    except sightings.SightingError as exc:
        raise ExchangeError(exc.message) from None
    organisation = session.get(Organisation, organisation_id)
    assert organisation is not None
    # The sighting names its organisation openly (a report, not a share under a redaction
    # policy): its identity goes with it, with the same marking, so readers can name it.
    identity = mark(
        {
            "type": "identity",
            "spec_version": "2.1",
            "id": identity_id(organisation_id),
            "created": made["created"],
            "modified": made["created"],
            "name": organisation.name,
            "identity_class": "organization",
        },
        tlp,
    )
    status = store.add_objects(
        [identity, made], session=session, collection=access.collection,
        sender_id=organisation_id, actor=actor, now=now,
    )  # fmt: skip
    if status.failure_count:
        raise ExchangeError("the sighting was refused by the store")
    audit.record(
        "intel.sighting_report",
        session=session,
        actor=actor,
        organisation_id=organisation_id,
        target_type="intel_collection",
        target_id=access.collection.taxii_id,
        details={"sighting": made["id"], "of": stix_id, "count": count},
    )
    return made


#: Alerts an indicator caused, listed on its page (the newest; the count is whole).
ALERTS_SHOWN = 20


def alerts_caused(
    *, session: Session, organisation_id: int, indicator_id: str
) -> tuple[int, list[StoredAlert]]:
    """How many of the organisation's alerts the indicator caused (a hunt's or live
    monitoring's match carries the indicator's id as its rule id), and the newest of them."""
    where = (
        StoredAlert.organisation_id == organisation_id,
        StoredAlert.rule_id == indicator_id[:200],
    )
    count = session.scalar(select(func.count()).select_from(StoredAlert).where(*where)) or 0
    newest = session.scalars(
        select(StoredAlert).where(*where).order_by(StoredAlert.id.desc()).limit(ALERTS_SHOWN)
    ).all()
    return count, list(newest)
