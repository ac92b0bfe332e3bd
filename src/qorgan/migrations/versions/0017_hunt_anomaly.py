"""Hunts from the console may run the AI models too: whether one did, and how many findings it
proposed (stored as pending findings linked to the hunt, never as alerts).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 07:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("hunts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("anomaly", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("findings", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("hunts", schema=None) as batch_op:
        batch_op.drop_column("findings")
        batch_op.drop_column("anomaly")
