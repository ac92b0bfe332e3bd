"""The qorgan command, run as a user runs it: exit codes, outputs, the documented alert schema."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "logs"
QORGAN = [sys.executable, "-c", "from qorgan.cli import app; app()"]


def qorgan(*args: str | Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"QORGAN_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [*QORGAN, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )


def test_hunt_examples_writes_documented_alerts(tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    proc = qorgan(
        "hunt", EXAMPLES, "-o", out, "--quarantine", tmp_path / "q.jsonl", tmp_path=tmp_path
    )
    assert proc.returncode == 1, proc.stderr
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    titles = {a["rule"]["title"] for a in alerts}
    assert {
        "Shadow Copies Deleted",
        "Web Shell Command In Request Parameters",
        "SQL Injection Attempt In Request",
        "SSH Password Authentication Failed",
    } <= titles
    documented = set(
        re.findall(r"^\| `([a-z.]+)` \|", (ROOT / "docs" / "alerts.md").read_text(), re.MULTILINE)
    )
    for alert in alerts:
        keys = {f"{k}.{sub}" for k, v in alert.items() if k in ("rule", "source") for sub in v}
        keys |= {k for k in alert if k not in ("rule", "source")}
        assert keys <= documented
        assert documented - keys <= {"correlation"}  # only on correlation alerts
        assert isinstance(alert["source"]["record"], int)
    assert "alerts:" in proc.stderr and "events from 3 files" in proc.stderr
    quarantined = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert {q["path"].rsplit("/", 1)[1] for q in quarantined} == {
        "access.log",
        "auth.log",
        "windows-endpoint.jsonl",
    }
    assert all(q["reason"] and q["record"] > 0 for q in quarantined)


def test_hunt_without_alerts_exits_zero_and_csv(tmp_path: Path) -> None:
    log = tmp_path / "quiet.log"
    log.write_text("Nov 20 10:00:00 host cron[1]: (root) CMD (true)\n")
    proc = qorgan("hunt", log, "--format", "csv", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO(proc.stdout)))
    assert rows == [["time", "level", "rule_id", "rule_title", "host", "path", "record", "tags"]]


def test_min_level_and_table(tmp_path: Path) -> None:
    proc = qorgan("hunt", EXAMPLES, "--min-level", "high", "--format", "table", tmp_path=tmp_path)
    assert proc.returncode == 1
    assert "Shadow Copies Deleted" in proc.stdout
    assert "SSH Password Authentication Failed" not in proc.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["hunt", "no/such/file.log"],
        ["hunt", str(EXAMPLES), "--input-format", "nosuch"],
        ["hunt", str(EXAMPLES), "--min-level", "severe"],
        ["hunt", str(EXAMPLES), "--rules", "no/such/rules"],
        ["hunt", str(EXAMPLES), "--logsource", "vendor=x"],
        ["rules", "check", "no/such/rules"],
        ["nosuchcommand"],
    ],
)
def test_usage_and_input_errors_exit_two(args: list[str], tmp_path: Path) -> None:
    proc = qorgan(*args, tmp_path=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr


@pytest.mark.corpus
def test_hunt_reads_zoneless_syslog_in_the_given_zone(
    tmp_path: Path, shared_file: Callable[[str], Path]
) -> None:
    """RFC 3164 times carry no zone: read in Asia/Almaty by default (the alert time is that
    local time in UTC), or in the zone given with --timezone."""
    line = shared_file("loghub/Linux/Linux_2k.log").read_bytes().splitlines(keepends=True)[0]
    assert line.startswith(b"Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure")
    log = tmp_path / "auth.log"
    log.write_bytes(line)
    stamp = datetime(2025, 12, 31, tzinfo=UTC).timestamp()  # the year comes from the mtime
    os.utime(log, (stamp, stamp))
    times = {}
    for zone in (None, "UTC", "Europe/Moscow"):
        proc = qorgan("hunt", log, *(["--timezone", zone] if zone else []), tmp_path=tmp_path)
        assert proc.returncode == 1, proc.stderr
        times[zone] = {json.loads(alert)["time"] for alert in proc.stdout.splitlines()}
    assert times == {
        None: {"2025-06-14T10:16:01Z"},  # 15:16:01 in Almaty (UTC+5)
        "UTC": {"2025-06-14T15:16:01Z"},
        "Europe/Moscow": {"2025-06-14T12:16:01Z"},
    }
    bad = qorgan("hunt", log, "--timezone", "Mars/Olympus", tmp_path=tmp_path)
    assert bad.returncode == 2 and "unknown time zone" in bad.stderr


def test_rules_check_reports_failures(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "good.yml").write_text(
        "title: ok\nid: 33333333-0000-0000-0000-000000000001\nlogsource: {product: t}\n"
        "detection: {sel: {a: 1}, condition: sel}\n"
    )
    (rules / "bad.yml").write_text(
        "title: broken\nlogsource: {product: t}\ndetection: {sel: {a|re: '('}, condition: sel}\n"
    )
    proc = qorgan("rules", "check", rules, "--format", "json", tmp_path=tmp_path)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert (report["rules"], report["compiled"], report["failed"]) == (2, 1, 1)
    assert report["failures"][0]["path"].endswith("bad.yml")
    assert "regular expression" in report["failures"][0]["reason"].lower()
    text = qorgan("rules", "check", rules, tmp_path=tmp_path)
    assert "1 of 2 rules compiled" in text.stdout and "FAILED" in text.stdout


def test_builtin_pack_compiles(tmp_path: Path) -> None:
    proc = qorgan(
        "rules", "check", ROOT / "src" / "qorgan" / "detection" / "rules", tmp_path=tmp_path
    )
    assert proc.returncode == 0, proc.stdout


def test_hunt_state_continues_correlation_windows(tmp_path: Path) -> None:
    """A hunt split in two with --state reports the same correlation alerts as one hunt."""
    lines = [
        f"Nov 20 08:{n // 60:02d}:{n % 60:02d} gov-web-01 sshd[{100 + n}]: Failed password for "
        f"root from 203.0.113.{7 + n % 2} port {40000 + n} ssh2"
        for n in range(60)
    ]
    whole, first, second = tmp_path / "whole.log", tmp_path / "a.log", tmp_path / "b.log"
    whole.write_text("\n".join(lines) + "\n")
    first.write_text("\n".join(lines[:25]) + "\n")
    second.write_text("\n".join(lines[25:]) + "\n")

    def correlated(*args: str | Path) -> list[tuple]:
        out = tmp_path / "out.jsonl"
        proc = qorgan("hunt", *args, "-o", out, tmp_path=tmp_path)
        assert proc.returncode in (0, 1), proc.stderr
        alerts = [json.loads(line) for line in out.read_text().splitlines()]
        return [
            (a["rule"]["title"], a["event"], [e["time"] for e in a["correlation"]["events"]])
            for a in alerts
            if "correlation" in a
        ]

    expected = correlated(whole)
    assert len(expected) >= 4  # two sources, 30 failures each within minutes
    state = tmp_path / "state.bin"
    split = correlated(first, "--state", state) + correlated(second, "--state", state)
    assert split == expected
    again = correlated(second, "--state", state)  # the same events again are late: no alert
    assert again == []


def test_hunt_workers_give_one_workers_output(tmp_path: Path) -> None:
    """--workers 2 (small batches, so that windows span them) writes the bytes --workers 1
    writes: the same alerts in the same order, correlations included."""
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in ("a", "b", "c"):
        (logs / f"{name}.log").write_text(
            "".join(
                f"Nov 20 08:{n // 60:02d}:{n % 60:02d} gov-web-01 sshd[{n}]: Failed password "
                f"for root from 203.0.113.{7 + n % 2} port {40000 + n} ssh2\n"
                for n in range(ord(name) * 7, ord(name) * 7 + 300)
            )
        )
    outputs = []
    for workers in ("1", "2"):
        out = tmp_path / f"{workers}.jsonl"
        proc = qorgan(
            "hunt", logs, "--workers", workers, "--batch-size", "40", "-o", out, tmp_path=tmp_path
        )
        assert proc.returncode == 1, proc.stderr
        assert "events from 3 files" in proc.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0].count(b'"correlation"') >= 10
