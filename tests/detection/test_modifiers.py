"""Property tests of Qorgan's Sigma engine against a plain-Python reference, one per modifier and
value form, plus golden tests of conditions.

Every property test builds a rule as a Python dict, dumps it with ``yaml.safe_dump`` (so any
character of the generated values is quoted correctly), compiles it with Qorgan, runs it over a
batch of 20-50 generated events and compares the matched rows with what the reference below
computes. The reference is written from the Sigma specification and deliberately shares no
code with ``qorgan.detection``: wildcards are translated to a regex here, base64 offsets are
derived from the bit layout of base64, windash variants are generated here, CIDR uses
``ipaddress``.

Where the specification leaves room, the chosen behaviour is stated in a comment at the
reference function (look for "Chosen behaviour").
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qorgan.detection.engine import Engine
from qorgan.detection.loader import compile_texts
from qorgan.detection.logsources import LogsourceMap
from qorgan.detection.plan import Plan
from qorgan.telemetry.batch import EventBatch

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
LOGSOURCES = LogsourceMap.load()

#: ASCII letters (both cases), digits, punctuation, Kazakh/Cyrillic letters (both cases), Greek
#: sigma with its final form (case folding is context-sensitive for it in str.lower), the
#: characters Sigma treats specially (``*``, ``?``, ``\``) and characters YAML treats specially.
#: The reference folds case with re.IGNORECASE (per character); for these letters that is the
#: same as Unicode case folding (Σ, σ and ς are one letter).
LETTERS = "aAbBzZ" + "ӘәҒғҚқҢңӨөҰұҮүҺһІі" + "Σσς"
ALPHABET = LETTERS + "019" + "*?\\/-. " + "%:#'\"|\n"
#: No Sigma specials: for modifiers that refuse wildcards (base64, windash, fieldref).
PLAIN_ALPHABET = LETTERS + "019" + "/-. :#'\"|%\n"
MISSING = object()  # the field is absent from the event


# -- running Qorgan --------------------------------------------------------------------------


def rule_text(detection: dict[str, Any]) -> str:
    rule = {
        "title": "property test",
        "id": "6f1c34a4-3d4b-4a4e-9c59-0c7f1f4e2a10",
        "status": "test",
        "logsource": {"product": "test"},
        "detection": detection,
        "level": "low",
    }
    return yaml.safe_dump(rule, allow_unicode=True, sort_keys=False)


def compile_rule(
    detection: dict[str, Any], placeholders: dict[str, list[str]] | None = None
) -> tuple[Plan, str]:
    text = rule_text(detection)
    plan = compile_texts([text], logsources=LOGSOURCES, placeholders=placeholders or {})
    return plan, text


def run_plan(plan: Plan, events: Sequence[dict[str, Any]]) -> set[int]:
    batch = EventBatch(path="t", format="test", logsource={"product": "test"})
    for i, event in enumerate(events):
        batch.append(event, i + 1, "2024-01-01T00:00:00Z", "h")
    rows: set[int] = set()
    for _, matched in Engine(plan).match(batch):
        rows.update(int(r) for r in matched)
    return rows


def run_rule(
    detection: dict[str, Any],
    events: Sequence[dict[str, Any]],
    placeholders: dict[str, list[str]] | None = None,
) -> set[int]:
    plan, text = compile_rule(detection, placeholders)
    assert not plan.failures, f"rule did not compile: {plan.failures}\n{text}"
    return run_plan(plan, events)


def check(
    detection: dict[str, Any],
    events: Sequence[dict[str, Any]],
    expected: Iterable[int],
    placeholders: dict[str, list[str]] | None = None,
) -> None:
    actual = run_rule(detection, events, placeholders)
    expected = set(expected)
    if actual != expected:
        lines = [rule_text(detection)]
        for i in sorted(actual ^ expected):
            lines.append(f"row {i}: {events[i]!r} expected={i in expected} qorgan={i in actual}")
        pytest.fail("\n".join(lines))


def field_events(values: Sequence[Any], field: str = "F") -> list[dict[str, Any]]:
    """One event per value; every event also carries an unrelated field."""
    events = []
    for v in values:
        event: dict[str, Any] = {"Other": "noise"}
        if v is not MISSING:
            event[field] = v
        events.append(event)
    return events


# -- the reference ---------------------------------------------------------------------------


def text_form(value: Any) -> str:
    """How a scalar event value is compared as text (the spec: numbers match their text form).

    Chosen behaviour: booleans are ``true``/``false``; a float with an integral value is written
    without ``.0`` (so 4688.0 matches ``4688``); other floats as Python writes them."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    return str(value)


def field_matches(value: Any, predicate: Callable[[str], bool]) -> bool:
    """A missing or null field matches nothing; a list matches when any element does."""
    if value is MISSING or value is None:
        return False
    if isinstance(value, list):
        return any(predicate(text_form(v)) for v in value if v is not None)
    return predicate(text_form(value))


# A Sigma string as tokens: ("lit", char) | ("star",) | ("one",)
Token = tuple[str, ...]
STAR: Token = ("star",)
ONE: Token = ("one",)


def sigma_tokens(value: str) -> list[Token]:
    """The spec's escaping: ``\\*``, ``\\?``, ``\\\\`` are the literal characters; a backslash
    before anything else is itself literal; ``*`` is any sequence and ``?`` one character."""
    out: list[Token] = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value) and value[i + 1] in "*?\\":
            out.append(("lit", value[i + 1]))
            i += 2
            continue
        if c == "*":
            out.append(STAR)
        elif c == "?":
            out.append(ONE)
        else:
            out.append(("lit", c))
        i += 1
    return out


def tokens_regex(tokens: Sequence[Token], *, cased: bool = False) -> re.Pattern[str]:
    parts = []
    for token in tokens:
        if token == STAR:
            parts.append(".*")
        elif token == ONE:
            parts.append(".")
        else:
            parts.append(re.escape(token[1]))
    flags = re.DOTALL | (0 if cased else re.IGNORECASE)
    return re.compile("".join(parts), flags)


def wildcard_predicate(tokens: Sequence[Token], *, cased: bool = False) -> Callable[[str], bool]:
    rx = tokens_regex(tokens, cased=cased)
    return lambda text: rx.fullmatch(text) is not None


def with_modifier(tokens: list[Token], modifier: str | None) -> list[Token]:
    if modifier in ("contains", "endswith"):
        tokens = [STAR, *tokens]
    if modifier in ("contains", "startswith"):
        tokens = [*tokens, STAR]
    return tokens


def instance_of(draw: st.DrawFn, tokens: Sequence[Token]) -> str:
    """A text the tokens match (modulo case), drawn at random."""
    out = []
    for token in tokens:
        if token == STAR:
            out.append(draw(st.text(ALPHABET, max_size=3)))
        elif token == ONE:
            out.append(draw(st.sampled_from(ALPHABET)))
        else:
            c = token[1]
            out.append(c.swapcase() if draw(st.booleans()) else c)
    return "".join(out)


def mutate(draw: st.DrawFn, text: str) -> str:
    """A near miss: one character dropped, inserted or replaced."""
    if not text:
        return draw(st.text(ALPHABET, min_size=1, max_size=2))
    i = draw(st.integers(0, len(text) - 1))
    how = draw(st.sampled_from(["drop", "insert", "replace"]))
    c = draw(st.sampled_from(ALPHABET))
    if how == "drop":
        return text[:i] + text[i + 1 :]
    if how == "insert":
        return text[:i] + c + text[i:]
    return text[:i] + c + text[i + 1 :]


scalars = st.one_of(
    st.text(ALPHABET, max_size=6),
    st.integers(2, 99_999),  # never 0/1: those share a dictionary slot with False/True
    st.floats(2, 9_999, allow_nan=False).map(lambda f: round(f, 2)),
)


@st.composite
def string_values(draw: st.DrawFn, tokens_list: Sequence[Sequence[Token]]) -> list[Any]:
    """20-50 event values: random values, instances of the patterns and near misses; some are
    lists, some null, some absent."""
    values: list[Any] = []
    n = draw(st.integers(20, 50))
    for _ in range(n):
        kind = draw(st.sampled_from(["random", "instance", "instance", "miss", "list", "null"]))
        if kind == "random":
            values.append(draw(scalars))
        elif kind in ("instance", "miss"):
            text = instance_of(draw, draw(st.sampled_from(tokens_list)))
            values.append(mutate(draw, text) if kind == "miss" else text)
        elif kind == "list":
            elems = [draw(scalars) for _ in range(draw(st.integers(0, 3)))]
            if draw(st.booleans()):
                elems.append(instance_of(draw, draw(st.sampled_from(tokens_list))))
            if draw(st.booleans()):
                elems.insert(0, None)
            values.append(elems)
        else:
            values.append(draw(st.sampled_from([None, MISSING])))
    return values


# -- plain values, contains / startswith / endswith, cased, all ------------------------------

#: Patterns biased towards Sigma's escapes and wildcards next to ordinary text.
patterns = st.lists(
    st.one_of(
        st.text(ALPHABET, min_size=1, max_size=3),
        st.sampled_from(["\\*", "\\?", "\\\\", "\\", "*", "?", "\\a", "\\\\*"]),
    ),
    min_size=1,
    max_size=4,
).map("".join)


@SETTINGS
@given(
    st.sampled_from([None, "contains", "startswith", "endswith"]),
    st.booleans(),
    st.lists(patterns, min_size=1, max_size=3),
    st.data(),
)
def test_string_values(
    modifier: str | None, cased: bool, values: list[str], data: st.DataObject
) -> None:
    """Whole-value wildcard matching, with contains/startswith/endswith and cased; several
    values are OR-ed."""
    tokens = [with_modifier(sigma_tokens(v), modifier) for v in values]
    predicates = [wildcard_predicate(t, cased=cased) for t in tokens]
    event_values = data.draw(string_values(tokens))
    key = "F" + (f"|{modifier}" if modifier else "") + ("|cased" if cased else "")
    rule_value: Any = values if len(values) > 1 else values[0]
    expected = [
        i
        for i, v in enumerate(event_values)
        if field_matches(v, lambda t: any(p(t) for p in predicates))
    ]
    check({"sel": {key: rule_value}, "condition": "sel"}, field_events(event_values), expected)


@SETTINGS
@given(
    st.sampled_from([None, "contains", "startswith", "endswith"]),
    st.lists(patterns, min_size=1, max_size=3),
    st.data(),
)
def test_all_modifier(modifier: str | None, values: list[str], data: st.DataObject) -> None:
    """``|all``: every value must match (the same element of a list value, or different
    elements: a list field matches when each value matches some element)."""
    tokens = [with_modifier(sigma_tokens(v), modifier) for v in values]
    predicates = [wildcard_predicate(t) for t in tokens]
    event_values = data.draw(string_values(tokens))
    # Events that should match: a list holding an instance of every value.
    for _ in range(3):
        event_values.append([instance_of(data.draw, t) for t in tokens])
    key = "F" + (f"|{modifier}" if modifier else "") + "|all"
    expected = [
        i for i, v in enumerate(event_values) if all(field_matches(v, p) for p in predicates)
    ]
    check({"sel": {key: values}, "condition": "sel"}, field_events(event_values), expected)


# -- re --------------------------------------------------------------------------------------

_RE_ATOMS = st.one_of(
    st.sampled_from(ALPHABET).map(re.escape),
    st.sampled_from([".", "[aә]", "[^a ]", r"\d", r"\s", r"\w", "(?:ab|Ә)", "(b|z)"]),
)


@st.composite
def regexes(draw: st.DrawFn) -> str:
    parts = []
    if draw(st.booleans()):
        parts.append("^")
    for _ in range(draw(st.integers(1, 5))):
        atom = draw(_RE_ATOMS)
        atom += draw(st.sampled_from(["", "", "", "*", "+", "?", "{1,2}"]))
        parts.append(atom)
    if draw(st.booleans()):
        parts.append("$")
    return "".join(parts)


@st.composite
def regex_instance(draw: st.DrawFn, pattern: str, flags: int) -> str:
    """Texts likely to match: random texts, then filtered by nothing (the reference decides)."""
    text = draw(st.text(ALPHABET, max_size=8))
    if draw(st.booleans()):
        # Literal runs of the pattern embedded, case-swapped sometimes.
        literal = re.sub(r"\\(.)", r"\1", re.sub(r"[\[\](){}^$.*+?|]|\\[dsw]", "", pattern))
        literal = literal.swapcase() if draw(st.booleans()) else literal
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + literal + text[cut:]
    return text


@SETTINGS
@given(regexes(), st.sets(st.sampled_from(["i", "m", "s"])), st.data())
def test_regex(pattern: str, flag_names: set[str], data: st.DataObject) -> None:
    """``|re``: Python ``re.search``, case-sensitive unless ``|i``; ``|m`` and ``|s``."""
    flags = 0
    for name in flag_names:
        flags |= {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}[name]
    rx = re.compile(pattern, flags)
    values: list[Any] = [
        data.draw(regex_instance(pattern, flags)) for _ in range(data.draw(st.integers(20, 40)))
    ]
    values += [None, MISSING, 12345, [data.draw(regex_instance(pattern, flags)), "x"]]
    key = "F|re" + "".join(f"|{n}" for n in sorted(flag_names))
    expected = [
        i for i, v in enumerate(values) if field_matches(v, lambda t: rx.search(t) is not None)
    ]
    check({"sel": {key: pattern}, "condition": "sel"}, field_events(values), expected)


# -- cidr ------------------------------------------------------------------------------------


@st.composite
def networks(draw: st.DrawFn) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    version = draw(st.sampled_from([4, 6]))
    address = draw(st.ip_addresses(v=version))
    prefix = draw(st.integers(0 if version == 4 else 8, 32 if version == 4 else 128))
    return ipaddress.ip_network(f"{address}/{prefix}", strict=False)


def in_network(text: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """Chosen behaviour: surrounding whitespace is ignored; an IPv4-mapped IPv6 address is not
    in an IPv4 network (only the same IP version matches)."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return False
    return address.version == network.version and address in network


@SETTINGS
@given(st.lists(networks(), min_size=1, max_size=2), st.data())
def test_cidr(nets: list[Any], data: st.DataObject) -> None:
    values: list[Any] = []
    for _ in range(data.draw(st.integers(20, 40))):
        kind = data.draw(st.sampled_from(["inside", "inside", "random", "text", "list", "null"]))
        net = data.draw(st.sampled_from(nets))
        if kind == "inside":
            offset = data.draw(st.integers(0, net.num_addresses - 1))
            address = net.network_address + offset
            text = str(address)
            text = text.upper() if data.draw(st.booleans()) else text
            values.append(f" {text}\t" if data.draw(st.booleans()) else text)
        elif kind == "random":
            values.append(str(data.draw(st.ip_addresses(v=net.version))))
        elif kind == "text":
            values.append(data.draw(st.one_of(st.text("0123456789.:abf/ ", max_size=12), scalars)))
        elif kind == "list":
            values.append([str(data.draw(st.ip_addresses())) for _ in range(2)])
        else:
            values.append(data.draw(st.sampled_from([None, MISSING])))
    rule_value: Any = [str(n) for n in nets] if len(nets) > 1 else str(nets[0])
    expected = [
        i
        for i, v in enumerate(values)
        if field_matches(v, lambda t: any(in_network(t, n) for n in nets))
    ]
    check({"sel": {"F|cidr": rule_value}, "condition": "sel"}, field_events(values), expected)


# -- windash ---------------------------------------------------------------------------------

DASHES = ("-", "/", "\u2013", "\u2014", "\u2015")  # hyphen, slash, en dash, em dash, bar


def _is_word(c: str) -> bool:
    return c.isalnum() or c == "_"


def flag_dashes(value: str) -> list[int]:
    """Positions windash expands. Chosen behaviour (pySigma's reference implementation): a ``-``
    or ``/`` that starts a flag, i.e. is preceded by the start or a non-word character and
    followed by a word character (``-a-b``: only the first dash)."""
    return [
        i
        for i, c in enumerate(value)
        if c in "-/"
        and (i == 0 or not _is_word(value[i - 1]))
        and i + 1 < len(value)
        and _is_word(value[i + 1])
    ]


def windash_variants(value: str) -> list[str]:
    positions = flag_dashes(value)
    out = []
    for combo in itertools.product(DASHES, repeat=len(positions)):
        chars = list(value)
        for pos, dash in zip(positions, combo, strict=True):
            chars[pos] = dash
        out.append("".join(chars))
    return out


@SETTINGS
@given(
    st.sampled_from([None, "contains"]),
    st.text("aAbӘә1 -/.", min_size=1, max_size=10),
    st.data(),
)
def test_windash(modifier: str | None, value: str, data: st.DataObject) -> None:
    key = "F|windash" + (f"|{modifier}" if modifier else "")
    detection = {"sel": {key: value}, "condition": "sel"}
    if len(flag_dashes(value)) > 3:
        # More than three flag dashes: pySigma refuses the value (5^n variants).
        plan, _ = compile_rule(detection)
        assert plan.failures
        return
    variants = windash_variants(value)
    values: list[Any] = []
    for _ in range(data.draw(st.integers(20, 40))):
        variant = data.draw(st.sampled_from(variants))
        chars = [
            data.draw(st.sampled_from(DASHES)) if c in DASHES and data.draw(st.booleans()) else c
            for c in variant
        ]
        text = "".join(chars)
        if data.draw(st.booleans()):
            text = text.swapcase()
        if modifier and data.draw(st.booleans()):
            text = data.draw(st.text("ab -/", max_size=3)) + text + data.draw(st.text("ab -/"))
        values.append(text)
    values += [None, MISSING, [value, "x"]]
    low = [v.lower() for v in variants]
    if modifier == "contains":

        def predicate(t: str) -> bool:
            return any(v in t.lower() for v in low)

    else:

        def predicate(t: str) -> bool:
            return t.lower() in low

    expected = [i for i, v in enumerate(values) if field_matches(v, predicate)]
    check(detection, field_events(values), expected)


# -- base64, base64offset, utf16 family ------------------------------------------------------


def offset_encodings(data: bytes) -> list[str]:
    """The three base64 forms of ``data`` at byte offsets 0, 1 and 2 of an encoded stream,
    keeping only the characters whose six bits all come from ``data``: an offset of k bytes
    spoils the first ceil(8k/6) characters; at the end, one spare byte in the last group spoils
    its last data character and two pads, two spare bytes the last data character and one pad.
    """
    out = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data).decode()
        head = (8 * shift + 5) // 6
        tail = {0: 0, 1: 3, 2: 2}[(shift + len(data)) % 3]
        out.append(encoded[head : len(encoded) - tail])
    return out


ENCODINGS: dict[str | None, Callable[[str], bytes]] = {
    None: lambda s: s.encode("utf-8"),
    "wide": lambda s: s.encode("utf-16-le"),
    "utf16le": lambda s: s.encode("utf-16-le"),
    "utf16be": lambda s: s.encode("utf-16-be"),
    "utf16": lambda s: b"\xff\xfe" + s.encode("utf-16-le"),
}

#: Printable ASCII without the Sigma specials (base64 refuses wildcards); the utf16 family only
#: takes ASCII in pySigma (see test_utf16_non_ascii below).
ASCII_PLAIN = "aAbBzZ019/-. :#'\"|%"


@SETTINGS
@given(
    st.sampled_from([None, "contains"]),
    st.text(PLAIN_ALPHABET, min_size=1, max_size=8),
    st.data(),
)
def test_base64(modifier: str | None, value: str, data: st.DataObject) -> None:
    """``|base64``: the value's UTF-8 bytes in base64. Chosen behaviour: like every string, the
    encoded text is compared case-insensitively (``|cased`` would make it exact)."""
    encoded = base64.b64encode(value.encode()).decode()
    values: list[Any] = []
    for _ in range(data.draw(st.integers(20, 40))):
        kind = data.draw(st.sampled_from(["exact", "swap", "embedded", "other"]))
        if kind == "exact":
            values.append(encoded)
        elif kind == "swap":
            values.append(encoded.swapcase())
        elif kind == "embedded":
            values.append(data.draw(st.text("aZ+/=", max_size=3)) + encoded + "x")
        else:
            values.append(base64.b64encode(data.draw(st.binary(max_size=8))).decode())
    values += [None, MISSING]
    key = "F|base64" + (f"|{modifier}" if modifier else "")
    if modifier == "contains":

        def predicate(t: str) -> bool:
            return encoded.lower() in t.lower()

    else:

        def predicate(t: str) -> bool:
            return encoded.lower() == t.lower()

    expected = [i for i, v in enumerate(values) if field_matches(v, predicate)]
    check({"sel": {key: value}, "condition": "sel"}, field_events(values), expected)


@SETTINGS
@given(st.sampled_from([None, "wide", "utf16le", "utf16", "utf16be"]), st.data())
def test_base64offset(encoding: str | None, data: st.DataObject) -> None:
    """``|base64offset|contains`` (optionally after wide/utf16le/utf16/utf16be): an event
    matches when it contains one of the three offset encodings. Independently of that formula,
    the base64 of any bytes around the encoded value must always match."""
    alphabet = PLAIN_ALPHABET if encoding is None else ASCII_PLAIN
    value = data.draw(st.text(alphabet, min_size=1, max_size=8))
    raw = ENCODINGS[encoding](value)
    forms = [f.lower() for f in offset_encodings(raw)]
    values: list[Any] = []
    embedded: list[int] = []
    for _ in range(data.draw(st.integers(20, 40))):
        if data.draw(st.booleans()):
            before = data.draw(st.binary(max_size=5))
            after = data.draw(st.binary(max_size=5))
            embedded.append(len(values))
            values.append(base64.b64encode(before + raw + after).decode())
        else:
            values.append(base64.b64encode(data.draw(st.binary(max_size=12))).decode())
    values += [None, MISSING]
    key = "F" + (f"|{encoding}" if encoding else "") + "|base64offset|contains"
    expected = {
        i
        for i, v in enumerate(values)
        if field_matches(v, lambda t: any(f in t.lower() for f in forms))
    }
    assert set(embedded) <= expected  # the reference agrees with the specification's intent
    check({"sel": {key: value}, "condition": "sel"}, field_events(values), expected)


def test_utf16le_alias() -> None:
    """``utf16le`` is the specification's other name of ``wide`` (pySigma 2.0 lacks it)."""
    raw = "whoami".encode("utf-16-le")
    event = {"F": "x" + base64.b64encode(b"  " + raw).decode()}
    assert run_rule(
        {"sel": {"F|utf16le|base64offset|contains": "whoami"}, "condition": "sel"}, [event]
    ) == {0}


@pytest.mark.xfail(
    reason="pySigma 2.0.1 refuses non-ASCII values for wide/utf16/utf16be ('only allowed for "
    "ascii strings'), so e.g. a Kazakh word in an encoded PowerShell command cannot be matched"
)
@pytest.mark.parametrize("encoding", ["wide", "utf16", "utf16be"])
def test_utf16_non_ascii(encoding: str) -> None:
    value = "Қазақстан"
    event = {"F": base64.b64encode(ENCODINGS[encoding](value)).decode()}
    detection = {"sel": {f"F|{encoding}|base64offset|contains": value}, "condition": "sel"}
    assert run_rule(detection, [event]) == {0}


# -- expand ----------------------------------------------------------------------------------

EXPAND_ALPHABET = LETTERS + "019*?/-. "


@SETTINGS
@given(
    st.lists(
        st.one_of(st.text(EXPAND_ALPHABET, max_size=3), st.sampled_from(["%p%", "%q%"])),
        min_size=1,
        max_size=4,
    ).filter(lambda parts: any(p in ("%p%", "%q%") for p in parts)),
    st.dictionaries(
        st.sampled_from(["p", "q"]),
        st.lists(st.text(EXPAND_ALPHABET, max_size=3), min_size=1, max_size=3),
    ),
    st.data(),
)
def test_expand(parts: list[str], placeholders: dict[str, list[str]], data: st.DataObject) -> None:
    """``|expand``: each ``%name%`` is replaced by each of its values (values may hold
    wildcards). A placeholder without values makes the condition match nothing, with a warning.
    Adjacent literal parts are joined first, as they would be in the YAML text."""
    merged: list[str] = []
    for part in parts:
        if merged and part not in ("%p%", "%q%") and merged[-1] not in ("%p%", "%q%"):
            merged[-1] += part
        else:
            merged.append(part)
    pattern = "".join(merged)
    names = [p[1:-1] for p in merged if p in ("%p%", "%q%")]
    detection = {"sel": {"F|expand": pattern}, "condition": "sel"}
    missing = [n for n in names if n not in placeholders]
    alternatives: list[list[Token]] = []
    if not missing:
        choice_lists = [
            [sigma_tokens(v) for v in placeholders[p[1:-1]]]
            if p in ("%p%", "%q%")
            else [sigma_tokens(p)]
            for p in merged
        ]
        for combo in itertools.product(*choice_lists):
            alternatives.append([t for tokens in combo for t in tokens])
    values = data.draw(string_values(alternatives or [sigma_tokens(pattern)]))
    predicates = [wildcard_predicate(a) for a in alternatives]
    expected = [
        i for i, v in enumerate(values) if field_matches(v, lambda t: any(p(t) for p in predicates))
    ]
    plan, _ = compile_rule(detection, placeholders)
    assert not plan.failures
    if missing:
        assert plan.warnings, "an unresolved placeholder must be reported"
        assert any(f"%{missing[0]}%" in w.message for w in plan.warnings)
    check(detection, field_events(values), expected, placeholders)


def test_expand_without_values_under_not() -> None:
    """An unresolved placeholder matches nothing, so its negation matches everything."""
    detection = {"sel": {"F|expand": "%admins%"}, "condition": "not sel"}
    plan, _ = compile_rule(detection)
    assert plan.warnings
    assert run_plan(plan, field_events(["a", "root", MISSING])) == {0, 1, 2}


# -- fieldref --------------------------------------------------------------------------------

fieldref_values = st.one_of(
    st.sampled_from(["", "a", "A", "ab", "AB", "abz", "zab", "Әб", "әБ", "xӘбy", "1", "12"]),
    st.integers(1, 12),
    st.lists(st.sampled_from(["a", "AB", "Әб", "z"]), max_size=3),
    st.just(None),
    st.just(MISSING),
)


def fieldref_predicate(mode: str) -> Callable[[str, str], bool]:
    """Chosen behaviour: field references compare case-insensitively, like every Sigma string
    match without ``|cased``; numbers by their text form; lists element by element."""
    if mode == "startswith":
        return lambda a, b: a.lower().startswith(b.lower())
    if mode == "endswith":
        return lambda a, b: a.lower().endswith(b.lower())
    if mode == "contains":
        return lambda a, b: b.lower() in a.lower()
    return lambda a, b: a.lower() == b.lower()


def texts_of(value: Any) -> list[str]:
    if value is MISSING or value is None:
        return []
    if isinstance(value, list):
        return [text_form(v) for v in value if v is not None]
    return [text_form(value)]


def fieldref_expected(
    pairs: Sequence[tuple[Any, Any]], predicate: Callable[[str, str], bool]
) -> list[int]:
    return [
        i
        for i, (f, g) in enumerate(pairs)
        if any(predicate(a, b) for a in texts_of(f) for b in texts_of(g))
    ]


def fieldref_events(pairs: Sequence[tuple[Any, Any]]) -> list[dict[str, Any]]:
    events = []
    for f, g in pairs:
        event: dict[str, Any] = {}
        if f is not MISSING:
            event["F"] = f
        if g is not MISSING:
            event["G"] = g
        events.append(event)
    return events


@SETTINGS
@given(
    st.sampled_from([None, "startswith", "endswith"]),
    st.lists(st.tuples(fieldref_values, fieldref_values), min_size=20, max_size=40),
)
def test_fieldref(modifier: str | None, pairs: list[tuple[Any, Any]]) -> None:
    key = "F|fieldref" + (f"|{modifier}" if modifier else "")
    expected = fieldref_expected(pairs, fieldref_predicate(modifier or "eq"))
    check({"sel": {key: "G"}, "condition": "sel"}, fieldref_events(pairs), expected)


def test_fieldref_contains() -> None:
    """Regression: ``|fieldref|contains`` once behaved like ``|fieldref|startswith``."""
    pairs = [("xaby", "ab"), ("abx", "ab"), ("xab", "ab"), ("XABY", "ab"), ("b", "ab")]
    check(
        {"sel": {"F|fieldref|contains": "G"}, "condition": "sel"},
        fieldref_events(pairs),
        [0, 1, 2, 3],
    )


# -- exists, null, numbers, booleans, comparisons --------------------------------------------

presence_values = st.sampled_from([MISSING, None, "", "x", "null", 7, 2.5, [], [None], ["a"]])


@SETTINGS
@given(st.booleans(), st.lists(presence_values, min_size=20, max_size=40))
def test_exists(flag: bool, values: list[Any]) -> None:
    """``|exists: true``: present and not null. Chosen behaviour: any list, even empty or of
    nulls, is a present value; the empty string is present."""
    expected = [i for i, v in enumerate(values) if (v is not MISSING and v is not None) == flag]
    check({"sel": {"F|exists": flag}, "condition": "sel"}, field_events(values), expected)


@SETTINGS
@given(st.lists(presence_values, min_size=20, max_size=40), st.booleans())
def test_null(values: list[Any], in_list: bool) -> None:
    """``F: null`` (or ``F: [null, ...]``): the field is absent or null; the text ``null`` and
    empty values are not null."""
    rule_value: Any = [None, "x"] if in_list else None
    expected = [
        i
        for i, v in enumerate(values)
        if v is MISSING or v is None or (in_list and field_matches(v, lambda t: t.lower() == "x"))
    ]
    check({"sel": {"F": rule_value}, "condition": "sel"}, field_events(values), expected)


number_rule_values = st.one_of(
    st.integers(-5000, 5000).filter(lambda n: n not in (0, 1)),
    st.sampled_from([4688, 2.5, -3.25, 100.0, 7]),
)


@SETTINGS
@given(number_rule_values, st.data())
def test_numbers(number: int | float, data: st.DataObject) -> None:
    """A number matches the field's text form: int 4688, "4688" and 4688.0 all match ``4688``.
    Chosen behaviour: no numeric normalisation of strings ("04688", "4688.0" do not match)."""
    candidates = [
        number,
        str(number),
        text_form(number),
        float(number),
        f"0{number}",
        f"{number}.0",
        f" {number}",
        number + 1,
        str(number + 1),
        -number,
        [number + 1, text_form(number)],
        None,
        MISSING,
        "x",
    ]
    values = data.draw(st.lists(st.sampled_from(candidates), min_size=20, max_size=40))
    want = text_form(number)
    expected = [i for i, v in enumerate(values) if field_matches(v, lambda t: t == want)]
    check({"sel": {"F": number}, "condition": "sel"}, field_events(values), expected)


@SETTINGS
@given(st.booleans(), st.data())
def test_booleans(flag: bool, data: st.DataObject) -> None:
    """A boolean matches the booleans and their text, case-insensitively."""
    candidates = [True, False, "true", "TRUE", "false", "False", "1", "yes", [False, True], None]
    values = data.draw(st.lists(st.sampled_from([*candidates, MISSING]), min_size=20, max_size=40))
    want = "true" if flag else "false"
    expected = [i for i, v in enumerate(values) if field_matches(v, lambda t: t.lower() == want)]
    check({"sel": {"F": flag}, "condition": "sel"}, field_events(values), expected)


_HEX = re.compile(r"0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+")
_DECIMAL = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def number_of(text: str) -> float | None:
    """Chosen behaviour for comparisons: a value is a number if it is an int/float, or a text
    holding a decimal number, or a 0x/0o/0b-prefixed integer (Windows logs write many numbers
    in hex), surrounding whitespace ignored; anything else never compares."""
    text = text.strip()
    if _HEX.fullmatch(text):
        return float(int(text, 0))
    if _DECIMAL.fullmatch(text):
        return float(text)
    return None


COMPARE = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
}
numeric_values = st.one_of(
    st.integers(-200, 200).filter(lambda n: n not in (0, 1)),
    st.floats(-200, 200, allow_nan=False)
    .map(lambda f: round(f, 1))
    .filter(lambda f: f not in (0, 1)),
    st.integers(-200, 200).map(str),
    st.floats(-200, 200).map(lambda f: f"{f:.2f}"),
    st.integers(0, 300).map(hex),
    st.integers(-200, 200).map(lambda n: f" {n} "),
    st.text("019.-eab ", max_size=5),
    st.lists(st.integers(-200, 200).filter(lambda n: n not in (0, 1)), max_size=3),
    st.sampled_from([None, MISSING, "abc", "1e2", "-.5"]),
)


@SETTINGS
@given(
    st.sampled_from(sorted(COMPARE)),
    st.one_of(st.integers(-150, 150), st.floats(-150, 150).map(lambda f: round(f, 2))),
    st.lists(numeric_values, min_size=20, max_size=40),
)
def test_compare(op: str, bound: int | float, values: list[Any]) -> None:
    def predicate(text: str) -> bool:
        number = number_of(text)
        return number is not None and COMPARE[op](number, bound)

    expected = [i for i, v in enumerate(values) if field_matches(v, predicate)]
    check({"sel": {f"F|{op}": bound}, "condition": "sel"}, field_events(values), expected)


# -- keywords --------------------------------------------------------------------------------


@SETTINGS
@given(st.lists(patterns, min_size=1, max_size=3), st.data())
def test_keywords(keywords: list[str], data: st.DataObject) -> None:
    """Unfielded values: a wildcard match, as a substring, of any one value of the event (not
    across two values); keywords of a list are OR-ed."""
    alternatives = [[STAR, *sigma_tokens(k), STAR] for k in keywords]
    predicates = [wildcard_predicate(a) for a in alternatives]
    columns = [data.draw(string_values(alternatives)) for _ in range(3)]
    events = []
    for row in zip(*columns, strict=False):
        event = {}
        for name, value in zip(("A", "B", "Command Line"), row, strict=True):
            if value is not MISSING:
                event[name] = value
        events.append(event)
    expected = [
        i
        for i, event in enumerate(events)
        if any(field_matches(v, lambda t: any(p(t) for p in predicates)) for v in event.values())
    ]
    check({"keywords": keywords, "condition": "keywords"}, events, expected)


# -- conditions ------------------------------------------------------------------------------

SELECTIONS = ("sel_a", "sel_b", "filter_c", "filter_d")


@st.composite
def conditions(draw: st.DrawFn, depth: int = 0) -> tuple[str, Callable[[dict[str, bool]], bool]]:
    """A condition text and its meaning over the truth values of the selections."""
    leaves = ["name", "1 of sel_*", "all of sel_*", "1 of filter_*", "all of them", "1 of them"]
    kind = draw(st.sampled_from(leaves + (["not", "and", "or"] if depth < 3 else [])))
    if kind == "name":
        name = draw(st.sampled_from(SELECTIONS))
        return name, lambda s: s[name]
    if kind.endswith(" of them"):
        fn = all if kind.startswith("all") else any
        return kind, lambda s: fn(s.values())
    if " of " in kind:
        prefix = kind.split(" of ")[1].rstrip("*")
        fn = all if kind.startswith("all") else any
        return kind, lambda s: fn(v for k, v in s.items() if k.startswith(prefix))
    if kind == "not":
        text, inner = draw(conditions(depth + 1))
        return f"not ({text})", lambda s: not inner(s)
    (left, lf), (right, rf) = draw(conditions(depth + 1)), draw(conditions(depth + 1))
    if kind == "and":
        return f"({left}) and ({right})", lambda s: lf(s) and rf(s)
    return f"({left}) or ({right})", lambda s: lf(s) or rf(s)


@SETTINGS
@given(
    conditions(),
    st.lists(
        st.fixed_dictionaries({s: st.sampled_from(["yes", "no", MISSING]) for s in SELECTIONS}),
        min_size=20,
        max_size=40,
    ),
)
def test_conditions(condition: tuple[str, Any], rows: list[dict[str, Any]]) -> None:
    """Random condition trees (``not``, ``and``, ``or``, parentheses, ``1 of``/``all of`` with
    patterns and ``them``) over selections that each test one field."""
    text, meaning = condition
    detection: dict[str, Any] = {s: {f"F_{s}": "yes"} for s in SELECTIONS}
    detection["condition"] = text
    events = [{f"F_{s}": v for s, v in row.items() if v is not MISSING} for row in rows]
    expected = [
        i for i, row in enumerate(rows) if meaning({s: row[s] == "yes" for s in SELECTIONS})
    ]
    check(detection, events, expected)


# -- golden tests ----------------------------------------------------------------------------

GOLDEN_EVENTS: list[dict[str, Any]] = [
    # 0: a Sysmon-like process creation
    {
        "EventID": 1,
        "Image": "C:\\Windows\\System32\\cmd.exe",
        "CommandLine": "cmd.exe /c whoami",
        "User": "CORP\\alice",
        "ParentImage": "C:\\Windows\\explorer.exe",
    },
    # 1: the same as text, with a null user
    {
        "EventID": "1",
        "Image": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
        "CommandLine": "powershell -enc ZQBjAGgAbwA=",
        "User": None,
        "ParentImage": "C:\\Windows\\System32\\cmd.exe",
    },
    # 2: Security 4688 with list data and a Kazakh user name
    {
        "EventID": 4688,
        "Image": "C:\\Tools\\Қорған.exe",
        "CommandLine": "Қорған.exe --scan",
        "User": "ҚОРҒАН\\Әлия",
        "Data": ["alpha", "Beta", 42],
    },
    # 3: no Image at all
    {"EventID": 4625, "TargetUserName": "admin", "IpAddress": "10.0.0.5", "LogonType": "3"},
    # 4: fieldref case: parent and child the same image
    {
        "EventID": 1,
        "Image": "C:\\x\\loop.exe",
        "ParentImage": "c:\\X\\LOOP.EXE",
        "CommandLine": "loop.exe",
    },
]

GOLDEN: list[tuple[str, dict[str, Any], set[int]]] = [
    (
        "1 of selection_*",
        {
            "selection_cmd": {"Image|endswith": "\\cmd.exe"},
            "selection_ps": {"Image|endswith": "\\powershell.exe"},
            "condition": "1 of selection_*",
        },
        {0, 1},
    ),
    (
        "all of them",
        {
            "sel1": {"EventID": 1},
            "sel2": {"CommandLine|contains": "WHOAMI"},
            "condition": "all of them",
        },
        {0},
    ),
    (
        "not with missing field",
        {"sel": {"Image|endswith": ".exe"}, "condition": "not sel"},
        {3},
    ),
    (
        "parentheses",
        {
            "a": {"EventID": [1, 4688]},
            "b": {"CommandLine|contains": "whoami"},
            "c": {"CommandLine|contains": "--scan"},
            "d": {"Image|contains": "loop"},
            "condition": "a and (b or c) and not d",
        },
        {0, 2},
    ),
    (
        "precedence: not > and > or",
        {
            "a": {"EventID": 1},
            "b": {"LogonType": "3"},
            "c": {"Image|contains": "loop"},
            "condition": "a and not c or b",
        },
        {0, 1, 3},
    ),
    ("keywords", {"keywords": ["whoami", "ҚОРҒАН.EXE"], "condition": "keywords"}, {0, 2}),
    ("keywords in a list value", {"keywords": ["beta"], "condition": "keywords"}, {2}),
    ("keyword with wildcard", {"keywords": ["power*enc"], "condition": "keywords"}, {1}),
    (
        "keywords do not span values",
        {"keywords": ["cmd.exe*whoami*alice"], "condition": "keywords"},
        set(),
    ),
    ("null", {"sel": {"User": None}, "condition": "sel"}, {1, 3, 4}),
    ("null in a list", {"sel": {"User": [None, "corp\\ALICE"]}, "condition": "sel"}, {0, 1, 3, 4}),
    ("exists true", {"sel": {"User|exists": True}, "condition": "sel"}, {0, 2}),
    ("exists false", {"sel": {"Image|exists": False}, "condition": "sel"}, {3}),
    (
        "fieldref",
        {"sel": {"Image|fieldref": "ParentImage"}, "condition": "sel"},
        {4},
    ),
    (
        "fieldref endswith",
        {"sel": {"CommandLine|fieldref|endswith": "EventID"}, "condition": "sel"},
        set(),
    ),
    ("number as int and text", {"sel": {"EventID": 1}, "condition": "sel"}, {0, 1, 4}),
    ("number quoted in the rule", {"sel": {"EventID": "4688"}, "condition": "sel"}, {2}),
    ("number in a list value", {"sel": {"Data": 42}, "condition": "sel"}, {2}),
    ("string in a list value", {"sel": {"Data": "BETA"}, "condition": "sel"}, {2}),
    ("all", {"sel": {"Data|all": ["alpha", "beta"]}, "condition": "sel"}, {2}),
    ("cased", {"sel": {"Data|cased": "beta"}, "condition": "sel"}, set()),
    ("compare", {"sel": {"EventID|gte": 4000}, "condition": "sel"}, {2, 3}),
    ("compare on text", {"sel": {"LogonType|lt": 4}, "condition": "sel"}, {3}),
    ("cidr", {"sel": {"IpAddress|cidr": "10.0.0.0/29"}, "condition": "sel"}, {3}),
    ("windash", {"sel": {"CommandLine|windash|contains": " -scan"}, "condition": "sel"}, set()),
    ("windash flag", {"sel": {"CommandLine|windash|contains": " -c "}, "condition": "sel"}, {0}),
    (
        "base64offset wide",
        {"sel": {"CommandLine|wide|base64offset|contains": "echo"}, "condition": "sel"},
        {1},
    ),
    ("Kazakh case folding", {"sel": {"User|startswith": "қорған\\ә"}, "condition": "sel"}, {2}),
    ("re is case-sensitive", {"sel": {"Image|re": "system32"}, "condition": "sel"}, set()),
    ("re|i", {"sel": {"Image|re|i": "system32\\\\(cmd|windowspower)"}, "condition": "sel"}, {0, 1}),
]


@pytest.mark.parametrize(
    ("detection", "expected"),
    [pytest.param(d, e, id=name) for name, d, e in GOLDEN],
)
def test_golden(detection: dict[str, Any], expected: set[int]) -> None:
    check(detection, GOLDEN_EVENTS, expected)


def test_rules_share_a_batch() -> None:
    """Several rules in one plan each report their own rows."""
    texts = [
        rule_text({"sel": {"EventID": 1}, "condition": "sel"}),
        rule_text({"sel": {"EventID": 4625}, "condition": "sel"}),
        rule_text({"keywords": ["nothing-here"], "condition": "keywords"}),
    ]
    plan = compile_texts(texts, logsources=LOGSOURCES)
    assert not plan.failures
    batch = EventBatch(path="t", format="test", logsource={"product": "test"})
    for i, event in enumerate(GOLDEN_EVENTS):
        batch.append(event, i + 1, None, None)
    found = {r: set(rows.tolist()) for r, rows in Engine(plan).match(batch)}
    assert found == {0: {0, 1, 4}, 1: {3}}


def test_other_logsource_not_selected() -> None:
    plan, _ = compile_rule({"sel": {"EventID": 1}, "condition": "sel"})
    batch = EventBatch(path="t", format="test", logsource={"product": "other"})
    batch.append({"EventID": 1}, 1, None, None)
    assert list(Engine(plan).match(batch)) == []


# -- regressions of bugs found by these tests ------------------------------------------------


def test_final_sigma_contains() -> None:
    """Regression: with str.lower the needle ΣΣΣ became 'σσς', absent from 'xσσσy'."""
    check(
        {"sel": {"F|contains": "ΣΣΣ"}, "condition": "sel"},
        [{"F": "xΣΣΣy"}, {"F": "ΣΣΣ"}],
        [0, 1],
    )


def test_final_sigma_regex_prefilter() -> None:
    """Regression: the regex prefilter 'σσς' (str.lower) was absent from 'σσσa', so the
    case-sensitive regex ΣΣΣ was never tried on 'ΣΣΣA'."""
    check({"sel": {"F|re": "ΣΣΣ"}, "condition": "sel"}, [{"F": "ΣΣΣA"}], [0])


def test_one_failure_per_broken_rule() -> None:
    """A rule with an unknown modifier is one failure."""
    plan, _ = compile_rule({"sel": {"F|nosuchmodifier": "x"}, "condition": "sel"})
    assert len(plan.failures) == 1, plan.failures
