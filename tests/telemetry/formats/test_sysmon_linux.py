"""Sysmon for Linux events (XML in syslog lines): read into Sysmon's field names, selected by
SigmaHQ's ``product: linux`` process_creation / file_event / network_connection rules by their
event id, and hostile XML refused without expanding anything.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qorgan.detection.alerts import Alert
from qorgan.detection.engine import Engine
from qorgan.detection.hunt import run_hunt
from qorgan.detection.loader import compile_texts, load_plan
from qorgan.telemetry import Quarantine
from qorgan.telemetry.formats import detect_format
from qorgan.telemetry.formats.syslog import SyslogFormat
from qorgan.telemetry.formats.sysmon_linux import SysmonError, is_sysmon, parse_event

from .helpers import read_bytes

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sysmon_linux" / "sysmon.log"

SYSTEM = (
    '<System><Provider Name="Linux-Sysmon" Guid="{ff032593-a8d3-4f13-b0d6-01fc615a0f97}"/>'
    "<EventID>{eid}</EventID><Version>5</Version><Level>4</Level><Task>1</Task><Opcode>0</Opcode>"
    '<Keywords>0x8000000000000000</Keywords><TimeCreated SystemTime="2023-11-14T22:15:10.5Z"/>'
    '<EventRecordID>77</EventRecordID><Correlation/><Execution ProcessID="812" ThreadID="813"/>'
    "<Channel>Linux-Sysmon/Operational</Channel><Computer>web01</Computer>"
    '<Security UserId="0"/></System>'
)


def event_xml(eid: int = 1, data: str | None = None) -> str:
    data = data or (
        '<Data Name="RuleName">-</Data><Data Name="Image">/usr/bin/base64</Data>'
        '<Data Name="CommandLine">base64 -d /tmp/a&amp;b</Data><Data Name="Hashes"></Data>'
    )
    return f"<Event>{SYSTEM.replace('{eid}', str(eid))}<EventData>{data}</EventData></Event>"


def line(xml: str, tag: str = "sysmon:") -> bytes:
    return f"Nov 14 22:15:10 web01 {tag} {xml}\n".encode()


def read(data: bytes):
    return read_bytes(SyslogFormat(year=2023), data, "syslog")


def test_event_fields_are_named_as_sysmon_names_them() -> None:
    assert parse_event(event_xml()) == {
        "Provider_Name": "Linux-Sysmon",
        "Provider_Guid": "{ff032593-a8d3-4f13-b0d6-01fc615a0f97}",
        "EventID": 1,
        "Version": 5,
        "Level": 4,
        "Task": 1,
        "Opcode": 0,
        "Keywords": "0x8000000000000000",
        "SystemTime": "2023-11-14T22:15:10.5Z",
        "EventRecordID": 77,
        "ProcessID": 812,
        "ThreadID": 813,
        "Channel": "Linux-Sysmon/Operational",
        "Computer": "web01",
        "UserID": "0",
        "RuleName": "-",
        "Image": "/usr/bin/base64",
        "CommandLine": "base64 -d /tmp/a&b",
        "Hashes": None,
    }


def test_syslog_line_becomes_the_event_with_its_time_and_host() -> None:
    batches, events, quarantine = read(line(event_xml(), "sysmon[812]:"))
    assert quarantine.count == 0
    (event,) = events
    assert (event["EventID"], event["Image"], event["program"], event["pid"]) == (
        1,
        "/usr/bin/base64",
        "sysmon",
        812,
    )
    assert "message" not in event  # the XML is the fields now
    assert batches[0].times == ["2023-11-14T22:15:10.500000Z"]
    assert batches[0].hosts == ["web01"]
    assert batches[0].logsource == {"product": "linux"}


def test_only_sysmon_documents_are_parsed() -> None:
    assert is_sysmon("sysmon", "<Event><System/></Event>")
    assert is_sysmon("rsyslogd", event_xml())  # forwarded under another tag
    assert not is_sysmon("myapp", "<Event>not from sysmon</Event>")
    assert not is_sysmon("sysmon", "Sysmon v1.3 started")
    assert is_sysmon("sysmon", BILLION_LAUGHS)  # to be refused, not kept as text
    _, events, quarantine = read(
        b"Nov 14 22:15:10 web01 myapp: <Event>not from sysmon</Event>\n"
        b"Nov 14 22:15:10 web01 sysmon: Sysmon v1.3 started\n"
    )
    assert quarantine.count == 0
    assert [e["message"] for e in events] == [
        "<Event>not from sysmon</Event>",
        "Sysmon v1.3 started",
    ]


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    "<Event><System><EventID>1</EventID></System><EventData>"
    '<Data Name="Image">&lol3;</Data></EventData></Event>'
)
EXTERNAL = (
    '<!DOCTYPE Event [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    '<Event><System><EventID>1</EventID></System><EventData><Data Name="Image">&xxe;</Data>'
    "</EventData></Event>"
)


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        (BILLION_LAUGHS, "sysmon: a document type declaration is not allowed"),
        (EXTERNAL, "sysmon: a document type declaration is not allowed"),
        (event_xml(data='<Data Name="Image">&xxe;</Data>'), "sysmon: bad XML: undefined entity"),
        (event_xml(data='<Data Name="Image">&#xD800;</Data>'), "sysmon: bad XML: reference to "),
        (event_xml(data='<Data Name="Image">&#0;</Data>'), "sysmon: bad XML: reference to "),
        (event_xml()[:300], "sysmon: bad XML: "),  # cut
        ("<Event><EventData></EventData></Event>", "sysmon: not a Sysmon event"),
        ("<Event><System><EventID>1</EventID></System></Event><Event/>", "sysmon: bad XML: junk"),
    ],
)
def test_hostile_or_broken_xml_is_quarantined(xml: str, reason: str) -> None:
    good = line(event_xml())
    _, events, quarantine = read(good + line(xml) + good)
    assert len(events) == 2
    assert quarantine.count == 1
    assert quarantine.records[0].record == 2
    assert quarantine.records[0].reason.startswith(reason), quarantine.records[0].reason


@pytest.mark.parametrize(
    "raw",
    [
        line(event_xml()).replace(b"base64 -d", b"base64\x00-d"),  # NUL byte
        line(event_xml()).replace(b"base64 -d", b"base64 \xed\xa0\x80"),  # a lone surrogate
        line(event_xml()).replace(b"base64 -d", b"base64 \xff"),  # not UTF-8
    ],
)
def test_bad_bytes_are_quarantined(raw: bytes) -> None:
    _, events, quarantine = read(raw)
    assert events == []
    assert quarantine.count == 1
    assert quarantine.records[0].reason.startswith("sysmon: ")


def test_parse_event_raises_only_sysmon_error() -> None:
    for text in ("", "<", "<Other/>", "<Event>", "\x00", "<Event><System/></Event>"):
        with pytest.raises(SysmonError):
            parse_event(text)


CATEGORY_RULES = [
    """\
title: base64 decoding (process_creation)
id: 2f9c0a51-0a6e-4b0e-9a57-0c8a3f9c5e01
status: test
logsource: {product: linux, category: process_creation}
detection:
  selection: {Image|endswith: /base64}
  condition: selection
level: low
""",
    """\
title: base64 opening files (file_event)
id: 2f9c0a51-0a6e-4b0e-9a57-0c8a3f9c5e02
status: test
logsource: {product: linux, category: file_event}
detection:
  selection: {Image|endswith: /base64}
  condition: selection
level: low
""",
]


def test_linux_categories_select_sysmon_events_by_event_id() -> None:
    engine = Engine(compile_texts(CATEGORY_RULES))
    data = (
        line(event_xml(1))
        + line(event_xml(11, '<Data Name="Image">/usr/bin/base64</Data>'))
        + line(event_xml(3, '<Data Name="Image">/usr/bin/base64</Data>'))
        + b"Nov 14 22:15:10 web01 app: Image=/usr/bin/base64\n"
    )
    batches, _, quarantine = read(data)
    assert quarantine.count == 0
    batch = batches[0]
    batch.events[3]["Image"] = "/usr/bin/base64"  # a syslog event with the field, no channel
    hits = {rule: rows.tolist() for rule, rows in engine.match(batch)}
    assert hits == {0: [0], 1: [1]}


# -- SigmaHQ's rules -------------------------------------------------------------------------


@pytest.mark.corpus
def test_sigmahq_linux_rules_on_sysmon_samples(shared_data: Path) -> None:
    """One process_creation, one file_event and one network_connection rule, each next to an
    event that must not fire (no ``-d``; dpkg's README, filtered; a private address, filtered),
    and curl's network event, which process_creation rules must not see."""
    assert detect_format(SAMPLE.read_bytes(), str(SAMPLE)).name == "syslog"
    plan = load_plan([shared_data / "sigma" / "rules" / "linux"])
    alerts: list[Alert] = []
    quarantine = Quarantine()
    summary, _ = run_hunt([SAMPLE], plan, sink=alerts.extend, quarantine=quarantine)
    assert quarantine.count == 0
    assert summary.events == 9
    got = sorted((a.record, Path(a.rule.path).stem) for a in alerts)
    assert got == [
        (1, "lnx_shell_susp_commands"),  # builtin keyword rule: "base64 -d /tmp/" in CommandLine
        (1, "proc_creation_lnx_base64_decode"),
        (3, "file_event_lnx_persistence_sudoers_files"),
        (6, "net_connection_lnx_susp_malware_callback_port"),
        (8, "proc_creation_lnx_curl_usage"),
    ]
    assert {a.host for a in alerts} == {"web01"}
    assert {a.time[:19] for a in alerts if a.record == 3} == {"2023-11-14T22:15:12"}
