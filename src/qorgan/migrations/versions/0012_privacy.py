"""The personal-data service: information systems (owners, operators and their BINs, the
responsible person's encrypted contacts, categories, purposes, legal bases, the SHA-256 of the
decision-API token), data subjects by the keyed hash of their IIN, consents with their signed
receipts, the access log of decisions, reported accesses and staff reads, citizens' accounts,
and complaints and objections with their deadlines.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 15:25:48.822526
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "privacy_subjects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("iin_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_subjects")),
        sa.UniqueConstraint("iin_hash", name=op.f("uq_privacy_subjects_iin_hash")),
    )
    op.create_table(
        "privacy_citizen_accounts",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("provider_subject", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["privacy_subjects.id"],
            name=op.f("fk_privacy_citizen_accounts_subject_id_privacy_subjects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_privacy_citizen_accounts_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_privacy_citizen_accounts")),
        sa.UniqueConstraint(
            "provider", "provider_subject", name=op.f("uq_privacy_citizen_accounts_provider")
        ),
        sa.UniqueConstraint("subject_id", name=op.f("uq_privacy_citizen_accounts_subject_id")),
    )
    op.create_table(
        "privacy_systems",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner_name", sa.String(length=300), nullable=False),
        sa.Column("owner_bin", sa.String(length=12), nullable=False),
        sa.Column("operator_name", sa.String(length=300), nullable=False),
        sa.Column("operator_bin", sa.String(length=12), nullable=False),
        sa.Column("responsible_person", sa.String(length=200), nullable=False),
        sa.Column("contacts", sa.LargeBinary(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("purposes", sa.JSON(), nullable=False),
        sa.Column("legal_bases", sa.JSON(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_privacy_systems_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_privacy_systems_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_systems")),
        sa.UniqueConstraint(
            "organisation_id", "name", name=op.f("uq_privacy_systems_organisation_id")
        ),
        sa.UniqueConstraint("token_hash", name=op.f("uq_privacy_systems_token_hash")),
    )
    with op.batch_alter_table("privacy_systems", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_privacy_systems_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "privacy_complaints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "complaint",
                "objection",
                name="privacy_complaint_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=True),
        sa.Column("contacts", sa.LargeBinary(), nullable=False),
        sa.Column("period_from", sa.Date(), nullable=True),
        sa.Column("period_to", sa.Date(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "answered",
                name="privacy_complaint_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["answered_by"],
            ["users.id"],
            name=op.f("fk_privacy_complaints_answered_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_privacy_complaints_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["privacy_subjects.id"],
            name=op.f("fk_privacy_complaints_subject_id_privacy_subjects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["system_id"],
            ["privacy_systems.id"],
            name=op.f("fk_privacy_complaints_system_id_privacy_systems"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_complaints")),
    )
    with op.batch_alter_table("privacy_complaints", schema=None) as batch_op:
        batch_op.create_index(
            "ix_privacy_complaints_organisation_status", ["organisation_id", "status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_privacy_complaints_subject_id"), ["subject_id"], unique=False
        )

    op.create_table(
        "privacy_consents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("purposes", sa.JSON(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("data_items", sa.JSON(), nullable=False),
        sa.Column("term_until", sa.Date(), nullable=True),
        sa.Column("third_party_transfer", sa.Boolean(), nullable=False),
        sa.Column("cross_border_transfer", sa.Boolean(), nullable=False),
        sa.Column("publication", sa.Boolean(), nullable=False),
        sa.Column("withdrawal_restriction", sa.String(length=500), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "withdrawn",
                "expired",
                "fulfilled",
                name="privacy_consent_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("given_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("given_receipt", sa.Text(), nullable=False),
        sa.Column("withdrawn_receipt", sa.Text(), nullable=True),
        sa.Column("deletion_due", sa.Date(), nullable=True),
        sa.Column("deletion_confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["privacy_subjects.id"],
            name=op.f("fk_privacy_consents_subject_id_privacy_subjects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["system_id"],
            ["privacy_systems.id"],
            name=op.f("fk_privacy_consents_system_id_privacy_systems"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_consents")),
    )
    with op.batch_alter_table("privacy_consents", schema=None) as batch_op:
        batch_op.create_index(
            "ix_privacy_consents_subject_system", ["subject_id", "system_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_privacy_consents_system_id"), ["system_id"], unique=False
        )

    op.create_table(
        "privacy_access_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=True),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "outcome",
            sa.Enum(
                "allow",
                "deny",
                "reported",
                name="privacy_outcome",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("official", sa.String(length=200), nullable=False),
        sa.Column("purpose", sa.String(length=200), nullable=False),
        sa.Column(
            "legal_basis",
            sa.Enum(
                "consent",
                "legal_obligation",
                "contract",
                "state_service",
                "law_enforcement",
                "vital_interests",
                "public_data",
                name="privacy_legal_basis",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("consent_id", sa.Integer(), nullable=True),
        sa.Column("hidden_until", sa.Date(), nullable=True),
        sa.Column("hidden_because", sa.String(length=500), nullable=True),
        sa.Column("hidden_visible_to", sa.String(length=300), nullable=True),
        sa.Column("request_id", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["consent_id"],
            ["privacy_consents.id"],
            name=op.f("fk_privacy_access_log_consent_id_privacy_consents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_privacy_access_log_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"],
            ["users.id"],
            name=op.f("fk_privacy_access_log_staff_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["privacy_subjects.id"],
            name=op.f("fk_privacy_access_log_subject_id_privacy_subjects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["system_id"],
            ["privacy_systems.id"],
            name=op.f("fk_privacy_access_log_system_id_privacy_systems"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_access_log")),
        sa.UniqueConstraint(
            "system_id", "request_id", name=op.f("uq_privacy_access_log_system_id")
        ),
    )
    with op.batch_alter_table("privacy_access_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_privacy_access_log_subject_at", ["subject_id", "at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_privacy_access_log_system_id"), ["system_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("privacy_access_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_privacy_access_log_system_id"))
        batch_op.drop_index("ix_privacy_access_log_subject_at")

    op.drop_table("privacy_access_log")
    with op.batch_alter_table("privacy_consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_privacy_consents_system_id"))
        batch_op.drop_index("ix_privacy_consents_subject_system")

    op.drop_table("privacy_consents")
    with op.batch_alter_table("privacy_complaints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_privacy_complaints_subject_id"))
        batch_op.drop_index("ix_privacy_complaints_organisation_status")

    op.drop_table("privacy_complaints")
    with op.batch_alter_table("privacy_systems", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_privacy_systems_organisation_id"))

    op.drop_table("privacy_systems")
    op.drop_table("privacy_citizen_accounts")
    op.drop_table("privacy_subjects")
