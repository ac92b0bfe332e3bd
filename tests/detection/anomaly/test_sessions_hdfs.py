"""The HDFS session benchmark of the issue's "done when", on DeepLog's published data in
``../shared/data/hdfs-sessions/``: trained on normal sessions only, recall at least 0.90 on the
8,419 anomalous sessions of ``test_abnormal`` with at most 1% of held-out normal sessions flagged,
and better than the naive unseen-trigram baseline.

The split: there is no file of normal test sessions, so the 3,884 sessions of ``train_normal``
are shuffled (seed 0) and dealt into 5 folds; each fold is flagged by a model fitted on the other
four (its threshold set by its own inner 5-fold cross-validation of those four, never by the
held-out fold or by ``test_abnormal``), and the flags are summed over the folds. Recall is that
of the model fitted on all of ``train_normal``, whose threshold is again set by 5-fold
cross-validation of ``train_normal`` alone. The 3,884 normal sessions are only 726 distinct ones,
so a held-out session is often a copy of a training one; the false-positive target is checked
again with folds of distinct sessions (identical sessions always in the same fold).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from qorgan.detection.anomaly.sequence_benchmark import (
    Measure,
    measure,
    ngram_model,
    unseen_ngram_baseline,
)
from qorgan.detection.anomaly.sequences import read_session_file

TRAIN = "hdfs-sessions/train_normal"
ABNORMAL = "hdfs-sessions/test_abnormal"


@pytest.fixture(scope="module")
def hdfs(shared_file: Callable[[str], Path]) -> tuple[list[list[str]], list[list[str]]]:
    normal = read_session_file(shared_file(TRAIN))
    abnormal = read_session_file(shared_file(ABNORMAL))
    assert (len(normal), len(abnormal)) == (3884, 8419)
    return normal, abnormal


def _report(m: Measure) -> None:
    print(
        f"{m.name}: recall {m.recall:.4f} ({m.detected}/{m.abnormal}), held-out normal flagged "
        f"{m.false_positive_rate:.4f} ({m.flagged_normal}/{m.normal})"
    )


def test_ngram_model_meets_the_target_and_beats_the_unseen_trigram_baseline(
    hdfs: tuple[list[list[str]], list[list[str]]],
) -> None:
    normal, abnormal = hdfs
    ours = measure("qorgan-session-ngram", ngram_model(), normal, abnormal)
    baseline = measure("unseen-trigram baseline", unseen_ngram_baseline(3), normal, abnormal)
    _report(ours)
    _report(baseline)
    assert ours.recall >= 0.90
    assert ours.false_positive_rate <= 0.01
    # The neighbour: the baseline is measured the same way and does find much, but less.
    assert 0.5 < baseline.recall < ours.recall
    assert baseline.false_positive_rate <= 0.01


def test_the_false_positive_target_holds_when_no_held_out_session_was_seen(
    hdfs: tuple[list[list[str]], list[list[str]]],
) -> None:
    normal, abnormal = hdfs
    ours = measure(
        "qorgan-session-ngram, distinct folds", ngram_model(), normal, abnormal, distinct=True
    )
    _report(ours)
    assert ours.false_positive_rate <= 0.01
    assert ours.recall >= 0.90
