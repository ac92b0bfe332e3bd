"""MISP feeds and plain lists into indicators: mapping, TLP, trust, incremental pulls, bad input."""

from __future__ import annotations

import functools
import json
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from stix2validator import ValidationOptions, validate_instance

from qorgan.core.tlp import Tlp
from qorgan.intel.feeds import (
    FeedError,
    FeedKind,
    FeedSettings,
    detect,
    feed_identity,
    pull_list,
    pull_misp,
    read_list,
)
from qorgan.intel.markings import tlp_of
from qorgan.intel.patterns import Kind, Observable, PatternError, observables_of

DATA = Path(__file__).parent.parent / "data" / "intel"
MISP = DATA / "misp"
LISTS = DATA / "lists"
PHISHING = "5f7a1c2e-2b4d-4c1a-9e3f-0a1b2c3d4e5f"
LEAK = "7c9d2e4f-6a8b-4c0d-8e1f-2a3b4c5d6e7f"
SCAN = "9e1f3a5b-7c9d-4e1f-a2b3-c4d5e6f7a8b9"
LOADER_SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


class Collected:
    """A sink that keeps every batch it is handed."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []

    def __call__(self, batch: list[dict[str, Any]]) -> None:
        self.batches.append(batch)

    @property
    def objects(self) -> list[dict[str, Any]]:
        return [obj for batch in self.batches for obj in batch]

    @property
    def indicators(self) -> dict[str, dict[str, Any]]:
        """Indicators by pattern."""
        return {o["pattern"]: o for o in self.objects if o["type"] == "indicator"}


def misp(url: str | Path = MISP, **changes: Any) -> FeedSettings:
    args: dict[str, Any] = {
        "name": "circl-osint",
        "kind": FeedKind.misp,
        "url": str(url),
        "confidence": 80,
        "tlp": Tlp.amber,
        "lifetime": timedelta(days=30),
    }
    return FeedSettings(**{**args, **changes})


def assert_valid(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        result = validate_instance(obj, ValidationOptions(version="2.1"))
        assert result.is_valid, [str(e) for e in result.errors]


# --- Settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"name": ""},
        {"kind": "rss"},
        {"tlp": "purple"},
        {"url": " "},
        {"confidence": 101},
        {"confidence": "80"},
        {"lifetime": timedelta(0)},
        {"poll_interval": timedelta(seconds=-1)},
        {"kind": FeedKind.taxii},  # no collection
        {"token": "t", "username": "u", "password": "p"},
    ],
)
def test_feed_settings_refuse_what_cannot_work(changes: dict[str, Any]) -> None:
    with pytest.raises(FeedError):
        misp(**changes)


def test_feed_settings_keep_secrets_out_of_repr_and_name_one_identity() -> None:
    settings = misp(token="s3cret-token")
    assert "s3cret" not in repr(settings)
    identity = feed_identity(settings)
    assert identity["id"] == misp().identity_id == settings.identity_id
    assert identity["id"] != misp(name="other").identity_id
    assert_valid([identity])


# --- MISP ----------------------------------------------------------------------------------

EXPECTED_MISP = {
    # pattern -> TLP: the event's tag, tlp:white read as CLEAR, the feed default when untagged,
    # and an attribute's stricter tag winning over its event's.
    "[ipv4-addr:value = '198.51.100.23']": Tlp.green,
    "[domain-name:value = 'secure-halyk-login.example']": Tlp.green,
    "[url:value = 'https://secure-halyk-login.example/kz/auth.php?id=it\\'s']": Tlp.green,
    "[file:hashes.MD5 = '44d88612fea8a8f36de82e1278abb02f']": Tlp.green,
    f"[file:hashes.'SHA-256' = '{LOADER_SHA256}']": Tlp.green,
    "[ipv4-addr:value = '203.0.113.77']": Tlp.green,
    "[email-addr:value = 'support@secure-halyk-login.example']": Tlp.green,
    "[file:hashes.'SHA-1' = '3395856ce81f2b7382dee72602f798b642f14140']": Tlp.green,
    "[domain-name:value = 'leak.example.net']": Tlp.clear,
    "[ipv6-addr:value = '2001:db8::beef']": Tlp.clear,
    f"[file:hashes.'SHA-256' = '{EMPTY_SHA256}']": Tlp.clear,
    "[ipv4-addr:value ISSUBSET '203.0.113.0/24']": Tlp.amber,
    "[ipv4-addr:value = '198.18.0.5']": Tlp.amber_strict,
}


def test_a_misp_feed_directory_becomes_marked_trusted_valid_indicators() -> None:
    sink = Collected()
    report = pull_misp(misp(), sink, now=NOW)

    assert sink.objects[0] == feed_identity(misp())
    got = sink.indicators
    assert {p: tlp_of(o) for p, o in got.items()} == EXPECTED_MISP
    assert all(o["confidence"] == 80 for o in got.values())
    assert all(o["created_by_ref"] == misp().identity_id for o in got.values())
    sha256 = got[next(p for p in got if "e3b0c442" in p)]
    assert sha256["valid_from"] == "2026-11-24T10:00:00.000Z"  # the attribute's first_seen
    assert sha256["modified"] == "2026-11-25T10:00:00.000Z"  # its timestamp
    assert sha256["valid_until"] == "2026-12-25T10:00:00.000Z"  # + the feed's lifetime
    assert sha256["external_references"][0]["external_id"] == LEAK
    assert_valid(sink.objects)

    assert report.events_read == 3
    assert report.indicators == len(EXPECTED_MISP)
    assert report.skipped == {
        "not to_ids": 2,  # the benign hostname and the ip-src of the leak event ("0")
        "deleted": 1,
        "type:text": 1,
        "type:vulnerability": 1,
        "type:link": 1,
        "type:filename": 1,
    }
    assert [(p.where, p.reason) for p in report.problems] == [
        (f"{PHISHING}/a1000000-0000-4000-8000-00000000000c", "ip-dst: not an IP address or range")
    ]
    assert report.read == report.indicators - 1 + sum(report.skipped.values()) + 1  # domain|ip: 2
    assert set(report.seen) == {PHISHING, LEAK, SCAN}


def test_misp_attributes_without_to_ids_become_indicators_only_when_asked() -> None:
    sink = Collected()
    report = pull_misp(misp(all_attributes=True), sink, now=NOW)
    assert "[domain-name:value = 'cdn.example.org']" in sink.indicators
    assert "[ipv4-addr:value = '192.0.2.200']" in sink.indicators
    assert "not to_ids" not in report.skipped
    assert report.skipped["type:filename"] == 1  # a file name alone is still nothing to match


def copy_feed(tmp_path: Path) -> Path:
    feed = tmp_path / "feed"
    shutil.copytree(MISP, feed)
    return feed


def bump(feed: Path, event: str, seconds: int) -> None:
    """Make ``event`` newer in the manifest and its file, as a MISP publisher does on an edit."""
    manifest = json.loads((feed / "manifest.json").read_text())
    manifest[event]["timestamp"] = int(manifest[event]["timestamp"]) + seconds
    (feed / "manifest.json").write_text(json.dumps(manifest))
    document = json.loads((feed / f"{event}.json").read_text())
    for attribute in document["Event"]["Attribute"]:
        attribute["timestamp"] = str(int(attribute["timestamp"]) + seconds)
    (feed / f"{event}.json").write_text(json.dumps(document))


def test_misp_pulls_are_incremental_and_an_edit_is_a_new_version(tmp_path: Path) -> None:
    feed = copy_feed(tmp_path)
    first_sink = Collected()
    first = pull_misp(misp(feed), first_sink, now=NOW)

    again = Collected()
    second = pull_misp(misp(feed), again, seen=first.seen, now=NOW)
    assert second.events_read == 0
    assert [o["type"] for o in again.objects] == ["identity"]
    assert second.seen == first.seen

    bump(feed, SCAN, 3600)
    third_sink = Collected()
    third = pull_misp(misp(feed), third_sink, seen=second.seen, now=NOW)
    assert third.events_read == 1
    assert set(third_sink.indicators) == {
        "[ipv4-addr:value ISSUBSET '203.0.113.0/24']",
        "[ipv4-addr:value = '198.18.0.5']",
    }
    for pattern, new in third_sink.indicators.items():
        old = first_sink.indicators[pattern]
        assert new["id"] == old["id"] and new["created"] == old["created"]
        assert new["modified"] > old["modified"]
    assert third.seen[SCAN] == first.seen[SCAN] + 3600


def test_a_bad_event_is_reported_and_retried_while_the_rest_is_read(tmp_path: Path) -> None:
    feed = copy_feed(tmp_path)
    (feed / f"{LEAK}.json").write_text('{"Event": {"Attribute": [')  # cut short
    (feed / f"{SCAN}.json").unlink()
    manifest = json.loads((feed / "manifest.json").read_text())
    manifest["../../etc/passwd"] = {"timestamp": 1}
    manifest["0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"] = {"info": "no timestamp"}
    (feed / "manifest.json").write_text(json.dumps(manifest))

    sink = Collected()
    report = pull_misp(misp(feed), sink, now=NOW)
    assert report.events_read == 1
    assert set(report.seen) == {PHISHING}  # the others stay unseen, so the next pull retries
    reasons = {p.where: p.reason for p in report.problems}
    assert reasons[LEAK] == "event is not valid JSON"
    assert reasons[SCAN].startswith("cannot read event")
    assert reasons["manifest.json"] == "an event key is not a uuid"
    assert reasons["0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"] == "manifest entry without a timestamp"

    shutil.copy(MISP / f"{LEAK}.json", feed / f"{LEAK}.json")
    retry = pull_misp(misp(feed), Collected(), seen=report.seen, now=NOW)
    assert retry.events_read == 1 and LEAK in retry.seen


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"Attribute": {"type": "ip-dst"}}, "Attribute and Object must be lists"),
        ({"Object": [5]}, "an object without a list of attributes"),
        ({"Object": [{"Attribute": "x"}]}, "an object without a list of attributes"),
        ({"Attribute": ["ip-dst"]}, "an attribute is not a JSON object"),
        (
            {"Attribute": [{"type": "ip-dst", "to_ids": True, "value": 7}]},
            "ip-dst attribute without a text value",
        ),
        ([], 'event file has no "Event" object'),
    ],
)
def test_a_misshapen_event_is_reported_not_fatal(
    tmp_path: Path, event: object, reason: str
) -> None:
    feed = copy_feed(tmp_path)
    document = {"Event": event} if isinstance(event, dict) else event
    (feed / f"{SCAN}.json").write_text(json.dumps(document))
    report = pull_misp(misp(feed), Collected(), now=NOW)
    assert reason in [p.reason for p in report.problems if p.where.startswith(SCAN)]
    assert report.events_read >= 2


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (b"<html>Not Found</html>", "manifest.json is not valid JSON"),
        (b"[1, 2]", "manifest.json is not a JSON object"),
        (b"\xff\xfe\x00", "manifest.json is not valid JSON"),
    ],
)
def test_a_manifest_that_is_not_one_stops_the_pull(
    tmp_path: Path, manifest: bytes, message: str
) -> None:
    (tmp_path / "manifest.json").write_bytes(manifest)
    with pytest.raises(FeedError, match=message):
        pull_misp(misp(tmp_path), Collected(), now=NOW)
    with pytest.raises(FeedError, match=r"cannot read manifest\.json"):
        pull_misp(misp(tmp_path / "missing"), Collected(), now=NOW)
    with pytest.raises(FeedError, match="larger than 10 bytes"):
        pull_misp(misp(MISP, max_bytes=10), Collected(), now=NOW)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A copy of the MISP feed directory served by python's http.server on loopback."""
    root = copy_feed(tmp_path)
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_misp_feed_over_http_reads_as_from_disk(served: tuple[str, Path]) -> None:
    url, root = served
    from_disk, over_http = Collected(), Collected()
    disk_report = pull_misp(misp(), from_disk, now=NOW)
    http_report = pull_misp(misp(url), over_http, now=NOW)
    assert over_http.objects == from_disk.objects
    assert http_report.seen == disk_report.seen

    (root / f"{SCAN}.json").unlink()
    missing = pull_misp(misp(url), Collected(), seen={PHISHING: 0}, now=NOW)
    assert {p.where: p.reason for p in missing.problems}[
        SCAN
    ] == f"event {SCAN}: HTTP 404 Not Found"
    assert SCAN not in missing.seen

    with pytest.raises(FeedError, match=r"manifest\.json: HTTP 404"):
        pull_misp(misp(url + "nowhere/"), Collected(), now=NOW)
    with pytest.raises(FeedError, match="larger than 100 bytes"):
        pull_misp(misp(url, max_bytes=100), Collected(), now=NOW)


def test_an_unreachable_feed_is_a_clear_error() -> None:
    with pytest.raises(FeedError, match=r"cannot fetch manifest\.json"):
        pull_misp(misp("http://127.0.0.1:9/"), Collected(), now=NOW)


# --- Lists ---------------------------------------------------------------------------------


def listing(path: Path, **changes: Any) -> FeedSettings:
    args: dict[str, Any] = {
        "name": "blocklist",
        "kind": FeedKind.csv,
        "url": str(path),
        "confidence": 40,
        "tlp": Tlp.green,
        "lifetime": timedelta(days=7),
    }
    return FeedSettings(**{**args, **changes})


def test_a_text_list_detects_each_kind_and_reports_bad_lines_by_number() -> None:
    sink = Collected()
    report = pull_list(listing(LISTS / "blocklist.txt"), sink, now=NOW)
    observables = [observables_of(p)[0] for p in sink.indicators]
    assert [(o.kind, o.value) for o in observables] == [
        (Kind.ipv4, "198.51.100.23"),
        (Kind.ipv4, "203.0.113.0/24"),
        (Kind.ipv6, "2001:db8::bad"),
        (Kind.domain, "secure-halyk-login.example"),  # refanged from [.]
        (Kind.url, "https://secure-halyk-login.example/kz/auth.php"),  # from hxxps
        (Kind.file_hash, "44d88612fea8a8f36de82e1278abb02f"),
        (Kind.file_hash, "3395856ce81f2b7382dee72602f798b642f14140"),
        (Kind.file_hash, "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"),
        (Kind.email, "support@secure-halyk-login.example"),
        (Kind.domain, "қорған-тест.қаз"),
    ]
    assert report.duplicates == 1
    assert [(p.where, p.reason) for p in report.problems] == [
        ("line 15", "not an address, range, domain, URL, e-mail address or hash"),
        ("line 16", "not an address, range, domain, URL, e-mail address or hash"),
        ("line 17", "10 hex digits is no known hash length"),
    ]
    assert report.read == 14
    for obj in sink.indicators.values():
        assert obj["confidence"] == 40 and tlp_of(obj) is Tlp.green
        assert obj["valid_from"] == "2026-11-30T08:00:00.000Z"
        assert obj["valid_until"] == "2026-12-07T08:00:00.000Z"
    assert_valid(sink.objects)


def test_a_csv_column_is_read_by_index_or_by_header_name() -> None:
    by_index = Collected()
    report = pull_list(listing(LISTS / "urlhaus.csv", column=2), by_index, now=NOW)
    assert list(by_index.indicators) == [
        "[url:value = 'http://198.51.100.41/bins/mozi.m']",
        "[url:value = 'https://files.example.com/invoice,2026.zip']",
        "[url:value = 'http://203.0.113.9:8080/i']",
    ]
    assert [(p.where, p.reason) for p in report.problems] == [
        ("line 8", "fewer than 3 columns"),
        ("line 9", "empty value"),
    ]
    by_name = Collected()
    pull_list(listing(LISTS / "indicators.csv", column="Indicator"), by_name, now=NOW)
    assert len(by_name.indicators) == 3
    with pytest.raises(FeedError, match="no such column"):
        pull_list(listing(LISTS / "indicators.csv", column="value"), Collected(), now=NOW)


def test_undecodable_bytes_cost_their_line_only(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_bytes(b"\xef\xbb\xbf198.51.100.1\nbad\xff\xfe.example\n198.51.100.2\n")
    sink = Collected()
    report = pull_list(listing(path), sink, now=NOW)
    assert len(sink.indicators) == 2
    assert [p.where for p in report.problems] == ["line 2"]


def test_large_lists_reach_the_sink_in_bounded_batches() -> None:
    text = "\n".join(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(2500))
    sink = Collected()
    report = read_list(text, listing(Path("unused")), sink, now=NOW)
    assert report.indicators == 2500
    assert [len(b) for b in sink.batches] == [1000, 1000, 501]  # identity first


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("192.0.2.1", Kind.ipv4, "192.0.2.1"),
        ("192.0.2.1/32", Kind.ipv4, "192.0.2.1"),
        ("2001:DB8::1", Kind.ipv6, "2001:db8::1"),
        ("Example.COM", Kind.domain, "example.com"),
        ("xn--80ak6aa92e.com", Kind.domain, "xn--80ak6aa92e.com"),
        ("evil(.)example[.]org", Kind.domain, "evil.example.org"),
        ("hxxp://evil.example/a b", None, None),
        ("hxxp://evil.example/ab", Kind.url, "http://evil.example/ab"),
        ("ftp://files.example/x", Kind.url, "ftp://files.example/x"),
        ("user[@]mail.example", Kind.email, "user@mail.example"),
        ("user@localhost", None, None),
        ("D41D8CD98F00B204E9800998ECF8427E", Kind.file_hash, "d41d8cd98f00b204e9800998ecf8427e"),
        ("1.2.3", None, None),
        ("-bad.example", None, None),
        ("", None, None),
    ],
)
def test_detect_names_the_kind_of_a_list_entry(text: str, kind: Kind | None, value: str) -> None:
    if kind is None:
        with pytest.raises(PatternError):
            detect(text)
    else:
        assert detect(text) == Observable.of(kind, value, "MD5" if kind is Kind.file_hash else None)


def test_a_list_over_http_reads_as_from_disk(served: tuple[str, Path]) -> None:
    url, root = served
    shutil.copy(LISTS / "blocklist.txt", root / "blocklist.txt")
    from_disk, over_http = Collected(), Collected()
    disk = pull_list(listing(LISTS / "blocklist.txt"), from_disk, now=NOW)
    http = pull_list(listing(url + "blocklist.txt"), over_http, now=NOW)
    assert over_http.objects == from_disk.objects
    assert http.problems == disk.problems
    with pytest.raises(FeedError, match="list: HTTP 404 Not Found"):
        pull_list(listing(url + "missing.txt"), Collected(), now=NOW)
