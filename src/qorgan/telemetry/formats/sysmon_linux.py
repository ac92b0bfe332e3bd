"""Sysmon for Linux events: the XML document Sysmon writes as one syslog message (tag
``sysmon``), flattened like a Windows event (:mod:`qorgan.telemetry.windows`): ``EventID``,
``Channel`` (``Linux-Sysmon/Operational``), ``Computer``, ``Provider_Name``, ``SystemTime``...
and every ``EventData`` item by its ``Name`` (``Image``, ``CommandLine``, ``TargetFilename``,
``DestinationIp``...), so that SigmaHQ's ``product: linux`` process_creation (EventID 1),
network_connection (3) and file_event (11) rules select and read them
(``detection/logsources.yml``).

The XML is parsed with the standard library's expat, with no document type allowed: no entity
can be declared, so none is expanded (the billion-laughs and external-entity attacks need a
DTD), and an undefined entity or a reference to a character XML forbids (NUL, a lone surrogate)
is a parse error. A document that is not a Sysmon event raises :class:`SysmonError`, whose
message is the quarantine reason.
"""

from __future__ import annotations

from typing import Any
from xml.parsers import expat

CHANNEL = "Linux-Sysmon/Operational"
PROVIDER = "Linux-Sysmon"

#: System elements whose text is a number.
_INT_ELEMENTS = frozenset({"EventID", "Version", "Level", "Task", "Opcode", "EventRecordID"})
#: System element attributes kept, under these names (as the Windows normaliser names them).
_SYSTEM_ATTRIBUTES = {
    ("Provider", "Name"): "Provider_Name",
    ("Provider", "Guid"): "Provider_Guid",
    ("TimeCreated", "SystemTime"): "SystemTime",
    ("Execution", "ProcessID"): "ProcessID",
    ("Execution", "ThreadID"): "ThreadID",
    ("Security", "UserId"): "UserID",
}

SCHEMA: dict[str, str] = {
    "EventID": "Sysmon event id (int): 1 process create, 3 network connect, 5 process "
    "terminate, 9 raw access read, 11 file create, 23 file delete, 4/16 state and config",
    "Channel": "Linux-Sysmon/Operational",
    "Provider_Name": "Linux-Sysmon",
    "Computer": "host name Sysmon reports",
    "SystemTime": "event time (System/TimeCreated/@SystemTime), UTC",
    "EventRecordID": "Sysmon's record number (int)",
    "Image": "process image (EventData items keep their Sysmon names)",
    "CommandLine": "process command line (EventID 1)",
    "TargetFilename": "file created or deleted (EventID 11, 23)",
    "DestinationIp": "remote address (EventID 3)",
}


class SysmonError(ValueError):
    """A Sysmon message that cannot be read; the message is the quarantine reason."""


def is_sysmon(program: str | None, message: str) -> bool:
    """Whether a syslog message is a Sysmon for Linux event document: markup from the
    ``sysmon`` tag (a document type or an XML declaration too, to be refused), or an ``Event``
    of the Linux-Sysmon provider forwarded under another tag."""
    text = message.lstrip()
    if program == "sysmon":
        return text.startswith("<")
    return text.startswith("<Event") and PROVIDER in text[:400]


def parse_event(text: str) -> dict[str, Any]:
    """The fields of one Sysmon event document; raises :class:`SysmonError`."""
    state = _Reader()
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_entity
    parser.StartElementHandler = state.start
    parser.EndElementHandler = state.end
    parser.CharacterDataHandler = state.text
    try:
        parser.Parse(text.strip().encode("utf-8", "surrogatepass"), True)
    except expat.ExpatError as exc:
        raise SysmonError(f"bad XML: {expat.ErrorString(exc.code)}") from None
    out = state.out
    if not state.saw_event or "EventID" not in out:
        raise SysmonError("not a Sysmon event (no Event/System/EventID)")
    return out


def _refuse_dtd(*_: Any) -> None:
    raise SysmonError("a document type declaration is not allowed")


def _refuse_entity(*_: Any) -> None:
    raise SysmonError("an entity declaration is not allowed")


class _Reader:
    """expat callbacks: System children by element name, EventData items by Name."""

    def __init__(self) -> None:
        self.out: dict[str, Any] = {}
        self.path: list[str] = []
        self.buffer: list[str] = []
        self.data_name: str | None = None
        self.saw_event = False

    def start(self, name: str, attrs: dict[str, str]) -> None:
        path = self.path
        if not path:
            if name != "Event":
                raise SysmonError(f"not a Sysmon event (root element {name[:40]!r})")
            self.saw_event = True
        elif len(path) == 2 and path[1] == "System":
            for attr, value in attrs.items():
                key = _SYSTEM_ATTRIBUTES.get((name, attr))
                if key is not None:
                    numeric = key in ("ProcessID", "ThreadID") and value.isdigit()
                    self.out[key] = int(value) if numeric else value
        elif len(path) == 2 and path[1] == "EventData" and name == "Data":
            self.data_name = attrs.get("Name")
        path.append(name)
        self.buffer.clear()

    def text(self, data: str) -> None:
        self.buffer.append(data)

    def end(self, name: str) -> None:
        path = self.path
        depth = len(path)
        value = "".join(self.buffer)
        self.buffer.clear()
        if depth == 3 and path[1] == "System" and name not in ("Provider", "TimeCreated"):
            value = value.strip()
            if value:
                self.out[name] = int(value) if name in _INT_ELEMENTS and value.isdigit() else value
        elif depth == 3 and path[1] == "EventData" and name == "Data" and self.data_name:
            self.out[self.data_name] = value if value != "" else None
            self.data_name = None
        path.pop()
