"""The vectorised engine: one pass of every compiled rule over a batch of events.

Per batch: (1) rules are selected by the batch's logsource tags; (2) the fields those rules
test are dictionary-encoded (one pass over the events); (3) every atom is evaluated once, on
distinct values, by the field's :class:`~.matchers.FieldMatcher`; (4) atom results become row
masks (NumPy) lazily, and each rule's boolean expression combines them, short-circuiting on
atoms that matched nothing in the batch. Keyword atoms (a search of every value of an event)
are the exception to "once, on every distinct value": each is checked only on the rows its
rule still needs (see :class:`_BatchState`), since a keyword meant only in conjunction with
another list (``filter: ['@', ':']``) holds for nearly every event.
"""

from __future__ import annotations

from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson

from qorgan.core.timeutil import parse_time
from qorgan.detection.matchers import FieldMatcher, KeywordMatcher, KeywordSearch, elements
from qorgan.detection.plan import And, Atom, Const, Expr, Not, Or, Plan, Ref
from qorgan.telemetry.batch import EventBatch

#: Row masks: None means no row, ALL means every row, else a bool array.
ALL = True
Mask = np.ndarray | bool | None
KEYWORDS = None  # the "field" of keyword atoms


@dataclass(slots=True)
class Column:
    codes: np.ndarray  # int32 per row: index into uniques, -1 when absent
    uniques: list[Any]


@dataclass(slots=True)
class _Profile:
    """What a set of batch tags needs: the rules that apply and the fields they read."""

    rules: list[int]
    selections: list[int]
    fields: set[str]
    keyword_rules: list[int]
    #: Per keyword rule, the keyword atoms of its condition.
    keyword_atoms: dict[int, frozenset[int]]


class Engine:
    """Evaluates a :class:`Plan` over batches. Build once; ``match`` is not thread-safe."""

    def __init__(self, plan: Plan, *, extra_fields: Iterable[str] = ()) -> None:
        self.plan = plan
        #: Fields encoded with the rules' in the same pass, for others to read in
        #: :attr:`columns` (the indicators' fields: :mod:`qorgan.detection.indicators`).
        self.extra_fields = frozenset(extra_fields)
        #: The last batch's encoded columns, once :meth:`match` has run through it (None when
        #: nothing was encoded).
        self.columns: dict[str | None, Column] | None = None
        by_field: dict[str | None, list[tuple[int, Atom]]] = defaultdict(list)
        self.row_atoms: dict[int, Atom] = {}
        for index, atom in enumerate(plan.atoms):
            if atom.op in ("fieldref", "time"):
                self.row_atoms[index] = atom
            elif atom.op != "never":
                by_field[atom.field].append((index, atom))
        self.matchers: dict[str | None, FieldMatcher | KeywordMatcher] = {
            f: FieldMatcher(atoms) if f is not None else KeywordMatcher(atoms)
            for f, atoms in by_field.items()
        }
        self.atom_field = [a.field for a in plan.atoms]
        self._profiles: dict[tuple[tuple[str, str], ...], _Profile] = {}
        self._keyword_atoms: dict[int, frozenset[int]] = {}  # id(expr) -> its keyword atoms
        #: Exact checks of keyword atoms run, per atom, over the engine's life.
        self.keyword_checks: Counter[int] = Counter()

    def keyword_atoms(self, expr: Expr) -> frozenset[int]:
        """The keyword atoms ``expr`` refers to (kept per expression of the plan)."""
        found = self._keyword_atoms.get(id(expr))
        if found is None:
            atoms: set[int] = set()
            _collect(expr, atoms)
            found = frozenset(a for a in atoms if self.plan.atoms[a].field is None)
            self._keyword_atoms[id(expr)] = found
        return found

    # -- profiles -----------------------------------------------------------------------------

    def _profile(self, tags: dict[str, str]) -> _Profile:
        key = tuple(sorted(tags.items()))
        profile = self._profiles.get(key)
        if profile is None:
            selections = [
                i
                for i, s in enumerate(self.plan.selections)
                if all(tags.get(k) == v for k, v in s.tags)
            ]
            chosen = set(selections)
            rules = [i for i, r in enumerate(self.plan.rules) if r.selection in chosen]
            atoms: set[int] = set()
            for i in selections:
                _collect(self.plan.selections[i].expr, atoms)
            for i in rules:
                _collect(self.plan.rules[i].condition, atoms)
            fields: set[str] = set()
            for a in atoms:
                atom = self.plan.atoms[a]
                if atom.field is not None:
                    fields.add(atom.field)
                if atom.op == "fieldref":
                    fields.add(atom.value[0])
            keyword_atoms = {
                r: found
                for r in rules
                if (found := self.keyword_atoms(self.plan.rules[r].condition))
            }
            profile = _Profile(rules, selections, fields, list(keyword_atoms), keyword_atoms)
            self._profiles[key] = profile
        return profile

    # -- evaluation ---------------------------------------------------------------------------

    def match(self, batch: EventBatch) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (rule index, matching row indexes) for every rule that matched in the batch."""
        self.columns = None
        n = len(batch.events)
        if n == 0:
            return
        profile = self._profile(batch.logsource)
        if not profile.rules:
            if self.extra_fields:
                self.columns = encode(batch.events, self.extra_fields)
            return
        columns = encode(
            batch.events,
            profile.fields | self.extra_fields if self.extra_fields else profile.fields,
        )
        self.columns = columns
        state = _BatchState(self, batch, columns, n)
        selection_masks = {i: state.eval(self.plan.selections[i].expr) for i in profile.selections}
        if profile.keyword_rules:
            # Keywords only of the rules whose logsource selects rows of this batch.
            active = [
                r
                for r in profile.keyword_rules
                if selection_masks[self.plan.rules[r].selection] is not None
            ]
            rows = _union([selection_masks[self.plan.rules[r].selection] for r in active], n)
            if rows is not None:
                column = state.columns[KEYWORDS] = keyword_column(batch.events, rows)
                matcher = self.matchers[KEYWORDS]
                assert isinstance(matcher, KeywordMatcher)
                atoms = frozenset().union(*(profile.keyword_atoms[r] for r in active))
                state.keywords = matcher.search(column.uniques, atoms)
        try:
            yield from self._rules(profile, state, selection_masks, n)
        finally:
            if state.keywords is not None:
                self.keyword_checks.update(state.keywords.checked)

    def _rules(
        self, profile: _Profile, state: _BatchState, selection_masks: dict[int, Mask], n: int
    ) -> Iterator[tuple[int, np.ndarray]]:
        for r in profile.rules:
            rule = self.plan.rules[r]
            selected = selection_masks[rule.selection]
            if selected is None:
                continue
            mask = state.eval(rule.condition, selected)
            if mask is None:
                continue
            mask = _and(selected, mask, n)
            if mask is None:
                continue
            rows = np.arange(n) if mask is ALL else np.flatnonzero(mask)
            if rows.size:
                yield r, rows


class _BatchState:
    """One batch's evaluation. ``eval(expr, alive)`` is exact on the rows ``alive`` marks and
    may say anything of the others: keyword atoms are checked only on those rows, and an AND
    evaluates its keyword arguments last, the most selective first, each on the rows the
    arguments before it left (an argument every row passes costs nothing then)."""

    def __init__(self, engine: Engine, batch: EventBatch, columns: dict, n: int) -> None:
        self.engine = engine
        self.batch = batch
        self.columns: dict[str | None, Column] = columns
        self.n = n
        self.unique_hits: dict[str | None, dict[int, list[int]]] = {}
        self.masks: dict[int, Mask] = {}
        self.keywords: KeywordSearch | None = None
        self._among: tuple[Mask, np.ndarray | None] = (ALL, None)

    def eval(self, expr: Expr, alive: Mask = ALL) -> Mask:
        if type(expr) is Ref:
            mask = self.masks.get(expr.atom, False)
            if mask is False:
                if self.engine.atom_field[expr.atom] is None and self.keywords is not None:
                    return self.keyword_mask(expr.atom, alive)
                mask = self.masks[expr.atom] = self.atom_mask(expr.atom)
            return mask
        if type(expr) is And:
            acc: Mask = alive
            args = expr.args
            if self.keywords is not None:
                cost = self._cost
                args = tuple(sorted(args, key=cost)) if any(map(cost, args)) else args
            for arg in args:
                acc = _and(acc, self.eval(arg, acc), self.n)
                if acc is None:
                    return None
            return acc
        if type(expr) is Or:
            parts = []
            for arg in expr.args:
                m = self.eval(arg, alive)
                if m is ALL:
                    return ALL
                if m is not None:
                    parts.append(m)
            return _union(parts, self.n)
        if type(expr) is Not:
            m = self.eval(expr.arg, alive)
            if m is None:
                return ALL
            if m is ALL:
                return None
            inv = ~m
            return inv if inv.any() else None
        if type(expr) is Const:
            return ALL if expr.value else None
        raise TypeError(f"unknown expression {expr!r}")

    def _cost(self, expr: Expr) -> int:
        """How many keyword texts ``expr`` may have to check (0: none)."""
        keywords = self.keywords
        assert keywords is not None
        return sum(keywords.estimate(a) + 1 for a in self.engine.keyword_atoms(expr))

    def keyword_mask(self, atom: int, alive: Mask) -> Mask:
        """A keyword atom's mask, exact on the ``alive`` rows; on every row (and kept) when
        ``alive`` is ALL."""
        column = self.columns[KEYWORDS]
        keywords = self.keywords
        assert keywords is not None
        among = None
        if alive is not ALL:
            last, among = self._among
            if last is not alive:
                table = np.zeros(len(column.uniques) + 1, dtype=bool)  # last slot: absent
                table[column.codes[alive]] = True  # type: ignore[index]
                among = table[:-1]
                self._among = (alive, among)
        found = keywords.hits(atom, among)
        mask: Mask = None
        if found:
            table = np.zeros(len(column.uniques) + 1, dtype=bool)
            table[found] = True
            mask = table[column.codes]
        if alive is ALL:
            self.masks[atom] = mask
        return mask

    def atom_mask(self, index: int) -> Mask:
        atom = self.engine.plan.atoms[index]
        if atom.op == "never":
            return None
        if index in self.engine.row_atoms:
            return self.row_atom_mask(atom)
        column = self.columns.get(atom.field)
        if column is None:
            return ALL if atom.op == "null" else None
        if atom.op == "null":
            mask = column.codes < 0
            return mask if mask.any() else None
        if atom.op == "exists":
            mask = column.codes >= 0
            return mask if mask.any() else None
        hits = self.unique_hits.get(atom.field)
        if hits is None:
            matcher = self.engine.matchers[atom.field]
            hits = self.unique_hits[atom.field] = matcher.match(column.uniques)
        found = hits.get(index)
        if not found:
            return None
        table = np.zeros(len(column.uniques) + 1, dtype=bool)  # last slot: absent (-1)
        table[found] = True
        return table[column.codes]

    def row_atom_mask(self, atom: Atom) -> Mask:
        n = self.n
        out = np.zeros(n, dtype=bool)
        if atom.op == "fieldref":
            other, mode = atom.value
            a, b = self.columns.get(atom.field), self.columns.get(other)
            if a is None or b is None:
                return None
            for i in np.flatnonzero((a.codes >= 0) & (b.codes >= 0)):
                left = [t.casefold() for t in elements(a.uniques[a.codes[i]])]
                right = [t.casefold() for t in elements(b.uniques[b.codes[i]])]
                out[i] = any(fieldref_matches(x, y, mode) for x in left for y in right)
        elif atom.op == "time":
            part, number = atom.value
            for i, text in enumerate(self.batch.times):
                moment = parse_time(text)
                if moment is not None and _time_part(moment, part) == number:
                    out[i] = True
        return out if out.any() else None


def fieldref_matches(value: str, other: str, mode: str) -> bool:
    """Whether a field's value matches another field's (``fieldref``, with its mode)."""
    if mode == "prefix":
        return value.startswith(other)
    if mode == "suffix":
        return value.endswith(other)
    if mode == "contains":
        return other in value
    return value == other


def _time_part(moment: datetime, part: str) -> int:
    if part == "week":
        return moment.isocalendar().week
    return int(getattr(moment, part))


def _and(a: Mask, b: Mask, n: int) -> Mask:
    if a is None or b is None:
        return None
    if a is ALL:
        return b
    if b is ALL:
        return a
    out = a & b
    return out if out.any() else None


def _union(parts: list, n: int) -> Mask:
    if not parts:
        return None
    if any(p is ALL for p in parts):
        return ALL
    if len(parts) == 1:
        return parts[0]
    return np.logical_or.reduce(parts)


def _collect(expr: Expr, out: set[int]) -> None:
    if type(expr) is Ref:
        out.add(expr.atom)
    elif type(expr) in (And, Or):
        for arg in expr.args:  # type: ignore[union-attr]
            _collect(arg, out)
    elif type(expr) is Not:
        _collect(expr.arg, out)  # type: ignore[union-attr]


def encode(events: list[dict[str, Any]], fields: set[str]) -> dict[str | None, Column]:
    """Dictionary-encode ``fields`` of ``events``: per field, codes per row and distinct values.

    The hot loop of the engine: per event, only the keys the rules read (a set intersection in
    C), one dict probe each. A field found to hold booleans is encoded again on its own, since
    ``True`` and ``1`` are one dict key.
    """
    n = len(events)
    tables: dict[str, tuple[dict[Any, int], array[int]]] = {}
    absent = array("i", [-1])
    for i, event in enumerate(events):
        for key in event.keys() & fields:
            value = event[key]
            if value is None:
                continue
            entry = tables.get(key)
            if entry is None:
                entry = tables[key] = ({}, absent * n)
            table, codes = entry
            try:
                codes[i] = table[value]
            except KeyError:
                codes[i] = table[value] = len(table)
            except TypeError:  # a list (or an object) is hashed as a tuple of its texts
                value = tuple(value) if type(value) is list else str(value)
                codes[i] = table.setdefault(value, len(table))
    columns = {}
    for f, (table, codes) in tables.items():
        if bool in set(map(type, table)):
            # True == 1 for dict keys: re-encode a field that holds booleans with their text.
            table, codes = _encode_field(events, f)
        columns[f] = Column(np.frombuffer(codes, dtype=np.int32), list(table))
    return columns


def _encode_field(events: list[dict[str, Any]], field: str) -> tuple[dict[Any, int], array[int]]:
    table: dict[Any, int] = {}
    codes = array("i", [-1]) * len(events)
    for i, event in enumerate(events):
        value = event.get(field)
        if value is None:
            continue
        if value is True or value is False:
            value = "true" if value else "false"
        elif type(value) is list:
            value = tuple(value)
        elif type(value) is dict:
            value = str(value)
        codes[i] = table.setdefault(value, len(table))
    return table, codes


def keyword_column(events: list[dict[str, Any]], rows: Mask) -> Column:
    """Keywords search every value of the event: each selected row's values as one JSON array
    text (serialised in C), which :class:`~.matchers.KeywordMatcher` prefilters and verifies."""
    n = len(events)
    indexes = range(n) if rows is ALL else np.flatnonzero(rows).tolist()
    codes = np.full(n, -1, dtype=np.int32)
    table: dict[bytes, int] = {}
    for i in indexes:
        codes[i] = table.setdefault(_values_json(events[i]), len(table))
    return Column(codes, list(table))


def _values_json(event: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(list(event.values()))
    except TypeError:  # a value orjson cannot serialise: fall back to its text
        return orjson.dumps(
            [
                v if isinstance(v, str | int | float | bool | None) else str(v)
                for v in event.values()
            ]
        )
