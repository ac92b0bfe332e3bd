"""Benchmark of the template detectors: time per event of new/rare templates, template
frequency, and rare lines, on real syslog.

    python bench/template_detectors.py [--repeat 5] [--batch 500]

The events are Loghub's ``Linux/Linux_2k.log`` and ``OpenSSH/OpenSSH_2k.log`` from
``../shared/data/loghub``, read by our syslog format, played ``--repeat`` times with their times
shifted by the length of the logs each time (so the frequency baselines keep moving forward).
Each detector starts empty, with its own template miner, and sees every event once:

- *batched*: ``observe`` on batches of ``--batch`` events; the mean time per event;
- *one by one*: ``observe`` on one-event batches; the 50th and 99th percentile per event (what
  a live pipeline that hands on single events pays), on the thread's CPU clock (the machine is
  shared: wall-clock percentiles measure the neighbours) and, for comparison, on the wall clock.

Reading and parsing the logs is not timed. Figures go in the report / ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from qorgan.detection.anomaly.frequency import TemplateFrequencyDetector
from qorgan.detection.anomaly.lines import LineRarityDetector
from qorgan.detection.anomaly.rarity import TemplateRarityDetector
from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.quarantine import Quarantine
from qorgan.telemetry.sources import read_file

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "loghub"
LOGS = ("Linux/Linux_2k.log", "OpenSSH/OpenSSH_2k.log")


def load(repeat: int) -> list[EventBatch]:
    """One batch per log and repeat, times shifted so each repeat follows the last."""
    out = []
    for name in LOGS:
        (batch,) = read_file(DATA / name, Quarantine(), batch_size=10**6)
        times = [datetime.fromisoformat(t) for t in batch.times if t]
        span = max(times) - min(times) + timedelta(hours=1)
        for r in range(repeat):
            copy = EventBatch(batch.path, batch.format, dict(batch.logsource))
            for i, event in enumerate(batch.events):
                moment = batch.times[i]
                shifted = (
                    (datetime.fromisoformat(moment) + r * span).isoformat() if moment else None
                )
                copy.append(dict(event), batch.records[i], shifted, batch.hosts[i])
            out.append(copy)
    return out


def slices(batches: list[EventBatch], size: int) -> list[EventBatch]:
    out = []
    for batch in batches:
        for start in range(0, len(batch), size):
            part = EventBatch(batch.path, batch.format, batch.logsource)
            part.events = batch.events[start : start + size]
            part.records = batch.records[start : start + size]
            part.times = batch.times[start : start + size]
            part.hosts = batch.hosts[start : start + size]
            out.append(part)
    return out


def run(make: Callable[[], object], batches: list[EventBatch], size: int) -> tuple[float, ...]:
    events = sum(len(b) for b in batches)
    detector = make()
    start = time.perf_counter()
    for part in slices(batches, size):
        detector.observe(part)  # type: ignore[attr-defined]
    mean = (time.perf_counter() - start) / events
    detector = make()
    cpu, wall = [], []
    for part in slices(batches, 1):
        t0, c0 = time.perf_counter(), time.thread_time()
        detector.observe(part)  # type: ignore[attr-defined]
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - t0)
    return (events, mean, *_percentiles(cpu), *_percentiles(wall))


def _percentiles(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return statistics.median(values), values[min(len(values) - 1, int(0.99 * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    batches = load(args.repeat)
    print(
        f"{'detector':<20} {'events':>7} {'batched us/ev':>14} {'cpu p50':>8} {'cpu p99':>8}"
        f" {'wall p50':>9} {'wall p99':>9}   (microseconds)"
    )
    for name, make in (
        ("template-rarity", TemplateRarityDetector),
        ("template-frequency", TemplateFrequencyDetector),
        ("line-rarity", LineRarityDetector),
    ):
        events, mean, c50, c99, w50, w99 = run(make, batches, args.batch)
        print(
            f"{name:<20} {events:>7} {mean * 1e6:>14.1f} {c50 * 1e6:>8.1f} {c99 * 1e6:>8.1f}"
            f" {w50 * 1e6:>9.1f} {w99 * 1e6:>9.1f}"
        )


if __name__ == "__main__":
    main()
