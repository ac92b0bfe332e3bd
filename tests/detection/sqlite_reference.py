"""A reference Sigma evaluator for the differential test: pySigma's SQLite backend over an
in-memory SQLite table of the same events.

Nothing here imports Qorgan's detection code. The logsource map is read from
``logsources.yml`` as plain YAML and turned into a pySigma processing pipeline; the events are
the flat dicts Qorgan's telemetry reader produces (the input both sides share).

Table layout (what the backend expects, see its README and ``sqlite.py``):

* one table ``logs``, one row per event, ``rowid`` = the event's index;
* one column per field, declared without a type and ``COLLATE NOCASE`` (Zircolite's layout):
  ``=`` compares text case-insensitively and every value keeps its storage class (int ->
  INTEGER, str -> TEXT, float -> REAL); booleans are stored as the text ``true``/``false``,
  lists and objects as JSON text, ``None`` or an absent field as NULL;
* SQLite column names are case-insensitive but event field names are not (``ProcessID`` of
  the System element and ``ProcessId`` of Sysmon's EventData are two fields), so every field
  name gets its own column (``ProcessId__1``...) through a field-mapping transformation;
* keywords (fieldless values) need the backend's ``fulltext_field``: the column ``_fulltext``
  holds the text of every value of the event, one per line (list elements one by one);
* ``REGEXP`` is a Python function: ``re.search(pattern, str(value))``, false on NULL.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from sigma.backends.sqlite import sqliteBackend
from sigma.collection import SigmaCollection
from sigma.exceptions import SigmaError
from sigma.processing.conditions import LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import (
    AddConditionTransformation,
    FieldFunctionTransformation,
)
from sigma.rule import SigmaRule

TABLE = "logs"
FULLTEXT = "_fulltext"
#: Separates the values of an event in the keyword column; no rule keyword contains it.
FULLTEXT_SEPARATOR = "\n"
_RESERVED = {"rowid", "oid", "_rowid_", FULLTEXT.lower()}


class ColumnNames:
    """Field name -> column name, distinct under SQLite's case-insensitive identifiers.

    The first field of a case-insensitive group keeps its name; the others get a suffix.
    Called by the pipeline for every field a rule names, so rule fields that no event has get
    a column too (created as all-NULL)."""

    def __init__(self) -> None:
        self.columns: dict[str, str] = {}
        self._taken: set[str] = set(_RESERVED)

    def __call__(self, name: str | None) -> str:
        if name is None:  # keywords: FieldFunctionTransformation leaves them alone
            return name  # type: ignore[return-value]
        column = self.columns.get(name)
        if column is None:
            column, n = name, 0
            while column.lower() in self._taken:
                n += 1
                column = f"{name}__{n}"
            self._taken.add(column.lower())
            self.columns[name] = column
        return column


def logsource_pipeline(map_path: Path, columns: ColumnNames) -> ProcessingPipeline:
    """The logsource map as a pySigma pipeline.

    Each entry with a ``select`` becomes an :class:`AddConditionTransformation` restricted by a
    :class:`LogsourceCondition` to the rules whose logsource has all the entry's keys; pySigma
    ANDs every added condition with the rule's, as Qorgan ANDs all entries that apply. Within an
    entry the alternatives are OR-ed: one alternative is a plain field -> value(s) map (a list
    of values is an OR, as in any Sigma detection); several are passed as a list of maps, which
    ``SigmaDetection.from_definition`` (called by the transformation) reads as the OR of the
    maps, exactly like a Sigma selection written as a list of maps. ``tags`` only select batches
    and are ignored here: the reference table holds only windows-tagged events.
    """
    entries = yaml.safe_load(map_path.read_text(encoding="utf-8")) or []
    items = []
    for n, entry in enumerate(entries):
        select = entry.get("select") or []
        if not select:
            continue
        alternatives = [dict(alternative) for alternative in select]
        conditions: Any = alternatives[0] if len(alternatives) == 1 else alternatives
        items.append(
            ProcessingItem(
                identifier=f"logsource_{n}",
                transformation=AddConditionTransformation(conditions, name=f"_logsource_{n}"),
                rule_conditions=[
                    LogsourceCondition(**{k: str(v) for k, v in entry["logsource"].items()})
                ],
            )
        )
    items.append(
        ProcessingItem(
            identifier="columns",
            transformation=FieldFunctionTransformation(mapping={}, transform_func=columns),
        )
    )
    return ProcessingPipeline(name="qorgan logsources.yml", priority=20, items=items)


def sql_value(value: Any) -> Any:
    """How one event value is stored."""
    if value is None:
        return None
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is int:
        return value if -(2**63) <= value < 2**63 else str(value)
    if isinstance(value, str | float):
        return value
    return json.dumps(value, ensure_ascii=False)


def value_texts(value: Any) -> list[str]:
    """The searchable texts of one value (a list contributes each element)."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [t for v in value for t in value_texts(v)]
    if value is True or value is False:
        return ["true" if value else "false"]
    if isinstance(value, float) and value.is_integer():
        return [str(int(value))]
    return [str(value)]


@lru_cache(maxsize=8192)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def regexp(pattern: str, value: Any) -> bool:
    """SQLite's ``value REGEXP pattern`` calls ``regexp(pattern, value)``."""
    return value is not None and _regex(pattern).search(str(value)) is not None


@dataclass
class ReferenceRule:
    id: str
    title: str
    path: str
    queries: list[str]


@dataclass
class Conversion:
    rules: list[ReferenceRule] = field(default_factory=list)
    #: (path, rule id or None, reason) of rules the backend cannot convert.
    failures: list[tuple[str, str | None, str]] = field(default_factory=list)
    #: (path, reason) of documents pySigma cannot parse (the same parse Qorgan uses).
    parse_errors: list[tuple[str, str]] = field(default_factory=list)


def convert_rules(
    files: Iterable[Path], map_path: Path, columns: ColumnNames, *, backend_options: Any = None
) -> Conversion:
    """Convert every rule of ``files`` to SQL queries, one backend, the logsource pipeline."""
    backend = sqliteBackend(
        processing_pipeline=logsource_pipeline(map_path, columns),
        fulltext_field=FULLTEXT,
        table=TABLE,
        **(backend_options or {}),
    )
    out = Conversion()
    for path in files:
        try:
            collection = SigmaCollection.from_yaml(
                path.read_text(encoding="utf-8"), collect_errors=True
            )
        except (SigmaError, ValueError) as exc:
            out.parse_errors.append((str(path), str(exc)))
            continue
        for error in collection.errors:
            out.parse_errors.append((str(path), str(error)))
        for rule in collection.rules:
            if not isinstance(rule, SigmaRule):
                out.failures.append((str(path), str(rule.id or ""), "not a detection rule"))
                continue
            rule_id = str(rule.id) if rule.id else None
            if rule.errors:
                out.parse_errors.append((str(path), "; ".join(map(str, rule.errors))))
                continue
            try:
                queries = backend.convert_rule(rule)
            except SigmaError as exc:
                out.failures.append((str(path), rule_id, f"{type(exc).__name__}: {exc}"))
                continue
            out.rules.append(ReferenceRule(rule_id or "", rule.title, str(path), list(queries)))
    return out


def build_table(
    events: Sequence[dict[str, Any]],
    columns: ColumnNames,
    *,
    transform: Callable[[Any], Any] = sql_value,
    indexes: Sequence[str] = ("Channel", "EventID"),
) -> sqlite3.Connection:
    """An in-memory database with the table ``logs``: one row per event, rowid = its index."""
    for event in events:
        for name in event:
            columns(name)
    names = list(columns.columns.items())
    db = sqlite3.connect(":memory:")
    db.create_function("regexp", 2, regexp, deterministic=True)
    defs = ", ".join(f"{_quote(column)} COLLATE NOCASE" for _, column in names)
    db.execute(f"CREATE TABLE {TABLE} ({defs}, {FULLTEXT} TEXT COLLATE NOCASE)")
    placeholders = ", ".join("?" * (len(names) + 2))
    sql = (
        f"INSERT INTO {TABLE} (rowid, {', '.join(_quote(c) for _, c in names)}, {FULLTEXT}) "
        f"VALUES ({placeholders})"
    )
    rows = []
    for i, event in enumerate(events):
        texts = [t for value in event.values() for t in value_texts(value)]
        rows.append(
            (
                i,
                *(transform(event.get(name)) for name, _ in names),
                FULLTEXT_SEPARATOR.join(texts),
            )
        )
    db.executemany(sql, rows)
    for name in indexes:
        if name in columns.columns:
            column = columns.columns[name]
            db.execute(f"CREATE INDEX {_quote('i_' + column)} ON {TABLE} ({_quote(column)})")
    db.commit()
    return db


def run(db: sqlite3.Connection, queries: Iterable[str], rows: Iterable[int] | None = None) -> set:
    """Row indexes matched by any of ``queries``; with ``rows``, only among those rows."""
    prefix = f"SELECT * FROM {TABLE} WHERE "
    found: set[int] = set()
    for query in queries:
        if not query.startswith(prefix):
            raise ValueError(f"unexpected query shape: {query[:80]!r}")
        where = query[len(prefix) :]
        if rows is None:
            sql = f"SELECT rowid FROM {TABLE} WHERE {where}"
            found.update(r for (r,) in db.execute(sql))
        else:
            wanted = sorted(set(rows))
            sql = (
                f"SELECT rowid FROM {TABLE} WHERE rowid IN "
                f"(SELECT value FROM json_each(?)) AND ({where})"
            )
            found.update(r for (r,) in db.execute(sql, (json.dumps(wanted),)))
    return found


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"
