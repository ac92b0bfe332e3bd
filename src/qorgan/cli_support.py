"""What the command modules share: the database on the newest schema, and how an error ends a
command (exit status 2, the message on standard error, never a traceback)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console

from qorgan.core.errors import QorganError

err = Console(stderr=True)


@contextmanager
def database() -> Iterator[tuple[Any, Any]]:
    """The settings and a session factory on the newest schema (refused otherwise)."""
    from qorgan.core.db import DatabaseError, make_engine, session_factory
    from qorgan.core.settings import get_settings
    from qorgan.migrations import current, head

    settings = get_settings()
    if current(settings) != head():
        raise DatabaseError(
            "the database schema is not the newest; run `qorgan db upgrade` first",
            source=settings.database_url.rpartition("@")[2],
        )
    engine = make_engine(settings)
    try:
        yield settings, session_factory(engine)
    finally:
        engine.dispose()


@contextmanager
def unit() -> Iterator[Any]:
    """One unit of work on the newest schema; a refusal ends the command as :func:`fail`."""
    from qorgan.core.db import unit_of_work

    try:
        with database() as (_settings, factory), unit_of_work(factory) as session:
            yield session
    except QorganError as exc:
        raise fail(exc) from exc


def fail(exc: QorganError) -> typer.Exit:
    """Print ``exc`` as the command's error and return the exit to raise."""
    err.print(f"error: {exc}", markup=False, highlight=False)
    return typer.Exit(2)
