"""Normalising Windows event records (the XML-as-JSON shape of the ``evtx`` parser) into the flat
field names Sigma rules use: ``EventID``, ``Channel``, ``Provider_Name``, ``Computer``, and every
``EventData`` / ``UserData`` item by its own name.
"""

from __future__ import annotations

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
            out[key] = value
            if " " in key:
                # Defender and others name data items "Threat Name"; Sigma rules (like THOR and
                # Hayabusa) use the name without spaces.
                out.setdefault(key.replace(" ", ""), value)
    elif data is not None:
        out["Data"] = data if type(data) is list else [data]
    user = event.get("UserData")
    if type(user) is dict:
        _leaves(user, out)
    if out.get("EventID") == 4688 and out.get("Channel") == "Security":
        for src, dst in _PROCESS_ALIASES_4688:
            if src in out and dst not in out:
                out[dst] = out[src]
    return out, out.get("SystemTime"), out.get("Computer")
