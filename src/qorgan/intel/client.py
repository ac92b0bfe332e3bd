"""A TAXII 2.1 client: discovery, API roots, collections, and resumable polling of objects.

Built on ``httpx`` (already a dependency) rather than ``taxii2-client``: we need the response
headers (``X-TAXII-Date-Added-Last``), a byte limit enforced while reading, and our own errors,
and ``taxii2-client`` stays free to judge our *server* in the tests.

**Resuming without gaps or duplicates.** A poll asks for objects ``added_after`` the cursor and
follows ``next`` within the run. After each page the cursor (:class:`Cursor`) is updated to the
page's ``X-TAXII-Date-Added-Last`` and handed back, so the caller stores it with the objects.
The cursor deliberately does not keep the ``next`` token: servers may consume it when a page is
read (medallion pops its saved list and expires it after 30 s), so resuming from a stored token
after a crash between reading a page and storing it would silently skip that page. Resuming from
the date is always safe, with one subtlety: several objects can share one ``date_added`` (a
bulk write gets one timestamp) and a page can end among them, so ``added_after = last`` would
skip the rest of that tie. The cursor therefore also keeps a digest of each object delivered
since ``date_added`` last moved; a resumed poll asks from one microsecond before ``last`` and
drops exactly those objects (by id and version) when they come again.

Per-feed defaults (:func:`pull_taxii`): objects arriving without a TLP marking get the feed's
TLP, and indicators without ``confidence`` get the feed's trust, before they reach the sink.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin

import httpx

from qorgan.core.errors import QorganError
from qorgan.intel.feeds import FeedKind, FeedSettings, Sink
from qorgan.intel.markings import MarkingError, mark, tlp_of

__all__ = [
    "MEDIA_TYPE_STIX",
    "MEDIA_TYPE_TAXII",
    "Collection",
    "Cursor",
    "Page",
    "PullReport",
    "TaxiiClient",
    "TaxiiError",
    "pull_taxii",
]

MEDIA_TYPE_TAXII = "application/taxii+json;version=2.1"
MEDIA_TYPE_STIX = "application/stix+json;version=2.1"
_COLLECTION_ID = re.compile(r"[A-Za-z0-9._~-]{1,200}")
_MAX_RECENT = 100_000


class TaxiiError(QorganError):
    """A TAXII exchange that failed; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, source: str | None = None, status: int | None = None):
        super().__init__(message, source=source)
        self.status = status


@dataclass(frozen=True, slots=True)
class Collection:
    """A collection as the server describes it."""

    id: str
    title: str
    can_read: bool
    can_write: bool
    media_types: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a collection's poll stopped: store it after each page, pass it to the next poll.

    ``added_after``: the ``X-TAXII-Date-Added-Last`` of the last page delivered (None: from the
    start). ``recent``: digests of the objects delivered since that date last moved (see the
    module), so a resume that re-reads the tie at ``added_after`` drops what was delivered.
    :meth:`to_json` / :meth:`from_json` give a plain form for storage.
    """

    added_after: str | None = None
    recent: frozenset[str] = field(default_factory=frozenset)

    def to_json(self) -> dict[str, Any]:
        return {"added_after": self.added_after, "recent": sorted(self.recent)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Cursor:
        after = data.get("added_after")
        recent = data.get("recent", [])
        if after is not None and not isinstance(after, str):
            raise TaxiiError("a stored cursor's added_after must be a timestamp")
        if not isinstance(recent, list) or not all(isinstance(r, str) for r in recent):
            raise TaxiiError("a stored cursor's recent must be a list of digests")
        if after is not None:
            _parse_time(after, "stored cursor")
        return cls(after, frozenset(recent))


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a poll: its new objects, and the cursor to store once they are kept."""

    objects: list[dict[str, Any]]
    cursor: Cursor
    more: bool


def _parse_time(text: str, where: str) -> datetime:
    """A TAXII timestamp (``...Z``, any sub-second precision) as an aware UTC datetime."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise TaxiiError(f"{where}: not a TAXII timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _format_time(moment: datetime) -> str:
    """A TAXII timestamp with microseconds, as servers (medallion among them) parse it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _digest(obj: Mapping[str, Any]) -> str:
    """A short, stable key for an object version: its id and its ``modified`` or ``created``."""
    version = obj.get("modified") or obj.get("created") or ""
    key = f"{obj.get('id')}\n{version}".encode()
    return hashlib.sha256(key).hexdigest()[:24]


class TaxiiClient:
    """Speaks TAXII 2.1 to one server with one identity (token or basic credentials).

    ``max_bytes`` bounds any response body (read incrementally, refused when exceeded).
    Pass ``client`` to share an ``httpx.Client`` (its own auth is then replaced by ``auth``).
    """

    def __init__(
        self,
        *,
        auth: httpx.Auth | None = None,
        max_bytes: int = 64 * 1024 * 1024,
        timeout: float = 60.0,
        client: httpx.Client | None = None,
    ) -> None:
        self._auth = auth
        self._max_bytes = max_bytes
        self._own = client is None
        self._http = client or httpx.Client(timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        if self._own:
            self._http.close()

    def __enter__(self) -> TaxiiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ----------------------------------------------------------------------

    def _get(
        self, url: str, params: Mapping[str, str] | None = None
    ) -> tuple[dict[str, Any], httpx.Headers]:
        """GET a TAXII resource: checked status, media type, size and JSON."""
        where = httpx.URL(url).path or "/"
        try:
            with self._http.stream(
                "GET",
                url,
                params=params,
                headers={"Accept": MEDIA_TYPE_TAXII},
                auth=self._auth or httpx.USE_CLIENT_DEFAULT,
            ) as reply:
                body = self._read(reply, where)
                status, headers = reply.status_code, reply.headers
        except httpx.HTTPError as err:
            raise TaxiiError(
                f"cannot reach the server ({type(err).__name__})", source=where
            ) from None
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if status != 200:
            raise TaxiiError(_status_message(status, media, body), source=where, status=status)
        if media != "application/taxii+json":
            raise TaxiiError(
                f"answered with {media[:60] or 'no media type'}, not application/taxii+json",
                source=where,
                status=status,
            )
        version = re.search(r"version\s*=\s*([0-9.]+)", headers.get("content-type", ""))
        if version and version.group(1) != "2.1":
            raise TaxiiError("answered with a TAXII version other than 2.1", source=where)
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise TaxiiError("answered with invalid JSON", source=where, status=status) from None
        if not isinstance(document, dict):
            raise TaxiiError("answered with JSON that is not an object", source=where)
        return document, headers

    def _read(self, reply: httpx.Response, where: str) -> bytes:
        declared = reply.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise TaxiiError(f"response larger than {self._max_bytes} bytes", source=where)
        chunks, size = [], 0
        for chunk in reply.iter_bytes():
            size += len(chunk)
            if size > self._max_bytes:
                raise TaxiiError(f"response larger than {self._max_bytes} bytes", source=where)
            chunks.append(chunk)
        return b"".join(chunks)

    # -- resources ----------------------------------------------------------------------

    def discover(self, server: str) -> dict[str, Any]:
        """The server's discovery resource (``/taxii2/``): title, ``default``, ``api_roots``."""
        url = server if server.rstrip("/").endswith("/taxii2") else urljoin(server, "/taxii2/")
        document, _ = self._get(url.rstrip("/") + "/")
        roots = document.get("api_roots", [])
        if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
            raise TaxiiError("discovery: api_roots must be a list of URLs")
        document["api_roots"] = [urljoin(url, r) for r in roots]
        return document

    def api_root(self, api_root: str) -> dict[str, Any]:
        """An API root's information: title, ``versions``, ``max_content_length``."""
        document, _ = self._get(_dir(api_root))
        versions = document.get("versions", [])
        if (
            isinstance(versions, list)
            and versions
            and MEDIA_TYPE_TAXII not in [v.replace(" ", "") for v in versions if isinstance(v, str)]
        ):
            raise TaxiiError("the API root does not offer TAXII 2.1", source=api_root[:200])
        return document

    def collections(self, api_root: str) -> list[Collection]:
        """The collections of an API root that this identity can see."""
        document, _ = self._get(_dir(api_root) + "collections/")
        items = document.get("collections", [])
        if not isinstance(items, list):
            raise TaxiiError("collections must be a list")
        return [_collection(item) for item in items]

    def collection(self, api_root: str, collection_id: str) -> Collection:
        """One collection; :class:`TaxiiError` with status 404 when it does not exist."""
        return _collection(self._get(_collection_url(api_root, collection_id))[0])

    def pages(
        self,
        api_root: str,
        collection_id: str,
        cursor: Cursor | None = None,
        *,
        limit: int = 1000,
        match_type: str | None = None,
    ) -> Iterator[Page]:
        """The collection's objects added after ``cursor``, a page at a time, in server order.

        Each page's cursor is the one to store once its objects are kept; the objects already
        delivered at the cursor's date (``recent``) are left out.
        """
        if limit <= 0:
            raise TaxiiError("limit must be positive")
        cursor = cursor or Cursor()
        url = _collection_url(api_root, collection_id) + "objects/"
        params: dict[str, str] = {"limit": str(limit)}
        if match_type:
            params["match[type]"] = match_type
        if cursor.added_after is not None:
            since = _parse_time(cursor.added_after, "cursor") - timedelta(microseconds=1)
            params["added_after"] = _format_time(since)
        token: str | None = None
        while True:
            request = dict(params, next=token) if token else params
            document, headers = self._get(url, request)
            objects = document.get("objects", [])
            if not isinstance(objects, list):
                raise TaxiiError("objects must be a list", source=url[:200])
            more = document.get("more") is True
            token = document.get("next") if more else None
            if more and not isinstance(token, str):
                raise TaxiiError("more objects announced without a next token", source=url[:200])
            fresh = [
                o for o in objects if not (isinstance(o, dict) and _digest(o) in cursor.recent)
            ]
            if objects:
                last = headers.get("x-taxii-date-added-last")
                if not last:
                    raise TaxiiError(
                        "a page without X-TAXII-Date-Added-Last cannot be resumed", source=url[:200]
                    )
                cursor = _advance(cursor, last, objects)
            yield Page(fresh, cursor, more)
            if not more:
                return


def _advance(cursor: Cursor, last: str, objects: list[Any]) -> Cursor:
    """The cursor after a page whose last ``date_added`` is ``last``."""
    moment = _parse_time(last, "X-TAXII-Date-Added-Last")
    digests = frozenset(_digest(o) for o in objects if isinstance(o, dict))
    if cursor.added_after is not None:
        before = _parse_time(cursor.added_after, "cursor")
        if moment < before:
            raise TaxiiError("X-TAXII-Date-Added-Last went backwards")
        if moment == before:  # still inside one tie: remember everything delivered in it
            recent = cursor.recent | digests
            if len(recent) > _MAX_RECENT:
                raise TaxiiError(f"more than {_MAX_RECENT} objects share one date_added")
            return replace(cursor, recent=recent)
    return Cursor(_format_time(moment), digests)


def _dir(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def _collection_url(api_root: str, collection_id: str) -> str:
    if not isinstance(collection_id, str) or not _COLLECTION_ID.fullmatch(collection_id):
        raise TaxiiError("a collection id is letters, digits and -._~ only")
    return f"{_dir(api_root)}collections/{collection_id}/"


def _collection(item: object) -> Collection:
    if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
        raise TaxiiError("a collection without an id")
    media = item.get("media_types", [])
    return Collection(
        id=item["id"],
        title=str(item.get("title", ""))[:500],
        can_read=item.get("can_read") is True,
        can_write=item.get("can_write") is True,
        media_types=tuple(m for m in media if isinstance(m, str))
        if isinstance(media, list)
        else (),
        description=str(item.get("description", ""))[:2000],
    )


def _status_message(status: int, media: str, body: bytes) -> str:
    """A short message for an HTTP error; a TAXII error's title, cut short, when there is one."""
    phrase = httpx.codes.get_reason_phrase(status)
    what = {
        401: "authentication failed",
        403: "not allowed",
        404: "not found",
        406: "the server does not accept TAXII 2.1",
    }.get(status, "request failed")
    title = ""
    if media == "application/taxii+json":
        try:
            error = json.loads(body)
            if isinstance(error, dict) and isinstance(error.get("title"), str):
                title = f": {error['title'][:100]}"
        except (UnicodeDecodeError, json.JSONDecodeError):
            pass
    return f"{what} (HTTP {status} {phrase}){title}"


# --- Feeds ---------------------------------------------------------------------------------


@dataclass(slots=True)
class PullReport:
    """What one TAXII pull did; ``cursor`` is where the next pull starts."""

    feed: str
    cursor: Cursor
    pages: int = 0
    objects: int = 0
    marked: int = 0
    confidence_set: int = 0
    refused: Counter[str] = field(default_factory=Counter)


def _with_defaults(
    obj: dict[str, Any], settings: FeedSettings, report: PullReport
) -> dict[str, Any] | None:
    """``obj`` with the feed's TLP and trust where it has none; None (counted) if unusable."""
    if not isinstance(obj.get("type"), str) or not isinstance(obj.get("id"), str):
        report.refused["object without type or id"] += 1
        return None
    try:
        level = tlp_of(obj)
    except MarkingError:
        report.refused["malformed markings"] += 1
        return None
    if level is None and obj["type"] != "marking-definition":
        obj = mark(obj, settings.tlp)
        report.marked += 1
    if obj["type"] == "indicator" and "confidence" not in obj:
        obj = {**obj, "confidence": settings.confidence}
        report.confidence_set += 1
    return obj


def pull_taxii(
    settings: FeedSettings,
    sink: Sink,
    *,
    cursor: Cursor | None = None,
    on_page: Callable[[Cursor], None] | None = None,
    max_pages: int | None = None,
    limit: int = 1000,
    client: TaxiiClient | None = None,
) -> PullReport:
    """Poll the feed's collection from ``cursor``, each page to ``sink`` with the feed defaults.

    After each page is handed to the sink, ``on_page`` receives the cursor to store (the sink
    and ``on_page`` together are the caller's unit of work). ``max_pages`` stops early, as a
    restart would; the report's cursor continues from there.
    """
    if settings.kind is not FeedKind.taxii or settings.collection is None:
        raise TaxiiError("not a TAXII feed", source=settings.name)
    own = client is None
    taxii = client or TaxiiClient(auth=settings.auth, max_bytes=settings.max_bytes)
    report = PullReport(feed=settings.name, cursor=cursor or Cursor())
    try:
        for page in taxii.pages(settings.url, settings.collection, report.cursor, limit=limit):
            kept = []
            for obj in page.objects:
                if not isinstance(obj, dict):
                    report.refused["not a JSON object"] += 1
                    continue
                ready = _with_defaults(obj, settings, report)
                if ready is not None:
                    kept.append(ready)
            if kept:
                sink(kept)
            report.objects += len(kept)
            report.pages += 1
            report.cursor = page.cursor
            if on_page is not None:
                on_page(page.cursor)
            if max_pages is not None and report.pages >= max_pages:
                break
    finally:
        if own:
            taxii.close()
    return report
