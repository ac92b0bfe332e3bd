"""The TAXII 2.1 server under ``/taxii2/``: discovery, API roots (one per constituency),
collections, objects (read and add), one object (read and delete), its versions, manifests and
the status of writes. Thin: the work is :mod:`qorgan.intel.store`'s, the protocol's details
:mod:`qorgan.intel.taxii`'s.

Authentication: an API token, as ``Authorization: Bearer <token>`` or as the password of HTTP
Basic (any user name): TAXII clients commonly speak Basic, and a token there keeps the second
factor of the user's own password out of machine clients. A user's password is never accepted.
A token needs ``intel:read`` (and ``intel:write`` to add or delete). Serve over TLS in
production, as the specification requires (the console's reverse proxy or uvicorn's own).

Every answer, errors included, is ``application/taxii+json;version=2.1``, with the
specification's error message body. A collection the caller may neither read nor write, and an
API root the caller has no part in, answer 404 like one that does not exist. The routes are
left out of the console's OpenAPI document: TAXII is specified elsewhere.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from qorgan.core import accounts
from qorgan.core.db import unit_of_work
from qorgan.core.roles import Permission
from qorgan.intel import store
from qorgan.intel.taxii import (
    STIX_MEDIA_TYPE,
    TAXII_MEDIA_TYPE,
    BadRequest,
    Forbidden,
    IntelError,
    NotFound,
    accepts_taxii,
    content_type_ok,
    encode_next,
    format_timestamp,
    parse_filter,
)
from qorgan.web.deps import Actor, authenticate, state
from qorgan.web.limits import DEFAULT_LIMIT

router = APIRouter(prefix="/taxii2", include_in_schema=False)

_CHALLENGE = {"WWW-Authenticate": 'Bearer, Basic realm="taxii2"'}


class TaxiiHTTPError(Exception):
    """An answer other than success, as the specification's error message."""

    def __init__(
        self, status: int, title: str, description: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(description)
        self.status, self.title, self.description = status, title, description
        self.headers = headers or {}


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return Response(content, status_code=status, media_type=TAXII_MEDIA_TYPE, headers=headers)


def _error(
    status: int, title: str, description: str, headers: dict[str, str] | None = None
) -> Response:
    body = {"title": title, "description": description, "http_status": str(status)}
    return _json(body, status, headers)


def _basic(request: Request, session: Session) -> Actor | None:
    """The user whose API token is the Basic password; 401 for anything else."""
    value = request.headers.get("authorization", "").partition(" ")[2].strip()
    try:
        _user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise TaxiiHTTPError(
            401, "Unauthorized", "malformed Basic credentials", _CHALLENGE
        ) from None
    found = accounts.resolve_token(session=session, secret=password) if password else None
    if found is None:
        raise TaxiiHTTPError(
            401, "Unauthorized", "the password must be a valid API token", _CHALLENGE
        )
    session.commit()  # the token's last use
    return Actor(found[0], scopes=found[1])


async def _actor(request: Request, permission: Permission) -> Actor:
    session = state(request).factory()
    try:
        scheme = request.headers.get("authorization", "").partition(" ")[0].lower()
        if scheme == "basic":
            actor = await run_in_threadpool(_basic, request, session)
        else:
            try:
                actor = await authenticate(request, session)
            except HTTPException as exc:
                raise TaxiiHTTPError(
                    exc.status_code, "Unauthorized", str(exc.detail), _CHALLENGE
                ) from None
    finally:
        session.close()
    if actor is None:
        raise TaxiiHTTPError(401, "Unauthorized", "send an API token", _CHALLENGE)
    if not actor.can(permission):
        raise TaxiiHTTPError(403, "Forbidden", f"your role or token does not allow {permission}")
    return actor


async def _serve(
    request: Request, permission: Permission, work: Callable[[Session, Actor], Response]
) -> Response:
    """Check Accept, authenticate, run ``work`` in one unit of work in the thread pool (its
    changes, audit entries included, are committed before the answer leaves); every refusal
    becomes the specification's error message."""
    try:
        if not accepts_taxii(request.headers.get("accept")):
            raise TaxiiHTTPError(
                406, "Not Acceptable", f"this server answers {TAXII_MEDIA_TYPE} only"
            )
        actor = await _actor(request, permission)

        def run() -> Response:
            with unit_of_work(state(request).factory) as session:
                return work(session, actor)

        return await run_in_threadpool(run)
    except TaxiiHTTPError as exc:
        return _error(exc.status, exc.title, exc.description, exc.headers)
    except IntelError as exc:
        return _error(exc.status, exc.title, exc.message)


def _params(request: Request) -> dict[str, str]:
    """Query parameters, one value each (the last wins, as for most servers)."""
    return dict(request.query_params)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/taxii2/"


def _access(session: Session, actor: Actor, root: str, collection: str) -> store.Access:
    api_root = store.api_root_for(session=session, slug=root, organisation_id=actor.organisation_id)
    return store.find_collection(
        session=session,
        api_root=api_root,
        taxii_id=collection,
        organisation_id=actor.organisation_id,
    )


def _collection_resource(access: store.Access) -> dict[str, Any]:
    collection = access.collection
    body: dict[str, Any] = {
        "id": collection.taxii_id,
        "title": collection.title,
        "description": collection.description,
        "can_read": access.can_read,
        "can_write": access.can_write,
        "media_types": [STIX_MEDIA_TYPE],
    }
    if collection.alias:
        body["alias"] = collection.alias
    return body


def _page_headers(page: store.Page) -> dict[str, str]:
    if not page.rows:
        return {}
    assert page.first_added is not None and page.last_added is not None
    return {
        "X-TAXII-Date-Added-First": format_timestamp(page.first_added),
        "X-TAXII-Date-Added-Last": format_timestamp(page.last_added),
    }


def _next(request: Request, access: store.Access, page: store.Page) -> str | None:
    if not page.more or page.last_added is None:
        return None
    return encode_next(
        page.last_added, key=state(request).secret, collection=access.collection.taxii_id
    )


def _envelope(request: Request, access: store.Access, page: store.Page) -> Response:
    """The envelope, joined from the stored texts (no object is parsed on the way out)."""
    parts = [b'{"more":', b"true" if page.more else b"false"]
    token = _next(request, access, page)
    if token is not None:
        parts.append(b',"next":' + orjson.dumps(token))
    if page.rows:
        parts += [b',"objects":[', b",".join(r.body.encode() for r in page.rows), b"]"]
    parts.append(b"}")
    return _json(b"".join(parts), headers=_page_headers(page))


def _listing(
    request: Request, access: store.Access, page: store.Page, key: str, items: list[Any]
) -> Response:
    """A manifest or a versions answer: ``more``, ``next`` and the page's ``items`` as ``key``."""
    body: dict[str, Any] = {"more": page.more}
    token = _next(request, access, page)
    if token is not None:
        body["next"] = token
    if items:
        body[key] = items
    return _json(body, headers=_page_headers(page))


def _status_resource(status: Any) -> dict[str, Any]:
    return {
        "id": status.id,
        "status": status.status,
        "request_timestamp": format_timestamp(status.request_timestamp),
        "total_count": status.total_count,
        "success_count": status.success_count,
        "successes": status.successes,
        "failure_count": status.failure_count,
        "failures": status.failures,
        "pending_count": status.pending_count,
        "pendings": status.pending,
    }


@router.get("/")
async def discovery(request: Request) -> Response:
    """Server discovery: the API roots the caller has a part in."""

    def work(session: Session, actor: Actor) -> Response:
        roots = store.api_roots_for(session=session, organisation_id=actor.organisation_id)
        body: dict[str, Any] = {
            "title": "Qorgan TAXII 2.1",
            "description": "Threat intelligence of the constituency, under TLP 2.0.",
            "api_roots": [f"{_base(request)}{root.slug}/" for root in roots],
        }
        if roots:
            body["default"] = body["api_roots"][0]
        return _json(body)

    return await _serve(request, Permission.intel_read, work)


@router.get("/{root}/")
async def api_root(request: Request, root: str) -> Response:
    def work(session: Session, actor: Actor) -> Response:
        found = store.api_root_for(
            session=session, slug=root, organisation_id=actor.organisation_id
        )
        return _json(
            {
                "title": found.title,
                "description": found.description,
                "versions": [TAXII_MEDIA_TYPE],
                "max_content_length": DEFAULT_LIMIT,
            }
        )

    return await _serve(request, Permission.intel_read, work)


@router.get("/{root}/status/{status_id}/")
async def status(request: Request, root: str, status_id: str) -> Response:
    def work(session: Session, actor: Actor) -> Response:
        store.api_root_for(session=session, slug=root, organisation_id=actor.organisation_id)
        found = store.read_status(
            session=session, status_id=status_id, organisation_id=actor.organisation_id
        )
        return _json(_status_resource(found))

    return await _serve(request, Permission.intel_read, work)


@router.get("/{root}/collections/")
async def collections(request: Request, root: str) -> Response:
    def work(session: Session, actor: Actor) -> Response:
        found = store.api_root_for(
            session=session, slug=root, organisation_id=actor.organisation_id
        )
        listed = store.collections_for(
            session=session, api_root=found, organisation_id=actor.organisation_id
        )
        return _json({"collections": [_collection_resource(a) for a in listed]})

    return await _serve(request, Permission.intel_read, work)


@router.get("/{root}/collections/{collection}/")
async def collection(request: Request, root: str, collection: str) -> Response:
    def work(session: Session, actor: Actor) -> Response:
        return _json(_collection_resource(_access(session, actor, root, collection)))

    return await _serve(request, Permission.intel_read, work)


@router.get("/{root}/collections/{collection}/objects/")
async def get_objects(request: Request, root: str, collection: str) -> Response:
    def work(session: Session, actor: Actor) -> Response:
        access = _access(session, actor, root, collection)
        query = parse_filter(_params(request), key=state(request).secret, collection=collection)
        page = store.read_objects(
            session=session,
            access=access,
            reader=actor.organisation_id,
            actor=actor.id,
            query=query,
        )
        return _envelope(request, access, page)

    return await _serve(request, Permission.intel_read, work)


@router.post("/{root}/collections/{collection}/objects/")
async def add_objects(request: Request, root: str, collection: str) -> Response:
    if not content_type_ok(request.headers.get("content-type")):
        return _error(
            415,
            "Unsupported Media Type",
            f"send the objects as {TAXII_MEDIA_TYPE} (an envelope) or {STIX_MEDIA_TYPE}",
        )
    body = await request.body()

    def work(session: Session, actor: Actor) -> Response:
        access = _access(session, actor, root, collection)
        if not access.can_write:
            raise Forbidden("this collection is not writable for you")
        try:
            envelope = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise BadRequest("the body is not valid JSON in UTF-8") from None
        objects = envelope.get("objects") if isinstance(envelope, dict) else None
        if not isinstance(objects, list) or not objects:
            raise BadRequest("the body must be an envelope with a non-empty objects list")
        written = store.add_objects(
            objects,
            session=session,
            collection=access.collection,
            sender_id=actor.organisation_id,
            actor=actor.id,
        )
        session.flush()
        return _json(_status_resource(written), 202)

    return await _serve(request, Permission.intel_write, work)


@router.get("/{root}/collections/{collection}/manifest/")
async def manifest(request: Request, root: str, collection: str) -> Response:
    def work(session: Session, actor: Actor) -> Response:
        access = _access(session, actor, root, collection)
        query = parse_filter(_params(request), key=state(request).secret, collection=collection)
        page = store.read_objects(
            session=session,
            access=access,
            reader=actor.organisation_id,
            actor=actor.id,
            query=query,
            manifest=True,
        )
        records = [
            {
                "id": r.stix_id,
                "date_added": format_timestamp(r.date_added),
                "version": r.version,
                "media_type": STIX_MEDIA_TYPE,
            }
            for r in page.rows
        ]
        return _listing(request, access, page, "objects", records)

    return await _serve(request, Permission.intel_read, work)


@router.get("/{root}/collections/{collection}/objects/{object_id}/")
async def get_object(request: Request, root: str, collection: str, object_id: str) -> Response:
    def work(session: Session, actor: Actor) -> Response:
        access = _access(session, actor, root, collection)
        params = _params(request)
        params["match[id]"] = object_id
        query = parse_filter(params, key=state(request).secret, collection=collection)
        page = store.read_objects(
            session=session,
            access=access,
            reader=actor.organisation_id,
            actor=actor.id,
            query=query,
        )
        if not page.rows and query.after is None:
            raise NotFound("no such object")
        return _envelope(request, access, page)

    return await _serve(request, Permission.intel_read, work)


@router.delete("/{root}/collections/{collection}/objects/{object_id}/")
async def delete_object(request: Request, root: str, collection: str, object_id: str) -> Response:
    def work(session: Session, actor: Actor) -> Response:
        access = _access(session, actor, root, collection)
        query = parse_filter(
            _params(request),
            default_version="all",
            key=state(request).secret,
            collection=collection,
        )
        store.delete_object(
            session=session,
            access=access,
            reader=actor.organisation_id,
            actor=actor.id,
            stix_id=object_id,
            query=query,
            manage=actor.can(Permission.intel_manage),
        )
        return Response(status_code=200, media_type=TAXII_MEDIA_TYPE)

    return await _serve(request, Permission.intel_write, work)


@router.get("/{root}/collections/{collection}/objects/{object_id}/versions/")
async def versions(request: Request, root: str, collection: str, object_id: str) -> Response:
    def work(session: Session, actor: Actor) -> Response:
        access = _access(session, actor, root, collection)
        query = parse_filter(_params(request), key=state(request).secret, collection=collection)
        page = store.read_versions(
            session=session,
            access=access,
            reader=actor.organisation_id,
            actor=actor.id,
            stix_id=object_id,
            query=query,
        )
        return _listing(request, access, page, "versions", [r.version for r in page.rows])

    return await _serve(request, Permission.intel_read, work)


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def unknown(request: Request, rest: str) -> Response:
    """Any other address under /taxii2/: a missing final slash is added (as the console does
    elsewhere), anything else is the specification's 404."""
    if not request.url.path.endswith("/"):
        target = request.url.path + "/" + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(target, status_code=308)
    return _error(404, "Not found", "no such TAXII resource")


def install(app: FastAPI) -> None:
    """Mount the TAXII server on the console."""
    app.include_router(router)
