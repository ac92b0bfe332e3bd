"""The issue's BGL benchmark: on Loghub-2.0's labelled ``BGL_2k.log``, learn the first half in
time order, flag lines of the second, and score the flags against the alert label.

The label (a line's first token: ``-`` for normal, else the alert category) is cut off before
the model sees the line; the model is the general line model of
:mod:`qorgan.detection.anomaly.lines` (word and level rarity), learned without labels. The
baseline is the issue's: flag every line whose template was not seen in the first half.
"""

from __future__ import annotations

import json
from pathlib import Path

from qorgan.detection.anomaly.drain import TemplateMiner
from qorgan.detection.anomaly.findings import Finding
from qorgan.detection.anomaly.lines import LineRarityModel
from qorgan.detection.anomaly.logtext import LogFormat, event_text

#: The Loghub layout of a BGL line once its label is cut off.
BGL = LogFormat(
    "<Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>"
)
F1_TARGET = 0.5


def _lines(path: Path) -> list[tuple[bool, dict[str, str], str]]:
    """(is an alert, the event without its label, the text to score), in time order."""
    rows = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        label, _, rest = raw.partition(" ")
        fields = BGL.parse(rest)
        assert fields is not None, raw
        event = {k: v for k, v in fields.items() if k != "Content"}
        event["message"] = fields["Content"]
        rows.append((label != "-", event, event_text(event, "bgl")))
    rows.sort(key=lambda r: int(r[1]["Timestamp"]))  # stable: ties keep the file's order
    return rows


def _prf(flags: list[bool], truth: list[bool]) -> tuple[float, float, float]:
    tp = sum(f and t for f, t in zip(flags, truth, strict=True))
    fp = sum(f and not t for f, t in zip(flags, truth, strict=True))
    fn = sum(t and not f for f, t in zip(flags, truth, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def test_bgl_line_alerts_beat_the_unseen_template_baseline(shared_data: Path) -> None:
    rows = _lines(shared_data / "loghub-2k" / "BGL" / "BGL_2k.log")
    half = len(rows) // 2
    train, test = rows[:half], rows[half:]
    truth = [alert for alert, _, _ in test]
    assert sum(truth) > 0 and not all(truth)  # both kinds are there to be told apart

    model = LineRarityModel()
    for _, event, text in train:
        model.learn(event, text)
    threshold = model.calibrate((event, text) for _, event, text in train)
    findings: list[Finding | None] = [
        model.explain(event, text, source="BGL_2k.log", time=event["Time"])
        for _, event, text in test
    ]
    flags = [f is not None for f in findings]
    precision, recall, f1 = _prf(flags, truth)

    miner = TemplateMiner()
    for _, _, text in train:
        miner.add(text)
    baseline = [miner.match(text).is_new for _, _, text in test]
    b_precision, b_recall, b_f1 = _prf(baseline, truth)

    print(
        f"\nBGL_2k second half: {sum(truth)} alerts in {len(test)} lines; threshold"
        f" {threshold:.3f}; flagged {sum(flags)}\n"
        f"line-rarity      precision {precision:.3f} recall {recall:.3f} F1 {f1:.3f}\n"
        f"unseen template  precision {b_precision:.3f} recall {b_recall:.3f} F1 {b_f1:.3f}"
    )
    assert f1 >= F1_TARGET
    assert f1 > b_f1

    # Every flagged line is explained: the words and the level that made its score.
    first_alert = next(
        f for f, (alert, _, _) in zip(findings, test, strict=True) if f is not None and alert
    )
    features = [c.feature for c in first_alert.contributions]
    assert any(f.startswith("word.") for f in features)
    assert "field.Level" in features
    level = next(c for c in first_alert.contributions if c.feature == "field.Level")
    assert (level.typical, level.actual) == ("INFO", "FATAL")
    print(json.dumps(first_alert.to_dict()["contributions"], indent=1))


def test_a_learned_line_is_not_flagged(shared_data: Path) -> None:
    """The neighbour: the commonest line of the first half, scored after learning, is not
    anomalous, while the same model flags a line of new words at a rare level."""
    rows = _lines(shared_data / "loghub-2k" / "BGL" / "BGL_2k.log")[:1000]
    model = LineRarityModel()
    for _, event, text in rows:
        model.learn(event, text)
    model.calibrate((event, text) for _, event, text in rows)
    _, routine, text = rows[0]
    assert model.explain(routine, text, source="BGL") is None
    odd = dict(routine, Level="FATAL")
    assert model.explain(odd, "Lustre mount FAILED : bglio11 : point /p/gb1", source="BGL")
