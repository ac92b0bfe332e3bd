"""``qorgan privacy`` commands that act on the database: the scheduled sweep and citizens'
accounts (registered in :mod:`qorgan.cli` on its ``privacy`` group)."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console

from qorgan.core.errors import QorganError

err = Console(stderr=True)


@contextmanager
def _factory() -> Iterator[tuple[Any, Any]]:
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


def _fail(exc: QorganError) -> typer.Exit:
    err.print(f"error: {exc}", markup=False, highlight=False)
    return typer.Exit(2)


def sweep() -> None:
    """End consents past their term and delete records past their retention term.

    Ended consents' data become due for deletion; records past QORGAN_PRIVACY_RETENTION_YEARS
    are deleted and the deletion recorded. For cron, where the console's own schedule is not
    running; safe beside it."""
    from qorgan.privacy.retention import housekeeping

    try:
        with _factory() as (settings, factory):
            expired, purged = housekeeping(factory, settings)
    except QorganError as exc:
        raise _fail(exc) from exc
    print(
        f"consents ended: {expired}; deleted past their term: {purged.access_log} access-log "
        f"entries, {purged.complaints} complaints, {purged.consents} consents, "
        f"{purged.subjects} subjects, {purged.leak_subjects} leak-list entries and "
        f"{purged.leak_notices} leak notices"
    )


def citizen_create(
    email: Annotated[str, typer.Option(help="The citizen's e-mail address.")],
    name: Annotated[str, typer.Option(help="The citizen's name as shown to them.")],
    language: Annotated[str, typer.Option(help="kk, ru or en.")] = "kk",
) -> None:
    """Open a portal account for a citizen whose identity the desk has checked.

    The IIN and the first password are asked for on the terminal (never in the command line,
    where the shell's history and the process list would keep them); the citizen adds a second
    factor at first sign-in."""
    from qorgan.core.db import unit_of_work
    from qorgan.core.identifiers import mask_iin
    from qorgan.privacy import citizens
    from qorgan.privacy.protection import protection

    iin = getpass.getpass("IIN: ").strip()
    password = getpass.getpass("First password: ")
    try:
        with _factory() as (settings, factory), unit_of_work(factory) as session:
            user = citizens.register(
                session=session,
                protection=protection(settings),
                iin=iin,
                email=email,
                display_name=name,
                password=password,
                language=language,
                actor="cli",
            )
            user_id = user.id
    except QorganError as exc:
        raise _fail(exc) from exc
    print(f"citizen account {user_id} opened for IIN {mask_iin(iin)}")
