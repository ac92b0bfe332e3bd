"""The finding contract: every finding of every default model carries the AI label, its model
and version, a score at or above its threshold, a confidence in [0, 1], contributions with
positive shares summing to 1 and their typical and actual values. Checked on what the models
really report over real logs with attacks in them, every model reporting at least once; and the
contract refuses a finding that breaks it."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from qorgan.detection.anomaly.defaults import DEFAULT_MODELS, default_suite
from qorgan.detection.anomaly.findings import (
    AI_LABEL,
    MAX_EXAMPLE,
    MAX_FEATURE,
    MAX_PATTERN,
    MAX_VALUE,
    Finding,
    FindingError,
    contributions,
)
from qorgan.incidents.findings import validate
from qorgan.telemetry.quarantine import Quarantine
from qorgan.telemetry.sources import read_file

LOGS = [
    "loghub/OpenSSH/OpenSSH_2k.log",
    "loghub/Linux/Linux_2k.log",
    "evtx-attack-samples/Command and Control/web_attack_and_isp_webshell_localhost_access_log.txt",
]


@pytest.fixture(scope="module")
def reported(
    shared_data: Path,
    ssh_attack: Callable[..., list[str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> list[dict]:
    suite = default_suite()
    attack = tmp_path_factory.mktemp("attack") / "attack.log"
    attack.write_text("\n".join(ssh_attack()) + "\n", encoding="utf-8")
    found = []
    for path in [*(shared_data / name for name in LOGS), attack]:
        for batch in read_file(path, Quarantine()):
            found += suite.observe(batch)
    found += suite.flush()
    # As stored and sent: through JSON.
    return [json.loads(json.dumps(f.to_dict())) for f in found]


def test_every_default_model_reports_on_real_logs(reported: list[dict]) -> None:
    assert {f["model"] for f in reported} == {m.name for m in DEFAULT_MODELS}


def test_every_finding_keeps_the_contract(reported: list[dict]) -> None:
    versions = {m.name: m.version for m in DEFAULT_MODELS}
    for f in reported:
        assert f["ai_generated"] is True and f["label"] == AI_LABEL
        assert f["version"] == versions[f["model"]]
        assert math.isfinite(f["score"]) and f["score"] >= f["threshold"]
        assert 0.0 <= f["confidence"] <= 1.0
        shares = [c["share"] for c in f["contributions"]]
        assert shares and all(s > 0 for s in shares)
        assert sum(shares) == pytest.approx(1.0, abs=1e-9)
        for c in f["contributions"]:
            assert c["feature"] and "typical" in c and "actual" in c
            assert c["actual"] is not None
        assert 0 < len(f["examples"]) <= 5
        assert f["pattern"] and len(f["fingerprint"]) == 64
        assert f["summary"]
        # and the store takes it: before, a session's transition between two long templates
        # (260 characters) and a web attack's 2,000-character word were refused, and with
        # them every finding stored in the same call
        validate(f)
    assert max(len(c["feature"]) for f in reported for c in f["contributions"]) == MAX_FEATURE


def _finding(**changes: object) -> Finding:
    fields: dict = {
        "detector": "entity.logon",
        "model": "qorgan-entity-behaviour",
        "version": "1.0",
        "time": "2026-01-11T03:00:12Z",
        "source": "ssh",
        "entity": {"user": "fztu"},
        "score": 7.0,
        "threshold": 3.0,
        "confidence": 0.5,
        "contributions": contributions([("logon.after_failures", 3, 0.01, 37)]),
        "summary": "a logon after 37 failures",
        "examples": ("Accepted password for fztu",),
        "pattern": "logon.after_failures|user=fztu",
    }
    fields.update(changes)
    return Finding(**fields)


def test_a_finding_that_keeps_the_contract_is_made() -> None:
    assert _finding().to_dict()["ai_generated"] is True


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"score": 2.9}, "below the threshold"),
        ({"confidence": 1.2}, "outside"),
        ({"model": ""}, "model and version"),
        ({"version": ""}, "model and version"),
        ({"score": float("nan")}, "finite"),
        ({"contributions": ()}, "contributions"),
        ({"pattern": ""}, "pattern"),
        ({"examples": tuple("abcdef")}, "at most 5"),
    ],
)
def test_a_finding_that_breaks_the_contract_is_refused(changes: dict, message: str) -> None:
    with pytest.raises(FindingError, match=message):
        _finding(**changes)


def test_contributions_are_normalised_and_need_a_positive_weight() -> None:
    parts = contributions([("a", 1.0, 0, 1), ("b", 3.0, 0, 2), ("c", 0.0, 0, 0)])
    assert [(c.feature, c.share) for c in parts] == [("b", 0.75), ("a", 0.25)]
    with pytest.raises(FindingError, match="positive weight"):
        contributions([("a", 0.0, 0, 1), ("b", float("inf"), 0, 1)])


def test_the_fingerprint_is_the_pattern_of_one_model() -> None:
    same = _finding(time="2026-01-12T00:00:00Z", score=9.0)
    assert same.fingerprint == _finding().fingerprint
    assert _finding(pattern="logon.after_failures|user=eve").fingerprint != same.fingerprint
    assert _finding(model="qorgan-other").fingerprint != same.fingerprint


def test_lone_surrogates_from_logs_become_replacement_characters() -> None:
    """A JSON event's "\\ud800" reaches a finding's text: it could be neither hashed nor stored
    in PostgreSQL, so every text field holds U+FFFD instead; valid text is kept as it is."""
    finding = _finding(
        summary="user \ud800 logged on",
        examples=("Accepted password for \udfffx",),
        pattern="logon.after_failures|user=\ud800",
        identifiers=("\ud800",),
        entity={"user": "fz\udc00tu"},
        contributions=contributions([("logon.after_failures", 3, "0.01", "37 \ud800")]),
    )
    data = json.dumps(finding.to_dict(), ensure_ascii=False).encode("utf-8")
    assert b"\xef\xbf\xbd" in data and len(finding.fingerprint) == 64
    assert finding.entity == {"user": "fz\ufffdtu"}
    assert finding.contributions[0].actual == "37 \ufffd"
    assert _finding(summary="Қазақша, é").summary == "Қазақша, é"


def test_texts_longer_than_the_store_keeps_are_cut_and_long_patterns_stay_two() -> None:
    long = "A" * 10_000
    finding = _finding(
        contributions=contributions([(f"word.{long}", 1, long, long)]),
        examples=(long,),
        entity={"user": long},
        summary=long,
        pattern=f"line|{long}|1",
    )
    part = finding.contributions[0]
    assert len(part.feature) == MAX_FEATURE and part.feature.endswith("A…")
    assert len(part.typical) == len(part.actual) == MAX_VALUE == len(finding.entity["user"])
    assert len(finding.examples[0]) == MAX_EXAMPLE and len(finding.pattern) == MAX_PATTERN
    assert finding.fingerprint != _finding(pattern=f"line|{long}|2").fingerprint
    validate(finding.to_dict())
    # the neighbour: texts the store keeps are kept whole
    whole = "B" * MAX_FEATURE
    kept = _finding(contributions=contributions([(whole, 1, "x" * MAX_VALUE, 1)]))
    assert kept.contributions[0].feature == whole
    assert kept.contributions[0].typical == "x" * MAX_VALUE
    assert _finding(pattern="p" * MAX_PATTERN).pattern == "p" * MAX_PATTERN
