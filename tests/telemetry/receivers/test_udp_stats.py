"""The kernel's UDP counters, read from /proc: real ones, a sample, and nothing at all."""

from __future__ import annotations

import socket
from pathlib import Path

from qorgan.telemetry.receivers.udp_stats import udp_counters

SNMP = """\
Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 123
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 1000 2 37 900 35 0 2 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 0 0 0 0 0 0 0 0 0
"""  # noqa: E501
SNMP6 = "Ip6InReceives                   \t10\nUdp6InDatagrams                 \t50\nUdp6RcvbufErrors                \t4\nUdpLite6InErrors                \t0\n"  # noqa: E501


def test_a_sample_proc(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "snmp").write_text(SNMP)
    counters = udp_counters(tmp_path)
    assert counters["InDatagrams"] == 1000 and counters["RcvbufErrors"] == 35
    assert counters["InErrors"] == 37 and "Udp6RcvbufErrors" not in counters  # no snmp6
    (tmp_path / "net" / "snmp6").write_text(SNMP6)
    counters = udp_counters(tmp_path)
    assert counters["Udp6RcvbufErrors"] == 4 and counters["Udp6InDatagrams"] == 50
    assert "UdpLite6InErrors" not in counters and "Ip6InReceives" not in counters


def test_missing_or_garbled_files_give_what_can_be_read(tmp_path: Path) -> None:
    assert udp_counters(tmp_path / "nowhere") == {}
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "snmp").write_bytes(b"Udp: InDatagrams\n\xff\xfe garbage\n")
    assert udp_counters(tmp_path) == {}
    (tmp_path / "net" / "snmp6").mkdir()  # a directory where a file is expected
    assert udp_counters(tmp_path) == {}


def test_this_machine_counts_datagrams() -> None:
    if not Path("/proc/net/snmp").exists():  # pragma: no cover - not Linux
        assert udp_counters() == {}
        return
    before = udp_counters()
    assert {"InDatagrams", "InErrors", "RcvbufErrors"} <= before.keys()
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        sender.sendto(b"<13>counted", receiver.getsockname())
        assert receiver.recv(100) == b"<13>counted"
    assert udp_counters()["InDatagrams"] > before["InDatagrams"]
