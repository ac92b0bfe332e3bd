"""Live monitoring for the demonstration: the demo organisation's log sources, and a replay of
the example logs into the running collector at a realistic pace, so a newcomer sees events
arrive on the Sources page and alerts appear in the inbox.

The replay is a real sender: ``auth.log`` goes over syslog TCP (RFC 3164, octet-counted),
``access.log`` over syslog UDP (one request line a datagram, as nginx's ``access_log
syslog:`` does), and ``windows-endpoint.jsonl`` to HTTP ingest with the source's token. Each
line's time is rewritten to the moment it is sent, so every pass is new activity (and new
alerts), about :data:`PACE` events a second; it runs until the console stops.
"""

from __future__ import annotations

import logging
import random
import re
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core.db import unit_of_work
from qorgan.core.models import Organisation
from qorgan.pipeline.models import LogSource
from qorgan.pipeline.sources import create_source, rotate_token

log = logging.getLogger(__name__)

#: Events a second, on average, over all demo sources.
PACE = 4.0
ACTOR = "system:demo"
ALMATY = timezone(timedelta(hours=5))
#: The demo organisation's sources: name, transport, format, example file.
SOURCES = (
    ("demo linux servers", "tcp", "syslog", "auth.log"),
    ("demo web server", "udp", "accesslog", "access.log"),
    ("demo windows fleet", "http", "json", "windows-endpoint.jsonl"),
)
_SYSLOG_TIME = re.compile(rb"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d")
_ACCESS_TIME = re.compile(rb"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]")
_JSON_TIME = re.compile(rb'"(SystemTime|UtcTime)": "[^"]+"')


def create_demo_sources(factory: sessionmaker[Session], organisation: str) -> list[int]:
    """Register the demo sources (senders on loopback) once; their ids."""
    ids = []
    with unit_of_work(factory) as session:
        org_id = session.scalar(select(Organisation.id).where(Organisation.name == organisation))
        assert org_id is not None, "create the demo organisation first"
        for name, transport, fmt, _file in SOURCES:
            found = session.scalar(
                select(LogSource.id).where(
                    LogSource.organisation_id == org_id, LogSource.name == name
                )
            )
            if found is None:
                source, _token = create_source(
                    session=session,
                    organisation_id=org_id,
                    actor=ACTOR,
                    name=name,
                    transport=transport,
                    format=fmt,
                    senders=["127.0.0.1"] if transport != "http" else [],
                    expected_interval=120,
                )
                found = source.id
            ids.append(found)
    return ids


def now_lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def stamped(line: bytes, fmt: str, at: datetime) -> bytes:
    """``line`` with its time set to ``at`` (so the replay is live activity)."""
    local = at.astimezone(ALMATY)
    if fmt == "syslog":
        return _SYSLOG_TIME.sub(local.strftime("%b %e %H:%M:%S").encode(), line, count=1)
    if fmt == "accesslog":
        return _ACCESS_TIME.sub(local.strftime("[%d/%b/%Y:%H:%M:%S +0500]").encode(), line, count=1)
    utc = at.astimezone(UTC)
    return _JSON_TIME.sub(
        lambda m: (
            b'"%s": "%s"'
            % (
                m[1],
                (
                    utc.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
                    if m[1] == b"SystemTime"
                    else utc.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
                ).encode(),
            )
        ),
        line,
    )


@dataclass
class Replay:
    """Sends the examples to the collector's listeners until :meth:`stop`."""

    factory: sessionmaker[Session]
    organisation: str
    examples: Path
    ports: dict[str, int]
    http_url: str
    pace: float = PACE

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        ids = create_demo_sources(self.factory, self.organisation)
        with unit_of_work(self.factory) as session:
            http = session.get(LogSource, ids[2])
            assert http is not None
            # The token is shown once when made: the replay takes a fresh one each start.
            self.token = rotate_token(session=session, source=http, actor=ACTOR)
        self._thread = threading.Thread(target=self._run, name="demo-replay", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        streams = [(fmt, now_lines(self.examples / file)) for _n, _t, fmt, file in SOURCES]
        chooser = random.Random()
        positions = [0, 0, 0]
        with httpx.Client(timeout=10) as client:
            while not self._stop.wait(chooser.expovariate(self.pace)):
                i = chooser.choices(range(3), weights=[len(s[1]) for s in streams])[0]
                fmt, lines = streams[i]
                line = stamped(lines[positions[i] % len(lines)], fmt, datetime.now(UTC))
                positions[i] += 1
                try:
                    self._send(i, line, client)
                except (OSError, httpx.HTTPError) as exc:
                    log.warning("demo replay: %s", exc)

    def _send(self, which: int, line: bytes, client: httpx.Client) -> None:
        if which == 0 and "tcp" in self.ports:
            message = b"<38>" + line
            with socket.create_connection(("127.0.0.1", self.ports["tcp"]), timeout=5) as s:
                s.sendall(b"%d %s" % (len(message), message))
        elif which == 1 and "udp" in self.ports:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(line, ("127.0.0.1", self.ports["udp"]))
        elif which == 2 and line.startswith(b"{"):
            try:
                orjson.loads(line)
            except orjson.JSONDecodeError:
                return  # the examples hold a damaged line on purpose; HTTP would refuse it
            client.post(
                self.http_url,
                content=line,
                headers={"Authorization": f"Bearer {self.token}"},
            )
