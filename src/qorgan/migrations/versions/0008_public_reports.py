"""Public reports: what a citizen or an organisation reported through the public form (no
account), with the incident it opened in the national coordinator's organisation (the
supporting files sent with it are that incident's evidence).

The tracking number and the spent proof-of-work challenge are unique; reports are listed per
coordinator by time, and found from their incident.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 06:05:03.142158
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "public_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tracking", sa.String(length=17), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("reporter_name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("organisation_involved", sa.String(length=300), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=True),
        sa.Column("period_from", sa.Date(), nullable=True),
        sa.Column("period_to", sa.Date(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("challenge", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_public_reports_incident_id_incidents"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_public_reports_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_public_reports")),
        sa.UniqueConstraint("challenge", name=op.f("uq_public_reports_challenge")),
        sa.UniqueConstraint("tracking", name=op.f("uq_public_reports_tracking")),
    )
    with op.batch_alter_table("public_reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_public_reports_incident_id"), ["incident_id"], unique=False
        )
        batch_op.create_index(
            "ix_public_reports_organisation_id_created_at",
            ["organisation_id", "created_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("public_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_public_reports_organisation_id_created_at")
        batch_op.drop_index(batch_op.f("ix_public_reports_incident_id"))

    op.drop_table("public_reports")
