from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qorgan.telemetry.formats import FORMATS, Format, detect_format
from qorgan.telemetry.formats.accesslog import AccessLogFormat, ApacheErrorFormat, w3c_name
from qorgan.telemetry.quarantine import Quarantine

from .helpers import damaged_lines, read_bytes, read_corpus, record_lines

IIS = "Command and Control/Tunna_rdp_tunnel_IIS.log"
WEBSHELL = "Command and Control/web_attack_and_isp_webshell_localhost_access_log.txt"


def read(text: str | bytes, fmt: Format | None = None, batch_size: int = 1000):
    data = text.encode() if isinstance(text, str) else text
    return read_bytes(fmt or AccessLogFormat(), data, "access.log", batch_size)


def test_combined_golden() -> None:
    line = (
        '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?a=1&b=%20 HTTP/1.0" '
        '200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"\n'
    )
    batches, events, quarantine = read(line)
    assert quarantine.count == 0
    assert events == [
        {
            "c-ip": "127.0.0.1",
            "c-username": "frank",
            "date": "2000-10-10",
            "time": "20:55:36",
            "cs-method": "GET",
            "cs-uri-stem": "/apache_pb.gif",
            "cs-uri-query": "a=1&b=%20",
            "cs-uri": "/apache_pb.gif?a=1&b=%20",
            "cs-version": "HTTP/1.0",
            "sc-status": 200,
            "sc-bytes": 2326,
            "cs-referer": "http://www.example.com/start.html",
            "cs-user-agent": "Mozilla/4.08 [en] (Win98; I ;Nav)",
        }
    ]
    assert batches[0].times == ["2000-10-10T20:55:36Z"]
    assert batches[0].hosts == [None]
    assert batches[0].logsource == {"category": "webserver"}


def test_common_golden_with_dash_and_quotes_in_request() -> None:
    line = (
        '192.168.105.83 - - [11/Jul/2018:09:32:27 +0300] "GET /WebID/IISWebAgentIF.dll?'
        'postdata="><script>foo</script> HTTP/1.1" 404 -\r\n'
    )
    _, (event,), _ = read(line)
    assert event == {
        "c-ip": "192.168.105.83",
        "c-username": None,
        "date": "2018-07-11",
        "time": "06:32:27",
        "cs-method": "GET",
        "cs-uri-stem": "/WebID/IISWebAgentIF.dll",
        "cs-uri-query": 'postdata="><script>foo</script>',
        "cs-uri": '/WebID/IISWebAgentIF.dll?postdata="><script>foo</script>',
        "cs-version": "HTTP/1.1",
        "sc-status": 404,
        "sc-bytes": None,
        "cs-referer": None,
        "cs-user-agent": None,
    }


def test_unsplittable_request_kept_raw() -> None:
    _, (event,), _ = read('10.0.0.1 - - [01/Jan/2024:00:00:00 +0000] "\x16\x03\x01" 400 0\n')
    assert event["cs-method"] is None
    assert event["request"] == "\x16\x03\x01"
    _, (event,), _ = read('10.0.0.1 - - [01/Jan/2024:00:00:00 +0000] "-" 408 -\n')
    assert event["request"] is None


def test_custom_suffix_kept_as_extra() -> None:
    line = (
        '10.0.0.1 - - [01/Jan/2024:00:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8" '
        "0.003 example.org\n"
    )
    _, (event,), _ = read(line)
    assert event["cs-user-agent"] == "curl/8"
    assert event["extra"] == "0.003 example.org"


W3C = (
    Path(__file__).resolve().parents[2] / "data" / "accesslog" / "u_ex_header_change.log"
).read_text()


def test_w3c_golden_with_header_change() -> None:
    batches, events, quarantine = read(W3C)
    assert events == [
        {
            "date": "2019-09-03",
            "time": "10:13:36",
            "s-ip": "10.0.2.15",
            "cs-method": "GET",
            "cs-uri-stem": "/erp/conn.aspx",
            "cs-uri-query": "proxy&port=3389",
            "s-port": 80,
            "cs-username": None,
            "c-ip": "10.0.2.17",
            "cs-user-agent": "Mozilla/5.0+(Windows+NT)",
            "cs-referer": None,
            "sc-status": 200,
            "sc-substatus": 0,
            "sc-win32-status": 0,
            "time-taken": 7,
            "cs-uri": "/erp/conn.aspx?proxy&port=3389",
        },
        {
            "date": "2019-09-03",
            "time": "11:00:00",
            "s-computername": "WEB01",
            "cs-host": "shop.example.kz",
            "cs-method": "POST",
            "cs-uri-stem": "/login.aspx",
            "cs-uri-query": None,
            "sc-status": 302,
            "sc-bytes": 512,
            "cs-cookie": "ASP.NET_SessionId=abc",
            "cs-uri": "/login.aspx",
        },
    ]
    assert batches[0].times == ["2019-09-03T10:13:36Z", "2019-09-03T11:00:00Z"]
    assert batches[0].hosts == [None, "WEB01"]
    assert batches[0].records == [5, 7]
    assert [(r.record, r.reason) for r in quarantine.records] == [
        (8, "accesslog: 6 values for 10 #Fields columns"),
        (9, "accesslog: bad W3C value: invalid literal for int() with base 10: 'abc'"),
    ]


def test_w3c_names() -> None:
    assert w3c_name("cs(User-Agent)") == "cs-user-agent"
    assert w3c_name("cs(Referer)") == "cs-referer"
    assert w3c_name("sc(Content-Type)") == "sc-content-type"
    assert w3c_name("cs-uri-stem") == "cs-uri-stem"


def test_malformed_lines_quarantined() -> None:
    text = 'not a log line\n\n1.2.3.4 - - [99/Foo/2024:00:00:00 +0000] "GET / HTTP/1.1" 200 1\n'
    _, events, quarantine = read(text)
    assert events == []
    assert [r.record for r in quarantine.records] == [1, 3]
    assert all(r.reason.startswith("accesslog: ") for r in quarantine.records)


def test_apache_error_golden() -> None:
    text = (
        "[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok /etc/httpd/conf/w.properties\n"
        "[Sun Dec 04 05:15:09 2005] [error] [client 222.166.160.184] Directory index forbidden\n"
        "[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 35708:tid 4328636416] "
        "[client 72.15.99.187:3389] AH00124: Request exceeded the limit\n"
        "junk\n"
    )
    batches, events, quarantine = read(text, ApacheErrorFormat())
    assert events == [
        {
            "timestamp": "2005-12-04T04:47:44Z",
            "level": "notice",
            "module": None,
            "pid": None,
            "client": None,
            "message": "workerEnv.init() ok /etc/httpd/conf/w.properties",
        },
        {
            "timestamp": "2005-12-04T05:15:09Z",
            "level": "error",
            "module": None,
            "pid": None,
            "client": "222.166.160.184",
            "message": "Directory index forbidden",
        },
        {
            "timestamp": "2000-10-11T14:32:52.123456Z",
            "level": "error",
            "module": "core",
            "pid": 35708,
            "client": "72.15.99.187:3389",
            "message": "AH00124: Request exceeded the limit",
        },
    ]
    assert batches[0].logsource == {"product": "apache"}
    assert [(r.record, r.reason) for r in quarantine.records] == [
        (4, "apache_error: not an error log line")
    ]


def test_schema_and_registration() -> None:
    import qorgan.telemetry.formats.accesslog as module

    assert module.__doc__
    assert FORMATS["accesslog"] is AccessLogFormat
    assert FORMATS["apache_error"] is ApacheErrorFormat
    for key in ("c-ip", "cs-method", "cs-uri-query", "sc-status", "cs-user-agent"):
        assert key in AccessLogFormat.schema
    assert set(ApacheErrorFormat.schema) >= {"timestamp", "level", "client", "message"}


def test_detect_inline() -> None:
    clf = b'1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1\n' * 2
    assert detect_format(clf, "access.log").name == "accesslog"
    assert detect_format(W3C.encode(), "u_ex190903.log").name == "accesslog"
    err = b"[Sun Dec 04 04:47:44 2005] [notice] x\n[Sun Dec 04 04:47:45 2005] [error] y\n"
    assert detect_format(err, "error_log").name == "apache_error"


def test_w3c_needs_its_directives_first() -> None:
    """A W3C log opens with its directives; a "#Fields: " line after JSON events does not make
    the file W3C (the events would be misread and the line dropped as a directive)."""
    iis = b"#Software: Microsoft Internet Information Services 10.0\n#Version: 1.0\n"
    assert AccessLogFormat.sniff(iis + b"#Fields: date time\n", "u_ex.log") == 90
    assert AccessLogFormat.sniff(b"\n#Date: 2019-09-03\n#Fields: date time\n", "x.log") == 90
    json_then_fields = b'{"EventID": 1}\n#Fields: \n{"EventID": 2}\n'
    assert AccessLogFormat.sniff(json_then_fields, "events.json") == 0
    assert detect_format(json_then_fields, "events.json").name != "accesslog"


# -- real corpora ------------------------------------------------------------------------------


def _read(path: Path, fmt: Format) -> tuple[list[dict[str, Any]], Quarantine, list[bytes]]:
    events, quarantine = read_corpus(path, fmt)
    return events, quarantine, record_lines(path.read_bytes())


@pytest.mark.corpus
def test_iis_corpus(shared_file: Callable[[str], Path]) -> None:
    path = shared_file(f"evtx-attack-samples/{IIS}")
    events, quarantine, lines = _read(path, AccessLogFormat())
    data_lines = [line for line in lines if not line.startswith(b"#")]
    assert len(events) + quarantine.count == len(data_lines)
    assert quarantine.count == 0
    tunna = sum(b"proxy&port=" in line for line in data_lines)
    assert tunna > 0
    assert sum((e["cs-uri-query"] or "").startswith("proxy&port=") for e in events) == tunna
    assert sum(e["cs-method"] == "POST" for e in events) == sum(
        b" POST " in line for line in data_lines
    )
    assert all(isinstance(e["sc-status"], int) for e in events)
    head = path.read_bytes()[: 64 * 1024]
    assert detect_format(head, str(path)).name == "accesslog"


@pytest.mark.corpus
def test_webshell_access_log_corpus(shared_file: Callable[[str], Path]) -> None:
    path = shared_file(f"evtx-attack-samples/{WEBSHELL}")
    events, quarantine, lines = _read(path, AccessLogFormat())
    assert len(events) + quarantine.count == len(lines)
    assert quarantine.count == 0
    for status in (200, 302, 401, 404):
        assert sum(e["sc-status"] == status for e in events) == sum(
            f'" {status} '.encode() in line for line in lines
        )
    jsp = sum(b".jsp" in line for line in lines)
    assert sum(".jsp" in (e["cs-uri"] or e.get("request") or "") for e in events) == jsp
    head = path.read_bytes()[: 64 * 1024]
    assert detect_format(head, str(path)).name == "accesslog"


@pytest.mark.corpus
def test_apache_error_corpus(shared_file: Callable[[str], Path]) -> None:
    path = shared_file("loghub/Apache/Apache_2k.log")
    events, quarantine, lines = _read(path, ApacheErrorFormat())
    assert len(events) + quarantine.count == len(lines)
    assert quarantine.count == 0
    assert sum(e["level"] == "error" for e in events) == sum(b"] [error] " in x for x in lines)
    assert sum(e["client"] is not None for e in events) == sum(b"[client " in x for x in lines)
    head = path.read_bytes()[: 64 * 1024]
    assert detect_format(head, str(path)).name == "apache_error"


# -- fuzz ----------------------------------------------------------------------------------------

GOOD = [
    b'1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a?b=c HTTP/1.0" 200 1',
    b'1.2.3.4 - u [10/Oct/2000:13:55:36 +0000] "POST /x HTTP/1.1" 500 - "-" "UA \\"q\\""',
]
W3C_GOOD = b"2019-09-03 10:13:36 10.0.2.15 GET /a b 80 - 10.0.2.17 UA - 200 0 0 7"
ERROR_GOOD = b"[Sun Dec 04 05:15:09 2005] [error] [client 1.2.3.4] Directory index forbidden"


def _latin1(line: bytes) -> bytes:
    return line.replace(b"/a", "/ünï".encode("latin-1"))


@settings(max_examples=100, deadline=None)
@given(st.lists(damaged_lines(GOOD, _latin1), max_size=20))
def test_fuzz_clf(lines: list[bytes]) -> None:
    data = b"\n".join(lines)
    _, events, quarantine = read(data, batch_size=3)
    assert len(events) + quarantine.count == len(record_lines(data, directives=True))


@settings(max_examples=100, deadline=None)
@given(st.lists(damaged_lines([W3C_GOOD], _latin1), max_size=20))
def test_fuzz_w3c(lines: list[bytes]) -> None:
    header = W3C.split("\n")[3].encode()
    data = header + b"\r\n" + b"\r\n".join(lines)
    _, events, quarantine = read(data, batch_size=3)
    assert len(events) + quarantine.count == len(record_lines(data, directives=True))


@settings(max_examples=100, deadline=None)
@given(st.lists(damaged_lines([ERROR_GOOD], _latin1), max_size=20))
def test_fuzz_apache_error(lines: list[bytes]) -> None:
    data = b"\n".join(lines)
    _, events, quarantine = read(data, ApacheErrorFormat(), batch_size=3)
    assert len(events) + quarantine.count == len(record_lines(data))
    assert all(e["timestamp"].endswith("Z") for e in events)
