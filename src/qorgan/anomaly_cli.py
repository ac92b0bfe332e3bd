"""``qorgan anomaly``: log templates, session scoring, and the models' register (registered in
:mod:`qorgan.cli`). Thin: each command parses its options and calls
:mod:`qorgan.detection.anomaly` or the findings service."""

from __future__ import annotations

import sys
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


@anomaly_app.command("sessions")
def sessions(
    train: Annotated[
        Path, typer.Option("--train", help="Normal sessions to learn: one a line, tokens spaced.")
    ],
    score: Annotated[Path, typer.Option("--score", help="Sessions to score, in the same form.")],
    threshold: Annotated[
        float | None,
        typer.Option(help="Flag at this score instead of the one calibrated on --train."),
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Add the feature that contributed most.")
    ] = False,
    order: Annotated[int, typer.Option(help="The n-gram order.")] = 3,
    quantile: Annotated[
        float, typer.Option(help="Share of held-out normal training sessions below the threshold.")
    ] = 0.995,
) -> None:
    """Score sessions of template ids (DeepLog's format) with a model of --train's normal ones.

    Prints one line per line of --score, in order: the score, a tab and the flag (1 anomalous,
    0 normal), and with --explain a tab and the most improbable transition, token or count.
    """
    from qorgan.cli_support import fail
    from qorgan.core.errors import QorganError
    from qorgan.detection.anomaly.sequences import SessionModel, read_session_file

    try:
        model = SessionModel.fit(read_session_file(train), order=order, quantile=quantile)
        scored = read_session_file(score)
    except QorganError as exc:
        raise fail(exc) from exc
    limit = model.threshold if threshold is None else threshold
    out = []
    for tokens in scored:
        value = model.score(tokens)
        line = f"{value:.3f}\t{int(value >= limit)}"
        if explain:
            line += f"\t{model.explain(tokens, limit=1)[0].description}"
        out.append(line)
    sys.stdout.write("".join(f"{line}\n" for line in out))


# -- the model register and findings (qorgan anomaly models, ...) ----------------------------
