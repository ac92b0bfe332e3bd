"""The alert store and hunt jobs.

Written by hand after the models (and checked against them by alembic's compare_metadata in
tests/core/test_db.py): timestamps are plain ``DateTime(timezone=True)``, levels and statuses
are text with a CHECK constraint, as in 0001. ``hunts`` comes first: alerts name their hunt.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 16:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=32)


def upgrade() -> None:
    op.create_table(
        "hunts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "status", _enum("hunt_status", "queued", "running", "done", "failed"), nullable=False
        ),
        sa.Column("source", _enum("hunt_source", "upload", "server"), nullable=False),
        sa.Column("paths", sa.JSON(), nullable=False),
        sa.Column("total_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("done_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("events", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("alerts_found", sa.Integer(), server_default="0", nullable=False),
        sa.Column("alerts_new", sa.Integer(), server_default="0", nullable=False),
        sa.Column("quarantined", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_hunts_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_hunts_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hunts")),
    )
    with op.batch_alter_table("hunts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hunts_created_by"), ["created_by"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_hunts_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_hunts_status"), ["status"], unique=False)

    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("rule_id", sa.String(length=200), nullable=False),
        sa.Column("rule_title", sa.String(length=500), nullable=False),
        sa.Column(
            "level",
            _enum("alert_level", "informational", "low", "medium", "high", "critical"),
            nullable=False,
        ),
        sa.Column("kz_cert_class", sa.String(length=64), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            _enum("alert_status", "new", "acknowledged", "false_positive"),
            nullable=False,
        ),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("hunt_id", sa.Integer(), nullable=True),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignee_id"],
            ["users.id"],
            name=op.f("fk_alerts_assignee_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["hunt_id"], ["hunts.id"], name=op.f("fk_alerts_hunt_id_hunts"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_alerts_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        # Named by the convention's first column; it covers (organisation_id, fingerprint).
        sa.UniqueConstraint(
            "organisation_id", "fingerprint", name=op.f("uq_alerts_organisation_id")
        ),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alerts_assignee_id"), ["assignee_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_alerts_hunt_id"), ["hunt_id"], unique=False)
        batch_op.create_index(
            "ix_alerts_organisation_id_time", ["organisation_id", "time"], unique=False
        )
        batch_op.create_index(
            "ix_alerts_organisation_id_rule_id", ["organisation_id", "rule_id"], unique=False
        )
        batch_op.create_index(
            "ix_alerts_organisation_id_host", ["organisation_id", "host"], unique=False
        )
        batch_op.create_index(
            "ix_alerts_organisation_id_status", ["organisation_id", "status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_organisation_id_status")
        batch_op.drop_index("ix_alerts_organisation_id_host")
        batch_op.drop_index("ix_alerts_organisation_id_rule_id")
        batch_op.drop_index("ix_alerts_organisation_id_time")
        batch_op.drop_index(batch_op.f("ix_alerts_hunt_id"))
        batch_op.drop_index(batch_op.f("ix_alerts_assignee_id"))

    op.drop_table("alerts")
    with op.batch_alter_table("hunts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hunts_status"))
        batch_op.drop_index(batch_op.f("ix_hunts_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_hunts_created_by"))

    op.drop_table("hunts")
