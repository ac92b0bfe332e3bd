"""Benchmark of ``qorgan hunt``: events/s on one core (and more with ``--workers``), the ratio
to parsing alone, peak memory, start-up time, and the cost of compiling rules cold and warm.

    python bench/hunt.py [--events 2000000] [--workers 1,2] [--keep DIR] [--rules DIR]

Converts ``../shared/data/evtx-attack-samples`` to JSON lines once, then builds two inputs of at
least ``--events`` events under ``--keep`` (reused by later runs):

- *diverse*: the samples multiplied by ``bench/diverse.py``, each copy with fresh GUIDs, ids,
  times, hosts, users and temporary names. Before any figure, the alerts of sampled copies are
  compared with the original's, rule by rule and record by record, and the figures refused
  when they differ; the full run's alert count must be the copies times the original's.
- *repeated*: the same records repeated unchanged (flatters the engine's dictionary encoding).

Each ``qorgan hunt`` runs pinned to as many cores as workers (``taskset``), warm plan cache,
alerts to ``/dev/null``. EVTX is hunted on the original 277 files (no EVTX writer is available
to multiply them). Figures go in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "out"
QORGAN = [str(Path(sys.executable).parent / "qorgan")]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def convert(samples: Path, target: Path) -> int:
    """EVTX records as the ``evtx`` parser renders them, one JSON document per line."""
    import evtx
    import orjson

    count = 0
    with target.open("wb") as out:
        for path in sorted(samples.rglob("*.evtx")):
            try:
                for record in evtx.PyEvtxParser(str(path)).records_json():
                    out.write(orjson.dumps(orjson.loads(record["data"])) + b"\n")
                    count += 1
            except (OSError, RuntimeError) as exc:
                print(f"  skipped rest of {path.name}: {exc}", file=sys.stderr)
    return count


def repeated(base: Path, events: int, keep: Path = OUT) -> Path:
    target = keep / f"attack-{events}.jsonl"
    if target.exists():
        return target
    lines = base.read_bytes().splitlines(keepends=True)
    with target.open("wb") as out:
        written = 0
        while written < events:
            chunk = lines[: events - written]
            out.writelines(chunk)
            written += len(chunk)
    return target


def pinned(cmd: list[str], cores: int = 1) -> list[str]:
    if not shutil.which("taskset"):
        return cmd
    return ["taskset", "-c", ",".join(str(c) for c in range(cores)), *cmd]


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def offers_workers() -> bool:
    """Whether the installed ``qorgan hunt`` has ``--workers`` (added by another change)."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    proc = subprocess.run([*QORGAN, "hunt", "--help"], capture_output=True, text=True, env=env)
    return "--workers" in proc.stdout


def alerts_by_record(path: Path, per_copy: int) -> dict[int, collections.Counter]:
    """Per copy: (record within the copy, rule id) -> alerts, from a JSON-lines alert file."""
    import orjson

    copies: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    with path.open("rb") as fh:
        for line in fh:
            alert = orjson.loads(line)
            record = alert["source"]["record"] - 1
            copies[record // per_copy][record % per_copy, alert["rule"]["id"]] += 1
    return copies


def check_copies(
    base: Path, data: Path, per_copy: int, copies: int, hunt: list[str], env: dict[str, str]
) -> tuple[bool, int]:
    """Hunt the original and a few sampled copies; their alerts must be the same, record by
    record and rule by rule. Returns (equal, alerts of the original)."""
    sample = sorted({0, copies - 1, *random.Random(copies).sample(range(copies), 3)})
    work = Path(tempfile.mkdtemp(prefix="qorgan-bench-check-"))
    picked = work / "copies.jsonl"
    with data.open("rb") as src, picked.open("wb") as out:
        for number, line in enumerate(src):
            if number // per_copy in sample:
                out.write(line)
            elif number // per_copy > sample[-1]:
                break
    found = []
    for path in (base, picked):
        alerts = work / (path.stem + ".alerts.jsonl")
        cmd = [*hunt, str(path), "--output", str(alerts)]
        subprocess.run(cmd, env=env, capture_output=True, check=False)
        found.append(alerts_by_record(alerts, per_copy))
    original = found[0][0]
    ok = True
    for index, number in enumerate(sample):
        got = found[1].get(index, collections.Counter())
        missing, extra = original - got, got - original
        rules = collections.Counter(r for (_, r), n in got.items() for _ in range(n))
        same_rules = rules == collections.Counter(
            r for (_, r), n in original.items() for _ in range(n)
        )
        print(
            f"  copy {number}: {sum(got.values()):,} alerts in {len(rules)} rules"
            f" (original {sum(original.values()):,}); per rule "
            f"{'equal' if same_rules else 'DIFFERENT'}, per record "
            f"{'equal' if not missing and not extra else 'DIFFERENT'}"
        )
        for (record, rule), n in list((missing + extra).items())[:5]:
            what = "missing" if (record, rule) in missing else "extra"
            print(f"    record {record + 1} rule {rule}: {n} {what}")
        ok = ok and not missing and not extra
    shutil.rmtree(work, ignore_errors=True)
    return ok, sum(original.values())


#: Runs a command as its child; reports the child's wall time and the peak of the memory of
#: its whole process tree (the hunt, its forkserver and workers), sampled ten times a second:
#: the sum of their RSS, and of their PSS (pages shared between processes counted once).
_MEASURE = """
import os, subprocess, sys, time

def tree(root):
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out

def memory(pids):
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
        except OSError:
            pass
    return rss, pss

import threading
peak = [0, 0]
done = threading.Event()

def sample(pid):
    while not done.wait(0.1):
        for i, value in enumerate(memory(tree(pid))):
            peak[i] = max(peak[i], value)

started = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
sampler = threading.Thread(target=sample, args=(proc.pid,))
sampler.start()
_, err = proc.communicate()
seconds = time.perf_counter() - started
done.set()
sampler.join()
peak_rss, peak_pss = peak
sys.stderr.buffer.write(err)
print(proc.returncode, seconds, peak_rss, peak_pss)
"""


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, int, str]:
    """(wall seconds, peak PSS bytes of the whole process tree, exit code, stderr) of ``cmd``
    run as a child process."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd], capture_output=True, check=False, env=env
    )
    code, seconds, _rss, pss = proc.stdout.split()
    return float(seconds), int(pss), int(code), proc.stderr.decode(errors="replace")


PARSE_ONLY = """
import sys, orjson
with open(sys.argv[1], "rb") as fh:
    for line in fh:
        orjson.loads(line)
"""


#: The hunt's own summary: events, files, its own seconds and rate (without start-up), alerts.
_SUMMARY = re.compile(
    r"([\d,]+) events from (\d+) files in ([\d.]+) s \(([\d,]+) events/s\).*?([\d,]+) alerts", re.S
)


def hunt_figures(
    label: str,
    hunt: list[str],
    data: Path | list[Path],
    events: int | None,
    workers: list[int],
    offered: bool,
    env: dict[str, str],
    parse_rate: float | None,
    runs: int,
    expect_alerts: int | None = None,
) -> bool:
    """Runs ``hunt`` over ``data`` for each worker count and prints its figures."""
    for count in workers:
        if count > 1 and not offered:
            print(f"{label}, {count} workers: pending (qorgan hunt has no --workers yet)")
            continue
        paths = [str(p) for p in data] if isinstance(data, list) else [str(data)]
        cmd = [*hunt, *paths, "--output", os.devnull]
        if offered:
            cmd += ["--workers", str(count)]
        for attempt in range(runs):
            before = load()
            seconds, peak, code, stderr = measure(pinned(cmd, count), env)
            if code not in (0, 1):
                print(stderr, file=sys.stderr)
                return False
            summary = _SUMMARY.search(stderr)
            alerts = int(summary.group(5).replace(",", "")) if summary else -1
            own = f"{summary.group(4)} events/s in its own {summary.group(3)} s" if summary else ""
            counted = int(summary.group(1).replace(",", "")) if summary else 0
            rate = (events or counted) / seconds
            ratio = f", {rate / parse_rate:.1%} of parse-only" if parse_rate else ""
            print(
                f"{label}, {count} worker{'s' if count > 1 else ''} ({count} core), run "
                f"{attempt + 1}: {seconds:.2f} s, {rate:,.0f} events/s{ratio}, peak PSS of its "
                f"processes {peak / 2**20:.0f} MiB, {alerts:,} alerts"
            )
            print(f"    hunt's summary: {own} (reading to writing, no start-up) [{before}]")
            if expect_alerts is not None and alerts != expect_alerts:
                print(f"  REFUSED: {alerts:,} alerts, expected {expect_alerts:,}")
                return False
    return True


def parse_only(data: Path, events: int) -> float:
    before = load()
    seconds, _, _, _ = measure(pinned([sys.executable, "-c", PARSE_ONLY, str(data)]))
    rate = events / seconds
    print(f"  parse only (orjson.loads per line, 1 core): {seconds:.2f} s, {rate:,.0f} events/s")
    print(f"    [{before}]")
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--workers", default="1", help="worker counts to run, e.g. 1,2")
    parser.add_argument("--runs", type=int, default=1, help="runs of each hunt")
    parser.add_argument("--keep", type=Path, default=OUT, help="where inputs are cached")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--rules", type=Path, default=SHARED / "sigma" / "rules" / "windows")
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--skip-repeated", action="store_true")
    parser.add_argument(
        "--profile", type=int, default=0, help="also profile a hunt of this many diverse events"
    )
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    samples = SHARED / "evtx-attack-samples"
    if not samples.is_dir():
        print(f"corpus absent: {samples}", file=sys.stderr)
        return 2
    args.keep.mkdir(parents=True, exist_ok=True)
    base = args.keep / "attack-samples.jsonl"
    if not base.exists():
        print(f"converting {samples} to {base} ...")
        print(f"  {convert(samples, base):,} records")
    cache = Path(tempfile.mkdtemp(prefix="qorgan-bench-cache-"))
    env = {**os.environ, "QORGAN_CACHE_DIR": str(cache)}
    offered = offers_workers()
    print(f"qorgan hunt --workers: {'offered' if offered else 'not offered (one worker)'}")

    if not args.skip_compile:
        compile_figures(cache)

    # The diverse input, generated once per (events, seed, generator version).
    import diverse

    per_copy = sum(1 for line in base.open("rb") if line.strip())
    copies = -(-args.events // per_copy)
    data = args.keep / f"diverse-v{diverse.VERSION}-{args.events}-seed{args.seed}.jsonl"
    if not data.exists():
        started = time.perf_counter()
        diverse.generate(base, data, args.events, args.seed)
        print(f"generated {data.name} in {time.perf_counter() - started:.1f} s")
    events = copies * per_copy
    hunt = [*QORGAN, "hunt", "--rules", str(args.rules), "--no-progress"]
    subprocess.run([*hunt, str(base), "--output", os.devnull], env=env, capture_output=True)

    empty = cache / "empty.jsonl"
    empty.write_bytes(b"")
    startup = []
    for _ in range(3):
        seconds, peak, _, _ = measure(
            pinned([*hunt, "--input-format", "json", str(empty), "--output", os.devnull]), env
        )
        startup.append(seconds)
    print(
        f"start-up (hunt of an empty file, warm plan, 1 core): best {min(startup):.2f} s, "
        f"runs {', '.join(f'{s:.2f}' for s in startup)}, "
        f"peak PSS of its processes {peak / 2**20:.0f} MiB [{load()}]"
    )

    print(
        f"diverse input: {data.name}, {copies} copies of {per_copy:,} records = {events:,} events,"
        f" {data.stat().st_size / 2**20:,.0f} MiB"
    )
    ok, original = check_copies(base, data, per_copy, copies, hunt, env)
    if not ok:
        print("check FAILED: copies do not alert as the original does; no figures reported")
        return 1
    print(f"  check passed: sampled copies alert as the original ({original:,} alerts a copy)")
    parse_rate = parse_only(data, events)
    if not hunt_figures(
        "diverse JSON lines",
        hunt,
        data,
        events,
        workers,
        offered,
        env,
        parse_rate,
        args.runs,
        expect_alerts=copies * original,
    ):
        return 1

    if args.profile:
        profile(hunt, data, args.profile, env, args.keep)

    evtx = sorted(samples.rglob("*.evtx"))  # the folder also holds other logs and a pcap
    subprocess.run([*hunt, *map(str, evtx), "--output", os.devnull], env=env, capture_output=True)
    print(f"EVTX input: the {len(evtx)} .evtx files of {samples.name}")
    hunt_figures("original EVTX", hunt, evtx, None, workers, offered, env, None, args.runs)

    if not args.skip_repeated:
        rep = repeated(base, events, args.keep)
        print(f"repeated input: {rep.name}, {per_copy:,} records repeated to {events:,} events")
        rate = parse_only(rep, events)
        hunt_figures(
            "repeated JSON lines", hunt, rep, events, workers, offered, env, rate, args.runs
        )
    shutil.rmtree(cache, ignore_errors=True)
    return 0


#: Stages of a hunt, by the innermost frame of Qorgan's own code (file, function) in a sample.
STAGES = (
    ("start-up: imports, plan load", ("importlib", "loader.py", "plan.py", "<module>")),
    ("plan compile (cache missed)", ("compiler.py", "logsources.py")),
    ("read lines + orjson.loads", ("_read_lines", "numbered_lines", "read", "_read_documents")),
    ("normalise to Sigma fields", ("windows.py", "json.py:__call__", "flatten")),
    ("batch building", ("batch.py",)),
    ("keyword full-text", ("keyword_column", "_values_json", "keyword_mask", "KeywordSearch")),
    ("dictionary encoding", ("encode", "_encode_field")),
    ("atoms and rules", ("engine.py", "matchers.py")),
    ("alerts: build, classify, write", ("alerts.py", "classification.py", "attack.py")),
    ("hunt loop, workers", ("hunt.py", "workers.py")),
)


def stage_of(stack: str) -> str:
    for frame in reversed(stack.split(";")):
        func, _, where = frame.partition(" (")
        if "qorgan/" not in where and "importlib" not in where:
            continue
        name = where.rsplit("/", 1)[-1].split(":", 1)[0]
        qualified = func.split(".<locals>", 1)[0]  # py-spy names Class.method
        func, owner = qualified.rsplit(".", 1)[-1], qualified.split(".", 1)[0]
        for stage, marks in STAGES:
            if (
                func in marks
                or owner in marks
                or name in marks
                or f"{name}:{func}" in marks
                or ("importlib" in marks and "importlib" in where)
            ):
                return stage
        return f"other ({name} {func})"
    return "outside Qorgan's code (interpreter, GC, libraries)"


def profile(hunt: list[str], data: Path, events: int, env: dict[str, str], keep: Path) -> None:
    """py-spy samples of one hunt of the first ``events`` events of ``data``, by stage."""
    prefix = keep / f"{data.stem}-first-{events}.jsonl"
    if not prefix.exists():
        with data.open("rb") as src, prefix.open("wb") as out:
            out.writelines(itertools.islice(src, events))
    raw = keep / "hunt-profile.txt"
    spy = str(Path(sys.executable).parent / "py-spy")
    cmd = [*hunt, str(prefix), "--output", os.devnull]
    before = load()
    started = time.perf_counter()
    subprocess.run(
        pinned(
            [
                spy,
                "record",
                "--subprocesses",
                "--rate",
                "250",
                "--format",
                "raw",
                "-o",
                str(raw),
                "--",
                *cmd,
            ]
        ),
        env=env,
        capture_output=True,
        check=False,
    )
    wall = time.perf_counter() - started
    stages: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            stages[stage_of(stack)] += int(count)
    total = sum(stages.values())
    print(f"profile: {events:,} diverse events, py-spy at 250 Hz, {wall:.1f} s under py-spy")
    print(f"  [{before}], samples {total:,}, raw stacks in {raw}")
    for stage, count in stages.most_common():
        share = count / total
        print(f"  {share:6.1%}  {share * wall / events * 1e6:6.1f} µs/event  {stage}")


def compile_figures(cache: Path) -> None:
    """Rule compilation: cold, then warm (cached plan), all SigmaHQ rule folders."""
    from qorgan.detection.loader import load_plan

    folders = [
        SHARED / "sigma" / d
        for d in (
            "rules",
            "rules-emerging-threats",
            "rules-threat-hunting",
            "rules-placeholder",
            "rules-compliance",
        )
    ]
    started = time.perf_counter()
    plan = load_plan(folders, cache_dir=cache / "all")
    cold = time.perf_counter() - started
    started = time.perf_counter()
    load_plan(folders, cache_dir=cache / "all")
    warm = time.perf_counter() - started
    print(
        f"compile all SigmaHQ rules ({len(plan.rules):,} compiled, {len(plan.failures)} failed):"
        f" cold {cold:.2f} s, warm {warm:.2f} s"
    )


if __name__ == "__main__":
    raise SystemExit(main())
