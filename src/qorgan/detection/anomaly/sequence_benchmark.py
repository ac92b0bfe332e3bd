"""The session benchmark (DeepLog's HDFS data): recall on anomalous sessions and the share of
held-out normal sessions flagged, for :class:`SessionModel` and a naive baseline.

There are normal sessions to train on and anomalous ones to find, but no held-out normal ones,
so the false-positive rate is measured by ``folds``-fold cross-validation of the normal sessions:
each fold is flagged by a model fitted (threshold included, by its own inner cross-validation)
on the other folds, and the flags are summed over folds. Recall is that of a model fitted on all
normal sessions. Used by ``tests/detection/anomaly/test_sessions_hdfs.py`` and
``bench/sessions.py``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from qorgan.detection.anomaly.sequences import END, START, SessionModel

#: ``fit(normal sessions)`` -> ``flag(session) -> bool``
Fitter = Callable[[Sequence[Sequence[str]]], Callable[[Sequence[str]], bool]]


@dataclass(frozen=True, slots=True)
class Measure:
    """What one method achieved: recall on anomalous sessions, false-positive rate on held-out
    normal ones, and how long fitting on all normal sessions and scoring took."""

    name: str
    recall: float
    false_positive_rate: float
    flagged_normal: int
    normal: int
    detected: int
    abnormal: int
    fit_seconds: float
    score_seconds: float

    @property
    def sessions_per_second(self) -> float:
        return self.abnormal / self.score_seconds if self.score_seconds else float("inf")


def split(count: int, folds: int, seed: int = 0) -> list[list[int]]:
    """Indexes ``0..count-1`` shuffled with ``seed`` and dealt into ``folds`` folds."""
    order = list(range(count))
    random.Random(seed).shuffle(order)
    return [sorted(order[f::folds]) for f in range(folds)]


def split_distinct(sessions: Sequence[Sequence[str]], folds: int, seed: int = 0) -> list[list[int]]:
    """Like :func:`split`, but identical sessions always fall in the same fold, so no held-out
    session is a copy of a training one (DeepLog's 3,884 normal sessions are 726 distinct)."""
    distinct = sorted({tuple(s) for s in sessions})
    random.Random(seed).shuffle(distinct)
    fold_of = {s: i % folds for i, s in enumerate(distinct)}
    out: list[list[int]] = [[] for _ in range(folds)]
    for i, s in enumerate(sessions):
        out[fold_of[tuple(s)]].append(i)
    return out


def measure(
    name: str,
    fit: Fitter,
    normal: Sequence[Sequence[str]],
    abnormal: Sequence[Sequence[str]],
    folds: int = 5,
    seed: int = 0,
    distinct: bool = False,
) -> Measure:
    """Recall of ``fit`` on ``abnormal`` and its false-positive rate on held-out ``normal``
    (with ``distinct``, folds of distinct sessions: :func:`split_distinct`)."""
    flagged = 0
    deal = split_distinct(normal, folds, seed) if distinct else split(len(normal), folds, seed)
    for held in deal:
        out = set(held)
        flag = fit([s for i, s in enumerate(normal) if i not in out])
        flagged += sum(flag(normal[i]) for i in held)
    started = time.perf_counter()
    flag = fit(normal)
    fitted = time.perf_counter()
    detected = sum(flag(s) for s in abnormal)
    scored = time.perf_counter()
    return Measure(
        name=name,
        recall=detected / len(abnormal),
        false_positive_rate=flagged / len(normal),
        flagged_normal=flagged,
        normal=len(normal),
        detected=detected,
        abnormal=len(abnormal),
        fit_seconds=fitted - started,
        score_seconds=scored - fitted,
    )


def ngram_model(order: int = 3, quantile: float = 0.995) -> Fitter:
    """:class:`SessionModel` fitted with its own cross-validated threshold."""

    def fit(sessions: Sequence[Sequence[str]]) -> Callable[[Sequence[str]], bool]:
        return SessionModel.fit(sessions, order=order, quantile=quantile).flagged

    return fit


def unseen_ngram_baseline(order: int = 3) -> Fitter:
    """The naive baseline: a session is anomalous when one of its n-grams (padded with start
    and end marks) never occurred in training."""

    def fit(sessions: Sequence[Sequence[str]]) -> Callable[[Sequence[str]], bool]:
        seen = {gram for s in sessions for gram in _padded(s, order)}
        return lambda s: any(gram not in seen for gram in _padded(s, order))

    return fit


def _padded(tokens: Sequence[str], order: int) -> list[tuple[str, ...]]:
    padded = [START] * (order - 1) + list(tokens) + [END]
    return [tuple(padded[i : i + order]) for i in range(len(padded) - order + 1)]
