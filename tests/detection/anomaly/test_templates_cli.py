"""``qorgan anomaly templates``: the template of each line of a real log, as CSV or JSON lines,
with state kept between runs, and a clear refusal of what it cannot read."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qorgan.cli import app

runner = CliRunner()


@pytest.fixture
def openssh(shared_data: Path) -> Path:
    path = shared_data / "loghub-2k" / "OpenSSH" / "OpenSSH_2k.log"
    if not path.is_file():
        pytest.fail(f"{path} is missing from the shared corpus")
    return path


def _text(stderr: str) -> str:
    """``stderr`` without the line breaks the console adds at its width."""
    return " ".join(stderr.split())


def _rows(stdout: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(stdout)))


def test_csv_gives_every_line_its_template_and_lines_of_one_template_share_an_id(
    openssh: Path,
) -> None:
    result = runner.invoke(app, ["anomaly", "templates", str(openssh), "--format", "csv"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "line,template_id,template"
    rows = _rows(result.stdout)
    assert [int(r["line"]) for r in rows] == list(range(1, 2001))
    by_template: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        by_template[r["template"]].add(r["template_id"])
    assert all(len(ids) == 1 for ids in by_template.values())
    assert len({r["template_id"] for r in rows}) == len(by_template)
    # the sshd header is stripped and the values masked: one template for all these lines
    failed = [r for r in rows if r["template"].startswith("Failed password for invalid user")]
    assert len(failed) > 50
    assert {r["template"] for r in failed} == {
        "Failed password for invalid user <*> from <*> port <*> ssh2"
    }
    # a different message is a different template
    first = rows[0]
    assert first["template"] == (
        "reverse mapping checking getaddrinfo for <*> [<*>] failed - POSSIBLE BREAK-IN ATTEMPT!"
    )
    assert first["template_id"] not in {r["template_id"] for r in failed}


def test_jsonl_with_a_log_format_and_state_kept_between_runs(
    shared_data: Path, tmp_path: Path
) -> None:
    log = shared_data / "loghub-2k" / "HDFS" / "HDFS_2k.log"
    state = tmp_path / "hdfs-templates.json"
    args = [
        "anomaly",
        "templates",
        str(log),
        "--format",
        "jsonl",
        "--state",
        str(state),
        "--log-format",
        "<Date> <Time> <Pid> <Level> <Component>: <Content>",
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.stderr
    assert state.is_file()
    records = [json.loads(line) for line in first.stdout.splitlines()]
    assert records[0] == {
        "line": 1,
        "template_id": records[0]["template_id"],
        "template": "PacketResponder <*> for block <*> terminating",
    }
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.stderr
    # the reloaded templates give the same lines the same ids
    again = [json.loads(line) for line in second.stdout.splitlines()]
    assert [r["template_id"] for r in again] == [r["template_id"] for r in records]


@pytest.mark.parametrize("which", ["missing", "folder"])
def test_a_file_that_cannot_be_read_is_a_clear_error(tmp_path: Path, which: str) -> None:
    target = tmp_path / "absent.log" if which == "missing" else tmp_path
    result = runner.invoke(app, ["anomaly", "templates", str(target)])
    assert result.exit_code == 2
    message = _text(result.stderr)
    assert message.startswith("error:") and "cannot read the log" in message
    assert "Traceback" not in result.stderr + result.stdout


def test_a_broken_state_or_log_format_is_a_clear_error(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"hello 1\x00\xff\nhello 2\n")
    state = tmp_path / "state.json"
    state.write_text("{not json", encoding="utf-8")
    broken = runner.invoke(app, ["anomaly", "templates", str(log), "--state", str(state)])
    assert broken.exit_code == 2 and "cannot read the template state" in _text(broken.stderr)
    no_content = runner.invoke(app, ["anomaly", "templates", str(log), "--log-format", "<A> <B>"])
    assert no_content.exit_code == 2 and "<Content>" in _text(no_content.stderr)
    ok = runner.invoke(app, ["anomaly", "templates", str(log)])
    assert ok.exit_code == 0, ok.stderr
    assert [r["template_id"] for r in _rows(ok.stdout)] == ["1", "1"]
