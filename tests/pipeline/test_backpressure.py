"""Backpressure: while detection is stalled (the alert store locked by another writer), the
collector's backlog passes its limit; then HTTP ingest answers 429 with Retry-After, TCP stops
reading (the sender's writes block), the collector's memory stays under its cap, and once the
store is free again every acknowledged event is analysed."""

from __future__ import annotations

import re
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from .collect_process import Deployment, deploy, stored
from .test_crash import SHADOW_RULE_TITLE, SSH_RULE_TITLE, shadow_event, ssh_line

pytestmark = pytest.mark.slow

#: Messages behind detection past which intake holds senders back.
MAX_LAG = 3000
#: The collector's peak resident memory may not pass this while held back.
MEMORY_CAP_MIB = 450
ALERTING = 100


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    found = deploy(tmp_path, QORGAN_COLLECT_MAX_LAG=str(MAX_LAG))
    yield found
    found.stop()


def line(seq: int) -> bytes:
    """One in :data:`ALERTING` lines fires a rule (the rest are routine), as in real traffic."""
    if seq % ALERTING == 0:
        return ssh_line(seq)
    return f"<30>Nov 30 10:00:00 gov-web-01 systemd[1]: Started Session {seq} of user app.".encode()


def peak_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert found is not None
    return int(found[1]) / 1024


def collector_log(deployment: Deployment) -> str:
    return deployment.log.read_text(errors="replace")[-3000:]


def until(check, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def test_a_stalled_detection_holds_senders_back_and_loses_nothing(
    deployment: Deployment, tmp_path: Path
) -> None:
    deployment.start()
    assert deployment.process is not None
    # Detection stalls: another writer holds the alert store.
    lock = sqlite3.connect(tmp_path / "qorgan.db", timeout=30, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")

    sent_tcp = 0
    blocked = threading.Event()
    done = threading.Event()
    sock = socket.create_connection(("127.0.0.1", deployment.ports["tcp"]), timeout=2)

    def push_tcp() -> None:
        nonlocal sent_tcp
        while not done.is_set():
            chunk = b"".join(line(sent_tcp + i) + b"\n" for i in range(200))
            try:
                sock.sendall(chunk)
            except TimeoutError:
                blocked.set()  # the collector stopped reading: our buffers are full
                sock.settimeout(None)
                sock.sendall(chunk)  # waits until it reads again
                sock.settimeout(2)
            sent_tcp += 200

    pusher = threading.Thread(target=push_tcp, daemon=True)
    pusher.start()
    until(blocked.is_set, timeout=180)

    # HTTP is refused while held, and says when to come back.
    url = f"http://127.0.0.1:{deployment.ports['http']}/api/v1/ingest"
    headers = {"Authorization": f"Bearer {deployment.token}"}
    held = httpx.post(url, content=orjson.dumps(shadow_event(1)), headers=headers, timeout=30)
    assert held.status_code == 429 and int(held.headers["Retry-After"]) > 0
    assert peak_mib(deployment.process.pid) < MEMORY_CAP_MIB

    # The store is free again: detection catches up, the senders go on.
    lock.execute("ROLLBACK")
    lock.close()
    done.set()
    pusher.join(timeout=300)
    assert not pusher.is_alive(), collector_log(deployment)
    sock.shutdown(socket.SHUT_WR)
    sock.settimeout(300)
    while sock.recv(4096):  # closed by the collector once all it read is durable
        pass
    sock.close()
    accepted: list[int] = []
    deadline = time.monotonic() + 600
    while len(accepted) < 3:
        response = httpx.post(
            url, content=orjson.dumps(shadow_event(10 + len(accepted))), headers=headers, timeout=30
        )
        if response.status_code == 200:
            accepted.append(10 + len(accepted))
        else:
            assert response.status_code == 429
            assert time.monotonic() < deadline, collector_log(deployment)
            time.sleep(0.2)

    expected = {str(q) for q in range(0, sent_tcp, ALERTING)}

    def analysed() -> bool:
        alerts = stored(deployment.database_url)
        ssh = {
            re.search(r"crash(\d+)", orjson.dumps(a.body["event"]).decode())[1]
            for a in alerts
            if a.rule_title == SSH_RULE_TITLE
        }  # type: ignore[index]
        shadow = {
            a.body["event"]["EventRecordID"] for a in alerts if a.rule_title == SHADOW_RULE_TITLE
        }
        return ssh == expected and set(accepted) <= shadow

    until(analysed, timeout=600)
    assert sent_tcp > MAX_LAG
    assert peak_mib(deployment.process.pid) < MEMORY_CAP_MIB
