"""The compiler: rules in, frozen plan out; failures reported with reasons, never skipped."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from qorgan.detection.loader import compile_texts, load_plan
from qorgan.detection.plan import And, Atom, Not, Or, Ref

RULE = """
title: Test
id: 11111111-1111-1111-1111-111111111111
status: test
level: high
tags: [attack.t1059]
logsource: {product: test}
detection:
    sel:
        Image|endswith: '\\\\cmd.exe'
        CommandLine|contains|all: [' /c ', 'whoami']
    filter:
        User: 'SYSTEM'
    condition: sel and not filter
"""


def test_rule_compiles_to_shared_atoms() -> None:
    plan = compile_texts([RULE, RULE.replace("1111-111111111111", "1111-222222222222")])
    assert not plan.failures
    assert len(plan.rules) == 2
    assert plan.atoms == [
        Atom("Image", "suffix", "\\cmd.exe"),
        Atom("CommandLine", "contains", " /c "),
        Atom("CommandLine", "contains", "whoami"),
        Atom("User", "eq", "system"),
    ]
    expected = And((Ref(0), Ref(1), Ref(2), Not(Ref(3))))
    assert plan.rules[0].condition == expected
    assert plan.rules[1].condition == expected
    meta = plan.rules[0].meta
    assert (meta.id, meta.level, meta.tags) == (
        "11111111-1111-1111-1111-111111111111",
        "high",
        ("attack.t1059",),
    )


def test_wildcards_inside_become_anchored_glob_with_prefilter() -> None:
    plan = compile_texts([RULE.replace("cmd.exe", "c?d*.exe")])
    glob = plan.atoms[0]
    assert glob.op == "glob"
    assert glob.prefilter == ".exe"  # the longest literal part
    assert glob.value.startswith("^") and glob.value.endswith("\\Z")


def test_selection_of_process_creation_covers_sysmon_and_security() -> None:
    rule = RULE.replace("{product: test}", "{product: windows, category: process_creation}")
    plan = compile_texts([rule])
    selection = plan.selections[plan.rules[0].selection]
    assert selection.tags == (("product", "windows"),)
    assert isinstance(selection.expr, Or)
    atoms = {plan.atoms[a.atom] for alt in selection.expr.args for a in alt.args}
    assert Atom("EventID", "eq", "1") in atoms
    assert Atom("EventID", "eq", "4688") in atoms
    assert Atom("Channel", "eq", "security") in atoms


def test_unmapped_logsource_selects_by_batch_tags() -> None:
    rule = RULE.replace("{product: test}", "{product: aws, service: cloudtrail}")
    plan = compile_texts([rule])
    selection = plan.selections[plan.rules[0].selection]
    assert selection.tags == (("product", "aws"), ("service", "cloudtrail"))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "title: x\nlogsource: {product: t}\ndetection: {sel: {a|re: '('}, condition: sel}\n",
            "regular expression",
        ),
        (
            "title: x\nlogsource: {product: t}\ndetection: {sel: {a: 1}, condition: nosuch}\n",
            "nosuch",
        ),
        (
            "title: x\nlogsource: {product: t}\n"
            "detection: {sel: {a|nosuchmod: 1}, condition: sel}\n",
            "nosuchmod",
        ),
        ("title: [unclosed\n", "parse"),
        (
            "title: x\nlogsource: {product: t}\n"
            "detection: {sel: {a: 1}, condition: sel | count() > 5}\n",
            "pipe",
        ),
    ],
)
def test_bad_rules_are_reported_with_reason(text: str, reason: str) -> None:
    plan = compile_texts([text])
    assert not plan.rules
    assert plan.failures, "a bad rule must be reported"
    assert reason.lower() in plan.failures[0].reason.lower()


def test_correlation_rules_compile_and_bad_references_are_reported() -> None:
    correlation = """
title: Many
correlation:
    type: value_count
    rules: [base]
    group-by: [Host]
    timespan: 5m
    condition: {gte: 3, lt: 10, field: User}
"""
    base = RULE.replace("title: Test", "title: Test\nname: base")
    plan = compile_texts([base, correlation])  # the reference crosses files
    assert not plan.failures
    (c,) = plan.correlations
    assert (c.type, c.rules, c.group_by, c.value_field, c.timespan) == (
        "value_count",
        (0,),
        ("Host",),
        "User",
        300.0,
    )
    assert c.threshold.holds(3) and c.threshold.holds(9)
    assert not c.threshold.holds(2) and not c.threshold.holds(10)
    broken = compile_texts([correlation.replace("[base]", "[nosuch]")])
    assert "nosuch" in broken.failures[0].reason


def test_placeholders_expand_or_warn() -> None:
    rule = RULE.replace("User: 'SYSTEM'", "User|expand: '%admins%'")
    plan = compile_texts([rule], placeholders={"admins": ["root", "adm*"]})
    ops = {(a.field, a.op, a.value) for a in plan.atoms if a.field == "User"}
    assert ops == {("User", "eq", "root"), ("User", "prefix", "adm")}
    unbound = compile_texts([rule])
    assert unbound.rules and unbound.warnings
    assert "%admins%" in unbound.warnings[0].message


def test_plan_cache_is_keyed_by_rule_content(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yml").write_text(RULE, encoding="utf-8")
    cache = tmp_path / "cache"
    first = load_plan([rules], cache_dir=cache)
    assert len(list(cache.glob("*.pickle"))) == 1
    again = load_plan([rules], cache_dir=cache)
    assert again.key == first.key and again.atoms == first.atoms
    (rules / "a.yml").write_text(RULE.replace("whoami", "hostname"), encoding="utf-8")
    changed = load_plan([rules], cache_dir=cache)
    assert changed.key != first.key
    assert Atom("CommandLine", "contains", "hostname") in changed.atoms
    (cache / f"{changed.key}.pickle").write_bytes(b"not a pickle")
    assert load_plan([rules], cache_dir=cache).atoms == changed.atoms
    # The same size, and the same modification time set back: the change time still differs.
    before = (rules / "a.yml").stat()
    (rules / "a.yml").write_text(RULE.replace("whoami", "hostnam3"), encoding="utf-8")
    os.utime(rules / "a.yml", ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (rules / "a.yml").stat().st_size == before.st_size
    edited = load_plan([rules], cache_dir=cache)
    assert Atom("CommandLine", "contains", "hostnam3") in edited.atoms
    assert pickle.loads(pickle.dumps(edited)) == edited  # every part of a plan pickles whole


@pytest.mark.corpus
@pytest.mark.slow
def test_sigmahq_corpus_compiles(shared_data: Path) -> None:
    folders = [
        shared_data / "sigma" / name
        for name in (
            "rules",
            "rules-emerging-threats",
            "rules-threat-hunting",
            "rules-placeholder",
            "rules-compliance",
        )
    ]
    plan = load_plan(folders)
    total = len(plan.rules) + len(plan.failures)
    assert total >= 3000
    assert len(plan.rules) / total >= 0.995, [f.reason for f in plan.failures[:20]]
