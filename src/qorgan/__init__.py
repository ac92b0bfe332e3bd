"""Qorgan: a self-hosted cybersecurity operations platform."""

__version__ = "0.1.0"
