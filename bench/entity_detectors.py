"""Per-event cost of the entity behaviour detector (``qorgan-entity-behaviour``).

    python bench/entity_detectors.py [--passes 3]

Reads the real logs of ``../shared/data`` once (OpenSSH, Linux syslog, the web access log, the
IIS log, the 277 EVTX attack samples and the two auditd logs), then feeds their events to one
organisation's detector ``--passes`` times, and prints, per corpus:

- reading alone (parse to normalised events), in microseconds per event, for scale;
- the detector's mean cost per event when given whole batches (as a hunt gives them);
- p50 / p99 / max of the detector's cost per event, each event timed alone (a batch of one).

Nothing is asserted: speed figures are printed, never tested.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "src"))

from qorgan.detection.anomaly.behaviour import EntityBehaviour  # noqa: E402
from qorgan.telemetry.batch import EventBatch  # noqa: E402
from qorgan.telemetry.quarantine import Quarantine  # noqa: E402
from qorgan.telemetry.sources import read_file  # noqa: E402

CORPORA = {
    "openssh": ["loghub/OpenSSH/OpenSSH_2k.log"],
    "linux": ["loghub/Linux/Linux_2k.log"],
    "web": [
        "evtx-attack-samples/Command and Control/"
        "web_attack_and_isp_webshell_localhost_access_log.txt",
        "evtx-attack-samples/Command and Control/Tunna_rdp_tunnel_IIS.log",
    ],
    "evtx": ["evtx-attack-samples"],
    "auditd": ["auditd/ait_2k_audit.log", "auditd/ait_russellmitchell_intranet_audit.log"],
}


def paths(names: list[str]) -> list[Path]:
    out: list[Path] = []
    for name in names:
        path = SHARED / name
        out += sorted(path.rglob("*.evtx")) if path.is_dir() else [path]
    return out


def read(files: list[Path]) -> tuple[list[EventBatch], float]:
    start = time.perf_counter()
    quarantine = Quarantine()
    batches = [batch for path in files for batch in read_file(path, quarantine)]
    return batches, time.perf_counter() - start


def single(batch: EventBatch, index: int) -> EventBatch:
    one = EventBatch(batch.path, batch.format, batch.logsource)
    one.append(batch.events[index], batch.records[index], batch.times[index], batch.hosts[index])
    return one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"the shared corpora are absent: {SHARED}")
    print(f"{'corpus':8} {'events':>7} {'read us/ev':>10} {'mean us/ev':>10} "
          f"{'p50 us':>7} {'p99 us':>7} {'max us':>8} {'findings':>8}")  # fmt: skip
    every: list[float] = []
    for name, names in CORPORA.items():
        batches, read_seconds = read(paths(names))
        events = sum(len(b) for b in batches)
        # Whole batches, as a hunt hands them on.
        detector = EntityBehaviour(f"bench-{name}")
        findings = 0
        start = time.perf_counter()
        for _ in range(args.passes):
            for batch in batches:
                findings += len(detector.observe(batch))
        mean = (time.perf_counter() - start) / (events * args.passes) * 1e6
        # Each event alone, for the distribution.
        detector = EntityBehaviour(f"bench-{name}-single")
        costs: list[float] = []
        for _ in range(args.passes):
            for batch in batches:
                for index in range(len(batch)):
                    one = single(batch, index)
                    t0 = time.perf_counter_ns()
                    detector.observe(one)
                    costs.append((time.perf_counter_ns() - t0) / 1000)
        every += costs
        costs.sort()
        p99 = costs[int(0.99 * (len(costs) - 1))]
        print(
            f"{name:8} {events:7d} {read_seconds / events * 1e6:10.1f} {mean:10.1f} "
            f"{statistics.median(costs):7.1f} {p99:7.1f} {costs[-1]:8.1f} "
            f"{findings // args.passes:8d}"
        )
    every.sort()
    print(
        f"all: {len(every)} timed events, p50 {statistics.median(every):.1f} us, "
        f"p99 {every[int(0.99 * (len(every) - 1))]:.1f} us, max {every[-1]:.1f} us"
    )


if __name__ == "__main__":
    main()
