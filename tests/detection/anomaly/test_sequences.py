"""The session sequence model: unseen transitions, unseen tokens and odd counts are flagged and
named, normal sessions are not, a rejection makes a session normal, and the state is JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from qorgan.detection.anomaly.findings import contributions
from qorgan.detection.anomaly.sequences import (
    SequenceModelError,
    SessionModel,
    read_session_file,
)


def ssh_like(n: int = 400) -> list[list[str]]:
    """Sessions shaped like an SSH login: connect, auth (a failure or two first at times), a
    session open, one to three commands, close. Deterministic."""
    out = []
    for i in range(n):
        session = ["connect"] + ["fail"] * (i % 7 == 0) + ["fail"] * (i % 21 == 0)
        session += ["accept", "open"] + ["cmd"] * (1 + i % 3) + ["close"]
        out.append(session)
    return out


@pytest.fixture(scope="module")
def model() -> SessionModel:
    return SessionModel.fit(ssh_like())


NORMAL = ["connect", "accept", "open", "cmd", "cmd", "close"]
SKIPPED_AUTH = ["connect", "open", "cmd", "close"]  # "connect -> open": never seen


def descriptions(model: SessionModel, tokens: Sequence[str]) -> list[str]:
    return [f.description for f in model.explain(tokens)]


def test_a_normal_session_is_not_flagged(model: SessionModel) -> None:
    assert math.isfinite(model.threshold)
    assert not model.flagged(NORMAL)
    assert not model.flagged(["connect", "fail", "accept", "open", "cmd", "close"])


def test_an_unseen_transition_is_flagged_and_named(model: SessionModel) -> None:
    assert model.flagged(SKIPPED_AUTH)
    explained = model.explain(SKIPPED_AUTH)
    assert explained[0].description == "<s> connect -> open"
    assert explained[0].kind == "transition"
    # observed probability far below the typical one of that context's followers
    assert explained[0].actual < 0.01 < explained[0].typical
    shares = contributions((f.description, f.surprisal, f.typical, f.actual) for f in explained)
    assert abs(sum(c.share for c in shares) - 1) < 1e-9


def test_allowing_the_features_over_the_threshold_makes_the_session_normal() -> None:
    model = SessionModel.fit(ssh_like())
    over = model.over(SKIPPED_AUTH)
    assert over and all(f.surprisal >= model.threshold for f in over)
    for f in over:
        model.allow(f.key)
    assert not model.flagged(SKIPPED_AUTH)
    # the neighbour: another unseen transition still fires
    assert model.flagged(["connect", "accept", "cmd", "close"])


def test_an_unseen_token_is_flagged_and_named(model: SessionModel) -> None:
    tokens = ["connect", "accept", "open", "cmd", "sudo", "close"]
    assert model.flagged(tokens)
    assert "token sudo never seen in training" in descriptions(model, tokens)


def test_a_count_never_seen_is_flagged_even_when_every_transition_was_seen(
    model: SessionModel,
) -> None:
    tokens = ["connect", "accept", "open"] + ["cmd"] * 9 + ["close"]
    assert model.flagged(tokens)
    top = model.explain(tokens)[0]
    assert (top.kind, top.actual, top.typical) == ("count", 9, 1)
    # the neighbour: three commands occur in training and are not flagged
    assert not model.flagged(["connect", "accept", "open"] + ["cmd"] * 3 + ["close"])


def test_an_empty_session_is_scored_and_flagged(model: SessionModel) -> None:
    assert model.flagged([])
    assert model.explain([])[0].surprisal >= model.threshold


def test_the_threshold_flags_about_the_quantile_of_training_sessions() -> None:
    sessions = ssh_like()
    model = SessionModel.fit(sessions, quantile=0.99)
    flagged = sum(model.flagged(s) for s in sessions)
    assert flagged <= 0.01 * len(sessions)


def test_state_round_trips_through_json(model: SessionModel) -> None:
    model.allow("count|cmd|9")
    copy = SessionModel.from_state(json.loads(json.dumps(model.state())))
    assert copy.state() == model.state()
    for tokens in (NORMAL, SKIPPED_AUTH, [], ["connect", "accept", "open"] + ["cmd"] * 9):
        assert copy.score(tokens) == model.score(tokens)
    assert copy.threshold == model.threshold
    assert copy.confidence(20.0) == model.confidence(20.0) > 0.99


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"kind": "other"}, "not a session model state"),
        ({"kind": "qorgan-session-ngram", "version": 99}, "unknown session model state"),
        ({"kind": "qorgan-session-ngram", "version": 1, "order": 3}, "damaged"),
    ],
)
def test_a_foreign_or_damaged_state_is_refused(state: dict[str, object], message: str) -> None:
    with pytest.raises(SequenceModelError, match=message):
        SessionModel.from_state(state)


def test_too_few_sessions_to_calibrate_are_refused() -> None:
    with pytest.raises(SequenceModelError, match="too few"):
        SessionModel.fit(ssh_like(5))


def test_session_files_read_line_by_line_and_bad_files_are_refused(tmp_path: Path) -> None:
    good = tmp_path / "s.txt"
    good.write_text("5 22 5 \n\n11 9\n", encoding="utf-8")
    assert read_session_file(good) == [["5", "22", "5"], [], ["11", "9"]]
    binary = tmp_path / "b.bin"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(SequenceModelError, match="not UTF-8"):
        read_session_file(binary)
    with pytest.raises(SequenceModelError, match="no such file"):
        read_session_file(tmp_path / "missing")
    with pytest.raises(SequenceModelError, match="a folder"):
        read_session_file(tmp_path)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["connect", "fail", "accept", "open", "cmd", "close", "x"])))
@example([])
@example(SKIPPED_AUTH)
def test_the_lean_score_is_the_largest_feature_surprisal(tokens: list[str]) -> None:
    model = _MODEL
    assert model.score(tokens) == pytest.approx(max(f.surprisal for f in model.features(tokens)))


_MODEL = SessionModel.fit(ssh_like())


def test_tokens_with_spaces_keep_their_n_grams_apart_through_the_state() -> None:
    # masked messages as tokens: "a b" + "c" must not be confused with "a" + "b c"
    sessions = [["a b", "c"] if i % 2 else ["a", "b c"] for i in range(40)]
    model = SessionModel.fit(sessions)
    copy = SessionModel.from_state(json.loads(json.dumps(model.state())))
    for tokens in (["a b", "c"], ["a", "b c"], ["a", "c"], ["a b", "b c"]):
        assert copy.score(tokens) == model.score(tokens)
    assert not model.flagged(["a b", "c"]) and model.flagged(["a b", "b c"])
