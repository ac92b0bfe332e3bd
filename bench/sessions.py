"""Benchmark of the session sequence model on DeepLog's HDFS sessions, and of the
SessionDetector on a real sshd log.

    python bench/sessions.py [--folds 5] [--repeat 20]

Prints, for ``qorgan-session-ngram`` and the naive unseen-trigram baseline: recall on the 8,419
anomalous sessions of ``../shared/data/hdfs-sessions/test_abnormal``, the share of held-out normal
sessions flagged (``--folds``-fold cross-validation of ``train_normal``, see
``qorgan.detection.anomaly.sequence_benchmark``; once with folds of sessions, once with folds of
distinct sessions, so that no held-out session is a copy of a training one), the time to fit on
all 3,884 normal sessions (threshold calibration by cross-validation included) and scoring speed
in sessions/s. Then the SessionDetector's events/s grouping and scoring the sshd sessions of
``../shared/data/loghub/OpenSSH/OpenSSH_2k.log`` read ``--repeat`` times (already parsed; the
syslog parser's own cost is not counted). Figures go in ``docs/anomaly.md`` and ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from qorgan.detection.anomaly.sequence_benchmark import (
    Measure,
    measure,
    ngram_model,
    unseen_ngram_baseline,
)
from qorgan.detection.anomaly.sequences import read_session_file
from qorgan.detection.anomaly.sessions import SessionDetector
from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.formats import get_format
from qorgan.telemetry.quarantine import Quarantine

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def show(m: Measure) -> None:
    print(
        f"{m.name:26} recall {m.recall:.4f} ({m.detected}/{m.abnormal})  "
        f"held-out normal flagged {m.false_positive_rate:.4f} ({m.flagged_normal}/{m.normal})  "
        f"fit {m.fit_seconds:.2f} s  scoring {m.sessions_per_second:,.0f} sessions/s"
    )


def detector_speed(repeat: int) -> None:
    path = SHARED / "loghub" / "OpenSSH" / "OpenSSH_2k.log"
    with path.open("rb") as stream:
        batches = list(get_format("syslog").read(stream, str(path), Quarantine()))
    events = sum(len(b) for b in batches)
    detector = SessionDetector(warmup=50, recalibrate_every=50)
    findings = 0
    started = time.perf_counter()
    for _ in range(repeat):
        for b in batches:
            copy = EventBatch(b.path, b.format, b.logsource, b.events, b.records, b.times, b.hosts)
            findings += len(detector.observe(copy))
    findings += len(detector.flush())
    took = time.perf_counter() - started
    print(
        f"SessionDetector on {path.name} x{repeat}: {events * repeat:,} events, "
        f"{sum(detector.closed.values()):,} sessions, {findings} findings, "
        f"{events * repeat / took:,.0f} events/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    normal = read_session_file(SHARED / "hdfs-sessions" / "train_normal")
    abnormal = read_session_file(SHARED / "hdfs-sessions" / "test_abnormal")
    print(f"HDFS: {len(normal):,} normal sessions to train on, {len(abnormal):,} anomalous")
    for distinct in (False, True):
        print("folds of distinct sessions:" if distinct else "folds of sessions:")
        for name, fit in (
            ("qorgan-session-ngram", ngram_model()),
            ("unseen-trigram baseline", unseen_ngram_baseline(3)),
        ):
            show(measure(name, fit, normal, abnormal, args.folds, distinct=distinct))
    detector_speed(args.repeat)


if __name__ == "__main__":
    main()
