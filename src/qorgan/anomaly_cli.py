"""``qorgan anomaly``: log templates, session scoring, and the models' register (registered in
:mod:`qorgan.cli`). Thin: each command parses its options and calls
:mod:`qorgan.detection.anomaly` or the findings service."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

anomaly_app = typer.Typer(
    help="AI anomaly detection: log templates, session scoring, findings and the model register.",
    no_args_is_help=True,
)

# -- templates (qorgan anomaly templates) ----------------------------------------------------

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
