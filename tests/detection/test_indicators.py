"""Indicators in a hunt: each kind matches in a real event of the corpora and its near
neighbour does not; bad indicators are refused with a reason; expired ones stop matching; the
alerts are those of rules in shape, the same with one worker or two."""

from __future__ import annotations

import ipaddress
import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qorgan.detection.alerts import Alert
from qorgan.detection.hunt import Hunter, run_hunt
from qorgan.detection.indicator_files import load_indicators
from qorgan.detection.indicators import (
    Indicator,
    IndicatorSet,
    canonical,
    level_of,
)
from qorgan.detection.loader import BUILTIN_RULES, load_plan
from qorgan.detection.plan import Plan
from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.quarantine import Quarantine
from qorgan.telemetry.sources import read_paths

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SYSMON_SHA256 = "17F746D82695FA9B35493B41859D39D786D32B23A9D2E00F4011DEC7A02402AE"
SYSMON_IMPHASH = "CEEFB55F764020CC5C5F8F23349AB163"


def indicator(kind: str, value: str, n: int = 1, **kw: Any) -> Indicator:
    return Indicator(
        kind=kind,
        value=value,
        ref=kw.get("ref", f"indicator--{n:08d}-0000-4000-8000-000000000000"),
        source=kw.get("source", "kz-cert"),
        confidence=kw.get("confidence", 80),
        valid_until=kw.get("valid_until"),
    )


def build(*items: Indicator) -> IndicatorSet:
    return IndicatorSet.build(items, now=NOW)


def hits(found: IndicatorSet, event: dict[str, Any], time: str | None = None) -> set[tuple]:
    """(kind, canonical value, field) of what ``event`` holds."""
    out = set()
    for hit in found.match([event], [time]):
        d = found.describe(hit.indicator)
        out.add((d["kind"], d["value"], hit.field))
    return out


def first_event(path: Path, test: Callable[[dict[str, Any]], bool]) -> tuple[dict, str | None]:
    for batch in read_paths([path], Quarantine()):
        for event, time in zip(batch.events, batch.times, strict=True):
            if test(event):
                return event, time
    raise AssertionError(f"no such event in {path}")


# -- each kind in a real event, and its near neighbour ------------------------------------------


def test_domain_matches_its_subdomains_not_a_sibling(shared_file: Callable[[str], Path]) -> None:
    event, time = first_event(
        shared_file("zeek-wrccdc/dns.json.gz"), lambda e: e.get("query") == "ise.wrccdc.org"
    )
    assert hits(build(indicator("domain-name", "WRCCDC.org.")), event, time) == {
        ("domain-name", "wrccdc.org", "query")
    }
    assert hits(build(indicator("domain-name", "ise.wrccdc.org")), event, time)
    # A sibling sharing the text's tail, and a deeper name, are other domains.
    assert not hits(build(indicator("domain-name", "rccdc.org")), event, time)
    assert not hits(build(indicator("domain-name", "x.ise.wrccdc.org")), event, time)


def test_address_matches_exactly(shared_file: Callable[[str], Path]) -> None:
    event, time = first_event(
        shared_file("zeek-wrccdc/dns.json.gz"), lambda e: e.get("id.orig_h") == "10.47.1.100"
    )
    assert hits(build(indicator("ipv4-addr", "10.47.1.100")), event, time) == {
        ("ipv4-addr", "10.47.1.100", "id.orig_h")
    }
    assert not hits(build(indicator("ipv4-addr", "10.47.1.10")), event, time)
    assert not hits(build(indicator("ipv4-addr", "10.47.1.1")), event, time)


def test_address_in_dns_answers(shared_file: Callable[[str], Path]) -> None:
    event, time = first_event(
        shared_file("zeek-wrccdc/dns.json.gz"), lambda e: "134.71.3.16" in (e.get("answers") or [])
    )
    assert hits(build(indicator("ipv4-addr", "134.71.3.16")), event, time) == {
        ("ipv4-addr", "134.71.3.16", "answers")
    }


def test_sysmon_network_destination(shared_file: Callable[[str], Path]) -> None:
    event, time = first_event(
        shared_file("evtx-attack-samples/Command and Control"),
        lambda e: e.get("EventID") == 3 and e.get("DestinationIp") == "10.0.2.16",
    )
    assert ("ipv4-addr", "10.0.2.16", "DestinationIp") in hits(
        build(indicator("ipv4-addr", "10.0.2.16")), event, time
    )
    assert not hits(build(indicator("ipv4-addr", "10.0.2.160")), event, time)


def test_windows_hashes_are_split(shared_file: Callable[[str], Path]) -> None:
    event, time = first_event(
        shared_file("evtx-attack-samples/Execution/exec_sysmon_1_ftp.evtx"),
        lambda e: SYSMON_SHA256 in str(e.get("Hashes")),
    )
    assert hits(build(indicator("file-hash", SYSMON_SHA256.lower())), event, time) == {
        ("file-hash", SYSMON_SHA256.lower(), "Hashes")
    }
    one_digit_off = SYSMON_SHA256[:-1] + ("F" if SYSMON_SHA256[-1] != "F" else "E")
    assert not hits(build(indicator("file-hash", one_digit_off)), event, time)
    # An import hash is MD5-long but no file's hash: it is never looked up.
    assert not hits(build(indicator("file-hash", SYSMON_IMPHASH)), event, time)


def test_certificate_fingerprint_is_not_a_file_hash(shared_file: Callable[[str], Path]) -> None:
    event, time = first_event(
        shared_file("zeek-wrccdc/ssl.json.gz"), lambda e: bool(e.get("cert_chain_fps"))
    )
    fingerprint = event["cert_chain_fps"][0]
    assert not hits(build(indicator("file-hash", fingerprint)), event, time)


def test_email_sender(shared_file: Callable[[str], Path]) -> None:
    event, time = first_event(
        shared_file("zeek-wrccdc/smtp.json.gz"),
        lambda e: e.get("mailfrom") == "nessus49048747@hotmail.com",
    )
    assert hits(build(indicator("email-addr", "Nessus49048747@HOTMAIL.com")), event, time) == {
        ("email-addr", "nessus49048747@hotmail.com", "mailfrom")
    }
    assert not hits(build(indicator("email-addr", "nessus49048748@hotmail.com")), event, time)
    # The sender's domain meets domain indicators; its local part is no domain.
    assert hits(build(indicator("domain-name", "hotmail.com")), event, time)
    assert not hits(build(indicator("domain-name", "nessus49048747.com")), event, time)


def test_web_client_address() -> None:
    """The repository's example access log (the corpora's Apache logs are error logs)."""
    path = Path(__file__).resolve().parents[2] / "examples" / "logs" / "access.log"
    event, time = first_event(path, lambda e: e.get("c-ip") == "198.51.100.23")
    assert hits(build(indicator("ipv4-addr", "198.51.100.23")), event, time) == {
        ("ipv4-addr", "198.51.100.23", "c-ip")
    }
    # The user agent names https://sqlmap.org: free text, which is not looked in.
    assert not hits(build(indicator("domain-name", "sqlmap.org")), event, time)


def test_url_and_its_host() -> None:
    """The corpora hold no URL field (Zeek's http.log is absent): a proxy's event, as Sigma's
    proxy category names it, and a W3C web server's Host header with its request target."""
    found = build(
        indicator("url", "HTTP://Evil.Example:80/dl/payload.exe?id=7#top", 1),
        indicator("domain-name", "cdn.example.net", 2),
        indicator("url", "https://evil.example/other", 3),
    )
    proxy = {"c-uri": "http://evil.example/dl/payload.exe?id=7", "cs-host": "evil.example"}
    assert {(k, f) for k, _, f in hits(found, proxy)} == {("url", "c-uri")}
    w3c = {"cs-host": "Evil.Example:80", "cs-uri": "/dl/payload.exe?id=7"}
    assert {(k, f) for k, _, f in hits(found, w3c)} == {("url", "cs-host+cs-uri")}
    assert hits(found, {"c-uri": "https://a.cdn.example.net/x.js"}) == {
        ("domain-name", "cdn.example.net", "c-uri")
    }
    for neighbour in (
        "http://evil.example/dl/payload.exe?id=8",
        "http://evil.example:8080/dl/payload.exe?id=7",
        "http://evil.example/DL/payload.exe?id=7",
        "http://notevil.example/dl/payload.exe?id=7",
    ):
        assert not hits(found, {"c-uri": neighbour}), neighbour


def test_ipv6_in_any_form() -> None:
    found = build(indicator("ipv6-addr", "2001:DB8:0:0:0:0:0:1"))
    assert hits(found, {"DestinationIp": "2001:db8::1"})
    assert hits(found, {"id.resp_h": "2001:0db8:0000::0001"})
    assert not hits(found, {"DestinationIp": "2001:db8::10"})


def test_only_fields_that_hold_the_kind() -> None:
    found = build(indicator("ipv4-addr", "10.0.0.1"), indicator("domain-name", "evil.com", 2))
    assert not hits(found, {"User": "10.0.0.1", "CommandLine": "ping evil.com"})
    assert hits(found, {"SourceIp": "10.0.0.1"})


# -- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        ("ip-address", "10.0.0.1", "unknown kind"),
        ("domain-name", "", "empty"),
        ("domain-name", "   ", "empty"),
        ("ipv4-addr", "10.0.0.256", "not an IPv4"),
        ("ipv4-addr", "010.0.0.1", "leading zeros"),
        ("ipv4-addr", "10.0.0.0/24", "not an IPv4"),
        ("ipv6-addr", "2001:db8::1::2", "not an IPv4 or IPv6"),
        ("ipv6-addr", "fe80::1%eth0", "not an IPv4 or IPv6"),
        ("file-hash", SYSMON_SHA256[:-1], "not a file hash"),
        ("file-hash", "z" * 64, "not a file hash"),
        ("domain-name", "com", "two labels"),
        ("domain-name", "evil..com", "not a domain"),
        ("domain-name", "10.0.0.1", "an address"),
        ("email-addr", "no-at-sign.example", "not an e-mail"),
        ("url", "evil.example/path", "not a URL"),
        ("url", "http://evil.example:99999/", "port"),
        ("domain-name", "evil\x00.com", "NUL"),
        ("domain-name", "evil\ud800.com", "surrogate"),
    ],
)
def test_bad_indicators_are_refused_with_a_reason(kind: str, value: str, reason: str) -> None:
    refused: list[tuple[int, str]] = []
    found = IndicatorSet.build(
        [indicator("domain-name", "good.example"), indicator(kind, value, 2)],
        now=NOW,
        refused=lambda position, _, why: refused.append((position, why)),
    )
    assert len(found) == 1
    assert [p for p, _ in refused] == [1]
    assert reason in refused[0][1]
    assert sum(found.refused.values()) == 1
    assert len(refused[0][1]) < 120
    assert not value.strip() or value[:20] not in refused[0][1]  # no echo of the input


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"confidence": 101}, "confidence"),
        ({"confidence": -1}, "confidence"),
        ({"ref": ""}, "no ref"),
        ({"source": " "}, "no source"),
        ({"ref": "indicator--\x00"}, "NUL"),
        ({"valid_until": datetime(2027, 1, 1)}, "timezone-aware"),  # noqa: DTZ001
    ],
)
def test_bad_metadata_is_refused(changes: dict[str, Any], reason: str) -> None:
    found = build(indicator("domain-name", "evil.example", **changes))
    assert len(found) == 0
    assert reason in next(iter(found.refused))


# -- expiry --------------------------------------------------------------------------------------


def test_expired_indicators_stop_matching() -> None:
    found = build(
        indicator("ipv4-addr", "192.0.2.1", 1, valid_until=NOW - timedelta(seconds=1)),
        indicator("ipv4-addr", "192.0.2.2", 2, valid_until=NOW + timedelta(days=30)),
    )
    # Live (events of now, or without a time): only the one still valid.
    for time in (None, "2026-12-01T00:00:00Z"):
        assert not hits(found, {"SourceIp": "192.0.2.1"}, time)
        assert hits(found, {"SourceIp": "192.0.2.2"}, time)
    # An event from before the first expired is matched: it was bad when it happened.
    assert hits(found, {"SourceIp": "192.0.2.1"}, "2026-11-30T23:59:58Z")


# -- the property --------------------------------------------------------------------------------

_labels = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=10).filter(
    lambda s: not s.isdigit()
)
_domains = st.lists(_labels, min_size=2, max_size=4).map(".".join)
_hashes = st.sampled_from([32, 40, 64]).flatmap(
    lambda n: st.text("0123456789abcdef", min_size=n, max_size=n)
)
_ipv4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
_ipv6 = st.integers(1, 2**128 - 1).map(lambda n: ipaddress.IPv6Address(n))
_emails = st.tuples(st.text(string.ascii_lowercase + "._-", min_size=1, max_size=8), _domains).map(
    "@".join
)


def _variants(kind: str, value: Any, draw: Any) -> tuple[str, str, str]:
    """(indicator text, event text in another case or format, its field)."""
    if kind == "ipv6-addr":
        return value.compressed.upper(), value.exploded, "DestinationIp"
    if kind == "ipv4-addr":
        return value, value, draw(st.sampled_from(["SourceIp", "id.resp_h", "c-ip"]))
    if kind == "domain-name":
        return value.upper(), value + ".", draw(st.sampled_from(["QueryName", "query"]))
    if kind == "file-hash":
        return value, value.upper(), draw(st.sampled_from(["Hashes", "sha256", "md5"]))
    return value.upper(), value, "mailfrom"


@settings(derandomize=True, max_examples=200, deadline=None)
@given(st.data())
def test_equal_values_match_in_any_form_and_others_do_not(data: Any) -> None:
    strategies = {
        "ipv4-addr": _ipv4,
        "ipv6-addr": _ipv6,
        "domain-name": _domains,
        "file-hash": _hashes,
        "email-addr": _emails,
    }
    kind = data.draw(st.sampled_from(sorted(strategies)))
    value = data.draw(strategies[kind])
    other = data.draw(strategies[kind].filter(lambda v: v != value))
    text, event_text, field = _variants(kind, value, data.draw)
    found = build(indicator(kind, text))
    assert len(found) == 1, found.refused
    assert hits(found, {field: event_text}), (kind, text, event_text)
    other_text = _variants(kind, other, data.draw)[1]
    if kind == "domain-name" and other_text.rstrip(".").endswith("." + canonical(kind, text)):
        return  # a subdomain: it does match, by design
    assert not hits(found, {field: other_text}), (kind, text, other_text)


# -- alerts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("confidence", "level"),
    [(0, "informational"), (1, "low"), (29, "low"), (30, "medium"), (69, "medium"), (70, "high")],
)
def test_level_follows_confidence(confidence: int, level: str) -> None:
    assert level_of(confidence) == level


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load_plan([BUILTIN_RULES])


def test_alert_says_which_indicator_from_which_feed(plan: Plan) -> None:
    found = build(
        indicator("domain-name", "evil.example", 1, source="bank-soc", confidence=85),
        indicator("domain-name", "evil.example", 2, source="kz-cert", confidence=20),
    )
    batch = EventBatch("dns.log", "zeek", {"product": "zeek", "service": "dns"})
    batch.append({"query": "c2.evil.example"}, 7, "2026-12-01T05:00:00Z", "ns1")
    alerts = Hunter(plan, indicators=found).batch(batch)
    got = [a.to_dict() for a in alerts]
    assert [a["rule"]["id"] for a in got] == [
        "indicator--00000001-0000-4000-8000-000000000000",
        "indicator--00000002-0000-4000-8000-000000000000",
    ]
    first = got[0]
    assert first["rule"]["level"] == "high"
    assert first["rule"]["path"] == "intel:bank-soc"
    assert first["rule"]["tags"] == [
        "intel.indicator",
        "intel.kind.domain-name",
        "intel.source.bank-soc",
        "intel.confidence.85",
        "intel.field.query",
    ]
    assert first["source"] == {"path": "dns.log", "record": 7, "format": "zeek"}
    assert first["event"] == {"query": "c2.evil.example"}
    assert set(first) == {"rule", "time", "host", "source", "event"}
    # Below the hunt's minimum level, an indicator's alert is not written.
    quiet = Hunter(plan, indicators=found, min_level="medium").batch(batch)
    assert [a.rule.path for a in quiet] == ["intel:bank-soc"]


def test_set_survives_pickling_for_workers() -> None:
    import pickle

    found = build(indicator("domain-name", "evil.example"))
    again = pickle.loads(pickle.dumps(found))
    assert hits(again, {"query": "a.evil.example"}) == hits(found, {"query": "a.evil.example"})


def _hunt(paths: list[Path], plan: Plan, found: IndicatorSet, workers: int) -> list[dict]:
    alerts: list[Alert] = []
    run_hunt(
        paths,
        plan,
        sink=alerts.extend,
        quarantine=Quarantine(),
        workers=workers,
        batch_size=97,
        indicators=found,
    )
    return [a.to_dict() for a in alerts]


def test_two_workers_give_the_alerts_of_one(plan: Plan, shared_file: Callable[[str], Path]) -> None:
    paths = [
        shared_file("zeek-wrccdc/smtp.json.gz"),
        shared_file("evtx-attack-samples/Execution/exec_sysmon_1_ftp.evtx"),
        shared_file("evtx-attack-samples/Command and Control"),
    ]
    found = build(
        indicator("ipv4-addr", "10.47.1.208", 1),
        indicator("email-addr", "nessus49048747@hotmail.com", 2),
        indicator("file-hash", SYSMON_SHA256, 3),
        indicator("ipv4-addr", "10.0.2.16", 4, confidence=10),
    )
    one = _hunt(paths, plan, found, 1)
    kinds = {t for a in one for t in a["rule"]["tags"] if t.startswith("intel.kind.")}
    assert kinds == {"intel.kind.ipv4-addr", "intel.kind.email-addr", "intel.kind.file-hash"}
    assert _hunt(paths, plan, found, 2) == one


# -- files ---------------------------------------------------------------------------------------


def test_json_lines_file_quarantines_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    path.write_bytes(
        "\n".join(
            [
                '{"kind": "domain-name", "value": "evil.example", "ref": "indicator--1", '
                '"source": "kz-cert", "confidence": 90, "valid_until": "2027-01-01T00:00:00Z"}',
                "# a comment",
                '{"kind": "ipv4-addr", "value": "10.0.0.01"}',
                "not json",
                '{"kind": "url", "value": "http://evil.example/x", "colour": "red"}',
                '{"kind": "file-hash", "value": "' + SYSMON_SHA256 + '"}',
                '{"kind": "domain-name", "value": "a.example", "valid_until": "2027-01-01"}',
                '["kind", "value"]',
                "",
            ]
        ).encode()
        + b'{"kind": "domain-name", "value": "\\ud800.example"}\n'
    )
    quarantine = Quarantine()
    found = load_indicators(path, quarantine, now=NOW)
    assert len(found) == 2
    assert found.describe(0)["valid_until"] == "2027-01-01T00:00:00Z"
    assert found.describe(1) | {"ref": None} == {
        "kind": "file-hash",
        "value": SYSMON_SHA256.lower(),
        "ref": None,
        "source": "feed.jsonl",
        "confidence": 50,
        "level": "medium",
        "valid_until": None,
    }
    assert found.describe(1)["ref"] == "feed.jsonl:6"
    bad = {(q.record, q.reason.split(":", 1)[0]) for q in quarantine.records}
    assert bad == {(n, "indicators") for n in (3, 4, 5, 7, 8, 9)}
    assert all(q.path == str(path) for q in quarantine.records)


def test_csv_file(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text(
        "kind,value,source,confidence\n"
        "ipv4-addr,198.51.100.23,abuse-list,60\n"
        "ipv4-addr,198.51.100.300,abuse-list,60\n"
        "domain-name,evil.example\n"
        "email-addr,x@evil.example,abuse-list,\n"
    )
    quarantine = Quarantine()
    found = load_indicators(path, quarantine, now=NOW)
    assert [found.describe(i)["value"] for i in range(len(found))] == [
        "198.51.100.23",
        "x@evil.example",
    ]
    assert found.describe(1)["confidence"] == 50
    assert [(q.record, q.reason) for q in quarantine.records] == [
        (3, "indicators: not an IPv4 address (dotted decimal, no leading zeros)"),
        (4, "indicators: 2 columns where the header names 4"),
    ]


def test_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    from qorgan.detection.indicators import IndicatorError

    with pytest.raises(IndicatorError, match="cannot read the indicator file"):
        load_indicators(tmp_path / "absent.jsonl", Quarantine())
    bad = tmp_path / "bad.csv"
    bad.write_text("address\n10.0.0.1\n")
    with pytest.raises(IndicatorError, match="header"):
        load_indicators(bad, Quarantine())


def test_hunt_command_takes_an_indicator_file(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    import qorgan

    feed = tmp_path / "feed.jsonl"
    feed.write_text(
        '{"kind": "ipv4-addr", "value": "198.51.100.23", "ref": "indicator--9", '
        '"source": "abuse-list", "confidence": 75}\n'
        '{"kind": "ipv4-addr", "value": "198.51.100.023"}\n'
    )
    access = Path(__file__).resolve().parents[2] / "examples" / "logs" / "access.log"
    out, quarantined = tmp_path / "alerts.jsonl", tmp_path / "q.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from qorgan.cli import app; app()",
            *("hunt", str(access), "--indicators", str(feed), "-o", str(out)),
            *("--quarantine", str(quarantined), "--no-progress"),
        ],
        capture_output=True,
        text=True,
        env={
            "QORGAN_CACHE_DIR": str(tmp_path / "cache"),
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(Path(qorgan.__file__).resolve().parents[1]),
        },
        check=False,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    assert "indicators: 1 loaded, 1 refused" in proc.stderr
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    found = [a for a in alerts if a["rule"]["path"] == "intel:abuse-list"]
    assert found and all(a["event"]["c-ip"] == "198.51.100.23" for a in found)
    assert {a["rule"]["id"] for a in found} == {"indicator--9"}
    refused = [json.loads(line) for line in quarantined.read_text().splitlines()]
    assert [(q["record"], q["reason"][:11]) for q in refused if q["path"] == str(feed)] == [
        (2, "indicators:")
    ]


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(
        ["ipv4-addr", "ipv6-addr", "domain-name", "url", "file-hash", "email-addr", "x"]
    ),
    text=st.text(max_size=80),
    field=st.sampled_from(["SourceIp", "query", "c-uri", "Hashes", "mailfrom", "cs-host"]),
)
def test_any_text_is_refused_or_matched_never_a_crash(kind: str, text: str, field: str) -> None:
    found = IndicatorSet.build(
        [indicator(kind, text), indicator("domain-name", "evil.example", 2)], now=NOW
    )
    assert len(found) + sum(found.refused.values()) == 2
    hits(found, {field: text, "cs-uri": text})
    hits(found, {field: [text, text.upper()]})


def test_one_value_from_many_feeds_gives_one_alert_each() -> None:
    copies = [indicator("domain-name", "evil.example", n, source=f"feed-{n}") for n in range(500)]
    found = build(*copies, indicator("domain-name", "other.example", 999))
    got = found.match([{"query": "evil.example"}], [None])
    assert [h.indicator for h in got] == list(range(500))
