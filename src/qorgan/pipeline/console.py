"""Sending a hunt's alerts to a Qorgan console over its REST API (``qorgan hunt --to-console``).

Alerts go in batches to ``POST /api/v1/alerts`` with an API token (scope ``alerts:write``).
Ingestion is idempotent, so a batch whose answer was lost is simply sent again: a failed
request is retried with growing pauses before the hunt gives up with a clear error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from qorgan.core.errors import QorganError

BATCH = 1000
RETRIES = 4
TOKEN_VARIABLE = "QORGAN_API_TOKEN"


class ConsoleError(QorganError):
    """The console refused the alerts or could not be reached."""


@dataclass
class SendTotals:
    sent: int = 0
    created: int = 0
    duplicates: int = 0


class ConsoleSender:
    def __init__(self, url: str, token: str, *, batch: int = BATCH, timeout: float = 30.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConsoleError(f"the console URL must start with http:// or https://: {url!r}")
        if not token:
            raise ConsoleError(
                f"set {TOKEN_VARIABLE} to an API token with the alerts:write scope "
                "(issue one on the console's account page)",
                source=TOKEN_VARIABLE,
            )
        self.endpoint = url.rstrip("/") + "/api/v1/alerts"
        self.client = httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {token}"})
        self.batch = batch
        self.pending: list[dict[str, Any]] = []
        self.totals = SendTotals()

    def add(self, alerts: list[dict[str, Any]]) -> None:
        self.pending.extend(alerts)
        while len(self.pending) >= self.batch:
            self._send(self.pending[: self.batch])
            del self.pending[: self.batch]

    def close(self) -> SendTotals:
        try:
            if self.pending:
                self._send(self.pending)
                self.pending.clear()
        finally:
            self.client.close()
        return self.totals

    def _send(self, alerts: list[dict[str, Any]]) -> None:
        pause = 0.5
        for attempt in range(RETRIES + 1):
            try:
                response = self.client.post(self.endpoint, json=alerts)
            except httpx.HTTPError as exc:
                problem = f"cannot reach the console: {exc}"
            else:
                if response.status_code == 200:
                    result = response.json()
                    self.totals.sent += int(result["received"])
                    self.totals.created += int(result["created"])
                    self.totals.duplicates += int(result["duplicates"])
                    return
                problem = f"the console answered {response.status_code}: {response.text[:300]}"
                if response.status_code < 500 and response.status_code != 429:
                    raise ConsoleError(problem, source=self.endpoint)
            if attempt < RETRIES:
                time.sleep(pause)
                pause *= 2
        raise ConsoleError(problem + f" (after {RETRIES + 1} attempts)", source=self.endpoint)
