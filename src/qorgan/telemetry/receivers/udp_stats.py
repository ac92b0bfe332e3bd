"""The kernel's UDP counters: how many datagrams it dropped before a receiver could read them.

``RcvbufErrors`` grows when a UDP socket's receive buffer was full (the receiver fell behind:
raise ``Limits.udp_receive_buffer`` or add capacity); ``InErrors`` counts those and other receive
errors (bad checksums); ``InDatagrams`` the datagrams delivered. Counters are for the whole
network namespace, since boot: compare two readings.
"""

from __future__ import annotations

from pathlib import Path


def udp_counters(proc: Path | str = "/proc") -> dict[str, int]:
    """``Udp:`` counters of ``/proc/net/snmp`` (``InDatagrams``, ``InErrors``,
    ``RcvbufErrors``, ...) and the ``Udp6*`` ones of ``/proc/net/snmp6`` when present. Empty
    where they cannot be read (not Linux); never raises."""
    root = Path(proc) / "net"
    counters: dict[str, int] = {}
    try:
        lines = (root / "snmp").read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        lines = []
    rows = [line.split() for line in lines if line.startswith("Udp:")]
    if len(rows) >= 2 and len(rows[0]) == len(rows[1]):
        for name, value in zip(rows[0][1:], rows[1][1:], strict=True):
            if value.lstrip("-").isdigit():
                counters[name] = int(value)
    try:
        lines6 = (root / "snmp6").read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        lines6 = []
    for line in lines6:
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith("Udp6") and parts[1].isdigit():
            counters[parts[0]] = int(parts[1])
    return counters
