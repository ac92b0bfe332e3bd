"""Benchmark of live collection: syslog over TCP into the durable event log, through detection
to stored alerts, and the latency of an alert; each beside rsyslog taking the same stream.

    python bench/collect.py [--events 200000] [--runs 3] [--collect-events 50000]
                            [--connections 8] [--latency-seconds 60] [--marker-every 500]
                            [--parts abc] [--no-rsyslog] [--profile] [--keep]

The stream is built from the real syslog of ``../shared/data/loghub`` (``Linux/Linux_2k.log``
and ``OpenSSH/OpenSSH_2k.log``): each line is one of those 4,000 lines, picked at random, with
its host (400 names), process id, client addresses (20,000, Zipf-weighted like the attackers
of a brute force), ports, account names (the logs' own, weighted, and 2,000 more) and time
(increasing, with up to a second of jitter, Almaty time) drawn anew; hosts write RFC 3164 with
a BSD time, RFC 3164 with an RFC 3339 time (rsyslog's forwarding format) or RFC 5424. Lines are
spread over ``--connections`` TCP connections by host, half of them octet-counted (RFC 6587
3.4.1), half LF-terminated. A sender process sends them (as fast as it can, or paced) and
waits, after half-closing, for the receiver to close (for Qorgan: everything sent is durable).

1. **rsyslog** (``rsyslogd -n``, imtcp to omfile, no fsync): from the first byte sent until
   the file holds every line. The reference for what this machine can take. ``--runs`` runs,
   each followed by a run of (a), and the fastest of each kept.
2. **(a) intake alone**: the real ``Intake`` + ``SqliteBus`` + TCP listener in a process of
   their own (no detection, no housekeeping): until the receiver has closed every connection,
   each after its last messages were committed (``synchronous=FULL``); the log must then hold
   every line.
3. **(b) end to end**: ``--collect-events`` lines of the same kind (another seed) through
   ``qorgan collect`` (own SQLite database and var dir, source registered
   with ``qorgan sources create``, the built-in rules plus SigmaHQ's Linux rules with
   ``--rules``, the archive on as by default): until the detection consumer has committed the
   last offset (``positions`` in ``var/bus/log.db``).
4. **(c) latency**: half of (b)'s rate, paced in 10 ms steps, for ``--latency-seconds``, into
   the same running collector; every ``--marker-every``-th line (more often when that would
   make fewer than 200) is an sshd ``Failed password for invalid user latmark-NNNNNN`` (rule
   "SSH Password Authentication Failed"). Latency: the alert's ``received_at`` (and the moment
   this process, polling every 25 ms, first sees the row) minus the time the line was sent.
   Then rsyslog takes the same paced stream (collect stopped): the moment the line is in its
   file.

``--parts s`` (not by default) runs the real ``Detector`` in this process over
``--collect-events`` lines already in a log and times each stage with the thread's CPU clock
(no profiler): reading, rules, alert validation and storage, the offset commit.
``--profile`` runs (a)'s process and ``qorgan collect`` under py-spy (``pip install py-spy``)
and prints where each thread's samples go (for collect: over (b) and (c) together), with each
thread's CPU seconds. Figures go in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
LOGHUB = SHARED / "loghub"
TEMPLATES = (LOGHUB / "Linux" / "Linux_2k.log", LOGHUB / "OpenSSH" / "OpenSSH_2k.log")
SIGMA_LINUX = SHARED / "sigma" / "rules" / "linux"
OUT = ROOT / "bench" / "out"
BIN = Path(sys.executable).parent
SEED = 20261201
#: The senders' zone: Kazakhstan's single zone since March 2024 (sources say Asia/Almaty).
ALMATY = timezone(timedelta(hours=5))
MARKER = "latmark-"
MARKER_RULE = "SSH Password Authentication Failed"
#: Fewest markers (c) sends: with fewer lines, one line in fewer than --marker-every is one.
MIN_MARKERS = 200
TICK = os.sysconf("SC_CLK_TCK")

# --------------------------------------------------------------------------- the stream

LOGHUB_LINE = re.compile(
    r"""
    (?P<mon>[A-Z][a-z]{2})\x20+(?P<day>\d{1,2})\x20   # BSD date
    (?P<clock>\d{2}:\d{2}:\d{2})\x20                  # time
    (?P<host>\S+)\x20                                 # host (combo, LabSZ): replaced
    (?P<rest>.*)                                      # tag and message
    """,
    re.VERBOSE,
)
TAG = re.compile(
    r"""
    (?P<program>[^\s\[\]():]+)          # program
    (?:\((?P<sub>[^)\s]*)\))?           # old PAM style: sshd(pam_unix)
    (?:\[(?P<pid>\d+)\])?               # pid: replaced
    :(?:\x20|$)
    """,
    re.VERBOSE,
)
#: The parts of a message drawn anew per line.
SLOT = re.compile(
    r"""
    (?P<ip>(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?!\.?\d))       # an IPv4 address
  | (?<=port\x20)(?P<port>\d{1,5})\b                          # a client port
  | (?:(?<=Failed\x20password\x20for\x20)|(?<=Failed\x20none\x20for\x20)
      |(?<=Accepted\x20password\x20for\x20)|(?<=failures\x20for\x20))
      (?!invalid\x20)(?P<user>[^\s\[]+)                       # sshd's account name
  | (?<=[Ii]nvalid\x20user\x20)(?P<user2>[^\s\[]+)           # an account that does not exist
  | (?<=\x20user=)(?P<user3>\S+)                              # PAM's user=
  | (?<=for\x20user\x20)(?P<user4>[^\s\[]+)                  # session opened for user X
    """,
    re.VERBOSE,
)
FACILITY = {"sshd": 10, "su": 10, "login": 10, "gdm": 10, "klogind": 4, "ftpd": 11}
FACILITY.update({"kernel": 0, "crond": 9, "cron": 9, "logrotate": 3, "syslogd": 5})
HOST_ROLES = (
    "web", "api", "db", "mail", "vpn", "bastion", "ftp", "dns", "k8s-node", "ci", "backup",
    "ldap", "proxy", "mon", "app", "files",
)  # fmt: skip
SITES = ("ala", "ast", "shy", "krg", "akt", "atr", "pvl", "ukg", "kst", "tar")
FIRST = "abdeikmnorstuyz"
SURNAMES = (
    "nurlanov", "seitkali", "abenova", "tokayeva", "zhumabekov", "kassymov", "omarova",
    "bekturov", "akhmetova", "iskakov", "sarsenbayev", "mukanova", "dzhaksybekov", "ermekova",
    "baimukhamedov", "karimova", "utegenov", "suleimenova", "yessenov", "tulegenova",
    "amanov", "zhakupova", "ospanov", "rakhimova", "kenzhebekov", "aitkulova", "mussin",
    "daurenova", "serikbayev", "nurpeisova", "tleubayev", "kozhakhmetova", "alimov",
)  # fmt: skip


@dataclass
class Template:
    """One real line: its tag parts and its message cut at the slots drawn per line."""

    program: str | None
    sub: str | None
    has_pid: bool
    pieces: list[str]  # literal, slot, literal, slot, ..., literal
    slots: list[str]  # "ip0", "ip1", "port", "user"
    pri_base: int
    severity: int


def load_templates() -> list[Template]:
    out = []
    for path in TEMPLATES:
        for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
            m = LOGHUB_LINE.fullmatch(raw.rstrip("\r"))
            if m is None:
                continue
            rest = m["rest"]
            tag = TAG.match(rest)
            if tag is not None:
                program, sub, pid = tag["program"], tag["sub"], tag["pid"]
                message = rest[tag.end() :]
            else:
                program = sub = pid = None
                message = rest
            pieces, slots, addresses = [], [], {}
            last = 0
            for s in SLOT.finditer(message):
                pieces.append(message[last : s.start()])
                if s["ip"]:
                    slots.append(f"ip{addresses.setdefault(s['ip'], len(addresses))}")
                elif s["port"]:
                    slots.append("port")
                else:
                    slots.append("user")
                last = s.end()
            pieces.append(message[last:])
            lower = message.lower()
            severity = (
                3 if "error" in lower else 5 if ("fail" in lower or "invalid" in lower) else 6
            )
            out.append(
                Template(
                    program,
                    sub,
                    pid is not None,
                    pieces,
                    slots,
                    FACILITY.get(program or "", 3) * 8,
                    severity,
                )
            )
    return out


def template_users() -> list[str]:
    """Account names as the real logs give them (repeated as often as they occur there)."""
    names = []
    for path in TEMPLATES:
        for s in SLOT.finditer(path.read_text(encoding="utf-8", errors="replace")):
            name = s["user"] or s["user2"] or s["user3"] or s["user4"]
            if name:
                names.append(name)
    return names


@dataclass
class Host:
    name: str
    kind: str  # "bsd", "iso3164", "5424"
    connection: int
    sd: str  # RFC 5424 structured data


class Stream:
    """Draws lines (see the module doc); deterministic for a seed."""

    def __init__(self, connections: int, seed: int = SEED) -> None:
        self.rng = rng = random.Random(seed)
        self.templates = load_templates()
        self.connections = connections
        names = [f"{r}-{s}-{n:02d}" for r in HOST_ROLES for s in SITES for n in (1, 2, 3)]
        rng.shuffle(names)
        self.hosts = []
        for i, name in enumerate(names[:400]):
            kind = rng.choices(("bsd", "iso3164", "5424"), (45, 20, 35))[0]
            accuracy = rng.randrange(1000, 900000)
            quality = f'[timeQuality tzKnown="1" isSynced="1" syncAccuracy="{accuracy}"]'
            sd = quality if rng.random() < 0.3 else "-"
            self.hosts.append(Host(f"{name}.gov.kz" if i % 3 == 0 else name, kind, i, sd))
        for i, host in enumerate(self.hosts):
            host.connection = i % connections
        self.addresses = [
            f"{rng.choice((rng.randrange(1, 224), 45, 61, 91, 185, 218))}."
            f"{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            for _ in range(20_000)
        ]
        self.address_weights = list(itertools.accumulate(1 / (r + 1) for r in range(20_000)))
        real = template_users()
        made = [f"{rng.choice(FIRST)}.{s}" for s in SURNAMES for _ in range(60)]
        self.users = real + made
        # The logs' own names as often as they occur, and as much again for the 2,000 others.
        self.user_weights = list(
            itertools.accumulate([1.0] * len(real) + [len(real) / len(made)] * len(made))
        )
        self._clock: dict[int, tuple[str, str]] = {}
        self.marker_template = next(
            t
            for t in self.templates
            if t.program == "sshd" and t.pieces[0] == "Failed password for invalid user "
        )

    def address(self) -> str:
        x = self.rng.random() * self.address_weights[-1]
        return self.addresses[bisect.bisect(self.address_weights, x)]

    def user(self) -> str:
        x = self.rng.random() * self.user_weights[-1]
        return self.users[bisect.bisect(self.user_weights, x)]

    def clock(self, when: float) -> tuple[str, str]:
        """(BSD time, RFC 3339 time with microseconds) in Almaty time."""
        second = int(when)
        found = self._clock.get(second)
        if found is None:
            if len(self._clock) > 4096:
                self._clock.clear()
            moment = datetime.fromtimestamp(second, ALMATY)
            found = self._clock[second] = (
                f"{moment:%b} {moment.day:>2} {moment:%H:%M:%S}",
                f"{moment:%Y-%m-%dT%H:%M:%S}",
            )
        micro = int((when - second) * 1e6)
        return found[0], f"{found[1]}.{micro:06d}+05:00"

    def line(self, template: Template, host: Host, when: float, user: str | None = None) -> str:
        draw = self.rng.random
        values = []
        addresses: dict[str, str] = {}
        for slot in template.slots:
            if slot == "port":
                values.append(str(1024 + int(draw() * 64512)))
            elif slot == "user":
                values.append(user or self.user())
            else:
                found = addresses.get(slot)
                if found is None:
                    found = addresses[slot] = self.address()
                values.append(found)
        pieces = template.pieces
        message = pieces[0] + "".join(v + p for v, p in zip(values, pieces[1:], strict=True))
        pid = str(300 + int(draw() * 4_194_000)) if template.has_pid else None
        pri = template.pri_base + template.severity
        bsd, iso = self.clock(when)
        program = template.program
        if host.kind == "5424":
            app = program + (f"({template.sub})" if template.sub else "") if program else "-"
            return f"<{pri}>1 {iso} {host.name} {app} {pid or '-'} - {host.sd} {message}"
        if program is not None:
            tag = program + (f"({template.sub})" if template.sub else "")
            tag += f"[{pid}]: " if pid else ": "
        else:
            tag = ""
        stamp = bsd if host.kind == "bsd" else iso
        return f"<{pri}>{stamp} {host.name} {tag}{message}"

    def marker(self, sequence: int, host: Host, when: float) -> str:
        """An sshd ``Failed password for invalid user latmark-NNNNNN from ...`` line."""
        return self.line(self.marker_template, host, when, user=f"{MARKER}{sequence:06d}")


@dataclass
class Prepared:
    """A stream written per connection: framed data and the end offset of every line."""

    folder: Path
    lines: int
    wire_bytes: int
    message_bytes: int
    distinct: int
    framing: list[str]
    #: (connection, line index in it, marker sequence)
    markers: list[tuple[int, int, int]] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)

    def spec(self, port: int, rate: float) -> dict[str, object]:
        connections = []
        for c in range(len(self.framing)):
            connections.append(
                {
                    "data": str(self.folder / f"conn{c}.bin"),
                    "index": str(self.folder / f"conn{c}.idx"),
                    "markers": [[i, s] for cc, i, s in self.markers if cc == c],
                }
            )
        return {"port": port, "rate": rate, "lines": self.lines, "connections": connections}


def prepare(
    stream: Stream,
    folder: Path,
    events: int,
    *,
    start: float,
    rate: float,
    marker_every: int = 0,
) -> Prepared:
    """``events`` lines with times from ``start`` at ``rate`` a second (jittered), framed."""
    folder.mkdir(parents=True, exist_ok=True)
    draw = stream.rng.random
    hosts = stream.hosts
    count = stream.connections
    framing = ["octet" if c % 2 == 0 else "lf" for c in range(count)]
    buffers: list[list[bytes]] = [[] for _ in range(count)]
    ends = [array("Q") for _ in range(count)]
    sizes = [0] * count
    prepared = Prepared(folder, events, 0, 0, 0, framing)
    seen: set[int] = set()
    templates = stream.templates
    markers = 0
    for i in range(events):
        when = start + i / rate + 2 * draw() - 1  # up to a second early or late
        host = hosts[int(draw() * len(hosts))]
        if marker_every and i % marker_every == marker_every // 2:
            text = stream.marker(markers, host, when)
            c = host.connection
            prepared.markers.append((c, len(ends[c]), markers))
            markers += 1
        else:
            text = stream.line(templates[int(draw() * len(templates))], host, when)
        prepared.kinds[host.kind] += 1
        data = text.encode()
        seen.add(hash(data))
        c = host.connection
        framed = b"%d %b" % (len(data), data) if framing[c] == "octet" else data + b"\n"
        buffers[c].append(framed)
        sizes[c] += len(framed)
        ends[c].append(sizes[c])
        prepared.message_bytes += len(data)
    for c in range(count):
        (folder / f"conn{c}.bin").write_bytes(b"".join(buffers[c]))
        (folder / f"conn{c}.idx").write_bytes(ends[c].tobytes())
    prepared.wire_bytes = sum(sizes)
    prepared.distinct = len(seen)
    return prepared


# --------------------------------------------------------------------------- the sender

#: Runs as its own process: connects, says "ready", waits for a line on stdin, sends every
#: connection's data (at once, or paced at ``rate`` lines/s in 10 ms steps), half-closes,
#: reads until the receiver closes; prints a JSON report (wall times from time.time()).
SENDER = r"""
import json, resource, socket, sys, threading, time
from array import array

spec = json.loads(sys.argv[1])
rate = spec["rate"]
total = spec["lines"]
conns = []
for c in spec["connections"]:
    with open(c["data"], "rb") as fh:
        data = fh.read()
    ends = array("Q")
    with open(c["index"], "rb") as fh:
        ends.frombytes(fh.read())
    conns.append((data, ends, c["markers"]))
socks = []
for _ in conns:
    s = socket.create_connection(("127.0.0.1", spec["port"]))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    socks.append(s)
print("ready", flush=True)
sys.stdin.readline()
start = time.time()
reports = [None] * len(conns)

def run(i):
    sock, (data, ends, markers) = socks[i], conns[i]
    view = memoryview(data)
    report = {"lines": len(ends), "bytes": len(data), "marks": []}
    try:
        if not rate:
            step = 1 << 20
            for at in range(0, len(data), step):
                sock.sendall(view[at : at + step])
        else:
            share = rate * len(ends) / total
            sent = 0
            pending = list(markers)
            tick = 0
            while sent < len(ends):
                tick += 1
                due = min(len(ends), int(tick * 0.01 * share) + 1)
                wait = start + tick * 0.01 - time.time()
                if wait > 0:
                    time.sleep(wait)
                if due > sent:
                    now = time.time()
                    sock.sendall(view[ends[sent - 1] if sent else 0 : ends[due - 1]])
                    while pending and pending[0][0] < due:
                        report["marks"].append([pending.pop(0)[1], now])
                    sent = due
        report["sent"] = time.time()
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
        report["closed"] = time.time()
    except OSError as exc:
        report["error"] = f"{type(exc).__name__}: {exc}"
        report["closed"] = time.time()
    finally:
        sock.close()
    reports[i] = report

threads = [threading.Thread(target=run, args=(i,)) for i in range(len(conns))]
for t in threads:
    t.start()
for t in threads:
    t.join()
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"start": start, "connections": reports,
                  "cpu": usage.ru_utime + usage.ru_stime}), flush=True)
"""


class Sender:
    """The sender process, connected and waiting for :meth:`go`."""

    def __init__(self, prepared: Prepared, port: int, rate: float = 0.0) -> None:
        spec = json.dumps(prepared.spec(port, rate))
        self.process = subprocess.Popen(
            [sys.executable, "-c", SENDER, spec],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None and self.process.stdin is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.process.kill()
            raise RuntimeError(f"the sender did not connect: {line!r}")

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def report(self, timeout: float = 3600) -> dict[str, object]:
        assert self.process.stdout is not None
        out, _ = self.process.communicate(timeout=timeout)
        report = json.loads(out.strip().splitlines()[-1])
        errors = [c["error"] for c in report["connections"] if "error" in c]
        if errors:
            print(f"  sender: {len(errors)} connections failed, e.g. {errors[0]}", flush=True)
        return report


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) and of its living children (the
    collector's store processes) so far."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / TICK
    children = set()
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children.update(int(c) for c in listing.read_text().split())
        except OSError:
            continue
    return own + sum(cpu_seconds(child) for child in children)


def thread_cpu(pid: int) -> dict[int, float]:
    """User + system CPU of each thread of a process so far, by thread id."""
    out = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def cpu_since(pid: int, before: dict[int, float]) -> dict[int, float]:
    return {tid: cpu - before.get(tid, 0.0) for tid, cpu in thread_cpu(pid).items()}


def _spin(_: int) -> float:
    began = time.perf_counter()
    total = 0
    for i in range(5_000_000):
        total += i
    return time.perf_counter() - began


def core_scaling() -> str:
    """How much work two CPU-bound processes at once get done, against one alone: what the
    machine's cores give a collector whose detection and alert store run side by side."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_spin, [0, 0]))  # started and warm
        alone = min(pool.submit(_spin, 0).result() for _ in range(3))
        together = max(pool.map(_spin, [0, 0]))
    return f"two CPU-bound processes at once do {2 * alone / together:.2f}x the work of one"


def uptime() -> str:
    found = shutil.which("uptime")
    if found:
        return subprocess.run([found], capture_output=True, text=True, check=False).stdout.strip()
    return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def stop(process: subprocess.Popen[bytes] | subprocess.Popen[str], grace: float = 60) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def profiled(command: list[str], output: Path, py_spy: str | None) -> list[str]:
    if py_spy is None:
        return command
    return [
        py_spy, "record", "--threads", "--subprocesses", "--nonblocking", "--rate", "200",
        "--format", "raw", "--output", str(output), "--",
        *command,
    ]  # fmt: skip


@dataclass
class Result:
    name: str
    events: int
    wire_bytes: int
    seconds: float
    cpu: float | None = None
    load: float = 0.0
    note: str = ""
    #: CPU seconds of each thread of the receiving process over the run, by thread id.
    threads: dict[int, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


# --------------------------------------------------------------------------- rsyslog

RSYSLOG_CONF = """
global(workDirectory="{folder}" maxMessageSize="64k")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{port}")
if $inputname == "imtcp" then {{
    action(type="omfile" file="{folder}/messages.log")
}}
"""


class Rsyslog:
    """rsyslogd in the foreground with imtcp and one omfile action (nothing else loaded)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.file = folder / "messages.log"
        conf = folder / "rsyslog.conf"
        conf.write_text(RSYSLOG_CONF.format(folder=folder, port=self.port))
        self.process = subprocess.Popen(
            ["rsyslogd", "-n", "-f", str(conf), "-i", str(folder / "rsyslogd.pid")],
            stdout=subprocess.DEVNULL,
            stderr=(folder / "rsyslogd.log").open("wb"),
        )
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            if self.process.poll() is not None or time.monotonic() > deadline:
                stop(self.process)
                log = (folder / "rsyslogd.log").read_text(errors="replace")
                raise RuntimeError(f"rsyslogd did not start: {log[-2000:]}")
            time.sleep(0.05)

    def close(self) -> None:
        stop(self.process)


def rsyslog_throughput(prepared: Prepared, folder: Path) -> Result:
    """One run of rsyslog with a new output file."""
    rsyslog = Rsyslog(folder)
    try:
        sender = Sender(prepared, rsyslog.port)
        cpu = cpu_seconds(rsyslog.process.pid)
        sender.go()
        lines = 0
        seen = 0
        deadline = time.monotonic() + 3600
        while lines < prepared.lines and time.monotonic() < deadline:
            time.sleep(0.005)
            if not rsyslog.file.exists():
                continue
            with rsyslog.file.open("rb") as fh:
                fh.seek(seen)
                chunk = fh.read()
            seen += len(chunk)
            lines += chunk.count(b"\n")
        done = time.time()
        report = sender.report()
        used = cpu_seconds(rsyslog.process.pid) - cpu
    finally:
        rsyslog.close()
    return Result(
        "rsyslog imtcp -> omfile (no fsync)",
        lines,
        prepared.wire_bytes,
        done - report["start"],  # type: ignore[operator]
        used,
        os.getloadavg()[0],
    )


def rsyslog_latency(prepared: Prepared, folder: Path, rate: float) -> dict[int, float]:
    """Marker sequence -> seconds from sending to being seen in rsyslog's file."""
    rsyslog = Rsyslog(folder)
    seen_at: dict[int, float] = {}
    pattern = re.compile(rb"%b(\d{6})" % MARKER.encode())
    try:
        sender = Sender(prepared, rsyslog.port, rate)
        sender.go()
        offset = 0
        tail = b""
        lines = 0
        quiet_until = None
        while True:
            time.sleep(0.005)
            if rsyslog.file.exists():
                with rsyslog.file.open("rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
                now = time.time()
                offset += len(chunk)
                lines += chunk.count(b"\n")
                data = tail + chunk
                cut = data.rfind(b"\n") + 1
                for m in pattern.finditer(data, 0, cut):
                    seen_at.setdefault(int(m[1]), now)
                tail = data[cut:]
            if lines >= prepared.lines:
                break
            if sender.process.poll() is not None:
                quiet_until = quiet_until or time.monotonic() + 30
                if time.monotonic() > quiet_until:
                    break
        report = sender.report()
    finally:
        rsyslog.close()
    sent = {seq: at for c in report["connections"] for seq, at in c["marks"]}  # type: ignore[union-attr]
    return {seq: seen_at[seq] - at for seq, at in sent.items() if seq in seen_at}


# --------------------------------------------------------------------------- Qorgan


def qorgan(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [str(BIN / "qorgan"), *args], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"qorgan {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return proc.stdout.strip()


def deployment(folder: Path) -> dict[str, str]:
    """A migrated SQLite database with one organisation and one TCP syslog source (from
    127.0.0.0/8), made with the command line; the environment naming them."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "QORGAN_DATABASE_URL": f"sqlite:///{folder / 'qorgan.db'}",
        "QORGAN_VAR_DIR": str(folder / "var"),
        "QORGAN_CACHE_DIR": str(OUT / "collect-plans"),
    }
    qorgan(env, "db", "upgrade")
    org = qorgan(env, "org", "create", "Bench SOC", "--kind", "soc").splitlines()[-1]
    qorgan(
        env, "sources", "create", "--organisation", org, "--name", "relays",
        "--transport", "tcp", "--format", "syslog", "--sender", "127.0.0.0/8",
        "--timezone", "Asia/Almaty",
    )  # fmt: skip
    return env


#: (a): the real Intake, SqliteBus and TCP listener in a process of their own. Prints its
#: port, serves until stdin closes, then prints the log's end offset.
INTAKE_SERVER = r"""
import asyncio, json, sys
from pathlib import Path
from qorgan.core.db import make_engine, session_factory
from qorgan.core.settings import get_settings
from qorgan.pipeline.intake import Intake
from qorgan.pipeline.listeners import ListenerConfig, Receivers
from qorgan.pipeline.sources import Directory
from qorgan.pipeline.sqlite_bus import SqliteBus

engine = make_engine(get_settings())
directory = Directory(session_factory(engine))
directory.reload()
bus = SqliteBus(Path(sys.argv[1]))
intake = Intake(bus, directory)

async def main():
    receivers = await Receivers.start(intake, ListenerConfig(tcp=("127.0.0.1", 0)))
    print(receivers.ports["tcp"], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await receivers.close()

asyncio.run(main())
end = bus.end(0)
bus.close()
print(json.dumps({"end": end, "events": sum(intake.totals.events.values())}), flush=True)
"""


def intake_alone(prepared: Prepared, env: dict[str, str], bus: Path, py_spy: str | None) -> Result:
    """One run of (a) with a new event log at ``bus``, the database of ``env``."""
    command = profiled(
        [sys.executable, "-c", INTAKE_SERVER, str(bus)], OUT / "collect-profile-a.txt", py_spy
    )
    server = subprocess.Popen(
        command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None and server.stdin is not None
    try:
        line = server.stdout.readline()
        while line.startswith("py-spy>") or not line.strip():  # py-spy's own words
            line = server.stdout.readline()
        port = int(line)
        pid = server.pid if py_spy is None else child_pid(server.pid)
        sender = Sender(prepared, port)
        cpu, threads = cpu_seconds(pid), thread_cpu(pid)
        sender.go()
        report = sender.report()
        used, threads = cpu_seconds(pid) - cpu, cpu_since(pid, threads)
        load = os.getloadavg()[0]
        server.stdin.close()
        out = [x for x in server.stdout.read().splitlines() if x.startswith("{")]
        server.wait(120)
    finally:
        stop(server)
    stored = json.loads(out[-1])["end"]
    closed = max(c["closed"] for c in report["connections"])  # type: ignore[union-attr]
    note = "" if stored == prepared.lines else f"log holds {stored:,} of {prepared.lines:,}!"
    return Result(
        "(a) Qorgan intake (TCP -> SqliteBus, durable)",
        stored,
        prepared.wire_bytes,
        closed - report["start"],  # type: ignore[operator]
        used,
        load,
        note,
        threads,
    )


def child_pid(parent: int, timeout: float = 30) -> int:
    """The Python process py-spy started (its only child)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            children = []
        if children:
            return int(children[0])
        time.sleep(0.05)
    return parent


class Collect:
    """``qorgan collect`` on free loopback ports, ready (its /healthz answers)."""

    def __init__(self, folder: Path, py_spy: str | None) -> None:
        import httpx

        self.env = env = deployment(folder)
        self.folder = folder
        self.port = free_port()
        http = free_port()
        env.update(
            QORGAN_COLLECT_UDP="",
            QORGAN_COLLECT_RELP="",
            QORGAN_COLLECT_TCP=f"127.0.0.1:{self.port}",
            QORGAN_COLLECT_HTTP=f"127.0.0.1:{http}",
        )
        self.bus = folder / "var" / "bus" / "log.db"
        self.database = folder / "qorgan.db"
        command = [str(BIN / "qorgan"), "collect", "--rules", str(SIGMA_LINUX)]
        self.log = folder / "collect.log"
        began = time.monotonic()
        self.process = subprocess.Popen(
            profiled(command, OUT / "collect-profile-b.txt", py_spy),
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.pid = self.process.pid if py_spy is None else child_pid(self.process.pid)
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{http}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() - began > 600:
                self.close()
                raise RuntimeError(f"qorgan collect did not start: {self.tail()}")
            time.sleep(0.1)
        self.started = time.monotonic() - began

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def position(self, consumer: str) -> int:
        connection = sqlite3.connect(self.bus, timeout=30)
        try:
            row = connection.execute(
                "SELECT offset FROM positions WHERE consumer = ? AND partition = 0", (consumer,)
            ).fetchone()
        finally:
            connection.close()
        return int(row[0]) if row else 0

    def wait_for(self, consumer: str, offset: int, timeout: float) -> float | None:
        """The time (time.time()) ``consumer`` had committed ``offset``; None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.position(consumer) >= offset:
                return time.time()
            if self.process.poll() is not None:
                raise RuntimeError(f"qorgan collect ended: {self.tail()}")
            time.sleep(0.02)
        return None

    def alerts(self) -> tuple[int, Counter[str]]:
        rules = self.count_alerts(self.database)
        return sum(rules.values()), rules

    @staticmethod
    def count_alerts(database: Path) -> Counter[str]:
        """Stored alerts by rule title."""
        connection = sqlite3.connect(database, timeout=30)
        try:
            rows = connection.execute(
                "SELECT rule_title, count(*) FROM alerts GROUP BY rule_title"
            ).fetchall()
        finally:
            connection.close()
        return Counter(dict(rows))

    def close(self) -> None:
        if self.pid != self.process.pid and self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)  # under py-spy: stop collect, py-spy then writes
            self.process.wait(180)
        stop(self.process, grace=120)


def end_to_end(collect: Collect, prepared: Prepared) -> tuple[Result, Result, dict[str, object]]:
    sender = Sender(prepared, collect.port)
    cpu, threads = cpu_seconds(collect.pid), thread_cpu(collect.pid)
    sender.go()
    report = sender.report()
    start = report["start"]
    closed = max(c["closed"] for c in report["connections"])  # type: ignore[union-attr]
    done = collect.wait_for("detection", prepared.lines, 3600)
    load = os.getloadavg()[0]
    used, threads = cpu_seconds(collect.pid) - cpu, cpu_since(collect.pid, threads)
    if done is None:
        raise RuntimeError("detection did not finish within an hour")
    # The archive writes a file once 60 s have passed since the first message it holds.
    archived = collect.wait_for("archive", prepared.lines, 75)
    alerts, rules = collect.alerts()
    extra: dict[str, object] = {
        "alerts": alerts,
        "rules": rules,
        "archive": None if archived is None else archived - start,  # type: ignore[operator]
        "sender_cpu": report["cpu"],
    }
    intake = Result(
        "(b) qorgan collect: intake durable",
        prepared.lines,
        prepared.wire_bytes,
        closed - start,  # type: ignore[operator]
        None,
        load,
    )
    detection = Result(
        "(b) qorgan collect: detection committed",
        prepared.lines,
        prepared.wire_bytes,
        done - start,  # type: ignore[operator]
        used,
        load,
        f"{alerts:,} alerts",
        threads,
    )
    return intake, detection, extra


def latency(collect: Collect, prepared: Prepared, rate: float) -> tuple[dict, dict, str]:
    """Marker -> (received_at - sent, first seen - sent), for the markers found; and a line
    on the collector meanwhile (CPU, detection's backlog when sending ended, latency by
    quarter of the run: a backlog that grows shows as a rising median)."""
    sender = Sender(prepared, collect.port, rate)
    connection = sqlite3.connect(collect.database, timeout=30)
    seen: dict[int, tuple[str, float]] = {}
    expected = len(prepared.markers)
    start = collect.position("detection")
    cpu = cpu_seconds(collect.pid)
    sender.go()
    finished = None
    backlog = 0
    try:
        while len(seen) < expected:
            time.sleep(0.025)
            rows = connection.execute(
                "SELECT user_name, received_at FROM alerts WHERE user_name >= ? AND "
                "user_name < ? AND rule_title = ?",
                (MARKER, MARKER[:-1] + ".", MARKER_RULE),
            ).fetchall()
            now = time.time()
            for user, received in rows:
                seen.setdefault(int(user[len(MARKER) :]), (received, now))
            if finished is None and sender.process.poll() is not None:
                finished = time.monotonic()
                backlog = start + prepared.lines - collect.position("detection")
            if finished is not None and time.monotonic() - finished > 60:
                break
        report = sender.report()
        used = cpu_seconds(collect.pid) - cpu
    finally:
        connection.close()
    sent = {seq: at for c in report["connections"] for seq, at in c["marks"]}  # type: ignore[union-attr]
    stamped, visible = {}, {}
    for seq, (received, now) in seen.items():
        if seq not in sent:
            continue
        moment = datetime.fromisoformat(received)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        stamped[seq] = moment.timestamp() - sent[seq]
        visible[seq] = now - sent[seq]
    order = sorted(stamped)
    quarters = [order[i * len(order) // 4 : (i + 1) * len(order) // 4] for i in range(4)]
    medians = ", ".join(
        f"{percentile([stamped[q] * 1000 for q in part], 50):,.0f}" for part in quarters if part
    )
    note = (
        f"collect used {used:.1f} CPU s; detection backlog when sending ended: {backlog:,} "
        f"lines; p50 received_at - sent by quarter of the run: {medians} ms"
    )
    return stamped, visible, note


# --------------------------------------------------------------------------- the rules


def rule_count() -> tuple[int, int, int, list[str]]:
    """(built-in rules, SigmaHQ Linux rule files, compiled in all, failures) as collect
    compiles them."""
    from qorgan.detection.loader import BUILTIN_RULES, load_plan, rule_files
    from qorgan.detection.logsources import LogsourceMap

    plan = load_plan(
        [BUILTIN_RULES, SIGMA_LINUX],
        logsources=LogsourceMap.load(),
        cache_dir=OUT / "collect-plans",
    )
    builtin = len(list(rule_files([BUILTIN_RULES])))
    sigma = len(list(rule_files([SIGMA_LINUX])))
    failures = [str(f) for f in plan.failures]
    return builtin, sigma, len(plan.rules), failures


# --------------------------------------------------------------------------- the stages

#: (module, attribute, label) of what ``--parts s`` times in the detection thread.
STAGES = (
    ("qorgan.pipeline.detector", "parse", "read: syslog reader"),
    ("qorgan.detection.hunt", "Hunter.batch", "rules and correlations"),
    ("qorgan.pipeline.detector", "stored_bodies", "alerts: bodies (checked)"),
    ("qorgan.pipeline.alerting", "AlertIn.model_validate", "  bodies: through AlertIn"),
    ("qorgan.pipeline.detector", "store", "alerts: store (whole)"),
    ("qorgan.incidents.alerts", "fingerprint", "  ingest: fingerprint"),
    ("qorgan.incidents.alerts", "observables", "  ingest: observables"),
    ("qorgan.incidents.alerts", "search_text", "  ingest: search_text"),
    ("qorgan.incidents.alerts", "_SqliteWriter.stored", "  ingest: SELECT stored"),
    ("qorgan.incidents.alerts", "_SqliteWriter.insert", "  ingest: INSERT"),
    ("qorgan.pipeline.detector", "Detector._state", "offset: pickle correlation state"),
    ("qorgan.pipeline.sqlite_bus", "SqliteBus.commit", "offset: commit"),
)


def detection_stages(events: int, work: Path) -> None:
    """The real :class:`Detector` in this process over ``events`` lines already in the log,
    each stage's own thread CPU timed (no profiler): where detection's time goes."""
    import functools
    import importlib
    import inspect

    from qorgan.core.db import make_engine, session_factory
    from qorgan.core.settings import get_settings
    from qorgan.detection.loader import BUILTIN_RULES, load_plan
    from qorgan.detection.logsources import LogsourceMap
    from qorgan.pipeline import detector
    from qorgan.pipeline.bus import Entry
    from qorgan.pipeline.sources import Directory
    from qorgan.pipeline.sqlite_bus import SqliteBus
    from qorgan.telemetry.receivers import Peer

    env = deployment(work / "stages")
    engine = make_engine(get_settings(database_url=env["QORGAN_DATABASE_URL"]))
    factory = session_factory(engine)
    directory = Directory(factory)
    directory.reload()
    source = directory.match(Peer("tcp", "127.0.0.1"))
    assert source is not None
    stream = Stream(1, seed=SEED + 2)
    bus = SqliteBus(work / "stages" / "var" / "bus" / "log.db")
    lines = []
    for i in range(events):
        host = stream.hosts[int(stream.rng.random() * len(stream.hosts))]
        template = stream.templates[int(stream.rng.random() * len(stream.templates))]
        lines.append(stream.line(template, host, time.time() + i / 10_000).encode())
    for at in range(0, events, 200):  # entries as TCP reads make them
        bus.append([Entry(source.id, source.organisation_id, time.time(), lines[at : at + 200])])
    plan = load_plan(
        [BUILTIN_RULES, SIGMA_LINUX],
        logsources=LogsourceMap.load(),
        cache_dir=OUT / "collect-plans",
    )
    spent: Counter[str] = Counter()

    def timed(label: str, fn: object) -> object:
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)  # type: ignore[arg-type]
            def generator(*args: object, **kwargs: object) -> object:
                it = fn(*args, **kwargs)  # type: ignore[operator]
                while True:
                    began = time.thread_time()
                    try:
                        item = next(it)
                    except StopIteration:
                        spent[label] += time.thread_time() - began
                        return
                    spent[label] += time.thread_time() - began
                    yield item

            return generator

        @functools.wraps(fn)  # type: ignore[arg-type]
        def call(*args: object, **kwargs: object) -> object:
            began = time.thread_time()
            try:
                return fn(*args, **kwargs)  # type: ignore[operator]
            finally:
                spent[label] += time.thread_time() - began

        return call

    saved = []
    for module_name, attribute, label in STAGES:
        owner: object = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, timed(label, getattr(owner, name)))
    try:
        consumer = detector.Detector(
            bus, 0, plan=lambda: plan, factory=factory, directory=directory
        )
        consumer.start()
        began = time.thread_time()
        while consumer.offset < events:
            consumer.step()
        cpu = time.thread_time() - began
        state = consumer._state()
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)
        bus.close()
        engine.dispose()
    alerts = sum(n for n in Collect.count_alerts(work / "stages" / "qorgan.db").values())
    print(
        f"detection in process: {events:,} events, {alerts:,} alerts, {len(plan.rules)} rules; "
        f"detection thread CPU {cpu:.2f} s = {cpu / events * 1e6:.0f} us/event "
        f"({events / cpu:,.0f} events per CPU-s); correlation state {len(state) / 1e6:.1f} MB"
    )
    rows = []
    for _, _, label in STAGES:
        per_alert = f"{spent[label] / alerts * 1e6:.0f}" if alerts else "-"
        share = f"{spent[label] / cpu:.0%}"
        rows.append(
            (label, f"{spent[label]:.2f}", share, f"{spent[label] / events * 1e6:.0f}", per_alert)
        )
    print(table(("stage", "CPU s", "share", "us/event", "us/alert"), rows))


# --------------------------------------------------------------------------- the profile


#: Frames of start-up (imports, compiling the rules), left out of the summary.
STARTUP = ("_find_and_load", "load_plan")


def summarise_profile(path: Path, cpu: dict[int, float], top: int = 12) -> None:
    """Samples per thread, and per thread the functions with most samples (self and total),
    from py-spy's raw output (``thread;frame;frame... count``), start-up left out; ``cpu``:
    the CPU seconds each thread (by id) used while measured."""
    if not path.exists():
        print(f"  (no profile at {path})")
        return
    threads: Counter[str] = Counter()
    own: dict[str, Counter[str]] = defaultdict(Counter)
    total: dict[str, Counter[str]] = defaultdict(Counter)
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        owner = ""  # with --subprocesses, each stack starts with its processes
        while frames and frames[0].startswith("process "):
            owner = frames.pop(0)
        if not frames:
            continue
        thread, frames = frames[0], frames[1:]
        if "store_process" in owner:
            thread = f"store process, {thread}"
        if any(f.startswith(STARTUP) for f in frames):
            continue
        n = int(count)
        threads[thread] += n
        if frames:
            own[thread][_short(frames[-1])] += n
            for name in {_short(f) for f in frames}:
                total[thread][name] += n
    grand = sum(threads.values())
    print(
        f"  profile {path.name}: {grand:,} samples of runnable Python threads (start-up left "
        f"out); CPU of the measured run {sum(cpu.values()):.1f} s"
    )
    for thread, n in threads.most_common():
        if n < grand * 0.02:
            continue
        tid = re.search(r"\((\d+)\)", thread)
        used = cpu.get(int(tid[1]), 0.0) if tid else 0.0
        print(f"  -- {thread}: {n:,} samples ({n / grand:.0%}), {used:.1f} CPU s")
        print(
            "     self:  " + "; ".join(f"{f} {c / n:.0%}" for f, c in own[thread].most_common(top))
        )
        print(
            "     total: "
            + "; ".join(f"{f} {c / n:.0%}" for f, c in total[thread].most_common(top + 8))
        )


def _short(frame: str) -> str:
    """``function (path/to/module.py:12)`` -> ``function (module.py)``."""
    name, _, where = frame.partition(" (")
    module = where.rsplit("/", 1)[-1].split(":", 1)[0]
    return f"{name} ({module})" if module else name


# --------------------------------------------------------------------------- output


def percentile(values: list[float], p: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(head, widths, strict=True))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(lines)


def best(runs: list[Result]) -> Result:
    """The fastest run, noting every run's rate."""
    fastest = max(runs, key=lambda r: r.rate)
    if len(runs) > 1:
        rates = ", ".join(f"{r.rate:,.0f}" for r in runs)
        fastest.note = f"best of {len(runs)}: {rates} ev/s {fastest.note}".strip()
    return fastest


def throughput_rows(results: list[Result]) -> list[tuple[str, ...]]:
    rows = []
    for r in results:
        rows.append(
            (
                r.name,
                f"{r.events:,}",
                f"{r.seconds:.2f}",
                f"{r.rate:,.0f}",
                f"{r.wire_bytes / r.seconds / 1e6:.1f}",
                f"{r.cpu:.1f}" if r.cpu is not None else "-",
                f"{r.events / r.cpu:,.0f}" if r.cpu else "-",
                f"{r.load:.1f}",
                r.note,
            )
        )
    return rows


def latency_row(name: str, rate: float, values: dict[int, float], expected: int) -> tuple[str, ...]:
    ms = [v * 1000 for v in values.values()]
    return (
        name,
        f"{rate:,.0f}",
        f"{len(ms)} / {expected}",
        *(f"{percentile(ms, p):,.0f}" for p in (50, 95, 99, 100)),
    )


def describe(prepared: Prepared, seconds: float) -> str:
    n = prepared.lines
    kinds = ", ".join(f"{k} {v / n:.0%}" for k, v in sorted(prepared.kinds.items()))
    octet = prepared.framing.count("octet")
    return (
        f"input: {n:,} syslog lines ({prepared.distinct:,} distinct) drawn from the 4,000 "
        f"lines of loghub Linux_2k + OpenSSH_2k; 400 hosts ({kinds}); "
        f"{len(prepared.framing)} connections ({octet} octet-counted, "
        f"{len(prepared.framing) - octet} LF); {prepared.message_bytes / 1e6:.1f} MB of "
        f"messages (mean {prepared.message_bytes / n:.0f} B), {prepared.wire_bytes / 1e6:.1f} MB "
        f"framed; built in {seconds:.1f} s"
    )


# --------------------------------------------------------------------------- main


def run_b(collect: Collect, events: int, connections: int, work: Path) -> list[Result]:
    began = time.perf_counter()
    stream = prepare(
        Stream(connections, seed=SEED + 2),
        work / "stream-b",
        events,
        start=time.time(),
        rate=10_000,
    )
    print("  " + describe(stream, time.perf_counter() - began), flush=True)
    intake, detection, extra = end_to_end(collect, stream)
    for row in throughput_rows([intake, detection]):
        print("  " + " ".join(row), flush=True)
    archive = extra["archive"]
    rules: Counter[str] = extra["rules"]  # type: ignore[assignment]
    print(
        "  archive consumer done after "
        + (f"{archive:.1f} s" if archive is not None else "more than 75 s after detection")
        + f"; sender CPU {extra['sender_cpu']:.1f} s; alerts by rule: "
        + ", ".join(f"{title} {n:,}" for title, n in rules.most_common()),
        flush=True,
    )
    return [intake, detection]


def run_c(
    collect: Collect, rate: float, args: argparse.Namespace, work: Path
) -> tuple[Prepared, list[tuple[str, ...]]]:
    events = max(args.marker_every, int(rate * args.latency_seconds))
    every = args.marker_every
    if events // every < MIN_MARKERS:  # a slow run: more markers, for a p99 worth the name
        every = max(10, events // MIN_MARKERS)
    paced = prepare(
        Stream(args.connections, seed=SEED + 1),
        work / "paced",
        events,
        start=time.time() + 5,
        rate=rate,
        marker_every=every,
    )
    print(
        f"(c) latency: {events:,} lines at {rate:,.0f}/s, {len(paced.markers)} markers "
        f"(one in {every:,}) ...",
        flush=True,
    )
    stamped, visible, note = latency(collect, paced, rate)
    expected = len(paced.markers)
    rows = [
        latency_row("Qorgan: alert received_at - sent", rate, stamped, expected),
        latency_row("Qorgan: alert row visible - sent", rate, visible, expected),
    ]
    for row in rows:
        print("  " + " ".join(row), flush=True)
    print("  " + note, flush=True)
    return paced, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="lines for rsyslog and (a)")
    parser.add_argument("--collect-events", type=int, default=50_000, help="lines for (b)")
    parser.add_argument("--runs", type=int, default=3, help="runs of rsyslog and (a), best kept")
    parser.add_argument("--connections", type=int, default=8, help="TCP connections")
    parser.add_argument("--latency-seconds", type=float, default=60.0)
    parser.add_argument("--latency-rate", type=float, help="(c)'s lines/s (default: half of b)")
    parser.add_argument("--marker-every", type=int, default=500, help="(c): one marker in N")
    parser.add_argument(
        "--parts", default="abc", help="which of a, b, c to run; s: detection's stages"
    )
    parser.add_argument("--no-rsyslog", action="store_true")
    parser.add_argument("--profile", action="store_true", help="run (a) and (b) under py-spy")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    if min(args.events, args.collect_events, args.connections, args.runs) < 1:
        parser.error("--events, --collect-events, --connections and --runs: at least 1")
    if args.marker_every < 2:
        parser.error("--marker-every: at least 2")
    if "c" in args.parts and "b" not in args.parts and not args.latency_rate:
        parser.error("(c) without (b) needs --latency-rate")
    py_spy = None
    if args.profile:
        py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(BIN))
        if py_spy is None:
            parser.error("--profile needs py-spy on PATH (pip install py-spy)")
    rsyslog = not args.no_rsyslog and shutil.which("rsyslogd") is not None
    if not args.no_rsyslog and not rsyslog:
        print("rsyslogd not found: the rsyslog reference is skipped (apt-get install rsyslog)")
    if not all(p.exists() for p in TEMPLATES):
        print(f"corpus absent: {TEMPLATES}", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="qorgan-bench-collect-"))
    print(f"before: {uptime()}", flush=True)
    print(f"{os.cpu_count()} cores ({core_scaling()}); work folder {work}", flush=True)

    results: list[Result] = []
    latencies: list[tuple[str, ...]] = []
    try:
        if "a" in args.parts:
            began = time.perf_counter()
            prepared = prepare(
                Stream(args.connections), work / "stream", args.events, start=time.time(),
                rate=10_000,
            )  # fmt: skip
            print(describe(prepared, time.perf_counter() - began), flush=True)
            env = deployment(work / "intake")
            runs: dict[str, list[Result]] = defaultdict(list)
            for run in range(1 if py_spy else args.runs):
                if rsyslog:
                    print(f"rsyslog, run {run + 1} ...", flush=True)
                    runs["rsyslog"].append(rsyslog_throughput(prepared, work / f"rsyslog{run}"))
                    print("  " + " ".join(throughput_rows(runs["rsyslog"][-1:])[0]), flush=True)
                print(f"(a) intake alone, run {run + 1} ...", flush=True)
                bus = work / "intake" / "var" / f"bus{run}" / "log.db"
                runs["a"].append(intake_alone(prepared, env, bus, py_spy))
                print("  " + " ".join(throughput_rows(runs["a"][-1:])[0]), flush=True)
            for found in runs.values():
                results.append(best(found))
            if py_spy:
                summarise_profile(OUT / "collect-profile-a.txt", results[-1].threads)
        if "b" in args.parts or "c" in args.parts:
            builtin, sigma, compiled, failures = rule_count()
            print(
                f"rules: built-in pack ({builtin} files) + SigmaHQ linux ({sigma} files): "
                f"{compiled} rules compiled, {len(failures)} failed"
                + (f", e.g. {failures[0]}" if failures else ""),
                flush=True,
            )
            collect = Collect(work / "collect", py_spy)
            print(f"qorgan collect ready in {collect.started:.1f} s", flush=True)
            paced = None
            threads = thread_cpu(collect.pid)
            try:
                rate = args.latency_rate
                if "b" in args.parts:
                    print("(b) end to end ...", flush=True)
                    results += run_b(collect, args.collect_events, args.connections, work)
                    rate = rate or results[-1].rate / 2
                if "c" in args.parts:
                    paced, rows = run_c(collect, rate, args, work)
                    latencies += rows
            finally:
                threads = cpu_since(collect.pid, threads)
                collect.close()
            if py_spy:
                summarise_profile(OUT / "collect-profile-b.txt", threads)
            if paced is not None and rsyslog:
                seen = rsyslog_latency(paced, work / "rsyslog-paced", rate)
                latencies.append(
                    latency_row("rsyslog: line in file - sent", rate, seen, len(paced.markers))
                )
                print("  " + " ".join(latencies[-1]), flush=True)
        if "s" in args.parts:
            print("(s) detection stages, in process ...", flush=True)
            detection_stages(args.collect_events, work)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"after: {uptime()}")
    print(
        f"\nLines sent from another process over {args.connections} loopback TCP connections; "
        "rate = lines / (end - first byte sent); MB = framed bytes sent; CPU = the receiving "
        "process's (all its threads) over the same time"
    )
    head = (
        "receiver", "events", "seconds", "events/s", "MB/s", "CPU s", "events/CPU-s",
        "load", "note",
    )  # fmt: skip
    if results:
        print(table(head, throughput_rows(results)))
    if latencies:
        print()
        head = ("latency (ms)", "lines/s", "markers", "p50", "p95", "p99", "max")
        print(table(head, latencies))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
