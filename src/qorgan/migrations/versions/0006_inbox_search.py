"""The inbox at volume: level rank, observables and search text on alerts, their indexes (a
trigram index for substring search), comments, saved searches, and fingerprints that no longer
depend on file paths.

A data migration as well: existing alerts get their level rank, observables and search text,
and their fingerprint recomputed without the log file's and rule file's paths. It calls the
pure functions of ``qorgan.incidents.observables`` on purpose (one definition of what an alert
is about); a later change to them that should reach stored alerts needs its own migration.
Where two stored alerts now have the same fingerprint (the same event hunted from two paths),
the older keeps the new fingerprint and the later keeps its old one: nothing is deleted.

The search index lives outside the models (compare_metadata ignores it, see ``env.py``): an
FTS5 table with the trigram tokenizer on SQLite (external content: the text is stored once, in
``alerts.search_text``; triggers keep the index in step), and on PostgreSQL a pg_trgm GIN index
(the extension is trusted since PostgreSQL 13, so the database owner may create it) on a copy
of the text in ``alerts_search``, kept by triggers. The copy keeps the trigram index off the
alerts table, whose every non-HOT update (an assignment) would otherwise add an alert's hundreds
of trigrams to it again. No index of ``alerts`` holds the status, and the table leaves a quarter
of each page free on PostgreSQL, so acknowledging an alert is a HOT update there (no index
touched): a bulk triage of 10,000 alerts took 25 s with the status indexed, under 1 s without.

``alert_tallies`` counts alerts per organisation, grouping value (rule, host, user, source
address, KZ-CERT class, UTC hour of the event, rule and host together), status and level, so
the inbox's counts, groups and chart need not read every alert (``bench/inbox.py``: a million
alerts). Triggers keep it in the writing transaction: row triggers on SQLite; statement triggers
with transition tables on PostgreSQL (one aggregated upsert per statement), after a statement
trigger has taken the audit trail's advisory lock, so concurrent writers queue before touching a
tally row instead of deadlocking over them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 00:20:00.000000
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import orjson
import sqlalchemy as sa
from alembic import op

from qorgan.incidents.observables import identity, observables, search_text

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEVEL_RANK = {"informational": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
BATCH = 2000

#: The SQLite search index and the triggers that keep it in step with ``alerts.search_text``.
SQLITE_SEARCH = (
    "CREATE VIRTUAL TABLE alerts_search USING fts5("
    "search_text, content='alerts', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER alerts_search_insert AFTER INSERT ON alerts BEGIN "
    "INSERT INTO alerts_search(rowid, search_text) VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER alerts_search_delete AFTER DELETE ON alerts BEGIN "
    "INSERT INTO alerts_search(alerts_search, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); END",
    "CREATE TRIGGER alerts_search_update AFTER UPDATE OF search_text ON alerts BEGIN "
    "INSERT INTO alerts_search(alerts_search, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); "
    "INSERT INTO alerts_search(rowid, search_text) VALUES (new.id, new.search_text); END",
)
SQLITE_SEARCH_DROP = (
    "DROP TRIGGER IF EXISTS alerts_search_update",
    "DROP TRIGGER IF EXISTS alerts_search_delete",
    "DROP TRIGGER IF EXISTS alerts_search_insert",
    "DROP TABLE IF EXISTS alerts_search",
)
POSTGRES_SEARCH = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE TABLE alerts_search (id integer PRIMARY KEY, search_text text NOT NULL)",
    "INSERT INTO alerts_search (id, search_text) SELECT id, search_text FROM alerts",
    "CREATE INDEX ix_alerts_search_text ON alerts_search USING gin (search_text gin_trgm_ops)",
    "CREATE FUNCTION alerts_search_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "INSERT INTO alerts_search (id, search_text) SELECT id, search_text FROM new_rows; "
    "RETURN NULL; END $$",
    "CREATE FUNCTION alerts_search_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "DELETE FROM alerts_search WHERE id IN (SELECT id FROM old_rows); RETURN NULL; END $$",
    "CREATE FUNCTION alerts_search_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "UPDATE alerts_search SET search_text = NEW.search_text WHERE id = NEW.id; "
    "RETURN NULL; END $$",
    "CREATE TRIGGER alerts_search_insert AFTER INSERT ON alerts REFERENCING NEW TABLE AS "
    "new_rows FOR EACH STATEMENT EXECUTE FUNCTION alerts_search_insert()",
    "CREATE TRIGGER alerts_search_delete AFTER DELETE ON alerts REFERENCING OLD TABLE AS "
    "old_rows FOR EACH STATEMENT EXECUTE FUNCTION alerts_search_delete()",
    "CREATE TRIGGER alerts_search_update AFTER UPDATE OF search_text ON alerts FOR EACH ROW "
    "WHEN (OLD.search_text IS DISTINCT FROM NEW.search_text) "
    "EXECUTE FUNCTION alerts_search_update()",
    # Room for an updated row beside the old one (alerts average about 1.3 KB on the heap).
    "ALTER TABLE alerts SET (fillfactor = 75)",
)
POSTGRES_SEARCH_DROP = (
    "ALTER TABLE alerts RESET (fillfactor)",
    "DROP TRIGGER IF EXISTS alerts_search_update ON alerts",
    "DROP TRIGGER IF EXISTS alerts_search_delete ON alerts",
    "DROP TRIGGER IF EXISTS alerts_search_insert ON alerts",
    "DROP FUNCTION IF EXISTS alerts_search_update()",
    "DROP FUNCTION IF EXISTS alerts_search_delete()",
    "DROP FUNCTION IF EXISTS alerts_search_insert()",
    "DROP TABLE IF EXISTS alerts_search",
)

#: The audit trail's append lock (``qorgan.core.audit.ADVISORY_LOCK_KEY``), written out: the
#: tallies' writers take it too, so every writer of alerts queues on one lock.
ADVISORY_LOCK_KEY = 0x716F7267616E2D61
#: Each tally dimension's key: "=" and the value, or "" when the alert has none.
TALLY_KEYS = {
    "rule": "coalesce('=' || {p}rule_id, '')",
    "host": "coalesce('=' || {p}host, '')",
    "user": "coalesce('=' || {p}user_name, '')",
    "address": "coalesce('=' || {p}source_ip, '')",
    "class": "coalesce('=' || {p}kz_cert_class, '')",
}
HOUR_KEY = {
    # The same text as the inbox's timeline (qorgan.incidents.inbox._hour_key).
    "sqlite": "coalesce('=' || substr({p}time, 1, 13), '')",
    "postgresql": "coalesce('=' || to_char({p}time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24'), '')",
}
TALLY_COLUMNS = "organisation_id, dimension, key, status, severity, alerts"
TALLY_GROUP = "organisation_id, dimension, key, status, severity"
TALLY_UPSERT = (
    f"ON CONFLICT ({TALLY_GROUP}) DO UPDATE SET alerts = alert_tallies.alerts + excluded.alerts"
)
#: Columns whose change moves an alert between tallies.
TALLIED = (
    "organisation_id, rule_id, host, user_name, source_ip, kz_cert_class, time, status, severity"
)


def _keys(dialect: str, prefix: str = "") -> dict[str, str]:
    """Each dimension's key expression. A rule and a host together (``rulehost``): the rule's
    key prefixed by its length and ":", then the host's key, unambiguous whatever either holds
    (at most 3 + 1 + 201 + 256 characters)."""
    keys = {name: key.format(p=prefix) for name, key in TALLY_KEYS.items()}
    keys["hour"] = HOUR_KEY[dialect].format(p=prefix)
    keys["rulehost"] = f"length({keys['rule']}) || ':' || {keys['rule']} || {keys['host']}"
    return keys


def _sqlite_tally(row: str, delta: int) -> str:
    values = ", ".join(
        f"({row}.organisation_id, '{name}', {key}, {row}.status, {row}.severity, {delta})"
        for name, key in _keys("sqlite", f"{row}.").items()
    )
    return f"INSERT INTO alert_tallies ({TALLY_COLUMNS}) VALUES {values} {TALLY_UPSERT};"


def _sqlite_tallies() -> list[str]:
    return [
        "CREATE TRIGGER alert_tallies_insert AFTER INSERT ON alerts BEGIN "
        f"{_sqlite_tally('new', 1)} END",
        "CREATE TRIGGER alert_tallies_delete AFTER DELETE ON alerts BEGIN "
        f"{_sqlite_tally('old', -1)} END",
        f"CREATE TRIGGER alert_tallies_update AFTER UPDATE OF {TALLIED} ON alerts BEGIN "
        f"{_sqlite_tally('old', -1)} {_sqlite_tally('new', 1)} END",
    ]


def _postgres_changes(table: str, delta: int) -> str:
    keys = ", ".join(f"('{name}', {key})" for name, key in _keys("postgresql", "a.").items())
    return (
        f"SELECT a.organisation_id, d.dimension, d.key, a.status, a.severity, {delta} AS delta "
        f"FROM {table} AS a CROSS JOIN LATERAL (VALUES {keys}) AS d(dimension, key)"
    )


def _postgres_function(name: str, tables: list[tuple[str, int]]) -> str:
    changes = " UNION ALL ".join(_postgres_changes(table, delta) for table, delta in tables)
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"INSERT INTO alert_tallies ({TALLY_COLUMNS}) "
        f"SELECT {TALLY_GROUP}, sum(delta) FROM ({changes}) AS changes "
        f"GROUP BY {TALLY_GROUP} HAVING sum(delta) <> 0 ORDER BY {TALLY_GROUP} {TALLY_UPSERT}; "
        "RETURN NULL; END $$"
    )


def _postgres_tallies() -> list[str]:
    return [
        "CREATE FUNCTION alert_tallies_lock() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"PERFORM pg_advisory_xact_lock({ADVISORY_LOCK_KEY}); RETURN NULL; END $$",
        _postgres_function("alert_tallies_insert", [("new_rows", 1)]),
        _postgres_function("alert_tallies_update", [("old_rows", -1), ("new_rows", 1)]),
        _postgres_function("alert_tallies_delete", [("old_rows", -1)]),
        "CREATE TRIGGER alert_tallies_lock BEFORE INSERT OR UPDATE OR DELETE ON alerts "
        "FOR EACH STATEMENT EXECUTE FUNCTION alert_tallies_lock()",
        "CREATE TRIGGER alert_tallies_insert AFTER INSERT ON alerts "
        "REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION alert_tallies_insert()",
        "CREATE TRIGGER alert_tallies_update AFTER UPDATE ON alerts "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION alert_tallies_update()",
        "CREATE TRIGGER alert_tallies_delete AFTER DELETE ON alerts "
        "REFERENCING OLD TABLE AS old_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION alert_tallies_delete()",
    ]


def _tally_existing(dialect: str) -> list[str]:
    """The tallies of the alerts already stored, one statement per dimension."""
    return [
        f"INSERT INTO alert_tallies ({TALLY_COLUMNS}) "
        f"SELECT organisation_id, '{name}', {key}, status, severity, count(*) FROM alerts "
        f"GROUP BY organisation_id, {key}, status, severity"
        for name, key in _keys(dialect).items()
    ]


TALLIES_DROP = {
    "sqlite": [
        "DROP TRIGGER IF EXISTS alert_tallies_insert",
        "DROP TRIGGER IF EXISTS alert_tallies_delete",
        "DROP TRIGGER IF EXISTS alert_tallies_update",
    ],
    "postgresql": [
        "DROP TRIGGER IF EXISTS alert_tallies_lock ON alerts",
        "DROP TRIGGER IF EXISTS alert_tallies_insert ON alerts",
        "DROP TRIGGER IF EXISTS alert_tallies_update ON alerts",
        "DROP TRIGGER IF EXISTS alert_tallies_delete ON alerts",
        "DROP FUNCTION IF EXISTS alert_tallies_lock()",
        "DROP FUNCTION IF EXISTS alert_tallies_insert()",
        "DROP FUNCTION IF EXISTS alert_tallies_update()",
        "DROP FUNCTION IF EXISTS alert_tallies_delete()",
    ],
}

OLD_INDEXES = {
    "ix_alerts_organisation_id_time": ["organisation_id", "time"],
    "ix_alerts_organisation_id_rule_id": ["organisation_id", "rule_id"],
    "ix_alerts_organisation_id_host": ["organisation_id", "host"],
    "ix_alerts_organisation_id_status": ["organisation_id", "status"],
}
NEWEST_FIRST = {"time": "DESC NULLS LAST", "id": "DESC"}
#: None of them holds the status: see the module's docstring.
NEW_INDEXES: dict[str, tuple[list[str], dict[str, str]]] = {
    "ix_alerts_organisation_id_time": (["organisation_id", "time", "id"], NEWEST_FIRST),
    "ix_alerts_organisation_id_received_at": (["organisation_id", "received_at"], {}),
    "ix_alerts_organisation_id_severity": (["organisation_id", "severity", "time"], {}),
    "ix_alerts_organisation_id_rule_id": (["organisation_id", "rule_id", "time"], {}),
    "ix_alerts_organisation_id_host": (["organisation_id", "host", "time"], {}),
    "ix_alerts_organisation_id_user_name": (["organisation_id", "user_name", "time"], {}),
    "ix_alerts_organisation_id_source_ip": (["organisation_id", "source_ip", "time"], {}),
    "ix_alerts_organisation_id_destination_ip": (["organisation_id", "destination_ip"], {}),
}


def _backfill(connection: sa.Connection) -> None:
    alerts = sa.table(
        "alerts",
        sa.column("id", sa.Integer()),
        sa.column("organisation_id", sa.Integer()),
        sa.column("fingerprint", sa.String()),
        sa.column("level", sa.String()),
        sa.column("body", sa.JSON()),
        sa.column("severity", sa.SmallInteger()),
        sa.column("user_name", sa.String()),
        sa.column("source_ip", sa.String()),
        sa.column("destination_ip", sa.String()),
        sa.column("search_text", sa.Text()),
    )
    taken: set[tuple[int, str]] = {
        (row.organisation_id, row.fingerprint)
        for row in connection.execute(sa.select(alerts.c.organisation_id, alerts.c.fingerprint))
    }
    update = (
        alerts.update()
        .where(alerts.c.id == sa.bindparam("row_id"))
        .values(
            fingerprint=sa.bindparam("new_fingerprint"),
            severity=sa.bindparam("new_severity"),
            user_name=sa.bindparam("new_user_name"),
            source_ip=sa.bindparam("new_source_ip"),
            destination_ip=sa.bindparam("new_destination_ip"),
            search_text=sa.bindparam("new_search_text"),
        )
    )
    last = 0
    while True:
        rows = connection.execute(
            sa.select(
                alerts.c.id,
                alerts.c.organisation_id,
                alerts.c.fingerprint,
                alerts.c.level,
                alerts.c.body,
            )
            .where(alerts.c.id > last)
            .order_by(alerts.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        params = []
        for row in rows:
            body = row.body if isinstance(row.body, dict) else orjson.loads(row.body)
            fingerprint = hashlib.sha256(
                orjson.dumps(identity(body), option=orjson.OPT_SORT_KEYS)
            ).hexdigest()
            if fingerprint != row.fingerprint:
                if (row.organisation_id, fingerprint) in taken:
                    fingerprint = row.fingerprint  # the same event stored twice: keep both
                else:
                    taken.add((row.organisation_id, fingerprint))
            found = observables(body)
            params.append(
                {
                    "row_id": row.id,
                    "new_fingerprint": fingerprint,
                    "new_severity": LEVEL_RANK.get(row.level, 0),
                    "new_user_name": found.user,
                    "new_source_ip": found.source_ip,
                    "new_destination_ip": found.destination_ip,
                    "new_search_text": search_text(body),
                }
            )
        connection.execute(update, params)
        last = rows[-1].id


def upgrade() -> None:
    connection = op.get_bind()
    dialect = connection.dialect.name
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("severity", sa.SmallInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("user_name", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("source_ip", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("destination_ip", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("search_text", sa.Text(), server_default="", nullable=False))
        for name in OLD_INDEXES:
            batch_op.drop_index(name)
    _backfill(connection)
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        for name, (columns, ops) in NEW_INDEXES.items():
            batch_op.create_index(name, columns, unique=False, postgresql_ops=ops)
    if dialect == "sqlite":
        for statement in SQLITE_SEARCH:
            op.execute(statement)
        op.execute("INSERT INTO alerts_search(alerts_search) VALUES ('rebuild')")
    elif dialect == "postgresql":
        for statement in POSTGRES_SEARCH:
            op.execute(statement)

    op.create_table(
        "alert_tallies",
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("dimension", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=520), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.SmallInteger(), nullable=False),
        sa.Column("alerts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "organisation_id",
            "dimension",
            "key",
            "status",
            "severity",
            name=op.f("pk_alert_tallies"),
        ),
    )
    if dialect in HOUR_KEY:
        for statement in _tally_existing(dialect):
            op.execute(statement)
        for statement in _sqlite_tallies() if dialect == "sqlite" else _postgres_tallies():
            op.execute(statement)

    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        # An alert's history: its audit entries, read by target.
        batch_op.create_index(
            "ix_audit_entries_target", ["organisation_id", "target_type", "target_id"]
        )

    op.create_table(
        "alert_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name=op.f("fk_alert_comments_alert_id_alerts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name=op.f("fk_alert_comments_author_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_alert_comments_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_comments")),
    )
    with op.batch_alter_table("alert_comments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_comments_alert_id"), ["alert_id"], unique=False)

    op.create_table(
        "saved_searches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("query", sa.String(length=2000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_saved_searches_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_searches")),
        sa.UniqueConstraint("user_id", "name", name=op.f("uq_saved_searches_user_id")),
    )
    with op.batch_alter_table("saved_searches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_saved_searches_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    connection = op.get_bind()
    with op.batch_alter_table("saved_searches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_saved_searches_user_id"))
    op.drop_table("saved_searches")
    with op.batch_alter_table("alert_comments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_comments_alert_id"))
    op.drop_table("alert_comments")
    for statement in TALLIES_DROP.get(connection.dialect.name, []):
        op.execute(statement)
    op.drop_table("alert_tallies")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_entries_target")
    if connection.dialect.name == "sqlite":
        for statement in SQLITE_SEARCH_DROP:
            op.execute(statement)
    elif connection.dialect.name == "postgresql":
        for statement in POSTGRES_SEARCH_DROP:
            op.execute(statement)
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        for name in NEW_INDEXES:
            batch_op.drop_index(name)
        for name, columns in OLD_INDEXES.items():
            batch_op.create_index(name, columns, unique=False)
        for column in ("search_text", "destination_ip", "source_ip", "user_name", "severity"):
            batch_op.drop_column(column)
    # Fingerprints stay as recomputed: the old ones cannot be rebuilt without the old rule.
