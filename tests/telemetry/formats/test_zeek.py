from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qorgan.telemetry.formats import FORMATS, detect_format
from qorgan.telemetry.formats.json import JsonFormat
from qorgan.telemetry.formats.zeek import ZeekFormat, log_type_from_path
from qorgan.telemetry.quarantine import Quarantine
from qorgan.telemetry.sources import read_file

from .helpers import damaged_lines, read_bytes, record_lines

DATA = Path(__file__).resolve().parents[2] / "data" / "zeek"


def read(data: bytes, path: str = "conn.log", batch_size: int = 1000):
    return read_bytes(ZeekFormat(), data, path, batch_size)


def test_tsv_golden() -> None:
    batches, events, quarantine = read((DATA / "dns.log").read_bytes(), "whatever.log")
    assert events == [
        {
            "ts": 1546300800.123456,
            "uid": "CAbc1",
            "id.orig_h": "10.0.0.5",
            "id.orig_p": 53211,
            "id.resp_h": "10.0.0.53",
            "id.resp_p": 53,
            "proto": "udp",
            "trans_id": 4242,
            "rtt": 0.001,
            "query": "example.com",
            "qtype_name": "A",
            "rcode": 0,
            "AA": False,
            "answers": ["93.184.216.34", "93.184.216.35"],
            "TTLs": [300.0, 300.0],
            "rejected": False,
        },
        {
            "ts": 1546300801.0,
            "uid": "CAbc2",
            "id.orig_h": "10.0.0.5",
            "id.orig_p": 53212,
            "id.resp_h": "10.0.0.53",
            "id.resp_p": 53,
            "proto": "udp",
            "trans_id": 4243,
            "rtt": None,
            "query": "evil.top",
            "qtype_name": "TXT",
            "rcode": None,
            "AA": True,
            "answers": [],
            "TTLs": [],
            "rejected": False,
        },
    ]
    (batch,) = batches
    assert batch.logsource == {"product": "zeek", "service": "dns"}
    assert batch.times == ["2019-01-01T00:00:00.123456Z", "2019-01-01T00:00:01Z"]
    assert batch.hosts == [None, None]
    assert batch.records == [9, 10]
    assert [(r.record, r.reason) for r in quarantine.records] == [
        (11, "zeek: bad value for id.orig_p: 'notaport'"),
        (12, "zeek: 3 values for 16 #fields columns"),
    ]


def test_json_golden_epoch_ts_and_nested_objects() -> None:
    lines = [
        {"ts": 1591367999.305988, "uid": "C1", "id.orig_h": "192.168.4.76", "id.resp_p": 53,
         "query": "example.org", "answers": ["1.2.3.4"], "AA": False},
        {"ts": 1591368000.5, "uid": "C2", "id": {"orig_h": "10.0.0.1", "resp_p": 80}},
    ]  # fmt: skip
    data = b"".join(orjson.dumps(x) + b"\n" for x in lines) + b"not json\n[1, 2]\n"
    batches, events, quarantine = read(data, "/logs/dns.09:00:00-10:00:00.log.gz")
    assert events == [
        lines[0],
        {"ts": 1591368000.5, "uid": "C2", "id.orig_h": "10.0.0.1", "id.resp_p": 80},
    ]
    assert batches[0].logsource == {"product": "zeek", "service": "dns"}
    assert batches[0].times == ["2020-06-05T14:39:59.305988Z", "2020-06-05T14:40:00.500000Z"]
    reasons = [r.reason for r in quarantine.records]
    assert reasons[0].startswith("zeek: invalid JSON")
    assert reasons[1] == "zeek: expected a JSON object, got list"


def test_json_iso_ts_and_path_key_splits_batches() -> None:
    data = (
        b'{"_path":"dns","ts":"2018-03-24T17:15:20.865716Z","uid":"a"}\n'
        b'{"_path":"conn","ts":"2018-03-24T18:15:20+01:00","uid":"b"}\n'
        b'{"_path":"conn","ts":"2018-03-24T17:15:22Z","uid":"c"}\n'
    )
    batches, events, _ = read(data, "mixed.json")
    assert [(b.logsource["service"], len(b)) for b in batches] == [("dns", 1), ("conn", 2)]
    assert [t for b in batches for t in b.times] == [
        "2018-03-24T17:15:20.865716Z",
        "2018-03-24T17:15:20Z",
        "2018-03-24T17:15:22Z",
    ]
    assert events[0]["ts"] == "2018-03-24T17:15:20.865716Z"


def test_batches_bounded() -> None:
    data = b'{"ts": 1.0, "uid": "x"}\n' * 7
    batches, _, _ = read(data, "conn.json", batch_size=3)
    assert [len(b) for b in batches] == [3, 3, 1]


def test_log_type_from_path() -> None:
    assert log_type_from_path("/x/dns.json.gz") == "dns"
    assert log_type_from_path("dns.09:00:00-10:00:00.log.gz") == "dns"
    assert log_type_from_path("conn.log") == "conn"


def test_sniff_beats_json_only_for_zeek() -> None:
    zeek = b'{"ts":1.5,"uid":"C1","id.orig_h":"1.2.3.4"}\n'
    plain = b'{"ts":1.5,"user":"alice","action":"login"}\n'
    assert ZeekFormat.sniff(zeek, "x.json") > JsonFormat.sniff(zeek, "x.json")
    assert detect_format(zeek, "x.json").name == "zeek"
    assert detect_format(plain, "x.json").name == "json"
    assert detect_format(b'{"a": 1}\n{"b": 2}\n', "x.json").name == "json"
    assert detect_format(b'{"_path":"loaded_scripts","name":"x"}\n', "x").name == "zeek"
    assert detect_format((DATA / "dns.log").read_bytes(), "dns.log").name == "zeek"


def test_schema_and_registration() -> None:
    import qorgan.telemetry.formats.zeek as module

    assert module.__doc__
    assert FORMATS["zeek"] is ZeekFormat
    assert "ts" in ZeekFormat.schema


def test_read_through_sources(tmp_path: Path) -> None:
    path = tmp_path / "dns.json"
    path.write_bytes(b'{"ts":1.0,"uid":"C","id.orig_h":"1.1.1.1","query":"a"}\n')
    quarantine = Quarantine()
    (batch,) = read_file(path, quarantine)
    assert batch.format == "zeek"
    assert batch.logsource == {"product": "zeek", "service": "dns"}
    assert batch.events[0]["query"] == "a"


# -- real corpus ---------------------------------------------------------------------------------


@pytest.mark.corpus
def test_wrccdc_corpus(shared_file: Callable[[str], Path]) -> None:
    folder = shared_file("zeek-wrccdc")
    files = sorted(folder.glob("*.json.gz"))
    assert files
    for path in files:
        log_type = path.name.split(".")[0]
        with gzip.open(path, "rb") as stream:
            lines = [line for line in stream if line.strip()]
        quarantine = Quarantine()
        with gzip.open(path, "rb") as stream:
            head = stream.peek(64 * 1024)[: 64 * 1024]
            assert detect_format(head, str(path)).name == "zeek", path.name
            batches = list(ZeekFormat().read(stream, str(path), quarantine, 10_000))
        events = [e for b in batches for e in b.events]
        assert len(events) + quarantine.count == len(lines), path.name
        assert quarantine.count == 0, path.name
        assert {b.logsource["service"] for b in batches} == {log_type}
        assert all(t is None or t.endswith("Z") for b in batches for t in b.times)
        if log_type == "dns":
            queried = sum(b'"query":' in line for line in lines)
            assert sum("query" in e for e in events) == queried
            assert all(isinstance(e["id.resp_p"], int) for e in events)
            assert sum(isinstance(e.get("answers"), list) for e in events) == sum(
                b'"answers":[' in line for line in lines
            )


# -- fuzz ----------------------------------------------------------------------------------------

TSV_HEADER = (DATA / "dns.log").read_bytes().split(b"\n")[:8]
TSV_ROW = (DATA / "dns.log").read_bytes().split(b"\n")[8]
JSON_ROW = b'{"ts":1.5,"uid":"C1","id.orig_h":"1.2.3.4","answers":["a","b"]}'


def _latin1(line: bytes) -> bytes:
    return line.replace(b"C", "Ç".encode("latin-1"))


@settings(max_examples=100, deadline=None)
@given(st.lists(damaged_lines([TSV_ROW], _latin1), max_size=20))
def test_fuzz_tsv(lines: list[bytes]) -> None:
    data = b"\n".join([*TSV_HEADER, *lines])
    _, events, quarantine = read(data)
    assert len(events) + quarantine.count == len(record_lines(data, directives=True))


@settings(max_examples=100, deadline=None)
@given(st.lists(damaged_lines([JSON_ROW], _latin1), max_size=20))
def test_fuzz_json(lines: list[bytes]) -> None:
    data = b"\n".join(lines)
    batches, events, quarantine = read(data, "conn.json")
    assert len(events) + quarantine.count == len(record_lines(data, directives=True))
    assert all(t is None or t.endswith("Z") for b in batches for t in b.times)
