"""Our TAXII 2.1 client against the OASIS reference server, medallion, run as a real process.

Medallion 3.0.0 is started by each test on a loopback port with its memory backend and a data
file of a few hundred indicators over several pages. A group of ten objects shares one
``date_added`` across a page boundary, as a bulk write does, to prove resuming loses nothing
there. Neighbours: wrong credentials, a collection that does not exist, a server answering HTML,
invalid JSON, oversized answers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from stix2validator import ValidationOptions, validate_instance
from taxii2client.v21 import Collection as JudgeCollection
from taxii2client.v21 import as_pages

from qorgan.core.tlp import Tlp
from qorgan.intel.client import (
    MEDIA_TYPE_TAXII,
    Cursor,
    TaxiiClient,
    TaxiiError,
    pull_taxii,
)
from qorgan.intel.feeds import FeedKind, FeedSettings
from qorgan.intel.markings import mark, tlp_of
from qorgan.intel.patterns import Observable, indicator

from .conftest import (
    COLLECTION,
    COUNT,
    LOCKED,
    MANIFEST,
    OBJECTS,
    ORDER,
    PAGE,
    PASSWORD,
    ROOT,
    SOURCE,
    T0,
    USER,
    free_port,
)


def feed(base: str, **changes: Any) -> FeedSettings:
    args: dict[str, Any] = {
        "name": "partner-taxii",
        "kind": FeedKind.taxii,
        "url": f"{base}/{ROOT}/",
        "collection": COLLECTION,
        "confidence": 65,
        "tlp": Tlp.amber,
        "username": USER,
        "password": PASSWORD,
    }
    return FeedSettings(**{**args, **changes})


class Collected:
    def __init__(self) -> None:
        self.objects: list[dict[str, Any]] = []
        self.batches = 0

    def __call__(self, batch: list[dict[str, Any]]) -> None:
        self.batches += 1
        self.objects.extend(batch)


def auth() -> httpx.BasicAuth:
    return httpx.BasicAuth(USER, PASSWORD)


def test_discovery_api_root_and_collections(medallion: str) -> None:
    with TaxiiClient(auth=auth()) as client:
        discovery = client.discover(medallion)
        assert discovery["api_roots"] == [f"{medallion}/{ROOT}/"]
        root = client.api_root(discovery["default"])
        assert root["title"] == "Trust group 1"
        collections = {c.id: c for c in client.collections(discovery["api_roots"][0])}
        assert set(collections) == {COLLECTION, LOCKED}
        assert collections[COLLECTION].can_read and not collections[LOCKED].can_read
        assert client.collection(f"{medallion}/{ROOT}/", COLLECTION).title == "Indicators"


def test_every_object_arrives_once_in_order_across_pages_with_the_feed_defaults(
    medallion: str,
) -> None:
    sink, cursors = Collected(), []
    report = pull_taxii(feed(medallion), sink, on_page=cursors.append, limit=PAGE)

    assert [o["id"] for o in sink.objects] == ORDER
    assert report.pages == len(cursors) == -(-COUNT // PAGE)
    assert report.objects == COUNT
    unmarked = {o["id"] for o in OBJECTS[::3]}
    for obj in sink.objects:
        if obj["id"] in unmarked:
            assert tlp_of(obj) is Tlp.amber and obj["confidence"] == 65
        else:
            assert tlp_of(obj) is Tlp.green and obj["confidence"] == 90
        result = validate_instance(obj, ValidationOptions(version="2.1"))
        assert result.is_valid, [str(e) for e in result.errors]
    assert report.marked == report.confidence_set == len(unmarked)
    assert report.cursor.added_after == max(m["date_added"] for m in MANIFEST)

    again = Collected()
    nothing = pull_taxii(feed(medallion), again, cursor=report.cursor, limit=PAGE)
    assert again.objects == [] and nothing.cursor == report.cursor


def test_taxii2_client_as_judge_reads_the_same_objects_in_the_same_order(medallion: str) -> None:
    """The OASIS client paging the same collection sees what ours delivered, before defaults."""
    judge = JudgeCollection(
        f"{medallion}/{ROOT}/collections/{COLLECTION}/", user=USER, password=PASSWORD
    )
    theirs = [o for page in as_pages(judge.get_objects, per_request=PAGE) for o in page["objects"]]
    ours: list[dict[str, Any]] = []
    with TaxiiClient(auth=auth()) as client:
        for page in client.pages(f"{medallion}/{ROOT}/", COLLECTION, limit=PAGE):
            ours.extend(page.objects)
    assert ours == theirs
    assert [o["id"] for o in ours] == ORDER


@pytest.mark.parametrize("stop_after", [1, 2, 3, 5])
def test_resuming_from_a_saved_cursor_gets_exactly_the_rest(
    medallion: str, stop_after: int
) -> None:
    """Pages end at 50, 100 (inside the tie 95..104), 150, 250: each resume is exact."""
    first = Collected()
    saved: list[dict[str, Any]] = []
    pull_taxii(
        feed(medallion),
        first,
        on_page=lambda c: saved.append(c.to_json()),
        max_pages=stop_after,
        limit=PAGE,
    )
    assert len(first.objects) == stop_after * PAGE

    stored = json.loads(json.dumps(saved[-1]))  # as a database would keep it
    rest = Collected()
    pull_taxii(feed(medallion), rest, cursor=Cursor.from_json(stored), limit=PAGE)
    assert [o["id"] for o in first.objects + rest.objects] == ORDER


def test_an_object_added_after_a_poll_arrives_on_the_next_poll_and_nothing_else(
    medallion: str,
) -> None:
    first = pull_taxii(feed(medallion), Collected(), limit=PAGE)
    new = mark(
        indicator(
            Observable.of("domain-name", "new-c2.example.kz"),
            created_by_ref=SOURCE,
            confidence=80,
            valid_from=T0,
            tlp=Tlp.clear,
        ),
        Tlp.clear,
    )
    body = json.dumps({"objects": [new]}).encode()
    reply = httpx.post(
        f"{medallion}/{ROOT}/collections/{COLLECTION}/objects/",
        content=body,
        headers={
            "Content-Type": MEDIA_TYPE_TAXII,
            "Accept": MEDIA_TYPE_TAXII,
            "Content-Length": str(len(body)),
        },
        auth=auth(),
    )
    assert reply.status_code == 202, reply.text

    second = Collected()
    report = pull_taxii(feed(medallion), second, cursor=first.cursor, limit=PAGE)
    assert second.objects == [new]
    assert report.cursor.added_after > first.cursor.added_after

    third = Collected()
    pull_taxii(feed(medallion), third, cursor=report.cursor, limit=PAGE)
    assert third.objects == []


def test_wrong_credentials_are_a_clear_error(medallion: str) -> None:
    with pytest.raises(TaxiiError, match=r"authentication failed \(HTTP 401") as caught:
        pull_taxii(feed(medallion, password="wrong"), Collected(), limit=PAGE)
    assert caught.value.status == 401
    assert "wrong" not in str(caught.value)


def test_a_missing_or_unreadable_collection_is_a_clear_error(medallion: str) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(TaxiiError, match=r"not found \(HTTP 404") as caught:
        pull_taxii(feed(medallion, collection=missing), Collected(), limit=PAGE)
    assert caught.value.status == 404
    with pytest.raises(TaxiiError, match=r"not allowed \(HTTP 403"):
        pull_taxii(feed(medallion, collection=LOCKED), Collected(), limit=PAGE)
    with pytest.raises(TaxiiError, match="letters, digits"):
        pull_taxii(feed(medallion, collection="../../taxii2"), Collected(), limit=PAGE)


def test_an_oversized_answer_is_refused(medallion: str) -> None:
    with pytest.raises(TaxiiError, match="larger than 2000 bytes"):
        pull_taxii(feed(medallion, max_bytes=2000), Collected(), limit=PAGE)


def test_a_stored_cursor_that_is_not_one_is_refused() -> None:
    for stored in ({"added_after": 5}, {"added_after": "yesterday"}, {"recent": "x"}):
        with pytest.raises(TaxiiError):
            Cursor.from_json(stored)


# --- Servers that do not speak TAXII -------------------------------------------------------


def _server(answer: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            answer(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _reply(content_type: str, body: bytes, status: int = 200) -> Callable[[Any], None]:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return answer


HTML = b"<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>"


@pytest.mark.parametrize(
    ("content_type", "body", "status", "message"),
    [
        ("text/html; charset=utf-8", HTML, 200, "answered with text/html, not application/taxii"),
        ("text/html", HTML, 502, r"request failed \(HTTP 502 Bad Gateway\)$"),
        (MEDIA_TYPE_TAXII, b'{"objects": [', 200, "answered with invalid JSON"),
        (MEDIA_TYPE_TAXII, b"[]", 200, "JSON that is not an object"),
        ("application/taxii+json;version=2.0", b"{}", 200, "version other than 2.1"),
        (MEDIA_TYPE_TAXII, b'{"objects": {}}', 200, "objects must be a list"),
        (MEDIA_TYPE_TAXII, b'{"more": true, "objects": []}', 200, "without a next token"),
        (MEDIA_TYPE_TAXII, b'{"objects": [{"type": "x", "id": "x--1"}]}', 200, "X-TAXII-Date"),
    ],
)
def test_answers_that_are_not_taxii_are_clear_errors_and_tokens_are_sent(
    content_type: str, body: bytes, status: int, message: str
) -> None:
    for base, seen in _server(_reply(content_type, body, status)):
        settings = feed(base, username=None, password=None, token="feed-token")
        with pytest.raises(TaxiiError, match=message) as caught:
            pull_taxii(settings, Collected())
        assert "nginx" not in str(caught.value)
        assert seen == ["Bearer feed-token"]


def test_unusable_objects_are_counted_and_the_rest_delivered() -> None:
    good = OBJECTS[1]
    page = {
        "more": False,
        "objects": [
            good,
            "not an object",
            {"type": "indicator"},
            {**OBJECTS[2], "object_marking_refs": "tlp:red"},
        ],
    }

    def answer(handler: BaseHTTPRequestHandler) -> None:
        body = json.dumps(page).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", MEDIA_TYPE_TAXII)
        handler.send_header("X-TAXII-Date-Added-First", "2026-11-01T00:00:01.000000Z")
        handler.send_header("X-TAXII-Date-Added-Last", "2026-11-01T00:00:02.000000Z")
        handler.end_headers()
        handler.wfile.write(body)

    for base, _ in _server(answer):
        sink = Collected()
        report = pull_taxii(feed(base), sink)
        assert sink.objects == [good]
        assert report.refused == {
            "not a JSON object": 1,
            "object without type or id": 1,
            "malformed markings": 1,
        }
        assert report.cursor.added_after == "2026-11-01T00:00:02.000000Z"


def test_an_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(TaxiiError, match="cannot reach the server"):
        pull_taxii(feed(f"http://127.0.0.1:{free_port()}"), Collected())
