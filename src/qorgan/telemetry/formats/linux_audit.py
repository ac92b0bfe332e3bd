"""Linux audit records, as auditd writes them to ``audit.log``, audisp forwards them to syslog and
the kernel prints them when no daemon listens: one record parsed and decoded
(:func:`parse_record`), and the records of one event assembled into one event
(:class:`AuditAssembler`).

The fields an event carries, and why, are described in :mod:`qorgan.telemetry.formats.auditd`;
the ``auditd`` and ``syslog`` formats both read records through this module.
"""

from __future__ import annotations

import ipaddress
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from qorgan.telemetry.formats.base import Record
from qorgan.telemetry.formats.linux_syscalls import arch_name, syscall_name
from qorgan.telemetry.quarantine import Quarantine

#: At most this many events are held open (waiting for more records); the oldest is closed
#: when one more arrives.
MAX_OPEN = 4096
#: An event still open when a record of its node is this many seconds (of audit time) later,
#: or this many serials later, is complete: every record of a kernel event is emitted within
#: one system call's exit, so late records only come from other CPUs, moments apart. (auparse
#: closes events after 2 seconds too.)
WINDOW_SECONDS = 2.0
WINDOW_SERIALS = 256
#: The open events hold at most this many bytes of records (the oldest is closed first), and
#: an event of more is closed as it is (its later records make events of their own).
MAX_OPEN_BYTES = 64 << 20
MAX_EVENT_BYTES = 8 << 20

#: Where a record starts in a line: optional ``node=``, the type and the event id.
RECORD_START = re.compile(
    r"""
    (?<!\S)                                 # at the start or after a space (syslog header)
    (?:node=\S+\x20+)?                      # the machine, with auditd's name_format
    type=[A-Za-z0-9_]+(?:\[\d+\])?\x20+     # record type: SYSCALL, UNKNOWN[1334], 1300
    (?:msg=)?audit\(\d                      # msg=audit(... (auditd) or audit(... (printk)
    """,
    re.VERBOSE,
)

RECORD = re.compile(
    r"""
    (?:node=(?P<node>\S+)\x20+)?            # the machine, when named
    type=(?P<type>[A-Za-z0-9_]+(?:\[\d+\])?)\x20+  # record type (a number in printk lines)
    (?:msg=)?audit\(
    (?P<sec>\d{1,12})\.(?P<frac>\d{1,10})   # epoch seconds and their fraction (milliseconds)
    :(?P<serial>\d{1,20})\)                 # the serial, unique per event until a reboot
    :\x20?(?P<body>.*)                      # the record's fields
    $
    """,
    re.VERBOSE | re.DOTALL,
)

FIELD = re.compile(
    r"""
    \s*
    (?:
        (?P<key>[A-Za-z_][\w\-]*(?:\[\d+\])?)=  # key: a0, old-auid, cap_fp, a1[0]
        (?:
            "(?P<dq>[^"]*)"                 # double-quoted: plain text (never escaped)
          | '(?P<sq>[^']*)'                 # single-quoted: the user-space part, msg='...'
          | (?P<bare>[^\s"']*)              # unquoted: a number, a word, hex, or empty
        )
        (?=\s|$)
      |
        (?P<gap>\S+)                        # a word that is not key=value (avc:, {, a cut value)
    )
    """,
    re.VERBOSE,
)

#: SELinux's ``avc:  denied  { read write } for`` before an AVC's fields.
AVC_PREFIX = re.compile(
    r"""
    avc:\s+(?P<result>\w+)\s+               # denied / granted / received ...
    (?:\{\s*(?P<perms>[^}]*?)\s*\}\s*)?     # the permissions asked
    (?:for)?\s*$
    """,
    re.VERBOSE,
)

EXECVE_ARG = re.compile(r"a(\d{1,7})(?:\[(\d{1,7})\]|(_len))?$")
HEX_DIGITS = frozenset("0123456789ABCDEFabcdef")

#: Values written unquoted that are not hex: no value, none, unknown.
SENTINELS = frozenset({"", "(null)", "(none)", "?", "(unknown)"})
#: Fields the kernel writes with audit_log_untrustedstring: ``"text"`` when plain, hex when the
#: value holds a space, a quote, a control character or a byte above 0x7e. Unquoted and not hex
#: is a damaged record.
KERNEL_ENCODED = frozenset(
    {"name", "cwd", "exe", "comm", "path", "ocomm", "proctitle", "data", "key", "cmd"}
)
#: Fields user-space programs encode the same way (libaudit's audit_encode_nv_string), but
#: which some write unquoted in clear: decoded only when they are hex.
USER_ENCODED = KERNEL_ENCODED | {
    "acct", "watch", "dir", "root_dir", "sw", "vm", "device", "cgroup", "grp", "new_group",
    "old-disk", "new-disk", "old-fs", "new-fs", "old-net", "new-net", "old-chardev",
    "new-chardev", "uuid", "img-ctx", "vm-ctx",
}  # fmt: skip
#: Names this module gives events itself; a record's own field of that name is kept as
#: ``msg_<name>``.
RESERVED = frozenset({"type", "service", "timestamp", "serial", "node"})

# Record type numbers (the kernel's printk lines write numbers) -> names: the kernel's
# linux/audit.h (6.1) and libaudit.h's user-space ranges.
_TYPE_RANGES: tuple[tuple[int, str], ...] = (
    (1000, "GET SET LIST ADD DEL USER LOGIN WATCH_INS WATCH_REM WATCH_LIST SIGNAL_INFO ADD_RULE "
     "DEL_RULE LIST_RULES TRIM MAKE_EQUIV TTY_GET TTY_SET SET_FEATURE GET_FEATURE"),
    (1100, "USER_AUTH USER_ACCT USER_MGMT CRED_ACQ CRED_DISP USER_START USER_END USER_AVC "
     "USER_CHAUTHTOK USER_ERR CRED_REFR USYS_CONFIG USER_LOGIN USER_LOGOUT ADD_USER DEL_USER "
     "ADD_GROUP DEL_GROUP DAC_CHECK CHGRP_ID TEST TRUSTED_APP USER_SELINUX_ERR USER_CMD "
     "USER_TTY CHUSER_ID GRP_AUTH SYSTEM_BOOT SYSTEM_SHUTDOWN SYSTEM_RUNLEVEL SERVICE_START "
     "SERVICE_STOP GRP_MGMT GRP_CHAUTHTOK MAC_CHECK ACCT_LOCK ACCT_UNLOCK USER_DEVICE "
     "SOFTWARE_UPDATE"),
    (1200, "DAEMON_START DAEMON_END DAEMON_ABORT DAEMON_CONFIG DAEMON_RECONFIG DAEMON_ROTATE "
     "DAEMON_RESUME DAEMON_ACCEPT DAEMON_CLOSE DAEMON_ERR"),
    (1300, "SYSCALL - PATH IPC SOCKETCALL CONFIG_CHANGE SOCKADDR CWD - EXECVE - IPC_SET_PERM "
     "MQ_OPEN MQ_SENDRECV MQ_NOTIFY MQ_GETSETATTR KERNEL_OTHER FD_PAIR OBJ_PID TTY EOE "
     "BPRM_FCAPS CAPSET MMAP NETFILTER_PKT NETFILTER_CFG SECCOMP PROCTITLE FEATURE_CHANGE "
     "REPLACE KERN_MODULE FANOTIFY TIME_INJOFFSET TIME_ADJNTPVAL BPF EVENT_LISTENER URINGOP "
     "OPENAT2 DM_CTRL DM_EVENT"),
    (1400, "AVC SELINUX_ERR AVC_PATH MAC_POLICY_LOAD MAC_STATUS MAC_CONFIG_CHANGE "
     "MAC_UNLBL_ALLOW MAC_CIPSOV4_ADD MAC_CIPSOV4_DEL MAC_MAP_ADD MAC_MAP_DEL MAC_IPSEC_ADDSA "
     "MAC_IPSEC_DELSA MAC_IPSEC_ADDSPD MAC_IPSEC_DELSPD MAC_IPSEC_EVENT MAC_UNLBL_STCADD "
     "MAC_UNLBL_STCDEL MAC_CALIPSO_ADD MAC_CALIPSO_DEL"),
    (1500, "- APPARMOR_AUDIT APPARMOR_ALLOWED APPARMOR_DENIED APPARMOR_HINT APPARMOR_STATUS "
     "APPARMOR_ERROR"),
    (1700, "ANOM_PROMISCUOUS ANOM_ABEND ANOM_LINK ANOM_CREAT"),
    (1800, "INTEGRITY_DATA INTEGRITY_METADATA INTEGRITY_STATUS INTEGRITY_HASH INTEGRITY_PCR "
     "INTEGRITY_RULE"),
    (2100, "ANOM_LOGIN_FAILURES ANOM_LOGIN_TIME ANOM_LOGIN_SESSIONS ANOM_LOGIN_ACCT "
     "ANOM_LOGIN_LOCATION ANOM_MAX_DAC ANOM_MAX_MAC ANOM_AMTU_FAIL ANOM_RBAC_FAIL "
     "ANOM_RBAC_INTEGRITY_FAIL ANOM_CRYPTO_FAIL ANOM_ACCESS_FS ANOM_EXEC ANOM_MK_EXEC "
     "ANOM_ADD_ACCT ANOM_DEL_ACCT ANOM_MOD_ACCT ANOM_ROOT_TRANS ANOM_LOGIN_SERVICE"),
    (2200, "RESP_ANOMALY RESP_ALERT RESP_KILL_PROC RESP_TERM_ACCESS RESP_ACCT_REMOTE "
     "RESP_ACCT_LOCK_TIMED RESP_ACCT_UNLOCK_TIMED RESP_ACCT_LOCK RESP_TERM_LOCK RESP_SEBOOL "
     "RESP_EXEC RESP_SINGLE RESP_HALT RESP_ORIGIN_BLOCK RESP_ORIGIN_BLOCK_TIMED"),
    (2300, "USER_ROLE_CHANGE ROLE_ASSIGN ROLE_REMOVE LABEL_OVERRIDE LABEL_LEVEL_CHANGE "
     "USER_LABELED_EXPORT USER_UNLABELED_EXPORT DEV_ALLOC DEV_DEALLOC FS_RELABEL "
     "USER_MAC_POLICY_LOAD ROLE_MODIFY USER_MAC_CONFIG_CHANGE"),
    (2400, "CRYPTO_TEST_USER CRYPTO_PARAM_CHANGE_USER CRYPTO_LOGIN CRYPTO_LOGOUT CRYPTO_KEY_USER "
     "CRYPTO_FAILURE_USER CRYPTO_REPLAY_USER CRYPTO_SESSION CRYPTO_IKE_SA CRYPTO_IPSEC_SA"),
    (2500, "VIRT_CONTROL VIRT_RESOURCE VIRT_MACHINE_ID VIRT_INTEGRITY_CHECK VIRT_CREATE "
     "VIRT_DESTROY VIRT_MIGRATE_IN VIRT_MIGRATE_OUT"),
)  # fmt: skip
#: Record type number -> name.
TYPE_NAMES: dict[int, str] = {
    start + i: name
    for start, names in _TYPE_RANGES
    for i, name in enumerate(names.split())
    if name != "-"
}
TYPE_NUMBERS: dict[str, int] = {name: number for number, name in TYPE_NAMES.items()}


def is_user_type(number: int) -> bool:
    """Whether records of this type come from user space (PAM, systemd, auditd itself): such a
    record is an event of its own, with a serial of its own and no EOE."""
    return 1100 <= number <= 1299 or 2100 <= number <= 2999


class AuditError(ValueError):
    """A record that cannot be read; the message is the quarantine reason."""


@dataclass(slots=True)
class AuditRecord:
    """One record: its type, the id of its event, and its fields in order."""

    type: str
    number: int | None  # the type's number, when known
    node: str | None
    sec: int
    micro: int
    serial: int
    stamp: str  # "seconds.fraction:serial" as written: with the node, the event's key
    fields: list[tuple[str, Any]]
    #: EXECVE arguments: (index, chunk index or -1, value, value is hex).
    args: list[tuple[int, int, str, bool]] | None = None


def decode_hex(value: str, nul: str = "\ufffd") -> str:
    """Hex text -> text: UTF-8 with bad bytes replaced, and NUL (which PostgreSQL text and
    JSON stores refuse) replaced by ``nul``."""
    text = bytes.fromhex(value).decode("utf-8", "replace")
    return text.replace("\x00", nul) if "\x00" in text else text


def is_hex(value: str) -> bool:
    return len(value) % 2 == 0 and bool(value) and HEX_DIGITS.issuperset(value)


def _type_of(raw: str) -> tuple[str, int | None]:
    if raw.isdigit():
        number = int(raw)
        return TYPE_NAMES.get(number, f"UNKNOWN[{number}]"), number
    if raw.startswith("UNKNOWN[") and raw.endswith("]") and raw[8:-1].isdigit():
        number = int(raw[8:-1])
        return TYPE_NAMES.get(number, raw), number
    return raw, TYPE_NUMBERS.get(raw)


def parse_record(text: str) -> AuditRecord:
    """One record (from ``type=`` or ``node=`` on); raises :class:`AuditError`."""
    m = RECORD.match(text)
    if m is None:
        raise AuditError("not an audit record (type=... msg=audit(time:serial): ...)")
    rtype, number = _type_of(m["type"])
    frac = m["frac"]
    record = AuditRecord(
        type=rtype,
        number=number,
        node=m["node"],
        sec=int(m["sec"]),
        micro=int(frac[:6].ljust(6, "0")),
        serial=int(m["serial"]),
        stamp=f"{m['sec']}.{frac}:{m['serial']}",
        fields=[],
    )
    body = m["body"]
    enriched = None
    if "\x1d" in body:  # log_format = ENRICHED: interpreted fields after a GS
        body, _, enriched = body.partition("\x1d")
    if rtype == "EXECVE":
        record.args = []
    _fields(body, record, strict=True)
    if enriched:
        for key, value in _pairs(enriched)[0]:
            if value != "{":  # SADDR={ saddr_fam=inet laddr=... }: the inner pairs are kept
                record.fields.append((key, value[1:] if value[:1] == '"' else value))
    if rtype == "SYSCALL":
        _name_syscall(record)
    elif rtype == "SOCKADDR":
        _sockaddr(record)
    return record


def _pairs(text: str) -> tuple[list[tuple[str, str]], list[str], list[tuple[str, str]]]:
    """``(unquoted or double-quoted pairs, the words between pairs, single-quoted pairs)``, in
    one pass over ``text``. A double-quoted value is marked with its opening quote: quoted
    values are never decoded."""
    pairs: list[tuple[str, str]] = []
    quoted: list[tuple[str, str]] = []
    gaps: list[str] = []
    for m in FIELD.finditer(text):
        key, dq, sq, bare, gap = m.group("key", "dq", "sq", "bare", "gap")
        if gap is not None:
            gaps.append(gap)
        elif dq is not None:
            pairs.append((key, '"' + dq))
        elif sq is not None:
            quoted.append((key, sq))
        else:
            pairs.append((key, bare))
    return pairs, gaps, quoted


def _fields(text: str, record: AuditRecord, *, strict: bool) -> None:
    pairs, gaps, quoted = _pairs(text)
    for gap in gaps:
        if '"' in gap or "'" in gap:
            raise AuditError("unterminated quoted value (a cut record?)")
    out = record.fields
    args = record.args
    for key, value in pairs:
        if args is not None and key[0] == "a" and (arg := EXECVE_ARG.match(key)) is not None:
            if arg[3]:  # aN_len: the length of a split argument, implied by its chunks
                continue
            index, chunk = int(arg[1]), int(arg[2]) if arg[2] is not None else -1
            if value[:1] == '"':
                args.append((index, chunk, value[1:], False))
            elif value in SENTINELS:
                args.append((index, chunk, value, False))
            elif is_hex(value):
                args.append((index, chunk, value, True))
            else:
                raise AuditError(f"bad hex in EXECVE {key}")
            continue
        if key in RESERVED:
            key = "msg_" + key
        if value[:1] == '"':
            out.append((key, value[1:]))
        elif key in USER_ENCODED and value not in SENTINELS:
            if is_hex(value):
                # The process title's arguments are NUL-separated: a command line with spaces.
                decoded = (
                    decode_hex(value, " ").rstrip() if key == "proctitle" else decode_hex(value)
                )
                if key == "key" and "\x01" in decoded:
                    out.append((key, decoded.split("\x01")))
                else:
                    out.append((key, decoded))
            elif strict and key in KERNEL_ENCODED:
                raise AuditError(f"bad hex in {key}")
            else:
                out.append((key, value))
        else:
            out.append((key, value))
    for key, value in quoted:
        if key == "msg" and "=" in value:
            _fields(value, record, strict=False)  # the user-space part: its own fields
        else:
            out.append(("msg_" + key if key in RESERVED else key, value))
    if gaps:
        text = " ".join(" ".join(gaps).split())
        avc = AVC_PREFIX.match(text)
        if avc is not None:
            out.append(("seresult", avc["result"]))
            if avc["perms"]:
                perms = avc["perms"].split()
                out.append(("seperms", perms if len(perms) > 1 else perms[0]))
        else:
            out.append(("msg", text))


def _name_syscall(record: AuditRecord) -> None:
    """Add ``SYSCALL`` and ``ARCH`` (the names SigmaHQ's rules and the enriched format use)."""
    names = {k for k, _ in record.fields}
    values = dict(record.fields)
    arch, number = values.get("arch"), values.get("syscall")
    if "SYSCALL" not in names and isinstance(number, str):
        if number.isdigit():
            name = syscall_name(arch, number) if isinstance(arch, str) else None
        else:
            name = number  # already interpreted (ausearch -i)
        if name:
            record.fields.append(("SYSCALL", name))
    if "ARCH" not in names and isinstance(arch, str) and (name := arch_name(arch)):
        record.fields.append(("ARCH", name))


def _sockaddr(record: AuditRecord) -> None:
    """``saddr`` (a raw struct sockaddr in hex) -> ``saddr_fam``, ``laddr``, ``lport`` or
    ``path``, as auparse interprets it."""
    values = dict(record.fields)
    raw = values.get("saddr")
    if not isinstance(raw, str) or not is_hex(raw) or "saddr_fam" in values:
        return
    data = bytes.fromhex(raw)
    if len(data) < 2:
        return
    family = int.from_bytes(data[:2], "little")
    extra: list[tuple[str, Any]] = []
    if family == 2 and len(data) >= 8:
        extra = [
            ("saddr_fam", "inet"),
            ("laddr", str(ipaddress.IPv4Address(data[4:8]))),
            ("lport", str(int.from_bytes(data[2:4], "big"))),
        ]
    elif family == 10 and len(data) >= 24:
        extra = [
            ("saddr_fam", "inet6"),
            ("laddr", str(ipaddress.IPv6Address(data[8:24]))),
            ("lport", str(int.from_bytes(data[2:4], "big"))),
        ]
    elif family == 1:
        path = data[2:].split(b"\x00", 1)[0] if data[2:3] != b"\x00" else data[3:]
        extra = [("saddr_fam", "local"), ("path", path.decode("utf-8", "replace"))]
    record.fields.extend(extra)


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    """Merge one field into an event: a name met again with another value becomes the list of
    its distinct values, in record order."""
    old = out.get(key, _MISSING)
    if old is _MISSING:
        out[key] = value
        return
    values = value if isinstance(value, list) else [value]
    if isinstance(old, list):
        for v in values:
            if v not in old:
                old.append(v)
    else:
        merged = [old]
        for v in values:
            if v not in merged:
                merged.append(v)
        if len(merged) > 1:
            out[key] = merged


_MISSING = object()


def iso_time(sec: int, micro: int) -> str:
    """Epoch seconds -> ISO 8601 UTC text (raises OverflowError/ValueError/OSError when out of
    range)."""
    dt = datetime.fromtimestamp(sec, UTC).replace(microsecond=micro)
    return dt.isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class _Event:
    key: tuple[str | None, str]
    node: str | None
    time: float
    iso: str
    serial: int
    lineno: int
    records: list[AuditRecord] = field(default_factory=list)
    size: int = 0
    done: bool = False


class AuditAssembler:
    """Groups records into events by ``(node, msg=audit(time:serial))``, in arrival order.

    An event is complete at its ``EOE`` record; a user-space record (PAM, systemd, auditd) is
    complete at once; otherwise an event is closed when a record of its node comes
    :data:`WINDOW_SECONDS` later or :data:`WINDOW_SERIALS` serials later, when more than
    ``max_open`` events are open or they hold more than ``max_bytes`` (the oldest first), when
    it holds more than ``max_event_bytes`` itself, or at the end of the input. A record of an
    event already closed starts an event of its own. Events are handed on in the order of
    their first record, so a complete event may wait behind an open one (for at most the
    window). An ``EOE`` whose event is closed carries nothing and is skipped.
    """

    def __init__(
        self,
        path: str,
        quarantine: Quarantine,
        *,
        max_open: int = MAX_OPEN,
        max_bytes: int = MAX_OPEN_BYTES,
        max_event_bytes: int = MAX_EVENT_BYTES,
        window_seconds: float = WINDOW_SECONDS,
        window_serials: int = WINDOW_SERIALS,
    ) -> None:
        self.path = path
        self.quarantine = quarantine
        self.max_open = max_open
        self.max_bytes = max_bytes
        self.max_event_bytes = max_event_bytes
        self.window_seconds = window_seconds
        self.window_serials = window_serials
        self.queue: deque[_Event] = deque()
        self.pending: dict[tuple[str | None, str], _Event] = {}
        self.last: dict[str | None, tuple[float, int]] = {}
        self.bytes = 0

    def feed(self, text: str, raw: bytes, lineno: int, host: str | None = None) -> list[Record]:
        """Read one record (``text`` starts at ``type=`` or ``node=``; ``raw`` is its whole
        line, for the quarantine); returns the events it completes. ``host`` (a syslog
        header's) names the node of a record without ``node=``."""
        reason = self._damage(text, raw)
        if reason is not None:
            self.quarantine.add(self.path, lineno, f"auditd: {reason}", raw)
            return []
        try:
            record = parse_record(text)
        except AuditError as exc:
            self.quarantine.add(self.path, lineno, f"auditd: {exc}", raw)
            return []
        node = record.node or host
        key = (node, record.stamp)
        event = self.pending.get(key)
        if event is None:
            if record.type == "EOE":
                return self._drain(node)
            try:
                iso = iso_time(record.sec, record.micro)
            except (OverflowError, ValueError, OSError):
                self.quarantine.add(self.path, lineno, "auditd: time out of range", raw)
                return []
            event = _Event(key, node, record.sec + record.micro / 1e6, iso, record.serial, lineno)
            self.pending[key] = event
            self.queue.append(event)
        event.records.append(record)
        event.size += len(raw)
        self.bytes += len(raw)
        if (
            record.type == "EOE"
            or (record.number is not None and is_user_type(record.number))
            or event.size > self.max_event_bytes
        ):
            self._close(event)
        # The node's last record is what an open event is judged against: later by the window
        # in time (a reboot restarts serials, time goes on) or in serials (a clock set back).
        self.last[node] = (event.time, event.serial)
        if len(self.last) > 2 * self.max_open:
            keep = {e.node for e in self.queue} | {node}
            self.last = {n: t for n, t in self.last.items() if n in keep}
        return self._drain(node)

    def finish(self) -> list[Record]:
        """Close and return every event still open (the end of the input)."""
        out = [self._build(e) for e in self.queue]
        self.queue.clear()
        self.pending.clear()
        self.bytes = 0
        return out

    def _close(self, event: _Event) -> None:
        event.done = True
        self.pending.pop(event.key, None)

    def _drain(self, node: str | None) -> list[Record]:
        out: list[Record] = []
        queue = self.queue
        while queue:
            first = queue[0]
            if not first.done:
                last = self.last.get(first.node)
                stale = last is not None and (
                    last[0] - first.time > self.window_seconds
                    or last[1] - first.serial > self.window_serials
                )
                if not stale and len(queue) <= self.max_open and self.bytes <= self.max_bytes:
                    break
                self._close(first)
            queue.popleft()
            self.bytes -= first.size
            out.append(self._build(first))
        return out

    @staticmethod
    def _damage(text: str, raw: bytes) -> str | None:
        if b"\x00" in raw:
            return "NUL byte in the record"
        if "\ufffd" in text:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return "invalid UTF-8 in the record"
        return None

    @staticmethod
    def _build(event: _Event) -> Record:
        types: list[str] = []
        out: dict[str, Any] = {"type": types}
        has_execve = any(r.type == "EXECVE" for r in event.records)
        args: dict[int, dict[int, tuple[str, bool]]] = {}
        for record in event.records:
            if record.type == "EOE":
                continue
            if record.type not in types:
                types.append(record.type)
            rename = has_execve and record.type == "SYSCALL"
            for key, value in record.fields:
                if rename and key in ("a0", "a1", "a2", "a3"):
                    key = "syscall_" + key  # the registers; a0.. are the EXECVE arguments
                _put(out, key, value)
            for index, chunk, value, hexed in record.args or ():
                args.setdefault(index, {})[chunk] = (value, hexed)
        for index in sorted(args):
            chunks = args[index]
            if -1 in chunks:
                value, hexed = chunks[-1]
            else:  # a long argument, split in chunks a1[0], a1[1]...: all hex or all text
                parts = [chunks[i] for i in sorted(chunks)]
                hexed = parts[0][1]
                value = "".join(p[0] for p in parts)
            _put(out, f"a{index}", decode_hex(value) if hexed else value)
        out["service"] = "auditd"
        out["timestamp"] = event.iso
        out["serial"] = event.serial
        if event.node is not None:
            out["node"] = event.node
        return out, event.lineno, event.iso, event.node


def audit_start(message: str) -> int:
    """Where an audit record starts in a syslog message, or -1."""
    if "audit(" not in message:
        return -1
    m = RECORD_START.search(message)
    return m.start() if m is not None else -1
