"""Nothing acknowledged is lost: the console, served by uvicorn in a process of its own, is
killed with SIGKILL in the middle of a burst of public reports sent from several threads;
after a restart on the same database every report that was answered with its tracking number
is there with its content, and no report is half written (a report without its incident, or
a reported incident without its report)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import accounts, audit
from qorgan.core.db import unit_of_work
from qorgan.core.models import OrganisationKind
from qorgan.core.settings import Settings
from qorgan.incidents import evidence
from qorgan.incidents.models import Evidence, Incident, IncidentEvent, PublicReport
from qorgan.testing import free_port
from qorgan.web.proof_of_work import solve
from serving import wait_until_answering

#: Reports sent at most, by how many threads; the server is killed once KILL_AFTER of them
#: were acknowledged, with the others still on their way.
SUBMISSIONS = 200
THREADS = 4
KILL_AFTER = 40
DEADLINE = 120.0
#: The console as ``qorgan serve`` runs it (uvicorn, one process), with the form's guard set
#: for a burst from one address: a cheap proof of work and roomy windows. Arguments: the
#: database URL, the data folder and the port.
SERVER = """
import sys

import uvicorn

from qorgan.cli import uvicorn_options
from qorgan.core.settings import get_settings
from qorgan.web.app import create_app
from qorgan.web.proof_of_work import ProofOfWork
from qorgan.web.routes.public_report import ReportGuard
from qorgan.web.throttle import Throttle

settings = get_settings(database_url=sys.argv[1], var_dir=sys.argv[2])
app = create_app(settings)
app.state.public_reports = ReportGuard(
    proof=ProofOfWork(app.state.qorgan.secret, difficulty=4),
    per_address=Throttle(100_000, 600),
    everyone=Throttle(100_000, 600),
)
options = uvicorn_options(settings, "127.0.0.1", int(sys.argv[3]), 1)
options.update(factory=False, log_level="warning")
uvicorn.run(app, **options)
"""


@contextmanager
def _server(
    settings: Settings, var_dir: Path, log: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The console in a process of its own, answering /healthz; killed at the end if alive."""
    port = free_port()
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVER, settings.database_url, str(var_dir), str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(process, f"{url}/healthz", log, timeout=60)
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


@dataclass
class Burst:
    """What the threads sent and what was acknowledged."""

    acknowledged: dict[str, dict[str, str]] = field(default_factory=dict)  # tracking: fields
    attachments: dict[str, bytes] = field(default_factory=dict)  # tracking: file content
    unanswered: int = 0
    refused: list[str] = field(default_factory=list)
    sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    enough: threading.Event = field(default_factory=threading.Event)


def _report(worker: int, number: int) -> dict[str, str]:
    return {
        "kind": "phishing-site",
        "reporter_name": f"Reporter {worker}-{number}",
        "email": f"reporter.{worker}.{number}@mail.kz",
        "phone": f"+7 701 {worker:03d} {number:02d} {number:02d}",
        "organisation_involved": f"Bank {worker}",
        "url": f"https://bank-{worker}-{number}.example.kz/login",
        "period_from": "2026-11-01",
        "period_to": "2026-11-02",
        "description": f"Report {worker}-{number}: a page like the bank's asked for my card.",
    }


def _send(url: str, worker: int, count: int, burst: Burst) -> None:
    """Send ``count`` reports one after another; stop at the first that gets no answer (the
    server is gone)."""
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            page = client.get("/report")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
            for number in range(count):
                fields = _report(worker, number)
                files = None
                content = f"evidence {worker}-{number}".encode()
                if number % 3 == 0:
                    files = [("files", (f"shot-{number}.png", content, "image/png"))]
                challenge = client.get("/report/challenge").json()
                proof = solve(challenge["token"], challenge["difficulty"])
                with burst.lock:
                    burst.sent += 1
                answer = client.post(
                    "/report",
                    data={
                        **fields,
                        "csrf_token": csrf,
                        "pow_token": challenge["token"],
                        "pow_solution": proof,
                    },
                    files=files,
                    follow_redirects=False,
                )
                found = re.fullmatch(
                    r"/report/status/(QR-[0-9A-Z-]{14})\?new=1", answer.headers.get("location", "")
                )
                with burst.lock:
                    if answer.status_code != 303 or not found:
                        burst.refused.append(f"{answer.status_code}: {answer.text[:300]}")
                        return
                    burst.acknowledged[found.group(1)] = fields
                    if files:
                        burst.attachments[found.group(1)] = content
                    if len(burst.acknowledged) >= KILL_AFTER:
                        burst.enough.set()
    except (httpx.TransportError, httpx.HTTPError):
        with burst.lock:
            burst.unanswered += 1  # sent, or about to be, when the server died


def _prepare(factory: sessionmaker[Session]) -> int:
    with unit_of_work(factory) as session:
        return accounts.create_organisation(
            session=session, actor="test", name="KZ-CERT", kind=OrganisationKind.cert
        ).id


@pytest.mark.slow  # two server starts and a burst: 20 to 50 s on two shared cores
def test_every_acknowledged_report_survives_a_kill(
    settings: Settings, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    cert = _prepare(factory)
    var_dir, log = tmp_path / "var", tmp_path / "server.log"
    burst = Burst()
    started = time.monotonic()
    with _server(settings, var_dir, log) as (url, process):
        threads = [
            threading.Thread(target=_send, args=(url, w, SUBMISSIONS // THREADS, burst))
            for w in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        assert burst.enough.wait(timeout=DEADLINE), (burst.refused, log.read_text())
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
        for thread in threads:
            thread.join(timeout=60)
            assert not thread.is_alive()
    assert not burst.refused, burst.refused
    acknowledged = dict(burst.acknowledged)
    # Killed in the middle: some reports were acknowledged, others were on their way.
    assert KILL_AFTER <= len(acknowledged) < SUBMISSIONS
    assert burst.sent < SUBMISSIONS or burst.unanswered

    # The restarted console finds every acknowledged report, and takes new ones.
    with _server(settings, var_dir, log) as (url, _process):
        with httpx.Client(base_url=url, timeout=30) as client:
            for tracking in acknowledged:
                page = client.get(f"/report/status/{tracking}")
                assert page.status_code == 200, tracking
                assert 'data-phase="assessment"' in page.text
        after = Burst()
        _send(url, 99, 1, after)
        assert len(after.acknowledged) == 1, after.refused

    with unit_of_work(factory) as session:
        stored = {r.tracking: r for r in session.scalars(select(PublicReport))}
        for tracking, sent in acknowledged.items():
            report = stored[tracking]
            assert (report.reporter_name, report.email, report.phone) == (
                sent["reporter_name"],
                sent["email"],
                sent["phone"],
            )
            assert (report.url, report.description) == (sent["url"], sent["description"])
            assert report.organisation_involved == sent["organisation_involved"]
            assert str(report.period_from) == sent["period_from"]
            files = session.scalars(
                select(Evidence).where(Evidence.incident_id == report.incident_id)
            ).all()
            store = evidence.store_folder(var_dir)
            assert [evidence.stored_path(store, f.sha256).read_bytes() for f in files] == (
                [burst.attachments[tracking]] if tracking in burst.attachments else []
            )
        # Reports sent but not acknowledged may be there or not, but never half written.
        reported = {
            i.id: i for i in session.scalars(select(Incident).where(Incident.origin == "report"))
        }
        assert {r.incident_id for r in stored.values()} == set(reported)
        assert len(reported) == len(stored) == len(set(stored))
        for report in stored.values():
            incident = reported[report.incident_id]
            assert (incident.organisation_id, incident.status) == (cert, "triage")
            assert report.description in incident.description
        kinds = session.execute(
            select(IncidentEvent.kind, func.count()).group_by(IncidentEvent.kind)
        ).all()
        files = session.scalar(select(func.count()).select_from(Evidence))
        assert dict(kinds) == {
            "created": len(stored),
            "status": len(stored),
            "observable": 2 * len(stored),
            "evidence_added": files,
        }
        assert audit.verify(session=session) == []
    assert time.monotonic() - started < DEADLINE + 120
