"""A hunt on several worker processes gives the alerts of one process, in the same order:
single-event alerts per file, and correlations whose windows span batches and files."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from qorgan.detection.alerts import Alert
from qorgan.detection.hunt import run_hunt
from qorgan.detection.loader import BUILTIN_RULES, load_plan
from qorgan.detection.plan import Plan
from qorgan.detection.workers import BYTES_PER_WORKER, default_workers
from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.quarantine import Quarantine
from qorgan.telemetry.sources import read_paths

#: Small batches, so that correlation windows span many of them.
BATCH = 97


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load_plan([BUILTIN_RULES])


def hunt(paths: list[Path], plan: Plan, workers: int, **kw: Any) -> tuple[list[dict], Quarantine]:
    alerts: list[Alert] = []
    quarantine = Quarantine()
    run_hunt(
        paths,
        plan,
        sink=alerts.extend,
        quarantine=quarantine,
        workers=workers,
        batch_size=kw.pop("batch_size", BATCH),
        **kw,
    )
    return [a.to_dict() for a in alerts], quarantine


def per_file(alerts: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for a in alerts:
        if "correlation" not in a:
            out.setdefault(a["source"]["path"], []).append(a)
    return out


def key(alert: dict) -> str:
    return json.dumps(alert, sort_keys=True)


def spans(alerts: list[dict]) -> tuple[bool, bool]:
    """Whether some correlation alert's window spans files, and some spans batches of a file."""
    files = batches = False
    for a in alerts:
        events = a.get("correlation", {}).get("events", [])
        paths = {e["path"] for e in events}
        files |= len(paths) > 1
        for path in paths:
            records = [e["record"] for e in events if e["path"] == path]
            batches |= max(records) - min(records) > BATCH
    return files, batches


@pytest.mark.parametrize(
    ("lateness", "correlations"),
    [(None, True), (60.0, True), (None, False)],
    ids=["all-at-end", "lateness-60s", "no-correlations"],
)
def test_two_workers_give_one_workers_alerts_on_shared_corpora(
    shared_data: Path, plan: Plan, lateness: float | None, correlations: bool
) -> None:
    paths = [
        shared_data / "loghub" / "OpenSSH",
        shared_data / "loghub-2k" / "OpenSSH",
        shared_data / "loghub" / "Linux",
        shared_data / "loghub-2k" / "Linux",
        shared_data / "evtx-attack-samples" / "Lateral Movement",
        *(shared_data / "zeek-wrccdc" / f"{log}.json.gz" for log in ("ntlm", "rdp", "ssh")),
    ]
    for path in paths:
        if not path.exists():
            pytest.skip(f"{path} is absent from the shared corpora")
    if not correlations:
        plan = dataclasses.replace(plan, correlations=[])
    one, q1 = hunt(paths, plan, 1, lateness=lateness)
    two, q2 = hunt(paths, plan, 2, lateness=lateness)
    assert len(one) > 100
    assert Counter(map(key, two)) == Counter(map(key, one))
    assert per_file(two) == per_file(one)
    assert two == one  # correlation alerts too, as the windows close
    assert [dataclasses.astuple(r) for r in q2.records] == [
        dataclasses.astuple(r) for r in q1.records
    ]
    found = [a for a in one if "correlation" in a]
    if correlations:
        assert spans(found) == (True, True)
    else:
        assert found == []


def ssh_failures(start: int, count: int) -> str:
    return "".join(
        f"Nov 20 08:{n // 60:02d}:{n % 60:02d} gov-web-01 sshd[{100 + n}]: Failed password for "
        f"root from 203.0.113.{7 + n % 3} port {40000 + n} ssh2\n"
        for n in range(start, start + count)
    )


def test_order_matters_and_is_kept(tmp_path: Path, plan: Plan) -> None:
    """With no lateness allowed, an event behind the newest one seen is late and not
    correlated: feeding the batches out of order changes the alerts, so equal alerts with two
    workers mean the order was kept. A bad record's quarantine keeps its place too."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text(ssh_failures(0, 700))
    (logs / "b.jsonl").write_text('{"EventID": 1}\n{not json\n{"EventID": 2}\n')
    (logs / "c.log").write_text(ssh_failures(700, 500))
    small = {"lateness": 0.0, "batch_size": 13}

    one, q1 = hunt([logs], plan, 1, **small)
    batches = list(read_paths([logs], Quarantine(), batch_size=13))
    shuffled: list[Alert] = []
    run_hunt(
        [],
        plan,
        sink=shuffled.extend,
        quarantine=Quarantine(),
        batches=batches[::2] + batches[1::2],
        lateness=0.0,
    )
    assert [a.to_dict() for a in shuffled] != one  # out of order: other alerts

    progress: dict[str, int] = {}
    events: list[int] = []

    def tick(batch: EventBatch, summary: Any) -> None:
        assert batch.offset >= progress.get(batch.path, 0)
        progress[batch.path] = batch.offset
        events.append(summary.events)

    alerts: list[Alert] = []
    quarantine = Quarantine()
    summary, _ = run_hunt(
        [logs],
        plan,
        sink=alerts.extend,
        quarantine=quarantine,
        workers=2,
        progress=tick,
        **small,
    )
    assert [a.to_dict() for a in alerts] == one
    assert sum("correlation" in a for a in one) >= 10
    assert [(r.path, r.record) for r in quarantine.records] == [
        (r.path, r.record) for r in q1.records
    ]
    assert q1.count == 1
    # Progress: every byte of every file read, and every event, whichever worker read it.
    assert progress == {str(p): p.stat().st_size for p in sorted(logs.iterdir())}
    assert events[-1] == summary.events == 1202


def test_default_workers_leave_small_hunts_in_one_process(tmp_path: Path) -> None:
    """A worker costs seconds to start: by default, one per file and per 32 MiB at most."""
    cores = default_workers()
    small = tmp_path / "small"
    small.mkdir()
    for n in range(4):
        (small / f"{n}.log").write_text("x\n")
    assert default_workers([small]) == 1
    large = tmp_path / "large"
    large.mkdir()
    for n in range(3):
        with (large / f"{n}.log").open("wb") as fh:
            fh.truncate(BYTES_PER_WORKER + 1)  # sparse: nothing written
    assert default_workers([large]) == min(cores, 3)
    assert default_workers([large / "0.log"]) == 1
    assert default_workers([tmp_path / "absent"]) == 1
