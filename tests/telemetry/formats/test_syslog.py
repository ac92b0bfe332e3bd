from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qorgan.telemetry.formats import FORMATS, detect_format
from qorgan.telemetry.formats.syslog import BsdClock, SyslogFormat
from qorgan.telemetry.quarantine import Quarantine

from .helpers import damaged_lines, read_bytes, read_corpus, record_lines

HEADER_NONE = {"facility": None, "severity": None, "msgid": None, "structured_data": None}


def read(text: str | bytes, fmt: SyslogFormat | None = None, batch_size: int = 1000):
    data = text.encode() if isinstance(text, str) else text
    return read_bytes(fmt or SyslogFormat(year=2005), data, "mem.log", batch_size)


def one(line: str) -> dict[str, Any]:
    _, events, quarantine = read(line + "\n")
    assert quarantine.count == 0
    assert len(events) == 1
    return events[0]


def test_linux_pam_subsystem_auth_failure() -> None:
    line = (
        "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0 "
        "euid=0 tty=NODEVssh ruser= rhost=218.188.2.4  user=root"
    )
    assert one(line) == {
        "timestamp": "2005-06-14T15:16:01Z",
        "hostname": "combo",
        "program": "sshd",
        "pid": 19939,
        **HEADER_NONE,
        "message": "authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= "
        "rhost=218.188.2.4  user=root",
        "service": "sshd",
        "pam_module": "pam_unix",
        "pam_service": "sshd",
        "event_type": "auth_failure",
        "logname": None,
        "uid": 0,
        "euid": 0,
        "tty": "NODEVssh",
        "ruser": None,
        "rhost": "218.188.2.4",
        "user": "root",
    }


def test_an_old_pam_tag_as_rfc5424_app_name_reads_as_in_rfc3164() -> None:
    """rsyslog forwards ``sshd(pam_unix)[19939]:`` as APP-NAME ``sshd(pam_unix)``: the
    program and its PAM subsystem, read as the RFC 3164 line is (so PAM rules fire)."""
    message = (
        "authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= "
        "rhost=218.188.2.4  user=root"
    )
    bsd = one(f"<86>Jun 14 15:16:01 combo sshd(pam_unix)[19939]: {message}")
    iso = one(f"<86>1 2005-06-14T15:16:01Z combo sshd(pam_unix) 19939 - - {message}")
    assert iso == bsd
    assert (iso["program"], iso["service"], iso["pam_module"]) == ("sshd", "sshd", "pam_unix")


@pytest.mark.parametrize("app", ["sshd()", "sshd(pam_unix", "(pam_unix)", "sshd(a)(b)"])
def test_an_rfc5424_app_name_that_is_no_old_tag_stays_whole(app: str) -> None:
    event = one(f"<86>1 2005-06-14T15:16:01Z combo {app} 19939 - - check pass; user unknown")
    assert event["program"] == app
    assert "pam_module" not in event


def test_sshd_failed_password_invalid_user() -> None:
    line = (
        "<38>Dec 10 09:32:20 LabSZ sshd[24680]: Failed password for invalid user test9 "
        "from 52.80.34.196 port 36060 ssh2"
    )
    assert one(line) == {
        "timestamp": "2005-12-10T09:32:20Z",
        "hostname": "LabSZ",
        "program": "sshd",
        "pid": 24680,
        "facility": "auth",
        "severity": "info",
        "msgid": None,
        "structured_data": None,
        "message": "Failed password for invalid user test9 from 52.80.34.196 port 36060 ssh2",
        "service": "sshd",
        "event_type": "failed_password",
        "auth_method": "password",
        "user": "test9",
        "invalid_user": True,
        "src_ip": "52.80.34.196",
        "src_port": 36060,
    }


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "Accepted publickey for alice from 10.0.0.5 port 50022 ssh2: ED25519 SHA256:abc",
            {
                "event_type": "accepted_publickey",
                "auth_method": "publickey",
                "user": "alice",
                "invalid_user": False,
                "src_ip": "10.0.0.5",
                "src_port": 50022,
            },
        ),
        (
            "Accepted password for fztu from 119.137.62.142 port 49116 ssh2",
            {
                "event_type": "accepted_password",
                "auth_method": "password",
                "user": "fztu",
                "invalid_user": False,
                "src_ip": "119.137.62.142",
                "src_port": 49116,
            },
        ),
        (
            "Invalid user webmaster from 173.234.31.186",
            {
                "event_type": "invalid_user",
                "user": "webmaster",
                "invalid_user": True,
                "src_ip": "173.234.31.186",
                "preauth": False,
            },
        ),
        (
            "Received disconnect from 183.62.140.253: 11: Bye Bye [preauth]",
            {
                "event_type": "preauth_disconnect",
                "src_ip": "183.62.140.253",
                "reason": "Bye Bye",
                "preauth": True,
            },
        ),
        (
            "Received disconnect from 10.1.1.1 port 4022:11: disconnected by user",
            {
                "event_type": "disconnect",
                "src_ip": "10.1.1.1",
                "src_port": 4022,
                "reason": "disconnected by user",
                "preauth": False,
            },
        ),
        (
            "Connection closed by 212.47.254.145 [preauth]",
            {"event_type": "connection_closed", "src_ip": "212.47.254.145", "preauth": True},
        ),
        (
            "reverse mapping checking getaddrinfo for ns.example.com [173.234.31.186] failed "
            "- POSSIBLE BREAK-IN ATTEMPT!",
            {
                "event_type": "reverse_mapping_failed",
                "src_ip": "173.234.31.186",
                "rhost": "ns.example.com",
            },
        ),
        (
            "error: maximum authentication attempts exceeded for root from 1.2.3.4 port 22 "
            "ssh2 [preauth]",
            {
                "event_type": "too_many_auth_failures",
                "user": "root",
                "invalid_user": False,
                "src_ip": "1.2.3.4",
                "src_port": 22,
                "preauth": True,
            },
        ),
        (
            "message repeated 2 times: [ Failed password for root from 1.2.3.4 port 5 ssh2]",
            {
                "repeated": 2,
                "event_type": "failed_password",
                "auth_method": "password",
                "user": "root",
                "invalid_user": False,
                "src_ip": "1.2.3.4",
                "src_port": 5,
            },
        ),
        (
            "pam_unix(sshd:session): session opened for user fztu by (uid=0)",
            {
                "pam_module": "pam_unix",
                "pam_service": "sshd",
                "event_type": "session_opened",
                "user": "fztu",
                "logname": None,
                "uid": 0,
            },
        ),
        ("fatal: Write failed: Connection reset by peer [preauth]", {}),
    ],
)
def test_sshd_messages(message: str, expected: dict[str, Any]) -> None:
    event = one(f"Dec 10 06:55:46 LabSZ sshd[24200]: {message}")
    extra = {k: v for k, v in event.items() if k not in {*HEADER_NONE, "message"}}
    for key in ("timestamp", "hostname", "program", "pid", "service"):
        extra.pop(key)
    assert extra == expected
    assert event["message"] == message


def test_sudo_command() -> None:
    event = one(
        "Mar  3 10:00:01 web1 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; "
        "COMMAND=/bin/cat /etc/shadow"
    )
    assert event["service"] == "sudo"
    assert {k: event[k] for k in ("event_type", "user", "tty", "pwd", "target_user")} == {
        "event_type": "command",
        "user": "alice",
        "tty": "pts/0",
        "pwd": "/home/alice",
        "target_user": "root",
    }
    assert event["command"] == "/bin/cat /etc/shadow"


def test_sudo_refused() -> None:
    event = one(
        "Mar  3 10:00:01 web1 sudo: bob : 3 incorrect password attempts ; TTY=pts/1 ; "
        "PWD=/tmp ; USER=root ; COMMAND=/usr/bin/id"
    )
    assert event["event_type"] == "command_denied"
    assert event["error"] == "3 incorrect password attempts"
    assert event["command"] == "/usr/bin/id"


@pytest.mark.parametrize(
    ("message", "event_type"),
    [
        ("(to root) alice on pts/0", "su_success"),
        ("FAILED SU (to root) alice on pts/0", "su_failed"),
    ],
)
def test_su(message: str, event_type: str) -> None:
    event = one(f"Jul  1 09:00:00 combo su[100]: {message}")
    assert event["service"] == "auth"
    assert (event["event_type"], event["user"], event["target_user"], event["tty"]) == (
        event_type,
        "alice",
        "root",
        "pts/0",
    )


def test_su_pam_session() -> None:
    event = one(
        "Jun 15 04:06:18 combo su(pam_unix)[21416]: session opened for user cyrus by (uid=0)"
    )
    assert event["service"] == "auth"
    assert event["pam_module"] == "pam_unix"
    assert event["pam_service"] == "su"
    assert (event["event_type"], event["user"], event["uid"]) == ("session_opened", "cyrus", 0)


def test_kernel_ufw() -> None:
    event = one(
        "Feb  1 12:00:00 gw kernel: [ 1234.567890] [UFW BLOCK] IN=eth0 OUT= MAC=aa:bb "
        "SRC=203.0.113.9 DST=192.168.1.10 LEN=60 PROTO=TCP SPT=51515 DPT=22 WINDOW=29200 SYN"
    )
    assert event["service"] == "syslog"
    assert event["kernel_time"] == 1234.56789
    assert event["log_prefix"] == "UFW BLOCK"
    assert event["IN"] == "eth0"
    assert event["OUT"] is None
    assert (event["SRC"], event["DST"], event["PROTO"], event["SPT"], event["DPT"]) == (
        "203.0.113.9",
        "192.168.1.10",
        "TCP",
        "51515",
        "22",
    )


def test_rfc5424() -> None:
    line = (
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 "
        'iut="3" eventSource="Application" eventID="1011"] An application event log entry...'
    )
    batches, events, _ = read(line + "\n")
    assert events == [
        {
            "timestamp": "2003-10-11T22:14:15.003000Z",
            "hostname": "mymachine.example.com",
            "program": "evntslog",
            "pid": None,
            "facility": "local4",
            "severity": "notice",
            "msgid": "ID47",
            "structured_data": '[exampleSDID@32473 iut="3" eventSource="Application" '
            'eventID="1011"]',
            "message": "An application event log entry...",
            "service": "syslog",
        }
    ]
    assert batches[0].logsource == {"product": "linux"}
    assert batches[0].times == ["2003-10-11T22:14:15.003000Z"]
    assert batches[0].hosts == ["mymachine.example.com"]
    assert batches[0].records == [1]


def test_rfc5424_offset_converted_and_nil_values() -> None:
    (event,) = read("<34>1 2024-02-14T19:05:10+05:00 - sshd 77 - - hello\n")[1]
    assert event["timestamp"] == "2024-02-14T14:05:10Z"
    assert (event["hostname"], event["pid"], event["structured_data"]) == (None, 77, None)
    assert (event["facility"], event["severity"]) == ("auth", "crit")


def test_rsyslog_iso_timestamp_header() -> None:
    event = one(
        "2024-03-01T10:00:00.5+06:00 host1 CRON[42]: (root) CMD (run-parts /etc/cron.hourly)"
    )
    assert event["timestamp"] == "2024-03-01T04:00:00.500000Z"
    assert (event["program"], event["service"]) == ("CRON", "cron")


def test_unparsed_message_kept_and_tagless_line() -> None:
    event = one("Jul 27 14:41:57 combo syslogd 1.4.1: restart.")
    assert (event["program"], event["message"], event["service"]) == (
        None,
        "syslogd 1.4.1: restart.",
        "syslog",
    )
    assert "event_type" not in event


def test_timezone_option() -> None:
    from zoneinfo import ZoneInfo

    fmt = SyslogFormat(year=2024, tz=ZoneInfo("Asia/Almaty"))
    (event,) = read("Mar  1 10:00:00 h prog: x\n", fmt)[1]
    assert event["timestamp"] == "2024-03-01T05:00:00Z"


def test_year_inferred_from_reference_with_new_year_rollover() -> None:
    clock = BsdClock(datetime(2024, 1, 5, 12, 0, tzinfo=UTC))
    assert clock("Jan", "5", "10:00:00", None) == "2024-01-05T10:00:00Z"
    assert clock("Dec", "31", "23:59:59", None) == "2023-12-31T23:59:59Z"
    assert clock("Feb", "30", "00:00:00", None) is None


def test_year_from_file_mtime(tmp_path: Path) -> None:
    path = tmp_path / "auth.log"
    path.write_bytes(b"Jan  2 03:04:05 h sshd[1]: x\n")
    stamp = datetime(2021, 6, 1, tzinfo=UTC).timestamp()
    import os

    os.utime(path, (stamp, stamp))
    with path.open("rb") as stream:
        (batch,) = SyslogFormat().read(stream, str(path), Quarantine())
    assert batch.times == ["2021-01-02T03:04:05Z"]


def test_bad_lines_quarantined_and_batches_bounded() -> None:
    text = "garbage line\n\nJun 14 15:16:01 combo x: a\n" * 3 + "Feb 30 10:00:00 h x: bad date\n"
    batches, events, quarantine = read(text, batch_size=2)
    assert [len(b) for b in batches] == [2, 1]
    assert len(events) == 3
    assert quarantine.count == 4
    assert {r.reason for r in quarantine.records} == {"syslog: no timestamp/header"}
    assert [r.record for r in quarantine.records] == [1, 4, 7, 10]
    assert batches[0].records == [3, 6]


def test_schema_and_registration() -> None:
    assert FORMATS["syslog"] is SyslogFormat
    assert SyslogFormat.__module__ and SyslogFormat.description
    import qorgan.telemetry.formats.syslog as module

    assert module.__doc__
    for key in ("timestamp", "hostname", "program", "pid", "service", "event_type", "src_ip"):
        assert key in SyslogFormat.schema


def test_detect() -> None:
    head = b"Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown\n" * 3
    assert detect_format(head, "messages").name == "syslog"
    assert detect_format(b"<165>1 2003-10-11T22:14:15.003Z h app - - - m\n", "x").name == "syslog"
    assert SyslogFormat.sniff(b'{"a": 1}\n', "x.json") == 0


# -- real corpora ------------------------------------------------------------------------------


def _read_file(path: Path) -> tuple[list[dict[str, Any]], Quarantine, list[str]]:
    events, quarantine = read_corpus(path, SyslogFormat())
    lines = [line for line in path.read_text(errors="replace").split("\n") if line.strip()]
    return events, quarantine, lines


@pytest.mark.corpus
def test_openssh_corpus(shared_file: Callable[[str], Path]) -> None:
    path = shared_file("loghub/OpenSSH/OpenSSH_2k.log")
    events, quarantine, lines = _read_file(path)
    assert len(events) + quarantine.count == len(lines)
    assert quarantine.count == 0

    def count(event_type: str) -> int:
        return sum(1 for e in events if e.get("event_type") == event_type)

    assert count("failed_password") == sum("Failed password" in line for line in lines)
    assert count("invalid_user") == sum("]: Invalid user " in line for line in lines)
    assert count("reverse_mapping_failed") == sum(
        "reverse mapping checking" in line for line in lines
    )
    assert count("auth_failure") == sum(
        "authentication failure;" in line and "more authentication" not in line for line in lines
    )
    assert count("accepted_password") == sum("Accepted password" in line for line in lines)
    failed = [e for e in events if e.get("event_type") == "failed_password"]
    assert all(e["src_ip"] and isinstance(e["src_port"], int) for e in failed)
    assert sum(e["invalid_user"] for e in failed) == sum(
        "Failed password for invalid user" in line for line in lines
    )
    assert {e["service"] for e in events} == {"sshd"}
    assert all(e["timestamp"].endswith("Z") for e in events)


@pytest.mark.corpus
def test_linux_corpus(shared_file: Callable[[str], Path]) -> None:
    path = shared_file("loghub/Linux/Linux_2k.log")
    events, quarantine, lines = _read_file(path)
    assert len(events) + quarantine.count == len(lines)
    assert quarantine.count == 0
    assert sum(e.get("event_type") == "auth_failure" for e in events) == sum(
        "authentication failure;" in line for line in lines
    )
    assert sum(e.get("event_type") == "session_opened" for e in events) == sum(
        "session opened" in line for line in lines
    )
    assert sum(e["program"] == "kernel" for e in events) == sum(
        " kernel: " in line for line in lines
    )
    su = [e for e in events if e["program"] == "su"]
    assert su and {e["service"] for e in su} == {"auth"}
    assert {e["hostname"] for e in events} == {"combo"}


@pytest.mark.corpus
def test_detect_corpus(shared_file: Callable[[str], Path]) -> None:
    for relative in ("loghub/OpenSSH/OpenSSH_2k.log", "loghub/Linux/Linux_2k.log"):
        head = shared_file(relative).read_bytes()[: 64 * 1024]
        assert detect_format(head, relative).name == "syslog"


# -- fuzz ----------------------------------------------------------------------------------------

GOOD = [
    b"Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown",
    b"Dec 10 09:32:20 LabSZ sshd[24680]: Failed password for root from 1.2.3.4 port 1 ssh2",
    b'<165>1 2003-10-11T22:14:15.003Z host app - ID47 [a b="c"] msg',
    b"Feb  1 12:00:00 gw kernel: [ 1.5] IN=eth0 OUT= SRC=1.1.1.1 DST=2.2.2.2",
    b"Mar  3 10:00:01 web1 sudo: a : TTY=x ; PWD=/ ; USER=root ; COMMAND=/bin/ls",
]


def _latin1(_: bytes) -> bytes:
    return "Jün 14 15:16:01 hôst prög: ünïcode".encode("latin-1")


@settings(max_examples=100, deadline=None)
@given(st.lists(damaged_lines(GOOD, _latin1), max_size=20), st.sampled_from([b"\n", b"\r\n"]))
def test_fuzz_every_line_accounted_for(lines: list[bytes], eol: bytes) -> None:
    data = eol.join(lines) + eol
    _, events, quarantine = read(data, batch_size=3)
    assert len(events) + quarantine.count == len(record_lines(data))
    for event in events:
        assert event["timestamp"] is None or event["timestamp"].endswith("Z")
