"""Anomaly findings: what AI models propose, the people's decisions on them (confirmed into an
alert, or rejected with the pattern kept so it stops firing), objections that exclude a
person's identifiers (as keyed hashes), and the register of models an organisation runs.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 03:48:15.093756
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "anomaly_exclusions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("identifier_hash", sa.String(length=64), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("recorded_by", sa.Integer(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_ref", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_anomaly_exclusions_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by"],
            ["users.id"],
            name=op.f("fk_anomaly_exclusions_recorded_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anomaly_exclusions")),
        sa.UniqueConstraint(
            "organisation_id", "identifier_hash", name=op.f("uq_anomaly_exclusions_organisation_id")
        ),
    )
    with op.batch_alter_table("anomaly_exclusions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_anomaly_exclusions_identifier_hash", ["identifier_hash"], unique=False
        )

    op.create_table(
        "anomaly_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("training_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("training_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_by", sa.Integer(), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retrained_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["approved_by"],
            ["users.id"],
            name=op.f("fk_anomaly_models_approved_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_anomaly_models_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anomaly_models")),
        sa.UniqueConstraint(
            "organisation_id", "name", "version", name=op.f("uq_anomaly_models_organisation_id")
        ),
    )
    op.create_table(
        "anomaly_findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("dedup_key", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("detector", sa.String(length=100), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("hunt_id", sa.Integer(), nullable=True),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name=op.f("fk_anomaly_findings_alert_id_alerts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["users.id"],
            name=op.f("fk_anomaly_findings_decided_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["hunt_id"],
            ["hunts.id"],
            name=op.f("fk_anomaly_findings_hunt_id_hunts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_anomaly_findings_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anomaly_findings")),
        sa.UniqueConstraint(
            "organisation_id", "dedup_key", name=op.f("uq_anomaly_findings_organisation_id")
        ),
    )
    with op.batch_alter_table("anomaly_findings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_anomaly_findings_hunt_id"), ["hunt_id"], unique=False)
        batch_op.create_index(
            "ix_anomaly_findings_organisation_id_fingerprint",
            ["organisation_id", "fingerprint"],
            unique=False,
        )
        batch_op.create_index(
            "ix_anomaly_findings_organisation_id_status",
            ["organisation_id", "status", "id"],
            unique=False,
        )

    op.create_table(
        "anomaly_rejected_patterns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("pattern", sa.Text(), nullable=False),
        sa.Column("finding_id", sa.Integer(), nullable=False),
        sa.Column("rejected_by", sa.Integer(), nullable=True),
        sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["finding_id"],
            ["anomaly_findings.id"],
            name=op.f("fk_anomaly_rejected_patterns_finding_id_anomaly_findings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_anomaly_rejected_patterns_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["rejected_by"],
            ["users.id"],
            name=op.f("fk_anomaly_rejected_patterns_rejected_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anomaly_rejected_patterns")),
        sa.UniqueConstraint(
            "organisation_id",
            "fingerprint",
            name=op.f("uq_anomaly_rejected_patterns_organisation_id"),
        ),
    )
    with op.batch_alter_table("anomaly_rejected_patterns", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_anomaly_rejected_patterns_finding_id"), ["finding_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("anomaly_rejected_patterns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_anomaly_rejected_patterns_finding_id"))

    op.drop_table("anomaly_rejected_patterns")
    with op.batch_alter_table("anomaly_findings", schema=None) as batch_op:
        batch_op.drop_index("ix_anomaly_findings_organisation_id_status")
        batch_op.drop_index("ix_anomaly_findings_organisation_id_fingerprint")
        batch_op.drop_index(batch_op.f("ix_anomaly_findings_hunt_id"))

    op.drop_table("anomaly_findings")
    op.drop_table("anomaly_models")
    with op.batch_alter_table("anomaly_exclusions", schema=None) as batch_op:
        batch_op.drop_index("ix_anomaly_exclusions_identifier_hash")

    op.drop_table("anomaly_exclusions")
