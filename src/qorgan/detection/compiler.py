"""Compiling parsed Sigma rules (pySigma objects) into the shared :class:`~.plan.Plan`.

Data in, data out: the compiler walks pySigma's condition tree with one method per node and
value type, and returns new frozen plan objects; it never modifies the parsed rule. Every
distinct atom is interned once, so rules share their conditions.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.correlations import (
    SigmaCorrelationRule,
    SigmaExtendedCorrelationCondition,
    SigmaRuleReference,
)
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
)

from qorgan.detection.errors import RuleCompileError
from qorgan.detection.logsources import LOGSOURCE_KEYS, LogsourceMap
from qorgan.detection.plan import (
    And,
    Atom,
    CompiledCorrelation,
    CompiledRule,
    Const,
    Expr,
    Not,
    Or,
    Plan,
    Ref,
    RuleFailure,
    RuleMeta,
    RuleWarning,
    Selection,
    Threshold,
)

TRUE = Const(True)
FALSE = Const(False)
_RE_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: re.IGNORECASE,
    SigmaRegularExpressionFlag.MULTILINE: re.MULTILINE,
    SigmaRegularExpressionFlag.DOTALL: re.DOTALL,
}
_CMP = {
    CompareOperators.LT: "lt",
    CompareOperators.LTE: "lte",
    CompareOperators.GT: "gt",
    CompareOperators.GTE: "gte",
    CompareOperators.NEQ: "neq",
}
_STAR = SpecialChars.WILDCARD_MULTI
_QMARK = SpecialChars.WILDCARD_SINGLE


def and_(args: Iterable[Expr]) -> Expr:
    """AND with flattening and constant folding."""
    out: list[Expr] = []
    for arg in args:
        if isinstance(arg, Const):
            if not arg.value:
                return FALSE
            continue
        out.extend(arg.args if isinstance(arg, And) else (arg,))
    if not out:
        return TRUE
    return out[0] if len(out) == 1 else And(tuple(out))


def or_(args: Iterable[Expr]) -> Expr:
    """OR with flattening, constant folding and duplicate removal."""
    out: list[Expr] = []
    for arg in args:
        if isinstance(arg, Const):
            if arg.value:
                return TRUE
            continue
        for item in arg.args if isinstance(arg, Or) else (arg,):
            if item not in out:
                out.append(item)
    if not out:
        return FALSE
    return out[0] if len(out) == 1 else Or(tuple(out))


def not_(arg: Expr) -> Expr:
    if isinstance(arg, Const):
        return Const(not arg.value)
    if isinstance(arg, Not):
        return arg.arg
    return Not(arg)


def literal_text(value: Any) -> str:
    """How an event value or a rule number is compared as text."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class PlanBuilder:
    """Accumulates rules into one plan. Not thread-safe; build once, then share the plan."""

    def __init__(
        self,
        logsources: LogsourceMap | None = None,
        placeholders: dict[str, list[str]] | None = None,
    ) -> None:
        self.logsources = logsources or LogsourceMap.load()
        self.placeholders = placeholders or {}
        self.plan = Plan()
        self._atoms: dict[Atom, int] = {}
        self._selections: dict[Selection, int] = {}
        self._warnings: list[str] = []
        self._names: dict[str, int] = {}  # rule name or id -> index in plan.rules

    # -- entry points -------------------------------------------------------------------------

    def add(self, rule: Any, path: str) -> bool:
        """Compile one parsed rule; a failure is recorded in ``plan.failures``, never raised."""
        rule_id = str(getattr(rule, "id", None) or "") or None
        title = getattr(rule, "title", None)
        try:
            if isinstance(rule, SigmaCorrelationRule):
                raise RuleCompileError("correlation rules are added with add_correlation")
            if not isinstance(rule, SigmaRule):
                raise RuleCompileError(f"unsupported Sigma document: {type(rule).__name__}")
            if rule.errors:
                raise RuleCompileError("; ".join(str(e) for e in rule.errors))
            self._warnings = []
            compiled = self.compile_rule(rule, path)
        except (RuleCompileError, SigmaError) as exc:
            reason = exc.message if isinstance(exc, RuleCompileError) else str(exc)
            self.plan.failures.append(RuleFailure(path, rule_id, title, reason))
            return False
        except (RecursionError, re.error, ValueError, TypeError) as exc:
            self.plan.failures.append(RuleFailure(path, rule_id, title, f"{exc!r}"))
            return False
        for key in (rule.name, str(rule.id) if rule.id else None):
            if key:
                self._names[key] = len(self.plan.rules)
        self.plan.rules.append(compiled)
        for message in self._warnings:
            self.plan.warnings.append(RuleWarning(path, rule_id, message))
        return True

    def add_correlation(self, rule: SigmaCorrelationRule, path: str, raw: dict[str, Any]) -> bool:
        """Compile a correlation rule once every base rule has been added (references resolve
        by rule name or id across all loaded files). ``raw`` is its ``correlation`` mapping as
        written, for what pySigma does not keep (a range condition's second bound)."""
        try:
            if rule.errors:
                raise RuleCompileError("; ".join(str(e) for e in rule.errors))
            compiled = compile_correlation(rule, path, raw, self._names, self.plan)
        except (RuleCompileError, SigmaError) as exc:
            reason = exc.message if isinstance(exc, RuleCompileError) else str(exc)
            self.plan.failures.append(
                RuleFailure(path, str(rule.id) if rule.id else None, rule.title, reason)
            )
            return False
        self.plan.correlations.append(compiled)
        return True

    def build(self) -> Plan:
        return self.plan

    # -- rules --------------------------------------------------------------------------------

    def compile_rule(self, rule: SigmaRule, path: str) -> CompiledRule:
        conditions = [self.convert(c.parsed) for c in rule.detection.parsed_condition]
        condition = or_(conditions)
        logsource = {
            k: v for k in LOGSOURCE_KEYS if (v := getattr(rule.logsource, k, None)) is not None
        }
        selection = self.selection_for(logsource)
        return CompiledRule(
            meta=_meta(rule, path, logsource), selection=selection, condition=condition
        )

    def selection_for(self, logsource: dict[str, str]) -> int:
        entries = self.logsources.entries_for(logsource)
        tags: dict[str, str] = {}
        exprs: list[Expr] = []
        if not entries:
            tags.update(logsource)
        for entry in entries:
            tags.update(entry.tags)
            if entry.select:
                exprs.append(or_(self._alternative(alt) for alt in entry.select))
        selection = Selection(tuple(sorted(tags.items())), and_(exprs))
        index = self._selections.get(selection)
        if index is None:
            index = self._selections[selection] = len(self.plan.selections)
            self.plan.selections.append(selection)
        return index

    def _alternative(self, alternative: tuple[tuple[str, tuple[Any, ...]], ...]) -> Expr:
        return and_(
            or_(self.ref(Atom(field, "eq", literal_text(v).casefold())) for v in values)
            for field, values in alternative
        )

    # -- condition nodes ----------------------------------------------------------------------

    def convert(self, node: Any) -> Expr:
        if isinstance(node, ConditionAND):
            return and_(self.convert(arg) for arg in node.args)
        if isinstance(node, ConditionOR):
            return or_(self.convert(arg) for arg in node.args)
        if isinstance(node, ConditionNOT):
            return not_(self.convert(node.args[0]))
        if isinstance(node, ConditionFieldEqualsValueExpression):
            return self.convert_value(node.field, node.value)
        if isinstance(node, ConditionValueExpression):
            return self.convert_value(None, node.value)
        if node is None:
            raise RuleCompileError("empty detection")
        raise RuleCompileError(f"unsupported condition node {type(node).__name__}")

    def convert_value(self, field: str | None, value: Any) -> Expr:
        if isinstance(value, SigmaExpansion):
            return or_(self.convert_value(field, v) for v in value.values)
        if isinstance(value, SigmaCasedString):
            return self.convert_string(field, value, cased=True)
        if isinstance(value, SigmaString):
            return self.convert_string(field, value, cased=False)
        if isinstance(value, SigmaTimestampPart):
            return self.ref(
                Atom(field, "time", (value.timestamp_part.name.lower(), value.number.number))
            )
        if isinstance(value, SigmaBool):
            return self.ref(Atom(field, "eq", literal_text(value.boolean)))
        if isinstance(value, SigmaNumber):
            if field is None:  # a keyword: full-text search for the number's text
                return self.ref(Atom(None, "contains", literal_text(value.number)))
            return self.ref(Atom(field, "eq", literal_text(value.number)))
        if field is None:
            raise RuleCompileError(f"{type(value).__name__} needs a field")
        if isinstance(value, SigmaNull):
            return self.ref(Atom(field, "null"))
        if isinstance(value, SigmaExists):
            return self.ref(Atom(field, "exists" if value.exists else "null"))
        if isinstance(value, SigmaRegularExpression):
            return self.convert_regex(field, value)
        if isinstance(value, SigmaCIDRExpression):
            return self.ref(Atom(field, "cidr", str(value.network)))
        if isinstance(value, SigmaCompareExpression):
            return self.ref(Atom(field, "cmp", (_CMP[value.op], value.number.number)))
        if isinstance(value, SigmaFieldReference):
            if value.starts_with and value.ends_with:
                mode = "contains"
            else:
                mode = "prefix" if value.starts_with else "suffix" if value.ends_with else "eq"
            return self.ref(Atom(field, "fieldref", (value.field, mode)))
        raise RuleCompileError(f"unsupported value type {type(value).__name__}")

    def convert_regex(self, field: str, value: SigmaRegularExpression) -> Expr:
        if value.regexp.contains_placeholder():
            raise RuleCompileError("placeholders inside regular expressions are not supported")
        pattern = value.regexp.to_plain()
        flags = 0
        for flag in value.flags:
            flags |= _RE_FLAGS[flag]
        try:
            re.compile(pattern, flags)
        except re.error as exc:
            raise RuleCompileError(f"invalid regular expression {pattern!r}: {exc}") from exc
        return self.ref(Atom(field, "re", (pattern, flags)))

    def convert_string(self, field: str | None, value: SigmaString, *, cased: bool) -> Expr:
        parts = list(value.s)
        if any(isinstance(p, Placeholder) for p in parts):
            return or_(self.string_atom(field, variant, cased) for variant in self._expand(parts))
        return self.string_atom(field, parts, cased)

    def _expand(self, parts: list[Any]) -> list[list[Any]]:
        choices: list[list[list[Any]]] = []
        for part in parts:
            if isinstance(part, Placeholder):
                values = self.placeholders.get(part.name)
                if not values:
                    self._warnings.append(
                        f"placeholder %{part.name}% has no values; its condition matches nothing"
                        " (give values with --placeholders FILE)"
                    )
                    return []
                choices.append([list(SigmaString(v).s) for v in values])
            else:
                choices.append([[part]])
        return [[p for group in combo for p in group] for combo in itertools.product(*choices)]

    def string_atom(self, field: str | None, parts: list[Any], cased: bool) -> Expr:
        parts = _merge(parts)
        if field is None:
            # Keywords are a full-text search: substring semantics within any one value.
            parts = _merge([_STAR, *parts, _STAR])
        if not parts:
            return self.ref(Atom(field, "eq", "", cased))
        if parts == [_STAR]:
            return self.ref(Atom(field, "any"))
        lead = parts[0] is _STAR
        trail = len(parts) > 1 and parts[-1] is _STAR
        core = parts[int(lead) : len(parts) - int(trail)]
        fold = (lambda s: s) if cased else str.casefold
        if all(isinstance(p, str) for p in core):
            text = fold("".join(core))
            op = "contains" if lead and trail else "suffix" if lead else "prefix" if trail else "eq"
            if op == "contains" and not text:
                return self.ref(Atom(field, "any"))
            return self.ref(Atom(field, op, text, cased))
        regex = ["^"]
        literals = []
        for part in parts:
            if part is _STAR:
                regex.append(".*")
            elif part is _QMARK:
                regex.append(".")
            else:
                literals.append(fold(part))
                regex.append(re.escape(fold(part)))
        regex.append(r"\Z")
        prefilter = max(literals, key=len) if literals else None
        return self.ref(Atom(field, "glob", "".join(regex), cased, prefilter or None))

    def ref(self, atom: Atom) -> Ref:
        index = self._atoms.get(atom)
        if index is None:
            index = self._atoms[atom] = len(self.plan.atoms)
            self.plan.atoms.append(atom)
        return Ref(index)


_CORRELATION_TYPES = {
    "event_count",
    "value_count",
    "temporal",
    "temporal_ordered",
    "value_sum",
    "value_avg",
    "value_percentile",
    "value_median",
}
_THRESHOLD_OPS = ("gt", "gte", "lt", "lte", "eq", "neq")


def compile_correlation(
    rule: SigmaCorrelationRule,
    path: str,
    raw: dict[str, Any],
    names: dict[str, int],
    plan: Plan,
) -> CompiledCorrelation:
    kind = str(rule.type)
    if kind not in _CORRELATION_TYPES:
        raise RuleCompileError(f"correlation type {kind} is not supported")
    indexes: list[int] = []
    for reference in rule.rules or ():
        index = names.get(reference.reference)
        if index is None:
            raise RuleCompileError(
                f"referenced rule {reference.reference!r} is not loaded (or is itself a "
                "correlation; chained correlations are not supported)"
            )
        indexes.append(index)
    if not indexes:
        raise RuleCompileError("a correlation needs at least one referenced rule")
    group_by = tuple(rule.group_by or ())
    aliases = rule.aliases.aliases if rule.aliases else {}
    fields = []
    for reference in rule.rules or ():
        per_rule = []
        for name in group_by:
            alias = aliases.get(name)
            if alias is None:
                per_rule.append(name)
                continue
            mapped = next(
                (f for ref, f in alias.mapping.items() if ref.reference == reference.reference),
                None,
            )
            if mapped is None:
                raise RuleCompileError(
                    f"alias {name!r} has no field for rule {reference.reference!r}"
                )
            per_rule.append(mapped)
        fields.append(tuple(per_rule))
    condition = rule.condition
    expression = None
    value_field = percentile = None
    if isinstance(condition, SigmaExtendedCorrelationCondition):
        if kind != "temporal":
            raise RuleCompileError("extended conditions are supported on temporal correlations")
        positions = {ref.reference: i for i, ref in enumerate(rule.rules or ())}
        expression = _expression(condition.parsed, positions)
        threshold = Threshold("gte", 1)
    else:
        threshold = _threshold(condition, raw.get("condition"))
        if kind.startswith("temporal") and not raw.get("condition"):
            threshold = Threshold("gte", len(indexes))  # by default all rules must occur
        if kind not in ("event_count", "temporal", "temporal_ordered"):
            value_field = condition.fieldref
            if isinstance(value_field, list):
                if len(value_field) != 1:
                    raise RuleCompileError("one condition field is supported")
                value_field = value_field[0]
            if not value_field:
                raise RuleCompileError(f"{kind} needs a condition field")
        if kind == "value_percentile":
            if condition.percentile is None or not 0 <= condition.percentile <= 100:
                raise RuleCompileError("value_percentile needs a percentile between 0 and 100")
            percentile = float(condition.percentile)
        elif kind == "value_median":
            percentile = 50.0
    if rule.timespan is None or not rule.timespan.seconds:
        raise RuleCompileError("a correlation needs a timespan")
    logsource: dict[str, str] = {}
    return CompiledCorrelation(
        meta=_meta(rule, path, logsource),  # type: ignore[arg-type]
        type=kind,
        rules=tuple(indexes),
        group_by=group_by,
        fields=tuple(fields),
        timespan=float(rule.timespan.seconds),
        threshold=threshold,
        value_field=value_field,
        percentile=percentile,
        generate=bool(rule.generate),
        expression=expression,
    )


def _threshold(condition: Any, raw: Any) -> Threshold:
    """pySigma keeps one operator; a range (``gte: 5, lte: 10``) keeps both from the YAML."""
    first = Threshold(condition.op.name.lower(), float(condition.count))
    if not isinstance(raw, dict):
        return first
    bounds = [(op, raw[op]) for op in _THRESHOLD_OPS if op in raw]
    if len(bounds) == 1:
        return first
    if len(bounds) != 2:
        raise RuleCompileError("a range condition has exactly two bounds")
    try:
        (op1, v1), (op2, v2) = ((op, float(v)) for op, v in bounds)
    except (TypeError, ValueError) as exc:
        raise RuleCompileError(f"invalid condition bound: {exc}") from exc
    return Threshold(op1, v1, (op2, v2))


def _expression(node: Any, positions: dict[str, int]) -> Any:
    if isinstance(node, SigmaRuleReference):
        if node.reference not in positions:
            raise RuleCompileError(f"condition names {node.reference!r}, not a referenced rule")
        return positions[node.reference]
    name = type(node).__name__
    args = [_expression(a, positions) for a in node.args]
    if name.endswith("AND"):
        return ("and", *args)
    if name.endswith("OR"):
        return ("or", *args)
    if name.endswith("NOT"):
        return ("not", *args)
    raise RuleCompileError(f"unsupported condition element {name}")


def _merge(parts: list[Any]) -> list[Any]:
    """Join adjacent text parts and collapse runs of ``*``."""
    out: list[Any] = []
    for part in parts:
        if isinstance(part, str):
            if not part:
                continue
            if out and isinstance(out[-1], str):
                out[-1] += part
                continue
        elif part is _STAR and out and out[-1] is _STAR:
            continue
        out.append(part)
    return out


def _meta(rule: Any, path: str, logsource: dict[str, str]) -> RuleMeta:
    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    return RuleMeta(
        id=str(rule.id) if rule.id else "",
        title=rule.title,
        level=str(rule.level) if rule.level else "informational",
        status=text(rule.status),
        tags=tuple(str(t) for t in rule.tags),
        logsource=tuple(logsource.items()),
        path=path,
        description=rule.description,
        falsepositives=tuple(str(f) for f in rule.falsepositives or ()),
        references=tuple(str(r) for r in rule.references or ()),
        attributes=tuple(
            (str(k), v) for k, v in (rule.custom_attributes or {}).items() if k != "correlation"
        ),
        author=text(getattr(rule, "author", None)),
    )
