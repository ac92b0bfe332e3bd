"""Settings, engine, migrations, models and the unit of work."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import audit, db
from qorgan.core.db import make_engine, session_factory, unit_of_work
from qorgan.core.models import (
    ApiToken,
    AuditEntry,
    Organisation,
    OrganisationKind,
    PasswordHistory,
    RecoveryCode,
    Role,
    User,
)
from qorgan.core.settings import Environment, Settings, SettingsError, get_settings
from qorgan.migrations import COMPARE_OPTIONS, SORTED_INDEXES, current, head, load_models, upgrade

TABLES = {
    "organisations",
    "users",
    "password_history",
    "api_tokens",
    "recovery_codes",
    "audit_entries",
    "alerts",
    "hunts",
}


def _org_and_user(session: Session) -> User:
    org = Organisation(name="Almaty akimat", kind=OrganisationKind.akimat)
    user = User(
        organisation=org,
        email="analyst@almaty.kz",
        display_name="Айгерім",
        password_hash="$argon2id$placeholder",
        role=Role.soc_analyst,
    )
    session.add(user)
    session.flush()
    return user


# --- settings ---------------------------------------------------------------------------------


def test_settings_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("QORGAN_DATABASE_URL", "QORGAN_ENVIRONMENT", "QORGAN_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = get_settings()
    assert settings.database_url == "sqlite:///var/qorgan.db"
    assert settings.environment is Environment.development
    assert settings.timezone == "Asia/Almaty"
    monkeypatch.setenv("QORGAN_DATABASE_URL", "sqlite:////tmp/elsewhere.db")
    assert get_settings().database_url == "sqlite:////tmp/elsewhere.db"


@pytest.mark.parametrize("secret", ["", "changeme", "  CHANGEME ", "short-but-not-placeholder"])
def test_production_refuses_placeholder_secrets(secret: str) -> None:
    with pytest.raises(SettingsError, match="QORGAN_SECRET_KEY"):
        get_settings(environment="production", secret_key=secret)


def test_production_accepts_a_real_secret_and_hides_it() -> None:
    settings = get_settings(environment="production", secret_key="k" * 48)
    assert "kkkk" not in repr(settings)


def test_unknown_timezone_is_refused() -> None:
    with pytest.raises(SettingsError, match="timezone: unknown time zone"):
        get_settings(timezone="Mars/Olympus")


def test_default_database_lands_under_var(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QORGAN_DATABASE_URL", raising=False)
    settings = get_settings()
    upgrade(settings)
    assert (tmp_path / "var" / "qorgan.db").is_file()
    engine = make_engine(settings)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


# --- migrations -------------------------------------------------------------------------------


def test_migrations_create_the_tables_and_match_the_models(settings: Settings) -> None:
    assert current(settings) is None
    upgrade(settings)
    assert current(settings) == head()
    upgrade(settings)  # idempotent
    metadata = load_models()  # every package's tables, not only those imported so far
    engine = make_engine(settings)
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts=dict(COMPARE_OPTIONS))
            diff = compare_metadata(context, metadata)
        assert diff == [], diff
        # The indexes left out of that comparison: present, and newest first on PostgreSQL.
        indexes = {i["name"] for i in inspect(engine).get_indexes("alerts")}
        assert set(SORTED_INDEXES) <= indexes
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                definitions = conn.execute(
                    text("SELECT indexdef FROM pg_indexes WHERE indexname = ANY(:names)"),
                    {"names": list(SORTED_INDEXES)},
                ).scalars()
                for definition in definitions:
                    assert '"time" DESC NULLS LAST, id DESC' in definition, definition
    finally:
        engine.dispose()


# --- models -----------------------------------------------------------------------------------


def test_models_round_trip(factory: sessionmaker[Session]) -> None:
    almaty = timezone(timedelta(hours=5))
    expires = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=almaty)
    with unit_of_work(factory) as session:
        user = _org_and_user(session)
        session.add_all(
            [
                PasswordHistory(user_id=user.id, password_hash="old"),
                RecoveryCode(user_id=user.id, code_hash="rc1"),
                ApiToken(
                    user_id=user.id,
                    name="siem-push",
                    token_hash="th1",
                    scopes=["alerts:write", "alerts:read"],
                    expires_at=expires,
                ),
            ]
        )
        user_id = user.id
    with unit_of_work(factory) as session:
        user = session.get(User, user_id)
        assert user is not None
        assert user.organisation.kind is OrganisationKind.akimat
        assert user.role is Role.soc_analyst
        assert user.display_name == "Айгерім"
        assert user.language == "kk"
        assert user.failed_logins == 0
        assert user.totp_secret is None and user.locked_until is None
        assert user.created_at.tzinfo is UTC
        token = session.scalars(select(ApiToken)).one()
        assert token.scopes == ["alerts:write", "alerts:read"]
        assert token.expires_at == expires
        assert token.expires_at.tzinfo is UTC
        assert token.expires_at.hour == 22  # 03:04 in Almaty is 22:04 UTC the day before
        assert session.scalars(select(RecoveryCode.code_hash)).all() == ["rc1"]
        assert session.scalars(select(PasswordHistory.password_hash)).all() == ["old"]


def test_constraints_hold(factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        _org_and_user(session)
    with pytest.raises(IntegrityError), unit_of_work(factory) as session:
        session.add(
            User(
                organisation_id=999,  # no such organisation: foreign keys are enforced
                email="x@y.kz",
                display_name="x",
                password_hash="h",
                role=Role.auditor,
            )
        )
    with pytest.raises(IntegrityError) as refused, unit_of_work(factory) as session:
        org = session.scalars(select(Organisation)).one()
        session.add(
            User(
                organisation=org,
                email="analyst@almaty.kz",  # taken
                display_name="twin",
                password_hash="h",
                role=Role.auditor,
            )
        )
    # The error's message, which ends up in logs, holds none of the statement's values
    # (PostgreSQL's own DETAIL still names the conflicting key: the e-mail address).
    assert "twin" not in str(refused.value)
    assert "parameters hidden" in str(refused.value)
    with pytest.raises(IntegrityError), unit_of_work(factory) as session:
        session.execute(
            text("INSERT INTO organisations (name, kind, created_at) VALUES ('x', 'pirate', :at)"),
            {"at": datetime.now(UTC)},
        )


def test_naive_datetimes_are_refused(factory: sessionmaker[Session]) -> None:
    with pytest.raises(StatementError, match="naive datetime"), unit_of_work(factory) as session:
        naive = datetime(2025, 1, 1)  # noqa: DTZ001 - the point of the test
        session.add(Organisation(name="n", kind=OrganisationKind.cert, created_at=naive))


def test_unit_of_work_commits_or_rolls_back(factory: sessionmaker[Session]) -> None:
    with pytest.raises(RuntimeError), unit_of_work(factory) as session:
        _org_and_user(session)
        raise RuntimeError("the service failed half-way")
    with unit_of_work(factory) as session:
        assert session.scalars(select(User)).all() == []
        assert session.scalars(select(Organisation)).all() == []
        _org_and_user(session)
    with unit_of_work(factory) as session:
        assert len(session.scalars(select(User)).all()) == 1


def _sqlite_factory(tmp_path: Path) -> sessionmaker[Session]:
    settings = get_settings(database_url=f"sqlite:///{tmp_path / 'qorgan.db'}")
    upgrade(settings)
    return session_factory(make_engine(settings))


def test_sqlite_writers_queue_and_always_leave_the_queue(tmp_path: Path) -> None:
    """A SQLite writer that took the audit lock leaves this process's writers' queue however
    its transaction ends: commit, rollback, or a session closed half-way. Were one to stay in
    it, the next writer would wait out the busy timeout and fail."""
    factory = _sqlite_factory(tmp_path)
    queue = db._WRITERS[factory.kw["bind"]]
    with unit_of_work(factory) as session:
        audit.record("test.commit", session=session, actor="system")
        assert queue.locked()
    assert not queue.locked()
    with pytest.raises(RuntimeError), unit_of_work(factory) as session:
        audit.record("test.rollback", session=session, actor="system")
        raise RuntimeError("the service failed half-way")
    assert not queue.locked()
    session = factory()
    audit.lock(session)
    audit.lock(session)  # the same transaction twice: no deadlock
    assert queue.locked()
    session.close()  # neither committed nor rolled back by the caller
    assert not queue.locked()
    with unit_of_work(factory) as session:
        assert [e.action for e in session.scalars(select(AuditEntry))] == ["test.commit"]


def test_concurrent_sqlite_writers_all_succeed(tmp_path: Path) -> None:
    """Eight threads appending to the audit trail at once, each in many transactions: every
    entry lands, and the chain holds (each writer read the last entry under the lock)."""
    factory = _sqlite_factory(tmp_path)
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(25):
                with unit_of_work(factory) as session:
                    audit.record(f"test.{n}.{i}", session=session, actor="system")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with unit_of_work(factory) as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 200
        assert audit.verify(session=session) == []
