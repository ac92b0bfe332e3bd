"""Bounded per-entity memory and the text helpers the entity detectors share.

An organisation can have millions of users, addresses and hosts; a detector must not grow
without end. :class:`EntityTable` keeps at most ``cap`` entities and forgets the one seen least
recently when a new one arrives (an LRU). A forgotten entity is simply new again: it goes
through its warm-up once more, so eviction costs findings, never false certainty.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from qorgan.core.errors import QorganError

T = TypeVar("T")

#: Default number of entities each table keeps (users, user-address pairs, hosts...).
DEFAULT_CAP = 50_000
#: Longest example line a finding shows, in characters.
EXAMPLE_CHARS = 240

_SURROGATES = re.compile(r"[\ud800-\udfff]")
_PATTERN_UNSAFE = re.compile(r"[%|=\x00-\x1f]")


class EntityStateError(QorganError):
    """A detector's saved state cannot be read back (wrong shape or version)."""


def clean(value: object) -> str | None:
    """A text key of an event value, or None when the event has none: lone surrogates (from
    undecodable bytes) become U+FFFD so the state stays valid UTF-8 JSON; ``-`` and empty are
    absent, as the formats log them."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    if not text or text == "-":
        return None
    return _SURROGATES.sub("\ufffd", text)


def pattern(feature: str, **parts: str | None) -> str:
    """``feature|key=value|...``: ``%``, ``|``, ``=`` and control characters in values are
    percent-escaped, so a user named ``a|ip=b`` cannot forge another entity's pattern."""
    fields = [feature]
    for key, value in parts.items():
        text = "" if value is None else value
        text = _PATTERN_UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", text)
        fields.append(f"{key}={text}")
    return "|".join(fields)


def example(time: str | None, host: str | None, text: str) -> str:
    """An event rendered short for a finding's examples."""
    line = " ".join(part for part in (time, host, text) if part)
    line = _SURROGATES.sub("\ufffd", line.replace("\x00", "\\0"))
    return line if len(line) <= EXAMPLE_CHARS else line[: EXAMPLE_CHARS - 1] + "…"


class EntityTable(Generic[T]):
    """At most ``cap`` entities by key, each with its state ``T``; the least recently used is
    evicted first. State is a JSON list of ``[key, value]`` pairs, oldest first."""

    def __init__(self, factory: Callable[[], T], cap: int = DEFAULT_CAP) -> None:
        if cap < 1:
            raise ValueError("an entity table keeps at least one entity")
        self.factory = factory
        self.cap = cap
        self.evicted = 0
        self._items: OrderedDict[str, T] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def get(self, key: str) -> T | None:
        """The entity's state without creating it (and without making it recent)."""
        return self._items.get(key)

    def touch(self, key: str) -> T:
        """The entity's state, created when new; it becomes the most recent."""
        items = self._items
        value = items.get(key)
        if value is None:
            value = self.factory()
            items[key] = value
            if len(items) > self.cap:
                items.popitem(last=False)
                self.evicted += 1
        else:
            items.move_to_end(key)
        return value

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(self._items.items())

    def dump(self, encode: Callable[[T], Any]) -> list[list[Any]]:
        return [[key, encode(value)] for key, value in self._items.items()]

    def restore(self, rows: Any, decode: Callable[[Any], T]) -> None:
        if not isinstance(rows, list):
            raise EntityStateError("an entity table's state is a list of [key, value] pairs")
        self._items.clear()
        for row in rows[-self.cap :]:
            if not (isinstance(row, list) and len(row) == 2 and isinstance(row[0], str)):
                raise EntityStateError(f"not a [key, value] pair: {str(row)[:80]}")
            self._items[row[0]] = decode(row[1])


def need(state: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    """``state[key]`` checked to be of ``kind``, else :class:`EntityStateError`."""
    if not isinstance(state, Mapping) or key not in state:
        raise EntityStateError(f"state lacks {key!r}")
    value = state[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
        raise EntityStateError(f"state {key!r} has the wrong type")
    return value
