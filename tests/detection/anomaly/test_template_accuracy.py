"""Template mining measured on Loghub-2.0's ten 2,000-line samples against the hand-corrected
templates: grouping accuracy (GA) and parsing accuracy (PA), one miner configuration for all.

The issue's targets: mean GA at least 0.90, and at least 0.95 on HDFS, BGL, OpenSSH and Apache.
PA has no target; it is held at what the miner reaches, less a small margin, so a regression
shows. ``bench/templates.py`` prints the same table with throughput.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qorgan.detection.anomaly.parsing_benchmark import (
    LOG_FORMATS,
    Score,
    evaluate,
    grouping_accuracy,
    parsing_accuracy,
)

#: GA of at least 0.95 on these, as the issue asks.
STRICT = ("HDFS", "BGL", "OpenSSH", "Apache")

#: What the miner reached when this test was written, per data set: (GA, PA). A drop of more
#: than MARGIN below either fails.
REACHED: dict[str, tuple[float, float]] = {
    "Apache": (1.000, 1.000),
    "BGL": (0.994, 0.982),
    "HDFS": (0.998, 1.000),
    "HPC": (0.951, 0.945),
    "Hadoop": (0.994, 0.893),
    "Linux": (1.000, 0.362),
    "OpenSSH": (0.999, 0.995),
    "OpenStack": (0.946, 0.418),
    "Proxifier": (0.526, 0.526),
    "Zookeeper": (0.995, 0.994),
}
MARGIN = 0.01


@pytest.fixture(scope="module")
def scores(shared_data: Path) -> dict[str, Score]:
    folder = shared_data / "loghub-2k"
    if not folder.is_dir():
        pytest.fail(f"{folder} is missing from the shared corpus")
    result = {name: evaluate(folder, name)[0] for name in LOG_FORMATS}
    print()
    print(f"{'data set':<10} {'GA':>6} {'PA':>6}")
    for s in result.values():
        print(f"{s.dataset:<10} {s.grouping:6.3f} {s.parsing:6.3f}")
    mean = sum(s.grouping for s in result.values()) / len(result)
    print(f"{'mean':<10} {mean:6.3f} {sum(s.parsing for s in result.values()) / len(result):6.3f}")
    return result


def test_every_line_of_the_ten_samples_is_scored(scores: dict[str, Score]) -> None:
    assert sorted(scores) == sorted(LOG_FORMATS)
    assert all(s.lines == 2000 for s in scores.values())


@pytest.mark.parametrize("name", STRICT)
def test_grouping_accuracy_reaches_095_on_the_four_named_logs(
    scores: dict[str, Score], name: str
) -> None:
    assert scores[name].grouping >= 0.95


def test_mean_grouping_accuracy_reaches_090(scores: dict[str, Score]) -> None:
    mean = sum(s.grouping for s in scores.values()) / len(scores)
    assert mean >= 0.90


@pytest.mark.parametrize("name", sorted(LOG_FORMATS))
def test_no_data_set_falls_below_what_was_reached(scores: dict[str, Score], name: str) -> None:
    ga, pa = REACHED[name]
    assert scores[name].grouping >= ga - MARGIN
    assert scores[name].parsing >= pa - MARGIN


def test_grouping_accuracy_counts_a_line_only_when_its_whole_group_matches() -> None:
    truth = ["A", "A", "B", "B", "C"]
    assert grouping_accuracy(truth, [1, 1, 2, 2, 3]) == 1.0
    # B split in two: its two lines are wrong; merged C into A: A's and C's lines are wrong.
    assert grouping_accuracy(truth, [1, 1, 2, 4, 1]) == 0.0
    assert grouping_accuracy(truth, [1, 1, 2, 4, 3]) == pytest.approx(3 / 5)


def test_parsing_accuracy_collapses_runs_of_wildcards_but_not_words() -> None:
    truth = ["a <*> <*> b", "x <*>:<*> y"]
    assert parsing_accuracy(truth, ["a <*> b", "x <*>:<*> y"]) == 1.0
    assert parsing_accuracy(truth, ["a <*> c", "x <*> y"]) == 0.0
