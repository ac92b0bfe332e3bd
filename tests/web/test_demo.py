"""`qorgan demo`, the main job of `make run`: users printed once, example alerts loaded once."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import orjson

from qorgan.core import accounts, audit
from qorgan.core.db import make_engine, session_factory, unit_of_work
from qorgan.core.settings import get_settings
from qorgan.incidents.inbox import list_alerts
from qorgan.intel.indicator_export import export_indicators

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "logs"


def _demo(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "QORGAN_DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'qorgan.db'}",
        "QORGAN_VAR_DIR": str(tmp_path / "var"),
        "QORGAN_HUNT_ROOT": str(tmp_path / "var" / "logs"),
    }
    return subprocess.run(
        [sys.executable, "-m", "qorgan.cli", "demo", "--examples", str(EXAMPLES)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )


def test_demo_sets_up_once(tmp_path: Path) -> None:
    first = _demo(tmp_path)
    assert first.returncode == 0, first.stderr
    users = re.findall(r"^\s+(\S+@demo\.qorgan\.kz)\s+(\S+)\s+(\w+)", first.stdout, re.M)
    assert [u[2] for u in users] == [
        "administrator",
        "soc_analyst",
        "auditor",
        "cert_coordinator",
        "partner",
    ]
    loaded = re.search(r"(\d+) alerts \((\d+) new in the inbox\)", first.stderr)
    assert loaded and int(loaded.group(1)) == int(loaded.group(2)) > 0
    # In the demo organisation's own folder of the hunt root.
    assert len(list((tmp_path / "var" / "logs").glob("*/examples/auth.log"))) == 1

    second = _demo(tmp_path)
    assert second.returncode == 0, second.stderr
    assert "@demo.qorgan.kz" not in second.stdout  # passwords are never printed twice
    assert "exists already" in second.stderr
    assert re.search(r"\(0 new in the inbox\)", second.stderr)

    engine = make_engine(get_settings(database_url=f"sqlite:///{tmp_path / 'var' / 'qorgan.db'}"))
    try:
        with unit_of_work(session_factory(engine)) as session:
            # The bank's partner reads KZ-CERT's GREEN indicators in the demo constituency.
            partner = accounts.sign_in(session=session, email=users[4][0], password=users[4][1])
            assert partner.user is not None
            exported = io.StringIO()
            export_indicators(
                exported, session=session, organisation_id=partner.user.organisation_id
            )
            assert {"198.51.100.23", "203.0.113.45", "evil-c2.example"} == {
                orjson.loads(line)["value"] for line in exported.getvalue().splitlines()
            }
            email, password, _role = users[1]
            signed = accounts.sign_in(session=session, email=email, password=password)
            assert signed.outcome is accounts.Outcome.enrolment_needed  # an analyst enrols first
            assert signed.user is not None
            _rows, total = list_alerts(
                session=session, organisation_ids=[signed.user.organisation_id]
            )
            assert total == int(loaded.group(1))
            # The akimat's register holds the default anomaly models, approved by its
            # administrator but the noisy line model: live monitoring runs them; the bank's
            # register is empty.
            from qorgan.detection.anomaly.defaults import DEFAULT_MODELS
            from qorgan.incidents.findings import list_models

            register = list_models(session, signed.user.organisation_id)
            assert {(m.name, m.version) for m in register} == {
                (c.name, c.version) for c in DEFAULT_MODELS
            }
            assert {m.name for m in register if m.approved_by is None} == {"qorgan-line-rarity"}
            assert list_models(session, partner.user.organisation_id) == []
            assert audit.verify(session=session) == []
    finally:
        engine.dispose()
