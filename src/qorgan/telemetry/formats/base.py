"""The interface every log format implements.

A format turns a byte stream into :class:`~qorgan.telemetry.batch.EventBatch` objects of at most
``batch_size`` events. To add one, subclass :class:`Format` in a module of this package named
after it, declare ``name``, ``description``, ``logsource`` and ``schema`` (the fields it emits,
with their meaning), implement ``sniff`` and ``read``, and list the class in
``formats/__init__.py``. A record that cannot be read goes to the quarantine with its reason
and the run goes on; ``read`` never raises for bad content.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import IO, ClassVar

from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.quarantine import Quarantine

DEFAULT_BATCH_SIZE = 20_000


class Format(ABC):
    """A log format: how to recognise it and how to read it into normalised events."""

    name: ClassVar[str]
    description: ClassVar[str]
    #: Tags applied to every batch (``product``/``service``/``category``), used for rule selection.
    logsource: ClassVar[dict[str, str]] = {}
    #: The fields this format emits: name -> meaning. Per-record fields not listed may appear too.
    schema: ClassVar[dict[str, str]]

    @classmethod
    @abstractmethod
    def sniff(cls, head: bytes, path: str) -> int:
        """How sure (0-100) we are that a file starting with ``head`` is in this format."""

    @abstractmethod
    def read(
        self,
        stream: IO[bytes],
        path: str,
        quarantine: Quarantine,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Iterator[EventBatch]:
        """Yield batches of events read from ``stream``; quarantine what cannot be read."""

    def new_batch(self, path: str, logsource: dict[str, str] | None = None) -> EventBatch:
        return EventBatch(path=path, format=self.name, logsource=dict(logsource or self.logsource))
