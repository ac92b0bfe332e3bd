"""``qorgan anomaly``: log templates, session scoring, and the models' register (registered in
:mod:`qorgan.cli`). Thin: each command parses its options and calls
:mod:`qorgan.detection.anomaly` or the findings service."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from qorgan.cli_support import fail, unit
from qorgan.core.errors import QorganError
from qorgan.core.models import User

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

#: The audit trail's actor for what the command line does (``qorgan.cli.CLI_ACTOR``).
CLI_ACTOR = "cli"

Organisation = Annotated[int, typer.Option("--organisation", "-o", help="The organisation's id.")]
ModelName = Annotated[str, typer.Argument(help="The model's name, as its findings name it.")]
ModelVersion = Annotated[str, typer.Argument(help="The model's version.")]


def _day(value: str | None, what: str) -> datetime | None:
    """An ISO date or time (UTC when no offset is given), or None."""
    from qorgan.core.timeutil import parse_time

    if value is None:
        return None
    moment = parse_time(value)
    if moment is None:
        raise typer.BadParameter(f"{what}: not an ISO 8601 date or time: {value!r}")
    return moment.astimezone(UTC)


def _metrics(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        found = json.loads(value)
    except ValueError as exc:
        raise typer.BadParameter(f"--metrics is not JSON: {exc}") from None
    if not isinstance(found, dict):
        raise typer.BadParameter("--metrics is a JSON object of figures by name")
    return found


@anomaly_app.command("models")
def models(organisation: Organisation) -> None:
    """List the organisation's model register: name, version, purpose, inputs, training
    period, metrics, who approved it and when it was last retrained."""
    from qorgan.incidents import findings

    def approver(user_id: int | None) -> str:
        user = session.get(User, user_id) if user_id is not None else None
        return user.email if user is not None else f"#{user_id}"

    with unit() as session:
        rows = [
            (
                m.name,
                m.version,
                m.purpose,
                ", ".join(m.inputs),
                _iso(m.training_from) + ".." + _iso(m.training_to),
                json.dumps(m.metrics, sort_keys=True),
                approver(m.approved_by) if m.approved_at else "not approved",
                _iso(m.approved_at),
                _iso(m.retrained_at),
            )
            for m in findings.list_models(session, organisation)
        ]
    print("name\tversion\tpurpose\tinputs\ttraining\tmetrics\tapproved by\tapproved at\tretrained")
    for row in rows:
        print("\t".join(str(value) for value in row))


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


@anomaly_app.command("register")
def register(
    name: ModelName,
    version: ModelVersion,
    organisation: Organisation,
    purpose: Annotated[str, typer.Option(help="What the model is for, in a sentence.")],
    inputs: Annotated[
        list[str], typer.Option("--input", help="A log source or field it reads (repeat).")
    ],
    training_from: Annotated[
        str | None, typer.Option("--from", help="Start of its training data (ISO).")
    ] = None,
    training_to: Annotated[
        str | None, typer.Option("--to", help="End of its training data (ISO).")
    ] = None,
    metrics: Annotated[
        str | None, typer.Option(help="Benchmark figures as JSON: '{\"recall\": 0.93}'.")
    ] = None,
) -> None:
    """Enter a model in the organisation's register (not approved until `qorgan anomaly
    approve`)."""
    from qorgan.incidents import findings

    start, end, figures = (
        _day(training_from, "--from"),
        _day(training_to, "--to"),
        _metrics(metrics),
    )
    with unit() as session:
        row = findings.register_model(
            session,
            organisation_id=organisation,
            name=name,
            version=version,
            purpose=purpose,
            inputs=inputs,
            training_from=start,
            training_to=end,
            metrics=figures,
            actor=CLI_ACTOR,
        )
        print(f"model {row.name} {row.version} registered; approve it before use")


@anomaly_app.command("approve")
def approve(
    name: ModelName,
    version: ModelVersion,
    organisation: Organisation,
    by: Annotated[str, typer.Option("--by", help="The approving user's e-mail address.")],
) -> None:
    """Record that a person of the organisation approved the model for use."""
    from qorgan.core.accounts import member
    from qorgan.core.errors import QorganError
    from qorgan.incidents import findings

    with unit() as session:
        approver = member(session=session, organisation_id=organisation, email=by)
        if approver is None:
            raise fail(QorganError(f"no user {by} in organisation {organisation}", source="--by"))
        row = findings.approve_model(
            session,
            organisation_id=organisation,
            name=name,
            version=version,
            approver=approver.id,
            actor=CLI_ACTOR,
        )
        print(f"model {row.name} {row.version} approved by {approver.email}")


@anomaly_app.command("retrained")
def retrained(
    name: ModelName,
    version: ModelVersion,
    organisation: Organisation,
    training_from: Annotated[
        str | None, typer.Option("--from", help="Start of the new training data (ISO).")
    ] = None,
    training_to: Annotated[
        str | None, typer.Option("--to", help="End of the new training data (ISO).")
    ] = None,
    metrics: Annotated[str | None, typer.Option(help="The new benchmark figures as JSON.")] = None,
) -> None:
    """Retrain the model: record it (period, figures); live monitoring then drops its baselines
    within five seconds, and it learns again from the events that follow."""
    from qorgan.incidents import findings

    start, end, figures = (
        _day(training_from, "--from"),
        _day(training_to, "--to"),
        _metrics(metrics),
    )
    with unit() as session:
        row = findings.record_retraining(
            session,
            organisation_id=organisation,
            name=name,
            version=version,
            training_from=start,
            training_to=end,
            metrics=figures,
            actor=CLI_ACTOR,
        )
        print(f"retraining of model {row.name} {row.version} recorded")
