"""E-mail addresses unique per organisation, not across them.

A global unique constraint let an administrator learn that an address exists in another
organisation (creating a user with it failed). Each organisation now has its own address
space; sign-in tries every account holding the address (see ``core.accounts.sign_in``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 23:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint("uq_users_email", type_="unique")
        batch_op.create_unique_constraint(
            "uq_users_organisation_id_email", ["organisation_id", "email"]
        )
        batch_op.create_index("ix_users_email", ["email"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("ix_users_email")
        batch_op.drop_constraint("uq_users_organisation_id_email", type_="unique")
        batch_op.create_unique_constraint("uq_users_email", ["email"])
