"""Benchmark of the telemetry readers alone (no rules): events/s of ``read_file`` per input shape.

    python bench/readers.py [--events 200000] [--runs 3] [--against DIR]

Inputs, built once under ``bench/out/``: the EVTX attack samples of ``bench/hunt.py`` as JSON
lines, the same documents as one JSON array and as pretty-printed concatenated documents (what
``evtx_dump``/``jq`` write), the JSON lines gzip-compressed, the loghub Linux and OpenSSH
syslog files repeated, and a decompression bomb (a 0.25 MiB gzip of one JSON line and one line
of 256 MiB of zeros). Each reading runs in its own process pinned to one core (``taskset -c 0``
when available) and reports its CPU time (less disturbed by other processes than wall time)
and its peak RSS; the best time of ``--runs`` is kept. ``--against DIR`` also runs every
reading with another checkout's ``src`` folder (say, ``git archive HEAD src | tar -x -C
/tmp/before``), interleaved with this one, so that a change to the readers is compared on the
same noisy machine at the same time.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "out"

#: Reads one file with ``read_file`` and prints events and seconds.
_READ = """
import gc, sys, time
from pathlib import Path
from qorgan.telemetry.quarantine import Quarantine
from qorgan.telemetry.sources import read_file
quarantine = Quarantine()
started = time.process_time()  # CPU time: less noise from other processes
gc.disable()  # as run_hunt does while reading
events = sum(len(b) for b in read_file(Path(sys.argv[1]), quarantine))
seconds = time.process_time() - started
# VmHWM: this process's own high-water mark (ru_maxrss would carry the parent's over exec)
status = open("/proc/self/status").read()
peak = int(status.split("VmHWM:")[1].split()[0]) * 1024 if "VmHWM:" in status else 0
print(events, seconds, quarantine.count, peak)
"""


def _docs(events: int) -> list[bytes]:
    import orjson

    from hunt import convert  # bench/hunt.py: the same documents as the hunt benchmark

    base = OUT / "attack-samples.jsonl"
    if not base.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        convert(SHARED / "evtx-attack-samples", base)
    lines = base.read_bytes().splitlines()
    out = (lines * (events // len(lines) + 1))[:events]
    return [orjson.dumps(orjson.loads(line)) for line in out]


def inputs(events: int) -> dict[str, Path]:
    """The input files, built when missing."""
    import orjson

    names = {
        "json lines": OUT / f"readers-{events}.jsonl",
        "json lines, gzip": OUT / f"readers-{events}.jsonl.gz",
        "json array": OUT / f"readers-{events}-array.json",
        "json pretty documents": OUT / f"readers-{events}-pretty.json",
        "syslog": OUT / f"readers-{events}.log",
        "gzip bomb": OUT / "readers-bomb.json.gz",
    }
    if all(p.exists() for p in names.values()):
        return names
    docs = _docs(events)
    names["json lines"].write_bytes(b"\n".join(docs) + b"\n")
    with gzip.open(names["json lines, gzip"], "wb", compresslevel=6) as out:
        out.write(b"\n".join(docs) + b"\n")
    names["json array"].write_bytes(b"[" + b",\n".join(docs) + b"]\n")
    with names["json pretty documents"].open("wb") as out:
        for doc in docs:
            out.write(orjson.dumps(orjson.loads(doc), option=orjson.OPT_INDENT_2) + b"\n")
    lines = []
    for name in ("Linux/Linux_2k.log", "OpenSSH/OpenSSH_2k.log"):
        lines += (SHARED / "loghub" / name).read_bytes().splitlines(keepends=True)
    names["syslog"].write_bytes(b"".join((lines * (events // len(lines) + 1))[:events]))
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    bomb = [packer.compress(b'{"n": 1}\n')]
    bomb += [packer.compress(b"0" * 2**20) for _ in range(256)]
    names["gzip bomb"].write_bytes(b"".join([*bomb, packer.compress(b"\n"), packer.flush()]))
    return names


def read(src: Path, path: Path) -> tuple[int, float, int, int]:
    cmd = [sys.executable, "-c", _READ, str(path)]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run(cmd, capture_output=True, check=True, env=env, text=True)
    events, seconds, quarantined, peak = proc.stdout.split()
    return int(events), float(seconds), int(quarantined), int(peak)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another checkout (its src is used)")
    args = parser.parse_args()
    if not (SHARED / "evtx-attack-samples").is_dir():
        print(f"corpus absent: {SHARED}", file=sys.stderr)
        return 2
    trees = {"this": ROOT / "src"}
    if args.against is not None:
        trees["against"] = args.against.resolve() / "src"
    for label, path in inputs(args.events).items():
        best: dict[str, float] = {}
        counts: dict[str, tuple[int, int, int]] = {}
        for _ in range(args.runs):
            for tree, src in trees.items():
                events, seconds, quarantined, peak = read(src, path)
                best[tree] = min(best.get(tree, seconds), seconds)
                counts[tree] = (events, quarantined, peak)
        size = path.stat().st_size / 2**20
        line = f"{label:<22} {size:6.1f} MiB"
        for tree, seconds in best.items():
            events, quarantined, peak = counts[tree]
            line += (
                f" | {tree}: {seconds:6.2f} s, {events / max(seconds, 1e-9):9,.0f} ev/s, "
                f"peak RSS {peak / 2**20:5,.0f} MiB"
            )
            if quarantined:
                line += f" ({quarantined} quarantined)"
        if "against" in best:
            line += f" | {best['this'] / best['against'] - 1:+.1%}"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
