"""What every anomaly detector offers, so hunts and live monitoring run them the same way.

A detector learns and scores in one pass over batches of normalised events
(:class:`~qorgan.telemetry.batch.EventBatch`): each event is first scored against the baseline
learned so far, then learned. Its whole state is plain JSON (no pickles: state files are read
back on restart and must not be able to run code), kept on the organisation's own machine.

A detector that holds open work (sessions not yet ended) may also offer ``flush() ->
list[Finding]``: the suite calls it at the end of a hunt. Live monitoring never flushes: open
sessions end by their own timeouts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from qorgan.detection.anomaly.findings import Finding
from qorgan.telemetry.batch import EventBatch


class Detector(Protocol):
    #: The model's name and version, as findings and the model register show them.
    model: str
    version: str

    def observe(self, batch: EventBatch) -> list[Finding]:
        """Score then learn every event of ``batch``; the findings, in event order."""
        ...

    def absorb(self, finding: Mapping[str, Any]) -> None:
        """A person rejected ``finding`` (its :meth:`Finding.to_dict`): take what it reported
        into the baseline, so the same pattern is normal from now on."""
        ...

    def state(self) -> dict[str, Any]:
        """Everything learned, as JSON-serialisable data."""
        ...

    def load(self, state: Mapping[str, Any]) -> None:
        """Replace what was learned by ``state`` (from :meth:`state`, maybe of an older run)."""
        ...
