"""STIX patterns: simple ones read into observables, the rest refused with reasons; writing back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stix2patterns.validator import run_validator
from stix2validator import ValidationOptions, validate_instance, validate_string

from qorgan.core.tlp import Tlp
from qorgan.intel.markings import tlp_of
from qorgan.intel.patterns import (
    Observable,
    PatternError,
    _fast,
    _grammar,
    indicator,
    indicator_id,
    observables_of,
    pattern_for,
)

SHA256 = "3f" * 32
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
IDENTITY = "identity--8b2a3c3e-5f64-4a9e-9d3c-1a2b3c4d5e6f"
T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
OPTIONS = ValidationOptions(version="2.1", strict=True)


def assert_valid(obj: dict[str, object]) -> None:
    """Valid for the OASIS validator in strict mode (warnings are errors), so our derived ids
    are UUIDv4 as the specification asks, and everything else is clean too."""
    result = validate_instance(obj, OPTIONS)
    assert result.is_valid, [str(e) for e in result.errors]
    assert [str(w) for w in result.warnings] == []
    assert validate_string(json.dumps(obj), OPTIONS).is_valid


def obs(kind: str, value: str, algorithm: str | None = None) -> Observable:
    return Observable.of(kind, value, algorithm)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("[ipv4-addr:value = '198.51.100.7']", [obs("ipv4-addr", "198.51.100.7")]),
        ("[ipv6-addr:value = '2001:DB8::0:1']", [obs("ipv6-addr", "2001:db8::1")]),
        (f"[file:hashes.'SHA-256' = '{SHA256}']", [obs("file-hash", SHA256, "SHA-256")]),
        (f"[file:hashes.MD5 = '{MD5.upper()}']", [obs("file-hash", MD5, "MD5")]),
        (
            "[domain-name:value = 'Evil.example.KZ'] OR [url:value = 'http://x.example/a?b=1']",
            [obs("domain-name", "evil.example.kz"), obs("url", "http://x.example/a?b=1")],
        ),
        (
            "[domain-name:value = 'a.example' OR email-addr:value = 'o\\'brien@mail.example']",
            [obs("domain-name", "a.example"), obs("email-addr", "o'brien@mail.example")],
        ),
        ("[ipv4-addr:value ISSUBSET '203.0.113.0/24']", [obs("ipv4-addr", "203.0.113.0/24")]),
        (
            "[ipv4-addr:value IN ('192.0.2.1', '192.0.2.2')]",
            [obs("ipv4-addr", "192.0.2.1"), obs("ipv4-addr", "192.0.2.2")],
        ),
        (  # several hashes of one file: the one AND accepted
            f"[file:hashes.MD5 = '{MD5}' AND file:hashes.'SHA-1' = '{SHA1}']",
            [obs("file-hash", MD5, "MD5"), obs("file-hash", SHA1, "SHA-1")],
        ),
        (  # nesting and repeats collapse to one list, first occurrence kept
            "([url:value = 'http://a.example/'] OR ([url:value = 'http://a.example/']))",
            [obs("url", "http://a.example/")],
        ),
    ],
)
def test_simple_patterns_name_their_observables(pattern: str, expected: list[Observable]) -> None:
    assert observables_of(pattern) == expected


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("[ipv4-addr:value = '192.0.2.1' AND domain-name:value = 'a.example']", "AND of comp"),
        ("[ipv4-addr:value = '192.0.2.1'] AND [domain-name:value = 'a.example']", "AND of obs"),
        ("[ipv4-addr:value = '192.0.2.1'] FOLLOWEDBY [url:value = 'http://a/']", "FOLLOWEDBY"),
        ("[url:value MATCHES '^http://.*']", "MATCHES"),
        ("[domain-name:value LIKE '%.example']", "LIKE"),
        ("[ipv4-addr:value != '192.0.2.1']", "!="),
        ("[ipv4-addr:value NOT = '192.0.2.1']", "NOT ="),
        ("[ipv4-addr:value = '192.0.2.1'] WITHIN 300 SECONDS", "WITHIN"),
        ("[ipv4-addr:value = '192.0.2.1'] REPEATS 3 TIMES", "REPEATS"),
        ("[file:name = 'evil.exe']", "file:name"),
        ("[network-traffic:dst_port = 443]", "network-traffic:dst_port"),
        ("[ipv4-addr:value = 'not-an-address']", "ipv4-addr:value"),
        ("[file:hashes.MD5 = 'abc']", "not a MD5 hash"),
        ("[url:value ISSUBSET 'http://a/']", "ISSUBSET"),
    ],
)
def test_patterns_that_are_not_simple_are_refused_with_reasons(pattern: str, reason: str) -> None:
    with pytest.raises(PatternError) as caught:
        observables_of(pattern)
    assert any(reason in r for r in caught.value.reasons), caught.value.reasons


def test_every_part_that_is_not_simple_is_named() -> None:
    with pytest.raises(PatternError) as caught:
        observables_of("[file:name = 'a'] FOLLOWEDBY [url:value MATCHES 'b'] WITHIN 5 SECONDS")
    reasons = " | ".join(caught.value.reasons)
    for part in ("FOLLOWEDBY", "file:name", "MATCHES", "WITHIN"):
        assert part in reasons


@pytest.mark.parametrize(
    "text", ["", "   ", "[ipv4-addr:value = ", "ipv4-addr:value = '1'", "x" * 500]
)
def test_text_that_is_not_a_pattern_is_refused_without_echoing_it(text: str) -> None:
    with pytest.raises(PatternError) as caught:
        observables_of(text)
    assert len(str(caught.value)) < 200


def test_observable_values_are_checked_and_normalised() -> None:
    assert obs("ipv4-addr", " 192.0.2.1/32 ").value == "192.0.2.1"
    assert obs("ipv4-addr", "192.0.2.7/24").value == "192.0.2.0/24"
    assert obs("domain-name", "Example.KZ.").value == "example.kz"
    assert obs("email-addr", "Ivan@Mail.KZ").value == "Ivan@mail.kz"
    assert obs("file-hash", SHA256.upper(), "sha256").algorithm == "SHA-256"
    for kind, value, algorithm in [
        ("ipv4-addr", "2001:db8::1", None),
        ("ipv6-addr", "192.0.2.1", None),
        ("domain-name", "a b.example", None),
        ("email-addr", "no-at-sign", None),
        ("file-hash", MD5, None),
        ("file-hash", MD5, "CRC32"),
        ("url", "http://a/\x00", None),
        ("url", "", None),
        ("ipv4-addr", "192.0.2.1", "MD5"),
        ("hostname", "a.example", None),
    ]:
        with pytest.raises(PatternError):
            obs(kind, value, algorithm)


# --- Round trip ------------------------------------------------------------------------------

_TEXT = st.characters(exclude_categories=("Cc", "Cs"))
_TRICKY = st.sampled_from(["'", "\\", "\\'", "''", "]", " OR ", "ё", "қ", "😀"])
_FREE = st.lists(st.one_of(_TEXT, _TRICKY), min_size=1, max_size=30).map("".join)
_LABEL = st.text(alphabet=st.sampled_from("abcxyz019-қазақстанрф"), min_size=1, max_size=12).filter(
    lambda s: not s.startswith("-")
)


def _hash(algorithm: str, length: int) -> st.SearchStrategy[Observable]:
    return st.text(alphabet="0123456789abcdef", min_size=length, max_size=length).map(
        lambda h: Observable.of("file-hash", h, algorithm)
    )


OBSERVABLES = st.one_of(
    st.ip_addresses(v=4).map(lambda a: Observable.of("ipv4-addr", str(a))),
    st.ip_addresses(v=6).map(lambda a: Observable.of("ipv6-addr", str(a))),
    st.tuples(st.ip_addresses(v=4), st.integers(0, 32)).map(
        lambda t: Observable.of("ipv4-addr", f"{t[0]}/{t[1]}")
    ),
    st.lists(_LABEL, min_size=2, max_size=4).map(
        lambda ls: Observable.of("domain-name", ".".join(ls))
    ),
    _FREE.filter(lambda s: s.strip() == s).map(lambda s: Observable.of("url", s)),
    st.tuples(_FREE.filter(lambda s: s.strip() == s), st.lists(_LABEL, min_size=2, max_size=3)).map(
        lambda t: Observable.of("email-addr", f"{t[0]}@{'.'.join(t[1])}")
    ),
    _hash("MD5", 32),
    _hash("SHA-1", 40),
    _hash("SHA-256", 64),
    _hash("SHA-512", 128),
)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.lists(OBSERVABLES, min_size=1, max_size=3, unique=True))
def test_pattern_for_round_trips_through_the_oasis_grammar(items: list[Observable]) -> None:
    pattern = pattern_for(items)
    assert run_validator(pattern, stix_version="2.1") == []
    assert observables_of(pattern) == items


_PIECES = st.sampled_from(
    [
        "[",
        "]",
        "ipv4-addr",
        "url",
        "file",
        ":value",
        ":hashes.",
        "'SHA-256'",
        "MD5",
        " = ",
        "=",
        " ISSUBSET ",
        "'",
        "\\",
        "\\'",
        "192.0.2.1",
        "10.0.0.0/8",
        "a" * 32,
        "x",
        " OR ",
        "ё",
    ]
)


@settings(derandomize=True, max_examples=500, deadline=None)
@given(st.one_of(st.lists(_PIECES, max_size=12).map("".join), OBSERVABLES.map(pattern_for)))
def test_the_fast_path_agrees_with_the_grammar(pattern: str) -> None:
    """Whatever the regular-expression shortcut reads, the OASIS grammar reads the same way."""
    fast = _fast(pattern)
    if fast is not None:
        assert _grammar(pattern) == fast


def test_pattern_for_quotes_quotes_and_backslashes() -> None:
    assert pattern_for(obs("url", "http://a/it's\\x")) == r"[url:value = 'http://a/it\'s\\x']"
    assert (
        pattern_for(obs("file-hash", SHA256, "SHA-256")) == f"[file:hashes.'SHA-256' = '{SHA256}']"
    )
    assert pattern_for(obs("file-hash", MD5, "md5")) == f"[file:hashes.MD5 = '{MD5}']"
    assert pattern_for(obs("ipv4-addr", "10.0.0.0/8")) == "[ipv4-addr:value ISSUBSET '10.0.0.0/8']"


# --- Indicators ------------------------------------------------------------------------------

EACH_KIND = [
    obs("ipv4-addr", "198.51.100.7"),
    obs("ipv4-addr", "203.0.113.0/24"),
    obs("ipv6-addr", "2001:db8::7"),
    obs("domain-name", "c2.example.kz"),
    obs("url", "http://c2.example.kz/gate.php?id=it's"),
    obs("email-addr", "phish@mail.example"),
    obs("file-hash", MD5, "MD5"),
    obs("file-hash", SHA1, "SHA-1"),
    obs("file-hash", SHA256, "SHA-256"),
    obs("file-hash", "ab" * 64, "SHA-512"),
]


@pytest.mark.parametrize("observable", EACH_KIND, ids=lambda o: f"{o.kind}-{o.algorithm}")
@pytest.mark.parametrize("tlp", [Tlp.clear, Tlp.amber_strict])
def test_indicators_pass_the_oasis_validator(observable: Observable, tlp: Tlp) -> None:
    made = indicator(
        observable,
        created_by_ref=IDENTITY,
        confidence=70,
        valid_from=T0,
        valid_until=T0 + timedelta(days=30),
        tlp=tlp,
        labels=["feed:test"],
    )
    assert_valid(made)
    assert tlp_of(made) is tlp
    assert observables_of(made["pattern"]) == [observable]
    assert made["confidence"] == 70
    assert made["valid_until"] == "2026-12-30T08:00:00.000Z"


def test_several_observables_make_one_valid_indicator() -> None:
    made = indicator(
        EACH_KIND[:3], created_by_ref=IDENTITY, confidence=50, valid_from=T0, tlp=Tlp.green
    )
    assert_valid(made)
    assert observables_of(made["pattern"]) == EACH_KIND[:3]


def test_indicator_ids_are_deterministic_and_versions_change_modified() -> None:
    item = EACH_KIND[0]
    first = indicator(item, created_by_ref=IDENTITY, confidence=60, valid_from=T0, tlp=Tlp.green)
    later = T0 + timedelta(days=2)
    again = indicator(
        item,
        created_by_ref=IDENTITY,
        confidence=60,
        valid_from=later,
        created=T0,
        modified=later,
        tlp=Tlp.green,
    )
    assert first["id"] == again["id"] == indicator_id(first["pattern"], IDENTITY)
    assert first["created"] == again["created"]
    assert again["modified"] > first["modified"]
    other_value = indicator(
        EACH_KIND[3], created_by_ref=IDENTITY, confidence=60, valid_from=T0, tlp=Tlp.green
    )
    other_feed = indicator(
        item,
        created_by_ref="identity--00000000-0000-4000-8000-000000000001",
        confidence=60,
        valid_from=T0,
        tlp=Tlp.green,
    )
    assert len({first["id"], other_value["id"], other_feed["id"]}) == 3


@pytest.mark.parametrize(
    "changes",
    [
        {"confidence": 101},
        {"confidence": True},
        {"created_by_ref": "organization--1"},
        {"valid_until": T0},
        {"valid_from": T0.replace(tzinfo=None)},
        {"modified": T0 - timedelta(seconds=1)},
    ],
)
def test_bad_indicator_arguments_are_refused(changes: dict[str, object]) -> None:
    args: dict[str, object] = {
        "created_by_ref": IDENTITY,
        "confidence": 50,
        "valid_from": T0,
        "tlp": Tlp.green,
    }
    with pytest.raises(PatternError):
        indicator(EACH_KIND[0], **{**args, **changes})  # type: ignore[arg-type]
