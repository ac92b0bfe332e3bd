"""Logsource mapping: which events a rule's ``logsource`` covers, as declarative data.

The default map ships as ``logsources.yml`` beside this module; a user can add entries of their
own (``qorgan hunt --logsource-map FILE``), which are appended to the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from qorgan.detection.errors import DetectionError

DEFAULT_MAP = Path(__file__).with_name("logsources.yml")
LOGSOURCE_KEYS = ("product", "category", "service")


@dataclass(frozen=True, slots=True)
class LogsourceEntry:
    logsource: tuple[tuple[str, str], ...]
    tags: tuple[tuple[str, str], ...]
    #: Alternatives (OR); each a tuple of (field, values) pairs (AND), values OR-ed.
    select: tuple[tuple[tuple[str, tuple[Any, ...]], ...], ...]

    def applies(self, logsource: dict[str, str]) -> bool:
        return all(logsource.get(k) == v for k, v in self.logsource)


#: libyaml's safe loader where PyYAML was built with it: seven times faster, and the map is read
#: by every hunt as it starts.
_YAML = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class LogsourceMap:
    entries: tuple[LogsourceEntry, ...]
    text: str  # the source, for the plan cache key

    @classmethod
    def load(cls, *paths: Path) -> LogsourceMap:
        entries: list[LogsourceEntry] = []
        texts = []
        for path in (DEFAULT_MAP, *paths):
            text = path.read_text(encoding="utf-8")
            texts.append(text)
            try:
                items = yaml.load(text, Loader=_YAML) or []
                entries.extend(_entry(item) for item in items)
            except (yaml.YAMLError, TypeError, KeyError, AttributeError) as exc:
                raise DetectionError(f"invalid logsource map: {exc}", source=str(path)) from exc
        return cls(tuple(entries), "\n".join(texts))

    def entries_for(self, logsource: dict[str, str]) -> list[LogsourceEntry]:
        return [e for e in self.entries if e.applies(logsource)]


def _entry(item: dict[str, Any]) -> LogsourceEntry:
    logsource = tuple(sorted((str(k), str(v)) for k, v in item["logsource"].items()))
    tags = tuple(sorted((str(k), str(v)) for k, v in (item.get("tags") or {}).items()))
    select = tuple(
        tuple(
            (str(f), tuple(v) if isinstance(v, list) else (v,))
            for f, v in sorted(alternative.items())
        )
        for alternative in item.get("select") or ()
    )
    return LogsourceEntry(logsource, tags, select)
