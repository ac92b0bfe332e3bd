"""``qorgan db upgrade``, ``qorgan audit verify|anchor`` and ``qorgan org|user``, run as a user
runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from qorgan.core import audit
from qorgan.core.db import make_engine, session_factory, unit_of_work
from qorgan.core.settings import get_settings
from qorgan.migrations import head

QORGAN = [sys.executable, "-c", "from qorgan.cli import app; app()"]


def qorgan(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "QORGAN_DATABASE_URL": f"sqlite:///{db}",
    }
    return subprocess.run(
        [*QORGAN, *args], capture_output=True, text=True, env=env, check=False, timeout=120
    )


def test_upgrade_verify_clean_then_tampered(tmp_path: Path) -> None:
    db = tmp_path / "state" / "qorgan.db"
    assert qorgan("audit", "verify", db=db).returncode == 2  # not migrated yet: a usage error
    up = qorgan("db", "upgrade", db=db)
    assert up.returncode == 0, up.stderr
    assert f"revision {head()}" in up.stderr

    engine = make_engine(get_settings(database_url=f"sqlite:///{db}"))
    with unit_of_work(session_factory(engine)) as session:
        for i in range(5):
            audit.record("incident.update", session=session, actor="3", target_id=i)

    clean = qorgan("audit", "verify", db=db)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "intact: 5 entries" in clean.stderr
    kept = qorgan("audit", "anchor", db=db)
    assert kept.returncode == 0
    anchor = kept.stdout.strip()
    assert anchor.startswith("5:")
    assert qorgan("audit", "verify", "--anchor", anchor, db=db).returncode == 0

    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER audit_entries_no_update")
        conn.exec_driver_sql("UPDATE audit_entries SET actor = '4' WHERE id = 2")
    engine.dispose()
    tampered = qorgan("audit", "verify", db=db)
    assert tampered.returncode == 1
    assert "PROBLEM entry 2: hash mismatch (edited)" in tampered.stdout

    assert qorgan("audit", "verify", "--anchor", "nonsense", db=db).returncode == 2


def test_first_administrator_from_the_command_line(tmp_path: Path) -> None:
    db = tmp_path / "qorgan.db"
    assert qorgan("db", "upgrade", db=db).returncode == 0
    created = qorgan("org", "create", "Astana akimat", "--kind", "akimat", db=db)
    assert created.returncode == 0 and created.stdout.strip() == "1"
    assert qorgan("org", "create", "GSOC", "--kind", "soc", db=db).stdout.strip() == "2"
    assert qorgan("org", "create", "X", "--kind", "castle", db=db).returncode == 2
    user = qorgan(
        "user", "create", "Boss@Astana.kz", "--organisation", "1",
        "--role", "administrator", "--name", "Boss",
        db=db,
    )  # fmt: skip
    assert user.returncode == 0, user.stderr
    password = user.stdout.strip().rsplit(" ", 1)[-1]
    again = qorgan(
        "user", "create", "boss@astana.kz", "--organisation", "1",
        "--role", "auditor", "--name", "Boss",
        db=db,
    )  # fmt: skip
    assert again.returncode == 2 and "exists" in again.stderr
    nowhere = qorgan(
        "user", "create", "x@astana.kz", "--organisation", "9",
        "--role", "auditor", "--name", "X",
        db=db,
    )  # fmt: skip
    assert nowhere.returncode == 2 and "no organisation" in nowhere.stderr
    assert qorgan("org", "share", "1", "2", db=db).returncode == 0
    assert qorgan("org", "share", "1", "1", db=db).returncode == 2
    engine = make_engine(get_settings(database_url=f"sqlite:///{db}"))
    try:
        from qorgan.core import accounts

        with unit_of_work(session_factory(engine)) as session:
            signed = accounts.sign_in(session=session, email="boss@astana.kz", password=password)
            # The password works; an administrator must enrol a second factor first.
            assert signed.outcome is accounts.Outcome.enrolment_needed
            assert accounts.visible_organisations(
                session=session, organisation_id=2, resource="alerts"
            ) == [2, 1]
            assert audit.verify(session=session) == []
    finally:
        engine.dispose()
