"""TAXII 2.1 without the web: media types, filters, next tokens and timestamps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from qorgan.intel.taxii import (
    MAX_PAGE,
    BadRequest,
    accepts_taxii,
    content_type_ok,
    decode_next,
    encode_next,
    error_body,
    format_timestamp,
    parse_filter,
    parse_timestamp,
)

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        ("application/taxii+json;version=2.1", True),
        ("application/taxii+json; version=2.1", True),
        ("application/taxii+json", True),
        ("*/*", True),
        (None, True),
        ("text/html, application/*;q=0.5", True),
        ("application/taxii+json;version=2.0", False),
        ("application/vnd.oasis.taxii+json; version=2.0", False),
        ("text/html", False),
        ("application/taxii+json;q=0", False),
    ],
)
def test_accept(header: str | None, accepted: bool) -> None:
    assert accepts_taxii(header) is accepted


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("application/taxii+json;version=2.1", True),
        ("application/stix+json;version=2.1", True),
        ("application/taxii+json", True),
        ("application/json", False),
        ("application/stix+json;version=2.0", False),
        ("", False),
        (None, False),
    ],
)
def test_content_type(header: str | None, ok: bool) -> None:
    assert content_type_ok(header) is ok


def test_next_tokens_are_bound_to_key_and_collection() -> None:
    moment = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    token = encode_next(moment, key=KEY, collection="c1")
    assert decode_next(token, key=KEY, collection="c1") == moment
    for bad in (
        lambda: decode_next(token, key=KEY, collection="c2"),
        lambda: decode_next(token, key=b"other" * 8, collection="c1"),
        lambda: decode_next(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), key=KEY,
                            collection="c1"),
        lambda: decode_next("!!!", key=KEY, collection="c1"),
        lambda: decode_next("A" * 65, key=KEY, collection="c1"),
    ):  # fmt: skip
        with pytest.raises(BadRequest, match="next"):
            bad()


def test_filters() -> None:
    query = parse_filter(
        {
            "added_after": "2026-01-01T00:00:00Z",
            "limit": "50000",
            "match[id]": "indicator--1, indicator--2",
            "match[type]": "indicator",
            "match[version]": "first,2026-02-01T00:00:00.5Z",
            "match[spec_version]": "2.1",
        },
        key=KEY,
        collection="c",
    )
    assert query.added_after == datetime(2026, 1, 1, tzinfo=UTC)
    assert query.limit == MAX_PAGE
    assert query.ids == ("indicator--1", "indicator--2")
    assert query.versions == ("first", datetime(2026, 2, 1, 0, 0, 0, 500000, tzinfo=UTC))
    assert parse_filter({}, key=KEY, collection="c").versions == ("last",)
    assert parse_filter({}, default_version="all", key=KEY, collection="c").versions == ("all",)
    for params in (
        {"limit": "0"},
        {"limit": "ten"},
        {"added_after": "2026-01-01"},
        {"match[version]": "newest"},
        {"match[created_by_ref]": "x"},
        {"match[id]": ","},
        {"match[id]": ",".join(["x"] * 101)},
    ):
        with pytest.raises(BadRequest):
            parse_filter(params, key=KEY, collection="c")


def test_timestamps() -> None:
    assert parse_timestamp("2026-01-01T00:00:00.123456789Z").microsecond == 123456
    assert format_timestamp(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000000Z"
    for bad in ("2026-02-30T00:00:00Z", "2026-01-01T00:00:00+05:00", 5, "x" * 500):
        with pytest.raises(BadRequest) as raised:
            parse_timestamp(bad)
        assert len(str(raised.value)) < 120
    assert error_body(BadRequest("no"), status=400) == {
        "title": "Bad request",
        "http_status": "400",
        "description": "no",
    }
