"""What the entity detectors need from a normalised event, whatever format it came in.

The formats keep their own field names (syslog's ``event_type``/``user``/``src_ip``, Windows'
``EventID``/``TargetUserName``/``IpAddress``, auditd's ``type``/``SYSCALL``/``exe``/``ppid``,
the web log's ``c-ip``/``sc-bytes``); this module reads them into a few facts: a logon
(success or failure), a process start, a service installed, an account change and a web
response. An event that lacks what a fact needs gives no fact: it is skipped, never a crash.

An auditd ``execve`` names its parent only by process id: :class:`ExecParents` remembers which
program each process id of a host ran, so a start whose parent was itself seen starting
becomes a parent-child pair (others are skipped). It is memory only: process ids do not
outlive a restart of the machine, and need not outlive one of the detector.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from qorgan.detection.anomaly.entities import clean

#: Windows logon types that are a person or a remote client logging on (interactive, network,
#: unlock, remote interactive, cached); service and batch logons are machinery.
PERSON_LOGON_TYPES = frozenset({2, 3, 7, 10, 11})
#: Windows accounts that are the system itself.
SYSTEM_ACCOUNTS = frozenset(
    {"system", "anonymous logon", "local service", "network service", "-", ""}
)
#: PAM services whose "session opened" is a logon; su, sudo and cron open sessions for an
#: account already logged on, or for none.
LOGON_PAM_SERVICES = frozenset(
    {"sshd", "login", "gdm", "gdm-password", "lightdm", "xrdp", "vsftpd", "kdm", "remote"}
)
#: Group names (lower case) whose members administer the machine or the domain.
ADMIN_GROUPS = frozenset(
    {
        "sudo", "wheel", "admin", "root", "adm",
        "administrators", "domain admins", "enterprise admins", "schema admins",
        "backup operators", "account operators", "server operators",
    }
)  # fmt: skip
#: Windows: member added to a local, global or universal security group.
GROUP_ADD_EVENTS = frozenset({4732, 4728, 4756})
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})

USERADD = re.compile(r"new user: name=(?P<user>[^,]+),")
GROUP_ADD = (
    # usermod / useradd -G: "add 'eve' to group 'sudo'", "add 'eve' to shadow group 'sudo'"
    re.compile(r"add '(?P<user>[^']+)' to (?:shadow )?group '(?P<group>[^']+)'"),
    # gpasswd -a: "user eve added by root to group sudo"
    re.compile(r"user (?P<user>\S+) added by \S+ to group (?P<group>\S+)"),
    # adduser / gpasswd: "add user 'eve' to group 'sudo'"
    re.compile(r"add(?:ing)? user '?(?P<user>[^' ]+)'? to group '?(?P<group>[^' ]+)'?"),
)
ACCOUNT_PROGRAMS = frozenset({"useradd", "usermod", "gpasswd", "adduser", "groupmems"})


@dataclass(frozen=True, slots=True)
class Logon:
    success: bool
    user: str | None
    host: str | None
    ip: str | None
    weight: int = 1
    #: ``host:pid`` of the sshd process, to count "Accepted" and its PAM session once, and
    #: "Failed password" and its PAM "authentication failure" once.
    session: str | None = None
    #: From PAM ("session opened", "authentication failure"): maybe the twin of an sshd line.
    pam_session: bool = False


@dataclass(frozen=True, slots=True)
class ProcessStart:
    host: str
    parent: str
    child: str
    user: str | None


@dataclass(frozen=True, slots=True)
class ServiceInstall:
    host: str
    name: str
    image: str | None


@dataclass(frozen=True, slots=True)
class AccountChange:
    host: str
    kind: str  # "new_user" or "admin_group_add"
    user: str
    group: str | None


@dataclass(frozen=True, slots=True)
class Response:
    entity: str  # "user" or "client"
    key: str
    size: int
    user: str | None


Fact = Logon | ProcessStart | ServiceInstall | AccountChange | Response


def _event_id(event: dict[str, Any]) -> int | None:
    value = event.get("EventID")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def basename(path: str) -> str:
    """``C:\\Windows\\System32\\cmd.exe`` -> ``cmd.exe``; ``/usr/bin/bash`` -> ``bash``
    (lower case: Windows paths are case-insensitive and a pair must not split on case)."""
    return re.split(r"[\\/]", path)[-1].lower()


def _ip(value: Any) -> str | None:
    ip = clean(value)
    return None if ip is None or ip in LOOPBACK else ip


class ExecParents:
    """Which program each ``host:pid`` ran last (auditd execve), the ``cap`` most recent."""

    def __init__(self, cap: int = 100_000) -> None:
        self.cap = cap
        self._exe: OrderedDict[str, str] = OrderedDict()

    def started(self, host: str, pid: str, exe: str) -> None:
        """Record that ``pid`` of ``host`` ran ``exe``."""
        key = f"{host}:{pid}"
        self._exe[key] = exe
        self._exe.move_to_end(key)
        if len(self._exe) > self.cap:
            self._exe.popitem(last=False)

    def parent(self, host: str, ppid: str) -> str | None:
        return self._exe.get(f"{host}:{ppid}")


def facts(
    event: dict[str, Any], host: str | None, parents: ExecParents | None = None
) -> list[Fact]:
    """The facts of one event (usually none or one)."""
    event_id = _event_id(event)
    if event_id is not None:
        return _windows(event, event_id, clean(host or event.get("Computer")))
    if isinstance(event.get("type"), list):
        return _audit(event, clean(host or event.get("node")), parents)
    if "sc-bytes" in event or "c-ip" in event:
        return _web(event)
    if "event_type" in event or "program" in event:
        return _syslog(event, clean(host or event.get("hostname")))
    return []


def _windows(event: dict[str, Any], event_id: int, host: str | None) -> list[Fact]:
    if host is None:
        return []
    if event_id in (4624, 4625):
        user = clean(event.get("TargetUserName"))
        if user is None or user.lower() in SYSTEM_ACCOUNTS or user.endswith("$"):
            return []
        logon_type = event.get("LogonType")
        if event_id == 4624 and logon_type not in PERSON_LOGON_TYPES:
            return []
        domain = clean(event.get("TargetDomainName"))
        name = f"{domain}\\{user}" if domain and event_id == 4624 else user
        return [Logon(event_id == 4624, name, host, _ip(event.get("IpAddress")))]
    if event_id in (1, 4688):  # Sysmon (Windows and Linux) process creation, Security 4688
        parent = clean(event.get("ParentImage"))
        child = clean(event.get("Image"))
        if parent is None or child is None:
            return []
        user = clean(event.get("User") or event.get("SubjectUserName"))
        return [ProcessStart(host, basename(parent), basename(child), user)]
    if event_id in (7045, 4697):
        name = clean(event.get("ServiceName"))
        if name is None:
            return []
        image = clean(event.get("ImagePath") or event.get("ServiceFileName"))
        return [ServiceInstall(host, name, image)]
    if event_id == 4720:
        user = clean(event.get("SamAccountName") or event.get("TargetUserName"))
        return [] if user is None else [AccountChange(host, "new_user", user, None)]
    if event_id in GROUP_ADD_EVENTS:
        group = clean(event.get("TargetUserName"))
        member = clean(event.get("MemberName")) or clean(event.get("MemberSid"))
        if group is None or member is None or group.lower() not in ADMIN_GROUPS:
            return []
        return [AccountChange(host, "admin_group_add", member, group)]
    return []


def _audit(event: dict[str, Any], host: str | None, parents: ExecParents | None) -> list[Fact]:
    if host is None:
        return []
    types = event["type"]
    if event.get("SYSCALL") == "execve" and parents is not None:
        exe, pid, ppid = clean(event.get("exe")), clean(event.get("pid")), clean(event.get("ppid"))
        if exe is None or pid is None:
            return []
        parent = parents.parent(host, ppid) if ppid is not None else None
        parents.started(host, pid, exe)
        if parent is None:
            return []
        user = clean(event.get("auid"))
        user = None if user in (None, "4294967295", "-1") else user
        return [ProcessStart(host, basename(parent), basename(exe), user)]
    if "USER_LOGIN" in types:
        user = clean(event.get("acct") or event.get("id"))
        ip = _ip(event.get("addr"))
        return [Logon(event.get("res") == "success", user, host, None if ip == "?" else ip)]
    if "ADD_USER" in types:
        user = clean(event.get("acct") or event.get("id"))
        return [] if user is None else [AccountChange(host, "new_user", user, None)]
    return []


def _web(event: dict[str, Any]) -> list[Fact]:
    size = event.get("sc-bytes")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return []
    user = clean(event.get("c-username") or event.get("cs-username"))
    if user is not None:
        return [Response("user", user, size, user)]
    client = clean(event.get("c-ip"))
    return [] if client is None else [Response("client", client, size, None)]


def _syslog(event: dict[str, Any], host: str | None) -> list[Fact]:
    if host is None:
        return []
    kind = event.get("event_type")
    program = event.get("program")
    weight = event.get("repeated") if isinstance(event.get("repeated"), int) else 1
    pid = event.get("pid")
    session = f"{host}:{pid}" if isinstance(pid, int) else None
    if isinstance(kind, str):
        if kind.startswith("accepted_"):
            ip = _ip(event.get("src_ip"))
            return [Logon(True, clean(event.get("user")), host, ip, session=session)]
        if kind.startswith("failed_") and kind != "failed_none":
            ip = _ip(event.get("src_ip"))
            return [Logon(False, clean(event.get("user")), host, ip, weight, session=session)]
        if kind == "auth_failure" and event.get("pam_service") in LOGON_PAM_SERVICES:
            ip = _ip(event.get("rhost"))
            user = clean(event.get("user"))
            return [Logon(False, user, host, ip, weight, session=session, pam_session=True)]
        if kind == "session_opened" and event.get("pam_service") in LOGON_PAM_SERVICES:
            user = clean(event.get("user"))
            return [Logon(True, user, host, None, session=session, pam_session=True)]
        return []
    if program in ACCOUNT_PROGRAMS:
        return _account(str(event.get("message") or ""), host)
    return []


def _account(message: str, host: str) -> list[Fact]:
    m = USERADD.search(message)
    if m is not None:
        user = clean(m["user"])
        return [] if user is None else [AccountChange(host, "new_user", user, None)]
    for regex in GROUP_ADD:
        m = regex.search(message)
        if m is not None:
            user, group = clean(m["user"]), clean(m["group"])
            if user is None or group is None or group.lower() not in ADMIN_GROUPS:
                return []
            return [AccountChange(host, "admin_group_add", user, group)]
    return []
