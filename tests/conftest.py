"""Shared fixtures: the shared corpora, and databases (a SQLite file per test, PostgreSQL on
loopback when installed).

PostgreSQL tests are skipped when ``initdb`` or psycopg is missing, and fail then under CI=true
(``.ci/run`` installs PostgreSQL), like every other missing service.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core.db import make_engine, session_factory
from qorgan.core.settings import Settings, get_settings
from qorgan.migrations import upgrade
from qorgan.testing import Postgres

# Every property test runs the same examples on every run (seeded from the test itself), so
# `make test` is deterministic and a failure found once is found again. A failure found this
# way is then kept as an explicit test or `@example`; no example database is needed.
hypothesis_settings.register_profile("qorgan", derandomize=True, deadline=None, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "qorgan"))

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
