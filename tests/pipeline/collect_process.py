"""A ``qorgan collect`` process on loopback for crash and backpressure tests: a SQLite
database with one organisation and a TCP, a RELP and an HTTP source; free ports; start (waits
until its HTTP listener answers), SIGKILL, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import select

from qorgan.core.accounts import create_organisation
from qorgan.core.db import make_engine, session_factory, unit_of_work
from qorgan.core.models import OrganisationKind
from qorgan.core.settings import get_settings
from qorgan.incidents.models import StoredAlert
from qorgan.migrations import upgrade
from qorgan.pipeline.sources import create_source


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Deployment:
    env: dict[str, str]
    ports: dict[str, int]
    database_url: str
    token: str
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "qorgan.cli", "collect"],
                env=self.env,
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 120
        while True:
            try:
                if (
                    httpx.get(
                        f"http://127.0.0.1:{self.ports['http']}/healthz", timeout=2
                    ).status_code
                    == 200
                ):
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                raise AssertionError(f"the collector ended: {self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("the collector did not start in time")
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


def deploy(tmp_path: Path, **env: str) -> Deployment:
    """A migrated database with the three sources, and the collector's environment."""
    database_url = f"sqlite:///{tmp_path / 'qorgan.db'}"
    settings = get_settings(database_url=database_url, var_dir=tmp_path / "var")
    upgrade(settings)
    engine = make_engine(settings)
    with unit_of_work(session_factory(engine)) as session:
        org = create_organisation(
            session=session, actor="t", name="Collector SOC", kind=OrganisationKind.soc
        )
        for name in ("tcp", "relp"):
            create_source(
                session=session,
                organisation_id=org.id,
                actor="t",
                name=name,
                transport=name,
                format="syslog",
                senders=["127.0.0.1"],
                timezone="UTC",
            )
        _source, token = create_source(
            session=session,
            organisation_id=org.id,
            actor="t",
            name="http",
            transport="http",
            format="json",
        )
    engine.dispose()
    ports = {"tcp": free_port(), "relp": free_port(), "http": free_port()}
    environment = {
        **os.environ,
        "QORGAN_DATABASE_URL": database_url,
        "QORGAN_VAR_DIR": str(tmp_path / "var"),
        "QORGAN_COLLECT_UDP": "",
        "QORGAN_COLLECT_TCP": f"127.0.0.1:{ports['tcp']}",
        "QORGAN_COLLECT_RELP": f"127.0.0.1:{ports['relp']}",
        "QORGAN_COLLECT_HTTP": f"127.0.0.1:{ports['http']}",
        "QORGAN_ARCHIVE_DAYS": "1",
        **env,
    }
    assert token is not None
    return Deployment(environment, ports, database_url, token, tmp_path / "collector.log")


def stored(database_url: str) -> list[StoredAlert]:
    engine = make_engine(get_settings(database_url=database_url))
    try:
        with unit_of_work(session_factory(engine)) as session:
            return list(session.scalars(select(StoredAlert)))
    finally:
        engine.dispose()
