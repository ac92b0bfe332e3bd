"""Which fields of an event a rule reads, and which of them its conditions matched.

For the alert page: the fields a rule's detection tests (from the compiled plan) that the event
holds, and, evaluated again on that one event with the engine's own matchers, whether each
field's conditions held. A field counts as matched when a condition on it that is not under a
``not`` held (a filter's field that held is "read", since it spoke against the match); keyword
conditions (no field) are matched against every value and name the fields they hit. Conditions
on the event time, and field references, are evaluated the engine's way too.

Pure: no web or database code, and cheap (one event, one rule's atoms).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from qorgan.core.timeutil import parse_time
from qorgan.detection.engine import fieldref_matches
from qorgan.detection.matchers import FieldMatcher, elements
from qorgan.detection.plan import (
    And,
    Atom,
    CompiledCorrelation,
    CompiledRule,
    Expr,
    Not,
    Or,
    Plan,
    Ref,
    RuleMeta,
)

#: Plans' rule indexes by rule id, per plan key (plans are immutable once built).
_INDEXES: dict[str, dict[str, CompiledRule | CompiledCorrelation]] = {}
_MAX_INDEXES = 4


def _index(plan: Plan) -> dict[str, CompiledRule | CompiledCorrelation]:
    found = _INDEXES.get(plan.key) if plan.key else None
    if found is None:
        found = {}
        for rule in (*plan.rules, *plan.correlations):
            if rule.meta.id:
                found.setdefault(rule.meta.id, rule)
        if plan.key:
            if len(_INDEXES) >= _MAX_INDEXES:
                _INDEXES.pop(next(iter(_INDEXES)))
            _INDEXES[plan.key] = found
    return found


def find_rule(plan: Plan, rule_id: str) -> CompiledRule | CompiledCorrelation | None:
    """The compiled rule (or correlation) with this id, when the plan holds it."""
    return _index(plan).get(rule_id)


def rule_meta(plan: Plan, rule_id: str) -> RuleMeta | None:
    found = find_rule(plan, rule_id)
    return found.meta if found is not None else None


@dataclass(frozen=True, slots=True)
class FieldMatch:
    """What the rule's conditions say of one event field: ``matched`` or only ``read``."""

    field: str
    matched: bool


def _atoms(expr: Expr, positive: bool = True) -> Iterator[tuple[int, bool]]:
    if type(expr) is Ref:
        yield expr.atom, positive
    elif type(expr) in (And, Or):
        for arg in expr.args:  # type: ignore[union-attr]
            yield from _atoms(arg, positive)
    elif type(expr) is Not:
        yield from _atoms(expr.arg, not positive)  # type: ignore[union-attr]


def _encoded(value: Any) -> Any:
    """An event value as the engine's dictionary encoding hands it to a matcher."""
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is list:
        return tuple(value)
    if type(value) is dict:
        return str(value)
    return value


def _present(value: Any) -> bool:
    return value is not None


def _holds(atom: Atom, event: dict[str, Any], time: str | None) -> bool:
    """Whether ``atom`` (of a field the event holds) holds for the event, as in the engine."""
    value = event.get(atom.field) if atom.field is not None else None
    if atom.op == "exists":
        return _present(value)
    if atom.op == "null":
        return not _present(value)
    if atom.op == "never" or not _present(value):
        return False
    if atom.op == "time":
        part, number = atom.value
        moment = parse_time(time)
        if moment is None:
            return False
        got = moment.isocalendar().week if part == "week" else int(getattr(moment, part))
        return bool(got == number)
    if atom.op == "fieldref":
        other, mode = atom.value
        if not _present(event.get(other)):
            return False
        left = [t.casefold() for t in elements(_encoded(value))]
        right = [t.casefold() for t in elements(_encoded(event[other]))]
        return any(fieldref_matches(x, y, mode) for x in left for y in right)
    return bool(FieldMatcher([(0, atom)]).match([_encoded(value)]))


def explain(
    plan: Plan, rule_id: str, event: dict[str, Any], time: str | None = None
) -> dict[str, FieldMatch] | None:
    """The event's fields that the rule ``rule_id`` reads, each matched or only read; None when
    the plan does not hold the rule. A correlation reads its group-by fields (all matched)."""
    found = find_rule(plan, rule_id)
    if found is None:
        return None
    if isinstance(found, CompiledCorrelation):
        names = {f for fields in found.fields for f in fields}
        return {f: FieldMatch(f, True) for f in sorted(names) if _present(event.get(f))}
    states: dict[str, bool] = defaultdict(bool)
    for index, positive in _atoms(found.condition):
        atom = plan.atoms[index]
        if atom.field is None:  # a keyword: any value of the event
            for name, value in event.items():
                if _present(value) and FieldMatcher(
                    [(0, Atom(name, atom.op, atom.value, atom.cased, atom.prefilter))]
                ).match([_encoded(value)]):
                    states[name] |= positive
            continue
        fields = [atom.field]
        if atom.op == "fieldref":
            fields.append(atom.value[0])
        held = None
        for name in fields:
            if name not in event or not _present(event[name]):
                continue
            if held is None:
                held = _holds(atom, event, time)
            states[name] |= held and positive
    return {name: FieldMatch(name, matched) for name, matched in sorted(states.items())}
