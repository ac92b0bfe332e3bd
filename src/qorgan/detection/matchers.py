"""Per-field matchers: every atom on one field evaluated together over a batch's distinct values.

A batch is dictionary-encoded per field (each distinct value once), so an atom is evaluated on
distinct values, not on rows. Literal atoms of a field (equals, prefix, suffix, contains, and the
literal prefilters of wildcard and regex atoms) go into one hash table and one Aho-Corasick
automaton (pyahocorasick), scanned once per distinct value whatever the number of rules.
"""

from __future__ import annotations

import ipaddress
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import ahocorasick
import hyperscan
import numpy as np
import orjson

from qorgan.detection.plan import Atom

# Kinds of automaton payloads.
_CONTAINS, _PREFIX, _SUFFIX, _PRE = 0, 1, 2, 3
#: Regex literals shorter than this are not worth a prefilter.
MIN_PREFILTER = 3


#: Keyword texts are prefiltered this many events at a time, to bound the memory of a batch.
KEYWORD_CHUNK = 4096
#: Keyword keys at least this long are found by one scan over a batch's texts; shorter
#: ones (which most texts hold, so that each hit would cost more than the look-up it saves) are
#: looked for only in the texts an atom is asked about.
MIN_SCANNED = 3
#: Scanners of keyword keys kept, one per set of atoms a batch needs.
MAX_AUTOMATA = 64


def fold(text: str) -> str:
    """Case folding for caseless matching: ``str.casefold``, with the fast ASCII path of
    ``str.lower`` (the same result on ASCII text)."""
    return text.lower() if text.isascii() else text.casefold()


def text_of(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is float and value.is_integer():
        return str(int(value))
    return str(value)


def elements(value: Any) -> tuple[str, ...]:
    """The texts of one distinct value (a list matches when any element does)."""
    if type(value) is str:
        return (value,)
    if type(value) is tuple:
        return tuple(text_of(v) for v in value if v is not None)
    return (text_of(value),)


def _number(text: str) -> float | None:
    try:
        return float(int(text, 0)) if text[:2].lower() in ("0x", "0o", "0b") else float(text)
    except ValueError:
        return None


_CMP_OPS = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "neq": lambda a, b: a != b,
}


def regex_prefilter(pattern: str, flags: int) -> str | None:
    """A literal every match must contain (case-folded), or None. Conservative: only literal
    runs at the top level of the pattern (not inside alternations, repeats or classes)."""
    try:
        parsed = re._parser.parse(pattern, flags)  # type: ignore[attr-defined]
    except re.error:
        return None
    best = ""
    run: list[str] = []
    literal = re._constants.LITERAL  # type: ignore[attr-defined]
    subpattern = re._constants.SUBPATTERN  # type: ignore[attr-defined]

    def flush() -> None:
        nonlocal best
        text = "".join(run)
        if len(text) > len(best):
            best = text
        run.clear()

    def walk(items: Any) -> None:
        for op, arg in items:
            if op is literal:
                run.append(chr(arg))
            elif op is subpattern and arg[1] == 0 and arg[2] == 0:
                walk(arg[3])  # a plain group: its literals are still required in sequence
            else:
                flush()

    walk(parsed)
    flush()
    best = best.casefold()
    return best if len(best) >= MIN_PREFILTER else None


class FieldMatcher:
    """All value atoms of one field (or of keywords, ``field is None``)."""

    def __init__(self, atoms: Sequence[tuple[int, Atom]]) -> None:
        self.eq: dict[str, list[int]] = defaultdict(list)
        self.eq_cased: dict[str, list[int]] = defaultdict(list)
        self.any: list[int] = []
        self.null: list[int] = []
        self.exists: list[int] = []
        self.checks: list[tuple[int, Any]] = []  # (atom, callable(text)->bool), always run
        self.gated: dict[int, Any] = {}  # atom -> callable, run when the prefilter hit
        self.cidrs: list[tuple[int, Any]] = []
        self.cmps: list[tuple[int, str, float]] = []
        patterns: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        patterns_cased: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        for index, atom in atoms:
            op, value = atom.op, atom.value
            if op == "eq":
                (self.eq_cased if atom.cased else self.eq)[value].append(index)
            elif op in ("contains", "prefix", "suffix"):
                kind = {"contains": _CONTAINS, "prefix": _PREFIX, "suffix": _SUFFIX}[op]
                target = patterns_cased if atom.cased else patterns
                target[value].append((index, kind, len(value)))
            elif op == "any":
                self.any.append(index)
            elif op == "null":
                self.null.append(index)
            elif op == "exists":
                self.exists.append(index)
            elif op == "glob":
                rx = re.compile(value, re.DOTALL)
                fn = _cased_fn(rx.match) if atom.cased else _lower_fn(rx.match)
                self._gate(index, fn, atom.prefilter, patterns)
            elif op == "re":
                pattern, flags = value
                rx = re.compile(pattern, flags)
                self._gate(index, _cased_fn(rx.search), regex_prefilter(pattern, flags), patterns)
            elif op == "cidr":
                self.cidrs.append((index, ipaddress.ip_network(value, strict=False)))
            elif op == "cmp":
                self.cmps.append((index, value[0], float(value[1])))
        self.automaton = _automaton(patterns)
        self.automaton_cased = _automaton(patterns_cased)

    def _gate(self, index: int, fn: Any, prefilter: str | None, patterns: dict) -> None:
        if prefilter:
            prefilter = prefilter.casefold()
            patterns[prefilter].append((index, _PRE, len(prefilter)))
            self.gated[index] = fn
        else:
            self.checks.append((index, fn))

    def match(self, uniques: Sequence[Any]) -> dict[int, list[int]]:
        """atom -> indexes of the distinct values it matches (atoms with no match are absent)."""
        hits: dict[int, set[int]] = defaultdict(set)
        eq, eq_cased = self.eq, self.eq_cased
        automaton, automaton_cased = self.automaton, self.automaton_cased
        checks, gated, cidrs, cmps = self.checks, self.gated, self.cidrs, self.cmps
        for u, value in enumerate(uniques):
            for text in (value,) if type(value) is str else elements(value):
                low = text.lower() if text.isascii() else text.casefold()
                found = eq.get(low)
                if found:
                    for a in found:
                        hits[a].add(u)
                if eq_cased:
                    found = eq_cased.get(text)
                    if found:
                        for a in found:
                            hits[a].add(u)
                if automaton is not None:
                    _scan(automaton, low, text, u, hits, gated)
                if automaton_cased is not None:
                    _scan(automaton_cased, text, text, u, hits, gated)
                for a, fn in checks:
                    if fn(text):
                        hits[a].add(u)
                if cidrs:
                    try:
                        ip = ipaddress.ip_address(text.strip())
                    except ValueError:
                        ip = None
                    if ip is not None:
                        for a, net in cidrs:
                            if ip.version == net.version and ip in net:
                                hits[a].add(u)
                if cmps:
                    number = _number(text.strip())
                    if number is not None:
                        for a, op, bound in cmps:
                            if _CMP_OPS[op](number, bound):
                                hits[a].add(u)
            if self.any and elements(value):
                for a in self.any:
                    hits[a].add(u)
        return {a: sorted(us) for a, us in hits.items()}


def _scan(automaton: Any, hay: str, text: str, u: int, hits: dict, gated: dict) -> None:
    last = len(hay) - 1
    for end, payload in automaton.iter(hay):
        for atom, kind, length in payload:
            if kind == _CONTAINS:
                hits[atom].add(u)
            elif kind == _PREFIX:
                if end == length - 1:
                    hits[atom].add(u)
            elif kind == _SUFFIX:
                if end == last:
                    hits[atom].add(u)
            elif u not in hits.get(atom, ()) and gated[atom](text):
                hits[atom].add(u)


def _automaton(patterns: dict[str, list[tuple[int, int, int]]]) -> Any:
    if not patterns:
        return None
    automaton = ahocorasick.Automaton()
    for key, payload in patterns.items():
        if key:
            automaton.add_word(key, tuple(payload))
    if len(automaton) == 0:
        return None
    automaton.make_automaton()
    return automaton


def _lower_fn(fn: Any) -> Any:
    return lambda text: fn(fold(text)) is not None


def _cased_fn(fn: Any) -> Any:
    return lambda text: fn(text) is not None


class KeywordMatcher:
    """Keyword atoms (no field): a full-text search over all values of an event.

    Distinct values are JSON array texts of an event's values. An atom's key (its longest
    literal, JSON-escaped and case-folded) must occur in the case-folded text: the keys of the
    atoms a batch needs, when at least :data:`MIN_SCANNED` characters long, are found by one
    Hyperscan pass over all the texts (:class:`KeywordScanner`); shorter keys (``':'``,
    ``'-s'``, which nearly every text holds) are looked for only in the texts an atom is asked
    about. A candidate is then decoded
    and checked exactly, value by value, for that one atom (:class:`KeywordSearch`).
    """

    def __init__(self, atoms: Sequence[tuple[int, Atom]]) -> None:
        self.atoms: dict[int, Atom] = dict(atoms)
        self.keys: dict[int, str | None] = {}
        for index, atom in atoms:
            literal = atom.value if atom.op in ("contains", "prefix", "suffix", "eq") else None
            literal = literal if isinstance(literal, str) else atom.prefilter
            if literal:
                escaped = orjson.dumps(literal.casefold()).decode()[1:-1]
                self.keys[index] = escaped.casefold()
            else:
                self.keys[index] = None
        self._checks: dict[int, Any] = {}
        self._scanners: dict[frozenset[int], KeywordScanner | None] = {}

    def search(self, uniques: Sequence[Any], atoms: Iterable[int]) -> KeywordSearch:
        """A batch's texts, for the keyword ``atoms`` its rules may ask about."""
        return KeywordSearch(self, uniques, atoms)

    def match(self, uniques: Sequence[Any]) -> dict[int, list[int]]:
        """atom -> indexes of the distinct values it matches, for every atom (absent: none)."""
        search = self.search(uniques, self.atoms)
        hits = {a: search.hits(a) for a in self.atoms}
        return {a: us for a, us in hits.items() if us}

    def check(self, atom: int) -> Any:
        """The exact test of one atom on an event's values (the texts of its decoded values):
        a :class:`FieldMatcher` of that atom alone, or its equivalent for a caseless substring."""
        fn = self._checks.get(atom)
        if fn is None:
            spec = self.atoms[atom]
            if spec.op == "contains" and not spec.cased and spec.value:
                literal = spec.value

                def fn(texts: tuple[str, ...]) -> bool:
                    for text in texts:
                        if literal in (text.lower() if text.isascii() else text.casefold()):
                            return True
                    return False

            else:
                matcher = FieldMatcher([(atom, spec)])

                def fn(texts: tuple[str, ...]) -> bool:
                    return bool(matcher.match([texts]))

            self._checks[atom] = fn
        return fn

    def scanner(self, atoms: frozenset[int]) -> KeywordScanner | None:
        """One scanner of the long keys of ``atoms`` (None when there is none), kept per set."""
        found = self._scanners.get(atoms, False)
        if found is False:
            keys: dict[str, list[int]] = defaultdict(list)
            for a in sorted(atoms):
                key = self.keys[a]
                if key is not None and len(key) >= MIN_SCANNED:
                    keys[key].append(a)
            found = KeywordScanner(keys) if keys else None
            if len(self._scanners) >= MAX_AUTOMATA:
                self._scanners.clear()
            self._scanners[atoms] = found
        return found


class KeywordScanner:
    """The long keyword keys of a set of atoms in one Hyperscan database of literals, matched
    caselessly (ASCII) in one pass over a batch's texts joined by newlines.

    Hyperscan (Intel's multi-pattern matcher, SIMD) scans these texts 25 times faster than
    pyahocorasick's automaton did (0.33 against 8 µs an event on the diverse Windows input of
    ``bench/hunt.py``, 132 keys), and its caseless mode spares folding the ASCII texts, nearly
    all of them: only a text with other characters is case-folded (``str.casefold``) first. The
    keys are case-folded already, so a caseless match on an ASCII text is a match on its
    folding, and a non-ASCII key cannot match an ASCII text either way. A database's scratch
    space serves one scan at a time: scans take its lock."""

    def __init__(self, keys: dict[str, list[int]]) -> None:
        self.atoms = [tuple(indexes) for indexes in keys.values()]
        self.database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self.database.compile(
            expressions=[key.encode() for key in keys],
            ids=list(range(len(keys))),
            elements=len(keys),
            flags=hyperscan.HS_FLAG_CASELESS,
            literal=True,
        )
        self._lock = threading.Lock()

    def scan(self, text: bytes) -> list[tuple[int, int]]:
        """``(offset of the match's last byte, key number)`` of every match, in text order."""
        found: list[tuple[int, int]] = []

        def matched(key: int, start: int, end: int, flags: int, context: Any) -> None:
            found.append((end - 1, key))

        with self._lock:
            self.database.scan(text, match_event_handler=matched)
        return found


def scannable(raw: bytes | str) -> bytes:
    """A keyword text as :class:`KeywordScanner` reads it: ASCII as it is, other text
    case-folded, in UTF-8."""
    data = raw.encode() if isinstance(raw, str) else raw
    return data if data.isascii() else fold(data.decode()).encode()


class KeywordSearch:
    """One batch's keyword texts: atoms checked lazily, each only on the texts asked about.

    ``checked`` counts the exact checks run per atom (each distinct text at most once per atom).
    """

    def __init__(self, matcher: KeywordMatcher, uniques: Sequence[Any], atoms: Iterable[int]):
        self.matcher = matcher
        self.uniques = uniques
        self.scanned: dict[int, list[int]] = {}  # atom -> candidate texts (long keys)
        self.known: dict[int, dict[int, bool]] = defaultdict(dict)
        self.checked: Counter[int] = Counter()
        self._values: dict[int, tuple[str, ...]] = {}
        self._folded: dict[int, str] = {}
        wanted = frozenset(atoms)
        scanner = matcher.scanner(wanted)
        for a in wanted:
            key = matcher.keys[a]
            if key is not None and len(key) >= MIN_SCANNED:
                self.scanned[a] = []
        if scanner is not None:
            self._scan(scanner)

    def estimate(self, atom: int) -> int:
        """How many texts ``atom`` may match: its candidates when scanned, else every text."""
        found = self.scanned.get(atom)
        return len(found) if found is not None else len(self.uniques)

    def hits(self, atom: int, among: np.ndarray | None = None) -> list[int]:
        """The texts (indexes, ascending) ``atom`` matches, of those ``among`` marks (a bool per
        text; None: all)."""
        key = self.matcher.keys[atom]
        candidates: Iterable[int]
        found = self.scanned.get(atom)
        if found is not None:
            candidates = found if among is None else [u for u in found if among[u]]
        else:
            every = range(len(self.uniques)) if among is None else np.flatnonzero(among).tolist()
            if key is None:
                candidates = every
            else:
                folded = self._folded_text
                candidates = [u for u in every if key in folded(u)]
        known = self.known[atom]
        check = self.matcher.check(atom)
        out = []
        for u in candidates:
            held = known.get(u)
            if held is None:
                held = known[u] = check(self._texts(u))
                self.checked[atom] += 1
            if held:
                out.append(u)
        return out

    def _texts(self, u: int) -> tuple[str, ...]:
        found = self._values.get(u)
        if found is None:
            found = self._values[u] = elements(_flat(orjson.loads(self.uniques[u])))
        return found

    def _folded_text(self, u: int) -> str:
        found = self._folded.get(u)
        if found is None:
            raw = self.uniques[u]
            found = self._folded[u] = fold(raw.decode() if isinstance(raw, bytes) else raw)
        return found

    def _scan(self, scanner: KeywordScanner) -> None:
        """One scan per chunk of texts joined by newlines (which JSON text never holds); hits
        are mapped back to their text by offset, all at once."""
        uniques, scanned = self.uniques, self.scanned
        for start in range(0, len(uniques), KEYWORD_CHUNK):
            pieces = [scannable(raw) for raw in uniques[start : start + KEYWORD_CHUNK]]
            found = scanner.scan(b"\n".join(pieces))
            if not found:
                continue
            ends = np.cumsum(np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces)) + 1)
            positions = np.fromiter((end for end, _ in found), dtype=np.int64, count=len(found))
            rows = np.searchsorted(ends, positions, side="right") + start
            for u, (_, key) in zip(rows.tolist(), found, strict=True):
                for a in scanner.atoms[key]:
                    hits = scanned[a]
                    if not hits or hits[-1] != u:
                        hits.append(u)


def _flat(values: list[Any]) -> tuple[Any, ...]:
    out: list[Any] = []
    for value in values:
        if type(value) is list:
            out.extend(v for v in value if v is not None)
        elif value is not None:
            out.append(value)
    return tuple(out)
