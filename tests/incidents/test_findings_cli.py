"""``qorgan anomaly models / register / approve / retrained``: the model register from the
command line, run as the operator runs it (a subprocess on a migrated SQLite file)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
QORGAN = [sys.executable, "-c", "from qorgan.cli import app; app()"]


def test_the_register_from_the_command_line(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(SRC),
        "QORGAN_DATABASE_URL": f"sqlite:///{tmp_path / 'qorgan.db'}",
        "QORGAN_VAR_DIR": str(tmp_path / "var"),
    }

    def qorgan(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*QORGAN, *args], capture_output=True, text=True, env=env, check=False, timeout=120
        )

    assert qorgan("db", "upgrade").returncode == 0
    org = qorgan("org", "create", "Almaty akimat", "--kind", "akimat").stdout.split()[-1]
    made = qorgan(
        "user", "create", "ciso@almaty.kz", "--organisation", org, "--role", "administrator",
        "--name", "Aigerim",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    registered = qorgan(
        "anomaly", "register", "entity-baseline", "1.0.0", "-o", org,
        "--purpose", "Logons per user and host", "--input", "auth.log", "--input", "access.log",
        "--from", "2026-10-01", "--to", "2026-10-31", "--metrics", '{"recall": 0.93}',
    )  # fmt: skip
    assert registered.returncode == 0, registered.stderr
    listed = qorgan("anomaly", "models", "-o", org)
    assert listed.returncode == 0, listed.stderr
    line = listed.stdout.splitlines()[1].split("\t")
    assert line[:4] == [
        "entity-baseline",
        "1.0.0",
        "Logons per user and host",
        "auth.log, access.log",
    ]
    assert line[4] == "2026-10-01T00:00:00+00:00..2026-10-31T00:00:00+00:00"
    assert line[5] == '{"recall": 0.93}' and line[6] == "not approved"
    approved = qorgan(
        "anomaly", "approve", "entity-baseline", "1.0.0", "-o", org, "--by", "CISO@almaty.kz"
    )
    assert approved.returncode == 0, approved.stderr
    assert qorgan("anomaly", "retrained", "entity-baseline", "1.0.0", "-o", org).returncode == 0
    line = qorgan("anomaly", "models", "-o", org).stdout.splitlines()[1].split("\t")
    assert line[6] == "ciso@almaty.kz" and line[7] != "-" and line[8] != "-"
    # Mistakes are clear errors, not tracebacks.
    new = ("anomaly", "register", "m", "1", "-o", org, "--purpose", "x", "--input", "y")
    for wrong in (
        ("anomaly", "approve", "entity-baseline", "1.0.0", "-o", org, "--by", "nobody@almaty.kz"),
        ("anomaly", "approve", "no-such-model", "1", "-o", org, "--by", "ciso@almaty.kz"),
        ("anomaly", "register", "entity-baseline", "1.0.0", *new[4:]),  # registered already
        (*new, "--metrics", "[1]"),
        (*new, "--from", "soon"),
    ):  # fmt: skip
        result = qorgan(*wrong)
        assert result.returncode == 2, (wrong, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr and "rror" in result.stderr, result.stderr
    audit = qorgan("audit", "verify")
    assert audit.returncode == 0, audit.stderr
