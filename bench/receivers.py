"""Throughput of the syslog TCP receiver alone, into an intake that only counts.

    python bench/receivers.py [--lines 500000] [--framing lf|octet] [--sender python|logger]

The receiver (``SyslogStreamListener`` on 127.0.0.1, default limits) runs in this process; the
intake's ``write`` adds the number of messages and returns, so what is timed is reading,
framing and handing over. The sender is another process, so it does not share this one's CPU
time: ``python`` writes the whole stream (prebuilt, 96-octet RFC 3164 lines) with ``sendall``
then half-closes and waits for our close; ``logger`` is util-linux's ``logger --tcp -f FILE``,
one message per line read. Timed: from the sender's start until the intake has counted every
line. Figures depend on the machine and its load (the load average is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from qorgan.telemetry.receivers import Peer
from qorgan.telemetry.receivers.syslog import SyslogStreamListener

LINE = b"<38>Nov 30 08:00:00 web-01 sshd[12345]: Accepted publickey for deploy from 10.1.2.%03d"

SENDER = """
import socket, sys
data = sys.stdin.buffer.read()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(data)
s.shutdown(socket.SHUT_WR)
s.recv(1)
"""


class CountingIntake:
    def __init__(self, expected: int) -> None:
        self.count = 0
        self.expected = expected
        self.done = threading.Event()

    def admit(self, peer: Peer) -> object:
        return "bench"

    async def ready(self, source: object) -> None:
        return None

    async def write(self, source: object, messages: list[bytes], peer: Peer) -> None:
        self.count += len(messages)
        if self.count >= self.expected:
            self.done.set()

    def offer(self, source: object, messages: list[bytes], peer: Peer) -> None:
        self.count += len(messages)

    def malformed(self, source: object | None, peer: Peer, reason: str, sample: bytes) -> None:
        print("malformed:", reason, file=sys.stderr)


def stream(lines: int, framing: str) -> bytes:
    out = bytearray()
    for i in range(lines):
        line = LINE % (i % 1000) + b" port %05d ssh2" % (i % 65536)
        out += b"%d %s" % (len(line), line) if framing == "octet" else line + b"\n"
    return bytes(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=500_000)
    parser.add_argument("--framing", choices=["lf", "octet"], default="lf")
    parser.add_argument("--sender", choices=["python", "logger"], default="python")
    args = parser.parse_args()

    intake = CountingIntake(args.lines)
    loop = asyncio.new_event_loop()
    listener = SyslogStreamListener(intake, "127.0.0.1", 0)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port = asyncio.run_coroutine_threadsafe(listener.start(), loop).result()
    data = stream(args.lines, args.framing)
    with tempfile.TemporaryDirectory() as folder:
        if args.sender == "logger":
            logger = shutil.which("logger")
            if logger is None:
                sys.exit("logger (util-linux) is not installed")
            lines = Path(folder) / "lines.txt"
            # logger adds its own header: give it bare messages, one per line.
            plain = stream(args.lines, "lf").splitlines()
            lines.write_bytes(b"\n".join(m.split(b": ", 1)[1] for m in plain) + b"\n")
            octet = ["--octet-count"] if args.framing == "octet" else []
            command = [logger, "--tcp", *octet, "-n", "127.0.0.1", "-P", str(port)]
            command += ["-t", "sshd", "-f", str(lines)]
            stdin = None
        else:
            command = [sys.executable, "-c", SENDER, str(port)]
            stdin = data
        cpu_before = time.process_time()
        start = time.perf_counter()
        subprocess.run(command, input=stdin, check=True)
        if not intake.done.wait(600):
            sys.exit(f"only {intake.count} of {args.lines} messages arrived")
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_before
    asyncio.run_coroutine_threadsafe(listener.stop(), loop).result()
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    print(
        f"{args.lines:,} lines ({args.framing}, sender {args.sender}): "
        f"{elapsed:.2f} s, {args.lines / elapsed:,.0f} messages/s, "
        f"receiver CPU {cpu:.2f} s; load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
