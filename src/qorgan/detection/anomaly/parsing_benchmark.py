"""The log-parsing benchmark of Loghub-2.0: grouping and parsing accuracy of our miner.

Shared by the accuracy test and ``bench/templates.py``. Each data set's raw lines are split into
header and message with the benchmark's published ``log_format`` (the columns of its
``*_structured_corrected.csv`` are exactly that format's fields); the message is mined with one
:class:`~qorgan.detection.anomaly.drain.TemplateMiner` configuration for all data sets.

- Grouping accuracy (GA): a line is correct when the set of lines grouped with it equals the
  set its corrected ``EventId`` groups with it.
- Parsing accuracy (PA): the share of lines whose template equals the corrected
  ``EventTemplate``, both with runs of ``<*>`` collapsed and spaces normalised.
"""

from __future__ import annotations

import csv
import re
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

from qorgan.detection.anomaly.drain import TemplateMiner
from qorgan.detection.anomaly.logtext import LogFormat

#: Loghub-2.0's benchmark log formats (benchmark/evaluation/settings.py of logpai/loghub-2.0).
LOG_FORMATS: dict[str, str] = {
    "Apache": r"\[<Time>\] \[<Level>\] <Content>",
    "BGL": "<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> "
    "<Content>",
    "HDFS": "<Date> <Time> <Pid> <Level> <Component>: <Content>",
    "HPC": "<LogId> <Node> <Component> <State> <Time> <Flag> <Content>",
    "Hadoop": r"<Date> <Time> <Level> \[<Process>\] <Component>: <Content>",
    "Linux": r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>",
    "OpenSSH": r"<Date> <Day> <Time> <Component> sshd\[<Pid>\]: <Content>",
    "OpenStack": r"<Logrecord> <Date> <Time> <Pid> <Level> <Component> \[<ADDR>\] <Content>",
    "Proxifier": r"\[<Time>\] <Program> - <Content>",
    "Zookeeper": r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>",
}

_RUNS = re.compile(r"<\*>(?:\s*<\*>)+")
_SPACES = re.compile(r"\s+")


def normalise(template: str) -> str:
    """``template`` with runs of ``<*>`` as one and single spaces, for comparison."""
    return _SPACES.sub(" ", _RUNS.sub("<*>", template)).strip()


def grouping_accuracy(truth: Sequence[Hashable], predicted: Sequence[Hashable]) -> float:
    """GA: the share of lines whose predicted group is exactly their true group."""
    groups: dict[Hashable, set[int]] = defaultdict(set)
    for i, p in enumerate(predicted):
        groups[p].add(i)
    truths: dict[Hashable, set[int]] = defaultdict(set)
    for i, t in enumerate(truth):
        truths[t].add(i)
    correct = 0
    for members in groups.values():
        first = next(iter(members))
        if truths[truth[first]] == members:
            correct += len(members)
    return correct / len(truth) if truth else 1.0


def parsing_accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """PA: the share of lines whose template text equals the true one."""
    same = sum(normalise(t) == normalise(p) for t, p in zip(truth, predicted, strict=True))
    return same / len(truth) if truth else 1.0


@dataclass(frozen=True, slots=True)
class Score:
    dataset: str
    lines: int
    grouping: float
    parsing: float
    seconds: float


def read_truth(folder: Path, name: str) -> tuple[list[str], list[str]]:
    """The corrected ``EventId`` and ``EventTemplate`` of every line of ``name``."""
    path = folder / name / f"{name}_2k.log_structured_corrected.csv"
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["EventId"] for r in rows], [r["EventTemplate"] for r in rows]


def read_messages(folder: Path, name: str) -> list[str]:
    """The message of every line of data set ``name``, split by its benchmark log format."""
    fmt = LogFormat(LOG_FORMATS[name])
    path = folder / name / f"{name}_2k.log"
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        lines = [line.rstrip("\r\n") for line in f if line.strip()]
    return [fmt.content(line) for line in lines]


def evaluate(
    folder: Path, name: str, miner: Callable[[], TemplateMiner] = TemplateMiner
) -> tuple[Score, list[int], list[str]]:
    """Mine data set ``name`` with a fresh miner and score it: the score, then each line's id
    and its template as it stands at the end."""
    ids, templates = read_truth(folder, name)
    messages = read_messages(folder, name)
    if len(messages) != len(ids):
        raise ValueError(f"{name}: {len(messages)} lines but {len(ids)} labels")
    m = miner()
    start = time.perf_counter()
    got = [m.add(text).template_id for text in messages]
    seconds = time.perf_counter() - start
    got = [m.canonical(tid) for tid in got]
    final = m.templates()
    texts = [final.get(tid, "") for tid in got]
    score = Score(
        name,
        len(ids),
        grouping_accuracy(ids, got),
        parsing_accuracy(templates, texts),
        seconds,
    )
    return score, got, texts
