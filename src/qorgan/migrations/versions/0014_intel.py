"""The intel store: API roots (constituencies) and their members, TLP audiences (clients,
named RED recipients), TAXII collections and grants, STIX objects (one row per version, the JSON
as received) and the status resources of writes.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 00:14:04.930524
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "intel_api_roots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intel_api_roots")),
        sa.UniqueConstraint("slug", name=op.f("uq_intel_api_roots_slug")),
    )
    op.create_table(
        "intel_clients",
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["organisations.id"],
            name=op.f("fk_intel_clients_client_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_intel_clients_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organisation_id", "client_id", name=op.f("pk_intel_clients")),
    )
    with op.batch_alter_table("intel_clients", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_intel_clients_client_id"), ["client_id"], unique=False)

    op.create_table(
        "intel_collections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("taxii_id", sa.String(length=36), nullable=False),
        sa.Column("api_root_id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("alias", sa.String(length=100), nullable=True),
        sa.Column("redaction_policy", sa.String(length=64), nullable=True),
        sa.Column("default_tlp", sa.SmallInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_root_id"],
            ["intel_api_roots.id"],
            name=op.f("fk_intel_collections_api_root_id_intel_api_roots"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["organisations.id"],
            name=op.f("fk_intel_collections_owner_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intel_collections")),
        sa.UniqueConstraint("taxii_id", name=op.f("uq_intel_collections_taxii_id")),
    )
    with op.batch_alter_table("intel_collections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_intel_collections_api_root_id"), ["api_root_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_intel_collections_owner_id"), ["owner_id"], unique=False
        )

    op.create_table(
        "intel_red_recipients",
        sa.Column("sender_id", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["organisations.id"],
            name=op.f("fk_intel_red_recipients_recipient_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"],
            ["organisations.id"],
            name=op.f("fk_intel_red_recipients_sender_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sender_id", "recipient_id", name=op.f("pk_intel_red_recipients")),
    )
    with op.batch_alter_table("intel_red_recipients", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_intel_red_recipients_recipient_id"), ["recipient_id"], unique=False
        )

    op.create_table(
        "intel_root_members",
        sa.Column("api_root_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_root_id"],
            ["intel_api_roots.id"],
            name=op.f("fk_intel_root_members_api_root_id_intel_api_roots"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_intel_root_members_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "api_root_id", "organisation_id", name=op.f("pk_intel_root_members")
        ),
    )
    with op.batch_alter_table("intel_root_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_intel_root_members_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "intel_grants",
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("can_read", sa.Boolean(), nullable=False),
        sa.Column("can_write", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["intel_collections.id"],
            name=op.f("fk_intel_grants_collection_id_intel_collections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_intel_grants_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("collection_id", "organisation_id", name=op.f("pk_intel_grants")),
    )
    with op.batch_alter_table("intel_grants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_intel_grants_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "intel_objects",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("stix_id", sa.String(length=300), nullable=False),
        sa.Column("type", sa.String(length=250), nullable=False),
        sa.Column("spec_version", sa.String(length=8), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("version_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("date_added", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sender_id", sa.Integer(), nullable=False),
        sa.Column("tlp", sa.SmallInteger(), nullable=False),
        sa.Column("pap", sa.SmallInteger(), nullable=True),
        sa.Column("confidence", sa.SmallInteger(), nullable=True),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["intel_collections.id"],
            name=op.f("fk_intel_objects_collection_id_intel_collections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"],
            ["organisations.id"],
            name=op.f("fk_intel_objects_sender_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intel_objects")),
        sa.UniqueConstraint(
            "collection_id", "stix_id", "version_at", name="uq_intel_objects_version"
        ),
    )
    with op.batch_alter_table("intel_objects", schema=None) as batch_op:
        batch_op.create_index(
            "ix_intel_objects_collection_added", ["collection_id", "date_added"], unique=False
        )

    op.create_table(
        "intel_statuses",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("request_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("total_count", sa.Integer(), nullable=False),
        sa.Column("success_count", sa.Integer(), nullable=False),
        sa.Column("failure_count", sa.Integer(), nullable=False),
        sa.Column("pending_count", sa.Integer(), nullable=False),
        sa.Column("successes", sa.JSON(), nullable=False),
        sa.Column("failures", sa.JSON(), nullable=False),
        sa.Column("pending", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["intel_collections.id"],
            name=op.f("fk_intel_statuses_collection_id_intel_collections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_intel_statuses_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intel_statuses")),
    )
    with op.batch_alter_table("intel_statuses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_intel_statuses_collection_id"), ["collection_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_intel_statuses_organisation_id"), ["organisation_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("intel_statuses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intel_statuses_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_intel_statuses_collection_id"))

    op.drop_table("intel_statuses")
    with op.batch_alter_table("intel_objects", schema=None) as batch_op:
        batch_op.drop_index("ix_intel_objects_collection_added")

    op.drop_table("intel_objects")
    with op.batch_alter_table("intel_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intel_grants_organisation_id"))

    op.drop_table("intel_grants")
    with op.batch_alter_table("intel_root_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intel_root_members_organisation_id"))

    op.drop_table("intel_root_members")
    with op.batch_alter_table("intel_red_recipients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intel_red_recipients_recipient_id"))

    op.drop_table("intel_red_recipients")
    with op.batch_alter_table("intel_collections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intel_collections_owner_id"))
        batch_op.drop_index(batch_op.f("ix_intel_collections_api_root_id"))

    op.drop_table("intel_collections")
    with op.batch_alter_table("intel_clients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intel_clients_client_id"))

    op.drop_table("intel_clients")
    op.drop_table("intel_api_roots")
