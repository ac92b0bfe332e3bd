"""The active indicators an organisation may receive, written as detection's indicator file:
exactly those TLP lets it receive, active now, with values detection can match; the rest
counted by reason."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import accounts
from qorgan.core.db import unit_of_work
from qorgan.core.models import OrganisationKind
from qorgan.core.tlp import Tlp
from qorgan.intel import store
from qorgan.intel.ids import derived_id
from qorgan.intel.indicator_export import export_indicators
from qorgan.intel.patterns import Observable, indicator

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SENDER = "identity--5d7e1c0a-3b2f-4e6d-9a8b-7c6d5e4f3a2b"


def _indicator(pattern_or_value: str, *, tlp: Tlp = Tlp.green, **extra: object) -> dict:
    made = indicator(
        Observable.of("ipv4-addr", "192.0.2.1"),
        created_by_ref=SENDER,
        confidence=80,
        valid_from=NOW - timedelta(days=1),
        tlp=tlp,
    )
    return {
        **made,
        "id": derived_id("indicator", pattern_or_value),
        "pattern": pattern_or_value,
        **extra,
    }


def test_only_what_the_reader_may_receive_and_detection_can_match_is_written(
    factory: sessionmaker[Session],
) -> None:
    with unit_of_work(factory) as session:
        reader, sender = (
            accounts.create_organisation(
                session=session, actor="t", name=name, kind=OrganisationKind.bank
            ).id
            for name in ("Reader", "Sender")
        )
        root = store.create_api_root(session=session, slug="kz-cert", title="KZ-CERT")
        for org in (reader, sender):
            store.add_member(session=session, api_root=root, organisation_id=org)
        collection = store.create_collection(
            session=session, actor="t", api_root=root, owner_id=sender, title="Sender's IOCs"
        )
        store.grant(
            session=session, collection=collection, organisation_id=reader, can_read=True,
            can_write=False,
        )  # fmt: skip
        later = (NOW + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        gone = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        objects = [
            _indicator("[ipv4-addr:value = '198.51.100.7']", valid_until=later),
            _indicator(
                "[domain-name:value = 'evil.example'] OR [url:value = 'http://evil.example/a']"
            ),
            _indicator("[file:hashes.'SHA-256' = '" + "ab" * 32 + "']"),
            # Neighbours that must not be written:
            _indicator("[domain-name:value = 'strict.example']", tlp=Tlp.amber_strict),
            _indicator("[domain-name:value = 'expired.example']", valid_until=gone),
            _indicator("[domain-name:value = 'revoked.example']", revoked=True),
            _indicator("[ipv4-addr:value = '203.0.113.0/24']"),
            _indicator("[ipv4-addr:value = '198.51.100.9' AND ipv4-addr:value = '198.51.100.10']"),
            _indicator("[file:hashes.'SHA-512' = '" + "cd" * 64 + "']"),
        ]
        status = store.add_objects(
            objects, session=session, collection=collection, sender_id=sender, actor="t", now=NOW
        )
        assert status.failure_count == 0, status.failures
    with unit_of_work(factory) as session:
        out = io.StringIO()
        report = export_indicators(out, session=session, organisation_id=reader, now=NOW)
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert sorted((line["kind"], line["value"]) for line in lines) == [
        ("domain-name", "evil.example"),
        ("file-hash", "ab" * 32),
        ("ipv4-addr", "198.51.100.7"),
        ("url", "http://evil.example/a"),
    ]
    first = next(line for line in lines if line["value"] == "198.51.100.7")
    assert first["ref"] == objects[0]["id"] and first["source"] == "Sender's IOCs"
    assert first["valid_until"].startswith((NOW + timedelta(days=30)).date().isoformat())
    assert 0 < first["confidence"] <= 80  # decayed from the stated 80
    # Active and receivable, but not matchable: counted by reason, not lost in silence.
    assert report.indicators == 6 and report.lines == 4
    assert report.left_out["an address range"] == 1
    assert report.left_out["a hash other than MD5, SHA-1 or SHA-256"] == 1
    assert sum(report.left_out.values()) == 3
    # The sender, who may receive its own AMBER+STRICT, gets the strict one too.
    with unit_of_work(factory) as session:
        own = io.StringIO()
        export_indicators(own, session=session, organisation_id=sender, now=NOW)
    assert "strict.example" in own.getvalue() and "strict.example" not in out.getvalue()
