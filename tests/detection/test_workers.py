"""A hunt on several worker processes gives the alerts of one process, in the same order:
single-event alerts per file, and correlations whose windows span batches and files."""

from __future__ import annotations

import dataclasses
import gzip
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
from qorgan.telemetry.options import ReadOptions
from qorgan.telemetry.quarantine import Quarantine
from qorgan.telemetry.sources import read_paths
from qorgan.telemetry.sources import spans as file_spans

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


def attack_lines(shared_data: Path, out: Path) -> int:
    """The EVTX attack samples of two tactics as one file of JSON lines (the ``evtx``
    parser's documents), with what a real export holds besides: other JSON between them (so
    batches change kind), blank and broken lines, and lines longer than the record limit,
    one of them longer than several spans. Returns how many Windows events it holds."""
    evtx = pytest.importorskip("evtx")
    folders = [shared_data / "evtx-attack-samples" / t for t in ("Lateral Movement", "Execution")]
    for folder in folders:
        if not folder.exists():
            pytest.skip(f"{folder} is absent from the shared corpora")
    events = 0
    with out.open("w", encoding="utf-8") as fh:
        for folder in folders:
            for path in sorted(folder.glob("*.evtx")):
                for n, record in enumerate(evtx.PyEvtxParser(str(path)).records_json()):
                    fh.write(json.dumps(json.loads(record["data"]), separators=(",", ":")))
                    fh.write("\n")
                    events += 1
                    if n % 41 == 7:
                        fh.write(f'{{"ts": "2019-04-27T16:00:00Z", "msg": "proxy", "n": {n}}}\n')
                    if n % 97 == 3:
                        fh.write("\n{not json\n")
                    if n % 211 == 5:
                        fh.write('{"pad": "' + "x" * (5_000 + 60_000 * (n % 2)) + '"}\n')
    return events


@pytest.fixture(scope="module")
def windows_plan(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Plan:
    """SigmaHQ's Windows rules and a correlation of one of them whose windows span spans."""
    rules = shared_data / "sigma" / "rules" / "windows"
    if not rules.exists():
        pytest.skip(f"{rules} is absent from the shared corpora")
    ours = tmp_path_factory.mktemp("correlations") / "tricks.yml"
    ours.write_text(TRICKS_PER_HOST)
    return load_plan([rules, ours], cache_dir=tmp_path_factory.mktemp("plans"))


#: Three SigmaHQ rules that fire often on the samples, three times on a host within an hour.
TRICKS_PER_HOST = """\
title: Registry, rundll32 or remote-thread tricks again and again on one host
name: tricks_per_host
correlation:
    type: event_count
    rules:
        - 3a9b8c1e-5b2e-4f7a-9d1c-2a7f3b6e1c55
        - e593cf51-88db-4ee1-b920-37e89012a3c9
        - a1a144b7-5c9b-4853-a559-2172be8d4a03
    group-by:
        - Computer
    timespan: 1h
    condition:
        gte: 3
    generate: true
level: high
"""


@pytest.mark.parametrize("lateness", [None, 3600.0], ids=["all-at-end", "lateness-1h"])
def test_a_file_of_json_lines_is_split_across_workers(
    shared_data: Path, tmp_path: Path, windows_plan: Plan, lateness: float | None
) -> None:
    """One big file of JSON lines keeps two workers busy: it is read in spans, whose lines are
    numbered as a whole file's would be, with the same batches, alerts, quarantine (a line
    longer than the limit, even across spans, quarantined once) and progress."""
    path = tmp_path / "attacks.jsonl"
    events = attack_lines(shared_data, path)
    options = ReadOptions(max_record_bytes=4096, span_bytes=16_384)
    parts = file_spans(path, options)
    assert parts is not None and len(parts) > 50
    assert file_spans(path, ReadOptions(max_record_bytes=4096)) is None  # one span: whole
    packed = tmp_path / "attacks.jsonl.gz"
    packed.write_bytes(gzip.compress(path.read_bytes(), 1))
    array = tmp_path / "attacks.json"
    array.write_text("[\n" + ",\n".join(path.read_text().split("\n")[:2000:97]) + "\n]\n")
    assert file_spans(packed, options) is None  # gzip cannot be entered midway
    assert file_spans(array, ReadOptions(span_bytes=1024)) is None  # nor an array
    assert file_spans(tmp_path / "absent.jsonl", options) is None
    data = path.read_bytes()
    starts = [0] + [i + 1 for i, c in enumerate(data) if c == 10]  # line n starts at [n - 1]
    batches = list(read_paths([path], Quarantine(), options=options, batch_size=BATCH))
    in_span = {
        starts[b.records[0] - 1] // 16_384 == starts[b.records[-1] - 1] // 16_384 for b in batches
    }
    assert in_span == {True}  # batches end at every span's end
    assert len({starts[b.records[0] - 1] // 16_384 for b in batches}) > 50

    plan = windows_plan
    one, q1 = hunt([path], plan, 1, lateness=lateness, options=options)
    progress: dict[str, int] = {}

    def tick(batch: EventBatch, summary: Any) -> None:
        assert batch.offset >= progress.get(batch.path, 0)
        progress[batch.path] = batch.offset

    two, q2 = hunt([path], plan, 2, lateness=lateness, options=options, progress=tick)
    assert len(one) > 100
    found = [a for a in one if "correlation" in a]
    assert len(found) >= 5
    # Some correlation's events lie in different spans, read by different workers.
    assert any(
        len({starts[e["record"] - 1] // 16_384 for e in a["correlation"]["events"]}) > 1
        for a in found
    )
    assert two == one
    assert [dataclasses.astuple(r) for r in q2.records] == [
        dataclasses.astuple(r) for r in q1.records
    ]
    reasons = Counter(r.reason.split(":")[0] for r in q1.records)
    assert reasons == {"json": Counter(r.reason.split(":")[0] for r in q1.records)["json"]}
    assert sum("longer than" in r.reason for r in q1.records) > 10
    assert progress == {str(path): path.stat().st_size}
    # Each alert's record is its event's line in the file.
    lines = data.split(b"\n")
    for alert in two:
        if "correlation" not in alert:
            record = alert["source"]["record"]
            assert b'"EventRecordID"' in lines[record - 1]
    assert sum("correlation" not in a for a in two) <= events


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
