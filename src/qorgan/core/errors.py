"""The root of every error Qorgan raises on purpose.

Each package derives its own root from :class:`QorganError`, so the edges (CLI, web) can turn
any of them into a clean message without catching programming errors by accident.
"""

from __future__ import annotations


class QorganError(Exception):
    """An expected failure with a message fit for the user, and where it happened."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source

    def __str__(self) -> str:
        return f"{self.source}: {self.message}" if self.source else self.message
