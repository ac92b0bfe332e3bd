"""Incidents: the alert store (ingestion, triage, views) and, later, incidents built from alerts.

Imports nothing of ours but :mod:`qorgan.core`.
"""
