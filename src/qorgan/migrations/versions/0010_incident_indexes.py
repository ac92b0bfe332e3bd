"""Indexes for incidents at volume (``bench/incidents.py``: 200,000 incidents, 2,000,000
alerts), each for a request that read most of an organisation's incidents to answer:

* the coordinator's open incidents (its list, tabs and dashboard): ``(reported_to_id, status,
  reported_at)``, as organisations have ``(organisation_id, status, created_at)``;
* lists of all or closed incidents filtered by KZ-CERT class (and severity):
  ``(organisation_id, kz_cert_class, severity)``;
* on PostgreSQL, the title search (``ILIKE '%word%'``): a trigram index, like the alerts' search
  copy of migration 0006 (SQLite scans the titles, which its lists never do at this volume);
* on PostgreSQL, a period's figures (``qorgan.incidents.stats``): the two period indexes,
  ``(organisation_id, created_at)`` and ``(reported_to_id, reported_at)``, also carry the
  columns the figures read (class, status, severity, start and clock moments; and the reporting
  organisation), so a year of an organisation's incidents is an index-only scan. SQLite keeps
  them as they were (it has no ``INCLUDE``).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 07:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The columns a period's figures read (``qorgan.incidents.models.STATS_COLUMNS``).
STATS_COLUMNS = [
    "kz_cert_class",
    "status",
    "severity",
    "started_at",
    "acknowledged_at",
    "contained_at",
    "closed_at",
]


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_index(
        "ix_incidents_reported_to_id_status",
        "incidents",
        ["reported_to_id", "status", "reported_at"],
        unique=False,
    )
    op.create_index(
        "ix_incidents_organisation_id_kz_cert_class",
        "incidents",
        ["organisation_id", "kz_cert_class", "severity"],
        unique=False,
    )
    if not _postgresql():
        return
    op.drop_index("ix_incidents_organisation_id_created_at", table_name="incidents")
    op.create_index(
        "ix_incidents_organisation_id_created_at",
        "incidents",
        ["organisation_id", "created_at"],
        unique=False,
        postgresql_include=STATS_COLUMNS,
    )
    op.drop_index("ix_incidents_reported_to_id", table_name="incidents")
    op.create_index(
        "ix_incidents_reported_to_id",
        "incidents",
        ["reported_to_id", "reported_at"],
        unique=False,
        postgresql_include=["organisation_id", *STATS_COLUMNS],
    )
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE INDEX ix_incidents_title_trgm ON incidents USING gin (title gin_trgm_ops)")


def downgrade() -> None:
    if _postgresql():
        op.execute("DROP INDEX IF EXISTS ix_incidents_title_trgm")
        op.drop_index("ix_incidents_reported_to_id", table_name="incidents")
        op.create_index(
            "ix_incidents_reported_to_id", "incidents", ["reported_to_id", "reported_at"]
        )
        op.drop_index("ix_incidents_organisation_id_created_at", table_name="incidents")
        op.create_index(
            "ix_incidents_organisation_id_created_at",
            "incidents",
            ["organisation_id", "created_at"],
        )
    op.drop_index("ix_incidents_organisation_id_kz_cert_class", table_name="incidents")
    op.drop_index("ix_incidents_reported_to_id_status", table_name="incidents")
