"""Benchmark of the AI anomaly models: what they add per event, and what they cost a hunt.

    python bench/anomaly.py [--events 200000] [--seed 7] [--keep DIR]

Input (built once under ``--keep``): the real logs of ``../shared/data`` a hunt reads as text,
multiplied into copies that vary what real logs vary:

- ``loghub/OpenSSH/OpenSSH_2k.log`` and ``loghub/Linux/Linux_2k.log`` (syslog: sshd, PAM, su,
  cron, kernel...), ``loghub/Apache/Apache_2k.log`` (Apache's error log) and
  ``evtx-attack-samples/.../web_attack_and_isp_webshell_localhost_access_log.txt`` (an access
  log);
- each copy shifts its times by its own number of days (order kept), draws every IPv4 address
  afresh (one new address per address per copy, so a source stays one source), every user name
  from a pool of 3,000 and every process id (one new id per id per copy, so a session stays one
  session), and every port and byte count afresh.

Figures (each on one core, this process, rules from the built-in pack):

1. **per event**: the suite (templates and every detector) given one event at a time after
   it learned the first half of the input: p50, p99 and max milliseconds over the second half's
   events;
2. **hunt throughput**: ``run_hunt`` over the whole input with and without the suite, CPU
   seconds of this process (best of ``--runs``), and the slowdown in per cent;
3. **per model**: CPU microseconds a line of each model's ``observe`` over the input's batches
   (the template rarity model mines for both template models, so masking and mining count there);
4. **objections**: CPU microseconds a line to leave out the people who objected (a name, a
   phone number and an IIN, each in every spelling the store keeps, as keyed hashes), paid
   only by an organisation with objections.

Targets (issue 14): at most 1 ms per event at p99; at most 20% slower hunts.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "out" / "anomaly"
SOURCES = {
    "ssh.log": SHARED / "loghub" / "OpenSSH" / "OpenSSH_2k.log",
    "linux.log": SHARED / "loghub" / "Linux" / "Linux_2k.log",
    "apache_error.log": SHARED / "loghub" / "Apache" / "Apache_2k.log",
    "access.log": SHARED
    / "evtx-attack-samples"
    / "Command and Control"
    / "web_attack_and_isp_webshell_localhost_access_log.txt",
}
IPV4 = re.compile(r"\b(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\b")
USER = re.compile(
    r"(?<=\buser )[A-Za-z0-9_.-]+|(?<=\bfor )(?!invalid\b)[A-Za-z0-9_.-]+(?= from)"
    r"|(?<=\bruser=)[A-Za-z0-9_.-]+|(?<=\buser=)[A-Za-z0-9_.-]+"
)
PID = re.compile(r"(?<=\[)\d+(?=\])")
PORT = re.compile(r"(?<=port )\d+")
SYSLOG_DAY = re.compile(r"^([A-Z][a-z]{2}) ([ \d]\d)")
APACHE_DAY = re.compile(r"^\[([A-Z][a-z]{2}) ([A-Z][a-z]{2}) (\d\d)")
CLF_DAY = re.compile(r"\[(\d\d)/([A-Z][a-z]{2})/(\d{4})")
CLF_BYTES = re.compile(r'(" \d{3} )(\d+)')
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _varied_copy(
    lines: list[str], rng: random.Random, users: list[str], shift_days: int
) -> list[str]:
    addresses: dict[str, str] = {}
    names: dict[str, str] = {}

    def address(m: re.Match[str]) -> str:
        old = m.group(0)
        new = addresses.get(old)
        if new is None:
            new = addresses[old] = (
                f"{rng.randint(1, 223)}.{rng.randint(0, 255)}."
                f"{rng.randint(0, 255)}.{rng.randint(1, 254)}"
            )
        return new

    pids: dict[str, str] = {}

    def pid(m: re.Match[str]) -> str:
        old = m.group(0)
        new = pids.get(old)
        if new is None:
            new = pids[old] = str(rng.randint(300, 65000))
        return new

    def user(m: re.Match[str]) -> str:
        old = m.group(0)
        new = names.get(old)
        if new is None:
            new = names[old] = rng.choice(users)
        return new

    # A day shift within the month (1..27) keeps every date valid without calendar work.
    day = shift_days % 27

    def syslog_day(m: re.Match[str]) -> str:
        return f"{m.group(1)} {min(int(m.group(2)) + day, 28):2d}"

    def apache_day(m: re.Match[str]) -> str:
        return f"[{m.group(1)} {m.group(2)} {min(int(m.group(3)) + day, 28):02d}"

    def clf_day(m: re.Match[str]) -> str:
        return f"[{min(int(m.group(1)) + day, 28):02d}/{m.group(2)}/{m.group(3)}"

    out = []
    for line in lines:
        line = IPV4.sub(address, line)
        line = USER.sub(user, line)
        line = PID.sub(pid, line)
        line = PORT.sub(lambda _m: str(rng.randint(1024, 65535)), line)
        line = SYSLOG_DAY.sub(syslog_day, line, count=1)
        line = APACHE_DAY.sub(apache_day, line, count=1)
        line = CLF_DAY.sub(clf_day, line, count=1)
        line = CLF_BYTES.sub(lambda m: m.group(1) + str(rng.randint(200, 90_000)), line)
        out.append(line)
    return out


def build(events: int, seed: int, keep: Path) -> list[Path]:
    """The varied input files (reused when they exist for these arguments)."""
    keep.mkdir(parents=True, exist_ok=True)
    marker = keep / f"built-{events}-{seed}"
    paths = [keep / name for name in SOURCES]
    if marker.exists() and all(p.exists() for p in paths):
        return paths
    rng = random.Random(seed)
    users = [
        f"{rng.choice(['a', 'b', 'd', 'e', 'n', 's', 't'])}{rng.randint(100, 99999)}"
        for _ in range(3000)
    ]
    base = {
        name: path.read_text(encoding="utf-8", errors="replace").splitlines()
        for name, path in SOURCES.items()
    }
    per_name = max(1, events // len(base))
    for name, lines in base.items():
        written = 0
        with (keep / name).open("w", encoding="utf-8") as out:
            copy = 0
            while written < per_name:
                for line in _varied_copy(lines, rng, users, copy):
                    out.write(line + "\n")
                written += len(lines)
                copy += 1
    marker.touch()
    return paths


def batches(paths: list[Path]) -> list:
    from qorgan.telemetry.options import ReadOptions
    from qorgan.telemetry.quarantine import Quarantine
    from qorgan.telemetry.sources import read_paths

    return list(read_paths(paths, Quarantine(), options=ReadOptions(tz=ZoneInfo("Asia/Almaty"))))


def per_event(paths: list[Path], make_suite: Callable) -> tuple[list[float], int]:
    """Milliseconds per event over the second half, one event at a time, after learning the
    first half batch by batch."""
    from qorgan.telemetry.batch import EventBatch

    suite = make_suite()
    all_batches = batches(paths)
    events = [(b, i) for b in all_batches for i in range(len(b))]
    half = len(events) // 2
    firsts: dict[int, list[int]] = {}
    for b, i in events[:half]:
        firsts.setdefault(id(b), []).append(i)
    for b in all_batches:
        rows = firsts.get(id(b))
        if rows:
            part = EventBatch(b.path, b.format, b.logsource)
            for i in rows:
                part.append(b.events[i], b.records[i], b.times[i], b.hosts[i])
            suite.observe(part)
    timings: list[float] = []
    found = 0
    clock = time.perf_counter
    for b, i in events[half:]:
        one = EventBatch(b.path, b.format, b.logsource)
        one.append(b.events[i], b.records[i], b.times[i], b.hosts[i])
        started = clock()
        found += len(suite.observe(one))
        timings.append((clock() - started) * 1000)
    return timings, found


def per_model(paths: list[Path], make_suite: Callable) -> dict[str, float]:
    """CPU microseconds a line of each model's ``observe``, in the suite's order, over every
    batch of the input."""
    all_batches = batches(paths)
    lines = sum(len(b) for b in all_batches)
    spent: dict[str, float] = {}
    suite = make_suite()
    for batch in all_batches:
        for detector in suite.detectors:
            started = time.process_time()
            detector.observe(batch)
            spent[detector.model] = spent.get(detector.model, 0.0) + time.process_time() - started
    return {model: seconds / lines * 1e6 for model, seconds in spent.items()}


def per_objection(paths: list[Path]) -> float:
    """CPU microseconds a line to look for the people who objected (a full name, a phone
    number and an IIN, compared as keyed hashes as the pipeline does) in every event: what an
    organisation with objections pays before any model runs."""
    from qorgan.core.identifiers import identifier_spellings
    from qorgan.detection.anomaly.suite import AnomalySuite
    from qorgan.incidents.findings import identifier_digest

    key = b"bench-key-" * 4
    suite = AnomalySuite([], identify=lambda value: identifier_digest(value, key))
    suite.exclude(
        identifier_digest(spelling, key)
        for value in ("Aigerim Saparova", "+7 (701) 123-45-67", "880101300123")
        for spelling in identifier_spellings(value)
    )
    all_batches = batches(paths)
    started = time.process_time()
    for batch in all_batches:
        suite.observe(batch)
    return (time.process_time() - started) / sum(len(b) for b in all_batches) * 1e6


def hunt_seconds(paths: list[Path], make_suite: Callable | None, runs: int) -> tuple[float, int]:
    from qorgan.detection.hunt import run_hunt
    from qorgan.detection.loader import BUILTIN_RULES, default_cache_dir, load_plan
    from qorgan.telemetry.quarantine import Quarantine

    plan = load_plan([BUILTIN_RULES], cache_dir=default_cache_dir())
    best = float("inf")
    findings = 0
    for _ in range(runs):
        suite = make_suite() if make_suite is not None else None
        count = [0]

        def sink(found: list, count: list[int] = count) -> None:
            count[0] += len(found)

        started = time.process_time()
        run_hunt(
            paths,
            plan,
            sink=lambda alerts: None,
            quarantine=Quarantine(),
            workers=1,
            anomaly=suite,
            findings=sink,
        )
        best = min(best, time.process_time() - started)
        findings = count[0]
    return best, findings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=OUT)
    args = parser.parse_args()
    missing = [str(p) for p in SOURCES.values() if not p.exists()]
    if missing:
        print(f"shared corpus absent: {', '.join(missing)}", file=sys.stderr)
        return 2
    from qorgan.detection.anomaly.defaults import default_suite

    paths = build(args.events, args.seed, args.keep)
    lines = sum(1 for p in paths for _ in p.open("rb"))
    print(f"input: {lines:,} lines in {len(paths)} files under {args.keep}")
    timings, found = per_event(paths, default_suite)
    timings.sort()
    p = statistics.quantiles(timings, n=100)
    print(
        f"per event (second half, one at a time, {len(timings):,} events, {found:,} findings): "
        f"p50 {p[49]:.3f} ms, p99 {p[98]:.3f} ms, max {timings[-1]:.1f} ms"
    )
    parts = per_model(paths, default_suite)
    print(
        "per model, CPU µs a line: "
        + ", ".join(f"{model} {us:.1f}" for model, us in parts.items())
        + f"; all {sum(parts.values()):.1f}"
    )
    print(f"objections (3 people, keyed hashes), CPU µs a line: {per_objection(paths):.1f}")
    plain, _ = hunt_seconds(paths, None, args.runs)
    with_models, findings = hunt_seconds(paths, default_suite, args.runs)
    slower = (with_models / plain - 1) * 100
    print(
        f"hunt, CPU s (best of {args.runs}): rules {plain:.2f} s ({lines / plain:,.0f} lines/s); "
        f"rules and anomaly models {with_models:.2f} s ({lines / with_models:,.0f} lines/s); "
        f"{slower:.1f}% slower; {findings:,} findings"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
