"""STIX 2.1 indicator patterns: the observables a simple pattern names, and back.

Detection matches indicators by exact value (an address, a domain, a URL, a hash, an e-mail
address) or by network range, so only *simple* patterns are useful to it: an OR of equality
comparisons on those values, written in one observation (``[a = 'x' OR b = 'y']``) or in several
(``[a = 'x'] OR [b = 'y']``), with ``IN (...)`` as a list of equalities and ``ISSUBSET 'cidr'``
on addresses. Everything else (AND of two objects, FOLLOWEDBY, qualifiers, MATCHES, LIKE,
comparisons on properties we do not match) is refused with :class:`PatternError` whose
``reasons`` say which parts are not simple, so a feed can count the indicator as "kept but not
matched" instead of matching half of it.

One AND is accepted: several hashes of one file (``[file:hashes.MD5 = 'a' AND
file:hashes.'SHA-256' = 'b']``), which feeds write often; each hash names the same file, so
matching any of them is matching the file.

Patterns are parsed with the OASIS grammar (``stix2patterns``, its ANTLR parse tree walked
here); the package's own inspector flattens AND and OR into one list, which would turn
``[a AND b]`` into two simple indicators, so it is not used.

:func:`indicator` builds a STIX 2.1 indicator dict with a deterministic id derived from the
producer (``created_by_ref``) and the pattern (:func:`qorgan.intel.ids.derived_id`), so the
same value from the same feed always gets the same id (a newer sighting in the feed is a new
*version*: same id and ``created``, later ``modified``). The producer is part of the name
because a STIX id belongs to its creator: two feeds naming the same address are two claims with
their own confidence, and merging them under one id would lose which feed said what.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from stix2patterns.exceptions import ParseException
from stix2patterns.v21.grammars.STIXPatternParser import STIXPatternParser as P
from stix2patterns.v21.pattern import Pattern

from qorgan.core.errors import QorganError
from qorgan.core.tlp import Tlp
from qorgan.intel.ids import IdError, derived_id, stix_time
from qorgan.intel.markings import mark

__all__ = [
    "HASH_ALGORITHMS",
    "Kind",
    "Observable",
    "PatternError",
    "indicator",
    "indicator_id",
    "observables_of",
    "pattern_for",
]


class PatternError(QorganError):
    """A pattern or observable we cannot use; ``reasons`` lists each part that is not simple."""

    def __init__(
        self, message: str, *, reasons: Sequence[str] = (), source: str | None = None
    ) -> None:
        super().__init__(message, source=source)
        self.reasons = list(reasons)


class Kind(StrEnum):
    """The kinds of observable detection matches; values are the STIX object types (but hashes)."""

    ipv4 = "ipv4-addr"
    ipv6 = "ipv6-addr"
    domain = "domain-name"
    url = "url"
    email = "email-addr"
    file_hash = "file-hash"


#: STIX hashing-algorithm-ov names -> hex digest length (None: not hex, e.g. SSDEEP, TLSH).
HASH_ALGORITHMS: dict[str, int | None] = {
    "MD5": 32,
    "SHA-1": 40,
    "SHA-256": 64,
    "SHA-512": 128,
    "SHA3-256": 64,
    "SHA3-512": 128,
    "SSDEEP": None,
    "TLSH": None,
}
_ALGORITHM_ALIASES = {re.sub(r"[-_ ]", "", a).upper(): a for a in HASH_ALGORITHMS}
_HEX = re.compile(r"[0-9a-f]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DOMAIN_FORBIDDEN = re.compile(r"[\s/\\@:'\"?#<>\[\]]")
_MAX_VALUE = 8192


def _algorithm(name: str) -> str:
    """The STIX spelling of a hash algorithm name (``sha256``, ``SHA_256`` -> ``SHA-256``)."""
    canonical = _ALGORITHM_ALIASES.get(re.sub(r"[-_ ]", "", name).upper())
    if canonical is None:
        raise PatternError("unknown hash algorithm (expected MD5, SHA-1, SHA-256, SHA-512, ...)")
    return canonical


@dataclass(frozen=True, slots=True)
class Observable:
    """One value detection can match, normalised: ``Observable(Kind.ipv4, "198.51.100.7")``.

    Construct with :meth:`of`, which checks and normalises the value (addresses in their
    compressed form, domains and hashes lower case); ``algorithm`` is set for file hashes only.
    """

    kind: Kind
    value: str
    algorithm: str | None = field(default=None)

    @classmethod
    def of(cls, kind: str, value: str, algorithm: str | None = None) -> Observable:
        """A checked, normalised observable; :class:`PatternError` says what is wrong."""
        try:
            kind = Kind(kind)
        except ValueError:
            raise PatternError("unknown observable kind") from None
        if not isinstance(value, str) or not value.strip():
            raise PatternError(f"empty {kind.value} value")
        if len(value) > _MAX_VALUE:
            raise PatternError(f"{kind.value} value longer than {_MAX_VALUE} characters")
        value = value.strip()
        if kind is Kind.file_hash:
            if algorithm is None:
                raise PatternError("a file hash needs its algorithm")
            algorithm = _algorithm(algorithm)
            length = HASH_ALGORITHMS[algorithm]
            if length is not None:
                value = value.lower()
                if len(value) != length or not _HEX.fullmatch(value):
                    raise PatternError(f"not a {algorithm} hash ({length} hex digits)")
            elif _CONTROL.search(value):
                raise PatternError(f"control characters in a {algorithm} hash")
            return cls(kind, value, algorithm)
        if algorithm is not None:
            raise PatternError("only file hashes carry an algorithm")
        if kind in (Kind.ipv4, Kind.ipv6):
            value = _address(kind, value)
        elif kind is Kind.domain:
            value = value.lower().rstrip(".")
            if not value or _DOMAIN_FORBIDDEN.search(value) or ".." in value:
                raise PatternError("not a domain name")
        elif kind is Kind.email:
            local, at, domain = value.rpartition("@")
            if not at or not local or not domain or _DOMAIN_FORBIDDEN.search(domain):
                raise PatternError("not an e-mail address")
            value = f"{local}@{domain.lower()}"
        if _CONTROL.search(value):
            raise PatternError(f"control characters in a {kind.value} value")
        return cls(kind, value)

    @property
    def is_network(self) -> bool:
        """Whether this is an address range (CIDR with a prefix shorter than the address)."""
        return self.kind in (Kind.ipv4, Kind.ipv6) and "/" in self.value


def _address(kind: Kind, text: str) -> str:
    """An address or CIDR range in compressed form; a full-length prefix becomes the address."""
    version = 4 if kind is Kind.ipv4 else 6
    try:
        if "/" in text:
            net = ipaddress.ip_network(text, strict=False)
            if net.version == version:
                return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
        else:
            addr = ipaddress.ip_address(text)
            if addr.version == version:
                return str(addr)
    except ValueError:
        pass
    raise PatternError(f"not an {kind.value} address or range")


# --- Reading patterns ---------------------------------------------------------------------


def _unquote(token: str) -> str:
    """A StringLiteral's text without quotes, ``\\'`` and ``\\\\`` undone (one pass, in order)."""
    return re.sub(r"\\(.)", r"\1", token[1:-1], flags=re.DOTALL)


def _path(ctx: P.ObjectPathContext) -> tuple[str, list[str]]:
    """``(object type, [path steps])`` of an object path; list indexes become ``[n]``."""
    obj_type = ctx.objectType().getText()
    first = ctx.firstPathComponent()
    steps = [_unquote(first.getText()) if first.StringLiteral() else first.getText()]
    component = ctx.objectPathComponent()
    pending = [component] if component is not None else []
    while pending:
        node = pending.pop(0)
        if isinstance(node, P.PathStepContext):
            pending[:0] = node.objectPathComponent()
        elif isinstance(node, P.KeyPathStepContext):
            literal = node.StringLiteral()
            steps.append(_unquote(literal.getText()) if literal else node.getText()[1:])
        else:
            steps.append(node.getText())
    return obj_type, steps


def _kind_of_path(obj_type: str, steps: list[str]) -> tuple[Kind, str | None] | None:
    """The observable kind (and hash algorithm) an object path names, or None if none."""
    if steps == ["value"] and obj_type in {k.value for k in Kind}:
        return Kind(obj_type), None
    if obj_type == "file" and len(steps) == 2 and steps[0] == "hashes":
        return Kind.file_hash, steps[1]
    return None


class _Walk:
    """Collects observables from a parse tree, and a reason for every part that is not simple."""

    def __init__(self) -> None:
        self.found: list[Observable] = []
        self.reasons: list[str] = []

    def observations(self, ctx: Any) -> None:
        if isinstance(ctx, P.PatternContext):
            self.observations(ctx.observationExpressions())
        elif isinstance(ctx, P.ObservationExpressionsContext):
            if ctx.FOLLOWEDBY():
                self.reasons.append("FOLLOWEDBY: a sequence of observations")
            for child in ctx.getChildren():
                if not hasattr(child, "symbol"):
                    self.observations(child)
        elif isinstance(ctx, P.ObservationExpressionOrContext):
            for child in ctx.getChildren():
                if not hasattr(child, "symbol"):
                    self.observations(child)
        elif isinstance(ctx, P.ObservationExpressionAndContext):
            if ctx.AND():
                self.reasons.append("AND of observations: all must be seen")
            for child in ctx.getChildren():
                if not hasattr(child, "symbol"):
                    self.observations(child)
        elif isinstance(ctx, P.ObservationExpressionSimpleContext):
            self.comparisons(ctx.comparisonExpression())
        elif isinstance(ctx, P.ObservationExpressionCompoundContext):
            self.observations(ctx.observationExpressions())
        elif isinstance(ctx, P.ObservationExpressionRepeatedContext):
            self.reasons.append("REPEATS qualifier")
            self.observations(ctx.observationExpression())
        elif isinstance(ctx, P.ObservationExpressionWithinContext):
            self.reasons.append("WITHIN qualifier")
            self.observations(ctx.observationExpression())
        elif isinstance(ctx, P.ObservationExpressionStartStopContext):
            self.reasons.append("START/STOP qualifier")
            self.observations(ctx.observationExpression())
        else:  # pragma: no cover - the grammar has no other observation nodes
            self.reasons.append("unknown observation expression")

    def comparisons(self, ctx: Any) -> None:
        if isinstance(ctx, P.ComparisonExpressionContext):
            for child in ctx.getChildren():
                if not hasattr(child, "symbol"):
                    self.comparisons(child)
        elif isinstance(ctx, P.ComparisonExpressionAndContext):
            tests = _and_operands(ctx)
            if len(tests) > 1 and not _all_file_hashes(tests):
                self.reasons.append("AND of comparisons: all must hold together")
            for test in tests:
                self.prop_test(test)
        else:
            self.prop_test(ctx)

    def prop_test(self, ctx: Any) -> None:
        if isinstance(ctx, P.PropTestParenContext):
            self.comparisons(ctx.comparisonExpression())
            return
        operator = _operator(ctx)
        if ctx.NOT() if hasattr(ctx, "NOT") else False:
            self.reasons.append(f"NOT {operator}: a negated comparison")
            return
        obj_type, steps = _path(ctx.objectPath())
        where = f"{obj_type}:{'.'.join(steps)}"
        target = _kind_of_path(obj_type, steps)
        if target is None:
            self.reasons.append(f"{where}: not a property detection matches")
            return
        kind, algorithm = target
        if isinstance(ctx, P.PropTestEqualContext) and ctx.EQ():
            literals = [ctx.primitiveLiteral()]
        elif isinstance(ctx, P.PropTestSetContext):
            literals = list(ctx.setLiteral().primitiveLiteral())
        elif isinstance(ctx, P.PropTestIsSubsetContext) and kind in (Kind.ipv4, Kind.ipv6):
            literals = [ctx]
        else:
            self.reasons.append(
                f"{where} {operator}: only =, IN, and ISSUBSET on addresses are simple"
            )
            return
        for literal in literals:
            if isinstance(literal, P.PrimitiveLiteralContext):
                orderable = literal.orderableLiteral()
                token = orderable.StringLiteral() if orderable is not None else None
            else:
                token = literal.StringLiteral()
            if token is None:
                self.reasons.append(f"{where}: compared with a non-string literal")
                continue
            try:
                self.found.append(Observable.of(kind, _unquote(token.getText()), algorithm))
            except PatternError as err:
                self.reasons.append(f"{where}: {err.message}")


def _and_operands(ctx: P.ComparisonExpressionAndContext) -> list[Any]:
    """The property tests joined by AND under ``ctx`` (the grammar nests them left-deep)."""
    out: list[Any] = []
    for child in ctx.getChildren():
        if isinstance(child, P.ComparisonExpressionAndContext):
            out.extend(_and_operands(child))
        elif not hasattr(child, "symbol"):
            out.append(child)
    return out


def _all_file_hashes(tests: list[Any]) -> bool:
    """Whether each test is ``file:hashes.X = '...'``: several hashes of one file."""
    for test in tests:
        if not (isinstance(test, P.PropTestEqualContext) and test.EQ() and not test.NOT()):
            return False
        obj_type, steps = _path(test.objectPath())
        if obj_type != "file" or len(steps) != 2 or steps[0] != "hashes":
            return False
    return True


def _operator(ctx: Any) -> str:
    """The comparison operator of a property test, for messages."""
    for name in ("EQ", "NEQ", "GT", "LT", "GE", "LE", "IN", "LIKE", "MATCHES"):
        getter = getattr(ctx, name, None)
        if getter is not None and getter() is not None:
            return getter().getText()
    for name in ("ISSUBSET", "ISSUPERSET", "EXISTS"):
        if getattr(ctx, name, None) is not None:
            return name
    return "?"  # pragma: no cover


# The one-comparison forms pattern_for writes (and most feeds send), read without the ANTLR
# parser, which in Python costs about half a millisecond a pattern: a million indicators would
# take minutes. Only the exact spelling matches; anything else, or a value Observable.of refuses,
# goes the grammar's way, so the answer is always the grammar's (a property test checks it).
_STRING = r"'((?:[^'\\]|\\['\\])*)'"
_FAST = re.compile(
    rf"""
    \[(?:
        (?P<kind>ipv4-addr|ipv6-addr|domain-name|url|email-addr):value\x20
        (?P<op>=|ISSUBSET)\x20{_STRING}
      | file:hashes\.(?:'(?P<quoted>[A-Za-z0-9-]+)'|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))
        \x20=\x20{_STRING}
    )\]
    """,
    re.VERBOSE | re.DOTALL,
)


def _fast(pattern: str) -> list[Observable] | None:
    """The observable of a single plain comparison, or None to leave it to the grammar."""
    found = _FAST.fullmatch(pattern)
    if found is None:
        return None
    kind, op, value, quoted, bare, hashed = found.groups()
    try:
        if kind is not None:
            if op == "ISSUBSET" and kind not in ("ipv4-addr", "ipv6-addr"):
                return None
            return [Observable.of(kind, _unquote(f"'{value}'"))]
        return [Observable.of(Kind.file_hash, _unquote(f"'{hashed}'"), quoted or bare)]
    except PatternError:
        return None


def observables_of(pattern: str) -> list[Observable]:
    """The observables a simple STIX 2.1 pattern names, in order, without repeats.

    Raises :class:`PatternError` for a pattern that does not parse, names nothing detection
    matches, or is not simple; ``reasons`` then lists every part that is not (see the module).
    """
    if not isinstance(pattern, str) or not pattern.strip():
        raise PatternError("empty pattern")
    if len(pattern) > 1_000_000:
        raise PatternError("pattern longer than 1,000,000 characters")
    return _fast(pattern) or _grammar(pattern)


def _grammar(pattern: str) -> list[Observable]:
    """:func:`observables_of` by the OASIS grammar: every pattern, slowly."""
    try:
        parsed = Pattern(pattern)
    except ParseException as err:
        # The parser's message names a position and at most a short token; keep it short.
        raise PatternError(f"not a STIX 2.1 pattern ({str(err)[:120]})") from None
    walk = _Walk()
    parsed.visit(_Visitor(walk))
    if walk.reasons:
        raise PatternError(
            "not a simple pattern: " + "; ".join(walk.reasons[:5]), reasons=walk.reasons
        )
    if not walk.found:  # pragma: no cover - every simple comparison yields an observable
        raise PatternError("pattern names no observable")
    return list(dict.fromkeys(walk.found))


class _Visitor:
    """Adapter: ``Pattern.visit`` hands the root to ``visit``; we walk it ourselves."""

    def __init__(self, walk: _Walk) -> None:
        self._walk = walk

    def visit(self, tree: Any) -> None:
        self._walk.observations(tree)


# --- Writing patterns and indicators -------------------------------------------------------


def _quote(value: str) -> str:
    """A STIX string literal: backslash and quote escaped with a backslash (the grammar's)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pattern_for(observable: Observable | Iterable[Observable]) -> str:
    """The STIX pattern naming ``observable`` (several: an OR of observations, in order)."""
    items = [observable] if isinstance(observable, Observable) else list(observable)
    if not items:
        raise PatternError("no observable to write")
    parts = []
    for item in items:
        if item.kind is Kind.file_hash:
            algorithm = item.algorithm or ""
            key = algorithm if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", algorithm) else None
            path = f"file:hashes.{key}" if key else f"file:hashes.{_quote(algorithm)}"
            parts.append(f"[{path} = {_quote(item.value)}]")
        elif item.is_network:
            parts.append(f"[{item.kind.value}:value ISSUBSET {_quote(item.value)}]")
        else:
            parts.append(f"[{item.kind.value}:value = {_quote(item.value)}]")
    return " OR ".join(parts)


def indicator_id(pattern: str, created_by_ref: str) -> str:
    """The deterministic id of the indicator ``created_by_ref`` makes for ``pattern``."""
    return derived_id("indicator", created_by_ref, pattern)


_NAMES = {
    Kind.ipv4: "IPv4 address",
    Kind.ipv6: "IPv6 address",
    Kind.domain: "domain",
    Kind.url: "URL",
    Kind.email: "e-mail address",
    Kind.file_hash: "file hash",
}


def indicator(
    observable: Observable | Sequence[Observable],
    *,
    created_by_ref: str,
    confidence: int,
    valid_from: datetime,
    tlp: Tlp,
    valid_until: datetime | None = None,
    created: datetime | None = None,
    modified: datetime | None = None,
    labels: Iterable[str] = (),
    indicator_types: Iterable[str] = ("malicious-activity",),
    name: str | None = None,
    description: str | None = None,
    external_references: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A STIX 2.1 indicator for ``observable`` as a JSON dict, marked ``tlp``.

    ``created`` defaults to ``valid_from`` and ``modified`` to ``created``: pass a later
    ``modified`` to make a new version of the same indicator (same id). ``confidence`` is the
    STIX 0..100 scale; ``valid_until`` must be after ``valid_from`` (the specification's rule).
    """
    items = [observable] if isinstance(observable, Observable) else list(observable)
    pattern = pattern_for(items)
    if not created_by_ref.startswith("identity--"):
        raise PatternError("created_by_ref must be an identity id")
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, int)
        or not 0 <= confidence <= 100
    ):
        raise PatternError("confidence must be an integer from 0 to 100")
    created = created or valid_from
    modified = modified or created
    if modified < created:
        raise PatternError("modified must not be before created")
    if valid_until is not None and valid_until <= valid_from:
        raise PatternError("valid_until must be after valid_from")
    first = items[0]
    what = _NAMES[first.kind] if len(items) == 1 else f"{len(items)} observables"
    times: dict[datetime, str] = {}  # often created == modified == valid_from: format once

    def when(moment: datetime) -> str:
        if moment not in times:
            try:
                times[moment] = stix_time(moment)
            except IdError as error:
                raise PatternError(str(error)) from None
        return times[moment]

    obj: dict[str, Any] = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": indicator_id(pattern, created_by_ref),
        "created_by_ref": created_by_ref,
        "created": when(created),
        "modified": when(modified),
        "name": name or (f"{what} {first.value}"[:200] if len(items) == 1 else what),
        "description": description or f"Indicator for {what}.",
        "indicator_types": list(indicator_types),
        "pattern": pattern,
        "pattern_type": "stix",
        "pattern_version": "2.1",
        "valid_from": when(valid_from),
        "confidence": confidence,
    }
    if valid_until is not None:
        obj["valid_until"] = when(valid_until)
    if labels := list(labels):
        obj["labels"] = labels
    if external_references:
        obj["external_references"] = [dict(ref) for ref in external_references]
    # The object is freshly built from plain values, so it takes the marking directly instead of
    # through mark()'s defensive deep copy (a third of the cost of a feed's indicator); the
    # reference is the same published TLP 2.0 id mark() writes.
    obj["object_marking_refs"] = [_marking_id(Tlp(tlp))]
    return obj


@functools.cache
def _marking_id(level: Tlp) -> str:
    """The TLP 2.0 marking id :func:`qorgan.intel.markings.mark` writes for ``level``."""
    return str(mark({}, level)["object_marking_refs"][-1])
