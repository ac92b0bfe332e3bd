"""Anomaly detection: templates of text logs, detectors with their own explanations, and the
findings they produce.

Pure: no web or database imports. Findings are only proposals: a person confirms or rejects
each one (``incidents.findings``), as Kazakhstan's Law on Artificial Intelligence requires.
"""
