"""Child processes that do not outlive the process they work for."""

from __future__ import annotations

import ctypes
import os
import signal

#: ``prctl`` option: the signal sent to this process when its parent ends (Linux).
PR_SET_PDEATHSIG = 1


def end_with_parent(parent: int) -> None:
    """Be killed when ``parent`` (this process's parent) ends, rather than go on working for
    nobody. Linux only; elsewhere nothing is done."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it ended before the request was made
        os._exit(1)
