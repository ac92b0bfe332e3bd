"""The auditd format: records assembled into events, hex decoded, fields named as SigmaHQ's
``linux/auditd`` rules read them; the same through syslog forwarding; bad input quarantined.

The rule tests run the real SigmaHQ rules (``../shared/data/sigma``) through ``run_hunt``, the
path ``qorgan hunt`` takes, over hand-written attack records (``tests/data/auditd/``): every
attack event next to a harmless one, and the alerts of every event pinned.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qorgan.detection.alerts import Alert
from qorgan.detection.hunt import run_hunt
from qorgan.detection.loader import compile_texts, load_plan
from qorgan.telemetry import Quarantine
from qorgan.telemetry.formats import FORMATS, detect_format
from qorgan.telemetry.formats.auditd import AuditdFormat
from qorgan.telemetry.formats.linux_audit import TYPE_NAMES, AuditAssembler, parse_record
from qorgan.telemetry.formats.linux_syscalls import syscall_name
from qorgan.telemetry.formats.syslog import SyslogFormat

from .helpers import damaged_lines, read_bytes, read_corpus

DATA = Path(__file__).resolve().parents[2] / "data" / "auditd"
SAMPLES = sorted(DATA.glob("*.log"))

CHMOD = """\
type=SYSCALL msg=audit(1700000000.123:456): arch=c000003e syscall=59 success=yes exit=0 \
a0=55d5e0 a1=55d5f0 a2=55d600 a3=8 items=2 ppid=100 pid=101 auid=1000 uid=0 gid=0 euid=0 \
suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=1 comm="chmod" exe="/usr/bin/chmod" \
subj=unconfined key="perm_mod"
type=EXECVE msg=audit(1700000000.123:456): argc=3 a0="chmod" a1="777" a2=2F746D702F6D792066696C65
type=CWD msg=audit(1700000000.123:456): cwd="/root"
type=PATH msg=audit(1700000000.123:456): item=0 name="/usr/bin/chmod" inode=1 dev=fd:00 \
mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0
type=PATH msg=audit(1700000000.123:456): item=1 name="/lib64/ld-linux-x86-64.so.2" inode=2 \
dev=fd:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 \
cap_fver=0
type=PROCTITLE msg=audit(1700000000.123:456): proctitle=63686D6F6400373737002F746D702F6D792066696C65
type=EOE msg=audit(1700000000.123:456): \n"""


def read(text: str | bytes, fmt: SyslogFormat | None = None):
    data = text.encode() if isinstance(text, str) else text
    return read_bytes(fmt or AuditdFormat(year=2023), data, "audit.log")


def events_of(text: str | bytes) -> list[dict[str, Any]]:
    _, events, quarantine = read(text)
    assert quarantine.count == 0, [(r.record, r.reason) for r in quarantine.records]
    return events


def stamp(serial: int, sec: int = 1700000000, ms: int = 0) -> str:
    return f"msg=audit({sec}.{ms:03d}:{serial}):"


# -- one event, its fields ----------------------------------------------------------------------


def test_execve_event_is_one_event_with_decoded_fields() -> None:
    batches, events, quarantine = read(CHMOD)
    assert quarantine.count == 0
    assert batches[0].logsource == {"product": "linux", "service": "auditd"}
    assert batches[0].records == [1]
    assert batches[0].times == ["2023-11-14T22:13:20.123000Z"]
    assert batches[0].hosts == [None]
    (event,) = events
    assert event["type"] == ["SYSCALL", "EXECVE", "CWD", "PATH", "PROCTITLE"]
    assert (event["a0"], event["a1"], event["a2"]) == ("chmod", "777", "/tmp/my file")
    assert event["argc"] == "3"
    # The registers of execve are not the arguments: they keep other names.
    assert [event[f"syscall_a{i}"] for i in range(4)] == ["55d5e0", "55d5f0", "55d600", "8"]
    assert (event["syscall"], event["SYSCALL"], event["arch"], event["ARCH"]) == (
        "59",
        "execve",
        "c000003e",
        "x86_64",
    )
    assert event["name"] == ["/usr/bin/chmod", "/lib64/ld-linux-x86-64.so.2"]
    assert event["item"] == ["0", "1"]
    assert event["dev"] == "fd:00"  # equal in both PATH records: one value
    assert event["proctitle"] == "chmod 777 /tmp/my file"
    assert (event["cwd"], event["exe"], event["comm"], event["key"]) == (
        "/root",
        "/usr/bin/chmod",
        "chmod",
        "perm_mod",
    )
    assert (event["service"], event["serial"], event["timestamp"]) == (
        "auditd",
        456,
        "2023-11-14T22:13:20.123000Z",
    )
    assert "node" not in event and "EOE" not in event["type"]


def test_split_argument_over_two_records_is_joined_then_decoded() -> None:
    arg = "--post-file=/tmp/a b/" + "é" * 3
    hexed = arg.encode().hex().upper()
    cut = 21  # inside the two bytes of the first é: chunks are joined before decoding
    text = (
        f"type=SYSCALL {stamp(7)} arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 "
        f"items=0 ppid=1 pid=2 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 "
        f'tty=pts0 ses=1 comm="wget" exe="/usr/bin/wget" key=(null)\n'
        f'type=EXECVE {stamp(7)} argc=3 a0="wget" a1_len={len(arg.encode())} '
        f"a1[0]={hexed[: cut * 2]}\n"
        f'type=EXECVE {stamp(7)} a1[1]={hexed[cut * 2 :]} a2="http://203.0.113.7/"\n'
        f"type=EOE {stamp(7)} \n"
    )
    (event,) = events_of(text)
    assert event["type"] == ["SYSCALL", "EXECVE"]
    assert (event["a0"], event["a1"], event["a2"]) == ("wget", arg, "http://203.0.113.7/")
    assert "a1_len" not in event and "a1[0]" not in event


def test_user_space_msg_is_split_into_fields_and_hex_cmd_decoded() -> None:
    text = (
        f"type=USER_CMD {stamp(2230)} pid=27966 uid=1002 auid=4294967295 ses=4294967295 "
        "msg='cwd=\"/var/www\" cmd=636174202F6574632F736861646F77 terminal=pts/1 res=success'\n"
        f"type=SERVICE_STOP {stamp(2231)} pid=1 uid=0 auid=4294967295 ses=4294967295 "
        'msg=\'unit=ufw comm="systemd" exe="/lib/systemd/systemd" hostname=? addr=? '
        "terminal=? res=success'\n"
        f"type=USER_AVC {stamp(2232)} pid=1 uid=0 auid=4294967295 ses=4294967295 "
        'msg=\'avc:  received policyload notice (seqno=2)  exe="/usr/lib/systemd/systemd" '
        "sauid=0 hostname=? addr=? terminal=?'\n"
        f"type=USER_ERR {stamp(2233)} pid=5 uid=0 auid=0 ses=1 msg='Unknown'\n"
    )
    cmd, stop, avc, err = events_of(text)
    assert cmd["type"] == ["USER_CMD"]
    assert (cmd["cmd"], cmd["cwd"], cmd["terminal"], cmd["res"]) == (
        "cat /etc/shadow",
        "/var/www",
        "pts/1",
        "success",
    )
    assert "msg" not in cmd
    assert (stop["unit"], stop["exe"], stop["hostname"]) == ("ufw", "/lib/systemd/systemd", "?")
    assert avc["exe"] == "/usr/lib/systemd/systemd"
    assert avc["msg"] == "avc: received policyload notice (seqno=2)"
    assert err["msg"] == "Unknown"


def test_selinux_avc_sockaddr_key_list_and_reserved_names() -> None:
    text = (
        f'type=AVC {stamp(9)} avc:  denied  {{ read write }} for  pid=7 comm="nginx" '
        'name="shadow" dev="sda1" ino=5 scontext=system_u tcontext=system_u tclass=file '
        "permissive=0\n"
        f"type=SYSCALL {stamp(9)} arch=c000003e syscall=42 success=no exit=-13 a0=3 a1=7ffd "
        "a2=10 a3=0 items=0 ppid=1 pid=7 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 "
        'fsgid=0 tty=(none) ses=1 comm="nginx" exe="/usr/sbin/nginx" '
        "key=6E6574776F726B01657869667C74726169 \n"
        f"type=SOCKADDR {stamp(9)} saddr=02000FA1CB0071070000000000000000\n"
        f"type=EOE {stamp(9)} \n"
        f"type=SOCKADDR {stamp(10)} "
        "saddr=0A0001BB0000000020010DB800000000000000000000000100000000\n"
        f"type=SOCKADDR {stamp(11)} saddr=01002F72756E2F646F636B65722E736F636B00\n"
        f"type=USER_ACCT {stamp(12)} pid=1 uid=0 msg='op=x service=sshd type=remote res=ok'\n"
    )
    avc, inet6, local, user = events_of(text)
    assert avc["type"] == ["AVC", "SYSCALL", "SOCKADDR"]
    assert (avc["seresult"], avc["seperms"], avc["tclass"]) == ("denied", ["read", "write"], "file")
    assert avc["pid"] == "7" and avc["comm"] == "nginx"  # equal in AVC and SYSCALL: one value
    assert avc["key"] == ["network", "exif|trai"]  # several keys: hex joined by 0x01
    assert (avc["saddr_fam"], avc["laddr"], avc["lport"]) == ("inet", "203.0.113.7", "4001")
    assert (inet6["saddr_fam"], inet6["laddr"], inet6["lport"]) == ("inet6", "2001:db8::1", "443")
    assert (local["saddr_fam"], local["path"]) == ("local", "/run/docker.sock")
    # A record's own `service` and `type` do not overwrite the event's.
    assert (user["type"], user["service"]) == (["USER_ACCT"], "auditd")
    assert (user["msg_service"], user["msg_type"]) == ("sshd", "remote")


@pytest.mark.parametrize(
    ("arch", "number", "name", "arch_name"),
    [
        ("c000003e", "319", "memfd_create", "x86_64"),
        ("c000003e", "135", "personality", "x86_64"),
        ("40000003", "11", "execve", "i386"),
        ("40000003", "103", "syslog", "i386"),
        ("c00000b7", "221", "execve", "aarch64"),
        ("c00000b7", "279", "memfd_create", "aarch64"),
    ],
)
def test_syscall_names_per_architecture(arch: str, number: str, name: str, arch_name: str) -> None:
    record = parse_record(
        f"type=SYSCALL {stamp(1)} arch={arch} syscall={number} success=yes exit=0 a0=0 a1=0 "
        'a2=0 a3=0 items=0 ppid=1 pid=2 comm="x" exe="/x" key=(null)'
    )
    fields = dict(record.fields)
    assert (fields["SYSCALL"], fields["ARCH"], fields["syscall"]) == (name, arch_name, number)


def test_syscall_tables_hold_every_name_the_rules_use() -> None:
    # The numbers of x86_64's arch/x86/entry/syscalls/syscall_64.tbl.
    named = {
        "execve": 59,
        "execveat": 322,
        "memfd_create": 319,
        "personality": 135,
        "syslog": 103,
        "sysinfo": 99,
        "mknod": 133,
    }
    for name, number in named.items():
        assert syscall_name("c000003e", str(number)) == name
    assert syscall_name("c000003e", "99999") is None
    assert syscall_name("deadbeef", "59") is None


def test_interpreted_and_enriched_logs() -> None:
    text = (
        f"type=SYSCALL {stamp(1)} arch=x86_64 syscall=memfd_create success=yes exit=3 a0=1 "
        'a1=1 a2=0 a3=0 items=0 ppid=1 pid=2 auid=root uid=root comm="ecasound" '
        'exe="/usr/bin/ecasound" key=(null)\n'
        f"type=SYSCALL {stamp(2)} arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 "
        'a3=0 items=1 ppid=1 pid=2 auid=1000 uid=0 comm="id" exe="/usr/bin/id" key=(null)'
        '\x1dARCH=x86_64 SYSCALL=execve AUID="alice" UID="root"\n'
        f"type=SOCKADDR {stamp(2)} saddr=02000050C0000201000000000000000"
        "0\x1dSADDR={ saddr_fam=inet laddr=192.0.2.1 lport=80 }\n"
    )
    interpreted, enriched = events_of(text)
    assert (interpreted["syscall"], interpreted["SYSCALL"]) == ("memfd_create", "memfd_create")
    assert (enriched["SYSCALL"], enriched["ARCH"], enriched["AUID"]) == (
        "execve",
        "x86_64",
        "alice",
    )
    assert (enriched["saddr_fam"], enriched["laddr"], enriched["lport"]) == (
        "inet",
        "192.0.2.1",
        "80",
    )
    assert "SADDR" not in enriched


def test_type_numbers_follow_the_kernel_and_libaudit() -> None:
    assert TYPE_NAMES[1300] == "SYSCALL"
    assert TYPE_NAMES[1309] == "EXECVE"
    assert TYPE_NAMES[1320] == "EOE"
    assert TYPE_NAMES[1327] == "PROCTITLE"
    assert TYPE_NAMES[1400] == "AVC"
    assert TYPE_NAMES[1114] == "ADD_USER"
    assert TYPE_NAMES[1131] == "SERVICE_STOP"
    assert TYPE_NAMES[1124] == "USER_TTY"
    (event,) = events_of(f"type=UNKNOWN[1334] {stamp(5)} prog-id=12 op=LOAD\n")
    assert event["type"] == ["BPF"] and event["prog-id"] == "12"


# -- assembling events ------------------------------------------------------------------------


def test_interleaved_events_are_assembled_by_serial_in_order_of_their_first_record() -> None:
    text = (
        f'type=SYSCALL {stamp(1)} arch=c000003e syscall=257 items=1 comm="a" exe="/a" key=(null)\n'
        f'type=SYSCALL {stamp(2)} arch=c000003e syscall=257 items=1 comm="b" exe="/b" key=(null)\n'
        f'type=PATH {stamp(2)} item=0 name="/etc/b" nametype=NORMAL\n'
        f"type=EOE {stamp(2)} \n"
        f'type=PATH {stamp(1)} item=0 name="/etc/a" nametype=NORMAL\n'
        f"type=EOE {stamp(1)} \n"
    )
    batches, events, _ = read(text)
    assert [(e["comm"], e["name"]) for e in events] == [("a", "/etc/a"), ("b", "/etc/b")]
    assert batches[0].records == [1, 2]


def test_same_serial_on_two_nodes_or_two_times_are_two_events() -> None:
    text = (
        f"node=web01 type=USER_LOGIN {stamp(7)} pid=1 msg='op=login res=success'\n"
        f"node=web02 type=USER_LOGIN {stamp(7)} pid=1 msg='op=login res=success'\n"
        f"type=LOGIN {stamp(7)} pid=1 uid=0 old-auid=4294967295 auid=0\n"
        f"type=LOGIN {stamp(7, sec=1700000500)} pid=1 uid=0 old-auid=4294967295 auid=0\n"
    )
    batches, events, _ = read(text)
    assert [e.get("node") for e in events] == ["web01", "web02", None, None]
    assert batches[0].hosts == ["web01", "web02", None, None]
    assert events[2]["old-auid"] == "4294967295"


def test_event_without_eoe_closes_after_the_window() -> None:
    quarantine = Quarantine()
    assembler = AuditAssembler("x", quarantine)
    first = f'type=SYSCALL {stamp(1)} arch=c000003e syscall=1 comm="a" exe="/a" key=(null)'
    assert assembler.feed(first, first.encode(), 1) == []
    near = f"type=LOGIN {stamp(2, ms=500)} pid=1 auid=0"
    assert assembler.feed(near, near.encode(), 2) == []  # 0.5 s later: may still grow
    late = f"type=LOGIN {stamp(3, sec=1700000003)} pid=1 auid=0"
    done = assembler.feed(late, late.encode(), 3)  # 3 s later: both are complete
    assert [e[0]["serial"] for e in done] == [1, 2]
    straggler = f'type=PROCTITLE {stamp(1)} proctitle="a"'
    assert assembler.feed(straggler, straggler.encode(), 4) == []
    rest = assembler.finish()
    assert [(e[0]["serial"], e[0]["type"]) for e in rest] == [(3, ["LOGIN"]), (1, ["PROCTITLE"])]
    assert quarantine.count == 0


@pytest.mark.parametrize(
    ("times", "serials"),
    [
        ([1700000100, 1700000050, 1700000000], [10, 11, 12]),  # the clock set back
        ([1700000000, 1700000100, 1700000200], [9000, 1, 2]),  # a reboot: serials restart
        ([1700000000, 1700000000, 1700000000], [5, 100005, 200005]),  # logs joined end to end
    ],
)
def test_events_stay_whole_when_time_or_serials_go_back(
    times: list[int], serials: list[int]
) -> None:
    """An event is judged against its node's last record, not the newest one ever seen: a
    record that is earlier in time or serial than an old one must not split its own event."""
    text = ""
    for sec, serial in zip(times, serials, strict=True):
        text += (
            f'type=SYSCALL {stamp(serial, sec)} arch=c000003e syscall=2 comm="a" exe="/a" '
            "key=(null)\n"
            f'type=PATH {stamp(serial, sec)} item=0 name="/etc/x" nametype=NORMAL\n'
            f'type=PROCTITLE {stamp(serial, sec)} proctitle="a"\n'
            f"type=EOE {stamp(serial, sec)} \n"
        )
    events = events_of(text)
    assert [(e["serial"], e["type"]) for e in events] == [
        (serial, ["SYSCALL", "PATH", "PROCTITLE"]) for serial in serials
    ]


def test_events_close_after_many_later_serials() -> None:
    assembler = AuditAssembler("x", Quarantine(), window_serials=10)
    out = []
    for serial in range(1, 30):
        line = f"type=LOGIN {stamp(serial)} pid=1 auid=0"
        out += assembler.feed(line, line.encode(), serial)
    assert [e[0]["serial"] for e in out] == list(range(1, 19))


def test_open_events_are_bounded_in_number_and_bytes() -> None:
    assembler = AuditAssembler("x", Quarantine(), max_open=50, max_bytes=4000)
    emitted = 0
    for serial in range(1, 2001):
        line = f'type=SYSCALL {stamp(serial % 1000 + 1)} arch=c000003e syscall=1 comm="x" exe="/x"'
        emitted += len(assembler.feed(line, line.encode(), serial))
        assert len(assembler.queue) <= 50 and assembler.bytes <= 4000
    emitted += len(assembler.finish())
    assert emitted == 2000  # nothing is lost: a record of a closed event is an event


def test_user_space_records_are_events_at_once_and_stray_eoe_is_skipped() -> None:
    assembler = AuditAssembler("x", Quarantine())
    line = f"type=USER_START {stamp(1)} pid=1 uid=0 msg='op=PAM:session_open res=success'"
    (event,) = assembler.feed(line, line.encode(), 1)
    assert event[0]["op"] == "PAM:session_open"
    eoe = f"type=EOE {stamp(1)} "
    assert assembler.feed(eoe, eoe.encode(), 2) == []
    assert assembler.finish() == []


# -- syslog forwarding ------------------------------------------------------------------------


def wrap(text: str, style: str) -> str:
    """Audit lines as audisp / rsyslog / the kernel forward them to syslog."""
    out = []
    for i, line in enumerate(text.splitlines()):
        if style == "audispd":
            out.append(f"<14>Nov 14 22:13:{i % 60:02d} web01 audispd: {line}")
        elif style == "rfc5424":
            node = "" if line.startswith("node=") else "node=web01 "
            out.append(
                f"<190>1 2023-11-14T22:13:20.5Z relay audisp-syslog - - - {node}{line.rstrip()}"
            )
        else:  # rsyslog forwarding with an ISO time and a tag of its own
            out.append(f"2023-11-14T22:13:20+00:00 web01 audit-fwd: {line}")
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("style", ["audispd", "rfc5424", "tag"])
def test_records_forwarded_in_syslog_give_the_same_events(style: str) -> None:
    bare = events_of(CHMOD)
    data = wrap(CHMOD, style).encode()
    assert detect_format(data, "messages").name == "auditd"
    batches, forwarded, quarantine = read(data)
    assert quarantine.count == 0
    assert [{k: v for k, v in e.items() if k != "node"} for e in forwarded] == bare
    assert forwarded[0]["node"] == "web01"
    assert batches[0].hosts == ["web01"]


def test_syslog_format_reads_audit_records_among_other_lines() -> None:
    text = (
        "Nov 14 22:13:20 web01 sshd[900]: Accepted password for alice from 198.51.100.2 "
        "port 50122 ssh2\n"
        + wrap(CHMOD, "audispd")
        + "Nov 14 22:13:21 web01 kernel: [ 1234.5678] audit: type=1400 "
        'audit(1700000001.000:457): apparmor="DENIED" operation="open" profile="nginx" '
        'name="/etc/shadow" pid=7 comm="nginx" requested_mask="r" denied_mask="r" '
        "fsuid=33 ouid=0\n"
    )
    batches, events, quarantine = read(text, SyslogFormat(year=2023))
    assert quarantine.count == 0
    assert batches[0].logsource == {"product": "linux"}
    sshd, chmod, avc = events
    assert sshd["event_type"] == "accepted_password"
    assert chmod["type"] == ["SYSCALL", "EXECVE", "CWD", "PATH", "PROCTITLE"]
    assert avc["type"] == ["AVC"] and avc["apparmor"] == "DENIED" and avc["node"] == "web01"
    assert batches[0].records == [1, 2, 9]


def test_sniffing() -> None:
    assert detect_format(CHMOD.encode(), "audit.log").name == "auditd"
    plain = b"Nov 14 22:13:20 web01 sshd[900]: Connection closed by 198.51.100.2\n"
    mostly_syslog = plain * 6 + wrap(CHMOD, "audispd").encode()[:400]
    assert detect_format(mostly_syslog, "messages").name == "syslog"
    assert AuditdFormat.sniff(b'{"type": "SYSCALL", "msg": "audit(1.1:1)"}\n', "x") == 0
    assert FORMATS["auditd"] is AuditdFormat
    for key in ("type", "SYSCALL", "a0", "name", "proctitle", "key", "exe", "unit", "node"):
        assert key in AuditdFormat.schema


# -- bad input --------------------------------------------------------------------------------


def test_bad_records_are_quarantined_with_their_reason() -> None:
    good = f"type=LOGIN {stamp(1)} pid=1 uid=0 auid=0\n"
    bad = [
        (f'type=SYSCALL {stamp(2)} arch=c000003e syscall=59 comm="chm', "unterminated quoted"),
        (f'type=EXECVE {stamp(3)} argc=2 a0="ls" a1=2F746D7', "bad hex in EXECVE a1"),
        (f'type=EXECVE {stamp(3)} argc=2 a0="ls" a1[0]=ZZ', "bad hex in EXECVE a1[0]"),
        (f"type=PROCTITLE {stamp(4)} proctitle=6C73002", "bad hex in proctitle"),
        (f"type=PATH {stamp(5)} item=0 name=/etc/passwd nametype=NORMAL", "bad hex in name"),
        (f"type=LOGIN {stamp(6)} pid=1 \x00uid=0", "NUL byte"),
        ("type=LOGIN msg=audit(1700000000.000:7): pid=\xed\xa0\x80", "invalid UTF-8"),
        ("type=LOGIN msg=audit(999999999999.000:8): pid=1", "time out of range"),
        ("type=LOGIN pid=1 uid=0", "not an audit record"),
        ("node=x type=LOGIN msg=audit(17:9): pid=1", "not an audit record"),
    ]
    data = good.encode() + b"".join(_raw(line) + b"\n" for line, _ in bad)
    _, events, quarantine = read(data)
    assert [e["serial"] for e in events] == [1]
    reasons = [r.reason for r in quarantine.records]
    assert len(reasons) == len(bad)
    for (_, expected), reason in zip(bad, reasons, strict=True):
        assert reason.startswith("auditd: ") and expected in reason, (expected, reason)
    assert [r.record for r in quarantine.records] == list(range(2, 2 + len(bad)))


def _raw(line: str) -> bytes:
    """The line's bytes; \\xed\\xa0\\x80 (an encoded lone surrogate) kept as raw bytes."""
    return line.encode("latin-1") if "\xed" in line else line.encode()


def test_a_ten_megabyte_line_is_quarantined_and_reading_goes_on() -> None:
    huge = f"type=EXECVE {stamp(2)} argc=1 a0=" + "41" * (5 << 20) + "\n"
    data = f"type=LOGIN {stamp(1)} pid=1\n".encode() + huge.encode() + CHMOD.encode()
    _, events, quarantine = read(data)
    assert [e["serial"] for e in events] == [1, 456]
    assert [(r.record, r.reason) for r in quarantine.records] == [
        (2, "auditd: line longer than 4 MiB")
    ]


RECORD_LINES = [line.encode() for line in CHMOD.splitlines()] + [
    f"type=USER_CMD {stamp(9)} pid=1 msg='cwd=\"/\" cmd=6C73 res=success'".encode(),
    f"node=h type=SERVICE_STOP {stamp(10)} pid=1 msg='unit=ufw res=success'".encode(),
]


@settings(max_examples=300)
@given(st.lists(damaged_lines(RECORD_LINES, lambda b: b.replace(b"m", b"\xe9")), max_size=25))
def test_damaged_records_never_raise(lines: list[bytes]) -> None:
    data = b"\n".join(lines) + b"\n"
    for fmt in (AuditdFormat(), SyslogFormat()):
        _, events, quarantine = read(data, fmt)
        assert len(events) + quarantine.count <= max(len(lines), 1)
        for event in events:
            assert isinstance(event["type"], list) or "message" in event
        for record in quarantine.records:
            assert record.reason.split(":", 1)[0] in (fmt.name, "auditd")


# -- real logs --------------------------------------------------------------------------------

QORGAN = [sys.executable, "-c", "from qorgan.cli import app; app()"]
CORPUS = ["auditd/ait_2k_audit.log", "auditd/ait_russellmitchell_intranet_audit.log"]
LINUX_RULES = "sigma/rules/linux"


@pytest.mark.corpus
@pytest.mark.parametrize("name", CORPUS)
def test_ait_corpus_events_match_an_independent_count(
    shared_file: Callable[[str], Path], name: str
) -> None:
    path = shared_file(name)
    raw = path.read_bytes()
    events, quarantine = read_corpus(path, AuditdFormat())
    assert quarantine.count == 0
    # Independently: one event per distinct msg=audit(time:serial) of the raw text.
    stamps = re.findall(rb"msg=audit\((\d+\.\d+:\d+)\)", raw)
    assert len(events) == len(set(stamps)) > 1900
    assert [e["serial"] for e in events] == sorted(e["serial"] for e in events)
    records = Counter(re.findall(rb"^type=(\w+) ", raw, re.MULTILINE))
    in_events = Counter(t.encode() for e in events for t in e["type"])
    assert in_events == records  # every record type is in the event of its serial
    assert all(e["timestamp"].startswith("2022-01-") for e in events)
    (sudo,) = [e for e in events if e["type"] == ["USER_CMD"]]
    assert sudo["cmd"] == "cat /etc/shadow"  # hex in the raw log
    avc = [e for e in events if "AVC" in e["type"]]
    assert len(avc) == 4
    assert all(e["type"] == ["AVC", "SYSCALL", "PROCTITLE"] for e in avc)
    assert {e["proctitle"] for e in avc} == {
        "apparmor_parser -r -T -W /etc/apparmor.d/sbin.dhclient"
    }
    assert {e["SYSCALL"] for e in avc} == {"write"}


def hunt(paths: list[Path], rules: Path) -> tuple[list[Alert], Quarantine]:
    plan = load_plan([rules])
    assert not plan.failures, plan.failures[:3]
    alerts: list[Alert] = []
    quarantine = Quarantine()
    run_hunt(paths, plan, sink=alerts.extend, quarantine=quarantine)
    return alerts, quarantine


@pytest.mark.corpus
def test_no_sigmahq_linux_rule_fires_on_the_benign_ait_logs(
    shared_file: Callable[[str], Path],
) -> None:
    """All 210 SigmaHQ linux rules (auditd, builtin, process_creation...), not only the 53
    linux/auditd ones: the AIT servers' audit logs are cron, PAM, systemd and AppArmor
    reloads, and none of them fires. (The russellmitchell log holds a real step of the AIT
    attack, `sudo cat /etc/shadow` as USER_CMD, which no SigmaHQ auditd rule covers.)"""
    paths = [shared_file(name) for name in CORPUS]
    alerts, quarantine = hunt(paths, shared_file(LINUX_RULES))
    assert quarantine.count == 0
    assert alerts == []


#: The alerts of every hand-written sample event, by file and serial: SigmaHQ rule file names.
#: Odd serials are attacks, even ones their harmless neighbours; a neighbour's alert is listed
#: when the rule means to catch it too.
EXPECTED: dict[str, dict[int, set[str]]] = {
    "execve.log": {
        1001: {"lnx_auditd_chattr_immutable_removal"},
        1003: {"lnx_auditd_capabilities_discovery"},
        1005: {"lnx_auditd_data_exfil_wget"},
        1007: {"lnx_auditd_susp_cmds", "lnx_auditd_file_or_folder_permissions"},
        1008: {"lnx_auditd_file_or_folder_permissions"},  # any chmod, by design of the rule
        1009: {"lnx_auditd_clipboard_collection"},
        # cp /bin/sh: also the builtin keyword rule, on the command line in proctitle
        1011: {"lnx_auditd_masquerading_crond", "lnx_auditd_susp_cmds", "lnx_shell_susp_commands"},
        1013: {"lnx_auditd_hidden_files_directories"},
        1015: {"lnx_auditd_hidden_files_directories"},  # a hex-encoded argument
        1017: {"lnx_auditd_network_sniffing"},
        1019: {"lnx_auditd_steghide_extract_steganography"},
        1021: {"lnx_auditd_user_discovery"},
        1023: {"lnx_auditd_find_cred_in_files"},
        1025: {"lnx_auditd_disable_aslr_protection"},
        1027: {"lnx_auditd_coinminer"},
        1029: {"lnx_auditd_bpfdoor_port_redirect"},  # its keyword is found in proctitle
        1031: {"lnx_auditd_susp_histfile_operations"},
        1033: {"lnx_auditd_susp_service_reload_or_restart"},
        1035: {"lnx_auditd_modify_system_firewall"},
        1037: {"lnx_auditd_data_compressed"},
        1039: {"lnx_auditd_unzip_hidden_zip_files_steganography"},
        1041: {"lnx_auditd_binary_padding"},
        1043: {"lnx_auditd_password_policy_discovery"},
        1045: {"lnx_auditd_dd_delete_file"},
        1047: {"lnx_auditd_change_file_time_attr"},
        1049: {"lnx_auditd_hidden_zip_files_steganography"},
        1051: {"lnx_auditd_screencapture_import"},
        1053: {"lnx_auditd_system_info_discovery", "lnx_auditd_user_discovery"},
        1055: {"lnx_auditd_system_shutdown_reboot"},
        1057: {"lnx_auditd_clipboard_image_collection"},
        1059: {"lnx_auditd_steghide_embed_steganography"},
        1061: {"lnx_auditd_screencaputre_xwd"},
        1063: {"lnx_auditd_data_exfil_wget"},  # a 9 KB argument in hex chunks, two records
    },
    "syscall.log": {
        2001: {"lnx_auditd_disable_aslr_protection"},
        2003: {"lnx_auditd_clean_disable_dmesg_logs_via_syslog"},
        2005: {"lnx_auditd_web_rce"},
        2007: {"lnx_auditd_audio_capture"},
        2009: {"lnx_auditd_susp_special_file_creation_via_mknod_syscall"},
        2011: {"lnx_auditd_susp_discovery_sysinfo_syscall"},
        2013: {"lnx_auditd_load_module_insmod"},
        2015: {"lnx_auditd_susp_exe_folders"},
        2017: {"lnx_auditd_network_service_scanning"},
        2019: {"lnx_auditd_split_file_into_pieces"},
        2021: {"lnx_auditd_create_account"},
        2023: {"lnx_auditd_susp_c2_commands"},
    },
    "path.log": {
        3001: {"lnx_auditd_ld_so_preload_mod", "lnx_ldso_preload_injection"},
        3003: {"lnx_auditd_auditing_config_change"},
        3005: {"lnx_auditd_logging_config_change"},
        3007: {"lnx_auditd_systemd_service_creation"},
        # ~/.bashrc is also a path with "/." in it, which the hidden-binary rule flags
        3009: {
            "lnx_auditd_unix_shell_configuration_modification",
            "lnx_auditd_hidden_binary_execution",
        },
        3011: {"lnx_auditd_bpfdoor_file_accessed"},
        3013: {"lnx_auditd_magic_system_request_key"},
        3015: {"lnx_auditd_system_info_discovery", "lnx_auditd_system_info_discovery2"},
        3017: {"lnx_auditd_password_policy_discovery"},
        3019: {"lnx_auditd_keylogging_with_pam_d", "lnx_auditd_password_policy_discovery"},
        3021: {"lnx_auditd_hidden_binary_execution", "lnx_auditd_susp_exe_folders"},
    },
    "user.log": {
        4001: {"lnx_auditd_disable_system_firewall"},
        4003: {"lnx_auditd_keylogging_with_pam_d"},  # USER_TTY
        4005: {"lnx_auditd_create_account"},  # ADD_USER
        4007: {"lnx_auditd_keylogging_with_pam_d"},  # TTY
    },
}


def by_event(alerts: list[Alert]) -> dict[tuple[str, int], set[str]]:
    out: dict[tuple[str, int], set[str]] = defaultdict(set)
    for alert in alerts:
        out[(Path(alert.path).name, alert.event["serial"])].add(Path(alert.rule.path).stem)
    return dict(out)


@pytest.fixture(scope="module")
def linux_rules(shared_data: Path) -> Path:
    return shared_data / LINUX_RULES


@pytest.mark.corpus
def test_sigmahq_auditd_rules_on_attack_samples(linux_rules: Path) -> None:
    alerts, quarantine = hunt(SAMPLES, linux_rules)
    assert quarantine.count == 0
    expected = {(f, s): rules for f, events in EXPECTED.items() for s, rules in events.items()}
    assert by_event(alerts) == expected
    # Every one of SigmaHQ's linux/auditd rules is shown to fire on at least one sample.
    auditd_rules = {p.stem for p in (linux_rules / "auditd").rglob("*.yml")}
    fired = {rule for rules in expected.values() for rule in rules}
    assert len(auditd_rules) == 53
    assert auditd_rules <= fired
    # Each sample file holds as many events as serials, attacks and neighbours alike.
    for path in SAMPLES:
        serials = set(re.findall(r"msg=audit\(\d+\.\d+:(\d+)\)", path.read_text()))
        counted = {a.event["serial"] for a in alerts if Path(a.path) == path}
        assert counted <= {int(s) for s in serials}
        assert all(int(s) % 2 == 0 for s in serials - {str(c) for c in counted})


@pytest.mark.corpus
@pytest.mark.parametrize("style", ["audispd", "rfc5424", "tag"])
def test_attack_samples_forwarded_in_syslog_give_the_same_alerts(
    linux_rules: Path, tmp_path: Path, style: str
) -> None:
    wrapped = []
    for path in SAMPLES:
        target = tmp_path / path.name
        target.write_text(wrap(path.read_text(), style))
        wrapped.append(target)
    alerts, quarantine = hunt(wrapped, linux_rules)
    assert quarantine.count == 0
    expected = {(f, s): rules for f, events in EXPECTED.items() for s, rules in events.items()}
    assert by_event(alerts) == expected
    assert {a.host for a in alerts} == {"web01"}


RULE = """\
title: chmod 777 in audit records
id: 0b8f5f4e-8c1e-4a77-9a55-0f3f0e2c9d10
status: test
logsource: {product: linux, service: auditd}
detection:
  selection:
    type: EXECVE
    a0: chmod
    a1: 777
  condition: selection
level: high
"""


def test_auditd_rules_select_audit_events_only() -> None:
    from qorgan.detection.engine import Engine

    engine = Engine(compile_texts([RULE]))
    syslog_lookalike = {"program": "x", "service": "syslog", "type": "EXECVE", "a0": "chmod"}
    batch = read(CHMOD)[0][0]
    batch.append({**syslog_lookalike, "a1": "777"}, 99, None, None)
    assert [(r, rows.tolist()) for r, rows in engine.match(batch)] == [(0, [0])]


def test_qorgan_hunt_reads_an_audit_log(tmp_path: Path) -> None:
    rule = tmp_path / "rule.yml"
    rule.write_text(RULE)
    log = tmp_path / "audit.log"
    log.write_text(CHMOD + wrap(CHMOD.replace(":456)", ":457)"), "audispd"))
    out, quarantined = tmp_path / "alerts.jsonl", tmp_path / "q.jsonl"
    args = ["hunt", log, "--rules", rule, "-o", out, "--quarantine", quarantined, "--no-cache"]
    proc = subprocess.run(
        [*QORGAN, *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(a["source"]["record"], a["event"]["serial"]) for a in alerts] == [(1, 456), (8, 457)]
    assert alerts[0]["event"]["a2"] == "/tmp/my file"
    assert not quarantined.exists() or quarantined.read_text() == ""


def test_reading_never_holds_a_file_of_events(tmp_path: Path) -> None:
    """A long log streams: events leave in batches while the file is read."""
    lines = "".join(
        f"type=USER_START {stamp(n)} pid=1 msg='op=PAM:session_open res=success'\n"
        for n in range(1, 5001)
    )
    batches = list(AuditdFormat().read(io.BytesIO(lines.encode()), "x", Quarantine(), 1000))
    assert [len(b) for b in batches] == [1000] * 5
