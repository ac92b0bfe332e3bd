"""Benchmark of indicators in a hunt: events/s of a hunt with no indicators and with
1,000,000 generated ones (some of which match), the slowdown (target: at most 10%), and the
time and memory to build the set.

    python bench/intel_hunt.py [--events 200000] [--indicators 1000000] [--runs 5] [--cli-runs 1]

Input: the *diverse* Windows events of ``bench/hunt.py`` (its builders, imported: the EVTX
attack samples converted once, then multiplied by ``bench/diverse.py``) and Zeek's real DNS log
of ``../shared/data/zeek-wrccdc`` (53,615 queries: names, answers, addresses), hunted together
with the built-in rule pack on one core.

Indicators: IPv4 (30%), IPv6 (10%), domains (25%), URLs (5%), MD5/SHA-1/SHA-256 hashes (25%),
e-mail addresses (5%), random but well-formed, 1% of them expired; and, spread among them, 200
addresses, names and hashes that occur (rarely) in the input, so that the hunt has indicator
alerts to write.

Figures: the set's build time from a list of :class:`Indicator` and from its JSON-lines file,
and its memory (RSS growth of a fresh process loading it); then the headline, the hunt in
this process with and without the set compared batch by batch in CPU seconds (see
:func:`in_process`: the machine's cores are shared, and other programs' load moves a whole
hunt's time by more than the indicators do); then ``qorgan hunt`` end to end (wall clock,
start-up and loading the set included, peak PSS).
"""

from __future__ import annotations

import argparse
import collections
import gc
import math
import os
import random
import string
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hunt as hunt_bench
from qorgan.detection.indicators import Indicator, IndicatorSet
from qorgan.telemetry.quarantine import Quarantine

SHARED = hunt_bench.SHARED
DNS = SHARED / "zeek-wrccdc" / "dns.json.gz"
TLDS = ("com", "net", "org", "kz", "ru", "info", "xyz", "top", "io", "biz")
SHARES = (
    ("ipv4-addr", 30),
    ("ipv6-addr", 10),
    ("domain-name", 25),
    ("url", 5),
    ("file-hash", 25),
    ("email-addr", 5),
)


def _label(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_lowercase + string.digits, k=rng.randint(4, 12)))


def _value(kind: str, rng: random.Random) -> str:
    if kind == "ipv4-addr":
        return ".".join(str(rng.randint(1, 254)) for _ in range(4))
    if kind == "ipv6-addr":
        return "2001:db8:" + ":".join(f"{rng.getrandbits(16):x}" for _ in range(6))
    if kind == "domain-name":
        return f"{_label(rng)}.{rng.choice(TLDS)}"
    if kind == "url":
        return f"http://{_label(rng)}.{rng.choice(TLDS)}/{_label(rng)}/{_label(rng)}.php"
    if kind == "file-hash":
        bits = rng.choice((128, 160, 256))  # MD5, SHA-1, SHA-256
        return f"{rng.getrandbits(bits):0{bits // 4}x}"
    return f"{_label(rng)}@{_label(rng)}.{rng.choice(TLDS)}"


def from_input(data: list[Path], limit: int = 200, most: int = 20) -> list[tuple[str, str]]:
    """Addresses, names and hashes the input holds (each in at most ``most`` of its events,
    so that the hunt's extra time is matching, not writing alerts), to be found by the hunt."""
    from qorgan.telemetry.sources import read_paths

    found: collections.Counter[tuple[str, str]] = collections.Counter()
    for batch in read_paths(data, Quarantine()):
        for event in batch.events:
            for key, kind in (
                ("DestinationIp", "ipv4-addr"),
                ("id.resp_h", "ipv4-addr"),
                ("query", "domain-name"),
                ("Hashes", "file-hash"),
            ):
                value = event.get(key)
                if not isinstance(value, str):
                    continue
                if kind == "file-hash":
                    value = value.partition("SHA256=")[2].partition(",")[0]
                if kind == "domain-name" and value.count(".") < 1:
                    continue
                if value and value[0].isalnum() and ":" not in value:
                    found[(kind, value)] += 1
    rare = sorted(key for key, count in found.items() if count <= most)
    return random.Random(7).sample(rare, min(limit, len(rare)))


def generate(count: int, real: list[tuple[str, str]], seed: int = 13) -> list[Indicator]:
    rng = random.Random(f"qorgan-intel-hunt:{seed}")
    kinds = [k for k, share in SHARES for _ in range(share)]
    now = datetime.now(UTC)
    out = []
    every = max(1, count // max(1, len(real)))
    for n in range(count):
        if real and n % every == 0 and n // every < len(real):
            kind, value = real[n // every]
        else:
            kind = rng.choice(kinds)
            value = _value(kind, rng)
        expired = rng.random() < 0.01
        out.append(
            Indicator(
                kind=kind,
                value=value,
                ref=f"indicator--{uuid.UUID(int=rng.getrandbits(128), version=4)}",
                source=f"feed-{n % 7}",
                confidence=rng.randint(0, 100),
                valid_until=now - timedelta(days=1) if expired else now + timedelta(days=90),
            )
        )
    return out


def write(indicators: list[Indicator], path: Path) -> None:
    with path.open("wb") as out:
        for i in indicators:
            out.write(
                orjson.dumps(
                    {
                        "kind": i.kind,
                        "value": i.value,
                        "ref": i.ref,
                        "source": i.source,
                        "confidence": i.confidence,
                        "valid_until": i.valid_until.isoformat() if i.valid_until else None,
                    }
                )
                + b"\n"
            )


_LOAD = """
import gc, pickle, sys, time
from pathlib import Path
from qorgan.detection.indicator_files import load_indicators
from qorgan.telemetry.quarantine import Quarantine

def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096

gc.collect()
before = rss()
started, cpu = time.perf_counter(), time.process_time()
found = load_indicators(Path(sys.argv[1]), Quarantine())
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
gc.collect()
print(len(found), seconds, cpu, rss() - before, len(pickle.dumps(found, protocol=5)))
"""


def build_figures(indicators: list[Indicator], path: Path, env: dict[str, str]) -> None:
    """Build time from a list of :class:`Indicator` (in this process), and from the file in a
    fresh process: its time and the set's memory (the RSS it grew by, nothing else alive)."""
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    found = IndicatorSet.build(indicators)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"set of {len(found):,} indicators ({sum(found.refused.values()):,} refused) built from "
        f"a list of Indicator in {cpu:.2f} CPU s ({len(indicators) / cpu:,.0f}/s), "
        f"{seconds:.2f} s by the wall clock"
    )
    del found
    gc.collect()
    proc = subprocess.run(
        [sys.executable, "-c", _LOAD, str(path)], capture_output=True, text=True, env=env
    )
    count, seconds_text, cpu_text, grown_text, pickled_text = proc.stdout.split()
    grown, loaded = int(grown_text), int(count)
    print(
        f"  from the JSON-lines file ({path.stat().st_size / 2**20:.0f} MiB) in "
        f"{float(cpu_text):.2f} CPU s ({float(seconds_text):.2f} s by the wall clock), in a "
        f"fresh process: RSS grew {grown / 2**20:.0f} MiB "
        f"({grown / max(1, loaded):.0f} bytes per indicator); pickled for a hunt worker: "
        f"{int(pickled_text) / 2**20:.0f} MiB"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--indicators", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5, help="in-process runs of each hunt")
    parser.add_argument("--cli-runs", type=int, default=1, help="qorgan hunt runs of each")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--keep", type=Path, default=hunt_bench.OUT)
    args = parser.parse_args()
    samples = SHARED / "evtx-attack-samples"
    if not samples.is_dir() or not DNS.exists():
        print(f"corpus absent: {samples} or {DNS}", file=sys.stderr)
        return 2
    args.keep.mkdir(parents=True, exist_ok=True)
    base = args.keep / "attack-samples.jsonl"
    if not base.exists():
        print(f"converting {samples} to {base} ...")
        print(f"  {hunt_bench.convert(samples, base):,} records")
    import diverse

    data = args.keep / f"diverse-v{diverse.VERSION}-{args.events}-seed{args.seed}.jsonl"
    if not data.exists():
        diverse.generate(base, data, args.events, args.seed)
    inputs = [data, DNS]

    started, total = time.process_time(), 0
    for i in range(10_000_000):
        total += i
    print(
        f"this core's pace: a 10,000,000-step Python loop in {time.process_time() - started:.2f}"
        f" CPU s [{hunt_bench.load()}]"
    )
    real = from_input([base, DNS])
    indicators = generate(args.indicators, real)
    feed = args.keep / f"indicators-{args.indicators}.jsonl"
    write(indicators, feed)
    print(f"{len(indicators):,} indicators, {len(real)} of them values the input holds")
    cache = Path(tempfile.mkdtemp(prefix="qorgan-bench-cache-"))
    # This checkout's qorgan, whatever the virtual environment installed.
    src = str(hunt_bench.ROOT / "src")
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "QORGAN_CACHE_DIR": str(cache), "PYTHONPATH": path}
    build_figures(indicators, feed, env)
    del indicators
    gc.collect()

    if not in_process(inputs, feed, args.runs):
        return 1
    return cli_runs(inputs, feed, env, args.cli_runs)


def in_process(inputs: list[Path], feed: Path, runs: int) -> bool:
    """The headline, in this process on one core. The cores are shared with other programs,
    whose load changes a hunt's time by more than the indicators do, so the two hunts are
    compared batch by batch: the input is read once into memory (its reading and parsing,
    the same with or without indicators, timed apart, best of ``runs``), then each batch is
    matched by a hunter without and one with the set, one right after the other (in turns
    first), ``runs`` times, fresh hunters and an empty look-up memo each time; per batch the
    least CPU time of each counts. Slowdown: the extra time over reading plus matching."""
    from qorgan.detection.hunt import Hunter
    from qorgan.detection.indicator_files import load_indicators
    from qorgan.detection.loader import BUILTIN_RULES, load_plan
    from qorgan.telemetry.sources import read_paths

    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    plan = load_plan([BUILTIN_RULES])
    found = load_indicators(feed, Quarantine())
    gc.collect()
    gc.disable()  # as run_hunt does
    try:
        reading = []
        for _ in range(runs):
            before = time.process_time()
            batches = list(read_paths(inputs, Quarantine()))
            reading.append(time.process_time() - before)
        events = sum(len(b) for b in batches)
        best: dict[str, list[float]] = {"none": [math.inf] * len(batches)}
        best["with"] = list(best["none"])
        alerts = {"none": 0, "with": 0}
        for attempt in range(runs):
            found.__post_init__()  # an empty memo, as a new hunt has
            hunters = {"none": Hunter(plan), "with": Hunter(plan, indicators=found)}
            order = ("none", "with") if attempt % 2 == 0 else ("with", "none")
            for i, batch in enumerate(batches):
                for label in order:
                    before = time.process_time()
                    got = hunters[label].batch(batch)
                    best[label][i] = min(best[label][i], time.process_time() - before)
                    if attempt == 0:
                        alerts[label] += len(got)
    finally:
        gc.enable()
    read, none, full = min(reading), sum(best["none"]), sum(best["with"])
    print(
        f"in process, {events:,} events in {len(batches)} batches, best of {runs}: reading and "
        f"parsing {read:.2f} CPU s; matching without indicators {none:.2f} s "
        f"({alerts['none']:,} alerts), with {len(found):,} {full:.2f} s "
        f"({alerts['with']:,} alerts) [{hunt_bench.load()}]"
    )
    print(
        f"  hunt: {events / (read + none):,.0f} events/s without indicators, "
        f"{events / (read + full):,.0f} with: slowdown {(full - none) / (read + none):.1%} "
        f"(target: at most 10%)"
    )
    return True


def cli_runs(inputs: list[Path], feed: Path, env: dict[str, str], runs: int) -> int:
    """``qorgan hunt`` end to end, for its wall time with start-up and loading the set from
    the file, and the peak memory of its process."""
    hunt = [*hunt_bench.QORGAN, "hunt", "--no-progress", "--workers", "1"]
    paths = [str(p) for p in inputs]
    hunt_bench.measure([*hunt, str(DNS), "--output", os.devnull], env)  # warm the plan cache
    for attempt in range(runs):
        for label, extra in (("none", []), ("with", ["--indicators", str(feed)])):
            before = hunt_bench.load()
            cmd = hunt_bench.pinned([*hunt, *paths, *extra, "--output", os.devnull])
            seconds, peak, code, stderr = hunt_bench.measure(cmd, env)
            summary = hunt_bench._SUMMARY.search(stderr)
            if code not in (0, 1) or summary is None:
                print(stderr, file=sys.stderr)
                return 1
            events, own = int(summary.group(1).replace(",", "")), float(summary.group(3))
            print(
                f"qorgan hunt, run {attempt + 1}, indicators {label}: {events:,} events, its "
                f"own {own:.2f} s ({events / own:,.0f} events/s, wall clock), {seconds:.2f} s "
                f"with start-up and loading, peak PSS {peak / 2**20:.0f} MiB, "
                f"{summary.group(5)} alerts [{before}]"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
