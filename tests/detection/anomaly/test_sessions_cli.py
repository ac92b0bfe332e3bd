"""``qorgan anomaly sessions``: one score and flag per input line, in order; a clear error and
exit status 2 on a bad file."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from qorgan.cli import app

runner = CliRunner()


def said(text: str) -> str:
    """``text`` with its white space collapsed: the error console wraps long messages."""
    return " ".join(text.split())


def normal_sessions() -> str:
    """HDFS-like normal blocks in DeepLog's form: allocate, receive x3, respond x3, store x3."""
    lines = []
    for i in range(200):
        lines.append("22 " + "5 " * 3 + "11 9 " * 3 + "26 " * 3 + "23 21 " * (i % 3))
    return "\n".join(lines) + "\n"


def test_one_line_per_session_in_order_with_flags(tmp_path: Path) -> None:
    train = tmp_path / "train"
    train.write_text(normal_sessions(), encoding="utf-8")
    score = tmp_path / "score"
    # normal, empty (a session of length 0), cut short, an unseen template
    score.write_text("22 5 5 5 11 9 11 9 11 9 26 26 26\n\n22 5\n22 5 5 5 11 9 28\n")
    result = runner.invoke(
        app, ["anomaly", "sessions", "--train", str(train), "--score", str(score)]
    )
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(rows) == 4
    assert [flag for _, flag in rows] == ["0", "1", "1", "1"]
    assert all(float(value) >= 0 for value, _ in rows)
    assert float(rows[0][0]) < float(rows[2][0])


def test_explain_and_threshold_options(tmp_path: Path) -> None:
    train = tmp_path / "train"
    train.write_text(normal_sessions(), encoding="utf-8")
    score = tmp_path / "score"
    score.write_text("22 5 5 5 11 9 28\n")
    result = runner.invoke(
        app, ["anomaly", "sessions", "--train", str(train), "--score", str(score), "--explain"]
    )
    assert result.exit_code == 0, result.output
    value, flag, why = result.stdout.rstrip("\n").split("\t")
    assert flag == "1" and "28" in why
    # the neighbour: a threshold above the score clears the flag
    high = str(float(value) + 1)
    result = runner.invoke(
        app,
        ["anomaly", "sessions", "--train", str(train), "--score", str(score), "--threshold", high],
    )
    assert result.stdout.split("\t")[1].strip() == "0"


def test_a_missing_or_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    train = tmp_path / "train"
    train.write_text(normal_sessions(), encoding="utf-8")
    missing = tmp_path / "nope"
    result = runner.invoke(
        app, ["anomaly", "sessions", "--train", str(train), "--score", str(missing)]
    )
    assert result.exit_code == 2
    assert "nope: no such file" in said(result.stderr)
    binary = tmp_path / "bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff")
    result = runner.invoke(
        app, ["anomaly", "sessions", "--train", str(binary), "--score", str(train)]
    )
    assert result.exit_code == 2 and "not UTF-8" in said(result.stderr)
    empty = tmp_path / "empty"
    empty.write_text("")
    result = runner.invoke(
        app, ["anomaly", "sessions", "--train", str(empty), "--score", str(train)]
    )
    assert result.exit_code == 2 and "too few" in said(result.stderr)
