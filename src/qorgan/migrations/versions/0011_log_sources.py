"""Live log sources: the registry of senders (transport, format, time zone, addresses,
certificate name, the SHA-256 of an HTTP token, the silence interval, the overflow policy) with
the collector's figures; their counts per ten seconds (the Sources page's chart); and the
newest messages each could not read, with the reason.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 08:33:54.302176
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "log_sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "transport",
            sa.Enum(
                "udp",
                "tcp",
                "tls",
                "relp",
                "http",
                name="log_transport",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("format", sa.String(length=32), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("senders", sa.JSON(), nullable=False),
        sa.Column("certificate_cn", sa.String(length=255), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("expected_interval", sa.Integer(), nullable=False),
        sa.Column(
            "overflow",
            sa.Enum(
                "wait",
                "drop",
                name="log_overflow",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("analysed_through", sa.DateTime(timezone=True), nullable=True),
        sa.Column("events", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("received_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("malformed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("parse_failures", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("dropped", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("silent_since", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_log_sources_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_log_sources_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_sources")),
        sa.UniqueConstraint("organisation_id", "name", name=op.f("uq_log_sources_organisation_id")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_log_sources_token_hash")),
    )
    with op.batch_alter_table("log_sources", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_log_sources_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "log_source_problems",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("excerpt", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["log_sources.id"],
            name=op.f("fk_log_source_problems_source_id_log_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_source_problems")),
    )
    with op.batch_alter_table("log_source_problems", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_log_source_problems_source_id"), ["source_id"], unique=False
        )

    op.create_table(
        "log_source_rates",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("received_bytes", sa.BigInteger(), nullable=False),
        sa.Column("dropped", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["log_sources.id"],
            name=op.f("fk_log_source_rates_source_id_log_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("source_id", "bucket", name=op.f("pk_log_source_rates")),
    )


def downgrade() -> None:
    op.drop_table("log_source_rates")
    with op.batch_alter_table("log_source_problems", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_log_source_problems_source_id"))

    op.drop_table("log_source_problems")
    with op.batch_alter_table("log_sources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_log_sources_organisation_id"))

    op.drop_table("log_sources")
