"""Linux audit logs: auditd's ``audit.log`` (``type=SYSCALL msg=audit(1700000000.123:456): ...``,
raw or enriched), and the same records inside syslog lines, as audisp, audisp-syslog and
rsyslog forward them (``<14>Nov 30 10:00:00 host audispd: node=host type=EXECVE msg=audit(...)``)
or the kernel prints them (``kernel: audit: type=1309 audit(...)``). Batches are tagged
``product: linux, service: auditd``; other syslog lines in such a file are read as the
``syslog`` format reads them (the two formats share one reader, and differ in sniffing and tags).

**One event per audit event.** The records of one event share ``msg=audit(time:serial)`` (and
``node=``); they are assembled into one event, complete at its ``EOE`` record, at once for a
user-space record (PAM, systemd, auditd: one record, no EOE), or when a record of the same node
comes 2 s or 256 serials later; at most 4,096 events (64 MiB) are held open, the oldest closed
first, and a record of an event already closed starts an event of its own
(:class:`~qorgan.telemetry.formats.linux_audit.AuditAssembler`). The event's time is the audit
stamp (UTC), its host ``node=`` or, without one, the syslog header's host. A record that cannot
be read (no ``type=... msg=audit(...)``, an unterminated quote, bad hex in a field the kernel
hex-encodes, a NUL byte or invalid UTF-8 in the line, a time out of range) is quarantined with
the reason (``auditd: ...``).

**Fields, as SigmaHQ's ``linux/auditd`` rules name them.** Every ``key=value`` of every record,
under its own name, plus:

- ``type``: the list of the event's record types in order, without ``EOE``
  (``['SYSCALL', 'EXECVE', 'CWD', 'PATH', 'PROCTITLE']``). A Sigma list value matches when any
  element does, so ``type: EXECVE`` selects events that have an EXECVE record, and the rule's
  other fields (``a0``, ``name``, ``exe``) are looked up in the merged event;
- a field name met in several records with different values becomes the list of its distinct
  values in record order: the ``name`` of the PATH records (``['/usr/bin/chmod',
  '/lib64/ld-linux-x86-64.so.2']``), their ``inode``, ``nametype``; ``name: /etc/ld.so.preload``
  matches when any PATH names it. Equal values stay one value (``pid`` of AVC and SYSCALL);
- ``a0``, ``a1``, ...: the EXECVE arguments, hex decoded, a long argument's chunks
  (``a1_len=9000 a1[0]=... a1[1]=...``) joined, over as many EXECVE records as the kernel
  wrote. In an event with an EXECVE record the SYSCALL record's registers ``a0``-``a3`` (the
  pointers execve was given) are ``syscall_a0``-``syscall_a3``, so that ``a0|contains: dd``
  reads the command, not a pointer that happens to hold ``dd``; without EXECVE they keep their
  names (``SYSCALL: personality`` with ``a0: 40000``);
- ``SYSCALL`` and ``ARCH``: the system call's and architecture's names (``execve``,
  ``x86_64``), as auditd's enriched format writes them and the rules use them
  (``SYSCALL: 'memfd_create'``), from ``syscall=`` and ``arch=`` with the x86_64, i386 and
  aarch64 tables of :mod:`~qorgan.telemetry.formats.linux_syscalls`; ``syscall`` keeps the
  number as written. Enriched logs' own fields after the GS separator (``AUID="root"``,
  ``SYSCALL=execve``) are kept as written;
- hex decoded: ``proctitle`` (NUL-separated arguments joined with spaces), and ``name``,
  ``cwd``, ``exe``, ``comm``, ``path``, ``ocomm``, ``data`` (TTY), ``key`` (several keys, joined
  by 0x01, become a list), ``cmd`` (USER_CMD), ``acct`` and the other fields the kernel and
  libaudit encode, when written unquoted as hex; quoted values are plain text. A decoded NUL
  (which text stores refuse) becomes U+FFFD;
- the user-space part ``msg='op=PAM:session_open acct="root" exe="/usr/sbin/cron" ...'``: its
  own fields (``op``, ``acct``, ``exe``, ``unit``, ``res``...); text that is not ``key=value``
  stays in ``msg``. SELinux's ``avc:  denied  { read } for`` gives ``seresult``/``seperms``;
  SOCKADDR's ``saddr`` gives ``saddr_fam``, ``laddr``, ``lport`` (or ``path``);
- ``service`` (``auditd``, which selects the events for ``logsource: product: linux, service:
  auditd`` in ``detection/logsources.yml``), ``timestamp``, ``serial``, ``node``. A record's
  own field of one of these names is kept as ``msg_<name>``.

The flattening loses which PATH record held which ``inode``: a rule that needs two fields of
the same PATH record (``nametype: CREATE`` with ``name|startswith: /etc/systemd/system/``) may
match them in two different records of one event.
"""

from __future__ import annotations

from typing import ClassVar

from qorgan.telemetry.formats.base import head_lines
from qorgan.telemetry.formats.linux_audit import RECORD_START
from qorgan.telemetry.formats.syslog import SyslogFormat, looks_like_syslog

SCHEMA: dict[str, str] = {
    "type": "the event's record types, in order, EOE left out (list: SYSCALL, EXECVE, PATH...)",
    "service": "auditd (selects the events for logsource product linux, service auditd)",
    "timestamp": "the audit stamp (msg=audit(seconds.ms:serial)), ISO 8601 UTC",
    "serial": "the event's serial (int), unique per boot",
    "node": "the machine: node=, else the syslog header's host (absent in a bare audit.log)",
    "SYSCALL": "system call name (execve, memfd_create...) from syscall= and arch=",
    "ARCH": "architecture name (x86_64, i386, aarch64) from arch=",
    "syscall": "system call number as written (or its name in an interpreted log)",
    "a0": "EXECVE: argument 0 (a1, a2, ... likewise), hex decoded, chunks joined; SYSCALL "
    "without EXECVE: the first register, hex number text",
    "syscall_a0": "in an event with EXECVE: the SYSCALL registers a0-a3 (syscall_a1...)",
    "argc": "EXECVE: the number of arguments",
    "proctitle": "PROCTITLE: the command line (decoded, arguments joined by spaces)",
    "name": "PATH: the path of each PATH record (a list when several differ)",
    "nametype": "PATH: NORMAL, CREATE, DELETE, PARENT... (a list when several differ)",
    "cwd": "CWD: the working directory",
    "exe": "SYSCALL / user records: the executable",
    "comm": "SYSCALL: the command name",
    "key": "the audit rule's key (a list when several)",
    "euid": "SYSCALL: effective uid (text, as written; likewise uid, auid, pid, ppid, ses...)",
    "unit": "SERVICE_START/STOP: the systemd unit (from msg='...')",
    "op": "user records: the operation (PAM:authentication, PAM:session_open, login...)",
    "acct": "user records: the account",
    "res": "user records: success or failed",
    "hostname": "user records: the remote host name PAM reports (not the machine: see node)",
    "addr": "user records: the remote address",
    "terminal": "user records: the terminal",
    "cmd": "USER_CMD: the command sudo ran (decoded)",
    "data": "TTY / USER_TTY: the keystrokes (decoded)",
    "msg": "text of a record or of its msg='...' that is not key=value",
    "seresult": "SELinux AVC: denied / granted",
    "seperms": "SELinux AVC: the permissions (a list when several)",
    "saddr_fam": "SOCKADDR: inet, inet6, local (with laddr and lport, or path)",
    "laddr": "SOCKADDR: the address",
    "lport": "SOCKADDR: the port",
}


class AuditdFormat(SyslogFormat):
    name = "auditd"
    description = (
        "Linux audit logs (audit.log, and audit records forwarded in syslog), one event per "
        "audit event"
    )
    logsource: ClassVar[dict[str, str]] = {"product": "linux", "service": "auditd"}
    schema = SCHEMA
    unreadable: ClassVar[str] = "auditd: neither an audit record nor a syslog line"

    @classmethod
    def sniff(cls, head: bytes, path: str) -> int:
        lines = head_lines(head, 10)
        if not lines:
            return 0
        hits = 0
        for line in lines:
            m = RECORD_START.search(line)
            if m is not None and (m.start() == 0 or looks_like_syslog(line)):
                hits += 1
        if hits == len(lines):
            return 90
        # Above syslog's 70 for a syslog file that is mostly audit records; the two read alike.
        return 75 if hits * 2 > len(lines) else 0
