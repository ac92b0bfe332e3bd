from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from qorgan.telemetry.formats import FORMATS, detect_format
from qorgan.telemetry.formats.cef import CefFormat, cef_time, parse_extension

from .helpers import damaged_lines, read_bytes, record_lines

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "cef" / "sample.cef"


def read(data: bytes, batch_size: int = 1000):
    return read_bytes(CefFormat(year=2024), data, "x.cef", batch_size)


def header(version: str, vendor: str, product: str, dversion: str, sid: str, name: str, sev: str):
    return {
        "cef_version": version,
        "device_vendor": vendor,
        "device_product": product,
        "device_version": dversion,
        "signature_id": sid,
        "name": name,
        "severity": sev,
    }


def test_sample_file_golden() -> None:
    batches, events, quarantine = read(SAMPLE.read_bytes())
    assert events == [
        {
            "src": "10.0.0.1",
            "dst": "2.1.2.2",
            "spt": "1232",
            **header(
                "0", "Security", "threatmanager", "1.0", "100", "worm successfully stopped", "10"
            ),
        },
        {
            "src": "10.0.0.1",
            "act": "blocked a =",
            "dst": "1.1.1.1",
            **header(
                "0", "Security", "threatmanager", "1.0", "100", "detected a | in message", "10"
            ),
        },
        {
            "rt": "Feb 14 2024 19:04:54 GMT",
            "dvchost": "fw01",
            "src": "192.168.1.20",
            "dst": "203.0.113.7",
            "spt": "50123",
            "dpt": "443",
            "proto": "TCP",
            "act": "block-url",
            "request": "http://bad.example/x?a=1",
            "cs1Label": "Rule",
            "cs1": "Block bad sites",
            "suser": "corp\\alice",
            **header("0", "Palo Alto Networks", "PAN-OS", "10.1.0", "THREAT", "url", "3"),
        },
        {
            "rt": "1707937494000",
            "dvchost": "WS01.corp.local",
            "suser": "administrator",
            "src": "198.51.100.23",
            "msg": "Unknown user name or bad password.\nAttempt 3 of 5",
            "cn1Label": "LogonType",
            "cn1": "3",
            **header(
                "0",
                "Microsoft",
                "Microsoft Windows",
                "Windows 10",
                "Microsoft-Windows-Security-Auditing:4625",
                "An account failed to log on.",
                "Low",
            ),
        },
        {
            "end": "1707937500123",
            "src": "10.1.1.5",
            "dst": "8.8.8.8",
            "spt": "53211",
            "dpt": "53",
            "proto": "17",
            "act": "close",
            "deviceDirection": "1",
            "in": "98",
            "out": "170",
            **header(
                "1", "Fortinet", "FortiGate", "7.2", "0000000013", "traffic:forward close", "Medium"
            ),
        },
        {
            "src": "10.0.0.9",
            "dst": "10.0.0.53",
            "spt": "40001",
            "dpt": "53",
            "proto": "UDP",
            "filePath": "C:\\Program Files\\x.exe",
            **header(
                "0",
                "Suricata",
                "Suricata",
                "7.0",
                "2027865",
                "ET POLICY Observed DNS Query to .top TLD",
                "5",
            ),
        },
    ]
    (batch,) = batches
    assert batch.logsource == {"product": "cef"}
    assert batch.times == [
        None,
        "2024-09-19T08:26:10Z",
        "2024-02-14T19:04:54Z",
        "2024-02-14T19:04:54Z",
        "2024-02-14T19:05:00.123000Z",
        "2024-02-14T14:05:10.120000Z",
    ]
    assert batch.hosts == [None, "host", "fw01", "WS01.corp.local", None, "sensor01"]
    assert batch.records == [1, 2, 3, 4, 5, 6]
    assert [(r.record, r.reason) for r in quarantine.records] == [
        (7, "cef: no CEF header"),
        (8, "cef: malformed CEF header"),
    ]


def test_extension_edge_cases() -> None:
    out: dict[str, str] = {}
    parse_extension(r"msg=a b c=d\=e path=C:\\dir\\f x cs1=line1\nline2 ", out)
    assert out == {"msg": "a b", "c": "d=e", "path": "C:\\dir\\f x", "cs1": "line1\nline2"}
    out = {}
    parse_extension("", out)
    assert out == {}
    out = {}
    parse_extension("free text before src=1.2.3.4", out)
    assert out == {"cef_extension_prefix": "free text before", "src": "1.2.3.4"}


def test_cef_time() -> None:
    assert cef_time("1707937494000", 2024) == "2024-02-14T19:04:54Z"
    assert cef_time("1707937494", 2024) == "2024-02-14T19:04:54Z"
    assert cef_time("Feb 14 2024 19:04:54.250", 2024) == "2024-02-14T19:04:54.250000Z"
    assert cef_time("Feb 14 19:04:54 +05:00", 2023) == "2023-02-14T14:04:54Z"
    assert cef_time("yesterday", 2024) is None
    assert cef_time("Feb 30 2024 00:00:00", 2024) is None
    assert cef_time("Fab 14 2024 19:04:54 GMT", 2024) is None
    assert cef_time(None, 2024) is None


def test_batches_bounded() -> None:
    data = b"CEF:0|a|b|c|d|e|1|src=1.1.1.1\n" * 5
    batches, _, _ = read(data, batch_size=2)
    assert [len(b) for b in batches] == [2, 2, 1]


def test_schema_registration_and_detect() -> None:
    import qorgan.telemetry.formats.cef as module

    assert module.__doc__
    assert FORMATS["cef"] is CefFormat
    assert {"cef_version", "device_vendor", "signature_id", "severity"} <= set(CefFormat.schema)
    head = SAMPLE.read_bytes()
    assert detect_format(head, str(SAMPLE)).name == "cef"
    syslog_cef = b"<134>Feb 14 19:04:54 fw01 CEF:0|PAN|PAN-OS|10|THREAT|url|3|src=1.2.3.4\n" * 3
    assert detect_format(syslog_cef, "fw.log").name == "cef"
    plain_syslog = b"Feb 14 19:04:54 fw01 sshd[1]: Accepted password for a from 1.1.1.1 port 1\n"
    assert detect_format(plain_syslog, "auth.log").name == "syslog"


# -- fuzz ----------------------------------------------------------------------------------------

GOOD = SAMPLE.read_bytes().split(b"\n")[:6]


def _latin1(line: bytes) -> bytes:
    return line.replace(b"Security", "Sécurité".encode("latin-1"))


@settings(max_examples=100, deadline=None)
@given(st.lists(damaged_lines(GOOD, _latin1), max_size=20))
def test_fuzz_every_line_accounted_for(lines: list[bytes]) -> None:
    data = b"\n".join(lines)
    batches, events, quarantine = read(data, batch_size=4)
    assert len(events) + quarantine.count == len(record_lines(data))
    assert all(t is None or t.endswith("Z") for b in batches for t in b.times)
