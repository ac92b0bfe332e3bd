"""Benchmark of indicators in a hunt: events/s of ``qorgan hunt`` with no indicators and with
``--indicators`` of 1,000,000 generated ones (some of which match), the slowdown (target: at
most 10%), and the time and memory to build the set.

    python bench/intel_hunt.py [--events 200000] [--indicators 1000000] [--runs 2]

Input: the *diverse* Windows events of ``bench/hunt.py`` (its builders, imported: the EVTX
attack samples converted once, then multiplied by ``bench/diverse.py``) and Zeek's real DNS log
of ``../shared/data/zeek-wrccdc`` (53,615 queries: names, answers, addresses), hunted together
with the built-in rule pack on one core (``taskset``), alerts to ``/dev/null``.

Indicators: IPv4 (30%), IPv6 (10%), domains (25%), URLs (5%), MD5/SHA-1/SHA-256 hashes (25%),
e-mail addresses (5%), random but well-formed, 1% of them expired; and, spread among them,
addresses, names and hashes taken from the input, so that the hunt with indicators has
indicator alerts to write. The figures: each hunt's own rate from its summary (reading to
writing, without start-up or loading the set), the best of ``--runs``; the set's build time
from a list of :class:`Indicator` and from the JSON-lines file, and its memory (RSS growth of
this process while building, after a collection).
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import random
import string
import subprocess
import sys
import tempfile
import time
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
        return f"{rng.getrandbits(rng.choice((128, 160, 256))):x}".zfill(64)[
            : rng.choice((32, 40, 64))
        ]
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
                ref=f"indicator--{rng.getrandbits(128):032x}",
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
started = time.perf_counter()
found = load_indicators(Path(sys.argv[1]), Quarantine())
seconds = time.perf_counter() - started
gc.collect()
print(len(found), seconds, rss() - before, len(pickle.dumps(found, protocol=5)))
"""


def build_figures(indicators: list[Indicator], path: Path, env: dict[str, str]) -> None:
    """Build time from a list of :class:`Indicator` (in this process), and from the file in a
    fresh process: its time and the set's memory (the RSS it grew by, nothing else alive)."""
    gc.collect()
    started = time.perf_counter()
    found = IndicatorSet.build(indicators)
    seconds = time.perf_counter() - started
    print(
        f"set of {len(found):,} indicators ({sum(found.refused.values()):,} refused) built from "
        f"a list of Indicator in {seconds:.2f} s ({len(indicators) / seconds:,.0f}/s)"
    )
    del found
    gc.collect()
    proc = subprocess.run(
        [sys.executable, "-c", _LOAD, str(path)], capture_output=True, text=True, env=env
    )
    count, seconds_text, grown_text, pickled_text = proc.stdout.split()
    grown, loaded = int(grown_text), int(count)
    print(
        f"  from the JSON-lines file ({path.stat().st_size / 2**20:.0f} MiB) in "
        f"{float(seconds_text):.2f} s, in a fresh process: RSS grew {grown / 2**20:.0f} MiB "
        f"({grown / max(1, loaded):.0f} bytes per indicator); pickled for a hunt worker: "
        f"{int(pickled_text) / 2**20:.0f} MiB"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--indicators", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=2)
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

    hunt = [*hunt_bench.QORGAN, "hunt", "--no-progress", "--workers", "1"]
    paths = [str(p) for p in inputs]
    hunt_bench.measure([*hunt, str(DNS), "--output", os.devnull], env)  # warm the plan cache
    rates: dict[str, list[float]] = {"none": [], "with": []}
    for attempt in range(args.runs):
        for label, extra in (("none", []), ("with", ["--indicators", str(feed)])):
            before = hunt_bench.load()
            cmd = hunt_bench.pinned([*hunt, *paths, *extra, "--output", os.devnull])
            seconds, peak, code, stderr = hunt_bench.measure(cmd, env)
            summary = hunt_bench._SUMMARY.search(stderr)
            if code not in (0, 1) or summary is None:
                print(stderr, file=sys.stderr)
                return 1
            events = int(summary.group(1).replace(",", ""))
            own = float(summary.group(3))
            rates[label].append(events / own)
            print(
                f"run {attempt + 1}, indicators {label}: {events:,} events, hunt's own "
                f"{own:.2f} s ({events / own:,.0f} events/s), wall {seconds:.2f} s with start-up "
                f"and loading, peak PSS {peak / 2**20:.0f} MiB, {summary.group(5)} alerts "
                f"[{before}]"
            )
    none, full = max(rates["none"]), max(rates["with"])
    print(
        f"best: {none:,.0f} events/s without indicators, {full:,.0f} with "
        f"{args.indicators:,}: slowdown {1 - full / none:.1%} (target at most 10%)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
