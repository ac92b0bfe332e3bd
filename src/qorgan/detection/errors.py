"""Errors of the detection package."""

from __future__ import annotations

from qorgan.core.errors import QorganError


class DetectionError(QorganError):
    """Base of detection errors."""


class RuleCompileError(DetectionError):
    """A rule that cannot be turned into a plan; carries the rule's file and id."""
