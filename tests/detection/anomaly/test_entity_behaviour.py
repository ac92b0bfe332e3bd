"""Unit tests of the entity behaviour detector: warm-up, absorb, JSON state, the entity cap,
per-organisation separation, events lacking fields, awkward user names.

Logons are written as real sshd syslog lines and read by the syslog format, as a hunt reads
them; Windows and web events are the normalised dicts those formats produce.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from qorgan.core.errors import QorganError
from qorgan.detection.anomaly.behaviour import MODEL, VERSION, EntityBehaviour
from qorgan.detection.anomaly.entities import EntityStateError, EntityTable, clean, pattern
from qorgan.detection.anomaly.findings import Finding
from qorgan.detection.anomaly.profiles import hour_ranges, poisson_tail_bits
from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.quarantine import Quarantine
from qorgan.telemetry.sources import read_file


def syslog(tmp_path: Path, lines: list[str], name: str = "auth.log") -> list[EventBatch]:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    quarantine = Quarantine()
    batches = list(read_file(path, quarantine, format_name="syslog"))
    assert quarantine.count == 0
    return batches


def accepted(day: int, hour: int, user: str, ip: str, pid: int = 100) -> str:
    return (
        f"Mar {day:2d} {hour:02d}:15:00 gw sshd[{pid}]: Accepted password for {user} "
        f"from {ip} port 5{pid % 10000:04d} ssh2"
    )


def history(days: int = 30) -> list[str]:
    """alice logs on from the office (10.0.0.5) at 09h and 14h on weekdays of March; bob
    from home and office at 10h."""
    lines = []
    for day in range(1, days + 1):
        lines.append(accepted(day, 9, "alice", "10.0.0.5", 1000 + day))
        lines.append(accepted(day, 14, "alice", "10.0.0.5", 2000 + day))
        lines.append(accepted(day, 10, "bob", "10.0.0.7" if day % 2 else "192.0.2.8", 3000 + day))
    return lines


def observe(detector: EntityBehaviour, batches: list[EventBatch]) -> list[Finding]:
    return [f for batch in batches for f in detector.observe(batch)]


def small(org: str = "org-a", **kw: Any) -> EntityBehaviour:
    """A detector with warm-ups small enough for a month of two users."""
    options = {"org_warmup": 20, "hour_warmup": 10, "user_warmup": 3} | kw
    return EntityBehaviour(org, **options)


def test_new_source_ip_fires_after_warmup_and_a_known_one_does_not(tmp_path: Path) -> None:
    detector = small()
    assert observe(detector, syslog(tmp_path, history(), "history.log")) == []
    found = observe(
        detector,
        syslog(
            tmp_path,
            [accepted(31, 9, "alice", "10.0.0.5", 4001), accepted(31, 9, "alice", "198.51.100.9")],
        ),
    )
    assert len(found) == 1
    finding = found[0]
    assert finding.contributions[0].feature == "logon.new_source_ip"
    assert finding.contributions[0].actual == "198.51.100.9"
    assert finding.contributions[0].typical == "10.0.0.5"
    assert "never seen for this user (known: 10.0.0.5)" in finding.summary
    assert finding.pattern == "logon.new_source_ip|host=gw|user=alice|ip=198.51.100.9"
    assert finding.identifiers == ("alice",)
    assert (finding.model, finding.version) == (MODEL, VERSION)
    assert finding.to_dict()["ai_generated"] is True
    assert abs(sum(c.share for c in finding.contributions) - 1) < 1e-9


def test_nothing_fires_during_warmup(tmp_path: Path) -> None:
    # The same history and new address, but the organisation's warm-up is not yet over.
    detector = small(org_warmup=1000)
    observe(detector, syslog(tmp_path, history(), "history.log"))
    assert observe(detector, syslog(tmp_path, [accepted(31, 3, "alice", "198.51.100.9")])) == []


def test_user_warmup_keeps_a_new_user_from_firing_on_a_new_address(tmp_path: Path) -> None:
    detector = small()
    observe(detector, syslog(tmp_path, history(), "history.log"))
    lines = [accepted(31, 9, "carol", "10.0.0.9", 5001), accepted(31, 10, "carol", "10.0.0.10")]
    assert observe(detector, syslog(tmp_path, lines)) == []


def test_unusual_hour_for_the_user_and_not_for_her_usual_one(tmp_path: Path) -> None:
    detector = small()
    observe(detector, syslog(tmp_path, history(), "history.log"))
    found = observe(
        detector,
        syslog(
            tmp_path,
            [accepted(31, 14, "alice", "10.0.0.5", 6001), accepted(31, 3, "alice", "10.0.0.5")],
        ),
    )
    assert len(found) == 1
    hour = found[0].contributions[0]
    assert (hour.feature, hour.typical, hour.actual) == ("logon.unusual_hour", "09,14", "03")


def test_absorb_makes_a_rejected_hour_normal(tmp_path: Path) -> None:
    """Two detectors see the same logons; only one is told the 03h logon was fine. The next
    03h logon is a finding for the other one only."""
    told, untold = small(), small()
    busy = [  # a long history: one odd logon alone does not make 03h usual
        accepted(day, hour, "alice", "10.0.0.5", 10_000 + day * 100 + hour)
        for day in range(1, 31)
        for hour in range(10, 14)
    ]
    for detector in (told, untold):
        observe(detector, syslog(tmp_path, history() + busy, "history.log"))
    first = observe(told, syslog(tmp_path, [accepted(31, 3, "alice", "10.0.0.5", 7001)], "a"))
    observe(untold, syslog(tmp_path, [accepted(31, 3, "alice", "10.0.0.5", 7001)], "a"))
    assert [c.feature for c in first[0].contributions] == ["logon.unusual_hour"]
    told.absorb(first[0].to_dict())
    assert told.logons.users.get("alice").hours.counts[1 * 24 + 3] == 4.0  # 31 March: Tuesday
    later = syslog(tmp_path, [accepted(31, 3, "alice", "10.0.0.5", 7002)], "b")
    assert told.observe(later[0]) == []
    assert len(untold.observe(later[0])) == 1


def test_absorb_stops_a_rejected_volume_pattern() -> None:
    told, untold = small(volume_warmup=20), small(volume_warmup=20)
    batch = EventBatch("proxy.log", "accesslog", {"category": "proxy"})
    for i in range(40):
        event = {"c-ip": "10.0.0.5", "c-username": "alice", "sc-bytes": int(1e5 * 1.09**i)}
        batch.append(event, i + 1, "2026-03-31T09:00:00Z", None)
    big = EventBatch("proxy.log", "accesslog", {"category": "proxy"})
    big.append(
        {"c-ip": "10.0.0.5", "c-username": "alice", "sc-bytes": 900_000_000},
        41,
        "2026-03-31T09:02:00Z",
        None,
    )
    for detector in (told, untold):
        detector.observe(batch)
        assert len(detector.observe(big)) == 1
    told.absorb(untold.observe(big)[0].to_dict())  # the nightly backup, says the analyst
    assert told.observe(big) == []
    assert len(untold.observe(big)) == 1


def test_state_round_trips_as_json(tmp_path: Path) -> None:
    detector = small()
    observe(detector, syslog(tmp_path, history(), "history.log"))
    state = json.loads(json.dumps(detector.state()))
    restored = small()
    restored.load(state)
    assert restored.state() == detector.state()
    probe = syslog(tmp_path, [accepted(31, 3, "alice", "198.51.100.9")])
    assert [f.to_dict() for f in restored.observe(probe[0])] == [
        f.to_dict() for f in detector.observe(probe[0])
    ]


def test_a_broken_state_is_a_clear_error() -> None:
    detector = small()
    state = detector.state()
    with pytest.raises(EntityStateError, match="organisation"):
        small("org-b").load(state)
    broken = json.loads(json.dumps(state))
    broken["logons"]["users"] = [["alice", {"logons": "many"}]]
    with pytest.raises(QorganError):
        detector.load(broken)
    with pytest.raises(EntityStateError, match="model"):
        detector.load({"model": "other"})


def test_entity_cap_evicts_the_least_recently_seen(tmp_path: Path) -> None:
    table: EntityTable[list[int]] = EntityTable(list, cap=2)
    table.touch("a")
    table.touch("b")
    table.touch("a")
    table.touch("c")
    assert [k for k, _ in table.items()] == ["a", "c"]
    assert table.evicted == 1
    detector = small(cap=3)
    lines = [accepted(1, 9, f"user{i}", f"10.1.0.{i}", 100 + i) for i in range(10)]
    observe(detector, syslog(tmp_path, lines))
    assert len(detector.logons.users) == 3
    assert [k for k, _ in detector.logons.users.items()] == ["user7", "user8", "user9"]


def test_organisations_do_not_share_baselines(tmp_path: Path) -> None:
    a, b = small("org-a"), small("org-b")
    observe(a, syslog(tmp_path, history(), "history.log"))
    probe = syslog(tmp_path, [accepted(31, 9, "alice", "198.51.100.9")])
    assert len(a.observe(probe[0])) == 1
    assert b.observe(probe[0]) == []  # b knows nobody: still warming up
    assert b.logons.users.get("alice") is not None and b.logons.users.get("alice").logons == 1
    assert a.logons.users.get("alice").logons == 61


def test_events_lacking_fields_are_skipped() -> None:
    detector = small(org_warmup=0, host_warmup=0, process_warmup=0, volume_warmup=0)
    batch = EventBatch("odd", "mixed", {})
    odd: list[dict[str, Any]] = [
        {},
        {"EventID": 4624},
        {"EventID": 4624, "TargetUserName": None, "Computer": "h"},
        {"EventID": "4688", "Computer": "h", "Image": None},
        {"EventID": True, "Computer": "h"},
        {"EventID": 4732, "Computer": "h", "TargetUserName": "Administrators"},
        {"sc-bytes": "lots", "c-ip": "10.0.0.1"},
        {"sc-bytes": -5, "c-ip": "10.0.0.1"},
        {"c-ip": None, "sc-bytes": 10},
        {"event_type": "accepted_password", "program": "sshd"},
        {"event_type": ["x"], "program": "sshd", "hostname": "h"},
        {"program": "useradd", "hostname": "h", "message": None},
    ]
    for i, event in enumerate(odd):
        batch.append(event, i + 1, "not a time" if i % 2 else None, None)
    assert detector.observe(batch) == []
    json.dumps(detector.state())


def test_nul_and_lone_surrogates_in_user_names(tmp_path: Path) -> None:
    assert clean("al\x00ice\udc80") == "al\x00ice\ufffd"
    assert pattern("f", user="a|ip=b\x00") == "f|user=a%7Cip%3Db%00"
    detector = small()
    observe(detector, syslog(tmp_path, history(), "history.log"))
    weird = "al\x00ice\udc80"
    batch = EventBatch("w", "syslog", {})
    for i in range(20):
        event = {"event_type": "accepted_password", "program": "sshd", "pid": 9000 + i}
        event |= {"user": weird, "src_ip": "10.0.0.5", "hostname": "gw"}
        batch.append(event, i + 1, f"2026-03-31T09:{i:02d}:00Z", "gw")
    event = {"event_type": "accepted_password", "program": "sshd", "pid": 9100}
    event |= {"user": weird, "src_ip": "198.51.100.9", "hostname": "gw"}
    batch.append(event, 21, "2026-03-31T09:30:00Z", "gw")
    found = detector.observe(batch)
    assert len(found) == 1
    assert found[0].identifiers == ("al\x00ice\ufffd",)
    assert "%00" in found[0].pattern
    orjson.dumps(found[0].to_dict())
    orjson.dumps(detector.state())  # valid UTF-8 throughout


def test_windows_new_account_and_admin_group_member() -> None:
    detector = small(host_warmup=50)
    batch = EventBatch("security.evtx", "evtx", {"product": "windows"})
    for i in range(60):
        batch.append({"EventID": 4634, "Computer": "dc1"}, i + 1, None, "dc1")
    created = {"EventID": 4720, "Computer": "dc1", "SamAccountName": "svc_x", "TargetUserName": "x"}
    added = {"EventID": 4732, "Computer": "dc1", "TargetUserName": "Administrators"}
    added |= {"MemberName": "-", "MemberSid": "S-1-5-21-1-2-3-1107"}
    plain = {"EventID": 4732, "Computer": "dc1", "TargetUserName": "Print Users"}
    plain |= {"MemberSid": "S-1-5-21-1-2-3-1108"}
    for i, event in enumerate((created, added, plain, added)):
        batch.append(event, 100 + i, "2026-03-31T09:00:00Z", "dc1")
    found = detector.observe(batch)
    assert [f.contributions[0].feature for f in found] == [
        "account.new_user",
        "account.admin_group_add",
    ]
    assert found[1].identifiers == ("S-1-5-21-1-2-3-1107",)


def test_volume_per_user_baseline() -> None:
    detector = small(volume_warmup=20)
    batch = EventBatch("proxy.log", "accesslog", {"category": "proxy"})
    for i in range(40):  # downloads of 100 KB to 2.9 MB
        event = {"c-ip": "10.0.0.5", "c-username": "alice", "sc-bytes": int(1e5 * 1.09**i)}
        batch.append(event, i + 1, "2026-03-31T09:00:00Z", None)
    big = {"c-ip": "10.0.0.5", "c-username": "alice", "sc-bytes": 900_000_000}
    usual = {"c-ip": "10.0.0.5", "c-username": "alice", "sc-bytes": 2_500_000}
    batch.append(usual, 41, "2026-03-31T09:01:00Z", None)
    batch.append(big, 42, "2026-03-31T09:02:00Z", None)
    found = detector.observe(batch)
    assert len(found) == 1
    assert found[0].entity == {"user": "alice"}
    assert found[0].identifiers == ("alice",)
    assert found[0].contributions[0].actual == "858.3 MB"


def test_small_helpers() -> None:
    assert hour_ranges([1, 5, 7, 8, 9, 22]) == "01,05,07-09,22"
    assert hour_ranges([]) == ""
    assert poisson_tail_bits(0, 0.2) == 0.0
    assert poisson_tail_bits(1, 3.0) == 0.0
    assert poisson_tail_bits(37, 0.2) == 64.0
    assert 10 < poisson_tail_bits(5, 0.2) < 20


def test_volume_per_hour_many_medium_responses() -> None:
    """Exfiltration in ordinary-sized pieces: each response is usual, the hour's sum is not."""
    detector = small(volume_warmup=20)
    batch = EventBatch("proxy.log", "accesslog", {"category": "proxy"})
    record = 0

    def hour(day: int, hh: int, count: int) -> None:
        nonlocal record
        for i in range(count):
            record += 1
            event = {"c-ip": "10.0.0.5", "c-username": "bob", "sc-bytes": 200_000 + 1000 * i}
            batch.append(event, record, f"2026-03-{day:02d}T{hh:02d}:{i % 60:02d}:00Z", None)

    for day in range(1, 13):
        hour(day, 10, 10)  # about 2 MB in each working hour
    hour(13, 10, 12)  # neighbour: a busy but ordinary hour
    hour(14, 10, 300)  # 60 MB in one hour
    found = detector.observe(batch)
    assert len(found) == 1
    finding = found[0]
    assert finding.contributions[0].feature == "volume.window_bytes"
    assert finding.contributions[0].typical == "2.0 MB"
    assert finding.summary.endswith("where the median of this user's busy hours is 2.0 MB")
    assert finding.pattern == "volume.window_bytes|user=bob"


def _execve(serial: int, ppid: int, pid: int, exe: str) -> list[str]:
    stamp = f"audit({1700001000 + serial}.007:{serial})"
    name = exe.rsplit("/", 1)[-1]
    return [
        f"node=web01 type=SYSCALL msg={stamp}: arch=c000003e syscall=59 success=yes exit=0 "
        f"a0=1 a1=2 a2=3 a3=8 items=1 ppid={ppid} pid={pid} auid=1000 uid=0 gid=0 euid=0 "
        f'suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="{name}" exe="{exe}" '
        "key=(null)",
        f'node=web01 type=EXECVE msg={stamp}: argc=1 a0="{name}"',
        f"node=web01 type=EOE msg={stamp}: ",
    ]


def test_auditd_execve_pairs_by_parent_pid(tmp_path: Path) -> None:
    """auditd names the parent by pid only: a start whose parent was seen starting becomes a
    pair; the web server starting a shell is new, its usual children are not."""
    lines = _execve(1, 1, 100, "/usr/sbin/httpd") + _execve(2, 1, 200, "/usr/bin/bash")
    serial = 3
    for i in range(120):  # the web server runs its helpers, the admin's shell runs tools
        lines += _execve(serial, 100, 1000 + i, "/usr/bin/php-cgi")
        lines += _execve(serial + 1, 200, 5000 + i, ("/usr/bin/ls", "/usr/bin/grep")[i % 2])
        serial += 2
    lines += _execve(serial, 100, 9001, "/usr/bin/php-cgi")  # neighbour
    lines += _execve(serial + 1, 100, 9002, "/usr/bin/dash")  # httpd -> dash
    lines += _execve(serial + 2, 777, 9003, "/usr/bin/nc")  # parent never seen: skipped
    path = tmp_path / "audit.log"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    quarantine = Quarantine()
    batches = list(read_file(path, quarantine, format_name="auditd"))
    assert quarantine.count == 0
    detector = small()
    found = observe(detector, batches)
    assert [f.contributions[0].actual for f in found] == ["httpd -> dash"]
    assert found[0].entity["host"] == "web01"
    assert found[0].contributions[0].typical == "php-cgi"
    assert found[0].summary.endswith("httpd has started only php-cgi there")
    assert found[0].identifiers == ("1000",)


def _windows_logon(event_id: int, user: str, ip: str, **extra: Any) -> dict[str, Any]:
    event = {"EventID": event_id, "Computer": "dc1.corp.kz", "TargetUserName": user}
    return event | {"TargetDomainName": "CORP", "IpAddress": ip, "LogonType": 10} | extra


def test_windows_logon_after_a_burst_of_failures() -> None:
    detector = small()
    batch = EventBatch("security.evtx", "evtx", {"product": "windows"})
    for day in range(1, 31):
        batch.append(
            _windows_logon(4624, "alice", "10.0.0.5"), day, f"2026-03-{day:02d}T09:10:00Z", None
        )
    for i in range(12):
        batch.append(
            _windows_logon(4625, "alice", "203.0.113.50"),
            100 + i,
            f"2026-03-31T09:0{i % 6}:00Z",
            None,
        )
    batch.append(_windows_logon(4624, "alice", "203.0.113.50"), 200, "2026-03-31T09:07:00Z", None)
    # neighbour: her usual address right after, no failures from it
    batch.append(_windows_logon(4624, "alice", "10.0.0.5"), 201, "2026-03-31T09:08:00Z", None)
    found = detector.observe(batch)
    assert len(found) == 1
    features = [c.feature for c in found[0].contributions]
    assert features == ["logon.after_failures", "logon.new_source_ip"]
    assert found[0].contributions[0].actual == 12
    assert found[0].identifiers == ("CORP\\alice",)


def test_hours_are_judged_in_the_organisations_time_zone() -> None:
    detector = small(tz="Asia/Almaty")  # UTC+5
    batch = EventBatch("security.evtx", "evtx", {"product": "windows"})
    for day in range(1, 31):  # 09:10 in Almaty
        batch.append(
            _windows_logon(4624, "alice", "10.0.0.5"), day, f"2026-03-{day:02d}T04:10:00Z", None
        )
    batch.append(_windows_logon(4624, "alice", "10.0.0.5"), 40, "2026-03-31T04:20:00Z", None)
    batch.append(_windows_logon(4624, "alice", "10.0.0.5"), 41, "2026-03-31T22:20:00Z", None)
    found = detector.observe(batch)
    assert len(found) == 1
    hour = found[0].contributions[0]
    assert (hour.feature, hour.typical, hour.actual) == ("logon.unusual_hour", "09", "03")


def test_sysmon_for_linux_process_starts_are_pairs() -> None:
    from qorgan.detection.anomaly.security_events import ProcessStart, facts

    quarantine = Quarantine()
    path = Path(__file__).resolve().parents[2] / "data" / "sysmon_linux" / "sysmon.log"
    starts = [
        fact
        for batch in read_file(path, quarantine)
        for event, host in zip(batch.events, batch.hosts, strict=True)
        for fact in facts(event, host)
        if isinstance(fact, ProcessStart)
    ]
    assert starts[0] == ProcessStart("web01", "bash", "base64", "root")


@given(st.text(max_size=40))
@example("\x00")
@example("\udc80")
@example("a|ip=b")
@settings(max_examples=60, derandomize=True)
def test_any_user_name_keeps_the_state_valid_json(name: str) -> None:
    detector = small(org_warmup=0, hour_warmup=0, user_warmup=0)
    batch = EventBatch("w", "syslog", {})
    for i, ip in enumerate(("10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.2")):
        event = {"event_type": "accepted_password", "program": "sshd", "pid": i}
        event |= {"user": name, "src_ip": ip, "hostname": "gw"}
        batch.append(event, i + 1, f"2026-03-31T0{i}:00:00Z", "gw")
    for finding in detector.observe(batch):
        orjson.dumps(finding.to_dict())
    state = orjson.loads(orjson.dumps(detector.state()))
    small(org_warmup=0).load(state)


def test_an_sshd_failure_and_its_pam_twin_count_once(tmp_path: Path) -> None:
    lines = [
        "Dec 10 06:55:48 LabSZ sshd[24200]: pam_unix(sshd:auth): authentication failure; "
        "logname= uid=0 euid=0 tty=ssh ruser= rhost=173.234.31.186  user=root",
        "Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for root from 173.234.31.186 "
        "port 38926 ssh2",
        "Dec 10 06:55:52 LabSZ sshd[24200]: Failed password for root from 173.234.31.186 "
        "port 38926 ssh2",
        "Dec 10 06:55:52 LabSZ sshd[24201]: pam_unix(sshd:auth): authentication failure; "
        "logname= uid=0 euid=0 tty=ssh ruser= rhost=173.234.31.186  user=root",
    ]
    detector = small()
    observe(detector, syslog(tmp_path, lines))
    assert detector.logons.auth_events == 3  # the last is another connection's own attempt
    assert sum(w for _, w in detector.logons.failures.get("173.234.31.186")) == 3
