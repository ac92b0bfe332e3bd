"""Helpers for tests and benchmarks: a throwaway PostgreSQL server on loopback, free ports.

Not used by the console itself. :class:`Postgres` needs Debian's ``postgresql`` package (its
``initdb`` and ``pg_ctl``) and, for :meth:`Postgres.database`, the psycopg driver.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


class Postgres:
    """A throwaway PostgreSQL server on 127.0.0.1; ``database()`` gives a fresh database URL.

    ``bindir`` holds ``initdb`` and ``pg_ctl`` (e.g. ``/usr/lib/postgresql/15/bin``). Call
    :meth:`start`, then :meth:`stop`, which also removes the server's files.
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="qorgan-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
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

    def start(self, *, fsync: bool = False) -> None:
        """Create the cluster and start the server. Without ``fsync`` (tests) commits are not
        flushed to disk (``-F``); benchmarks pass ``fsync=True`` to measure durable commits."""
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "qorgan",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root}" + ("" if fsync else " -F")
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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
