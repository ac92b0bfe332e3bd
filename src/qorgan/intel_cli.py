"""``qorgan intel``: constituencies, collections and grants, and feeds (registered in
:mod:`qorgan.cli`). Thin: each command parses its options and calls :mod:`qorgan.intel.store`
or :mod:`qorgan.intel.subscriptions`; organisations are given by id, as ``qorgan org`` does."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from qorgan.cli_support import database, fail, unit
from qorgan.core.db import unit_of_work
from qorgan.core.errors import QorganError

intel_app = typer.Typer(
    help="Threat-intelligence exchange: constituencies, collections, grants and feeds.",
    no_args_is_help=True,
)
CLI_ACTOR = "cli"
Organisation = Annotated[int, typer.Option("--organisation", "-o", help="The organisation's id.")]


@intel_app.command("root-add")
def root_add(
    slug: Annotated[str, typer.Argument(help="The API root's path segment, e.g. kz-cert.")],
    title: Annotated[str, typer.Argument(help="Its title, e.g. 'KZ-CERT constituency'.")],
    description: Annotated[str, typer.Option(help="What the constituency is.")] = "",
) -> None:
    """Create a constituency: a TAXII API root whose members are one TLP:GREEN community."""
    from qorgan.intel import store

    with unit() as session:
        store.create_api_root(session=session, slug=slug, title=title, description=description)
    print(f"constituency {slug} created: /taxii2/{slug}/")


@intel_app.command("member-add")
def member_add(
    slug: Annotated[str, typer.Argument(help="The constituency (API root).")],
    organisation: Annotated[int, typer.Argument(help="The id of the organisation that joins.")],
) -> None:
    """Make an organisation a member of a constituency (it receives the members' GREEN)."""
    from qorgan.intel import store

    with unit() as session:
        root = store.root_by_slug(session=session, slug=slug)
        store.add_member(session=session, api_root=root, organisation_id=organisation)
    print(f"organisation {organisation} is a member of {slug}")


@intel_app.command("client-add")
def client_add(
    organisation: Annotated[int, typer.Argument(help="The id of the organisation that serves.")],
    client: Annotated[int, typer.Argument(help="The id of its client (receives its AMBER).")],
) -> None:
    """Name a client of an organisation: TLP:AMBER goes to the organisation and its clients."""
    from qorgan.intel import store

    with unit() as session:
        store.add_client(session=session, organisation_id=organisation, client_id=client)
    print(f"organisation {client} is a client of {organisation}")


@intel_app.command("collection-add")
def collection_add(
    slug: Annotated[str, typer.Argument(help="The constituency (API root) it belongs to.")],
    title: Annotated[str, typer.Argument(help="The collection's title.")],
    owner: Organisation,
    description: Annotated[str, typer.Option(help="What it holds.")] = "",
    policy: Annotated[
        str | None, typer.Option(help="Redaction policy for what leaves it: green, or none.")
    ] = "green",
    tlp: Annotated[str, typer.Option(help="TLP of objects that arrive unmarked.")] = "amber",
) -> None:
    """Create a collection owned by an organisation; prints its TAXII id."""
    from qorgan.core.tlp import Tlp
    from qorgan.intel import store

    try:
        level = Tlp(tlp)
    except ValueError:
        raise fail(QorganError("tlp is clear, green, amber, amber+strict or red")) from None
    if policy not in (None, "green", "none"):
        raise fail(QorganError("the redaction policy is green or none"))
    with unit() as session:
        root = store.root_by_slug(session=session, slug=slug)
        created = store.create_collection(
            session=session,
            actor=CLI_ACTOR,
            api_root=root,
            owner_id=owner,
            title=title,
            description=description,
            redaction_policy=None if policy in (None, "none") else policy,
            default_tlp=level,
        )
        taxii_id = created.taxii_id
    print(taxii_id)


@intel_app.command("grant")
def grant(
    collection: Annotated[str, typer.Argument(help="The collection's TAXII id.")],
    organisation: Annotated[int, typer.Argument(help="The id of the organisation granted.")],
    read: Annotated[bool, typer.Option("--read/--no-read", help="May read.")] = True,
    write: Annotated[bool, typer.Option("--write/--no-write", help="May write.")] = False,
) -> None:
    """Let an organisation read (and write) a collection; what it reads still follows TLP."""
    from qorgan.intel import store

    with unit() as session:
        found = store.collection_by_id(session=session, taxii_id=collection)
        store.grant(
            session=session,
            collection=found,
            organisation_id=organisation,
            can_read=read,
            can_write=write,
        )
    print(f"organisation {organisation}: read={read} write={write}")


@intel_app.command("feed-add")
def feed_add(
    name: Annotated[str, typer.Argument(help="The feed's name, unique in the organisation.")],
    organisation: Organisation,
    collection: Annotated[str, typer.Option(help="TAXII id of the collection it fills.")],
    kind: Annotated[str, typer.Option(help="taxii, misp or csv.")],
    url: Annotated[str, typer.Option(help="TAXII API root URL, MISP feed URL, list URL/path.")],
    remote_collection: Annotated[
        str | None, typer.Option(help="For TAXII: the remote collection's id.")
    ] = None,
    credential_env: Annotated[
        str | None,
        typer.Option(help="Environment variable holding the token, or user:password."),
    ] = None,
    confidence: Annotated[int, typer.Option(help="Trust, 0-100, for indicators.")] = 50,
    tlp: Annotated[str, typer.Option(help="TLP of objects that arrive unmarked.")] = "amber",
    lifetime_days: Annotated[int, typer.Option(help="How long its indicators stay valid.")] = 30,
    every: Annotated[int, typer.Option(help="Minutes between polls.")] = 60,
) -> None:
    """Subscribe an organisation to a feed that fills one of its collections."""
    from qorgan.core.tlp import Tlp
    from qorgan.intel import store, subscriptions

    try:
        level = Tlp(tlp)
    except ValueError:
        raise fail(QorganError("tlp is clear, green, amber, amber+strict or red")) from None
    with unit() as session:
        feed = subscriptions.add_feed(
            session=session,
            actor=CLI_ACTOR,
            organisation_id=organisation,
            collection=store.collection_by_id(session=session, taxii_id=collection),
            name=name,
            kind=kind,
            url=url,
            remote_collection=remote_collection,
            credential_env=credential_env,
            confidence=confidence,
            tlp=level,
            lifetime_days=lifetime_days,
            poll_minutes=every,
            allow_local_paths=True,  # the operator's own command line
        )
        feed_id = feed.id
    print(f"feed {feed_id} ({name}) added; first poll is due now")


@intel_app.command("feeds")
def feeds(organisation: Organisation) -> None:
    """List an organisation's feeds and their health: last poll, error, objects."""
    from qorgan.intel import subscriptions

    with unit() as session:
        rows = [
            (
                f.name,
                f.kind,
                f.last_success_at.isoformat(timespec="seconds") if f.last_success_at else "-",
                f.last_error or "ok",
                f.last_objects,
                f.objects_total,
            )
            for f in subscriptions.feeds_of(session=session, organisation_id=organisation)
        ]
    print("name\tkind\tlast success\tstate\tlast poll objects\tobjects")
    for row in rows:
        print("\t".join(str(value) for value in row))


@intel_app.command("poll")
def poll(
    names: Annotated[
        list[str] | None, typer.Argument(help="Feeds to poll now (default: every due feed).")
    ] = None,
    organisation: Annotated[
        int | None, typer.Option("--organisation", "-o", help="With names: whose feeds.")
    ] = None,
) -> None:
    """Poll the due feeds (for cron), or the named feeds of an organisation now."""
    from qorgan.intel import subscriptions

    failed = False
    try:
        with database() as (_settings, factory):
            with unit_of_work(factory) as session:
                if names:
                    if organisation is None:
                        raise QorganError("name the feeds' organisation with --organisation")
                    ids = subscriptions.feed_ids(
                        session=session, organisation_id=organisation, names=names
                    )
                else:
                    ids = subscriptions.due_feeds(session=session, now=datetime.now(UTC))
            for feed_id in ids:
                outcome = subscriptions.poll(factory, feed_id)
                state = outcome.error or "ok"
                failed = failed or outcome.error is not None
                print(
                    f"{outcome.feed}: {outcome.objects} objects, {outcome.refused} refused, {state}"
                )
    except QorganError as exc:
        raise fail(exc) from exc
    if failed:
        raise typer.Exit(1)


@intel_app.command("indicators")
def indicators(
    organisation: Organisation,
    output: Annotated[
        Path | None,
        typer.Argument(
            help="The file to write (JSON lines); default: var/intel/indicators-<id>.jsonl, "
            "which live monitoring reads."
        ),
    ] = None,
) -> None:
    """Write the organisation's active indicators for live monitoring and hunts."""
    from qorgan.core.settings import get_settings
    from qorgan.intel.indicator_export import export_indicators

    if output is None:
        output = get_settings().var_dir / "intel" / f"indicators-{organisation}.jsonl"
        output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    try:
        with (
            database() as (_settings, factory),
            unit_of_work(factory) as session,
            partial.open("w", encoding="utf-8") as out,
        ):
            report = export_indicators(out, session=session, organisation_id=organisation)
        partial.replace(output)  # a reader never sees half a file
    except QorganError as exc:
        partial.unlink(missing_ok=True)
        raise fail(exc) from exc
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise fail(QorganError(f"cannot write {output}: {exc.strerror}")) from exc
    left = ", ".join(f"{n} {reason}" for reason, n in report.left_out.most_common())
    print(
        f"{report.lines} indicator values written from {report.indicators} active indicators"
        + (f"; left out: {left}" if left else "")
    )
