"""``qorgan incidents list|create|move`` and ``qorgan calendar check|show``, run as a user
runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

QORGAN = [sys.executable, "-c", "from qorgan.cli import app; app()"]


def qorgan(*args: str, db: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "QORGAN_DATABASE_URL": f"sqlite:///{db}",
        **env,
    }
    return subprocess.run(
        [*QORGAN, *args], capture_output=True, text=True, env=environment, check=False, timeout=120
    )


def test_create_move_and_list(tmp_path: Path) -> None:
    db = tmp_path / "qorgan.db"
    assert qorgan("db", "upgrade", db=db).returncode == 0
    assert qorgan("org", "create", "Almaty akimat", "--kind", "akimat", db=db).returncode == 0
    made_user = qorgan(
        "user", "create", "duty@almaty.kz", "--organisation", "1", "--name", "Duty analyst",
        "--role", "soc_analyst", db=db,
    )  # fmt: skip
    assert made_user.returncode == 0, made_user.stderr
    created = qorgan(
        "incidents", "create", "--organisation", "1", "--as", "duty@almaty.kz",
        "--title", "Phishing site imitating egov.kz", "--personal-data", db=db,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    row = json.loads(created.stdout)
    assert row["reference"] == "INC-000001" and row["status"] == "new"
    refused = qorgan(
        "incidents", "move", "1", "closed", "--organisation", "1", "--as", "duty@almaty.kz", db=db
    )
    assert refused.returncode == 2 and "resolution" in refused.stderr
    nobody = qorgan(
        "incidents", "move", "1", "triage", "--organisation", "1", "--as", "who@almaty.kz", db=db
    )
    assert nobody.returncode == 2 and "no user who@almaty.kz" in nobody.stderr
    moved = qorgan(
        "incidents", "move", "1", "triage", "--organisation", "1", "--as", "duty@almaty.kz", db=db
    )
    assert json.loads(moved.stdout)["status"] == "triage"
    listed = json.loads(
        qorgan("incidents", "list", "--organisation", "1", "--format", "json", db=db).stdout
    )
    assert listed["total"] == 1 and listed["items"][0]["title"] == "Phishing site imitating egov.kz"
    closed = qorgan(
        "incidents", "list", "--organisation", "1", "--status", "closed", "--format", "json", db=db
    )
    assert json.loads(closed.stdout)["total"] == 0
    # Another organisation's incident is not found through the command line either.
    assert qorgan("org", "create", "Astana akimat", "--kind", "akimat", db=db).returncode == 0
    theirs = qorgan("incidents", "list", "--organisation", "2", "--format", "json", db=db)
    assert json.loads(theirs.stdout)["total"] == 0


def test_calendar_check_and_show(tmp_path: Path) -> None:
    db = tmp_path / "qorgan.db"
    shown = qorgan("calendar", "show", "2026", db=db)
    assert shown.returncode == 0
    assert "2026-03-23  Mon  off" in shown.stdout  # Nauryz
    assert "2026-03-20" not in shown.stdout  # the Friday before is a working day
    bad = tmp_path / "calendar.yml"
    bad.write_text("zone: Asia/Almaty\nworking_hours: {start: '18:00', end: '09:00'}\nyears: {}\n")
    checked = qorgan("calendar", "check", str(bad), db=db)
    assert checked.returncode == 2 and "start" in checked.stderr
    uncovered = qorgan("calendar", "show", "2031", db=db)
    assert "does not cover 2031" in uncovered.stderr
