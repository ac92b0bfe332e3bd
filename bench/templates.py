"""Benchmark of log-template mining on Loghub-2.0's ten 2,000-line samples: grouping accuracy
(GA), parsing accuracy (PA) against the hand-corrected templates, and throughput.

    python bench/templates.py [--data ../shared/data/loghub-2k] [--runs 3]

Each data set is mined by a fresh :class:`~qorgan.detection.anomaly.drain.TemplateMiner` with
the default settings (one configuration for all ten), its lines split into header and message
by the benchmark's published log format. Throughput is the mining alone (masking, tree,
matching; not reading the file), lines per second of wall time, the best of ``--runs`` runs;
the last line also times the whole 20,000 lines through one miner per data set.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

from qorgan.detection.anomaly.drain import TemplateMiner
from qorgan.detection.anomaly.parsing_benchmark import LOG_FORMATS, evaluate, read_messages

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "loghub-2k"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"no Loghub-2.0 samples at {args.data}", file=sys.stderr)
        return 2
    print(f"python {platform.python_version()} on {platform.machine()}, best of {args.runs}")
    print(f"{'data set':<10} {'GA':>6} {'PA':>6} {'lines/s':>9}")
    ga = pa = 0.0
    for name in LOG_FORMATS:
        best = None
        for _ in range(args.runs):
            score, _, _ = evaluate(args.data, name)
            if best is None or score.seconds < best.seconds:
                best = score
        assert best is not None
        ga += best.grouping
        pa += best.parsing
        rate = best.lines / best.seconds
        print(f"{name:<10} {best.grouping:6.3f} {best.parsing:6.3f} {rate:9.0f}")
    count = len(LOG_FORMATS)
    messages = {name: read_messages(args.data, name) for name in LOG_FORMATS}
    total = sum(len(m) for m in messages.values())
    fastest = float("inf")
    for _ in range(args.runs):
        start = time.perf_counter()
        for lines in messages.values():
            miner = TemplateMiner()
            for line in lines:
                miner.add(line)
        fastest = min(fastest, time.perf_counter() - start)
    print(f"{'mean':<10} {ga / count:6.3f} {pa / count:6.3f} {total / fastest:9.0f}")
    print(f"all {total} lines in {fastest:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
