"""The intel store: constituencies, collections and their grants, STIX 2.1 objects with their
versions, what each reader may receive under TLP 2.0, and active indicators with decaying
confidence. Plain functions taking ``*, session``; they never commit (the caller's unit of
work does, before it acknowledges anything).

Writing (:func:`add_objects`) is the bulk path: each object is checked cheaply by hand (type,
id, spec_version, timestamps, confidence, markings, size, text a database can hold) rather than
built as a ``stix2`` object, which would cost more than everything else together; valid objects
are inserted with multi-row statements, invalid ones become failures of the write's status
with the reason. The JSON of each object is kept as received (keys, markings, extensions and
custom properties untouched), and served back as that text.

Reading applies TLP in the query: for one reader and one collection the rule of
:func:`qorgan.intel.markings.may_receive` reduces to a condition on two columns (the sender and
the TLP rank) with three small sets of senders known before the query (those that made the
reader a client, those that named it for RED, and whether the reader is in the collection's
constituency), so a page of 1,000 objects is one query. An object a reader may not receive is
absent for that reader, in counts and pages alike.

Documented choices:

- An object without a TLP marking takes its collection's ``default_tlp`` (AMBER unless the
  collection says otherwise) when it is stored; the published TLP 2.0 and PAP
  marking-definition objects themselves are CLEAR (a reader needs them to read markings).
- ``match[version]=last`` is the newest version of an object *whatever its marking*: if the
  sender tightened the newest version beyond the reader, the reader receives nothing rather
  than the older, wider version.
- Confidence decays linearly from the stated value at the version's ``modified`` time to 0 after
  :data:`DECAY_PERIOD` (see :func:`decayed_confidence`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import and_, delete, exists, false, func, or_, select, text, true
from sqlalchemy.orm import aliased

from qorgan.core import audit
from qorgan.core.tlp import Pap, Tlp
from qorgan.intel.markings import (
    MarkingError,
    pap_marking_definition,
    pap_of,
    tlp_marking_definition,
    tlp_of,
)
from qorgan.intel.models import (
    ApiRoot,
    Client,
    Collection,
    Grant,
    RedRecipient,
    RootMember,
    StixObject,
    WriteStatus,
)
from qorgan.intel.taxii import (
    MAX_PAGE,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ObjectFilter,
    format_timestamp,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session
    from sqlalchemy.sql import ColumnElement

__all__ = [
    "DECAY_PERIOD",
    "MAX_OBJECT_BYTES",
    "Access",
    "ActiveIndicator",
    "Page",
    "Row",
    "active_indicators",
    "add_client",
    "add_member",
    "add_objects",
    "api_root_for",
    "api_roots_for",
    "collections_for",
    "create_api_root",
    "create_collection",
    "decayed_confidence",
    "delete_object",
    "find_collection",
    "grant",
    "name_red_recipient",
    "read_objects",
    "read_status",
    "read_versions",
]

#: The largest object accepted, as compact JSON.
MAX_OBJECT_BYTES = 256 * 1024
#: Rows per INSERT statement on the bulk path.
CHUNK = 2000
#: Confidence falls to 0 this long after an indicator's last modification.
DECAY_PERIOD = timedelta(days=365)

#: STIX 2.1 cyber-observable types: ``spec_version`` is optional on them, and they carry no
#: ``created``/``modified``, so their version is their date added.
SCO_TYPES = frozenset(
    {
        "artifact", "autonomous-system", "directory", "domain-name", "email-addr",
        "email-message", "file", "ipv4-addr", "ipv6-addr", "mac-addr", "mutex",
        "network-traffic", "process", "software", "url", "user-account",
        "windows-registry-key", "x509-certificate",
    }
)  # fmt: skip
_TYPE = re.compile(r"[a-z0-9][a-z0-9-]{1,248}[a-z0-9]\Z")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z\Z")
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\Z")
_ONE_MICROSECOND = timedelta(microseconds=1)
#: Ranks looked up once (``.rank`` searches the enum each time). One table per protocol: the
#: levels are strings, and Tlp.red == Pap.red == "red".
_TLP_RANK = {level: level.rank for level in Tlp}
_PAP_RANK = {level: level.rank for level in Pap}
#: The published TLP 2.0 and PAP marking definitions: public by nature (every reader needs them
#: to read the markings), so stored as CLEAR whatever the collection's default.
PUBLIC_MARKINGS = frozenset(
    [tlp_marking_definition(level)["id"] for level in Tlp]
    + [pap_marking_definition(level)["id"] for level in Pap]
)


# --- constituencies, audiences, collections ------------------------------------------------


def create_api_root(*, session: Session, slug: str, title: str, description: str = "") -> ApiRoot:
    """A constituency's API root (``slug`` in its URL: lower-case letters, digits, hyphens)."""
    if not _SLUG.match(slug):
        raise BadRequest("an API root's name is 1-63 lower-case letters, digits and hyphens")
    root = ApiRoot(slug=slug, title=title.strip()[:200], description=description)
    session.add(root)
    session.flush()
    return root


def add_member(*, session: Session, api_root: ApiRoot, organisation_id: int) -> None:
    """Make an organisation a member of a constituency (its TLP GREEN community)."""
    session.merge(RootMember(api_root_id=api_root.id, organisation_id=organisation_id))
    session.flush()


def add_client(*, session: Session, organisation_id: int, client_id: int) -> None:
    """``client_id`` becomes a client of ``organisation_id`` (receives its TLP AMBER)."""
    if organisation_id == client_id:
        raise BadRequest("an organisation is not its own client")
    session.merge(Client(organisation_id=organisation_id, client_id=client_id))
    session.flush()


def name_red_recipient(*, session: Session, sender_id: int, recipient_id: int) -> None:
    """``sender_id`` names ``recipient_id`` as a recipient of its TLP RED objects."""
    session.merge(RedRecipient(sender_id=sender_id, recipient_id=recipient_id))
    session.flush()


def root_by_slug(*, session: Session, slug: str) -> ApiRoot:
    """A constituency by its slug, for its operator (no reader's rights apply)."""
    root = session.scalar(select(ApiRoot).where(ApiRoot.slug == slug))
    if root is None:
        raise NotFound("no such constituency")
    return root


def collection_by_id(*, session: Session, taxii_id: str) -> Collection:
    """A collection by its TAXII id, for its operator (no reader's rights apply)."""
    found = session.scalar(select(Collection).where(Collection.taxii_id == taxii_id))
    if found is None:
        raise NotFound("no such collection")
    return found


def create_collection(
    *,
    session: Session,
    actor: str,
    api_root: ApiRoot,
    owner_id: int,
    title: str,
    description: str = "",
    alias: str | None = None,
    redaction_policy: str | None = None,
    default_tlp: Tlp = Tlp.amber,
) -> Collection:
    """A new collection owned by ``owner_id`` (who may read and write it), audited."""
    collection = Collection(
        taxii_id=str(uuid.uuid4()),
        api_root_id=api_root.id,
        owner_id=owner_id,
        title=title.strip()[:200],
        description=description,
        alias=alias,
        redaction_policy=redaction_policy,
        default_tlp=Tlp(default_tlp).rank,
    )
    session.add(collection)
    session.flush()
    session.add(Grant(collection_id=collection.id, organisation_id=owner_id, can_read=True,
                      can_write=True))  # fmt: skip
    audit.record(
        "intel.collection_create",
        session=session,
        actor=actor,
        organisation_id=owner_id,
        target_type="intel_collection",
        target_id=collection.taxii_id,
        details={"api_root": api_root.slug, "default_tlp": Tlp(default_tlp).value},
    )
    return collection


def grant(
    *, session: Session, collection: Collection, organisation_id: int, can_read: bool,
    can_write: bool,
) -> None:  # fmt: skip
    """Set what ``organisation_id`` may do with ``collection`` (not the owner's rights)."""
    if organisation_id == collection.owner_id:
        raise Conflict("the owner of a collection always reads and writes it")
    session.merge(
        Grant(collection_id=collection.id, organisation_id=organisation_id, can_read=can_read,
              can_write=can_write)
    )  # fmt: skip
    session.flush()


@dataclass(frozen=True, slots=True)
class Access:
    """A collection as one organisation may use it."""

    collection: Collection
    can_read: bool
    can_write: bool


def api_roots_for(*, session: Session, organisation_id: int) -> list[ApiRoot]:
    """The API roots an organisation sees: those it is a member of or holds a grant in."""
    member = select(RootMember.api_root_id).where(RootMember.organisation_id == organisation_id)
    granted = (
        select(Collection.api_root_id)
        .join(Grant, Grant.collection_id == Collection.id)
        .where(Grant.organisation_id == organisation_id, or_(Grant.can_read, Grant.can_write))
    )
    return list(
        session.scalars(
            select(ApiRoot).where(or_(ApiRoot.id.in_(member), ApiRoot.id.in_(granted)))
            .order_by(ApiRoot.slug)
        )
    )  # fmt: skip


def api_root_for(*, session: Session, slug: str, organisation_id: int) -> ApiRoot:
    """The API root ``slug`` if the organisation sees it; :class:`NotFound` otherwise."""
    for root in api_roots_for(session=session, organisation_id=organisation_id):
        if root.slug == slug:
            return root
    raise NotFound("no such API root")


def collections_for(*, session: Session, api_root: ApiRoot, organisation_id: int) -> list[Access]:
    """The collections of ``api_root`` the organisation may read or write."""
    rows = session.execute(
        select(Collection, Grant.can_read, Grant.can_write)
        .join(Grant, Grant.collection_id == Collection.id)
        .where(
            Collection.api_root_id == api_root.id,
            Grant.organisation_id == organisation_id,
            or_(Grant.can_read, Grant.can_write),
        )
        .order_by(Collection.created_at, Collection.id)
    )
    return [Access(c, bool(r), bool(w)) for c, r, w in rows]


def find_collection(
    *, session: Session, api_root: ApiRoot, taxii_id: str, organisation_id: int
) -> Access:
    """One collection the organisation may read or write; :class:`NotFound` for any other
    (another organisation's collection looks exactly like one that does not exist)."""
    row = session.execute(
        select(Collection, Grant.can_read, Grant.can_write)
        .join(Grant, Grant.collection_id == Collection.id)
        .where(
            Collection.api_root_id == api_root.id,
            Collection.taxii_id == taxii_id,
            Grant.organisation_id == organisation_id,
            or_(Grant.can_read, Grant.can_write),
        )
    ).first()
    if row is None:
        raise NotFound("no such collection")
    return Access(row[0], bool(row[1]), bool(row[2]))


# --- writing --------------------------------------------------------------------------------


class _Invalid(Exception):
    """One object's reason for refusal (internal: it becomes a status failure)."""


def _timestamp(obj: Mapping[str, Any], name: str, required: bool) -> tuple[str, datetime] | None:
    text = obj.get(name)
    if text is None:
        if required:
            raise _Invalid(f"{name} is required")
        return None
    if not isinstance(text, str) or not _TIMESTAMP.match(text):
        raise _Invalid(f"{name} must be an RFC 3339 UTC timestamp")
    try:
        # The pattern admits only UTC with "Z"; Python 3.11 reads that, and any number of
        # fractional digits (beyond microseconds dropped).
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _Invalid(f"{name} is not a valid date and time") from None
    return text, value


def _identify(obj: Any) -> tuple[str, str]:
    """The object's type and id, checked (``<type>--<uuid>``)."""
    if not isinstance(obj, dict):
        raise _Invalid("a STIX object must be a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str) or not _TYPE.match(kind):
        raise _Invalid("type must be 3-250 lower-case letters, digits and hyphens")
    ident = obj.get("id")
    if (
        not isinstance(ident, str)
        or not ident.startswith(kind)
        or ident[len(kind) : len(kind) + 2] != "--"
        or not _UUID.match(ident, len(kind) + 2)
    ):
        raise _Invalid("id must be the object's type, '--' and a lower-case UUID")
    return kind, ident


def _row(obj: dict[str, Any], kind: str, collection: Collection) -> dict[str, Any]:
    """The columns of one valid object (``version``/``version_at`` None for an SCO without
    them: set to its date added by the caller)."""
    spec = obj.get("spec_version")
    is_sco = kind in SCO_TYPES
    if spec != "2.1" and not (is_sco and spec is None):
        raise _Invalid('spec_version must be "2.1"')
    created = _timestamp(obj, "created", required=not is_sco)
    modified = _timestamp(obj, "modified", required=False)
    version = modified or created
    valid_until = _timestamp(obj, "valid_until", required=False)
    _timestamp(obj, "valid_from", required=kind == "indicator")
    confidence = obj.get("confidence")
    if confidence is not None and (type(confidence) is not int or not 0 <= confidence <= 100):
        raise _Invalid("confidence must be a whole number from 0 to 100")
    revoked = obj.get("revoked", False)
    if type(revoked) is not bool:
        raise _Invalid("revoked must be true or false")
    try:
        level = tlp_of(obj)
        pap = pap_of(obj)
    except MarkingError as exc:
        raise _Invalid(exc.message) from None
    try:
        body = orjson.dumps(obj)
    except orjson.JSONEncodeError:
        raise _Invalid("the object holds text that is not valid Unicode") from None
    if len(body) > MAX_OBJECT_BYTES:
        raise _Invalid(f"the object is larger than {MAX_OBJECT_BYTES // 1024} KiB")
    if b"\\u0000" in body:
        raise _Invalid("the object holds a NUL character")
    return {
        "collection_id": collection.id,
        "stix_id": obj["id"],
        "type": kind,
        "spec_version": "2.1",
        "version": None if version is None else version[0],
        "version_at": None if version is None else version[1],
        "tlp": (
            _TLP_RANK[level]
            if level is not None
            else _TLP_RANK[Tlp.clear]
            if obj["id"] in PUBLIC_MARKINGS
            else collection.default_tlp
        ),
        "pap": None if pap is None else _PAP_RANK[pap],
        "confidence": confidence,
        "valid_until": None if valid_until is None else valid_until[1],
        "revoked": revoked,
        "body": body.decode(),
    }


_COLUMNS = (
    "collection_id", "stix_id", "type", "spec_version", "version", "version_at", "date_added",
    "sender_id", "tlp", "pap", "confidence", "valid_until", "revoked", "body",
)  # fmt: skip
_TIMES = frozenset({"version_at", "date_added", "valid_until"})
#: SQLite's fast path: the driver's own executemany, with times written as SQLAlchemy's SQLite
#: DATETIME writes them (UTC, no offset, microseconds), so comparisons in queries still hold.
_SQLITE_INSERT = (
    f"INSERT INTO intel_objects ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
    " ON CONFLICT (collection_id, stix_id, version_at) DO NOTHING"
)


_POSTGRES_INSERT = (
    f"INSERT INTO intel_objects ({', '.join(_COLUMNS)})"
    f" VALUES ({', '.join(['%s'] * len(_COLUMNS))})"
    " ON CONFLICT (collection_id, stix_id, version_at) DO NOTHING"
)


def _sqlite_value(name: str, value: Any) -> Any:
    if value is None or name not in _TIMES:
        return value
    return value.astimezone(UTC).isoformat(" ", "microseconds")[:26]  # no "+00:00"


def _insert(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert rows, skipping versions already stored (same collection, id and instant).

    The rows go straight to the driver (psycopg pipelines an executemany): SQLAlchemy's
    per-row parameter processing cost as much as everything else on the bulk path together
    (bench/intel.py). On SQLite times are written as its DATETIME type writes them."""
    connection = session.connection()
    if session.get_bind().dialect.name == "sqlite":
        values = [tuple(_sqlite_value(c, row[c]) for c in _COLUMNS) for row in rows]
        for start in range(0, len(values), CHUNK):
            connection.exec_driver_sql(_SQLITE_INSERT, values[start : start + CHUNK])
        return
    values = [tuple(row[c] for c in _COLUMNS) for row in rows]
    for start in range(0, len(values), CHUNK):
        connection.exec_driver_sql(_POSTGRES_INSERT, values[start : start + CHUNK])


def _stored_observables(
    session: Session, collection: Collection, rows: list[dict[str, Any]]
) -> dict[str, str]:
    """The versions of the unversioned SCOs among ``rows`` that the collection already has."""
    wanted = list({r["stix_id"] for r in rows if r["version_at"] is None})
    found: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        found.update(
            session.execute(
                select(StixObject.stix_id, func.min(StixObject.version))
                .where(
                    StixObject.collection_id == collection.id,
                    StixObject.stix_id.in_(wanted[start : start + 500]),
                )
                .group_by(StixObject.stix_id)
            ).all()
        )
    return found


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Latest:
    """The newest stored version of an object: its instant, ``created`` and ``valid_until``."""

    version_at: datetime | None
    created: str | None
    valid_until: datetime | None


def latest_versions(
    *, session: Session, collection: Collection, stix_ids: Sequence[str]
) -> dict[str, Latest]:
    """The newest stored version of each of ``stix_ids`` that the collection holds (for a feed
    deciding what is new: see :mod:`qorgan.intel.subscriptions`)."""
    found: dict[str, Latest] = {}
    bodies: dict[str, str] = {}
    wanted = list(dict.fromkeys(stix_ids))
    for start in range(0, len(wanted), 500):
        for stix_id, version_at, valid_until, body in session.execute(
            select(
                StixObject.stix_id, StixObject.version_at, StixObject.valid_until, StixObject.body
            ).where(
                StixObject.collection_id == collection.id,
                StixObject.stix_id.in_(wanted[start : start + 500]),
            )
        ):
            known = found.get(stix_id)
            if known is None or (version_at or _EPOCH) > (known.version_at or _EPOCH):
                found[stix_id] = Latest(version_at, None, valid_until)
                bodies[stix_id] = body
    for stix_id, body in bodies.items():
        created = orjson.loads(body).get("created")
        if isinstance(created, str):
            found[stix_id] = Latest(found[stix_id].version_at, created, found[stix_id].valid_until)
    return found


def add_objects(
    objects: Sequence[Any],
    *,
    session: Session,
    collection: Collection,
    sender_id: int,
    actor: str,
    now: datetime | None = None,
) -> WriteStatus:
    """Store ``objects`` (STIX 2.1 dicts) in ``collection`` as sent by ``sender_id``, and return
    the write's status resource (also stored, for the sender to read).

    Each valid object is a success, including a version already stored (which is not stored
    again); each invalid one a failure with its reason. Writers of a collection take turns
    (the audit trail's lock, taken first), so ``date_added`` strictly increases in insert
    order and the concurrent POST of one version stores one row."""
    audit.lock(session)
    now = now or datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    successes: list[dict[str, str]] = []
    failures: list[dict[str, str]] = []
    for obj in objects:
        ident = ""
        try:
            kind, ident = _identify(obj)
            row = _row(obj, kind, collection)
        except _Invalid as exc:
            version = obj.get("modified") or obj.get("created") if isinstance(obj, dict) else None
            failure = {"id": ident, "message": str(exc)}
            if isinstance(version, str) and len(version) <= 40:
                failure["version"] = version
            failures.append(failure)
            continue
        row["sender_id"] = sender_id
        rows.append(row)
    last = session.scalar(
        select(func.max(StixObject.date_added)).where(StixObject.collection_id == collection.id)
    )
    added = now if last is None or last < now else last + _ONE_MICROSECOND
    kept_observables = _stored_observables(session, collection, rows)
    stored: list[dict[str, Any]] = []
    for row in rows:
        if row["version_at"] is None:
            # An SCO without created/modified has no versions: its first date added is its
            # version, and adding it again is a success that stores nothing.
            known = kept_observables.get(row["stix_id"])
            if known is not None:
                successes.append({"id": row["stix_id"], "version": known})
                continue
            row["version_at"] = added
            row["version"] = kept_observables[row["stix_id"]] = format_timestamp(added)
        row["date_added"] = added
        successes.append({"id": row["stix_id"], "version": row["version"]})
        stored.append(row)
        added += _ONE_MICROSECOND
    _insert(session, stored)
    status = WriteStatus(
        id=str(uuid.uuid4()),
        collection_id=collection.id,
        organisation_id=sender_id,
        status="complete",
        request_timestamp=now,
        total_count=len(objects),
        success_count=len(successes),
        failure_count=len(failures),
        pending_count=0,
        successes=successes,
        failures=failures,
        pending=[],
    )
    session.add(status)
    audit.record(
        "intel.objects_add",
        session=session,
        actor=actor,
        organisation_id=sender_id,
        target_type="intel_collection",
        target_id=collection.taxii_id,
        details={
            "status": status.id,
            "objects": [[s["id"], s["version"]] for s in successes],
            "failures": len(failures),
        },
    )
    return status


def read_status(*, session: Session, status_id: str, organisation_id: int) -> WriteStatus:
    """A write's status, for the organisation that wrote; :class:`NotFound` for anyone else."""
    status = session.get(WriteStatus, status_id[:36])
    if status is None or status.organisation_id != organisation_id:
        raise NotFound("no such status")
    return status


# --- reading --------------------------------------------------------------------------------


def _visible(session: Session, collection: Collection, reader: int) -> ColumnElement[bool]:
    """The TLP condition for ``reader`` on ``collection``'s rows (see the module docstring)."""
    member = session.scalar(
        select(
            exists().where(
                RootMember.api_root_id == collection.api_root_id,
                RootMember.organisation_id == reader,
            )
        )
    )
    client_of = list(session.scalars(select(Client.organisation_id).where(
        Client.client_id == reader)))  # fmt: skip
    named_by = list(session.scalars(select(RedRecipient.sender_id).where(
        RedRecipient.recipient_id == reader)))  # fmt: skip
    o = StixObject
    allowed: list[ColumnElement[bool]] = [o.sender_id == reader, o.tlp == Tlp.clear.rank]
    if named_by:
        allowed.append(and_(o.tlp == Tlp.red.rank, o.sender_id.in_(named_by)))
    if client_of:
        allowed.append(
            and_(o.tlp.in_((Tlp.green.rank, Tlp.amber.rank)), o.sender_id.in_(client_of))
        )
    if member:
        allowed.append(o.tlp == Tlp.green.rank)
    return or_(*allowed)


def receivable_latest(
    session: Session, collection: Collection, reader: int
) -> list[ColumnElement[bool]]:
    """Conditions on :class:`StixObject` for the newest version of each object of
    ``collection`` that ``reader`` may receive: the store's one TLP rule, for the console's own
    queries (counts, pages, sightings) beside the TAXII reads."""
    return [
        StixObject.collection_id == collection.id,
        _visible(session, collection, reader),
        _version_condition(("last",)),
    ]


def _version_condition(versions: Iterable[str | datetime]) -> ColumnElement[bool]:
    o = StixObject
    other = aliased(StixObject)
    same = and_(other.collection_id == o.collection_id, other.stix_id == o.stix_id)
    parts: list[ColumnElement[bool]] = []
    instants = [v for v in versions if isinstance(v, datetime)]
    for value in versions:
        if value == "all":
            return true()
        if value == "last":
            parts.append(~exists().where(same, other.version_at > o.version_at))
        elif value == "first":
            parts.append(~exists().where(same, other.version_at < o.version_at))
    if instants:
        parts.append(o.version_at.in_(instants))
    return or_(*parts) if parts else false()


@dataclass(frozen=True, slots=True)
class Row:
    """One object version as served."""

    stix_id: str
    version: str
    date_added: datetime
    body: str


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a collection: rows in ``date_added`` order, and whether more follow."""

    rows: list[Row]
    more: bool

    @property
    def first_added(self) -> datetime | None:
        return self.rows[0].date_added if self.rows else None

    @property
    def last_added(self) -> datetime | None:
        return self.rows[-1].date_added if self.rows else None


def _query_page(
    session: Session,
    collection: Collection,
    reader: int,
    query: ObjectFilter,
    extra: Sequence[ColumnElement[bool]] = (),
) -> Page:
    o = StixObject
    conditions = [o.collection_id == collection.id, _visible(session, collection, reader), *extra]
    bounds = [b for b in (query.added_after, query.after) if b is not None]
    if bounds:
        conditions.append(o.date_added > max(bounds))
    if query.ids:
        conditions.append(o.stix_id.in_(query.ids))
    if query.types:
        conditions.append(o.type.in_(query.types))
    if query.spec_versions:
        conditions.append(o.spec_version.in_(query.spec_versions))
    conditions.append(_version_condition(query.versions))
    limit = max(1, min(query.limit, MAX_PAGE))
    statement = (
        select(o.stix_id, o.version, o.date_added, o.body)
        .where(*conditions)
        .order_by(o.date_added)
        .limit(limit + 1)
    )
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        # PostgreSQL misjudges how many rows follow a date_added bound (all of a bulk load
        # lies within seconds) and sorted every row after it, 180 ms for 50,000, instead of
        # walking the (collection, date_added) index until the page is full (5 ms).
        session.execute(text("SET LOCAL enable_sort = off"))
    found = session.execute(statement).all()
    if postgres:
        session.execute(text("SET LOCAL enable_sort = on"))
    rows = [Row(*r) for r in found[:limit]]
    return Page(rows, more=len(found) > limit)


#: The audit actions of what is served, by what was asked for.
AUDIT_ACTIONS = {
    "objects": "intel.objects_serve",
    "manifest": "intel.manifest_serve",
    "versions": "intel.versions_serve",
}


def _served(
    session: Session, access: Access, reader: int, actor: str, page: Page, what: str
) -> None:
    """One audit entry per response: which versions were served to whom."""
    if not page.rows:
        return
    audit.record(
        AUDIT_ACTIONS[what],
        session=session,
        actor=actor,
        organisation_id=reader,
        target_type="intel_collection",
        target_id=access.collection.taxii_id,
        details={"objects": [[r.stix_id, r.version] for r in page.rows]},
    )


def _readable(access: Access) -> None:
    if not access.can_read:
        raise Forbidden("this collection is not readable for you")


def read_objects(
    *,
    session: Session,
    access: Access,
    reader: int,
    actor: str,
    query: ObjectFilter,
    manifest: bool = False,
) -> Page:
    """A page of the objects (or, for ``manifest``, their manifest entries) ``reader`` may
    receive from the collection, filtered; every object served is recorded in the audit trail
    (manifests too: they tell which objects exist)."""
    _readable(access)
    page = _query_page(session, access.collection, reader, query)
    _served(session, access, reader, actor, page, "manifest" if manifest else "objects")
    return page


def read_versions(
    *, session: Session, access: Access, reader: int, actor: str, stix_id: str, query: ObjectFilter
) -> Page:
    """A page of the versions of one object the reader may receive; :class:`NotFound` when
    there is none for this reader."""
    _readable(access)
    query = ObjectFilter(
        added_after=query.added_after,
        after=query.after,
        ids=(stix_id,),
        versions=("all",),
        spec_versions=query.spec_versions,
        limit=query.limit,
    )
    page = _query_page(session, access.collection, reader, query)
    if not page.rows and query.after is None:
        raise NotFound("no such object")
    _served(session, access, reader, actor, page, "versions")
    return page


def delete_object(
    *,
    session: Session,
    access: Access,
    reader: int,
    actor: str,
    stix_id: str,
    query: ObjectFilter,
    manage: bool = False,
) -> int:
    """Delete the versions of an object that match ``query`` (``match[version]``,
    ``match[spec_version]``) and that the caller sent, or, for the collection owner's
    ``intel:manage``, every matching version. :class:`NotFound` if the caller sees none,
    :class:`Forbidden` if it sees some but may delete none. Returns how many were deleted."""
    _readable(access)
    if not access.can_write:
        raise Forbidden("this collection is not writable for you")
    o = StixObject
    conditions = [
        o.collection_id == access.collection.id,
        o.stix_id == stix_id,
        _visible(session, access.collection, reader),
        _version_condition(query.versions),
    ]
    if query.spec_versions:
        conditions.append(o.spec_version.in_(query.spec_versions))
    audit.lock(session)
    found = session.execute(select(o.id, o.version, o.sender_id).where(*conditions)).all()
    if not found:
        raise NotFound("no such object")
    owner = manage and access.collection.owner_id == reader
    doomed = [(i, v) for i, v, sender in found if owner or sender == reader]
    if not doomed:
        raise Forbidden("only the organisation that added an object, or the collection's "
                        "owner, may delete it")  # fmt: skip
    session.execute(delete(StixObject).where(StixObject.id.in_([i for i, _ in doomed])))
    audit.record(
        "intel.objects_delete",
        session=session,
        actor=actor,
        organisation_id=reader,
        target_type="intel_collection",
        target_id=access.collection.taxii_id,
        details={"objects": [[stix_id, v] for _, v in doomed]},
    )
    return len(doomed)


# --- indicators -----------------------------------------------------------------------------


def decayed_confidence(
    confidence: int | None, *, modified: datetime, now: datetime, period: timedelta = DECAY_PERIOD
) -> int | None:
    """Confidence after ageing: the stated value at ``modified``, falling linearly to 0 at
    ``modified + period`` (a re-issued version starts afresh). None stays None (unknown)."""
    if confidence is None:
        return None
    age = now - modified
    if age <= timedelta(0):
        return confidence
    return max(0, round(confidence * (1 - age / period)))


@dataclass(frozen=True, slots=True)
class ActiveIndicator:
    """An indicator that should match now, with its confidence after decay."""

    collection_id: int
    stix_id: str
    version: str
    sender_id: int
    confidence: int | None
    valid_until: datetime | None
    body: str


def active_indicators(
    *,
    session: Session,
    organisation_id: int,
    now: datetime | None = None,
    period: timedelta = DECAY_PERIOD,
) -> Iterator[ActiveIndicator]:
    """Every indicator the organisation may receive from the collections it reads that is
    active: the newest version, not revoked, not past ``valid_until``. Streamed, for millions."""
    now = now or datetime.now(UTC)
    readable = session.scalars(
        select(Collection)
        .join(Grant, Grant.collection_id == Collection.id)
        .where(Grant.organisation_id == organisation_id, Grant.can_read)
    ).all()
    o = StixObject
    for collection in readable:
        statement = (
            select(o.collection_id, o.stix_id, o.version, o.sender_id, o.confidence,
                   o.valid_until, o.body, o.version_at)
            .where(
                o.collection_id == collection.id,
                o.type == "indicator",
                o.revoked == false(),
                or_(o.valid_until.is_(None), o.valid_until > now),
                _visible(session, collection, organisation_id),
                _version_condition(("last",)),
            )
            .order_by(o.id)
            .execution_options(yield_per=5000)
        )  # fmt: skip
        for row in session.execute(statement):
            yield ActiveIndicator(
                collection_id=row.collection_id,
                stix_id=row.stix_id,
                version=row.version,
                sender_id=row.sender_id,
                confidence=decayed_confidence(
                    row.confidence, modified=row.version_at, now=now, period=period
                ),
                valid_until=row.valid_until,
                body=row.body,
            )
