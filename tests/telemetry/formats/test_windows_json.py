"""Windows events forwarded as JSON by Winlogbeat and NXLog (``im_msvistalog`` + ``to_json()``)
are read into the fields the EVTX reader gives, so SigmaHQ's Windows rules run on them alike.

The differential test takes real EVTX records (EVTX-ATTACK-SAMPLES: Security, Sysmon,
PowerShell, Windows PowerShell, System, Application, Defender), writes each as Winlogbeat and as
NXLog would send it -- the converters below do what each agent does to a record, read from their
sources (Winlogbeat ``winlogbeat/sys/winevent``, NXLog CE ``im_msvistalog.c``) -- and hunts the
EVTX files and the two JSON-lines files with SigmaHQ's Windows rules. Each converter also says
which fields of the record its agent does not deliver as the EVTX reader gives them
(``Converted.altered``: left out, or added, as Winlogbeat's ``paramN``): on every record, every
field a rule reads is the same as from EVTX (as text, as rules see it) unless the agent altered
it, and the alerts (rule, record, in record order) are the same unless the rule reads a field
the agent altered on that record. Values are converted as the evtx parser renders them;
Windows renders GUIDs with braces where the parser does not, which no rule reads.

The samples in ``tests/data/windows_json`` are written as the agents document their output:
Winlogbeat 8 (``event_id`` as text) and 7 (a number), NXLog CE and EE, and JSON logs that are
not Windows events (with ``EventID``, ``Channel`` or ``winlog`` keys) and must stay as they are.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import evtx
import orjson
import pytest

from qorgan.detection.alerts import Alert
from qorgan.detection.hunt import run_hunt
from qorgan.detection.loader import compile_texts, load_plan
from qorgan.detection.matchers import elements
from qorgan.detection.plan import And, Not, Or, Plan, Ref
from qorgan.pipeline.detector import parse
from qorgan.pipeline.models import Overflow, Transport
from qorgan.pipeline.sources import SourceInfo
from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.formats import detect_format
from qorgan.telemetry.formats.json import JsonFormat
from qorgan.telemetry.options import ReadOptions
from qorgan.telemetry.quarantine import Quarantine
from qorgan.telemetry.receivers.http_body import documents, messages
from qorgan.telemetry.sources import read_file

from .helpers import read_bytes

DATA = Path(__file__).resolve().parents[2] / "data" / "windows_json"
#: The zone of the NXLog collector hosts (NXLog CE writes EventTime in local time, no zone).
ALMATY = ZoneInfo("Asia/Almaty")

#: EVTX files of EVTX-ATTACK-SAMPLES, chosen for channel variety and for alerts.
SAMPLES = (
    # System
    "Credential Access/Zerologon_CVE-2020-1472_DFIR_System_NetLogon_Error_EventID_5805.evtx",
    "Defense Evasion/DE_104_system_log_cleared.evtx",
    "Defense Evasion/DE_WinEventLogSvc_Crash_System_7036.evtx",
    "Lateral Movement/LM_Remote_Service02_7045.evtx",
    "Lateral Movement/LM_dcom_shwnd_shbrwnd_mmc20_failed_traces_system_10016.evtx",
    "Privilege Escalation/System_7045_namedpipe_privesc.evtx",
    # PowerShell and Windows PowerShell
    "Credential Access/Powershell_4104_MiniDumpWriteDump_Lsass.evtx",
    "Credential Access/phish_windows_credentials_powershell_scriptblockLog_4104.evtx",
    "Other/emotet/exec_emotet_ps_4104.evtx",
    "Other/emotet/exec_emotet_ps_800_get-item.evtx",
    "Other/emotet/exec_emotet_ps_800_new-object.evtx",
    # Application (unnamed EventData) and Defender (names with spaces)
    "Credential Access/MSSQL_multiple_failed_logon_EventID_18456.evtx",
    "Credential Access/dc_applog_ntdsutil_dfir_325_326_327.evtx",
    "Defense Evasion/DE_xp_cmdshell_enabled_MSSQL_EID_15457.evtx",
    "Lateral Movement/LM_xp_cmdshell_MSSQL_Events.evtx",
    "AutomatedTestingTools/WinDefender_Events_1117_1116_AtomicRedTeam.evtx",
    # Security
    "Credential Access/ACL_ForcePwd_SPNAdd_User_Computer_Accounts.evtx",
    "Credential Access/CA_DCSync_4662.evtx",
    "Credential Access/CA_hashdump_4663_4656_lsass_access.evtx",
    "Defense Evasion/DE_Fake_ComputerAccount_4720.evtx",
    "Lateral Movement/LM_4624_mimikatz_sekurlsa_pth_source_machine.evtx",
    "Lateral Movement/LM_ScheduledTask_ATSVC_target_host.evtx",
    "Lateral Movement/LM_renamed_psexecsvc_5145.evtx",
    "Persistence/DACL_DCSync_Right_Powerview_ Add-DomainObjectAcl.evtx",
    "Persistence/persistence_security_dcshadow_4742.evtx",
    "Privilege Escalation/4624 LT3 AnonymousLogon Localhost - JuicyPotato.evtx",
    "Privilege Escalation/security_4624_4673_token_manip.evtx",
    # Sysmon, and Sysmon with Security
    "Credential Access/discovery_sysmon_1_iis_pwd_and_config_discovery_appcmd.evtx",
    "Credential Access/ppl_bypass_ppldump_knowdll_hijack_sysmon_security.evtx",
    "Credential Access/sysmon_10_11_outlfank_dumpert_and_andrewspecial_memdump.evtx",
    "Defense Evasion/Sysmon_12_DE_AntiForensics_MRU_DeleteKey.evtx",
    "Defense Evasion/sysmon_13_rdp_settings_tampering.evtx",
    "Execution/sysmon_exec_from_vss_persistence.evtx",
    "Lateral Movement/LM_sysmon_psexec_smb_meterpreter.evtx",
    "Lateral Movement/LM_wmiexec_impacket_sysmon_whoami.evtx",
    "Lateral Movement/smbmap_upload_exec_sysmon.evtx",
    "Other/maldoc_mshta_via_shellbrowserwind_rundll32.evtx",
    "Persistence/sysmon_20_21_1_CommandLineEventConsumer.evtx",
    "Privilege Escalation/EfsPotato_sysmon_17_18_privesc_seimpersonate_to_system.evtx",
    "Privilege Escalation/privesc_spoolsv_spl_file_write_sysmon11.evtx",
)
SHAPES = ("winlogbeat", "nxlog")


# -- reading EVTX JSON ---------------------------------------------------------------------------


def _attrs(value: Any) -> dict[str, Any]:
    if type(value) is dict and type(value.get("#attributes")) is dict:
        return value["#attributes"]
    return {}


def _text(value: Any) -> Any:
    return value.get("#text") if type(value) is dict else value


def _rendered(value: Any) -> str:
    """A value as Windows renders it into the event's XML text."""
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


@dataclass
class Record:
    """An EVTX record in the parts the agents read."""

    number: int
    system: dict[str, Any]
    #: EventData items in order: (name, or None for an unnamed ``Data``; value).
    items: list[tuple[str | None, Any]]
    #: UserData's first element: its name and its children (name, value).
    user: tuple[str, list[tuple[str, Any]]] | None
    #: The names the EVTX reader gives UserData's items (its leaves and attributes).
    user_names: set[str]

    @classmethod
    def of(cls, number: int, doc: dict[str, Any]) -> Record:
        event = doc["Event"]
        system = event["System"]
        flat: dict[str, Any] = {}
        for key, value in system.items():
            if key in ("Provider", "TimeCreated", "Correlation", "Execution", "Security"):
                flat.update(_attrs(value))
            else:
                flat[key] = _text(value)
        items: list[tuple[str | None, Any]] = []
        data = event.get("EventData")
        if type(data) is dict:
            for key, value in data.items():
                if key == "#attributes":
                    continue
                if key == "Data":
                    value = _text(value)
                    for one in value if type(value) is list else [value]:
                        items.append((None, one))
                else:
                    items.append((key, _text(value)))
        elif data is not None:
            items.extend((None, one) for one in (data if type(data) is list else [data]))
        user = None
        user_names: set[str] = set()
        user_data = event.get("UserData")
        if type(user_data) is dict:
            user_names = _names(user_data)
            name, element = next(iter(user_data.items()))
            children = [
                (k, _text(v))
                for k, v in (element.items() if type(element) is dict else ())
                if k != "#attributes" and (type(v) is not dict or "#text" in v)
            ]
            user = (name, children)
        return cls(number, flat, items, user, user_names)


def _names(node: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for key, value in node.items():
        if key == "#attributes":
            out.update(k for k in value if k != "xmlns")
        elif type(value) is dict and "#text" not in value:
            out |= _names(value)
        elif key != "#text":
            out.add(key)
    return out


def evtx_records(path: Path) -> list[Record]:
    return [
        Record.of(r["event_record_id"], orjson.loads(r["data"]))
        for r in evtx.PyEvtxParser(str(path)).records_json()
    ]


# -- the agents ----------------------------------------------------------------------------------


@dataclass
class Converted:
    doc: dict[str, Any]
    #: Fields this agent does not deliver as the EVTX reader gives them.
    altered: set[str] = field(default_factory=set)


_LEVEL_NAMES = {0: "information", 1: "critical", 2: "error", 3: "warning", 4: "information"}


def _keywords(system: dict[str, Any]) -> int:
    return int(system.get("Keywords") or "0", 16)


def to_winlogbeat(record: Record, n: int) -> Converted:
    """What Winlogbeat's ``Event.Fields()`` makes of the record: 8.x on even ``n`` (``event_id``
    text, ``time_created``, ``winlog.level``), 7.x on odd (a number, ``log.level``)."""
    s = record.system
    altered = {"Task", "Opcode", "Keywords", "Correlation", "Security", "EventSourceName"}
    winlog: dict[str, Any] = {"api": "wineventlog", "channel": s["Channel"]}
    eight = n % 2 == 0
    winlog["event_id"] = str(s["EventID"]) if eight else s["EventID"]

    def optional(key: str, name: str) -> None:  # AddOptional leaves zero values out
        value = s.get(name)
        if value:
            winlog[key] = value
        elif name in s:
            altered.add(name)

    optional("provider_name", "Name")
    if s.get("Guid"):
        winlog["provider_guid"] = "{" + s["Guid"].strip("{}") + "}"
    optional("record_id", "EventRecordID")
    optional("computer_name", "Computer")
    optional("version", "Version")
    optional("activity_id", "ActivityID")
    optional("related_activity_id", "RelatedActivityID")
    optional("processor_id", "ProcessorID")
    optional("kernel_time", "KernelTime")
    optional("user_time", "UserTime")
    if eight:
        winlog["time_created"] = s["SystemTime"]
    winlog["task"] = f"Task {s.get('Task')}"
    winlog["opcode"] = "Info"
    keywords = _keywords(s)
    if keywords & 0x10000000000000:
        winlog["keywords"], winlog["outcome"] = ["Audit Failure"], "failure"
    elif keywords & 0x20000000000000:
        winlog["keywords"], winlog["outcome"] = ["Audit Success"], "success"
    level = _LEVEL_NAMES.get(s.get("Level"), "verbose")
    if s.get("Level") not in (1, 2, 3, 5):
        altered.add("Level")
    if eight:
        winlog["level"] = level
    process = {}
    if s.get("ProcessID"):
        process["pid"] = s["ProcessID"]
    if s.get("ThreadID"):
        process["thread"] = {"id": s["ThreadID"]}
    altered.update(name for name in ("ProcessID", "ThreadID") if name in s and not s[name])
    if process:
        winlog["process"] = process
    if s.get("UserID"):
        winlog["user"] = {
            "identifier": s["UserID"],
            "domain": "NT AUTHORITY",
            "name": "SYSTEM",
            "type": "Well Known Group",
        }
    # AddPairs: empty values left out, unnamed items named paramN by position, the first of
    # two items of one name kept, CR LF joined into LF and a trailing LF dropped.
    event_data: dict[str, Any] = {}
    for i, (name, value) in enumerate(record.items):
        key = name if name and name != "Data" else f"param{i + 1}"
        if name is None:
            altered.add(key)  # Winlogbeat's name, which the EVTX reader does not give
        text = _rendered(value)
        if text == "":
            altered.add(name if name else "Data")
            continue
        if key in event_data:
            altered.add(key)
            continue
        event_data[key] = text.replace("\r\n", "\n").rstrip("\n")
    if event_data:
        winlog["event_data"] = event_data
    if any(name for name, _ in record.items) and all(
        re.fullmatch(r"param\d+|Binary", key) for key in event_data
    ):
        # Items named paramN (Service Control Manager 7036) look like unnamed ones to the
        # reader, which then gives them as Data too.
        altered.add("Data")
    if record.user is not None:
        xml_name, children = record.user
        user_data = {"xml_name": xml_name}
        for name, value in children:
            text = _rendered(value)
            if text != "":
                user_data.setdefault(name, text.replace("\r\n", "\n").rstrip("\n"))
        altered |= record.user_names - set(user_data)  # nested items, attributes, empty ones
        winlog["user_data"] = user_data
    stamp = datetime.fromisoformat(s["SystemTime"]).astimezone(UTC)
    doc = {
        "@timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "agent": {"type": "winlogbeat", "version": "8.15.3" if eight else "7.17.25"},
        "ecs": {"version": "8.0.0" if eight else "1.12.0"},
        "event": {"code": str(s["EventID"]), "kind": "event", "provider": s.get("Name")},
        "host": {"name": s.get("Computer")},
        "log": {"level": level},
        "message": f"Event {s['EventID']} of {s.get('Name')}",
        "winlog": winlog,
    }
    return Converted(doc, altered)


def to_nxlog(record: Record, n: int, tz: tzinfo) -> Converted:
    """What NXLog's ``im_msvistalog`` and ``to_json()`` make of the record: CE 2.x/3.x fields
    and ``EventTime`` in local time without a zone; EE names (``TaskValue``,
    ``ExecutionProcessID``, ``LevelValue``, an ``EventTime`` with its offset) on every third."""
    s = record.system
    altered = {
        "Correlation",
        "Security",
        "EventSourceName",
        "ProcessorID",
        "KernelTime",
        "UserTime",
    }
    ee = n % 3 == 0
    moment = datetime.fromisoformat(s["SystemTime"]).astimezone(tz)
    doc: dict[str, Any] = {
        "EventTime": moment.isoformat() if ee else moment.strftime("%Y-%m-%d %H:%M:%S"),
        "Hostname": s["Computer"],
    }
    keywords = _keywords(s)
    if "Keywords" in s:
        # CE writes the mask as a signed 64-bit number, EE as the text of the unsigned one.
        signed = keywords - (1 << 64) if keywords >= 1 << 63 else keywords
        doc["Keywords"] = str(keywords) if ee else signed
    level = s.get("Level", 4)
    if level == 0 and keywords & 0x10000000000000:
        doc["EventType"], doc["SeverityValue"] = "AUDIT_FAILURE", 4
    elif level == 0 and keywords & 0x20000000000000:
        doc["EventType"], doc["SeverityValue"] = "AUDIT_SUCCESS", 2
    else:
        kind = {1: "CRITICAL", 2: "ERROR", 3: "WARNING", 5: "VERBOSE"}.get(level, "INFO")
        doc["EventType"], doc["SeverityValue"] = kind, 2
        if kind == "INFO" and "Level" in s and not ee:
            altered.add("Level")
    doc["Severity"] = "INFO"
    doc["EventID"] = s["EventID"]
    doc["SourceName"] = s.get("Name")
    if s.get("Guid"):
        doc["ProviderGuid"] = "{" + s["Guid"].strip("{}").upper() + "}"
    for name, nx, nx_ee in (
        ("Version", "Version", "Version"),
        ("Task", "Task", "TaskValue"),
        ("Opcode", "OpcodeValue", "OpcodeValue"),
        ("EventRecordID", "RecordNumber", "RecordNumber"),
        ("ActivityID", "ActivityID", "ActivityID"),
        ("RelatedActivityID", "RelatedActivityID", "RelatedActivityID"),
        ("ProcessID", "ProcessID", "ExecutionProcessID"),
        ("ThreadID", "ThreadID", "ExecutionThreadID"),
    ):
        if name in s and s[name] is not None:
            doc[nx_ee if ee else nx] = s[name]
    if ee and "Level" in s:
        doc["LevelValue"] = s["Level"]
    doc["Channel"] = s["Channel"]
    if s.get("UserID"):
        doc["Domain"], doc["AccountName"] = "NT AUTHORITY", "SYSTEM"
        doc["UserID"], doc["AccountType"] = s["UserID"], "Well Known Group"
    doc["Message"] = f"Event {s['EventID']} of {s.get('Name')}"
    doc["Category"], doc["Opcode"] = "None", "Info"
    # Only <Data Name='...'> items with a value; not an item whose name is taken already.
    taken = {name.lower() for name in (*doc, "raw_event")}
    for name, value in record.items:
        if name is None or name == "Binary":
            altered.add(name or "Data")
            continue
        text = _rendered(value)
        if text == "" or name.lower() in taken:
            altered.add(name)
            continue
        doc[name] = text
        taken.add(name.lower())
    altered |= record.user_names  # CE reads no UserData
    received = moment.replace(microsecond=0)
    doc["EventReceivedTime"] = received.isoformat() if ee else str(received.replace(tzinfo=None))
    doc["SourceModuleName"], doc["SourceModuleType"] = "in", "im_msvistalog"
    return Converted(doc, altered)


# -- the corpus, converted and hunted ------------------------------------------------------------


@dataclass
class Hunted:
    events: list[dict[str, Any]]
    times: list[str | None]
    hosts: list[str | None]
    #: Per record (in order), the ids of the rules that fired on it.
    alerts: list[set[str]]


@dataclass
class Corpus:
    keys: list[tuple[str, int]]  # (EVTX path, record number) per record, in order
    altered: dict[str, list[set[str]]]  # per shape, per record
    hunted: dict[str, Hunted]  # per "evtx" and shape
    plan: Plan


def _hunt(paths: list[Path], plan: Plan, key: Callable[[Alert], int], n: int) -> Hunted:
    """Hunt ``paths`` as ``qorgan hunt --timezone Asia/Almaty`` does."""
    options = ReadOptions(tz=ALMATY)
    alerts: list[set[str]] = [set() for _ in range(n)]

    def sink(found: list[Alert]) -> None:
        for alert in found:
            alerts[key(alert)].add(alert.rule.id)

    quarantine = Quarantine()
    summary, _ = run_hunt(paths, plan, sink=sink, quarantine=quarantine, options=options)
    assert quarantine.count == 0, quarantine.records
    assert summary.events == n
    batches: list[EventBatch] = []
    for path in paths:
        batches.extend(read_file(path, quarantine, options=options))
    assert all(b.logsource == {"product": "windows"} for b in batches)
    return Hunted(
        [e for b in batches for e in b.events],
        [t for b in batches for t in b.times],
        [h for b in batches for h in b.hosts],
        alerts,
    )


@pytest.fixture(scope="module")
def windows_plan(shared_data: Path, pytestconfig: pytest.Config, tmp_path_factory: Any) -> Plan:
    """SigmaHQ's Windows rules, compiled once and kept in pytest's cache between runs."""
    cache = pytestconfig.cache
    folder = cache.mkdir("qorgan-plans") if cache else tmp_path_factory.mktemp("plans")
    plan = load_plan([shared_data / "sigma" / "rules" / "windows"], cache_dir=folder)
    assert len(plan.rules) > 2000 and not plan.failures
    return plan


@pytest.fixture(scope="module")
def corpus(shared_data: Path, windows_plan: Plan, tmp_path_factory: Any) -> Corpus:
    folder = tmp_path_factory.mktemp("windows_json")
    paths = [shared_data / "evtx-attack-samples" / name for name in SAMPLES]
    keys: list[tuple[str, int]] = []
    lines: dict[str, list[bytes]] = {shape: [] for shape in SHAPES}
    altered: dict[str, list[set[str]]] = {shape: [] for shape in SHAPES}
    for path in paths:
        for record in evtx_records(path):
            n = len(keys)
            keys.append((str(path), record.number))
            for shape, converted in (
                ("winlogbeat", to_winlogbeat(record, n)),
                ("nxlog", to_nxlog(record, n, ALMATY)),
            ):
                lines[shape].append(orjson.dumps(converted.doc))
                altered[shape].append(converted.altered)
    position = {key: i for i, key in enumerate(keys)}
    hunted = {"evtx": _hunt(paths, windows_plan, lambda a: position[(a.path, a.record)], len(keys))}
    for shape in SHAPES:
        path = folder / f"{shape}.jsonl"
        path.write_bytes(b"\n".join(lines[shape]) + b"\n")
        hunted[shape] = _hunt([path], windows_plan, lambda a: a.record - 1, len(keys))
    return Corpus(keys, altered, hunted, windows_plan)


def _texts(value: Any) -> tuple[str, ...] | None:
    """A value as the rules see it: its texts (a list's elements), None when absent."""
    return None if value is None else elements(tuple(value) if type(value) is list else value)


def _rule_fields(plan: Plan) -> dict[str, set[str | None]]:
    """Per rule id, the fields its condition and its logsource selection read (None: keywords,
    which read every value)."""

    def walk(expr: Any, out: set[str | None]) -> None:
        if type(expr) is Ref:
            atom = plan.atoms[expr.atom]
            out.add(atom.field)
            if atom.op == "fieldref":
                out.add(atom.value[0])
        elif type(expr) in (And, Or):
            for arg in expr.args:
                walk(arg, out)
        elif type(expr) is Not:
            walk(expr.arg, out)

    found: dict[str, set[str | None]] = {}
    for rule in plan.rules:
        names: set[str | None] = set()
        walk(rule.condition, names)
        walk(plan.selections[rule.selection].expr, names)
        found[rule.meta.id] = names
    return found


# -- the differential tests ----------------------------------------------------------------------


@pytest.mark.corpus
def test_corpus_spans_the_channels(corpus: Corpus) -> None:
    channels = {e["Channel"] for e in corpus.hunted["evtx"].events}
    assert len(corpus.keys) >= 400
    assert {
        "Security",
        "System",
        "Microsoft-Windows-Sysmon/Operational",
        "Microsoft-Windows-PowerShell/Operational",
        "Windows PowerShell",
        "Application",
    } <= channels
    assert sum(map(len, corpus.hunted["evtx"].alerts)) >= 150


@pytest.mark.corpus
@pytest.mark.parametrize("shape", SHAPES)
def test_same_fields_as_evtx(corpus: Corpus, shape: str) -> None:
    """Every field a rule reads is the same as from the EVTX file, on every record, except the
    fields the agent altered on that record; time and host too (NXLog CE to the second)."""
    reference, hunted = corpus.hunted["evtx"], corpus.hunted[shape]
    names = corpus.plan.fields | {"EventID", "Channel", "Provider_Name", "Computer"}
    differences = []
    for i, (ours, theirs) in enumerate(zip(reference.events, hunted.events, strict=True)):
        altered = corpus.altered[shape][i]
        for name in sorted(names - altered):
            want = _texts(ours.get(name))
            if want is not None and shape == "winlogbeat":
                want = tuple(t.replace("\r\n", "\n").rstrip("\n") for t in want)
            if _texts(theirs.get(name)) != want:
                differences.append((corpus.keys[i], name, want, theirs.get(name)))
    assert not differences, differences[:5]
    assert hunted.hosts == reference.hosts
    for i, (ours, theirs) in enumerate(zip(reference.times, hunted.times, strict=True)):
        assert ours is not None and theirs is not None
        want = datetime.fromisoformat(ours)
        if shape == "winlogbeat" and i % 2:
            want = want.replace(microsecond=want.microsecond // 1000 * 1000)  # @timestamp
        elif shape == "nxlog" and i % 3:
            want = want.replace(microsecond=0)  # CE's EventTime
        assert datetime.fromisoformat(theirs) == want, corpus.keys[i]


@pytest.mark.corpus
@pytest.mark.parametrize("shape", SHAPES)
def test_same_alerts_as_evtx(corpus: Corpus, shape: str) -> None:
    """The same rules fire on the same records as on the EVTX files, but for rules that read a
    field the agent altered on that record (a keyword rule, which reads every value, is never
    excused)."""
    reference, hunted = corpus.hunted["evtx"].alerts, corpus.hunted[shape].alerts
    reads = _rule_fields(corpus.plan)
    unexplained, explained = [], []
    for i, (ours, theirs) in enumerate(zip(reference, hunted, strict=True)):
        for rule in ours ^ theirs:
            why = reads[rule] & corpus.altered[shape][i]
            found = (corpus.keys[i], rule, "EVTX only" if rule in ours else "JSON only")
            (explained if why else unexplained).append((*found, tuple(sorted(map(str, why)))))
    assert not unexplained, unexplained
    if shape == "winlogbeat":
        assert explained == []
    else:
        # NXLog leaves out unnamed EventData items, which classic sources write (MSSQL in the
        # Application log): rules reading Data miss those records, and a rule whose filter
        # reads Data (MSSQL logons, but for local addresses) fires on all of them.
        assert explained
        assert {why for *_, why in explained} == {("Data",)}
        events = corpus.hunted["evtx"].events
        positions = {key: i for i, key in enumerate(corpus.keys)}
        assert {events[positions[key]]["Channel"] for key, *_ in explained} == {"Application"}
    evtx_only = sum(1 for _, _, where, _ in explained if where == "EVTX only")
    agreed = sum(len(a & b) for a, b in zip(reference, hunted, strict=True))
    assert agreed == sum(map(len, reference)) - evtx_only


# -- the documented shapes -----------------------------------------------------------------------


def _read(name: str, tz: tzinfo = ALMATY) -> tuple[list[EventBatch], Quarantine]:
    quarantine = Quarantine()
    batches = list(read_file(DATA / name, quarantine, options=ReadOptions(tz=tz)))
    return batches, quarantine


SECURITY_4624 = {
    "SubjectUserSid": "S-1-5-18",
    "SubjectUserName": "DC01$",
    "SubjectDomainName": "CORP",
    "SubjectLogonId": "0x3e7",
    "TargetUserSid": "S-1-5-21-1004336348-1177238915-682003330-1105",
    "TargetUserName": "alice",
    "TargetDomainName": "CORP",
    "TargetLogonId": "0x3a5f1",
    "LogonType": "10",
    "LogonProcessName": "User32 ",
    "AuthenticationPackageName": "Negotiate",
    "WorkstationName": "DC01",
    "IpAddress": "203.0.113.7",
    "IpPort": "51234",
}
SYSMON_1 = {
    "Image": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
    "CommandLine": "powershell.exe -nop -w hidden -enc SQBFAFgA",
    "ParentImage": "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE",
    "OriginalFileName": "PowerShell.EXE",
    "User": "CORP\\bob",
    "IntegrityLevel": "Medium",
    "ParentProcessId": "4312",
}


def _subset(event: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    return {k: event.get(k) for k in expected}


def test_winlogbeat_documents() -> None:
    batches, quarantine = _read("winlogbeat.jsonl")
    assert quarantine.count == 0
    assert [b.logsource for b in batches] == [{"product": "windows"}]
    logon, process, engine = batches[0].events
    # 8.x: event_id as text, winlog.time_created to the 100 ns, winlog.level.
    assert _subset(logon, SECURITY_4624) == SECURITY_4624
    assert logon["EventID"] == 4624 and logon["Channel"] == "Security"
    assert logon["Provider_Name"] == "Microsoft-Windows-Security-Auditing"
    assert logon["Computer"] == "dc01.corp.example.kz"
    assert (logon["EventRecordID"], logon["ProcessID"], logon["ThreadID"]) == (987654, 700, 812)
    assert logon["SystemTime"] == "2026-11-30T04:00:00.123456Z"
    # Level "information" may be 0 or 4; task, opcode and keywords come as names only.
    assert not {"Level", "Task", "Opcode", "Keywords", "message", "agent.type"} & set(logon)
    # 7.x: event_id a number, @timestamp the time, the SID of winlog.user.
    assert _subset(process, SYSMON_1) == SYSMON_1
    assert process["EventID"] == 1 and process["UserID"] == "S-1-5-18"
    assert process["Channel"] == "Microsoft-Windows-Sysmon/Operational"
    assert process["SystemTime"] == "2026-11-30T04:01:02.345000Z"
    # A classic source's unnamed items: param1.. as Winlogbeat names them, and Data as EVTX.
    assert engine["Data"][:2] == ["Available", "None"] and engine["param2"] == "None"
    assert "HostApplication=powershell.exe -ExecutionPolicy Bypass" in engine["Data"][2]
    assert batches[0].times == [logon["SystemTime"], process["SystemTime"], engine["SystemTime"]]
    assert batches[0].hosts == ["dc01.corp.example.kz", *["WS07.corp.example.kz"] * 2]


def test_nxlog_documents_read_eventtime_in_the_source_zone() -> None:
    batches, quarantine = _read("nxlog.jsonl")
    assert quarantine.count == 0
    assert [b.logsource for b in batches] == [{"product": "windows"}]
    logon, process, creation = batches[0].events
    assert _subset(logon, SECURITY_4624) == SECURITY_4624
    assert logon["EventID"] == 4624 and logon["Channel"] == "Security"
    assert logon["Provider_Name"] == "Microsoft-Windows-Security-Auditing"
    assert (logon["Level"], logon["Task"], logon["Opcode"]) == (0, 12544, 0)  # AUDIT_SUCCESS
    assert logon["Keywords"] == "0x8020000000000000"  # from NXLog's signed 64-bit number
    assert not {"Message", "Severity", "EventType", "SourceModuleType", "Category"} & set(logon)
    # Sysmon: the SID, not NXLog's account lookup; INFO says no level.
    assert _subset(process, SYSMON_1) == SYSMON_1
    assert process["UserID"] == "S-1-5-18" and "Level" not in process
    assert not {"AccountName", "Domain", "AccountType"} & set(process)
    # EventTime without a zone is the collector's local time (Asia/Almaty, UTC+5).
    assert batches[0].times[:2] == ["2026-11-30T05:00:00Z", "2026-11-30T05:01:02Z"]
    # EE: its field names, Keywords as text, and an EventTime with its offset.
    assert (creation["Task"], creation["ProcessID"], creation["ThreadID"]) == (13312, 4, 9216)
    assert creation["Level"] == 0 and creation["Keywords"] == "0x8020000000000000"
    assert creation["Image"] == "C:\\Windows\\System32\\certutil.exe"  # 4688 as Sysmon names it
    assert creation["ParentImage"] == "C:\\Windows\\System32\\cmd.exe"
    assert batches[0].times[2] == "2026-11-30T04:03:00.250000Z"
    assert batches[0].hosts == [
        "dc01.corp.example.kz",
        "WS07.corp.example.kz",
        "ws07.corp.example.kz",
    ]
    # Another zone for another collector.
    batches, _ = _read("nxlog.jsonl", tz=UTC)
    assert batches[0].times == [
        "2026-11-30T10:00:00Z",
        "2026-11-30T10:01:02Z",
        "2026-11-30T04:03:00.250000Z",
    ]


def test_neighbours_are_not_windows_events() -> None:
    """JSON with an ``EventID`` (even with ``Channel``) or a ``winlog`` key that is not an
    agent's event stays as it is: flattened, untagged."""
    batches, quarantine = _read("neighbour.jsonl")
    assert quarantine.count == 0
    assert [b.logsource for b in batches] == [{}]
    events = batches[0].events
    assert events[0] == {
        "time": "2026-11-30T04:00:00Z",
        "EventID": 4624,
        "Channel": "Security",
        "service": "auth-gateway",
        "user": "alice",
        "msg": "login ok",
    }
    assert events[1]["EventID"] == "login-ok" and events[1]["SourceName"] == "checkout"
    assert events[2]["winlog.event_id"] == 4624 and events[2]["host.name"] == "app02"
    assert events[3]["winlog"] == "Security 4624"
    assert batches[0].hosts == [None, None, "app02", None]


RULES = """
title: Logon from the outside
id: 0f4b8b6e-8d32-4a3c-9e36-6b4f5f0f1a01
logsource: {product: windows, service: security}
detection:
    selection: {EventID: 4624, LogonType: 10, IpAddress|cidr: 203.0.113.0/24}
    condition: selection
level: high
---
title: Office spawns an encoded PowerShell
id: 0f4b8b6e-8d32-4a3c-9e36-6b4f5f0f1a02
logsource: {product: windows, category: process_creation}
detection:
    selection:
        ParentImage|endswith: '\\WINWORD.EXE'
        CommandLine|contains: ' -enc '
    condition: selection
level: high
---
title: Certutil downloads
id: 0f4b8b6e-8d32-4a3c-9e36-6b4f5f0f1a03
logsource: {product: windows, category: process_creation}
detection:
    selection:
        Image|endswith: '\\certutil.exe'
        CommandLine|contains: '-urlcache'
    condition: selection
level: high
---
title: PowerShell run with a bypassed execution policy
id: 0f4b8b6e-8d32-4a3c-9e36-6b4f5f0f1a04
logsource: {product: windows, service: powershell-classic}
detection:
    selection: {Data|contains: '-ExecutionPolicy Bypass'}
    condition: selection
level: medium
"""


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("winlogbeat.jsonl", [(1, "1a01"), (2, "1a02"), (3, "1a04")]),
        ("nxlog.jsonl", [(1, "1a01"), (2, "1a02"), (3, "1a03")]),
        ("neighbour.jsonl", []),
    ],
)
def test_windows_rules_run_on_forwarded_events(name: str, expected: list[tuple[int, str]]) -> None:
    plan = compile_texts([RULES])
    assert not plan.failures
    alerts: list[Alert] = []
    quarantine = Quarantine()
    run_hunt(
        [DATA / name],
        plan,
        sink=alerts.extend,
        quarantine=quarantine,
        options=ReadOptions(tz=ALMATY),
    )
    assert sorted((a.record, a.rule.id[-4:]) for a in alerts) == expected


def test_a_mixed_file_tags_only_its_windows_events() -> None:
    """Per document: the Windows events of a mixed file are tagged, the others not, in order."""
    windows = (DATA / "nxlog.jsonl").read_bytes().splitlines()
    others = (DATA / "neighbour.jsonl").read_bytes().splitlines()
    data = b"\n".join([others[0], *windows[:2], others[1], windows[2]]) + b"\n"
    for text in (data, b"[" + data.strip().replace(b"\n", b",\n") + b"]"):
        batches, events, quarantine = read_bytes(JsonFormat(tz=ALMATY), text, "mixed.json")
        assert quarantine.count == 0
        assert [(b.logsource, b.records) for b in batches] == [
            ({}, [1]),
            ({"product": "windows"}, [2, 3]),
            ({}, [4]),
            ({"product": "windows"}, [5]),
        ]
        assert [e.get("EventID") for e in events] == [4624, 4624, 1, "login-ok", 4688]


def test_the_format_is_sniffed_as_json() -> None:
    for name in ("winlogbeat.jsonl", "nxlog.jsonl"):
        head = (DATA / name).read_bytes()[:4096]
        assert detect_format(head, name).name == "json"


@pytest.mark.parametrize(
    "line",
    [
        b'{"winlog": {"event_id": "four", "channel": "Security"}}',
        b'{"winlog": {"event_id": [4624], "channel": "Security"}}',
    ],
)
def test_a_winlogbeat_event_without_a_numeric_id_is_quarantined(line: bytes) -> None:
    _, events, quarantine = read_bytes(JsonFormat(), line + b"\n", "bad.json")
    assert events == []
    assert quarantine.count == 1
    assert "winlog.event_id is not a number" in quarantine.records[0].reason


def _source(tz: str) -> SourceInfo:
    return SourceInfo(
        id=1,
        organisation_id=1,
        name="windows-fleet",
        transport=Transport.http,
        format="json",
        timezone=tz,
        overflow=Overflow.wait,
        networks=(),
        certificate_cn=None,
    )


def test_live_http_ingest_reads_each_posted_event() -> None:
    """A body as Logstash's or NXLog's HTTP output posts it (an array, or one event a line)
    goes through the ingest's splitting and the detector's parsing to the same events."""
    lines = (DATA / "nxlog.jsonl").read_bytes() + (DATA / "winlogbeat.jsonl").read_bytes()
    docs = [orjson.loads(line) for line in lines.splitlines()]
    for body in (orjson.dumps(docs), lines):
        found = messages(documents(body), json_source=True)
        quarantine = Quarantine()
        records = [101, 102, 103, 104, 105, 106]
        batches = list(parse(_source("Asia/Almaty"), found, records, quarantine))
        assert quarantine.count == 0
        assert [b.logsource for b in batches] == [{"product": "windows"}]
        events = batches[0].events
        assert [e["EventID"] for e in events] == [4624, 1, 4688, 4624, 1, 400]
        assert batches[0].records == records
        assert batches[0].times[0] == "2026-11-30T05:00:00Z"  # the source's zone
        assert events[0]["TargetUserName"] == events[3]["TargetUserName"] == "alice"


def _lines(batches: Iterator[EventBatch]) -> list[dict[str, Any]]:
    return [e for b in batches for e in b.events]


def test_unreadable_documents_are_quarantined_not_guessed() -> None:
    data = b"\n".join(
        [
            b'{"EventID": 4624, "Channel": "Security", "SourceName": "x", "EventTime": 5}',
            b'{"winlog": {"event_id": 1, "channel": "Security", "event_data": "text"}}',
        ]
    )
    quarantine = Quarantine()
    events = _lines(JsonFormat().read(io.BytesIO(data + b"\n"), "odd.json", quarantine))
    assert quarantine.count == 0
    # A time NXLog was told to write as a number is not guessed at; odd event_data is skipped.
    assert events[0]["EventID"] == 4624 and "SystemTime" not in events[0]
    assert events[1] == {"EventID": 1, "Channel": "Security"}
