"""Detection's alerts on their way to the store: :func:`stored_bodies` gives, for every alert,
exactly what the ingestion schema (:class:`AlertIn`) gives, and quarantines what it refuses;
its short way never vouches for an alert the schema would refuse or change."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from qorgan.detection.alerts import Alert
from qorgan.detection.plan import RuleMeta
from qorgan.incidents.schemas import MAX_EVENT_BYTES, AlertIn
from qorgan.pipeline.alerting import _plain_body, stored_bodies
from qorgan.telemetry.quarantine import Quarantine

RULE = RuleMeta(
    id="0f8bd3bb-9bb6-4b0b-96b6-6b1e3e1b5c2d",
    title="SSH Password Authentication Failed",
    level="low",
    status="stable",
    tags=("attack.credential-access", "attack.t1110"),
    logsource=(("product", "linux"), ("service", "sshd")),
    path="qorgan/rules/ssh.yml",
)
CLASSIFICATION = {"kz_cert": "unauthorised-access", "kz_cert_label": "Unauthorised access"}


def _alert(**changes: Any) -> Alert:
    fields: dict[str, Any] = {
        "rule": RULE,
        "time": "2026-11-30T06:00:00.123456Z",
        "host": "web-ala-01",
        "path": "live/relays",
        "record": 42,
        "format": "syslog",
        "event": {"message": "Failed password for root from 10.0.0.1 port 22 ssh2", "pid": 7},
        "classification": CLASSIFICATION,
    }
    fields.update(changes)
    return Alert(**fields)


def _schema_body(alert: Alert) -> dict[str, Any] | None:
    try:
        return AlertIn.model_validate(alert.to_dict()).body()
    except ValidationError:
        return None


def test_a_plain_alert_takes_the_short_way_and_equals_the_schemas_body() -> None:
    alert = _alert()
    body = _plain_body(alert, {})
    assert body is not None
    assert body == _schema_body(alert)
    assert stored_bodies([alert], Quarantine()) == [body]


@pytest.mark.parametrize(
    ("changes", "stored_as"),
    [
        # NUL in the event: the schema shows it as U+2400; the short way leaves it to it.
        ({"event": {"message": "a\x00b"}}, {"message": "a\u2400b"}),
        # Tuples are lists once stored.
        ({"event": {"values": (1, 2)}}, {"values": [1, 2]}),
    ],
)
def test_what_the_schema_changes_goes_through_the_schema(
    changes: dict[str, Any], stored_as: dict[str, Any]
) -> None:
    alert = _alert(**changes)
    (body,) = stored_bodies([alert], Quarantine())
    assert body["event"] == stored_as
    assert body == _schema_body(alert)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"host": "h" * 256}, "alert: host: Value should have at most 255 items"),
        ({"host": "a\x00b"}, "alert: host: Value error, must not contain NUL characters"),
        ({"time": "yesterday"}, "alert: time: Value error, not an ISO 8601 time: 'yesterday'"),
        ({"event": {"x": "y" * MAX_EVENT_BYTES}}, "alert: event: Value error, event is"),
        ({"event": {"x": "\ud800"}}, "alert: event: Value error, event is not JSON"),
        ({"record": -1}, "alert: source.record: Input should be greater than or equal to 0"),
        ({"classification": {"kz_cert": ""}}, "alert: classification: Value error"),
    ],
)
def test_what_the_schema_refuses_is_quarantined_with_the_reason(
    changes: dict[str, Any], reason: str
) -> None:
    quarantine = Quarantine()
    good, bad = _alert(record=1), _alert(**changes)
    assert _plain_body(bad, {}) is None
    assert stored_bodies([good, bad], Quarantine()) == [_schema_body(good)]
    stored_bodies([bad], quarantine)
    (entry,) = quarantine.records
    assert entry.reason.startswith(reason), entry.reason


def test_a_rule_the_schema_refuses_refuses_its_alerts() -> None:
    rule = replace(RULE, level="severe")
    quarantine = Quarantine()
    assert stored_bodies([_alert(rule=rule), _alert(rule=rule, record=2)], quarantine) == []
    assert [e.record for e in quarantine.records] == [42, 2]


texts = st.text(st.characters(codec="utf-8") | st.sampled_from(["\x00", "\ud800", "\u2400"]))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


VALID_TIMES = st.sampled_from(
    ["2026-11-30T06:00:00Z", "2026-11-30 06:00", "2026-11-30T11:00+05:00"]
)


@given(
    host=st.none() | texts | st.just("h" * 255) | st.just("h" * 256),
    # Mostly valid times, so that the other fields decide.
    time=st.none() | VALID_TIMES | VALID_TIMES | texts,
    path=texts,
    record=st.integers(min_value=-(2**64), max_value=2**64),
    kind=texts,
    event=st.dictionaries(texts, json_values, max_size=5),
)
@example(host=None, time=None, path="p", record=0, kind="syslog", event={"k": float("nan")})
@example(host="h", time=None, path="p", record=2**63, kind="syslog", event={})
@example(host="h", time=None, path="p", record=0, kind="s" * 33, event={})
@example(host="h", time=None, path="p", record=0, kind="syslog", event={"k": "\\u0000"})
@example(host="a\x00b", time=None, path="p", record=0, kind="syslog", event={})
@example(host="h", time=None, path="a\x00b", record=0, kind="syslog", event={})
@example(host="h", time=None, path="p", record=0, kind="a\x00b", event={})
@example(host="h", time="2026-11-30\x00", path="p", record=0, kind="syslog", event={})
@example(host="h", time=None, path="p", record=0, kind="", event={})
def test_the_short_way_agrees_with_the_schema(
    host: str | None, time: str | None, path: str, record: int, kind: str, event: dict[str, Any]
) -> None:
    alert = _alert(host=host, time=time, path=path, record=record, format=kind, event=event)
    short = _plain_body(alert, {})
    expected = _schema_body(alert)
    if short is not None:
        assert expected is not None, "the short way vouched for an alert the schema refuses"
        assert _as_stored(short) == _as_stored(expected)
    stored = stored_bodies([alert], Quarantine())
    assert _as_stored(stored) == _as_stored([] if expected is None else [expected])


def _as_stored(value: Any) -> bytes:
    """As the store keeps it (JSON text): NaN, which no JSON holds, is null in both."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
