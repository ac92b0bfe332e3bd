"""Nothing acknowledged is lost: ``qorgan collect`` is killed with SIGKILL at 20 random moments
while senders push events over TCP, RELP and HTTP; after the last restart every acknowledged
event has its alert, and no alert is stored twice.

What acknowledged means per protocol: HTTP, a 200 answer; RELP, the ``rsp 200`` of the frame's
transaction number; plain TCP, which has no acknowledgement of its own, the collector closing
its side after the sender ended its stream (it does so only once what it read is durable).
Senders reconnect after each kill and go on with new events; an event sent but not acknowledged
may or may not be analysed, but never twice. The kill moments come from a seeded generator, so a
failure is found again with the same schedule.
"""

from __future__ import annotations

import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest

from qorgan.incidents.models import StoredAlert
from qorgan.telemetry.receivers.framing import RelpDecoder, encode_relp

from .collect_process import Deployment, deploy, stored

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "logs"
KILLS = 20
SSH_RULE_TITLE = "SSH Password Authentication Failed"
SHADOW_RULE_TITLE = "Shadow Copies Deleted"


def ssh_line(seq: int) -> bytes:
    return (
        f"<38>Nov 30 10:00:00 gov-web-01 sshd[4242]: Failed password for invalid user "
        f"crash{seq} from 203.0.113.77 port 40000 ssh2"
    ).encode()


def shadow_event(seq: int) -> dict:
    event = orjson.loads((EXAMPLES / "windows-endpoint.jsonl").read_bytes().splitlines()[7])
    event["Event"]["System"]["EventRecordID"] = seq
    event["Event"]["EventData"]["ProcessId"] = seq
    return event


@dataclass
class Acks:
    """Sequence numbers sent and acknowledged, per protocol."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: set[int] = field(default_factory=set)
    acked: dict[str, set[int]] = field(
        default_factory=lambda: {"tcp": set(), "relp": set(), "http": set()}
    )

    def ack(self, kind: str, seqs: list[int]) -> None:
        with self.lock:
            self.acked[kind].update(seqs)


class Sender(threading.Thread):
    """Sends numbered batches until stopped, reconnecting after every failure."""

    def __init__(self, kind: str, port: int, acks: Acks, first: int, token: str = "") -> None:
        super().__init__(daemon=True, name=f"send-{kind}")
        self.kind, self.port, self.acks, self.token = kind, port, acks, token
        self.next = first
        self.stop = threading.Event()

    def batch(self, size: int) -> list[int]:
        seqs = list(range(self.next, self.next + size))
        self.next += size
        with self.acks.lock:
            self.acks.sent.update(seqs)
        return seqs

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                getattr(self, f"_{self.kind}")()
            except (OSError, httpx.HTTPError, ValueError):
                self.stop.wait(0.05)

    def _tcp(self) -> None:
        seqs = self.batch(20)
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(b"".join(ssh_line(q) + b"\n" for q in seqs))
            s.shutdown(socket.SHUT_WR)
            while s.recv(4096):  # the collector closes once the events are durable
                pass
        self.acks.ack("tcp", seqs)

    def _relp(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            decoder = RelpDecoder()
            s.sendall(
                encode_relp(1, "open", b"relp_version=0\nrelp_software=test\ncommands=syslog")
            )
            self._wait_rsp(s, decoder, {1})
            txnr = 2
            while not self.stop.is_set():
                window: dict[int, int] = {}
                for _ in range(10):
                    (seq,) = self.batch(1)
                    window[txnr] = seq
                    s.sendall(encode_relp(txnr, "syslog", ssh_line(seq)))
                    txnr += 1
                ok = self._wait_rsp(s, decoder, set(window))
                self.acks.ack("relp", [window[t] for t in ok])

    @staticmethod
    def _wait_rsp(s: socket.socket, decoder: RelpDecoder, txnrs: set[int]) -> set[int]:
        ok: set[int] = set()
        waiting = set(txnrs)
        while waiting:
            data = s.recv(65536)
            if not data:
                raise OSError("closed")
            for frame in decoder.feed(data):
                if frame.command == "rsp" and frame.txnr in waiting:
                    waiting.discard(frame.txnr)
                    if frame.data.startswith(b"200"):
                        ok.add(frame.txnr)
        return ok

    def _http(self) -> None:
        seqs = self.batch(25)
        body = b"\n".join(orjson.dumps(shadow_event(q)) for q in seqs)
        response = httpx.post(
            f"http://127.0.0.1:{self.port}/api/v1/ingest",
            content=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        if response.status_code == 200:
            self.acks.ack("http", seqs)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    found = deploy(tmp_path)
    yield found
    found.stop()


def sequence(alert: StoredAlert) -> tuple[str, int] | None:
    event = alert.body["event"]
    if alert.rule_title == SSH_RULE_TITLE:
        found = re.search(r"crash(\d+)", orjson.dumps(event).decode())
        return ("ssh", int(found[1])) if found else None
    if alert.rule_title == SHADOW_RULE_TITLE:
        return ("shadow", int(event["EventRecordID"]))
    return None


def test_every_acknowledged_event_is_analysed_once_across_kills(deployment: Deployment) -> None:
    schedule = random.Random(20261130)
    acks = Acks()
    deployment.start()
    senders = [
        Sender("tcp", deployment.ports["tcp"], acks, 1),
        Sender("relp", deployment.ports["relp"], acks, 1_000_000),
        Sender("http", deployment.ports["http"], acks, 2_000_000, deployment.token),
    ]
    for sender in senders:
        sender.start()
    for _ in range(KILLS):
        time.sleep(schedule.uniform(0.1, 1.2))
        deployment.kill()
        deployment.start()
    time.sleep(0.5)
    for sender in senders:
        sender.stop.set()
    for sender in senders:
        sender.join(timeout=30)

    expected = {
        ("shadow" if k == "http" else "ssh", q) for k, seqs in acks.acked.items() for q in seqs
    }
    assert all(len(v) > 20 for v in acks.acked.values()), {k: len(v) for k, v in acks.acked.items()}
    deadline = time.monotonic() + 180
    while True:
        alerts = stored(deployment.database_url)
        found = Counter(s for s in map(sequence, alerts) if s is not None)
        missing = expected - set(found)
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not missing, (
        f"{len(missing)} acknowledged events without an alert, e.g. {sorted(missing)[:5]}; "
        f"the collector's log ends: {deployment.log.read_text(errors='replace')[-4000:]}"
    )
    twice = {s: n for s, n in found.items() if n > 1}
    assert not twice, f"alerts stored more than once: {list(twice.items())[:5]}"
    fingerprints = Counter(a.fingerprint for a in alerts)
    assert max(fingerprints.values()) == 1
    # Unacknowledged events that did arrive are analysed too, once; nothing unknown appears.
    sent = {("shadow" if q >= 2_000_000 else "ssh", q) for q in acks.sent}
    assert set(found) <= sent
