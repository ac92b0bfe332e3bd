"""Shared fixtures: the shared corpora, and databases (a SQLite file per test, PostgreSQL on
loopback when installed).

PostgreSQL tests are skipped when ``initdb`` or psycopg is missing, and fail then under CI=true
(``.ci/run`` installs PostgreSQL), like every other missing service.

The suite runs on every core (pytest-xdist, ``-n auto --dist loadgroup`` in pyproject.toml;
``-n 0`` runs it in one process). Each worker is a process of its own: session fixtures, such as
the PostgreSQL server, are built once per worker, each in its own temporary folder on its own
port. A module whose tests share a fixture wider than one test runs whole on one worker (see
:func:`pytest_collection_modifyitems`).
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


#: Fixture scopes that tie a module's tests together: built once for the module, and the tests
#: may build on what the ones before them left (the browser modules' worlds do).
MODULE_WIDE = ("class", "module", "package")


def _shares_module_state(item: pytest.Item) -> bool:
    """Whether ``item`` uses a fixture shared by its module: module-wide, or session-scoped but
    defined in the module itself (a session fixture of a conftest is every worker's own)."""
    module = item.nodeid.split("::")[0]
    fixtureinfo = getattr(item, "_fixtureinfo", None)  # pytest.Function's, no public API
    if fixtureinfo is None:
        return False
    for definitions in fixtureinfo.name2fixturedefs.values():
        fixture = definitions[-1]
        if fixture.scope in MODULE_WIDE:
            return True
        if fixture.scope == "session" and fixture.baseid == module:
            return True
    return False


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``--dist loadgroup`` other tests go one by one to whichever worker is free, but a
    module sharing a fixture among its tests goes whole to one worker, in order: its world (a
    browser module's 20,000 alerts, say) is built once, not once per worker, and a test that
    builds on an earlier test's state finds it. Without xdist the marks do nothing.

    On an xdist worker the tests are then handed out in an order of their own: the groups
    first (xdist sends the largest first anyway), then the other tests from the last collected
    to the first. The web tests come last in collection and are the slowest (schemathesis's
    run alone takes minutes): sent last, one of them kept one worker busy long after the other
    had finished; sent first, the quick unit tests even out the end. A run in one process keeps
    the collection order."""
    grouped: list[pytest.Item] = []
    alone: list[pytest.Item] = []
    for item in items:
        if _shares_module_state(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
            grouped.append(item)
        else:
            alone.append(item)
    if hasattr(config, "workerinput"):  # an xdist worker; this list is what it reports
        items[:] = grouped + alone[::-1]


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


@pytest.fixture(scope="session")
def ssh_attack() -> Callable[..., list[str]]:
    """``ssh_attack()``: lines of a password-guessing attack in the format of Loghub's real
    OpenSSH log (host LabSZ): 37 failed passwords for ``user`` (fztu is that server's one real
    user) from ``address`` between 02:52 and 02:58 on Dec 11, then his accepted password at
    03:00 from the same address. The anomaly tests inject it after the real log."""

    def lines(address: str = "185.220.101.47", user: str = "fztu") -> list[str]:
        failures = [
            f"Dec 11 02:{52 + i // 6:02d}:{(i * 9) % 60:02d} LabSZ sshd[3{1000 + i}]: "
            f"Failed password for {user} from {address} port {40000 + i} ssh2"
            for i in range(37)
        ]
        return [
            *failures,
            f"Dec 11 03:00:12 LabSZ sshd[31100]: Accepted password for {user} from {address} "
            "port 40100 ssh2",
        ]

    return lines


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
    bindir = Path(found[-1]).parent
    # Each xdist worker starts its own server, in its own folder, on a port that was free a
    # moment before: another worker's or another run's server may take the port first, so a
    # start that failed for want of the port is tried again on another.
    for attempt in range(3):
        server = Postgres(bindir)
        try:
            server.start()
            break
        except subprocess.CalledProcessError as exc:
            log = server.root / "log"
            taken = log.exists() and "could not bind" in log.read_text(errors="replace")
            server.stop()
            if not taken or attempt == 2:
                pytest.fail(f"PostgreSQL did not start: {exc.stderr}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings naming an empty database (not migrated)."""
    if request.param != "postgresql":
        yield get_settings(database_url=f"sqlite:///{tmp_path / 'qorgan.db'}")
        return
    server: Postgres = request.getfixturevalue("postgres")
    url = server.database()
    yield get_settings(database_url=url)
    _drop_database(server, url)


def _drop_database(server: Postgres, url: str) -> None:
    """Drop a test's database as the test ends (its connections, if any are left, closed by
    force). Left to the server's removal, a worker's few hundred databases (about 2 GB of
    files) took one to three minutes to delete at the end of the run, on this machine's disk
    (ext4 mounted with online discard), with nothing else to do; dropped one by one as the
    tests end, they take some 0.04 s each."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(
        f"host=127.0.0.1 port={server.port} user=qorgan dbname=postgres", autocommit=True
    ) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def factory(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Sessions on a migrated database."""
    upgrade(settings)
    engine = make_engine(settings)
    yield session_factory(engine)
    engine.dispose()
