"""Throttling sign-in attempts per client address, in front of the per-account lockout.

The lockout stops guessing at one account; a sliding window per address stops one source from
trying a password against many accounts (spraying) or hammering a form that checks a second
factor (sign-in, enrolment, new recovery codes): every such attempt goes through
:func:`over_limit`, and all of them share one window per address. Kept in the serving process's
memory: enough for one console process; several processes each keep their own window
(documented).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import Request

#: Sign-in attempts (password or code) one address may make per window.
ATTEMPTS = 20
WINDOW_SECONDS = 300.0
#: Addresses remembered at most; the oldest are forgotten first.
MAX_ADDRESSES = 100_000


class Throttle:
    def __init__(
        self,
        attempts: int = ATTEMPTS,
        window: float = WINDOW_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.attempts = attempts
        self.window = window
        self.clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, address: str) -> bool:
        """Count an attempt from ``address``; False when it is over the limit (not counted)."""
        now = self.clock()
        with self._lock:
            times = self._seen.pop(address, None) or deque()
            while times and times[0] <= now - self.window:
                times.popleft()
            allowed = len(times) < self.attempts
            if allowed:
                times.append(now)
            self._seen[address] = times  # most recently used last
            while len(self._seen) > MAX_ADDRESSES:
                self._seen.pop(next(iter(self._seen)))
            return allowed

    def retry_after(self, address: str) -> int:
        """Seconds until ``address`` may try again."""
        with self._lock:
            times = self._seen.get(address)
            if not times:
                return 0
            return max(1, int(times[0] + self.window - self.clock()) + 1)


def over_limit(request: Request) -> int | None:
    """Count a sign-in attempt (a password or a second-factor code) from the request's client
    address; None when it may go on, else the seconds to wait (answer 429 with Retry-After).
    Refusals are counted in the sign-in metrics as ``throttled``."""
    address = request.client.host if request.client else "unknown"
    throttle: Throttle = request.app.state.qorgan.throttle
    if throttle.allow(address):
        return None
    request.app.state.metrics.logins.labels("throttled").inc()
    return throttle.retry_after(address)
