"""The database schema's history: Alembic migrations for every package's tables.

This package sits above the domain packages (like ``cli.py``), so ``env.py`` may import every
package's models for autogeneration, while ``core`` imports none of them. Migration scripts use
plain SQLAlchemy types only, so they never depend on our Python code. No alembic.ini is needed.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from sqlalchemy.exc import SQLAlchemyError

from qorgan.core.db import Base, DatabaseError, make_engine

if TYPE_CHECKING:
    from sqlalchemy import MetaData

    from qorgan.core.settings import Settings

MIGRATIONS = Path(__file__).resolve().parent
#: Every module defining tables; a package adding tables adds its module here.
MODEL_MODULES = (
    "qorgan.core.models",
    "qorgan.incidents.models",
    "qorgan.incidents.notification_models",
    "qorgan.incidents.finding_models",
    "qorgan.pipeline.models",
    "qorgan.privacy.models",
    "qorgan.privacy.leak_models",
    "qorgan.intel.models",
)


#: Database objects that live outside the models on purpose (the search index of migration
#: 0006: an FTS5 table and its shadow tables on SQLite, a table of the texts with a trigram
#: index on PostgreSQL; the trigram index of incident titles of 0010, PostgreSQL only).
UNMODELLED = ("alerts_search", "ix_alerts_search_text", "ix_incidents_title_trgm")


#: Indexes whose columns PostgreSQL sorts ``DESC NULLS LAST`` (newest first, untimed last);
#: reflection gives them back as expressions, which alembic cannot compare with the model's
#: columns, so they are compared by name here and by definition in tests/core/test_db.py.
SORTED_INDEXES = ("ix_alerts_organisation_id_time",)


def include_name(name: str | None, type_: str, _parents: object) -> bool:
    """For autogeneration and compare_metadata: leave the unmodelled objects alone."""
    if type_ in ("table", "index") and name is not None:
        return not name.startswith(UNMODELLED) and name not in SORTED_INDEXES
    return True


def include_object(
    _object: object, name: str | None, type_: str, _reflected: bool, _compare_to: object
) -> bool:
    """The same for the models' side of a comparison."""
    return include_name(name, type_, None)


#: Options for alembic's comparison of the models with a database.
COMPARE_OPTIONS = {"include_name": include_name, "include_object": include_object}


def load_models() -> MetaData:
    """Import every package's tables and return the metadata they registered on."""
    for module in MODEL_MODULES:
        importlib.import_module(module)
    return Base.metadata


def alembic_config(settings: Settings) -> Config:
    """An Alembic configuration built in code; ``env.py`` reads ``attributes["settings"]``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["settings"] = settings
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database named by ``settings`` up to ``revision`` (default: the newest)."""
    engine = make_engine(settings)
    try:
        with engine.begin() as connection:
            config = alembic_config(settings)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except SQLAlchemyError as exc:
        raise DatabaseError(f"migration failed: {exc}", source="db upgrade") from exc
    finally:
        engine.dispose()


def current(settings: Settings) -> str | None:
    """The revision the database is at (None before the first upgrade)."""
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise DatabaseError(f"cannot read the database: {exc}", source="database") from exc
    finally:
        engine.dispose()


def head() -> str | None:
    """The newest revision the shipped migrations define."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()
