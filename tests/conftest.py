"""Shared fixtures: the shared corpora, and databases (a SQLite file per test, PostgreSQL on
loopback when installed).

PostgreSQL tests are skipped when ``initdb`` or psycopg is missing, and fail then under CI=true
(``.ci/run`` installs PostgreSQL), like every other missing service.
"""

from __future__ import annotations

import glob
import importlib.util
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core.db import make_engine, session_factory
from qorgan.core.settings import Settings, get_settings
from qorgan.migrations import upgrade

#: The shared corpora live next to the repository: <repo>/../shared/data.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared corpus folder; skipped when absent, a failure under CI=true."""
    if not SHARED_DATA.is_dir():
        message = f"shared corpus folder {SHARED_DATA} is absent"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (required under CI=true)")
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_file(shared_data: Path) -> Callable[[str], Path]:
    """``shared_file("loghub/Linux/Linux_2k.log")``: a corpus file, with the same skip/fail rule."""

    def get(relative: str) -> Path:
        path = shared_data / relative
        if not path.exists():
            message = f"corpus file {path} is absent"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"{message} (required under CI=true)")
            pytest.skip(message)
        return path

    return get


PG_SKIP = "(install Debian's postgresql package and psycopg to run them)"


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}: required under CI=true")
    pytest.skip(f"{reason} {PG_SKIP}")


class Postgres:
    """A throwaway PostgreSQL server on 127.0.0.1; ``database()`` gives a fresh database URL."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="qorgan-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._names = itertools.count(1)
        # initdb refuses to run as root: run the server as the postgres user then.
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            self.prefix = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")
            self.root.chmod(0o700)

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self.prefix, *args], check=True, capture_output=True, text=True, timeout=120
        )

    def start(self) -> None:
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "qorgan",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -F"
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.root / "log"), "-w", "start",
        )  # fmt: skip

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def database(self) -> str:
        import psycopg

        name = f"qorgan_test_{next(self._names)}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=qorgan dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://qorgan@127.0.0.1:{self.port}/{name}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        _missing("PostgreSQL is not installed (no initdb)")
    if importlib.util.find_spec("psycopg") is None:
        _missing("psycopg is not installed")
    server = Postgres(Path(found[-1]).parent)
    try:
        server.start()
    except subprocess.CalledProcessError as exc:
        server.stop()
        pytest.fail(f"PostgreSQL did not start: {exc.stderr}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings naming an empty database (not migrated)."""
    if request.param == "postgresql":
        server: Postgres = request.getfixturevalue("postgres")
        return get_settings(database_url=server.database())
    return get_settings(database_url=f"sqlite:///{tmp_path / 'qorgan.db'}")


@pytest.fixture
def factory(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Sessions on a migrated database."""
    upgrade(settings)
    engine = make_engine(settings)
    yield session_factory(engine)
    engine.dispose()
