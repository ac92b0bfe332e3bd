"""The ``qorgan`` command: thin; each command builds library objects and calls one function.

Exit codes: 0 no alerts (or nothing wrong), 1 alerts or problems found, 2 usage or input error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import tzinfo
from enum import Enum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import typer
import yaml
from rich.console import Console
from rich.table import Table

from qorgan.core.errors import QorganError
from qorgan.detection.alerts import LEVELS, Alert, CsvWriter, JsonLinesWriter
from qorgan.detection.hunt import HUNT_BATCH_SIZE, HuntSummary, run_hunt
from qorgan.detection.loader import BUILTIN_RULES, default_cache_dir, load_plan
from qorgan.detection.logsources import LogsourceMap
from qorgan.detection.workers import default_workers
from qorgan.telemetry.formats import FORMATS
from qorgan.telemetry.options import ReadOptions
from qorgan.telemetry.quarantine import Quarantine

if TYPE_CHECKING:
    from qorgan.core.settings import Settings

app = typer.Typer(
    help="Qorgan: security operations for public bodies and smart cities.",
    no_args_is_help=True,
    add_completion=False,
)
rules_app = typer.Typer(help="Work with detection rules.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
db_app = typer.Typer(help="Manage the database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
audit_app = typer.Typer(help="Check the tamper-evident audit trail.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
org_app = typer.Typer(help="Manage organisations.", no_args_is_help=True)
app.add_typer(org_app, name="org")
user_app = typer.Typer(help="Manage console users.", no_args_is_help=True)
app.add_typer(user_app, name="user")
err = Console(stderr=True)

EXIT_ALERTS = 1
EXIT_USAGE = 2


class OutputFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"
    table = "table"


class ReportFormat(StrEnum):
    text = "text"
    json = "json"


Level = Enum("Level", {level: level for level in LEVELS}, type=str)  # type: ignore[misc]


def _fail(exc: QorganError) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}", highlight=False, markup=True)
    return typer.Exit(EXIT_USAGE)


def _parse_logsource(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    out = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in ("product", "service", "category"):
            raise typer.BadParameter("expected product=...,service=...,category=...")
        out[key.strip()] = value.strip()
    return out


def _load_placeholders(path: Path | None) -> dict[str, list[str]] | None:
    if path is None:
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise typer.BadParameter(f"cannot read placeholders {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise typer.BadParameter("placeholders file must map names to lists of values")
    return {
        str(k): [str(v) for v in (vs if isinstance(vs, list) else [vs])] for k, vs in data.items()
    }


def _plan(
    rules: list[Path], logsource_map: Path | None, placeholders: Path | None, cache: bool
) -> Any:
    extra = (logsource_map,) if logsource_map else ()
    return load_plan(
        rules,
        logsources=LogsourceMap.load(*extra),
        placeholders=_load_placeholders(placeholders),
        cache_dir=default_cache_dir() if cache else None,
    )


RulesOpt = Annotated[
    list[Path] | None,
    typer.Option("--rules", "-r", help="Sigma rule files or directories (default: built-in pack)."),
]
LogsourceMapOpt = Annotated[
    Path | None, typer.Option(help="Extra logsource mapping entries (YAML), added to the defaults.")
]
PlaceholdersOpt = Annotated[
    Path | None, typer.Option(help="YAML mapping placeholder names to values (for |expand).")
]


@app.command()
def hunt(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Log files or directories to hunt in.")
    ] = None,
    rules: RulesOpt = None,
    min_level: Annotated[
        Level | None, typer.Option(help="Only rules at this level or above.")
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="How alerts are written.")
    ] = OutputFormat.jsonl,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write alerts here (default: stdout).")
    ] = None,
    input_format: Annotated[
        str | None,
        typer.Option(help=f"Force the input format ({', '.join(sorted(FORMATS))})."),
    ] = None,
    logsource: Annotated[
        str | None,
        typer.Option(help="Tag the input, e.g. product=aws,service=cloudtrail."),
    ] = None,
    logsource_map: LogsourceMapOpt = None,
    placeholders: PlaceholdersOpt = None,
    quarantine: Annotated[
        Path | None, typer.Option(help="Append quarantined records here (JSON lines).")
    ] = None,
    progress: Annotated[
        bool, typer.Option(help="Show a progress bar (default: when stderr is a terminal).")
    ] = sys.stderr.isatty(),
    cache: Annotated[bool, typer.Option(help="Reuse compiled plans cached on disk.")] = True,
    lateness: Annotated[
        str,
        typer.Option(
            help="How far behind the newest event an event may arrive and still be "
            "correlated (30s, 5m, 2h); 'all' correlates the whole input in time order."
        ),
    ] = "all",
    state: Annotated[
        Path | None,
        typer.Option(help="Correlation state file: continued from when it exists, saved after."),
    ] = None,
    to_console: Annotated[
        str | None,
        typer.Option(
            help="Send the alerts to this Qorgan console (http://host:8000) with the API token "
            "in QORGAN_API_TOKEN; they are then printed only with --output."
        ),
    ] = None,
    timezone: Annotated[
        str,
        typer.Option(
            help="Time zone of times logged without one (RFC 3164 syslog, Apache error logs), "
            "e.g. Asia/Almaty or UTC."
        ),
    ] = "Asia/Almaty",
    archive: Annotated[
        bool,
        typer.Option(
            help="Hunt the live collector's event archive (QORGAN_VAR_DIR/events) instead of "
            "files: a new rule run back over what was received."
        ),
    ] = False,
    since: Annotated[str, typer.Option(help="With --archive: how far back (7d, 12h, 30m).")] = "7d",
    organisation: Annotated[
        list[int] | None, typer.Option(help="With --archive: only this organisation's events.")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Processes reading and matching files, a large file of JSON lines in 64 MiB spans "
            "(default: the cores available, at most one per file or span and per 32 MiB); the "
            "alerts are those of one process, in the same order.",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, hidden=True)] = HUNT_BATCH_SIZE,
    indicators: Annotated[
        Path | None,
        typer.Option(
            help="Also match these indicators: JSON lines of {kind, value, ref, source, "
            "confidence, valid_until}, or CSV with those columns when named *.csv; kinds "
            "ipv4-addr, ipv6-addr, domain-name, url, file-hash, email-addr. Bad lines are "
            "quarantined with their line number."
        ),
    ] = None,
    anomaly: Annotated[
        Path | None,
        typer.Option(
            help="Also run the AI anomaly models (templates, entities, sessions) and write their "
            "findings here as JSON lines. Findings are proposals for a person to confirm, not "
            "alerts. The hunt then runs in one process."
        ),
    ] = None,
    anomaly_state: Annotated[
        Path | None,
        typer.Option(
            help="With --anomaly: a folder of the models' baselines, continued from when it "
            "exists and saved after, so a later hunt scores against what this one learned."
        ),
    ] = None,
) -> None:
    """Run Sigma rules and correlations over log files (or the live archive); print alerts and
    a summary.

    Exit 1 when alerts fire."""
    if not paths and not archive:
        raise typer.BadParameter("name log files or directories, or use --archive")
    if paths and archive:
        raise typer.BadParameter("--archive hunts the archive: name no files with it")
    late_seconds = _parse_duration(lateness)
    options = ReadOptions(tz=_zone(timezone))
    if input_format and input_format not in FORMATS:
        raise typer.BadParameter(
            f"unknown format; known: {', '.join(sorted(FORMATS))}", param_hint="--input-format"
        )
    tags = _parse_logsource(logsource)
    try:
        plan = _plan(rules or [BUILTIN_RULES], logsource_map, placeholders, cache)
    except QorganError as exc:
        raise _fail(exc) from exc
    table_rows: list[Alert] = []
    stream: Any = None
    sender = _console_sender(to_console) if to_console else None
    if sender is not None and output is None:
        writer: Any = _NoWriter()
    elif output_format is OutputFormat.table:
        writer: Any = None
    elif output_format is OutputFormat.csv:
        stream = output.open("w", newline="", encoding="utf-8") if output else sys.stdout
        writer = CsvWriter(stream)
    else:
        stream = output.open("wb") if output else sys.stdout.buffer
        writer = JsonLinesWriter(stream)

    def sink(alerts: list[Alert]) -> None:
        if sender is not None:
            sender.add([a.to_dict() for a in alerts])
        if writer is None:
            table_rows.extend(alerts)
        else:
            writer.write(alerts)

    quarantine_sink = Quarantine.to_file(quarantine) if quarantine else Quarantine()
    known = _indicators(indicators, quarantine_sink) if indicators is not None else None
    archived = _archive_batches(since, organisation, quarantine_sink) if archive else None
    suite, findings_out = _anomaly_suite(anomaly, anomaly_state) if anomaly else (None, None)
    paths = paths or []
    bar = _progress_bar() if progress and not archive else None
    try:
        if bar is not None:
            sizes = _sizes(paths)
            bar.start()
            task = bar.add_task("hunting", total=sum(sizes.values()) or None)
            done: dict[str, int] = {}

            def tick(batch: Any, summary: HuntSummary) -> None:
                # Bytes of the files read so far: finished files whole, the current one to the
                # offset of its last batch.
                done[batch.path] = batch.offset or sizes.get(batch.path, 0)
                bar.update(
                    task,
                    description=f"{summary.events:,} events, {summary.alerts:,} alerts",
                    completed=sum(done.values()),
                )

        summary, hunter = run_hunt(
            paths,
            plan,
            sink=sink,
            quarantine=quarantine_sink,
            format_name=input_format,
            logsource=tags,
            progress=tick if bar is not None else None,
            min_level=min_level.value if min_level else None,
            lateness=late_seconds,
            state=state.read_bytes() if state is not None and state.exists() else None,
            options=options,
            batches=archived,
            workers=workers or default_workers(paths),
            batch_size=batch_size,
            indicators=known,
            anomaly=suite,
            findings=findings_out.write if findings_out is not None else None,
        )
        if suite is not None and anomaly_state is not None:
            suite.save(anomaly_state)
        if state is not None:
            tmp = state.with_name(state.name + ".tmp")
            tmp.write_bytes(hunter.correlator.dump())
            tmp.replace(state)
        if sender is not None:
            totals = sender.close()
            err.print(
                f"sent {totals.sent:,} alerts to the console: {totals.created:,} new, "
                f"{totals.duplicates:,} already there",
                highlight=False,
            )
    except QorganError as exc:
        raise _fail(exc) from exc
    finally:
        if bar is not None:
            bar.stop()
        quarantine_sink.close()
        if findings_out is not None:
            findings_out.close()
    if writer is not None:
        writer.close()
        if output and stream is not None:
            stream.close()
    else:
        _print_table(table_rows, output)
    _print_summary(summary, plan, quarantine_sink)
    raise typer.Exit(EXIT_ALERTS if summary.alerts else 0)


def _anomaly_suite(path: Path, state: Path | None) -> tuple[Any, Any]:
    """The anomaly models of ``--anomaly`` (continued from ``--anomaly-state``) and the
    writer of their findings."""
    from qorgan.detection.anomaly.defaults import default_suite
    from qorgan.detection.anomaly.output import FindingsWriter

    suite = default_suite()
    try:
        if state is not None and suite.restore(state):
            err.print(f"anomaly: baselines continued from {state}", highlight=False)
        return suite, FindingsWriter(path)
    except (QorganError, OSError) as exc:
        raise _fail(exc if isinstance(exc, QorganError) else QorganError(str(exc))) from exc


def _indicators(path: Path, quarantine: Quarantine) -> Any:
    """The indicator set of ``--indicators``, its count told on stderr."""
    from qorgan.detection.indicator_files import load_indicators

    try:
        found = load_indicators(path, quarantine)
    except QorganError as exc:
        quarantine.close()
        raise _fail(exc) from exc
    refused = sum(found.refused.values())
    err.print(f"indicators: {len(found):,} loaded, {refused:,} refused", highlight=False)
    return found


class _NoWriter:
    """Alerts go to the console only."""

    def write(self, alerts: list[Alert]) -> None:
        pass

    def close(self) -> None:
        pass


def _console_sender(url: str) -> Any:
    import os

    from qorgan.pipeline.console import TOKEN_VARIABLE, ConsoleSender

    try:
        return ConsoleSender(url, os.environ.get(TOKEN_VARIABLE, "").strip())
    except QorganError as exc:
        raise _fail(exc) from exc


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise typer.BadParameter(
            f"unknown time zone {name!r}; use an IANA name such as Asia/Almaty or UTC",
            param_hint="--timezone",
        ) from None


def _parse_duration(text: str) -> float | None:
    if text.strip().lower() in ("all", "none", "unbounded"):
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    except (ValueError, IndexError):
        raise typer.BadParameter(
            "expected a duration such as 30s, 5m, 2h, or 'all'", param_hint="--lateness"
        ) from None


def _progress_bar() -> Any:
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


def _sizes(paths: list[Path]) -> dict[str, int]:
    """Sizes of the files a hunt will read, for the progress bar (unreadable ones count 0)."""
    from qorgan.telemetry.sources import expand_paths

    sizes = {}
    try:
        for path in expand_paths(paths):
            try:
                sizes[str(path)] = path.stat().st_size
            except OSError:
                sizes[str(path)] = 0
    except QorganError:
        pass  # the hunt itself reports missing paths
    return sizes


def _print_table(alerts: list[Alert], output: Path | None) -> None:
    table = Table(title=f"{len(alerts)} alerts")
    for column in ("time", "level", "rule", "host or group", "source"):
        table.add_column(column, overflow="fold")
    for a in alerts:
        who = a.host or ""
        if a.correlation is not None:
            who = ", ".join(f"{k}={v}" for k, v in a.event.items())
            source = f"{len(a.correlation['events'])} events, last {a.path}:{a.record}"
        else:
            source = f"{a.path}:{a.record}"
        table.add_row(a.time or "", a.rule.level, a.rule.title, who, source)
    if output:
        with output.open("w", encoding="utf-8") as fh:
            Console(file=fh, width=200).print(table)
    else:
        Console(width=None if sys.stdout.isatty() else 200).print(table)


def _print_summary(summary: HuntSummary, plan: Any, quarantine: Quarantine) -> None:
    err.print(
        f"[bold]{summary.events:,}[/bold] events from {len(summary.files)} files in "
        f"{summary.seconds:.2f} s ({summary.events_per_second:,.0f} events/s); "
        f"rules loaded {summary.rules_loaded} and {summary.correlations_loaded} correlations, "
        f"failed {summary.rules_failed}; quarantined {quarantine.count}",
        highlight=False,
    )
    levels = ", ".join(
        f"{level} {summary.by_level[level]}"
        for level in reversed(LEVELS)
        if summary.by_level[level]
    )
    err.print(
        f"[bold]{summary.alerts:,}[/bold] alerts" + (f": {levels}" if levels else ""),
        highlight=False,
    )
    if summary.by_rule:
        table = Table(title="top rules", show_edge=False)
        table.add_column("alerts", justify="right")
        table.add_column("level")
        table.add_column("rule")
        for (_rule_id, title, level), count in summary.by_rule.most_common(10):
            table.add_row(str(count), level, title)
        err.print(table)
    if summary.findings:
        kinds = ", ".join(f"{kind} {count}" for kind, count in summary.findings.most_common())
        err.print(
            f"[bold]{summary.findings.total():,}[/bold] AI anomaly findings, to be confirmed or "
            f"rejected by a person: {kinds}",
            highlight=False,
        )
    if summary.late or summary.untimed:
        err.print(
            f"not correlated: {summary.late} events later than --lateness, "
            f"{summary.untimed} without a time",
            highlight=False,
        )
    if quarantine.count:
        reasons = ", ".join(f"{r} {c}" for r, c in quarantine.by_reason.most_common(5))
        err.print(f"quarantined records by reason: {reasons}", highlight=False)


@rules_app.command("coverage")
def rules_coverage(
    paths: Annotated[list[Path], typer.Argument(help="Sigma rule files or directories.")],
    report_format: Annotated[ReportFormat, typer.Option("--format", "-f")] = ReportFormat.text,
    navigator: Annotated[
        Path | None, typer.Option(help="Also write an ATT&CK Navigator layer (JSON) here.")
    ] = None,
) -> None:
    """Count rules per KZ-CERT class, RSIT class and ATT&CK tactic; list unclassified rules."""
    from qorgan.detection.coverage import coverage_report, navigator_layer, render_text

    try:
        plan = _plan(paths, None, None, cache=True)
        report = coverage_report(plan)
    except QorganError as exc:
        raise _fail(exc) from exc
    if navigator is not None:
        layer = navigator_layer(plan, "Qorgan coverage")
        navigator.write_bytes(orjson.dumps(layer, option=orjson.OPT_INDENT_2))
    if report_format is ReportFormat.json:
        sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        Console(highlight=False, width=None if sys.stdout.isatty() else 160).print(
            render_text(report), markup=False
        )


@rules_app.command("check")
def rules_check(
    paths: Annotated[list[Path], typer.Argument(help="Sigma rule files or directories.")],
    report_format: Annotated[ReportFormat, typer.Option("--format", "-f")] = ReportFormat.text,
    logsource_map: LogsourceMapOpt = None,
    placeholders: PlaceholdersOpt = None,
) -> None:
    """Compile rules; report how many compiled and every failure with its reason.

    Exit 0 when all compiled, 1 when some failed, 2 on usage errors."""
    try:
        plan = _plan(paths, logsource_map, placeholders, cache=False)
    except QorganError as exc:
        raise _fail(exc) from exc
    total = len(plan.rules) + len(plan.correlations) + len(plan.failures)
    report = {
        "rules": total,
        "compiled": len(plan.rules),
        "correlations": len(plan.correlations),
        "failed": len(plan.failures),
        "atoms": len(plan.atoms),
        "failures": [
            {"path": f.path, "id": f.id, "title": f.title, "reason": f.reason}
            for f in plan.failures
        ],
        "warnings": [{"path": w.path, "id": w.id, "message": w.message} for w in plan.warnings],
    }
    if report_format is ReportFormat.json:
        sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        out = Console(highlight=False)
        compiled = len(plan.rules) + len(plan.correlations)
        share = 100.0 * compiled / total if total else 100.0
        out.print(
            f"{compiled} of {total} rules compiled ({share:.2f}%; "
            f"{len(plan.correlations)} correlations), {len(plan.failures)} failed, "
            f"{len(plan.atoms)} distinct conditions"
        )
        for f in plan.failures:
            out.print(f"FAILED {f.path}: {f.title or ''} [{f.id or '-'}]: {f.reason}")
        for w in plan.warnings:
            out.print(f"warning {w.path} [{w.id or '-'}]: {w.message}")
    raise typer.Exit(1 if plan.failures else 0)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Create or migrate the database named by QORGAN_DATABASE_URL to the newest schema."""
    from qorgan.core.settings import get_settings
    from qorgan.migrations import current, upgrade

    try:
        settings = get_settings()
        upgrade(settings, revision)
        at = current(settings)
    except QorganError as exc:
        raise _fail(exc) from exc
    err.print(f"database at revision {at}", highlight=False)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Serve the web console and the REST API (database from QORGAN_DATABASE_URL)."""
    import uvicorn

    from qorgan.core.settings import get_settings
    from qorgan.migrations import current, head

    try:
        settings = get_settings()
        if current(settings) != head():
            err.print(
                "the database schema is not the newest; run `qorgan db upgrade` first",
                highlight=False,
            )
            raise typer.Exit(EXIT_USAGE)
    except QorganError as exc:
        raise _fail(exc) from exc
    err.print(f"Qorgan console at http://{host}:{port}/", highlight=False)
    if workers > 1 and settings.collect_in_serve:
        # Each worker would start a collector on the same ports: run `qorgan collect` instead.
        os.environ["QORGAN_COLLECT_IN_SERVE"] = "false"
        err.print(
            "live monitoring: with several workers, run the collector as `qorgan collect`",
            highlight=False,
        )
    uvicorn.run("qorgan.web.app:serve_app", **uvicorn_options(settings, host, port, workers))


def _archive_batches(
    since: str, organisations: list[int] | None, quarantine: Quarantine
) -> Iterator[Any]:
    """The archive's events received in the last ``since`` (``qorgan hunt --archive``)."""
    from datetime import UTC, datetime, timedelta

    from qorgan.core.settings import get_settings
    from qorgan.pipeline.archive import archived_files, read_archive

    seconds = _parse_duration(since)
    if seconds is None:
        raise typer.BadParameter("a duration such as 7d, 12h or 30m", param_hint="--since")
    start = datetime.now(UTC) - timedelta(seconds=seconds)
    root = get_settings().var_dir / "events"
    files = archived_files(root, since=start, organisation_ids=organisations)
    err.print(f"archive: {len(files):,} files under {root}", highlight=False)
    return read_archive(files, quarantine, since=start)


def uvicorn_options(settings: Settings, host: str, port: int, workers: int) -> dict[str, object]:
    """How ``qorgan serve`` runs uvicorn."""
    return {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "log_level": "info",
        "access_log": False,  # request paths can carry personal data (host and user names)
        # X-Forwarded-For is believed only from the configured proxies: otherwise any client
        # could choose the address that sign-in throttling counts.
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": ",".join(settings.trusted_proxies),
    }


@app.command()
def demo(
    examples: Annotated[Path, typer.Option(help="Example logs hunted into the demo inbox.")] = Path(
        "examples/logs"
    ),
) -> None:
    """Set up a demonstration: the database, a demo organisation with one user per role
    (passwords printed once), and example alerts from a hunt over the example logs."""
    from qorgan.core.db import make_engine, session_factory
    from qorgan.core.settings import get_settings
    from qorgan.demo import DEMO_ORGANISATION, create_demo, load_examples
    from qorgan.demo_replay import create_demo_sources
    from qorgan.migrations import upgrade
    from qorgan.pipeline.hunts import read_options

    try:
        settings = get_settings()
        upgrade(settings)
        engine = make_engine(settings)
        factory = session_factory(engine)
        created = create_demo(factory)
        if created is None:
            err.print(
                "the demo organisation exists already; its passwords were printed when it was "
                "created (delete var/ to start again)",
                highlight=False,
            )
        else:
            # Plain lines, never cut to the terminal's width: these are shown only once.
            print("Demo users (the passwords are shown only now):")
            for a in created:
                print(f"  {a.email:<32} {a.password:<22} {a.role} ({a.organisation})")
            print(
                "These roles sign in with a second factor: at the first sign-in, scan the QR "
                "code with an authenticator app (or type its key)."
            )
        hunt = load_examples(factory, examples, settings.hunt_root, options=read_options(settings))
        create_demo_sources(factory, DEMO_ORGANISATION)
        engine.dispose()
    except QorganError as exc:
        raise _fail(exc) from exc
    if hunt.error:
        err.print(f"the example hunt failed: {hunt.error}", highlight=False)
        raise typer.Exit(EXIT_USAGE)
    err.print(
        f"example hunt: {hunt.events:,} events, {hunt.alerts_found:,} alerts "
        f"({hunt.alerts_new:,} new in the inbox)",
        highlight=False,
    )


CLI_ACTOR = "cli"


@org_app.command("create")
def org_create(
    name: Annotated[str, typer.Argument(help="The organisation's name (unique).")],
    kind: Annotated[
        str, typer.Option(help="akimat, ministry, bank, soc, cert or other.")
    ] = "other",
) -> None:
    """Create an organisation; prints its id."""
    from qorgan.core import accounts
    from qorgan.core.models import OrganisationKind

    try:
        organisation_kind = OrganisationKind(kind)
    except ValueError:
        raise typer.BadParameter(
            f"one of {', '.join(OrganisationKind)}", param_hint="--kind"
        ) from None
    try:
        with _audit_session() as session:
            organisation = accounts.create_organisation(
                session=session, actor=CLI_ACTOR, name=name, kind=organisation_kind
            )
            print(organisation.id)
    except QorganError as exc:
        raise _fail(exc) from exc


@org_app.command("share")
def org_share(
    owner: Annotated[int, typer.Argument(help="The id of the organisation that shares.")],
    partner: Annotated[int, typer.Argument(help="The id of the organisation that may read.")],
    resource: Annotated[str, typer.Option(help="alerts or hunts.")] = "alerts",
) -> None:
    """Let one organisation read another's alerts (or hunts); never change them."""
    from qorgan.core import accounts

    try:
        with _audit_session() as session:
            accounts.share(
                session=session,
                actor=CLI_ACTOR,
                owner_id=owner,
                partner_id=partner,
                resource=resource,
            )
    except QorganError as exc:
        raise _fail(exc) from exc


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Argument(help="The user's e-mail address (the sign-in name).")],
    organisation: Annotated[int, typer.Option(help="The organisation's id.")],
    role: Annotated[
        str,
        typer.Option(
            help="administrator, soc_analyst, cert_coordinator, partner, dpo, auditor or citizen."
        ),
    ],
    name: Annotated[str, typer.Option(help="The name shown in the console.")],
    language: Annotated[str, typer.Option(help="kk, ru or en.")] = "kk",
) -> None:
    """Create a console user with a generated password, printed once (the user changes it on the
    account page; roles handling incidents or personal data enrol a second factor first)."""
    from qorgan.core import accounts, security
    from qorgan.core.i18n import LANGUAGES
    from qorgan.core.models import Organisation, Role

    try:
        user_role = Role(role)
    except ValueError:
        raise typer.BadParameter(f"one of {', '.join(Role)}", param_hint="--role") from None
    if language not in LANGUAGES:
        raise typer.BadParameter(f"one of {', '.join(LANGUAGES)}", param_hint="--language")
    password = security.generate_password()
    try:
        with _audit_session() as session:
            if session.get(Organisation, organisation) is None:
                raise accounts.AccountError(f"no organisation with id {organisation}")
            user = accounts.create_user(
                session=session,
                actor=CLI_ACTOR,
                organisation_id=organisation,
                email=email,
                display_name=name,
                role=user_role,
                password=password,
                language=language,
            )
            user_id = user.id
    except QorganError as exc:
        raise _fail(exc) from exc
    print(f"user {user_id} created; password (shown only now): {password}")


@contextmanager
def _audit_session() -> Iterator[Any]:
    """A unit of work on the migrated database named by the settings."""
    from qorgan.core.db import DatabaseError, make_engine, session_factory, unit_of_work
    from qorgan.core.settings import get_settings
    from qorgan.migrations import current

    settings = get_settings()
    if current(settings) is None:
        raise DatabaseError(
            "the database has no Qorgan tables; run `qorgan db upgrade` first",
            source=settings.database_url.rpartition("@")[2],
        )
    engine = make_engine(settings)
    try:
        with unit_of_work(session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[
        str | None,
        typer.Option(help="ID:HASH printed earlier by `qorgan audit anchor`, kept elsewhere."),
    ] = None,
) -> None:
    """Check every audit entry's hash and the chain between them; list what is wrong.

    Exit 0 when intact, 1 when problems are found, 2 on usage errors."""
    from qorgan.core import audit

    try:
        expected = audit.Anchor.parse(anchor) if anchor else None
        with _audit_session() as session:
            problems = audit.verify(session=session, anchor=expected)
            last = audit.anchor(session=session)
    except QorganError as exc:
        raise _fail(exc) from exc
    out = Console(highlight=False)
    for problem in problems:
        out.print(f"PROBLEM {problem}", markup=False)
    entries = last.last_id if last else 0
    if problems:
        err.print(f"audit trail: {len(problems)} problems", highlight=False)
        raise typer.Exit(1)
    err.print(f"audit trail intact: {entries} entries", highlight=False)


@audit_app.command("anchor")
def audit_anchor() -> None:
    """Print the last entry's ID:HASH, to keep outside the database for `audit verify --anchor`."""
    from qorgan.core import audit

    try:
        with _audit_session() as session:
            last = audit.anchor(session=session)
    except QorganError as exc:
        raise _fail(exc) from exc
    if last is None:
        err.print("the audit trail is empty", highlight=False)
        raise typer.Exit(1)
    print(last)


incidents_app = typer.Typer(help="Work with incidents and their exports.", no_args_is_help=True)
app.add_typer(incidents_app, name="incidents")

from qorgan.collect_cli import collect, sources_app  # noqa: E402 - after the app it extends

app.command("collect")(collect)
app.add_typer(sources_app, name="sources")


@incidents_app.command("report")
def incidents_report(
    month: Annotated[str, typer.Option(help="The month, YYYY-MM, in the console's time zone.")],
    organisation: Annotated[str, typer.Option(help="The organisation's name.")],
    output: Annotated[Path, typer.Option(help="The file to write.")],
    format: Annotated[str, typer.Option("--format", help="csv (the incidents) or pdf.")] = "pdf",
    scope: Annotated[
        str, typer.Option(help="own, or reported: those reported to it as coordinator.")
    ] = "own",
    language: Annotated[str, typer.Option(help="The PDF's language: kk, ru or en.")] = "kk",
) -> None:
    """Write an organisation's monthly incident report: a CSV with one row per incident of the
    month, or a PDF of its figures."""
    from qorgan.core.settings import get_settings
    from qorgan.web import incident_report

    try:
        with _audit_session() as session:
            size = incident_report.write(
                session=session,
                organisation=organisation,
                month=month,
                fmt=format,
                output=output,
                zone=get_settings().timezone,
                scope=scope,
                language=language,
            )
    except QorganError as exc:
        raise _fail(exc) from exc
    err.print(f"{output}: {size:,} bytes", highlight=False)


@incidents_app.command("verify-export")
def incidents_verify_export(
    file: Annotated[Path, typer.Argument(help="The legal-referral package (.zip) to check.")],
    public_key: Annotated[
        Path | None,
        typer.Option(help="The signer's public key (PEM, or base64 raw); others then fail."),
    ] = None,
) -> None:
    """Check that a legal-referral package is intact and signed; list every problem.

    Exit 0 when intact, 1 when problems are found, 2 on usage errors."""
    from qorgan.core.signing import load_public_key
    from qorgan.incidents import referral

    try:
        pinned = load_public_key(public_key) if public_key else None
    except QorganError as exc:
        raise _fail(exc) from exc
    result = referral.verify_package(file, public_key=pinned)
    for problem in result.problems:
        print(f"PROBLEM {problem}")  # plain: file names are neither markup nor wrapped
    if not result.ok:
        err.print(f"package NOT intact: {len(result.problems)} problems", highlight=False)
        raise typer.Exit(1)
    print(f"package intact, signed by {result.signer}")


@incidents_app.command("notify")
def incidents_notify() -> None:
    """Run one notification pass: the deadline sweep (due soon, overdue), then the pending
    e-mails through QORGAN_SMTP_HOST. For cron, where the console's own notifier is not
    running; safe beside it.

    Exit 0 when every due e-mail went out (or e-mail is off), 1 when some could not be sent
    (they stay pending and are retried), 2 on usage errors."""
    from qorgan.core.db import DatabaseError, make_engine, session_factory
    from qorgan.core.settings import get_settings
    from qorgan.incidents import notifications
    from qorgan.migrations import current, head
    from qorgan.web.mail import compose

    try:
        settings = get_settings()
        if current(settings) != head():
            raise DatabaseError(
                "the database schema is not the newest; run `qorgan db upgrade` first",
                source=settings.database_url.rpartition("@")[2],
            )
        engine = make_engine(settings)
        try:
            done = notifications.run_once(
                session_factory(engine), settings=settings, compose=compose
            )
        finally:
            engine.dispose()
    except QorganError as exc:
        raise _fail(exc) from exc
    delivery = done.delivery
    email = (
        "e-mail is off (QORGAN_SMTP_HOST is not set)"
        if delivery.disabled
        else f"e-mails sent: {delivery.sent}, failed: {delivery.failed}, "
        f"given up: {delivery.abandoned}"
    )
    err.print(f"notifications made: {done.created}; {email}", highlight=False)
    for error in dict.fromkeys(delivery.errors):
        err.print(f"PROBLEM {error}", highlight=False, markup=False)
    if delivery.failed:
        raise typer.Exit(1)


@contextmanager
def _acting(organisation: int, email: str) -> Iterator[tuple[Any, Any]]:
    """A unit of work acting as a member of the organisation (the audit trail names them)."""
    from qorgan.core.accounts import member

    with _audit_session() as session:
        user = member(session=session, organisation_id=organisation, email=email)
        if user is None:
            raise QorganError(f"no user {email} in organisation {organisation}", source="--as")
        yield session, user


def _incident_row(incident: Any) -> dict[str, Any]:
    from qorgan.incidents.lifecycle import RANK_SEVERITY
    from qorgan.incidents.service import reference

    return {
        "reference": reference(incident.id),
        "id": incident.id,
        "severity": RANK_SEVERITY[incident.severity].value,
        "status": incident.status,
        "title": incident.title,
        "kz_cert_class": incident.kz_cert_class,
        "next_due_at": incident.next_due_at.isoformat() if incident.next_due_at else None,
        "created_at": incident.created_at.isoformat(),
    }


@incidents_app.command("list")
def incidents_list(
    organisation: Annotated[int, typer.Option(help="The organisation's id.")],
    status: Annotated[str, typer.Option(help="A phase, open or all.")] = "open",
    overdue: Annotated[bool, typer.Option(help="Only incidents past a deadline.")] = False,
    reported: Annotated[
        bool, typer.Option(help="Those reported to the organisation as national coordinator.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    output_format: Annotated[ReportFormat, typer.Option("--format")] = ReportFormat.text,
) -> None:
    """List incidents, the next deadline first."""
    from qorgan.incidents import listing

    try:
        filters = listing.IncidentFilter(
            status=status,
            due="overdue" if overdue else None,
            scope=listing.Scope.reported if reported else listing.Scope.own,
        )
        with _audit_session() as session:
            rows, total = listing.list_incidents(
                session=session, organisation_id=organisation, filters=filters, limit=limit
            )
            found = [_incident_row(r) for r in rows]
    except QorganError as exc:
        raise _fail(exc) from exc
    if output_format is ReportFormat.json:
        print(orjson.dumps({"total": total, "items": found}).decode())
        return
    table = Table("reference", "severity", "status", "next deadline", "title")
    for row in found:
        table.add_row(
            row["reference"],
            row["severity"],
            row["status"],
            row["next_due_at"] or "-",
            row["title"],
        )
    Console().print(table)
    err.print(f"{len(found)} of {total} incidents")


@incidents_app.command("create")
def incidents_create(
    organisation: Annotated[int, typer.Option(help="The organisation's id.")],
    acting: Annotated[str, typer.Option("--as", help="The member's e-mail address.")],
    title: Annotated[str, typer.Option(help="What happened, in a line.")],
    description: Annotated[str, typer.Option(help="Details (Markdown).")] = "",
    kz_cert: Annotated[str | None, typer.Option(help="A KZ-CERT class id.")] = None,
    personal_data: Annotated[
        bool, typer.Option(help="Involves personal data (starts the breach-report clock).")
    ] = False,
) -> None:
    """Open an incident by hand (a report by telephone, an analyst's finding)."""
    from qorgan.core.settings import get_settings
    from qorgan.core.workdays import calendar_from_settings
    from qorgan.incidents import service

    try:
        calendar = calendar_from_settings(get_settings().calendar_file)
        with _acting(organisation, acting) as (session, user):
            incident, _ = service.create(
                session=session,
                organisation_id=organisation,
                actor_id=user.id,
                draft=service.Draft(
                    title=title,
                    description=description,
                    kz_cert_class=kz_cert,
                    personal_data=personal_data,
                ),
                calendar=calendar,
            )
            row = _incident_row(incident)
    except QorganError as exc:
        raise _fail(exc) from exc
    print(orjson.dumps(row).decode())


@incidents_app.command("move")
def incidents_move(
    incident: Annotated[int, typer.Argument(help="The incident's id (the number of INC-…).")],
    status: Annotated[str, typer.Argument(help="The phase to move to.")],
    organisation: Annotated[int, typer.Option(help="The organisation's id.")],
    acting: Annotated[str, typer.Option("--as", help="The member's e-mail address.")],
    resolution: Annotated[str | None, typer.Option(help="Needed to close.")] = None,
) -> None:
    """Move an incident to another phase of its lifecycle."""
    from qorgan.incidents import service

    try:
        with _acting(organisation, acting) as (session, user):
            moved = service.move(
                session=session,
                organisation_id=organisation,
                incident_id=incident,
                actor_id=user.id,
                status=status,
                resolution=resolution,
            )
            row = _incident_row(moved)
    except QorganError as exc:
        raise _fail(exc) from exc
    print(orjson.dumps(row).decode())


calendar_app = typer.Typer(
    help="The working-day calendar of incident deadlines.", no_args_is_help=True
)
app.add_typer(calendar_app, name="calendar")


@calendar_app.command("check")
def calendar_check(
    file: Annotated[Path, typer.Argument(help="A calendar file (the format of holidays_kz.yml).")],
) -> None:
    """Check an administrator's calendar file before QORGAN_CALENDAR_FILE points at it."""
    from qorgan.core.workdays import calendar_from_settings

    try:
        calendar = calendar_from_settings(file)
    except QorganError as exc:
        raise _fail(exc) from exc
    years = ", ".join(str(y) for y in sorted(calendar.years))
    print(f"calendar intact: {len(calendar.holidays)} days off, years {years}")


@calendar_app.command("show")
def calendar_show(
    year: Annotated[int, typer.Argument(min=2000, max=2100, help="The year to list.")],
    language: Annotated[str, typer.Option(help="kk, ru or en.")] = "en",
) -> None:
    """List the year's days off and working weekends of the calendar in use."""
    from qorgan.core.settings import get_settings
    from qorgan.core.workdays import calendar_from_settings

    try:
        calendar = calendar_from_settings(get_settings().calendar_file)
    except QorganError as exc:
        raise _fail(exc) from exc
    if not calendar.covers(year):
        err.print(f"the calendar does not cover {year}: only weekends are days off there")
    for day in sorted(d for d in calendar.holidays if d.year == year):
        name = calendar.holiday_name(day, language)
        print(f"{day.isoformat()}  {day.strftime('%a')}  off      {name}")
    for day in sorted(d for d in calendar.working_weekends if d.year == year):
        print(f"{day.isoformat()}  {day.strftime('%a')}  working")


privacy_app = typer.Typer(
    help="The personal-data protection service: consent receipts, the sweep, citizens.",
    no_args_is_help=True,
)
app.add_typer(privacy_app, name="privacy")
from qorgan import privacy_cli  # noqa: E402 - after the group it extends

privacy_app.command("sweep")(privacy_cli.sweep)
privacy_app.command("citizen-create")(privacy_cli.citizen_create)


@privacy_app.command("verify-receipt")
def privacy_verify_receipt(
    file: Annotated[Path, typer.Argument(help="The signed consent receipt (.json) to check.")],
    public_key: Annotated[
        Path | None,
        typer.Option(help="The operator's public key (PEM, or base64 raw); others then fail."),
    ] = None,
) -> None:
    """Check a signed consent receipt and show what it records.

    Exit 0 when the signature is valid, 1 when the receipt is not (the reason on stderr), 2 on
    usage errors."""
    from qorgan.core.signing import load_public_key
    from qorgan.privacy import receipts

    try:
        pinned = load_public_key(public_key) if public_key else None
    except QorganError as exc:
        raise _fail(exc) from exc
    try:
        verified = receipts.verify_file(file, public_key=pinned)
    except receipts.ReceiptError as exc:
        err.print(f"receipt NOT valid: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    receipt, shown = verified.receipt, verified.receipt.to_json_dict()

    def yes(flag: bool) -> str:
        return "yes" if flag else "no"

    # Plain print: the texts are the operator's, neither markup nor to be wrapped.
    print(f"receipt {receipt.record_id}: consent {receipt.event} at {shown['event_time']}")
    print(f"subject: {receipt.subject_id}")
    print(f"controller: {receipt.controller.name} (BIN {receipt.controller.bin})")
    print(f"processor: {receipt.processor}")
    print(f"purposes: {'; '.join(receipt.purposes)}")
    print(f"legal basis: {receipt.legal_basis}")
    print(f"data: {'; '.join(receipt.data)}")
    print(f"term until: {receipt.term_until.isoformat() if receipt.term_until else 'open-ended'}")
    print(
        f"third-party transfer: {yes(receipt.third_party_transfer)}; "
        f"cross-border transfer: {yes(receipt.cross_border_transfer)}; "
        f"publication in public sources: {yes(receipt.publication_in_public_sources)}; "
        f"withdrawable: {yes(receipt.withdrawable)}"
    )
    print(f"jurisdiction: {receipt.jurisdiction}; language: {receipt.language}")
    print(f"signature valid (key fingerprint {verified.fingerprint})")


@privacy_app.command("deliver-notices")
def privacy_deliver_notices(
    file: Annotated[
        Path | None,
        typer.Option(
            help="Write every notice (e-mail and SMS alike) as a JSON line to this file "
            "instead of sending it (tests, dry runs); the file holds addresses: mode 0600."
        ),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Notices claimed at a time.")] = 100,
    loop: Annotated[
        bool, typer.Option("--loop", help="Keep delivering every --interval seconds.")
    ] = False,
    interval: Annotated[float, typer.Option(min=1.0, help="Seconds between passes.")] = 60.0,
) -> None:
    """Send the queued leak notices to data subjects: e-mail through QORGAN_SMTP_HOST, SMS
    through QORGAN_SMS_GATEWAY_URL (or everything to --file), with retries; a notice whose
    channel is not configured waits. Safe to run from cron beside another run.

    Exit 0 when nothing failed this run, 1 when some notices failed (retried later, or given
    up), 2 on usage errors."""
    import signal
    import threading

    from qorgan.core.db import DatabaseError, make_engine, session_factory
    from qorgan.core.settings import get_settings
    from qorgan.migrations import current, head
    from qorgan.privacy import channels as notice_channels
    from qorgan.privacy import outbox
    from qorgan.privacy.protection import protection

    def configured(settings: Any) -> dict[str, Any]:
        if file is not None:
            sink = notice_channels.FileChannel(file)
            return {"email": sink, "sms": sink}
        found = notice_channels.from_settings(settings)
        if not found:
            raise QorganError(
                "no channel is configured: set QORGAN_SMTP_HOST or QORGAN_SMS_GATEWAY_URL, "
                "or pass --file"
            )
        return found

    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    failed = 0
    try:
        settings = get_settings()
        if current(settings) != head():
            raise DatabaseError(
                "the database schema is not the newest; run `qorgan db upgrade` first",
                source=settings.database_url.rpartition("@")[2],
            )
        keys = protection(settings)
        configured(settings)  # refused before anything is claimed
        engine = make_engine(settings)
        try:
            while True:
                done = outbox.deliver(
                    session_factory(engine),
                    configured(settings),
                    protection=keys,
                    batch=batch,
                    stop=stop,
                )
                failed += done.retried + done.failed
                err.print(
                    f"notices sent: {done.sent}, to retry: {done.retried}, given up: {done.failed}",
                    highlight=False,
                )
                for error in dict.fromkeys(done.errors):
                    err.print(f"PROBLEM {error}", highlight=False, markup=False)
                if not loop or stop.wait(interval):
                    break
        finally:
            engine.dispose()
    except QorganError as exc:
        raise _fail(exc) from exc
    if failed:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console entry point
    app()


from qorgan.intel_cli import intel_app  # noqa: E402 - a group of its own module

app.add_typer(intel_app, name="intel")

from qorgan.anomaly_cli import anomaly_app  # noqa: E402 - a group of its own module

app.add_typer(anomaly_app, name="anomaly")

if __name__ == "__main__":
    main()
