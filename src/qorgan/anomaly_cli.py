"""``qorgan anomaly``: log templates, session scoring, and the models' register (registered in
:mod:`qorgan.cli`). Thin: each command parses its options and calls
:mod:`qorgan.detection.anomaly` or the findings service."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from qorgan.cli_support import fail
from qorgan.core.errors import QorganError

anomaly_app = typer.Typer(
    help="AI anomaly detection: log templates, session scoring, findings and the model register.",
    no_args_is_help=True,
)

# -- templates (qorgan anomaly templates) ----------------------------------------------------


class TemplateOutput(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


@anomaly_app.command("templates")
def templates(
    file: Annotated[Path, typer.Argument(help="A text log (UTF-8; other bytes are replaced).")],
    output: Annotated[
        TemplateOutput, typer.Option("--format", help="csv (with a header row) or jsonl.")
    ] = TemplateOutput.csv,
    state: Annotated[
        Path | None,
        typer.Option(help="Template state (JSON) to continue from and save to; made if absent."),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(
            help="The lines' layout in Loghub's syntax, e.g. "
            "'<Date> <Time> <Pid> <Level> <Component>: <Content>': <Content> is mined. "
            "Without it a common header (syslog, ISO time + level + component) is stripped."
        ),
    ] = None,
) -> None:
    """Show the template of each line of FILE: line number, template id, template."""
    import csv
    import json
    import sys

    from qorgan.detection.anomaly.drain import TemplateMiner, load_miner, save_miner
    from qorgan.detection.anomaly.logtext import LogFormat, file_templates

    try:
        layout = LogFormat(log_format) if log_format is not None else None
        miner = load_miner(state) if state is not None else TemplateMiner()
        rows = file_templates(file, miner, layout)
        if state is not None:
            save_miner(miner, state)
    except QorganError as exc:
        raise fail(exc) from exc
    if output is TemplateOutput.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(("line", "template_id", "template"))
        writer.writerows(rows)
    else:
        for line, tid, template in rows:
            print(json.dumps({"line": line, "template_id": tid, "template": template}))


# -- sessions (qorgan anomaly sessions) ------------------------------------------------------

# -- the model register and findings (qorgan anomaly models, ...) ----------------------------
