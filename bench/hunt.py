"""Benchmark of ``qorgan hunt``: end-to-end events/s, peak memory, ratio to parsing alone,
and the cost of compiling rules cold and warm.

    python bench/hunt.py [--events 500000] [--memory-events 2000000] [--rules DIR]

Converts ``../shared/data/evtx-attack-samples`` to JSON lines once (``bench/out/``), repeats the
records to the requested count, then runs the ``qorgan hunt`` process pinned to one core
(``taskset -c 0`` when available) and prints its figures. Figures go in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import os
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


def repeated(base: Path, events: int) -> Path:
    target = OUT / f"attack-{events}.jsonl"
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


def pinned(cmd: list[str]) -> list[str]:
    return ["taskset", "-c", "0", *cmd] if shutil.which("taskset") else cmd


#: Runs a command as its child; reports the child's wall time and its own peak RSS.
_MEASURE = """
import resource, subprocess, sys, time
started = time.perf_counter()
proc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
sys.stderr.buffer.write(proc.stderr)
print(proc.returncode, seconds, peak * 1024)
"""


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, int, str]:
    """(wall seconds, peak RSS bytes, exit code, stderr) of ``cmd`` run as a child process."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd], capture_output=True, check=False, env=env
    )
    code, seconds, peak = proc.stdout.split()
    return float(seconds), int(peak), int(code), proc.stderr.decode(errors="replace")


PARSE_ONLY = """
import sys, orjson
with open(sys.argv[1], "rb") as fh:
    for line in fh:
        orjson.loads(line)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--memory-events", type=int, default=2_000_000)
    parser.add_argument("--rules", type=Path, default=SHARED / "sigma" / "rules" / "windows")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    samples = SHARED / "evtx-attack-samples"
    if not samples.is_dir():
        print(f"corpus absent: {samples}", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    base = OUT / "attack-samples.jsonl"
    if not base.exists():
        print(f"converting {samples} to {base} ...")
        print(f"  {convert(samples, base):,} records")
    cache = Path(tempfile.mkdtemp(prefix="qorgan-bench-cache-"))
    env = {**os.environ, "QORGAN_CACHE_DIR": str(cache)}

    # Rule compilation: cold, then warm (cached plan), all SigmaHQ rule folders.
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

    data = repeated(base, args.events)
    size = data.stat().st_size
    print(f"input: {data.name}, {args.events:,} events, {size / 2**20:.0f} MiB")
    seconds, _, _, _ = measure(pinned([sys.executable, "-c", PARSE_ONLY, str(data)]))
    parse_rate = args.events / seconds
    print(
        f"parse only (orjson.loads per line, 1 core): {seconds:.2f} s, {parse_rate:,.0f} events/s"
    )

    hunt = [
        *QORGAN,
        "hunt",
        str(data),
        "--rules",
        str(args.rules),
        "--output",
        os.devnull,
        "--no-progress",
    ]
    subprocess.run(hunt, env=env, capture_output=True, check=False)  # compile and cache the plan
    for attempt in range(2):
        seconds, peak, code, stderr = measure(pinned(hunt), env)
        if code not in (0, 1):
            print(stderr, file=sys.stderr)
            return 1
        rate = args.events / seconds
        print(
            f"qorgan hunt run {attempt + 1} (1 core, warm plan): {seconds:.2f} s, "
            f"{rate:,.0f} events/s, {rate / parse_rate:.0%} of parse-only, "
            f"peak RSS {peak / 2**20:.0f} MiB"
        )
    print("  summary: " + " ".join(stderr.split("\n")[:2]))

    if not args.skip_memory:
        big = repeated(base, args.memory_events)
        hunt[hunt.index(str(data))] = str(big)
        seconds, peak, code, stderr = measure(pinned(hunt), env)
        print(
            f"qorgan hunt on {args.memory_events:,} events: {seconds:.2f} s, "
            f"{args.memory_events / seconds:,.0f} events/s, peak RSS {peak / 2**20:.0f} MiB"
        )
    shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
