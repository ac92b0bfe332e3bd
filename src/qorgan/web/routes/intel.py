"""The threat-intelligence pages: the collections an organisation can read and write, a
collection's objects, one object with its versions and sightings (and a form to report one),
and sharing an incident with the constituency through its redaction preview.

What a reader sees follows TLP exactly as the TAXII server serves it (the store's rule): an
object the reader may not receive is absent from lists and its page answers 404, like one that
does not exist. The work is :mod:`qorgan.web.intel_exchange`'s; these handlers are thin.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from qorgan.core.errors import QorganError
from qorgan.core.models import Organisation
from qorgan.core.roles import Permission
from qorgan.core.tlp import Tlp
from qorgan.intel import store, subscriptions
from qorgan.intel.markings import pap_of, tlp_of
from qorgan.intel.taxii import Forbidden, NotFound, ObjectFilter
from qorgan.web import intel_exchange as exchange
from qorgan.web.deps import Actor, Db, RecordId, page_actor, state
from qorgan.web.i18n import _l
from qorgan.web.templating import render

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, Depends(page_actor(Permission.intel_read))]
Writer = Annotated[Actor, Depends(page_actor(Permission.intel_write))]
PAGE = 50
#: Versions listed on an object's page.
VERSIONS_SHOWN = 100
_STIX_ID = r"^[a-z0-9][a-z0-9-]{1,248}[a-z0-9]--[0-9a-f-]{36}$"
_TAXII_ID = r"^[0-9a-f-]{36}$"
CollectionId = Annotated[str, Query(max_length=36, pattern=_TAXII_ID)]
NOT_FOUND = _l("no such collection or object")


def _not_found() -> HTTPException:
    return HTTPException(404, NOT_FOUND)


def _access(db: Db, actor: Actor, taxii_id: str) -> store.Access:
    try:
        access = exchange.access_to(
            session=db, organisation_id=actor.organisation_id, taxii_id=taxii_id
        )
    except NotFound:
        raise _not_found() from None
    if not access.can_read:
        raise _not_found()
    return access


def _names(db: Db, actor: Actor, access: store.Access) -> dict[str, str]:
    """Identity ids -> names as the reader knows them (see intel_exchange.identity_names)."""
    return exchange.identity_names(session=db, reader=actor.organisation_id, accesses=[access])


@router.get("/intel")
def intel_page(request: Request, db: Db, actor: Reader) -> Response:
    """What the organisation can read and write, per API root."""
    roots = []
    for root in store.api_roots_for(session=db, organisation_id=actor.organisation_id):
        listed = store.collections_for(
            session=db, api_root=root, organisation_id=actor.organisation_id
        )
        counts = exchange.collection_counts(
            session=db, accesses=listed, reader=actor.organisation_id
        )
        roots.append((root, listed, counts))
    owners = {org.id: org.name for org in db.query(Organisation).all()}
    feeds = subscriptions.feeds_of(session=db, organisation_id=actor.organisation_id)
    return render(
        request,
        "intel.html",
        {
            "roots": roots,
            "feeds": feeds,
            "owners": owners,
            "tlp_names": {t.rank: t.value for t in Tlp},
            "cap": exchange.COUNT_CAP,
        },
    )


@router.get("/intel/collections/{taxii_id}")
def collection_page(
    request: Request,
    db: Db,
    actor: Reader,
    taxii_id: Annotated[str, Path(max_length=36)],
    type: Annotated[str, Query(max_length=250)] = "",
    before: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    access = _access(db, actor, taxii_id)
    try:
        bound = datetime.fromisoformat(before) if before else None
    except ValueError:
        bound = None
    if bound is not None and bound.tzinfo is None:
        bound = bound.replace(tzinfo=UTC)
    rows, more = exchange.collection_page(
        session=db,
        access=access,
        reader=actor.organisation_id,
        actor=actor.id,
        kind=type or None,
        before=bound,
        size=PAGE,
    )
    db.commit()  # the audit entry of what was shown
    return render(
        request,
        "intel_collection.html",
        {
            "access": access,
            "rows": rows,
            "more": more,
            "types": exchange.TYPES,
            "chosen": type,
            "before": before,
            "names": _names(db, actor, access),
        },
    )


def _flatten(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict):
        out: list[tuple[tuple[Any, ...], Any]] = []
        for key, item in value.items():
            out.extend(_flatten(item, (*path, key)))
        return out
    if isinstance(value, list) and value and any(isinstance(v, dict | list) for v in value):
        out = []
        for index, item in enumerate(value):
            out.extend(_flatten(item, (*path, index)))
        return out
    return [(path, value)]


def _path_text(path: tuple[Any, ...]) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in path)


@router.get("/intel/objects/{stix_id}")
def object_page(
    request: Request,
    db: Db,
    actor: Reader,
    stix_id: Annotated[str, Path(max_length=300)],
    collection: CollectionId,
) -> Response:
    access = _access(db, actor, collection)
    try:
        versions = store.read_versions(
            session=db,
            access=access,
            reader=actor.organisation_id,
            actor=actor.id,
            stix_id=stix_id,
            query=ObjectFilter(limit=VERSIONS_SHOWN),
        )
    except NotFound:
        raise _not_found() from None
    latest = orjson.loads(versions.rows[-1].body)
    try:
        level, pap = tlp_of(latest), pap_of(latest)
    except QorganError:
        level = pap = None
    seen = exchange.sightings_of(
        session=db, reader=actor.organisation_id, actor=actor.id, indicator_ids={stix_id}
    )
    db.commit()  # the audit entries of what was shown
    fields = [
        (_path_text(path), value if isinstance(value, str) else json.dumps(value))
        for path, value in _flatten(latest)
        if path and path[0] not in ("object_marking_refs",)
    ]
    targets = (
        exchange.writable(session=db, organisation_id=actor.organisation_id)
        if actor.can(Permission.intel_write)
        else []
    )
    caused: tuple[int, list[Any]] | None = None
    if latest.get("type") == "indicator" and actor.can(Permission.alerts_read):
        caused = exchange.alerts_caused(
            session=db, organisation_id=actor.organisation_id, indicator_id=stix_id
        )
    return render(
        request,
        "intel_object.html",
        {
            "caused": caused,
            "access": access,
            "obj": latest,
            "tlp": level,
            "pap": pap,
            "fields": fields,
            "versions": list(reversed(versions.rows)),
            "sightings": seen,
            "targets": targets,
            "names": _names(db, actor, access),
            "tlps": [t.value for t in Tlp],
            "message": request.query_params.get("message"),
        },
    )


def _moment(request: Request, text: str) -> datetime:
    """A ``datetime-local`` field, in the console's time zone."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise HTTPException(
            400, _l("give the first and last time seen as dates and times")
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(state(request).settings.timezone))
    return moment


@router.post("/intel/objects/{stix_id}/sightings")
def report_sighting(
    request: Request,
    db: Db,
    actor: Writer,
    stix_id: Annotated[str, Path(max_length=300)],
    collection: Annotated[str, Form(max_length=36)] = "",
    target: Annotated[str, Form(max_length=36)] = "",
    first_seen: Annotated[str, Form(max_length=40)] = "",
    last_seen: Annotated[str, Form(max_length=40)] = "",
    count: Annotated[int, Form(ge=1, le=999_999_999)] = 1,
    tlp: Annotated[str, Form(max_length=16)] = "green",
) -> Response:
    _access(db, actor, collection)  # a collection the reader cannot read is not found first
    try:
        level = Tlp(tlp)
    except ValueError:
        raise HTTPException(400, _l("choose a TLP level from the list")) from None
    try:
        exchange.report_sighting(
            session=db,
            organisation_id=actor.organisation_id,
            actor=actor.id,
            source=collection,
            stix_id=stix_id,
            target=target,
            first_seen=_moment(request, first_seen),
            last_seen=_moment(request, last_seen),
            count=count,
            tlp=level,
        )
    except NotFound:
        raise _not_found() from None
    except Forbidden:
        raise HTTPException(403, _l("your organisation may not write to this collection")) from None
    except exchange.ExchangeError as exc:
        raise HTTPException(400, exc.message) from None
    db.commit()
    query = urlencode({"collection": collection, "message": _l("The sighting is reported.")})
    return RedirectResponse(f"/intel/objects/{stix_id}?{query}#sightings", status_code=303)


# --- sharing an incident ----------------------------------------------------------------------


def _sharer(actor: Actor) -> None:
    if not actor.can(Permission.incidents_write):
        raise HTTPException(403, _l("your role does not allow this page"))


def _prepared(db: Db, actor: Actor, incident_id: int, collection: str, send: bool) -> Any:
    try:
        return exchange.share_incident(
            session=db,
            organisation_id=actor.organisation_id,
            actor=actor.id,
            incident_id=incident_id,
            taxii_id=collection,
            send=send,
        )
    except NotFound:
        raise HTTPException(
            404, _l("no such incident or collection in your organisation")
        ) from None
    except Forbidden:
        raise HTTPException(403, _l("your organisation may not write to this collection")) from None
    except exchange.ExchangeError as exc:
        raise HTTPException(400, exc.message) from None


def _segments(text: str, marks: list[Any]) -> list[tuple[str, str | None]]:
    """The redacted text cut at its redactions: (text, kind of what was removed or None).
    Marks hold offsets in the original text; each replacement shifts the ones after it."""
    parts: list[tuple[str, str | None]] = []
    shift = cursor = 0
    for mark in sorted(marks, key=lambda m: m.start):
        start = mark.start + shift
        end = start + len(mark.replacement)
        parts.append((text[cursor:start], None))
        parts.append((text[start:end], mark.kind.value))
        cursor = end
        shift += len(mark.replacement) - (mark.end - mark.start)
    parts.append((text[cursor:], None))
    return [p for p in parts if p[0] or p[1]]


def _preview_objects(prepared: Any) -> list[dict[str, Any]]:
    """Each object to send, as rows of (path, segments), with the removed properties."""
    by_object: dict[str, dict[tuple[Any, ...], list[Any]]] = {}
    for object_id, path_mark in prepared.marks:
        by_object.setdefault(object_id, {}).setdefault(path_mark.path, []).append(path_mark.mark)
    shown = []
    for obj in prepared.objects:
        marks = by_object.get(obj["id"], {})
        rows = []
        present = set()
        for path, value in _flatten(obj):
            present.add(path)
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            found = marks.get(path, []) if isinstance(value, str) else []
            rows.append((_path_text(path), _segments(text, found) if found else [(text, None)]))
        removed = [
            (_path_text(path), sorted({m.kind.value for m in found}))
            for path, found in marks.items()
            if path not in present
        ]
        shown.append(
            {
                "id": obj["id"],
                "type": obj["type"],
                "tlp": tlp_of(obj),
                "rows": rows,
                "removed": removed,
                "redactions": sum(len(m) for m in marks.values()),
            }
        )
    return shown


@router.get("/incidents/{incident_id}/share")
def share_preview(
    request: Request,
    db: Db,
    actor: Writer,
    incident_id: RecordId,
    collection: Annotated[str, Query(max_length=36)] = "",
) -> Response:
    """The redaction preview: exactly the objects that will leave, each redaction marked."""
    _sharer(actor)
    prepared = _prepared(db, actor, incident_id, collection, send=False)
    access = exchange.access_to(
        session=db, organisation_id=actor.organisation_id, taxii_id=collection
    )
    return render(
        request,
        "intel_share.html",
        {
            "incident_id": incident_id,
            "access": access,
            "objects": _preview_objects(prepared),
            "withheld": prepared.withheld,
            "redactions": len(prepared.marks),
        },
    )


@router.post("/incidents/{incident_id}/share")
def share_confirm(
    db: Db,
    actor: Writer,
    incident_id: RecordId,
    collection: Annotated[str, Form(max_length=36)] = "",
) -> Response:
    """Store what the preview showed (the same function builds it)."""
    _sharer(actor)
    _prepared(db, actor, incident_id, collection, send=True)
    db.commit()
    query = urlencode({"message": _l("The incident is shared with the constituency.")})
    return RedirectResponse(f"/incidents/{incident_id}?{query}#share", status_code=303)
