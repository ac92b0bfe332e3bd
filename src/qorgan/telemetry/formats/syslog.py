"""Syslog text files: RFC 3164 (BSD, ``Jun 14 15:16:01 host prog[pid]: msg``, optionally with a
``<PRI>`` and, as rsyslog writes by default today, an RFC 3339 time instead of the BSD one) and
RFC 5424 (``<165>1 2003-10-11T22:14:15.003Z host app procid msgid [sd] msg``).

Each line is one event. The header gives ``timestamp``, ``hostname``, ``program``, ``pid``, the
PRI's ``facility``/``severity`` and, in RFC 5424, ``msgid``/``structured_data``. The messages of
sshd, PAM, sudo, su and the kernel (including iptables/UFW packet logs) are parsed further into
fields such as ``event_type``, ``user``, ``src_ip``; any other message is kept whole in
``message``. Every event carries ``service``, the Sigma ``linux`` service of its program
(:data:`SERVICES`).

An RFC 3164 time has no year and no zone. The zone is UTC unless the format is built with
another ``tz`` (``qorgan hunt --timezone`` and console hunts give ``Asia/Almaty`` by default).
The year is the ``year`` given to the format, else the year of the file's modification time
(or of now, when the path is not a file); a date that would fall more than a day after that
reference time is taken to be from the year before (logs spanning New Year).

Two kinds of messages become events of their own:

- a Linux audit record (``type=SYSCALL msg=audit(...): ...``, as audisp forwards them, or the
  kernel's ``audit: type=1300 audit(...): ...``), and a bare audit line with no syslog header:
  records are assembled into audit events as :mod:`~qorgan.telemetry.formats.auditd` describes
  (the header's host names the node when the record has no ``node=``);
- a Sysmon for Linux event (``sysmon: <Event>...</Event>``): the header fields, without
  ``message``, and the event's fields (:mod:`~qorgan.telemetry.formats.sysmon_linux`); its time
  and host are the event's ``SystemTime`` and ``Computer``.

A line whose header cannot be parsed is quarantined (``syslog: no timestamp/header``), and so
are an audit record or a Sysmon document that cannot be read (``auditd: ...``, ``sysmon:
...``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import IO, Any, ClassVar

from qorgan.telemetry.formats.base import MONTHS, Format, Record, head_lines
from qorgan.telemetry.formats.linux_audit import AuditAssembler, audit_start
from qorgan.telemetry.formats.sysmon_linux import SysmonError, is_sysmon, parse_event
from qorgan.telemetry.quarantine import Quarantine

#: Program name -> Sigma ``product: linux`` service (Sigma taxonomy: auditd, auth, clamav, cron,
#: guacamole, sshd, sudo, syslog, vsftpd). Authentication programs without a service of their
#: own go to ``auth`` (they log to /var/log/auth.log); anything not listed is ``syslog``.
SERVICES: dict[str, str] = {
    "sshd": "sshd",
    "sudo": "sudo",
    "su": "auth",
    "login": "auth",
    "passwd": "auth",
    "chpasswd": "auth",
    "chage": "auth",
    "useradd": "auth",
    "userdel": "auth",
    "usermod": "auth",
    "groupadd": "auth",
    "groupdel": "auth",
    "gpasswd": "auth",
    "systemd-logind": "auth",
    "polkitd": "auth",
    "pkexec": "auth",
    "gdm": "auth",
    "gdm-password": "auth",
    "lightdm": "auth",
    "cron": "cron",
    "CRON": "cron",
    "crond": "cron",
    "anacron": "cron",
    "vsftpd": "vsftpd",
    "clamd": "clamav",
    "freshclam": "clamav",
    "clamav": "clamav",
    "auditd": "auditd",
    "audit": "auditd",
    "guacd": "guacamole",
    "guacamole": "guacamole",
    "kernel": "syslog",
}
DEFAULT_SERVICE = "syslog"

#: How far after the reference time an RFC 3164 date may fall before it is put a year back.
FUTURE_SLACK = timedelta(days=1)

#: RFC 5424 facility and severity keywords, indexed by number.
FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")

SCHEMA: dict[str, str] = {
    "timestamp": "event time, ISO 8601 UTC (RFC 3164: year and zone inferred, see module doc)",
    "hostname": "host name from the header (None when absent or '-')",
    "program": "APP-NAME / TAG program name (sshd, su, kernel...), None when absent",
    "pid": "process id from the header (int) or None",
    "facility": "PRI facility keyword (auth, daemon, local0...) or None without PRI",
    "severity": "PRI severity keyword (emerg ... debug) or None without PRI",
    "msgid": "RFC 5424 MSGID, else None",
    "structured_data": "RFC 5424 STRUCTURED-DATA as logged, else None",
    "message": "the message after the header",
    "service": "Sigma linux service of the program (see SERVICES)",
    "pam_module": "PAM module (pam_unix...) when the message comes from PAM",
    "pam_service": "PAM service name (sshd, su, sudo...) from 'pam_unix(sshd:auth)'",
    "event_type": "what happened: failed_password, accepted_publickey, invalid_user, "
    "disconnect, preauth_disconnect, connection_closed, reverse_mapping_failed, "
    "too_many_auth_failures, auth_failure, check_pass, session_opened, session_closed, "
    "command, command_denied, su_success, su_failed...",
    "user": "account name the message is about",
    "invalid_user": "sshd: the user does not exist (bool)",
    "src_ip": "client address (sshd)",
    "src_port": "client port (int, sshd)",
    "auth_method": "sshd authentication method (password, publickey, none...)",
    "preauth": "sshd: the message carried '[preauth]' (bool)",
    "reason": "sshd disconnect reason",
    "repeated": "count from 'message repeated N times' (int); the inner message is parsed",
    "count": "PAM: number of further failures in 'PAM N more authentication failures' (int)",
    "rhost": "PAM remote host (sshd: name from a failed reverse lookup)",
    "ruser": "PAM remote user",
    "logname": "PAM login name",
    "uid": "PAM uid (int)",
    "euid": "PAM effective uid (int)",
    "tty": "terminal (PAM, sudo, su)",
    "pwd": "sudo working directory",
    "target_user": "sudo USER= / su target account",
    "command": "sudo command line",
    "error": "sudo refusal reason",
    "kernel_time": "kernel timestamp in seconds since boot (float)",
    "log_prefix": "netfilter log prefix such as 'UFW BLOCK'",
    "IN": "netfilter key=value fields as logged (IN, OUT, SRC, DST, PROTO, SPT, DPT, ...)",
    "EventID": "Sysmon for Linux messages: the event's fields (see sysmon_linux.SCHEMA); "
    "audit records are audit events (see auditd.SCHEMA)",
}

RFC5424 = re.compile(
    r"""
    <(?P<pri>\d{1,3})>                  # PRI
    (?P<version>\d{1,2})\x20            # VERSION
    (?P<ts>\S+)\x20                     # TIMESTAMP (RFC 3339) or '-'
    (?P<host>\S+)\x20                   # HOSTNAME or '-'
    (?P<app>\S+)\x20                    # APP-NAME or '-'
    (?P<procid>\S+)\x20                 # PROCID or '-'
    (?P<msgid>\S+)                      # MSGID or '-'
    (?:\x20(?P<sd>-|(?:\[(?:[^\]\\]|\\.)*\])+))?  # STRUCTURED-DATA, elements may escape ']'
    (?:\x20(?:\ufeff)?(?P<msg>.*))?     # MSG, optionally behind a BOM
    $
    """,
    re.VERBOSE | re.DOTALL,
)

RFC3164 = re.compile(
    r"""
    (?:<(?P<pri>\d{1,3})>)?             # optional PRI
    (?:
        (?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)
        \x20{1,2}(?P<day>\d{1,2})       # day, space-padded
        \x20(?P<clock>\d{2}:\d{2}:\d{2})(?P<frac>\.\d{1,9})?  # hh:mm:ss[.frac]
      |
        (?P<iso>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2}))  # RFC 3339
    )
    \x20+(?P<host>[^\s:]+)              # HOSTNAME
    (?:\x20+|$)
    (?P<msg>.*)                         # TAG and CONTENT
    $
    """,
    re.VERBOSE | re.DOTALL,
)

TAG = re.compile(
    r"""
    (?P<program>[^\s\[\]():]+)          # program name
    (?:\((?P<sub>[^)\s]*)\))?           # optional subsystem: sshd(pam_unix)
    (?:\[(?P<pid>\d+)\])?               # optional [pid]
    :(?:\x20|$)                         # the colon that ends the tag
    """,
    re.VERBOSE,
)

#: An RFC 5424 APP-NAME that is an old-style tag with a subsystem: ``sshd(pam_unix)``.
APP_SUB = re.compile(r"(?P<program>[^\s\[\]():]+)\((?P<sub>[^)\s]+)\)")

SSHD: tuple[tuple[re.Pattern[str], str | None], ...] = (
    (
        re.compile(
            r"""
            (?P<result>Failed|Accepted)\x20
            (?P<method>\S+)\x20for\x20          # password, publickey, keyboard-interactive/pam...
            (?P<invalid>invalid\x20user\x20)?   # present when the account does not exist
            (?P<user>.*?)\x20from\x20
            (?P<ip>\S+)\x20port\x20(?P<port>\d+)
            (?:\x20ssh2?)?                      # protocol
            (?::\x20.*)?                        # key type and fingerprint
            $
            """,
            re.VERBOSE,
        ),
        None,
    ),
    (
        re.compile(
            r"""
            Invalid\x20user\x20(?P<user>.*?)    # user name, may be empty or contain spaces
            \x20from\x20(?P<ip>\S+)
            (?:\x20port\x20(?P<port>\d+))?      # port, newer OpenSSH only
            (?P<preauth>\x20\[preauth\])?
            $
            """,
            re.VERBOSE,
        ),
        "invalid_user",
    ),
    (
        re.compile(
            r"""
            input_userauth_request:\x20invalid\x20user\x20
            (?P<user>.*?)                       # user name
            (?P<preauth>\x20\[preauth\])?
            $
            """,
            re.VERBOSE,
        ),
        "invalid_user_auth_request",
    ),
    (
        re.compile(
            r"""
            (?:error:\x20)?
            Received\x20disconnect\x20from\x20
            (?P<ip>[^\s:]+|[0-9a-fA-F:]+?)      # address (IPv6 contains colons)
            (?:\x20port\x20(?P<port>\d+))?
            :\x20?(?P<code>\d+):\x20            # disconnect reason code
            (?P<reason>.*?)                     # reason text
            (?P<preauth>\x20\[preauth\])?
            $
            """,
            re.VERBOSE,
        ),
        "disconnect",
    ),
    (
        re.compile(
            r"""
            Disconnected\x20from\x20
            (?:(?:invalid|authenticating)\x20)?  # what the user was
            (?:user\x20(?P<user>\S+)\x20)?      # user name, when known
            (?P<ip>\S+)\x20port\x20(?P<port>\d+)
            (?P<preauth>\x20\[preauth\])?
            $
            """,
            re.VERBOSE,
        ),
        "disconnect",
    ),
    (
        re.compile(
            r"""
            Connection\x20closed\x20by\x20
            (?:(?P<invalid>invalid\x20)?(?:authenticating\x20)?user\x20(?P<user>\S+)\x20)?
            (?P<ip>\S+)                         # client address
            (?:\x20port\x20(?P<port>\d+))?
            (?P<preauth>\x20\[preauth\])?
            $
            """,
            re.VERBOSE,
        ),
        "connection_closed",
    ),
    (
        re.compile(
            r"""
            reverse\x20mapping\x20checking\x20getaddrinfo\x20for\x20
            (?P<rhost>\S+)\x20                  # name the address resolved to
            \[(?P<ip>[^\]]+)\]\x20failed        # the client address
            """,
            re.VERBOSE,
        ),
        "reverse_mapping_failed",
    ),
    (
        re.compile(
            r"""
            Address\x20(?P<ip>\S+)\x20maps\x20to\x20(?P<rhost>\S+),
            \x20but\x20this\x20does\x20not\x20map\x20back   # forward lookup disagrees
            """,
            re.VERBOSE,
        ),
        "reverse_mapping_failed",
    ),
    (
        re.compile(
            r"""
            (?:error:\x20)?
            (?:
                Disconnecting:\x20Too\x20many\x20authentication\x20failures
                (?:\x20for\x20(?P<invalid>invalid\x20user\x20)?(?P<user>\S+))?
              |
                maximum\x20authentication\x20attempts\x20exceeded\x20for\x20
                (?P<invalid2>invalid\x20user\x20)?(?P<user2>\S+)
                \x20from\x20(?P<ip>\S+)\x20port\x20(?P<port>\d+)
            )
            .*?(?P<preauth>\x20\[preauth\])?
            $
            """,
            re.VERBOSE,
        ),
        "too_many_auth_failures",
    ),
    (
        re.compile(
            r"""
            Did\x20not\x20receive\x20identification\x20string\x20from\x20
            (?P<ip>\S+)                         # client address
            (?:\x20port\x20(?P<port>\d+))?
            """,
            re.VERBOSE,
        ),
        "no_identification",
    ),
    (
        re.compile(
            r"""
            Bad\x20protocol\x20version\x20identification\x20.*\x20from\x20
            (?P<ip>\S+)(?:\x20port\x20(?P<port>\d+))?  # client address and port
            $
            """,
            re.VERBOSE,
        ),
        "bad_protocol_version",
    ),
    (
        re.compile(
            r"""
            Unable\x20to\x20negotiate\x20with\x20
            (?P<ip>\S+)\x20port\x20(?P<port>\d+):  # client address and port
            """,
            re.VERBOSE,
        ),
        "negotiation_failed",
    ),
    (
        re.compile(
            r"""
            PAM\x20service\(\S+\)\x20ignoring\x20max\x20retries  # PAM retry limit reached
            """,
            re.VERBOSE,
        ),
        "pam_max_retries",
    ),
    (
        re.compile(
            r"""
            Server\x20listening\x20on\x20(?P<ip>\S+)\x20port\x20(?P<port>\d+)  # daemon start
            """,
            re.VERBOSE,
        ),
        "server_listening",
    ),
)

REPEATED = re.compile(
    r"""
    message\x20repeated\x20(?P<count>\d+)\x20times:\x20  # syslogd de-duplication
    \[\x20?(?P<inner>.*)\]                              # the repeated message
    $
    """,
    re.VERBOSE,
)

PAM_PREFIX = re.compile(
    r"""
    (?P<module>pam_\w+)                 # module: pam_unix, pam_sss...
    \((?P<service>[^:)]*)               # PAM service: sshd, su, sudo...
    (?::(?P<type>[^)]*))?\):\x20        # management group: auth, session...
    (?P<rest>.*)
    $
    """,
    re.VERBOSE | re.DOTALL,
)

PAM_MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"""
            authentication\x20failure;     # failed authentication, key=value pairs follow
            (?P<kv>.*)$
            """,
            re.VERBOSE,
        ),
        "auth_failure",
    ),
    (
        re.compile(
            r"""
            (?P<count>\d+)\x20more\x20authentication\x20failures?;  # summary at the end
            (?P<kv>.*)$
            """,
            re.VERBOSE,
        ),
        "more_auth_failures",
    ),
    (
        re.compile(
            r"""
            check\x20pass;\x20user\x20
            (?P<user>\S+)                   # 'unknown' when the account does not exist
            """,
            re.VERBOSE,
        ),
        "check_pass",
    ),
    (
        re.compile(
            r"""
            session\x20opened\x20for\x20user\x20
            (?P<user>[^\s(]+)(?:\(uid=\d+\))?   # account, newer PAM adds its uid
            (?:\x20by\x20(?P<logname>[^\s(]*)   # login name of the caller, may be empty
            (?:\(uid=(?P<uid>\d+)\))?)?         # uid of the caller
            """,
            re.VERBOSE,
        ),
        "session_opened",
    ),
    (
        re.compile(
            r"""
            session\x20closed\x20for\x20user\x20
            (?P<user>[^\s(]+)                   # account
            """,
            re.VERBOSE,
        ),
        "session_closed",
    ),
)

KV = re.compile(
    r"""
    (?P<key>\w+)=           # key
    (?P<value>\S*)          # value, empty when nothing follows the '='
    """,
    re.VERBOSE,
)

SUDO = re.compile(
    r"""
    \s*(?P<user>\S+)\x20:\x20           # invoking user
    (?:(?P<error>[^;]*?)\x20;\x20)?     # refusal reason (incorrect password attempts...)
    TTY=(?P<tty>\S+)\x20;\x20           # terminal
    PWD=(?P<pwd>.*?)\x20;\x20           # working directory
    USER=(?P<target_user>\S+)\x20;      # account the command runs as
    (?:\x20GROUP=\S+\x20;)?             # optional target group
    (?:\x20TSID=\S+\x20;)?              # optional I/O log id
    (?:\x20ENV=.*?\x20;)?               # optional environment
    \x20COMMAND=(?P<command>.*)         # the command line
    $
    """,
    re.VERBOSE,
)

SU: tuple[re.Pattern[str], ...] = (
    re.compile(
        r"""
        (?P<failed>FAILED\x20SU\x20)?       # 'FAILED SU ' on failure
        \(to\x20(?P<target_user>\S+)\)\x20  # target account
        (?P<user>\S+)\x20on\x20             # invoking user
        (?P<tty>\S+)                        # terminal
        $
        """,
        re.VERBOSE,
    ),
    re.compile(
        r"""
        (?P<result>Successful|FAILED)\x20su\x20for\x20  # util-linux su
        (?P<target_user>\S+)\x20by\x20(?P<user>\S+)     # target and invoking user
        $
        """,
        re.VERBOSE,
    ),
)

KERNEL = re.compile(
    r"""
    \[\s*(?P<kt>\d+\.\d+)\]\x20?        # seconds since boot
    (?P<rest>.*)
    $
    """,
    re.VERBOSE | re.DOTALL,
)

NETFILTER_PREFIX = re.compile(
    r"""
    (?P<prefix>.*?)\s*                  # log prefix, e.g. '[UFW BLOCK]'
    \bIN=                               # the first netfilter key
    """,
    re.VERBOSE | re.DOTALL,
)

NETFILTER_KV = re.compile(
    r"""
    (?P<key>[A-Z][A-Z0-9]*)=            # upper-case key: IN, SRC, DPT...
    (?P<value>\S*)                      # value, empty for 'OUT='
    """,
    re.VERBOSE,
)

_INT_KEYS = frozenset({"uid", "euid"})


def _none(value: str | None) -> str | None:
    return value if value else None


def _kv(text: str, out: dict[str, Any]) -> None:
    for key, value in KV.findall(text):
        if key in _INT_KEYS and value.isdigit():
            out[key] = int(value)
        else:
            out[key] = value or None


def parse_pam(text: str, out: dict[str, Any]) -> bool:
    """PAM messages (with the ``pam_x(service:type):`` prefix already removed)."""
    for pattern, event_type in PAM_MESSAGES:
        m = pattern.match(text)
        if m is None:
            continue
        out["event_type"] = event_type
        groups = m.groupdict()
        if "kv" in groups:
            _kv(groups["kv"], out)
        if groups.get("count"):
            out["count"] = int(groups["count"])
        user = groups.get("user")
        if user and user != "unknown":
            out["user"] = user
        if "logname" in groups:
            out["logname"] = _none(groups["logname"])
        if groups.get("uid"):
            out["uid"] = int(groups["uid"])
        return True
    return False


def parse_sshd(text: str, out: dict[str, Any]) -> None:
    m = REPEATED.match(text)
    if m is not None:
        out["repeated"] = int(m["count"])
        text = m["inner"]
    m = PAM_PREFIX.match(text)
    if m is not None:
        out["pam_module"] = m["module"]
        out["pam_service"] = m["service"]
        parse_pam(m["rest"], out)
        return
    if text.startswith("PAM ") and parse_pam(text[4:], out):
        out["pam_service"] = "sshd"
        return
    for pattern, event_type in SSHD:
        m = pattern.match(text)
        if m is None:
            continue
        groups = m.groupdict()
        if event_type is None:
            method = groups["method"].split("/", 1)[0].replace("-", "_")
            event_type = f"{groups['result'].lower()}_{method}"
            out["auth_method"] = groups["method"]
        elif event_type == "disconnect" and groups.get("preauth"):
            event_type = "preauth_disconnect"
        out["event_type"] = event_type
        user = groups.get("user") or groups.get("user2")
        if user is not None:
            out["user"] = user
        if user is not None and ("invalid" in groups or event_type.startswith("invalid_user")):
            out["invalid_user"] = bool(
                event_type.startswith("invalid_user")
                or groups.get("invalid")
                or groups.get("invalid2")
            )
        if groups.get("ip"):
            out["src_ip"] = groups["ip"]
        if groups.get("port"):
            out["src_port"] = int(groups["port"])
        if groups.get("rhost"):
            out["rhost"] = groups["rhost"]
        if groups.get("reason") is not None:
            out["reason"] = groups["reason"]
        if "preauth" in groups:
            out["preauth"] = groups["preauth"] is not None
        return


def parse_sudo(text: str, out: dict[str, Any]) -> None:
    m = PAM_PREFIX.match(text)
    if m is not None:
        out["pam_module"] = m["module"]
        out["pam_service"] = m["service"]
        parse_pam(m["rest"], out)
        return
    m = SUDO.match(text)
    if m is None:
        return
    error = m["error"]
    out["event_type"] = "command_denied" if error else "command"
    out["user"] = m["user"]
    out["tty"] = m["tty"]
    out["pwd"] = m["pwd"]
    out["target_user"] = m["target_user"]
    out["command"] = m["command"]
    if error:
        out["error"] = error


def parse_su(text: str, out: dict[str, Any]) -> None:
    m = PAM_PREFIX.match(text)
    if m is not None:
        out["pam_module"] = m["module"]
        out["pam_service"] = m["service"]
        parse_pam(m["rest"], out)
        return
    for pattern in SU:
        m = pattern.match(text)
        if m is None:
            continue
        groups = m.groupdict()
        failed = groups.get("failed") or groups.get("result") == "FAILED"
        out["event_type"] = "su_failed" if failed else "su_success"
        out["user"] = groups["user"]
        out["target_user"] = groups["target_user"]
        if "tty" in groups:
            out["tty"] = groups["tty"]
        return


def parse_kernel(text: str, out: dict[str, Any]) -> None:
    m = KERNEL.match(text)
    if m is not None:
        out["kernel_time"] = float(m["kt"])
        text = m["rest"]
    if "IN=" in text and "SRC=" in text:
        p = NETFILTER_PREFIX.match(text)
        if p is not None and p["prefix"]:
            out["log_prefix"] = p["prefix"].strip("[] ")
        for key, value in NETFILTER_KV.findall(text):
            out[key] = value or None


def parse_generic(text: str, out: dict[str, Any]) -> None:
    m = PAM_PREFIX.match(text)
    if m is not None:
        out["pam_module"] = m["module"]
        out["pam_service"] = m["service"]
        parse_pam(m["rest"], out)


#: Message parsers by program; others only get the PAM check of :func:`parse_generic`.
PARSERS: dict[str, Callable[[str, dict[str, Any]], None]] = {
    "sshd": parse_sshd,
    "sudo": parse_sudo,
    "su": parse_su,
    "kernel": parse_kernel,
}


def _pri(pri: str | None) -> tuple[str | None, str | None]:
    if pri is None:
        return None, None
    value = int(pri)
    if value > 191:
        return None, None
    return FACILITIES[value >> 3], SEVERITIES[value & 7]


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_rfc3339(text: str) -> str | None:
    """An RFC 3339 time as ISO 8601 UTC text, or None when it is not one."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return _iso(dt)


class BsdClock:
    """Turns RFC 3164 ``Mon dd hh:mm:ss`` into ISO 8601 UTC text, inferring the year."""

    def __init__(self, reference: datetime, tz: tzinfo = UTC) -> None:
        self.reference = reference
        self.tz = tz
        self._dates: dict[tuple[str, str], datetime | None] = {}

    def __call__(self, mon: str, day: str, clock: str, frac: str | None) -> str | None:
        date = self._dates.get((mon, day), False)
        if date is False:
            date = self._date(mon, day)
            self._dates[(mon, day)] = date
        if date is None:
            return None
        try:
            h, m, s = int(clock[0:2]), int(clock[3:5]), int(clock[6:8])
            dt = date.replace(hour=h, minute=m, second=s)
            if frac:
                dt = dt.replace(microsecond=int(frac[1:7].ljust(6, "0")))
        except ValueError:
            return None
        if self.tz is UTC:
            return dt.isoformat().replace("+00:00", "Z")
        return _iso(dt)

    def _date(self, mon: str, day: str) -> datetime | None:
        year = self.reference.year
        try:
            dt = datetime(year, MONTHS[mon], int(day), tzinfo=self.tz)
        except ValueError:
            try:  # 29 February of the year before
                dt = datetime(year - 1, MONTHS[mon], int(day), tzinfo=self.tz)
            except ValueError:
                return None
            return dt
        if dt - self.reference > FUTURE_SLACK:
            try:
                dt = dt.replace(year=year - 1)
            except ValueError:
                return None
        return dt


class HeaderParser:
    """Parses one syslog line's header into the base fields; shared with the CEF format."""

    def __init__(self, clock: BsdClock) -> None:
        self.clock = clock

    def __call__(self, line: str) -> dict[str, Any] | None:
        if line.startswith("<"):
            m = RFC5424.match(line)
            if m is not None:
                facility, severity = _pri(m["pri"])
                ts, host, app, procid, msgid, sd = m.group(
                    "ts", "host", "app", "procid", "msgid", "sd"
                )
                fields = {
                    "timestamp": None if ts == "-" else parse_rfc3339(ts),
                    "hostname": None if host == "-" else host,
                    "program": None if app == "-" else app,
                    "pid": int(procid) if procid.isascii() and procid.isdigit() else None,
                    "facility": facility,
                    "severity": severity,
                    "msgid": None if msgid == "-" else msgid,
                    "structured_data": None if sd in (None, "-") else sd,
                    "message": m["msg"] or "",
                }
                # rsyslog forwards an old PAM tag, ``sshd(pam_unix)[pid]:``, as the APP-NAME
                # ``sshd(pam_unix)``: the program and its subsystem, as in RFC 3164.
                if app.endswith(")") and (old := APP_SUB.fullmatch(app)) is not None:
                    fields["program"] = old["program"]
                    fields["_sub"] = old["sub"]
                return fields
        m = RFC3164.match(line)
        if m is None:
            return None
        if m["iso"] is not None:
            timestamp = parse_rfc3339(m["iso"])
        else:
            timestamp = self.clock(m["mon"], m["day"], m["clock"], m["frac"])
        if timestamp is None:
            return None
        facility, severity = _pri(m["pri"])
        rest = m["msg"]
        tag = TAG.match(rest)
        if tag is not None:
            program, sub, pid = tag.group("program", "sub", "pid")
            message = rest[tag.end() :]
        else:
            program = sub = pid = None
            message = rest
        fields: dict[str, Any] = {
            "timestamp": timestamp,
            "hostname": m["host"],
            "program": program,
            "pid": int(pid) if pid else None,
            "facility": facility,
            "severity": severity,
            "msgid": None,
            "structured_data": None,
            "message": message,
        }
        if sub:
            fields["_sub"] = sub
        return fields


def reference_time(path: str, year: int | None = None) -> datetime:
    """The anchor for RFC 3164's missing year: the end of ``year`` when given, else the file's
    modification time, else now."""
    if year is not None:
        return datetime(year, 12, 31, 23, 59, 59, tzinfo=UTC)
    try:
        return datetime.fromtimestamp(os.stat(path).st_mtime, UTC)
    except (OSError, ValueError, OverflowError):
        return datetime.now(UTC)


class SyslogFormat(Format):
    name = "syslog"
    description = "Syslog text (RFC 3164 / RFC 5424) with sshd, PAM, sudo, su and kernel parsing"
    logsource: ClassVar[dict[str, str]] = {"product": "linux"}
    schema = SCHEMA
    #: The quarantine reason of a line that is neither syslog nor an audit record.
    unreadable: ClassVar[str] = "syslog: no timestamp/header"

    def __init__(self, year: int | None = None, tz: tzinfo = UTC, **options: Any) -> None:
        super().__init__(tz=tz, **options)
        self.year = year

    @classmethod
    def sniff(cls, head: bytes, path: str) -> int:
        lines = head_lines(head, 5)
        if not lines:
            return 0
        hits = sum(1 for line in lines if looks_like_syslog(line))
        if hits == len(lines):
            return 70
        if hits * 2 > len(lines):
            return 50
        return 0

    def records(self, stream: IO[bytes], path: str, quarantine: Quarantine) -> Iterator[Record]:
        reference = reference_time(path, self.year)
        header = HeaderParser(BsdClock(reference, self.tz))
        parsers = PARSERS
        services = SERVICES
        audit = AuditAssembler(path, quarantine)
        for lineno, raw, line in self.text_lines(stream, path, quarantine):
            if line.startswith(("type=", "node=")):  # a bare audit record (audit.log)
                yield from audit.feed(line, raw, lineno)
                continue
            fields = header(line)
            if fields is None:
                quarantine.add(path, lineno, self.unreadable, raw)
                continue
            program = fields["program"]
            sub = fields.pop("_sub", None)
            message = fields["message"]
            start = audit_start(message)
            if start >= 0:
                yield from audit.feed(message[start:], raw, lineno, fields["hostname"])
                continue
            fields["service"] = (
                services.get(program, DEFAULT_SERVICE) if program else DEFAULT_SERVICE
            )
            if is_sysmon(program, message):
                record = _sysmon(fields, raw, lineno, path, quarantine)
                if record is not None:
                    yield record
                continue
            if sub is not None and sub.startswith("pam_"):
                fields["pam_module"] = sub
                fields["pam_service"] = program
                parse_pam(message, fields)
            else:
                parse = parsers.get(program) if program else None
                (parse or parse_generic)(message, fields)
            yield fields, lineno, fields["timestamp"], fields["hostname"]
        yield from audit.finish()


def _sysmon(
    fields: dict[str, Any], raw: bytes, lineno: int, path: str, quarantine: Quarantine
) -> Record | None:
    """A Sysmon for Linux message: the header fields and the event's, or None (quarantined)."""
    message = fields.pop("message")
    if "\ufffd" in message:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            quarantine.add(path, lineno, "sysmon: invalid UTF-8 in the event", raw)
            return None
    try:
        event = parse_event(message)
    except SysmonError as exc:
        quarantine.add(path, lineno, f"sysmon: {exc}", raw)
        return None
    fields.update(event)
    time = event.get("SystemTime")
    time = parse_rfc3339(time) if isinstance(time, str) else None
    host = event.get("Computer")
    return (
        fields,
        lineno,
        time or fields["timestamp"],
        host if isinstance(host, str) and host else fields["hostname"],
    )


def looks_like_syslog(line: str) -> bool:
    m = RFC5424.match(line) if line.startswith("<") else None
    return m is not None or RFC3164.match(line) is not None
