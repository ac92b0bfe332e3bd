"""Findings written out: one JSON document a line (``qorgan hunt --anomaly FILE``), each
carrying the AI label (:meth:`Finding.to_dict`)."""

from __future__ import annotations

from pathlib import Path

import orjson

from qorgan.detection.anomaly.findings import Finding


class FindingsWriter:
    """Appends findings to ``path`` (created or truncated when opened)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._out = path.open("wb")

    def write(self, findings: list[Finding]) -> None:
        for finding in findings:
            self._out.write(orjson.dumps(finding.to_dict()) + b"\n")
        self.count += len(findings)

    def close(self) -> None:
        self._out.close()
