"""``qorgan anomaly``: log templates, session scoring, and the models' register (registered in
:mod:`qorgan.cli`). Thin: each command parses its options and calls
:mod:`qorgan.detection.anomaly` or the findings service."""

from __future__ import annotations

import typer

anomaly_app = typer.Typer(
    help="AI anomaly detection: log templates, session scoring, findings and the model register.",
    no_args_is_help=True,
)

# -- templates (qorgan anomaly templates) ----------------------------------------------------

# -- sessions (qorgan anomaly sessions) ------------------------------------------------------

# -- the model register and findings (qorgan anomaly models, ...) ----------------------------
