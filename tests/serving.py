"""Waiting for a server a test started as a subprocess: the crash tests kill it with SIGKILL
and start it again, and each start must wait until it answers, never a fixed sleep."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx


def wait_until_answering(
    process: subprocess.Popen[bytes], url: str, log: Path, *, timeout: float
) -> None:
    """Poll ``url`` until it answers 200; fail with the server's log if it dies or is late."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, f"{url} did not answer in {timeout:.0f} s"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)  # not listening yet: nothing to wait on but the port
