"""What the template detectors read from one event of a batch: its source, its time, the text
to mine and the people it names.

Kept apart so every template detector keys its baselines the same way: a finding of the rarity
detector and one of the frequency detector about the same log name the same source.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from qorgan.detection.anomaly.drain import TemplateMatch, TemplateMiner
from qorgan.detection.anomaly.logtext import event_text
from qorgan.telemetry.batch import EventBatch

#: Fields that name a person (syslog's ``user``, Windows' ``User`` and ``TargetUserName``...).
#: An objection by that person removes them from the models, so findings must list them.
IDENTIFIER_FIELDS = ("user", "User", "TargetUserName", "SubjectUserName", "target_user")
#: Values that name no one.
_NO_ONE = frozenset({"", "-", "unknown", "(unknown)", "n/a", "null", "none"})


#: Formats whose events are free text (a message, a request line): what templates are mined
#: from. Events of the others (Windows, EVTX, JSON, Zeek, CEF, auditd) are fields, not text;
#: joining their fields into ``k=v`` text and mining it would cost much and mean nothing.
TEXT_FORMATS = frozenset({"syslog", "apache_error", "accesslog"})
#: Fields that carry a line's text in an event of another format.
_TEXT_FIELDS = ("message", "line", "raw")


def without_text(batch: EventBatch) -> frozenset[int]:
    """The indexes of the batch's events that carry no free text, which the template
    detectors skip: none in a batch of a text format (the format is checked once per batch),
    else those without a ``message``, ``line`` or ``raw`` string."""
    if batch.format in TEXT_FORMATS:
        return frozenset()
    return frozenset(
        i
        for i, event in enumerate(batch.events)
        if not any(isinstance(event.get(name), str) for name in _TEXT_FIELDS)
    )


def source_of(batch: EventBatch, index: int) -> str:
    """The source whose baseline an event joins: ``host/program`` when the event names its
    program (one syslog file mixes many programs, each with its own vocabulary), else the
    batch's path."""
    event = batch.events[index]
    program = event.get("program")
    if isinstance(program, str) and program:
        host = batch.hosts[index] if index < len(batch.hosts) else None
        return f"{host or event.get('hostname') or '-'}/{program}"
    return batch.path


def text_of(batch: EventBatch, index: int) -> str:
    """The text to mine templates from (the miner's :func:`event_text`)."""
    return event_text(batch.events[index], batch.format)


def time_of(batch: EventBatch, index: int) -> datetime | None:
    """The event's time as an aware UTC datetime, ``None`` when it has none or it is not ISO."""
    text = batch.times[index] if index < len(batch.times) else None
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def identifiers_of(event: Mapping[str, Any]) -> tuple[str, ...]:
    """The person-level identifiers an event carries, in field order, without repeats."""
    found: list[str] = []
    for name in IDENTIFIER_FIELDS:
        value = event.get(name)
        named = isinstance(value, str) and value.strip().lower() not in _NO_ONE
        if named and value not in found:
            found.append(value)
    return tuple(found)


class SharedMiner:
    """One template miner for the template detectors of a suite, so each line is mined once.

    The first detector to observe a batch mines its lines; a detector that then observes the
    same batch gets, for each line, the very match the first one got and the miner's change
    counter after it (:attr:`TemplateMiner.changes`), so it re-keys its counts at the same
    points, as it would with a miner of its own fed the same lines. A detector that observes
    one batch twice mines it again (a new pass); only the current batch is remembered.
    """

    def __init__(self, miner: TemplateMiner | None = None) -> None:
        self.miner = miner if miner is not None else TemplateMiner()
        self._batch: EventBatch | None = None
        #: Per event index of the current batch: its text, its match, the change counter after.
        self._mined: dict[int, tuple[str, TemplateMatch, int]] = {}
        #: Per reader (by id), the last index it mined in the current batch.
        self._readers: dict[int, int] = {}

    def mine(
        self, reader: object, batch: EventBatch, index: int, text: str
    ) -> tuple[TemplateMatch, int]:
        """The template of event ``index``'s ``text`` for ``reader`` (learning it, unless
        another reader already mined this line of this batch), and the change counter after
        it: when it moved, ids the reader counted under may stand for another
        (:meth:`TemplateMiner.changed`)."""
        if batch is not self._batch:
            self.forget()
            self._batch = batch
        if self._readers.get(id(reader), -1) >= index:  # a second pass over the batch
            self._mined, self._readers = {}, {}
        self._readers[id(reader)] = index
        done = self._mined.get(index)
        if done is not None and done[0] == text:
            return done[1], done[2]
        match = self.miner.add(text)
        changes = self.miner.changes
        self._mined[index] = (text, match, changes)
        return match, changes

    def forget(self) -> None:
        """Drop the current batch's results (after the miner's state was replaced)."""
        self._batch, self._mined, self._readers = None, {}, {}


def shared(miner: TemplateMiner | SharedMiner | None) -> SharedMiner:
    """``miner`` as a :class:`SharedMiner` (a new one around a plain or no miner)."""
    return miner if isinstance(miner, SharedMiner) else SharedMiner(miner)
