"""Fixtures shared by the alert store's tests: two organisations and their analysts."""

from __future__ import annotations

from .test_alert_store import world  # noqa: F401 - a fixture, found by pytest by name
