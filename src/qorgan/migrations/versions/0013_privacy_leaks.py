"""Personal-data leaks: the holder's report to the authorised body (holder and BIN, system,
categories and description of what leaked, when it happened and was found, measures, the
responsible person's encrypted contacts, the one-working-day deadline, the linked incident),
the subjects it affected (by keyed hash, masked IIN, encrypted name and address, once per
report), and the outbox of notices to them (unique per report, subject and channel).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 15:29:25.292036
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "privacy_leaks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=True),
        sa.Column("holder_name", sa.String(length=300), nullable=False),
        sa.Column("holder_bin", sa.String(length=12), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("measures", sa.Text(), nullable=False),
        sa.Column("responsible_person", sa.String(length=200), nullable=False),
        sa.Column("contacts", sa.LargeBinary(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "submitted",
                name="privacy_leak_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_privacy_leaks_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_privacy_leaks_incident_id_incidents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_privacy_leaks_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["system_id"],
            ["privacy_systems.id"],
            name=op.f("fk_privacy_leaks_system_id_privacy_systems"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_leaks")),
    )
    with op.batch_alter_table("privacy_leaks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_privacy_leaks_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_privacy_leaks_system_id"), ["system_id"], unique=False)

    op.create_table(
        "privacy_leak_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("leak_id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column(
            "channel",
            sa.Enum(
                "email",
                "sms",
                name="privacy_notice_channel",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "sending",
                "sent",
                "failed",
                name="privacy_notice_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["leak_id"],
            ["privacy_leaks.id"],
            name=op.f("fk_privacy_leak_notices_leak_id_privacy_leaks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["privacy_subjects.id"],
            name=op.f("fk_privacy_leak_notices_subject_id_privacy_subjects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_leak_notices")),
        sa.UniqueConstraint(
            "leak_id", "subject_id", "channel", name=op.f("uq_privacy_leak_notices_leak_id")
        ),
    )
    with op.batch_alter_table("privacy_leak_notices", schema=None) as batch_op:
        batch_op.create_index(
            "ix_privacy_leak_notices_status_next_attempt_at",
            ["status", "next_attempt_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_privacy_leak_notices_subject_id"), ["subject_id"], unique=False
        )

    op.create_table(
        "privacy_leak_subjects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("leak_id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("iin_masked", sa.String(length=12), nullable=False),
        sa.Column("name", sa.LargeBinary(), nullable=False),
        sa.Column(
            "channel",
            sa.Enum(
                "email",
                "sms",
                name="privacy_contact_channel",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("address", sa.LargeBinary(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["leak_id"],
            ["privacy_leaks.id"],
            name=op.f("fk_privacy_leak_subjects_leak_id_privacy_leaks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["privacy_subjects.id"],
            name=op.f("fk_privacy_leak_subjects_subject_id_privacy_subjects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_leak_subjects")),
        sa.UniqueConstraint("leak_id", "subject_id", name=op.f("uq_privacy_leak_subjects_leak_id")),
    )
    with op.batch_alter_table("privacy_leak_subjects", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_privacy_leak_subjects_subject_id"), ["subject_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("privacy_leak_subjects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_privacy_leak_subjects_subject_id"))

    op.drop_table("privacy_leak_subjects")
    with op.batch_alter_table("privacy_leak_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_privacy_leak_notices_subject_id"))
        batch_op.drop_index("ix_privacy_leak_notices_status_next_attempt_at")

    op.drop_table("privacy_leak_notices")
    with op.batch_alter_table("privacy_leaks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_privacy_leaks_system_id"))
        batch_op.drop_index(batch_op.f("ix_privacy_leaks_organisation_id"))

    op.drop_table("privacy_leaks")
