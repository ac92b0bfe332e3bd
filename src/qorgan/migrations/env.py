"""Alembic environment: Qorgan's metadata, and the engine built from Qorgan's settings.

Run through :func:`qorgan.core.migrate.upgrade`, which passes an open connection; run by the
``alembic`` command it builds settings from the environment (``QORGAN_DATABASE_URL``).
"""

from __future__ import annotations

from alembic import context

from qorgan.core.db import UTCDateTime, make_engine
from qorgan.core.settings import get_settings
from qorgan.migrations import COMPARE_OPTIONS, load_models

config = context.config
target_metadata = load_models()  # every package's tables


def _render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    # Migrations use plain SQLAlchemy types, so they never depend on our Python code.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
        render_item=_render_item,
        **COMPARE_OPTIONS,  # type: ignore[arg-type]
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    settings = config.attributes.get("settings") or get_settings()
    engine = make_engine(settings)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


def run_offline() -> None:
    settings = config.attributes.get("settings") or get_settings()
    context.configure(
        url=settings.database_url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
