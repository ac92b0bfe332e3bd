"""No acknowledged decision is lost: ``qorgan serve`` is killed with SIGKILL in the middle of
a burst of access decisions sent from several threads; after a restart on the same database,
every decision that was answered (HTTP 200) is in the access log with the record id and the
outcome it was answered with, and sending every request again, answered or not, leaves exactly
one log entry per request id (a retried request is recorded once, whether or not its first
answer arrived).

The moment of the kill (after how many acknowledgements, with the requests then in flight) is
drawn from a seeded generator; the seed is printed, so a failure can be repeated with it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from qorgan.core.db import unit_of_work
from qorgan.core.settings import Settings
from qorgan.privacy import decisions
from qorgan.privacy.models import AccessRecord, Consent
from qorgan.testing import free_port
from serving import wait_until_answering

from .conftest import Registry
from .examples import iin

pytestmark = pytest.mark.slow  # two server starts and a burst: 10 to 30 s on two shared cores

SEED = int(os.environ.get("QORGAN_CRASH_SEED", "20261130"))
THREADS = 4
#: Requests per thread at most; the kill comes long before the last.
PER_THREAD = 400
#: Subjects asked about; the first half have consented to the clinic's medical care.
SUBJECTS = [iin(date(1950, 1, 1) + timedelta(days=97 * n), serial=n) for n in range(40)]
DEADLINE = 50.0


@contextmanager
def serve(settings: Settings, var_dir: Path, log: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """``qorgan serve`` in a process of its own (the in-process collector off), answering
    ``/readyz``; killed at the end if still alive."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QORGAN_")}
    env |= {
        "QORGAN_DATABASE_URL": settings.database_url,
        "QORGAN_VAR_DIR": str(var_dir),
        "QORGAN_COLLECT_IN_SERVE": "false",
    }
    command = [sys.executable, "-m", "qorgan.cli", "serve", "--host", "127.0.0.1"]
    with log.open("ab") as output:
        process = subprocess.Popen(
            [*command, "--port", str(port)], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(process, f"{url}/readyz", log, timeout=30)
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def body(worker: int, number: int) -> tuple[str, dict[str, object]]:
    """Which system asks (``clinic`` or ``police``) and the request: the same for the same
    worker and number, so a retry sends exactly what was sent."""
    r = random.Random(worker * 100_003 + number)
    subject = SUBJECTS[r.randrange(len(SUBJECTS))]
    request_id = f"crash-{worker}-{number}"
    if r.random() < 0.15:
        return "police", {
            "subject_iin": subject,
            "categories": ["general"],
            "purpose": "pre-trial investigation",
            "legal_basis": "law_enforcement",
            "official": f"investigator {worker}",
            "request_id": request_id,
        }
    return "clinic", {
        "subject_iin": subject,
        "categories": ["general"] if r.random() < 0.8 else ["general", "special"],
        "purpose": "medical care" if r.random() < 0.85 else "statistics",
        "legal_basis": "consent" if r.random() < 0.8 else "legal_obligation",
        "official": f"doctor {worker}",
        "request_id": request_id,
    }


@dataclass
class Burst:
    """What the threads sent and what was acknowledged: request id -> (record id, decision,
    reason)."""

    kill_after: int
    acknowledged: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    sent: set[tuple[int, int]] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    enough: threading.Event = field(default_factory=threading.Event)


def post(client: httpx.Client, tokens: dict[str, str], worker: int, number: int) -> httpx.Response:
    system, request = body(worker, number)
    return client.post(
        "/api/v1/privacy/decisions",
        json=request,
        headers={"Authorization": f"Bearer {tokens[system]}"},
    )


def send(url: str, tokens: dict[str, str], worker: int, burst: Burst) -> None:
    """Send this worker's requests one after another until one gets no answer."""
    with httpx.Client(base_url=url, timeout=30) as client:
        for number in range(PER_THREAD):
            with burst.lock:
                burst.sent.add((worker, number))
            try:
                answer = post(client, tokens, worker, number)
            except httpx.TransportError:
                return  # the server is gone: this request may or may not be recorded
            with burst.lock:
                if answer.status_code != 200:
                    burst.refused.append(f"{answer.status_code}: {answer.text[:300]}")
                    return
                found = answer.json()
                burst.acknowledged[f"crash-{worker}-{number}"] = (
                    found["record_id"],
                    found["decision"],
                    found["reason"],
                )
                if len(burst.acknowledged) >= burst.kill_after:
                    burst.enough.set()


def consent_half(reg: Registry) -> None:
    with unit_of_work(reg.factory) as session:
        for subject_iin in SUBJECTS[: len(SUBJECTS) // 2]:
            subject = decisions.subject_for(session=session, protection=reg.keys, iin=subject_iin)
            session.add(
                Consent(
                    subject_id=subject.id,
                    system_id=reg.clinic.id,
                    purposes=["medical care"],
                    categories=["general"],
                    given_at=datetime.now(UTC) - timedelta(days=30),
                    given_receipt="{}",
                )
            )


def test_no_acknowledged_decision_is_lost_when_the_server_is_killed(
    settings: Settings, privacy_registry: Registry, tmp_path: Path
) -> None:
    reg = privacy_registry
    consent_half(reg)
    rng = random.Random(SEED)
    burst = Burst(kill_after=rng.randint(10, 80))
    print(f"seed {SEED} (QORGAN_CRASH_SEED): kill after {burst.kill_after} acknowledgements")
    tokens = {"clinic": reg.clinic_token, "police": reg.police_token}
    var_dir, log = tmp_path / "var", tmp_path / "server.log"  # the keys' folder (conftest)
    with serve(settings, var_dir, log) as (url, process):
        threads = [
            threading.Thread(target=send, args=(url, tokens, worker, burst))
            for worker in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        assert burst.enough.wait(timeout=DEADLINE), (burst.refused, log.read_text())
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
        for thread in threads:
            thread.join(timeout=30)
            assert not thread.is_alive()
    assert not burst.refused, burst.refused
    acknowledged = dict(burst.acknowledged)
    sent = sorted(burst.sent)
    # Killed in the middle: some decisions acknowledged, each thread's last one unanswered.
    assert burst.kill_after <= len(acknowledged) < len(sent) < THREADS * PER_THREAD

    with unit_of_work(reg.factory) as session:
        logged = {
            row.request_id: (row.id, row.outcome.value, row.reason)
            for row in session.scalars(select(AccessRecord))
        }
    for request_id, answer in acknowledged.items():
        assert logged.get(request_id) == answer, request_id
    assert {"allow", "deny"} <= {outcome for _, outcome, _ in acknowledged.values()}

    # Every request again, answered or not: the acknowledged ones get their first answer, the
    # others are decided now or found recorded, and none is recorded twice.
    answers: dict[str, tuple[int, str, str]] = {}

    def resend(url: str, mine: list[tuple[int, int]]) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            for worker, number in mine:
                answer = post(client, tokens, worker, number)
                assert answer.status_code == 200, answer.text
                found = answer.json()
                answers[f"crash-{worker}-{number}"] = (
                    found["record_id"],
                    found["decision"],
                    found["reason"],
                )

    with serve(settings, var_dir, log) as (url, _process):
        threads = [
            threading.Thread(target=resend, args=(url, sent[k::THREADS])) for k in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=DEADLINE)
    assert len(answers) == len(sent)
    for request_id, answer in acknowledged.items():
        assert answers[request_id] == answer, request_id
    with unit_of_work(reg.factory) as session:
        per_request = dict(
            session.execute(
                select(AccessRecord.request_id, func.count()).group_by(AccessRecord.request_id)
            ).all()
        )
    assert per_request == {f"crash-{worker}-{number}": 1 for worker, number in sent}
