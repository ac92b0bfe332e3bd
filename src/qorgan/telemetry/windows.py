"""Normalising Windows event records into the flat field names Sigma rules use: ``EventID``,
``Channel``, ``Provider_Name``, ``Computer``, and every ``EventData`` / ``UserData`` item by its
own name.

Three shapes come in. The ``evtx`` parser's XML-as-JSON (EVTX files, and their JSON dumps) is
the reference: :func:`normalise`. Forwarders that send Windows events as JSON are read into
the same fields, so the same rules run on them: Winlogbeat (:func:`from_winlogbeat`) and NXLog's
``im_msvistalog`` with ``to_json()`` (:func:`from_nxlog`). What a forwarder leaves out cannot be
restored, and is documented at each function; the forwarders' own fields (rendered messages,
agent and collector metadata) are not kept, so keyword rules see what they see in EVTX.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from typing import Any

#: Security 4688 names the process fields differently from Sysmon 1; Sigma's process_creation
#: taxonomy uses the Sysmon names, so both are offered.
_PROCESS_ALIASES_4688 = (("NewProcessName", "Image"), ("ParentProcessName", "ParentImage"))

SCHEMA: dict[str, str] = {
    "EventID": "event identifier (System/EventID)",
    "Channel": "event log channel, e.g. Security, Microsoft-Windows-Sysmon/Operational",
    "Provider_Name": "event provider (System/Provider/@Name)",
    "Provider_Guid": "event provider GUID",
    "Computer": "host name that recorded the event",
    "EventRecordID": "record number in the channel",
    "SystemTime": "event time (System/TimeCreated/@SystemTime), UTC",
    "Level": "event level",
    "Task": "task category",
    "Keywords": "event keywords mask",
    "UserID": "security identifier of the System/Security element",
    "ProcessID": "process id of the writer (System/Execution/@ProcessID)",
    "ThreadID": "thread id of the writer",
    "Image": "process image (Sysmon; Security 4688 NewProcessName)",
    "ParentImage": "parent process image (Sysmon; Security 4688 ParentProcessName)",
    "CommandLine": "process command line",
    "Data": "unnamed EventData values (list)",
}


def _text(value: Any) -> Any:
    """An element with attributes comes as {"#attributes": ..., "#text": v}: keep the text."""
    if type(value) is dict:
        return value.get("#text")
    return value


def _leaves(node: dict[str, Any], out: dict[str, Any]) -> None:
    for key, value in node.items():
        if key == "#attributes":
            if type(value) is dict:
                for akey, avalue in value.items():
                    if akey != "xmlns":
                        out.setdefault(akey, avalue)
        elif type(value) is dict:
            if "#text" in value:
                out[key] = value["#text"]
            else:
                _leaves(value, out)
        else:
            out[key] = value


def _data(out: dict[str, Any], key: str, value: Any) -> None:
    """One EventData item."""
    out[key] = value
    if " " in key:
        # Defender and others name data items "Threat Name"; Sigma rules (like THOR and
        # Hayabusa) use the name without spaces.
        out.setdefault(key.replace(" ", ""), value)


def _finish(out: dict[str, Any]) -> tuple[dict[str, Any], str | None, str | None]:
    if out.get("EventID") == 4688 and out.get("Channel") == "Security":
        for src, dst in _PROCESS_ALIASES_4688:
            if src in out and dst not in out:
                out[dst] = out[src]
    return out, out.get("SystemTime"), out.get("Computer")


def is_windows_record(doc: Any) -> bool:
    return type(doc) is dict and type(doc.get("Event")) is dict and "System" in doc["Event"]


def normalise(doc: dict[str, Any]) -> tuple[dict[str, Any], str | None, str | None]:
    """Flatten one record; returns (fields, time, host). Raises KeyError/TypeError if malformed."""
    event = doc["Event"]
    system = event["System"]
    out: dict[str, Any] = {}
    for key, value in system.items():
        if type(value) is not dict:
            out[key] = value
        elif key == "Provider":
            attrs = value.get("#attributes") or {}
            out["Provider_Name"] = attrs.get("Name")
            if "Guid" in attrs:
                out["Provider_Guid"] = attrs["Guid"]
            if "EventSourceName" in attrs:
                out["EventSourceName"] = attrs["EventSourceName"]
        elif "#text" in value:
            out[key] = value["#text"]
        else:
            attrs = value.get("#attributes")
            if type(attrs) is dict:
                out.update(attrs)
    data = event.get("EventData")
    if type(data) is dict:
        for key, value in data.items():
            if key == "#attributes":
                continue
            if key == "Data":
                value = _text(value)
                if type(value) is not list:
                    value = [value] if value is not None else value
            elif type(value) is dict:
                value = value.get("#text")
            _data(out, key, value)
    elif data is not None:
        out["Data"] = data if type(data) is list else [data]
    user = event.get("UserData")
    if type(user) is dict:
        _leaves(user, out)
    return _finish(out)


# -- forwarders ----------------------------------------------------------------------------------

#: Level numbers by the names forwarders give (Winlogbeat's ``winlog.level``, NXLog's
#: ``EventType``). "Information" is not among them: Windows names level 0 (log always, the
#: level of audit events) and level 4 alike, so it tells neither.
LEVELS = {"critical": 1, "error": 2, "warning": 3, "verbose": 5}
#: Winlogbeat ``winlog.*`` fields -> our names, in the order the EVTX reader gives them.
_WINLOGBEAT_SYSTEM = (
    ("provider_name", "Provider_Name", str),
    ("provider_guid", "Provider_Guid", str),
    ("event_id", "EventID", int),
    ("version", "Version", int),
)
_WINLOGBEAT_EXECUTION = (
    ("record_id", "EventRecordID", int),
    ("activity_id", "ActivityID", str),
    ("related_activity_id", "RelatedActivityID", str),
)
_WINLOGBEAT_TRACING = (
    ("processor_id", "ProcessorID"),
    ("session_id", "SessionID"),
    ("kernel_time", "KernelTime"),
    ("user_time", "UserTime"),
    ("processor_time", "ProcessorTime"),
)
#: Winlogbeat names unnamed EventData items (classic event sources) param1, param2, ... by
#: position; the EVTX reader gives them as the list ``Data``.
_PARAM = re.compile(r"param([1-9][0-9]{0,3})")


def is_winlogbeat(doc: dict[str, Any]) -> bool:
    """A Winlogbeat event: ``winlog.event_id`` and ``winlog.channel`` are there."""
    winlog = doc.get("winlog")
    return type(winlog) is dict and "event_id" in winlog and type(winlog.get("channel")) is str


def from_winlogbeat(doc: dict[str, Any]) -> tuple[dict[str, Any], str | None, str | None]:
    """A Winlogbeat event (7.x and 8.x; ``event_id`` a number or text) as the EVTX reader would
    give it; returns (fields, time, host). Raises TypeError if ``winlog.event_id`` is no number.

    The time is ``winlog.time_created`` (8.x) or ``@timestamp`` (UTC, to the millisecond).
    Unnamed EventData items, which Winlogbeat names ``param1``, ``param2``... by position, are
    also given as the list ``Data``, as the EVTX reader gives them; items that a provider
    itself names ``paramN`` (Service Control Manager's 7036) cannot be told from them and get
    a ``Data`` too. Winlogbeat leaves out, so these fields are absent: items with empty values;
    numeric ``Task``, ``Opcode`` and ``Keywords`` (it gives their names); ``Level`` when its
    name is Information; zero values (``Version`` 0); UserData items below the first level. It
    joins CR LF into LF in values and drops a trailing LF. Winlogbeat 7's script modules for
    Sysmon, Security and PowerShell (``winlogbeat-sysmon.js`` ...) move event_data items to ECS
    names (``CommandLine`` to ``process.command_line``); send without them (8.x runs them in
    Elasticsearch, which a Logstash or Vector output passes by).
    """
    winlog = doc["winlog"]
    out: dict[str, Any] = {}
    for src, dst, kind in _WINLOGBEAT_SYSTEM:
        value = winlog.get(src)
        if value is not None:
            out[dst] = _integer(value, f"winlog.{src}") if kind is int else value
    level = winlog.get("level")
    if level is None and type(doc.get("log")) is dict:
        level = doc["log"].get("level")
    if type(level) is str and level.lower() in LEVELS:
        out["Level"] = LEVELS[level.lower()]
    time = _utc(winlog.get("time_created") or doc.get("@timestamp"))
    if time is not None:
        out["SystemTime"] = time
    for src, dst, kind in _WINLOGBEAT_EXECUTION:
        value = winlog.get(src)
        if value is not None:
            out[dst] = _integer(value, f"winlog.{src}") if kind is int else value
    process = winlog.get("process")
    if type(process) is dict:
        _put_number(out, "ProcessID", process.get("pid"))
        thread = process.get("thread")
        if type(thread) is dict:
            _put_number(out, "ThreadID", thread.get("id"))
    for src, dst in _WINLOGBEAT_TRACING:
        _put_number(out, dst, winlog.get(src))
    out["Channel"] = winlog["channel"]
    computer = winlog.get("computer_name")
    if computer is not None:
        out["Computer"] = computer
    user = winlog.get("user")
    if type(user) is dict and user.get("identifier") is not None:
        out["UserID"] = user["identifier"]
    data = winlog.get("event_data")
    if type(data) is dict:
        data = _dotted(data)
        params: dict[int, Any] = {}
        for key, value in data.items():
            _data(out, key, value)
            found = _PARAM.fullmatch(key)
            if found:
                params[int(found.group(1))] = value
        if params and len(params) + ("Binary" in data) == len(data):
            # Only paramN items: unnamed data. The EVTX reader gives them as a list; items
            # with empty values were left out and come back empty (but not trailing ones).
            out["Data"] = [params.get(n, "") for n in range(1, max(params) + 1)]
    user_data = winlog.get("user_data")
    if type(user_data) is dict:
        for key, value in _dotted(user_data).items():
            if key != "xml_name":
                out[key] = value
    return _finish(out)


#: NXLog's fields of the System part -> ours (a number if the third item says so).
_NXLOG_SYSTEM = {
    "SourceName": ("Provider_Name", str),
    "ProviderGuid": ("Provider_Guid", str),
    "EventID": ("EventID", int),
    "Version": ("Version", int),
    "LevelValue": ("Level", int),
    "Task": ("Task", int),
    "TaskValue": ("Task", int),
    "OpcodeValue": ("Opcode", int),
    "RecordNumber": ("EventRecordID", int),
    "ActivityID": ("ActivityID", str),
    "RelatedActivityID": ("RelatedActivityID", str),
    "ProcessID": ("ProcessID", int),
    "ExecutionProcessID": ("ProcessID", int),
    "ThreadID": ("ThreadID", int),
    "ExecutionThreadID": ("ThreadID", int),
    "Channel": ("Channel", str),
    "Hostname": ("Computer", str),
    "UserID": ("UserID", str),
}
#: The order the EVTX reader gives the System fields in.
_SYSTEM_ORDER = (
    "Provider_Name",
    "Provider_Guid",
    "EventID",
    "Version",
    "Level",
    "Task",
    "Opcode",
    "Keywords",
    "SystemTime",
    "EventRecordID",
    "ActivityID",
    "RelatedActivityID",
    "ProcessID",
    "ThreadID",
    "Channel",
    "Computer",
    "UserID",
)
#: NXLog's own fields, not the event's: its reception and routing, the rendered message and
#: names, and its normalised severity (``EventType`` too, when it is one of NXLog's).
_NXLOG_OWN = frozenset(
    (
        "EventTime",
        "EventReceivedTime",
        "SourceModuleName",
        "SourceModuleType",
        "Severity",
        "SeverityValue",
        "Message",
        "Category",
        "Opcode",
        "Level",
        "ERROR_EVT_UNRESOLVED",
        "EventXML",
    )
)
#: NXLog's EventType values (the others are an EventData item of that name, such as Sysmon's).
_NXLOG_EVENT_TYPES = {
    "AUDIT_SUCCESS": 0,
    "AUDIT_FAILURE": 0,
    "CRITICAL": 1,
    "ERROR": 2,
    "WARNING": 3,
    "INFO": None,
    "VERBOSE": 5,
}
#: The account NXLog looks up from UserID.
_NXLOG_ACCOUNT = ("Domain", "AccountName", "AccountType")
_NXLOG_MARKS = ("SourceName", "SourceModuleType", "Hostname")


def is_nxlog(doc: dict[str, Any]) -> bool:
    """An NXLog ``im_msvistalog`` event: a numeric ``EventID``, a ``Channel``, and one of
    ``SourceName``, ``SourceModuleType``, ``Hostname``."""
    return (
        type(doc.get("Channel")) is str
        and _is_integer(doc.get("EventID"))
        and any(mark in doc for mark in _NXLOG_MARKS)
    )


def from_nxlog(
    doc: dict[str, Any], tz: tzinfo = UTC
) -> tuple[dict[str, Any], str | None, str | None]:
    """An NXLog ``im_msvistalog`` event written by ``to_json()`` (CE and EE field names) as the
    EVTX reader would give it; returns (fields, time, host).

    ``EventTime`` is the collector host's local time without a zone in NXLog CE
    (``2026-11-30 10:00:00``): it is read in ``tz`` (a live source's time zone, ``qorgan hunt
    --timezone``); a time with an offset (EE) keeps it; a number (an ``Exec`` that made it one)
    is not read. Every field that is not NXLog's own is an EventData item. NXLog leaves out, so
    these are absent: items with empty values; unnamed EventData items (``Data``, as classic
    sources and Windows PowerShell write) and UserData (CE); an item named like one of NXLog's
    fields (Sysmon's ``EventType`` and, as NXLog compares names without case, ``ProcessId``);
    ``Level`` when NXLog says INFO (levels 0 and 4 alike). NXLog CE 2.8, whose source we read,
    also wrote the account name, not the SID, as ``UserID`` and left XML escapes (``&amp;``)
    in EventData values; they are taken as they come.
    """
    system: dict[str, Any] = {}
    data: dict[str, Any] = {}
    account = "UserID" in doc
    for key, value in doc.items():
        mapped = _NXLOG_SYSTEM.get(key)
        if mapped is not None:
            name, kind = mapped
            if kind is not int:
                system[name] = value
            elif _is_integer(value):
                system[name] = int(value)
            elif key == "EventID":
                raise TypeError(f"EventID is not a number: {value!r}")
        elif key == "EventType" and type(value) is str and value in _NXLOG_EVENT_TYPES:
            level = _NXLOG_EVENT_TYPES[value]
            if level is not None and "LevelValue" not in doc:
                system["Level"] = level
        elif key == "Keywords":
            keywords = _keywords(value)
            if keywords is not None:
                system["Keywords"] = keywords
        elif key not in _NXLOG_OWN and not (account and key in _NXLOG_ACCOUNT):
            data[key] = value
    time = _utc(doc.get("EventTime"), tz)
    if time is not None:
        system["SystemTime"] = time
    out = {name: system[name] for name in _SYSTEM_ORDER if name in system}
    for key, value in data.items():
        _data(out, key, value)
    return _finish(out)


def _is_integer(value: Any) -> bool:
    if type(value) is int:
        return True
    return type(value) is str and value.isascii() and value.isdigit() and len(value) < 20


def _integer(value: Any, name: str) -> int:
    if not _is_integer(value):
        raise TypeError(f"{name} is not a number: {value!r}")
    return int(value)


def _put_number(out: dict[str, Any], name: str, value: Any) -> None:
    if _is_integer(value):
        out[name] = int(value)


def _keywords(value: Any) -> str | None:
    """The keywords mask as the EVTX reader writes it (``0x8020000000000000``), from NXLog's
    signed 64-bit number, its text, or hexadecimal text (NXLog 6)."""
    try:
        if type(value) is str:
            number = int(value, 16) if value[:2].lower() == "0x" else int(value)
        elif type(value) is int:
            number = value
        else:
            return None
    except ValueError:
        return None
    return f"0x{number & 0xFFFF_FFFF_FFFF_FFFF:x}"


def _utc(value: Any, tz: tzinfo = UTC) -> str | None:
    """ISO 8601 UTC text of an ISO 8601 time (without a zone: in ``tz``), or None."""
    if type(value) is not str:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _dotted(node: dict[str, Any], prefix: str = "", out: dict[str, Any] | None = None) -> dict:
    """Winlogbeat stores an item named ``a.b`` as ``{"a": {"b": ...}}``: back to ``a.b``."""
    if out is None:
        out = {}
    for key, value in node.items():
        if type(value) is dict:
            _dotted(value, f"{prefix}{key}.", out)
        else:
            out[prefix + key] = value
    return out
