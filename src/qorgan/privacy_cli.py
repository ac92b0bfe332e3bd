"""``qorgan privacy`` commands that act on the database: the scheduled sweep and citizens'
accounts (registered in :mod:`qorgan.cli` on its ``privacy`` group)."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from qorgan.cli_support import database, fail
from qorgan.core.errors import QorganError


def sweep() -> None:
    """End consents past their term and delete records past their retention term.

    Ended consents' data become due for deletion; records past QORGAN_PRIVACY_RETENTION_YEARS
    are deleted and the deletion recorded. For cron, where the console's own schedule is not
    running; safe beside it."""
    from qorgan.privacy.retention import housekeeping

    try:
        with database() as (settings, factory):
            expired, purged = housekeeping(factory, settings)
    except QorganError as exc:
        raise fail(exc) from exc
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
        with database() as (settings, factory), unit_of_work(factory) as session:
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
        raise fail(exc) from exc
    print(f"citizen account {user_id} opened for IIN {mask_iin(iin)}")
