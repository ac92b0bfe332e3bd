"""The engine over batches: logsource selection, Windows normalisation, batches of any size."""

from __future__ import annotations

from typing import Any

from qorgan.detection.engine import Engine
from qorgan.detection.loader import compile_texts
from qorgan.telemetry.batch import EventBatch

SYSMON = "Microsoft-Windows-Sysmon/Operational"

WHOAMI = """
title: Whoami
id: 22222222-0000-0000-0000-000000000001
level: medium
logsource: {product: windows, category: process_creation}
detection:
    sel:
        Image|endswith: '\\whoami.exe'
    condition: sel
"""
SSH = """
title: SSH failures
id: 22222222-0000-0000-0000-000000000002
level: low
logsource: {product: linux, service: sshd}
detection:
    keywords: ['Failed password']
    condition: keywords
"""


def batch(events: list[dict[str, Any]], **tags: str) -> EventBatch:
    b = EventBatch(path="mem", format="test", logsource=dict(tags))
    for i, event in enumerate(events, 1):
        b.append(event, i, None, None)
    return b


def matches(rules: list[str], b: EventBatch) -> dict[str, list[int]]:
    plan = compile_texts(rules)
    assert not plan.failures, plan.failures
    return {plan.rules[r].meta.title: rows.tolist() for r, rows in Engine(plan).match(b)}


def test_process_creation_selects_sysmon_1_and_security_4688_only() -> None:
    events = [
        {"Channel": SYSMON, "EventID": 1, "Image": "C:\\Windows\\System32\\whoami.exe"},
        {"Channel": "Security", "EventID": 4688, "Image": "C:\\Windows\\System32\\WHOAMI.EXE"},
        {"Channel": SYSMON, "EventID": 11, "Image": "C:\\Windows\\System32\\whoami.exe"},
        {"Channel": "Security", "EventID": 4624, "Image": "C:\\Windows\\System32\\whoami.exe"},
        {"Channel": SYSMON, "EventID": 1, "Image": "C:\\Windows\\System32\\cmd.exe"},
        {"Channel": SYSMON, "EventID": "1", "Image": "C:\\whoami.exe"},
    ]
    assert matches([WHOAMI], batch(events, product="windows")) == {"Whoami": [0, 1, 5]}


def test_rules_apply_only_to_batches_with_their_tags() -> None:
    windows = [{"Channel": SYSMON, "EventID": 1, "Image": "x\\whoami.exe"}]
    linux = [
        {"service": "sshd", "message": "Failed password for root from 1.2.3.4"},
        {"service": "cron", "message": "Failed password (not sshd)"},
    ]
    assert matches([WHOAMI, SSH], batch(windows, product="windows")) == {"Whoami": [0]}
    assert matches([WHOAMI, SSH], batch(windows, product="linux")) == {}
    assert matches([WHOAMI, SSH], batch(linux, product="linux")) == {"SSH failures": [0]}


def test_large_batch_matches_like_small_batches() -> None:
    events = []
    for i in range(30_000):
        image = "C:\\Windows\\System32\\whoami.exe" if i % 997 == 0 else f"C:\\app{i % 50}.exe"
        events.append({"Channel": SYSMON, "EventID": 1, "Image": image, "n": i})
    whole = matches([WHOAMI], batch(events, product="windows"))["Whoami"]
    assert whole == [i for i in range(30_000) if i % 997 == 0]
    parts = []
    for start in range(0, 30_000, 7_000):
        chunk = matches([WHOAMI], batch(events[start : start + 7_000], product="windows"))
        parts.extend(start + r for r in chunk.get("Whoami", []))
    assert parts == whole


def test_empty_and_unmatched_batches_yield_nothing() -> None:
    assert matches([WHOAMI], batch([], product="windows")) == {}
    assert matches([WHOAMI], batch([{"Channel": SYSMON}], product="windows")) == {}
