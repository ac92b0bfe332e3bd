"""``qorgan collect`` (the collector on its own) and ``qorgan sources`` (the registry)."""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from qorgan.core.errors import QorganError

err = Console(stderr=True)
sources_app = typer.Typer(help="Live log sources: register, list.", no_args_is_help=True)
EXIT_USAGE = 2
CLI_ACTOR = "cli"


def collect(
    rules: Annotated[
        list[Path] | None,
        typer.Option("--rules", help="More Sigma rule folders, besides the built-in pack."),
    ] = None,
) -> None:
    """Receive live logs (syslog UDP/TCP/TLS, RELP, HTTP ingest), keep them in the durable
    event log, and run detection on them as they arrive. Listeners, limits and the archive come
    from QORGAN_COLLECT_* and QORGAN_ARCHIVE_DAYS; SIGHUP reloads the rules; SIGTERM stops."""
    import uvicorn

    from qorgan.core.db import make_engine, session_factory
    from qorgan.core.settings import get_settings
    from qorgan.detection.loader import BUILTIN_RULES
    from qorgan.migrations import current, head
    from qorgan.pipeline.collector import Collector, CollectorConfig
    from qorgan.pipeline.hunts import PlanSpec
    from qorgan.web.ingest_app import create_ingest_app

    try:
        settings = get_settings()
        if current(settings) != head():
            err.print("the database schema is not the newest; run `qorgan db upgrade` first")
            raise typer.Exit(EXIT_USAGE)
        engine = make_engine(settings)
        spec = PlanSpec((BUILTIN_RULES, *settings.rules, *(rules or [])))
        collector = Collector(
            CollectorConfig.of(settings), factory=session_factory(engine), plan=spec.load
        )
        collector.start()
    except (QorganError, OSError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, markup=True)
        raise typer.Exit(EXIT_USAGE) from exc
    ports = ", ".join(f"{k} {v}" for k, v in sorted(collector.ports.items()))
    err.print(f"collector listening: {ports or 'no syslog or RELP listener'}", highlight=False)
    signal.signal(signal.SIGHUP, lambda *_: collector.reload_rules())
    try:
        if settings.collect_http:
            host, _, port = settings.collect_http.rpartition(":")
            err.print(f"HTTP ingest at http://{host}:{port}/api/v1/ingest", highlight=False)
            uvicorn.run(
                create_ingest_app(collector, settings),
                host=host,
                port=int(port),
                log_level="warning",
                access_log=False,
            )
        else:
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
    finally:
        collector.stop()
        engine.dispose()


@sources_app.command("create")
def sources_create(
    organisation: Annotated[int, typer.Option(help="The organisation's id.")],
    name: Annotated[str, typer.Option(help="The source's name (unique in its organisation).")],
    transport: Annotated[str, typer.Option(help="udp, tcp, tls, relp or http.")],
    format: Annotated[str, typer.Option("--format", help="syslog, json, cef, accesslog, ...")],
    sender: Annotated[
        list[str] | None, typer.Option(help="An address or network it sends from (repeatable).")
    ] = None,
    certificate_cn: Annotated[
        str | None, typer.Option(help="TLS: the client certificate's common name.")
    ] = None,
    timezone: Annotated[str, typer.Option(help="For times written without a zone.")] = (
        "Asia/Almaty"
    ),
    expected_interval: Annotated[
        int, typer.Option(help="Seconds of silence after which it is alerted on.")
    ] = 900,
    overflow: Annotated[str, typer.Option(help="wait or drop, while detection is behind.")] = (
        "wait"
    ),
) -> None:
    """Register a live log source; prints its id (and, for HTTP, its token, shown only now)."""
    from qorgan.cli import _audit_session
    from qorgan.pipeline.sources import create_source

    try:
        with _audit_session() as session:
            source, token = create_source(
                session=session,
                organisation_id=organisation,
                actor=CLI_ACTOR,
                name=name,
                transport=transport,
                format=format,
                timezone=timezone,
                senders=sender or [],
                certificate_cn=certificate_cn,
                expected_interval=expected_interval,
                overflow=overflow,
            )
            print(source.id)
            if token:
                print(token)
    except (QorganError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, markup=True)
        raise typer.Exit(EXIT_USAGE) from exc


@sources_app.command("list")
def sources_list() -> None:
    """Every registered source with its figures, as tab-separated lines."""
    from qorgan.cli import _audit_session
    from qorgan.pipeline.sources import all_sources

    with _audit_session() as session:
        print("id\torganisation\tname\ttransport\tformat\tevents\tdropped\tlast_event")
        for s in all_sources(session=session):
            last = s.last_event_at.isoformat() if s.last_event_at else "-"
            print(
                f"{s.id}\t{s.organisation_id}\t{s.name}\t{s.transport}\t{s.format}\t"
                f"{s.events}\t{s.dropped}\t{last}"
            )
