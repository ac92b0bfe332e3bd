"""``qorgan hunt --anomaly``: the models run beside the rules on the real SSH log; findings are
written apart from the alerts, each labelled as an AI model's; ``--anomaly-state`` carries the
baselines to the next hunt, which then finds an attack the first hunt taught it to see."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

SSH = "loghub/OpenSSH/OpenSSH_2k.log"


def qorgan(*args: str | Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The command in a process of its own, with its plan cache under ``tmp_path``."""
    return subprocess.run(
        [sys.executable, "-m", "qorgan.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={"QORGAN_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"},
        check=False,
        timeout=300,
    )


def findings(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_hunt_writes_labelled_findings_and_carries_baselines(
    shared_file: Callable[[str], Path], ssh_attack: Callable[..., list[str]], tmp_path: Path
) -> None:
    log = tmp_path / "OpenSSH_2k.log"
    shutil.copy(shared_file(SSH), log)
    out, state = tmp_path / "findings.jsonl", tmp_path / "baselines"
    proc = qorgan(
        "hunt",
        "--anomaly",
        out,
        "--anomaly-state",
        state,
        "-o",
        tmp_path / "alerts.jsonl",
        log,
        tmp_path=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr  # the rules alert on the brute force
    first = findings(out)
    assert first, "the models propose something on a real log under attack"
    assert all(f["ai_generated"] and f["label"] and f["score"] >= f["threshold"] for f in first)
    assert "AI anomaly findings, to be confirmed or rejected by a person" in proc.stderr
    # Alerts stay alerts: no finding is among them.
    alerts = findings(tmp_path / "alerts.jsonl")
    assert alerts and not any("ai_generated" in a for a in alerts)
    assert (state / "anomaly-state.json").is_file()

    attack = tmp_path / "attack.log"
    attack.write_text("\n".join(ssh_attack()) + "\n", encoding="utf-8")
    proc = qorgan("hunt", "--anomaly", out, "--anomaly-state", state, attack, tmp_path=tmp_path)
    assert "anomaly: baselines continued from" in proc.stderr
    logons = [f for f in findings(out) if f["detector"] == "entity.logon"]
    assert [f["contributions"][0]["feature"] for f in logons] == ["logon.after_failures"]
    # The neighbour: the attack alone, without the learned baselines, is still warm-up.
    fresh = tmp_path / "fresh.jsonl"
    qorgan("hunt", "--anomaly", fresh, attack, tmp_path=tmp_path)
    assert not [f for f in findings(fresh) if f["detector"] == "entity.logon"]


def test_a_broken_state_is_a_clear_error(tmp_path: Path) -> None:
    state = tmp_path / "baselines"
    state.mkdir()
    (state / "anomaly-state.json").write_text("{", encoding="utf-8")
    log = tmp_path / "a.log"
    log.write_text("Dec 11 03:00:12 h sshd[1]: Connection closed by 10.0.0.1 port 22\n")
    proc = qorgan(
        "hunt",
        "--anomaly",
        tmp_path / "f.jsonl",
        "--anomaly-state",
        state,
        log,
        tmp_path=tmp_path,
    )
    assert proc.returncode == 2
    assert "not JSON" in proc.stderr
