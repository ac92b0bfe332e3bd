"""Intel feeds: the external sources an organisation polls into its collections (TAXII
collections, MISP feeds, lists), where each poll stopped, and its health.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 00:45:31.671747
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "intel_feeds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("remote_collection", sa.String(length=100), nullable=True),
        sa.Column("credential_env", sa.String(length=100), nullable=True),
        sa.Column("confidence", sa.SmallInteger(), nullable=False),
        sa.Column("default_tlp", sa.SmallInteger(), nullable=False),
        sa.Column("lifetime_days", sa.Integer(), nullable=False),
        sa.Column("poll_minutes", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_poll_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("last_objects", sa.Integer(), nullable=False),
        sa.Column("last_refused", sa.Integer(), nullable=False),
        sa.Column(
            "objects_total", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["intel_collections.id"],
            name=op.f("fk_intel_feeds_collection_id_intel_collections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_intel_feeds_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intel_feeds")),
        sa.UniqueConstraint("organisation_id", "name", name="uq_intel_feeds_name"),
    )
    with op.batch_alter_table("intel_feeds", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_intel_feeds_collection_id"), ["collection_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_intel_feeds_organisation_id"), ["organisation_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("intel_feeds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intel_feeds_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_intel_feeds_collection_id"))

    op.drop_table("intel_feeds")
