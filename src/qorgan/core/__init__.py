"""Shared foundations: errors, settings, time helpers. Imports nothing else of ours."""
