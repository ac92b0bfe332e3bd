"""The docs stay true: every command is documented, every format declares itself."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from qorgan.cli import app
from qorgan.telemetry.formats import FORMATS

ROOT = Path(__file__).resolve().parents[1]


def _commands(group: object, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for name, command in getattr(group, "commands", {}).items():
        full = f"{prefix}{name}"
        if getattr(command, "commands", None):
            out.extend(_commands(command, full + " "))
        else:
            out.append((full, command))
    return out


def test_every_command_has_help_and_a_docs_entry() -> None:
    cli_doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    commands = _commands(typer.main.get_command(app))
    assert {name for name, _ in commands} >= {"hunt", "rules check"}
    for name, command in commands:
        assert getattr(command, "help", None), f"qorgan {name} has no help"
        assert f"## `qorgan {name}`" in cli_doc, f"qorgan {name} is not in docs/cli.md"


def test_every_format_declares_docstring_schema_and_description() -> None:
    cli_doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for name, cls in FORMATS.items():
        module = __import__(cls.__module__, fromlist=["_"])
        assert module.__doc__ and len(module.__doc__) > 40, name
        assert cls.description and cls.schema, name
        assert f"`{name}`" in cli_doc, f"format {name} missing from docs/cli.md"


# --- claims in the docs, checked where the code can check them --------------------------------


def _rule(detection: str) -> str:
    return (
        "title: docs claim\nid: 5f0c6a8e-0a34-4f51-9a83-8c1d2f8e0b11\nstatus: test\n"
        "logsource: {product: test}\n" + detection + "\nlevel: low\n"
    )


def test_every_modifier_the_engine_doc_names_compiles() -> None:
    """docs/engine.md lists the value modifiers applied; each one compiles in a real rule."""
    from qorgan.detection.loader import compile_texts

    engine = (ROOT / "docs" / "engine.md").read_text(encoding="utf-8")
    listed = engine.split("applies every value modifier", 1)[1].split(") and resolves", 1)[0]
    names = {n for group in re.findall(r"`([^`]+)`", listed) for n in group.split("/")}
    names -= {"i", "m", "s"}  # regex flags, tried with `re`
    assert {"contains", "base64offset", "windash", "fieldref", "cased", "utf16le"} <= names
    values = {
        "re": "a.b", "cidr": "10.0.0.0/8", "lt": 5, "lte": 5, "gt": 5, "gte": 5,
        "exists": "true", "fieldref": "G", "expand": "'%x%'", "all": "[a, b]",
    }  # fmt: skip
    for name in sorted(names):
        chain = {"all": "contains|all", "base64offset": "base64offset|contains"}.get(name, name)
        if name in ("wide", "utf16", "utf16le", "utf16be"):
            chain = f"{name}|base64offset|contains"
        value = values.get(name, "whoami")
        text = _rule(f"detection:\n  sel:\n    F|{chain}: {value}\n  condition: sel")
        plan = compile_texts([text], placeholders={"x": ["y"]})
        assert not plan.failures, (name, plan.failures)


def test_the_readme_names_the_modifier_values_pysigma_refuses() -> None:
    """README: wide/utf16 with non-ASCII values are the exception; they fail with a reason.
    If pySigma starts to accept them, this test (and the strict xfail in test_modifiers) says
    the README must change."""
    from qorgan.detection.loader import compile_texts

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "except `wide`/`utf16`/`utf16be` with\n  non-ASCII values" in readme
    for name in ("wide", "utf16", "utf16be"):
        text = _rule(
            f"detection:\n  sel:\n    F|{name}|base64offset|contains: Қазақ\n  condition: sel"
        )
        plan = compile_texts([text])
        assert len(plan.failures) == 1, name
        assert "only allowed for" in plan.failures[0].reason, plan.failures


def test_the_pack_counts_in_the_docs_are_the_packs() -> None:
    import yaml

    from qorgan.detection.loader import BUILTIN_RULES

    rules = correlations = 0
    for path in BUILTIN_RULES.rglob("*.yml"):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(document, dict) and "correlation" in document:
                correlations += 1
            elif isinstance(document, dict) and "detection" in document:
                rules += 1
    readme = (BUILTIN_RULES / "README.md").read_text(encoding="utf-8")
    assert f"Count: {rules} detection rules and {correlations} correlations" in readme
    total = rules + correlations
    assert f'"{total} of {total} rules compiled' in readme


def test_the_correlation_state_figure_matches_the_benchmark() -> None:
    """docs/engine.md rounds the buffered events of bench/README.md's endless-stream table."""
    bench = (ROOT / "bench" / "README.md").read_text(encoding="utf-8")
    table = bench.split("| observations | buffered |", 1)[1].split("\n\n", 1)[0]
    buffered = [int(row.split("|")[2].replace(",", "")) for row in table.splitlines()[2:]]
    assert buffered, table
    engine = (ROOT / "docs" / "engine.md").read_text(encoding="utf-8")
    claimed = int(
        re.search(r"stays at about ([\d,]+) buffered events", engine).group(1).replace(",", "")
    )  # type: ignore[union-attr]
    assert all(abs(b - claimed) <= claimed * 0.1 for b in buffered), (claimed, buffered)
    assert "not yet evaluated" not in engine


def test_every_setting_is_documented() -> None:
    from qorgan.core.settings import Settings

    console = (ROOT / "docs" / "console.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert f"`QORGAN_{name.upper()}`" in console, f"QORGAN_{name.upper()} not in console.md"
