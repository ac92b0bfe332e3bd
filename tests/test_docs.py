"""The docs stay true: every command is documented, every format declares itself."""

from __future__ import annotations

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
