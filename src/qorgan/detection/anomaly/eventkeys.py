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


def mine(miner: TemplateMiner, text: str) -> tuple[TemplateMatch, bool]:
    """The template of ``text`` (learning it), and whether the miner merged or dropped
    templates meanwhile: then ids a detector counted under may now stand for another
    (:meth:`TemplateMiner.canonical`), and its counts must be re-keyed."""
    before = len(miner)
    match = miner.add(text)
    return match, len(miner) < before + (1 if match.is_new else 0)
