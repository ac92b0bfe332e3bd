"""Keyword atoms are checked lazily: only for the rules whose logsource selects rows of the
batch, and under an AND only on the rows the other arguments left. Results are those of checking
every keyword atom on every event (a plain per-event evaluation here is the reference)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from qorgan.detection.engine import Engine
from qorgan.detection.loader import compile_texts
from qorgan.detection.matchers import FieldMatcher, KeywordMatcher, _flat, elements
from qorgan.detection.plan import And, Atom, Const, Expr, Not, Or, Plan, Ref
from qorgan.telemetry.batch import EventBatch

from .test_engine import batch

REMOTE_COPY = """
title: Remote File Copy
id: 33333333-0000-0000-0000-000000000001
level: low
logsource: {product: linux}
detection:
    keywords: [scp, rsync, sftp]
    filter: ['@', ':']
    condition: keywords and filter
"""
BINARY_PADDING = """
title: Binary Padding
id: 33333333-0000-0000-0000-000000000002
level: high
logsource: {product: linux, service: auditd}
detection:
    truncate: [truncate]
    size: ['-s']
    condition: truncate and size
"""
WINDOWS_TIME = """
title: Windows keyword
id: 33333333-0000-0000-0000-000000000003
level: low
logsource: {product: windows}
detection:
    keywords: ['-t']
    condition: keywords
"""


def run(engine: Engine, b: EventBatch) -> dict[str, list[int]]:
    rules = engine.plan.rules
    return {rules[r].meta.title: rows.tolist() for r, rows in engine.match(b)}


def keyword(plan: Plan, text: str) -> int:
    return plan.atoms.index(Atom(None, "contains", text))


def test_a_conjunct_every_event_holds_fires_only_with_the_other() -> None:
    plan = compile_texts([REMOTE_COPY])
    engine = Engine(plan)
    events = [
        {"service": "sshd", "message": "scp -r data alice@backup.example"},  # 0: '@'
        {"service": "sshd", "message": "scp done"},  # neither '@' nor ':'
        {"service": "sshd", "message": "RSYNC to host:/srv"},  # 2: caseless, ':'
        {"service": "sshd", "message": ["sftp", "x:y"]},  # 3: each in an element of a list
        {"service": "sshd", "a:b@c": "scp"},  # ':' and '@' only in a key: no
        {"program": "scp", "message": "to host:/x"},  # 5: in two fields
        {"service": "sshd", "message": "s c p to host:/x"},  # no keyword
    ]
    noise = [
        {"service": "sshd", "message": f"session {i}: opened for root@host"} for i in range(50)
    ]
    result = run(engine, batch(events + noise, product="linux"))
    assert result == {"Remote File Copy": [0, 2, 3, 5]}
    # '@' and ':' are in 55 events; they were checked only on the 5 that hold a keyword.
    assert engine.keyword_checks[keyword(plan, ":")] <= 5
    assert engine.keyword_checks[keyword(plan, "@")] <= 5
    assert engine.keyword_checks[keyword(plan, ":")] > 0


def test_keywords_of_a_rule_of_another_logsource_are_not_checked() -> None:
    plan = compile_texts([REMOTE_COPY, BINARY_PADDING, WINDOWS_TIME])
    engine = Engine(plan)
    padding = [keyword(plan, "truncate"), keyword(plan, "-s")]
    windows = keyword(plan, "-t")
    syslog = [
        {"service": "syslog", "message": "truncate -s 0 /var/log/x -t"},
        {"service": "syslog", "message": "scp x user@host:/tmp -t -s"},
    ]
    assert run(engine, batch(syslog, product="linux")) == {"Remote File Copy": [1]}
    assert all(engine.keyword_checks[a] == 0 for a in [*padding, windows])

    audit = [
        {"service": "auditd", "type": "EXECVE", "a0": "truncate", "a1": "-s", "a2": "10M"},
        {"service": "auditd", "type": "EXECVE", "a0": "truncate", "a1": "--reference=f"},
        {"service": "syslog", "message": "truncate -s 0 /var/log/x"},
    ]
    assert run(engine, batch(audit, product="linux")) == {"Binary Padding": [0]}
    assert all(engine.keyword_checks[a] > 0 for a in padding)  # the counter does count
    assert engine.keyword_checks[windows] == 0
    assert run(engine, batch([{"message": "w32tm -t"}], product="windows")) == {
        "Windows keyword": [0]
    }
    assert engine.keyword_checks[windows] == 1


# -- against a per-event reference ----------------------------------------------------------

WORDS = ["scp", "@", ":", "-s", "0", "dd", "if=", "of=", "Passw*rd", "sh*-i", "ÄБВ", "x?z", "6"]
VALUES = [
    "scp -r a bob@host:/x",
    "dd if=/dev/zero of=/tmp/x",
    "dd if=/dev/zero",
    "PASSWORD reset",
    "passwd changed: ok",
    "bash -c 'sh -i'",
    "äбв",
    "xyz",
    "x_z",
    "truncate -s 0",
    "reboot 6",
    "",
]


def random_rule(rng: random.Random, n: int) -> str:
    lists = {f"k{i}": rng.sample(WORDS, rng.randint(1, 3)) for i in range(rng.randint(2, 4))}
    names = list(lists)
    sel = "program: [sshd, cron]"

    def term(depth: int) -> str:
        if depth > 1 or rng.random() < 0.4:
            name = rng.choice([*names, "sel"])
            return f"not {name}" if rng.random() < 0.25 else name
        op = rng.choice([" and ", " or "])
        return "(" + op.join(term(depth + 1) for _ in range(rng.randint(2, 3))) + ")"

    body = "\n".join(f"    {k}: {v!r}" for k, v in lists.items())
    return (
        f"title: random {n}\nid: 44444444-0000-0000-0000-{n:012d}\nlevel: low\n"
        f"logsource: {{product: linux}}\ndetection:\n    sel:\n        {sel}\n{body}\n"
        f"    condition: {term(0)}\n"
    )


def random_event(rng: random.Random) -> dict[str, Any]:
    event: dict[str, Any] = {"program": rng.choice(["sshd", "cron", "su"])}
    for i in range(rng.randint(0, 3)):
        event[f"f{i}"] = rng.choice(VALUES) if rng.random() < 0.8 else rng.sample(VALUES, 2)
    if rng.random() < 0.2:
        event["pid"] = rng.choice([0, 6, 60, None])
    return event


def reference(plan: Plan, expr: Expr, event: dict[str, Any]) -> bool:
    """The rule's condition on one event, every atom checked in full."""
    if type(expr) is Ref:
        atom = plan.atoms[expr.atom]
        if atom.field is None:
            texts = elements(_flat(list(event.values())))
            return bool(FieldMatcher([(0, atom)]).match([texts]))
        value = event.get(atom.field)
        return value is not None and bool(FieldMatcher([(0, atom)]).match([value]))
    if type(expr) is And:
        return all(reference(plan, a, event) for a in expr.args)
    if type(expr) is Or:
        return any(reference(plan, a, event) for a in expr.args)
    if type(expr) is Not:
        return not reference(plan, expr.arg, event)
    assert type(expr) is Const
    return expr.value


@pytest.mark.parametrize("seed", range(8))
def test_lazy_keywords_match_every_atom_checked_on_every_event(seed: int) -> None:
    rng = random.Random(seed)
    plan = compile_texts([random_rule(rng, n) for n in range(12)])
    assert not plan.failures, plan.failures
    engine = Engine(plan)
    for _ in range(3):
        events = [random_event(rng) for _ in range(rng.randint(1, 80))]
        expected = {
            rule.meta.title: rows
            for rule in plan.rules
            if (rows := [i for i, e in enumerate(events) if reference(plan, rule.condition, e)])
        }
        assert run(engine, batch(events, product="linux")) == expected


def test_keyword_matcher_match_checks_every_atom() -> None:
    """``KeywordMatcher.match`` (every atom on every text) agrees with the lazy search."""
    plan = compile_texts([REMOTE_COPY, BINARY_PADDING])
    atoms = [(i, a) for i, a in enumerate(plan.atoms) if a.field is None]
    matcher = KeywordMatcher(atoms)
    texts = [b'["scp x@y"]', b'["truncate -s 1"]', b'["a:b", ["-S", "TRUNCATE"]]', b"[]"]
    got = matcher.match(texts)
    assert got == {
        keyword(plan, "scp"): [0],
        keyword(plan, "@"): [0],
        keyword(plan, ":"): [2],
        keyword(plan, "truncate"): [1, 2],
        keyword(plan, "-s"): [1, 2],
    }


MIMIKATZ = """
title: Tool words
id: 33333333-0000-0000-0000-000000000004
level: high
logsource: {product: windows}
detection:
    keywords: ['sekurlsa::', 'kerberos::ptt', 'strasse', 'Қазақ', '\\mimilib.dll']
    condition: keywords
"""


def test_keywords_are_found_whatever_the_case_ascii_or_not() -> None:
    """ASCII texts are scanned as they are, caselessly; other texts case-folded first. A text in
    capitals, the Kelvin sign (folds to ``k``), ``ß`` (folds to ``ss``) and Kazakh capitals are
    all found; a near miss of each is not."""
    plan = compile_texts([MIMIKATZ])
    engine = Engine(plan)
    events = [
        {"CommandLine": "mimikatz SEKURLSA::LogonPasswords exit"},  # ASCII capitals
        {"CommandLine": "\u212aERBEROS::PTT ticket.kirbi"},  # Kelvin sign, then ASCII
        {"Address": "STRAßE 5"},
        {"Comment": "ҚАЗАҚ тілі"},
        {"ImageLoaded": "C:\\Windows\\MIMILIB.DLL"},  # JSON escapes the backslash
        {"CommandLine": "sekurlsa:logonpasswords", "User": "kerberos::pt"},  # near misses
        {"Address": "strase", "Comment": "Қазах", "ImageLoaded": "C:\\mimilib.dl"},
    ]
    assert run(engine, batch(events, product="windows")) == {"Tool words": [0, 1, 2, 3, 4]}
