"""The console's fixed vocabularies are shown as translated labels, never as codes alone: each
label table of ``web.labels`` covers its vocabulary as the code has it (every audited action,
every permission, ...), and the messages the services write with file names and numbers are
read back by pattern and shown translated, the names and numbers kept."""

from __future__ import annotations

import ast
import gzip
import os
import re
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from sigma.rule import SigmaStatus

import qorgan
from qorgan import demo
from qorgan.cli import CLI_ACTOR
from qorgan.core.db import unit_of_work
from qorgan.core.models import Role
from qorgan.core.roles import Permission
from qorgan.incidents import clocks, lifecycle, notifications, observables, reporting, triage
from qorgan.incidents import service as incident_service
from qorgan.incidents import tasks as incident_tasks
from qorgan.incidents.inbox import GROUPINGS, Sort
from qorgan.incidents.models import LEVELS, AlertStatus
from qorgan.incidents.search import Search, SearchError
from qorgan.intel import store as intel_store
from qorgan.pipeline import hunts
from qorgan.pipeline.models import Hunt, HuntSource, HuntStatus
from qorgan.privacy import complaints
from qorgan.telemetry.errors import TelemetryError
from qorgan.telemetry.formats import detect_format, get_format
from qorgan.telemetry.options import MiB
from qorgan.telemetry.quarantine import Quarantine
from qorgan.telemetry.sources import OUTSIDE, Inflated, read_file
from qorgan.web.files import resolve_server_paths
from qorgan.web.filters import FilterError, _moment
from qorgan.web.i18n import translations
from qorgan.web.labels import (
    ACTOR_LABELS,
    AUDIT_ACTION_LABELS,
    CHANNEL_LABELS,
    CLOCK_LABELS,
    CLOCK_STATE_LABELS,
    GROUP_LABELS,
    HISTORY_LABELS,
    HUNT_STATUS_LABELS,
    INCIDENT_STATUS_LABELS,
    LEVEL_LABELS,
    MESSAGE_KIND_LABELS,
    MESSAGE_PATTERNS,
    NOTIFICATION_LABELS,
    OBSERVABLE_LABELS,
    PAGE_MESSAGES,
    PERMISSION_LABELS,
    RESOLUTION_LABELS,
    ROLE_LABELS,
    RULE_STATUS_LABELS,
    SEVERITY_LABELS,
    SORT_LABELS,
    STATUS_LABELS,
    TARGET_LABELS,
    TASK_STATUS_LABELS,
    TIMELINE_LABELS,
    translate_message,
)

from .conftest import World, alert_payload, sign_in

SOURCE = Path(qorgan.__file__).resolve().parent


def _calls() -> list[ast.Call]:
    calls = []
    for path in SOURCE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        calls.extend(node for node in ast.walk(tree) if isinstance(node, ast.Call))
    return calls


def _name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def recorded_actions() -> set[str]:
    """Every action the code writes to the audit trail: the literal first argument of
    ``audit.record`` and ``audit.Entry`` (the second of ``accounts._audit``), and the triage
    service's table of actions."""
    found = set(triage.AUDIT_ACTION.values()) | incident_service.AUDIT_ACTIONS
    found |= set(complaints.AUDIT_ACTIONS.values())
    found |= set(intel_store.AUDIT_ACTIONS.values())
    for call in _calls():
        position = {"record": 0, "Entry": 0, "_audit": 1}.get(_name(call))
        if position is None or len(call.args) <= position:
            continue
        argument = call.args[position]
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            found.add(argument.value)
    return found


def recorded_targets() -> set[str]:
    """Every ``target_type`` the code gives an audit entry (``accounts._audit``: users)."""
    found = {"user"}
    for call in _calls():
        for keyword in call.keywords:
            if keyword.arg == "target_type" and isinstance(keyword.value, ast.Constant):
                found.add(keyword.value.value)
    return found


def test_every_audited_action_has_a_label() -> None:
    actions = recorded_actions()
    # The scan finds what the docs promise is recorded.
    assert {"auth.failure", "token.revoke", "alerts.export", "alert.acknowledge"} <= actions
    assert all(re.fullmatch(r"[a-z]+\.[a-z_]+", a) for a in actions), actions
    assert set(AUDIT_ACTION_LABELS) == actions
    assert set(HISTORY_LABELS) == {a for a in actions if a.startswith("alert.")}


def recorded_actors() -> set[str]:
    """The actors the code names itself (``actor="system"``), the command line's and the
    demo's: every actor of an entry that is not a user's id."""
    found = {CLI_ACTOR, demo.ACTOR}
    for call in _calls():
        for keyword in call.keywords:
            if keyword.arg == "actor" and isinstance(keyword.value, ast.Constant):
                found.add(keyword.value.value)
    return found


def test_every_target_and_system_actor_has_a_label() -> None:
    assert set(TARGET_LABELS) == recorded_targets()
    assert {"system", "anonymous"} <= recorded_actors()
    assert set(ACTOR_LABELS) == recorded_actors()


def test_every_vocabulary_has_its_labels() -> None:
    assert set(PERMISSION_LABELS) == {str(p) for p in Permission}
    assert set(ROLE_LABELS) == {str(r) for r in Role}
    assert set(LEVEL_LABELS) == set(LEVELS)
    assert set(STATUS_LABELS) == {str(s) for s in AlertStatus}
    assert set(HUNT_STATUS_LABELS) == {str(s) for s in HuntStatus}
    assert set(GROUP_LABELS) == set(GROUPINGS)
    assert set(SORT_LABELS) == {s.value for s in Sort}
    assert set(RULE_STATUS_LABELS) == {str(s) for s in SigmaStatus}
    assert set(INCIDENT_STATUS_LABELS) == {str(s) for s in lifecycle.Status}
    assert set(RESOLUTION_LABELS) == {str(r) for r in lifecycle.Resolution}
    assert set(SEVERITY_LABELS) == {str(s) for s in lifecycle.Severity}
    assert set(TASK_STATUS_LABELS) == set(incident_tasks.TASK_STATUSES)
    assert set(CLOCK_LABELS) == {*clocks.MEASURES, "breach_report"}
    assert set(OBSERVABLE_LABELS) == set(observables.KINDS)
    assert set(TIMELINE_LABELS) == {"alert", *incident_service.EVENT_KINDS}
    assert set(MESSAGE_KIND_LABELS) == set(reporting.MESSAGE_KINDS)
    assert set(NOTIFICATION_LABELS) == set(notifications.KINDS)
    assert set(CHANNEL_LABELS) == set(notifications.CHANNELS)


TABLES = (
    ROLE_LABELS,
    RULE_STATUS_LABELS,
    LEVEL_LABELS,
    STATUS_LABELS,
    PERMISSION_LABELS,
    AUDIT_ACTION_LABELS,
    HISTORY_LABELS,
    TARGET_LABELS,
    ACTOR_LABELS,
    SORT_LABELS,
    GROUP_LABELS,
    HUNT_STATUS_LABELS,
    INCIDENT_STATUS_LABELS,
    RESOLUTION_LABELS,
    SEVERITY_LABELS,
    TASK_STATUS_LABELS,
    CLOCK_LABELS,
    CLOCK_STATE_LABELS,
    OBSERVABLE_LABELS,
    TIMELINE_LABELS,
    MESSAGE_KIND_LABELS,
    NOTIFICATION_LABELS,
    CHANNEL_LABELS,
)


@pytest.mark.parametrize("language", ["kk", "ru"])
def test_every_label_is_translated(language: str) -> None:
    gettext = translations(language).gettext
    labels = {label for table in TABLES for label in table.values()} | PAGE_MESSAGES
    untranslated = sorted(label for label in labels if gettext(label) == label)
    assert not untranslated, untranslated
    # Two codes of one table never read the same.
    for table in TABLES:
        shown = [gettext(label) for label in table.values()]
        assert len(set(shown)) == len(shown), shown


# --- Messages with file names and numbers ---------------------------------------------------


def _raised(action: Callable[[], object]) -> str:
    try:
        action()
    except (HTTPException, SearchError, FilterError, TelemetryError) as exc:
        return str(exc.detail if isinstance(exc, HTTPException) else exc.message)
    raise AssertionError("no error")


def _inflated(pos: int, limit: int = 8 * MiB) -> str:
    """The quarantine reason of a gzip file past a limit (``read_file``'s words)."""
    inflated = SimpleNamespace(compressed=BytesIO(), _pos=pos, _max=limit, _ratio=100)
    found = Inflated._exceeded(inflated)  # type: ignore[arg-type]
    assert found is not None
    return f"gzip: {found}; the rest of the file is not read"


def _why(code: int | None, tail: str = "") -> str:
    runner = SimpleNamespace(settings=SimpleNamespace(hunt_memory_mib=512), _closing=False)
    return hunts.HuntRunner._why(runner, code, tail)  # type: ignore[arg-type]


def _quarantined(name: str, data: bytes, **options: object) -> list[str]:
    """The quarantine reasons of a format's reader given ``data``."""
    quarantine = Quarantine()
    reader = get_format(name, **options)
    list(reader.read(BytesIO(data), "x.log", quarantine, 1000))
    return [record.reason for record in quarantine.records]


def _read(path: Path) -> list[str]:
    quarantine = Quarantine()
    list(read_file(path, quarantine))
    return [record.reason for record in quarantine.records]


def samples(folder: Path) -> list[str]:
    """Messages as the code writes them, one or more for every pattern."""
    unknown = _raised(lambda: detect_format(b"\x00\x01\x02 nothing known", "x.bin"))
    (folder / "head.gz").write_bytes(gzip.compress(b"line\n" * 1000)[:40])
    # Past the first read (1 MiB inflated), then cut short.
    lines = b"".join(
        b"Nov 20 10:00:00 h sshd[1]: Failed password for %s from 203.0.113.7\n"
        % os.urandom(8).hex().encode()
        for _ in range(40_000)
    )
    whole = gzip.compress(lines, compresslevel=1)
    (folder / "cut.gz").write_bytes(whole[: len(whole) // 2])
    reasons = [
        f"format: {unknown}",
        get_format("syslog", max_record_bytes=4 * MiB).too_long(),
        f"io: {OUTSIDE}",
        _inflated(9 * MiB),
        _inflated(20 * MiB, limit=8192 * MiB),
        *_quarantined("syslog", b"no header here\n"),
        *_quarantined("accesslog", b"not an access log line\n"),
        *_quarantined("apache_error", b"not an error log line\n"),
        *_quarantined("cef", b"no header\nCEF:0|broken\n"),
        *_quarantined("evtx", b"not evtx"),
        *_quarantined("json", b'[{"a": "' + b"x" * 100 + b'"}]', max_record_bytes=16),
        *_read(folder),  # a folder: cannot open
        *_read(folder / "head.gz"),  # a gzip file cut within its first bytes: cannot read
        *_read(folder / "cut.gz"),  # a gzip file cut further on: reading stopped
    ]
    assert len(reasons) == 15, reasons
    return [
        hunts.INTERRUPTED,
        hunts.memory_error(512),
        hunts.memory_error(None),
        _why(-9),
        _why(1),
        _why(None, "cannot start"),
        "no event could be read (2 quarantined; see the quarantine)",
        *reasons,
        *(f"no event could be read (3 quarantined; auth.log: {r})" for r in reasons),
        _raised(lambda: resolve_server_paths(folder, ["../outside.log"])),
        _raised(lambda: resolve_server_paths(folder, ["missing.log"])),
        _raised(lambda: resolve_server_paths(folder, ["a\x00b"])),
        _raised(lambda: resolve_server_paths(folder, ["x" * 2000])),
        _raised(lambda: Search.parse("")),
        _raised(lambda: Search.parse("ab")),
        _raised(lambda: Search.parse("x" * 1000)),
        _raised(lambda: Search.parse(" ".join(f"w{i:03d}" for i in range(100)))),
        _raised(lambda: _moment("someday", "Asia/Almaty", end=False)),
        _raised(lambda: _moment("2026-11-20T10:00:00", "Asia/Almaty", end=False)),
    ]


#: Messages whose producers need a database or a large upload: their English, and the file
#: that writes it with these words.
WRITTEN = {
    "a saved search needs a name of 1 to 200 characters": "incidents/saved_searches.py",
    "at most 50 searches can be saved; delete one first": "incidents/saved_searches.py",
    "at most 100,000 alerts can be changed at once": "incidents/triage.py",
    "more than 100,000 alerts match; narrow the filter to change them at once": (
        "incidents/triage.py"
    ),
    "the upload exceeds 512 MiB": "web/files.py",
}


def test_written_samples_match_their_source() -> None:
    for message, where in WRITTEN.items():
        fixed = re.split(r"[\d,]*\d", message)
        text = (SOURCE / where).read_text(encoding="utf-8")
        assert all(part in text for part in fixed if part.strip()), (message, where)


def test_every_pattern_is_used(tmp_path: Path) -> None:
    messages = samples(tmp_path) + list(WRITTEN)
    for pattern in MESSAGE_PATTERNS:
        if pattern.message.startswith("%("):
            continue  # frames around another message
        assert any(pattern.match.fullmatch(m) for m in messages), pattern.message


@pytest.mark.parametrize("language", ["kk", "ru"])
def test_messages_with_names_and_numbers_are_translated(tmp_path: Path, language: str) -> None:
    gettext = translations(language).gettext
    for message in samples(tmp_path) + list(WRITTEN):
        translated = translate_message(message, gettext)
        assert translated is not None and translated != message, message
        # File names and numbers are kept; English words are not.
        for kept in re.findall(r"'[^']*'|\b[\w.]+\.(?:log|gz|bin)\b|\d[\d,]*", message):
            assert kept in translated, (message, translated, kept)
        # What a library or the system wrote (an OS error, a parser's reason) stays as written.
        ours = translated
        for part in message.split(": "):
            if len(part) > 20 and part in ours:
                ours = ours.replace(part, "")
        assert not re.search(r"\b(the|is|not|than|quarantined|read)\b", ours), translated
        assert "--input-format" not in translated  # a page never names command-line options


def test_english_pages_never_name_command_line_options() -> None:
    message = _raised(lambda: detect_format(b"\x00 nothing known", "x.bin"))
    assert "--input-format" in message  # the command's own message
    shown = translate_message(f"format: {message}", translations("en").gettext)
    assert shown == "the format of the file is not recognised"


def test_unknown_messages_are_left_alone() -> None:
    gettext = translations("kk").gettext
    assert translate_message("something else entirely", gettext) is None
    assert translate_message("x.log: json: Expecting value", gettext) is None
    assert translate_message("", gettext) is None


# --- On the pages -----------------------------------------------------------------------------


def _choose(client: TestClient, csrf: str, language: str) -> None:
    chosen = client.post(
        "/language", data={"language": language, "csrf_token": csrf}, follow_redirects=False
    )
    assert chosen.status_code == 303


def test_audit_actions_are_named_on_the_audit_page_and_in_the_history(
    client: TestClient, world: World
) -> None:
    token = world.token("a.analyst", ["alerts:write"])
    sent = client.post(
        "/api/v1/alerts", json=[alert_payload(1)], headers={"Authorization": f"Bearer {token}"}
    )
    assert sent.status_code == 200
    csrf = sign_in(client, world["a.admin"])
    _choose(client, csrf, "kk")
    kk = translations("kk").gettext
    alert_id = re.search(r'data-alert-id="(\d+)"', client.get("/alerts").text).group(1)  # type: ignore[union-attr]
    client.post(f"/alerts/{alert_id}/acknowledge", data={"csrf_token": csrf})
    history = client.get(f"/alerts/{alert_id}").text
    assert f'<td title="alert.acknowledge">{kk(HISTORY_LABELS["alert.acknowledge"])}' in history
    page = client.get("/audit").text
    rows = re.findall(
        r'<tr data-action="([a-z._]+)">.*?<td class="action" title="([a-z._]+)">([^<]*)</td>'
        r"\s*<td(?: data-target-type=\"([a-z_]+)\")?>([^<]*)</td>",
        page,
        flags=re.DOTALL,
    )
    actions = {action for action, *_ in rows}
    assert {"alerts.ingest", "alert.read", "alert.acknowledge", "user.language"} <= actions
    for action, title, label, target_type, target in rows:
        assert title == action and label == kk(AUDIT_ACTION_LABELS[action])
        if target_type:
            assert target.startswith(kk(TARGET_LABELS[target_type]) + " "), target
    assert "<code>alert.acknowledge</code>" not in page


def test_token_scopes_are_named_beside_their_code(client: TestClient, world: World) -> None:
    csrf = sign_in(client, world["a.analyst"])
    _choose(client, csrf, "ru")
    ru = translations("ru").gettext
    issued = client.post(
        "/account/tokens",
        data={"csrf_token": csrf, "name": "cli", "scopes": ["alerts:read", "hunts:run"]},
    )
    assert issued.status_code == 200
    page = client.get("/account").text
    for scope in ("alerts:read", "hunts:run"):
        label = ru(PERMISSION_LABELS[scope])
        assert f'<span data-scope="{scope}">{label} <code>{scope}</code></span>' in page
        assert f'value="{scope}"> {label} <code>{scope}</code>' in page  # the form's boxes


def test_a_hunt_error_is_shown_translated(client: TestClient, world: World) -> None:
    error = f"no event could be read (2 quarantined; disk.img: format: {FORMAT_NOT_RECOGNISED})"
    with unit_of_work(world.factory) as session:
        session.add(
            Hunt(
                organisation_id=world["a.analyst"].organisation_id,
                source=HuntSource.server,
                paths=["disk.img"],
                status=HuntStatus.failed,
                error=error,
            )
        )
    csrf = sign_in(client, world["a.analyst"])
    _choose(client, csrf, "kk")
    page = client.get("/hunts").text
    shown = translate_message(error, translations("kk").gettext)
    assert shown is not None and "disk.img" in shown
    # After the status and a colon: as written, not as a sentence of its own.
    assert f'data-error="{error}">{shown}</span>' in page


FORMAT_NOT_RECOGNISED = "format not recognised; force one with --input-format"


def test_users_page_names_people_and_resets_the_second_factor(
    client: TestClient, world: World
) -> None:
    csrf = sign_in(client, world["a.admin"])
    _choose(client, csrf, "kk")
    page = client.get("/users").text
    assert "<th>Аты-жөні</th>" in page and ">Қайта орнату</button>" in page
    _choose(client, csrf, "ru")
    page = client.get("/users").text
    assert "<th>ФИО</th>" in page and ">Сбросить</button>" in page


@pytest.mark.parametrize(
    ("path", "english"),
    [("/alerts/999999", "no such alert"), ("/alerts?since=someday", None)],
)
def test_errors_on_pages_are_translated_sentences(
    client: TestClient, world: World, path: str, english: str | None
) -> None:
    csrf = sign_in(client, world["a.analyst"])
    _choose(client, csrf, "ru")
    page = client.get(path).text
    if english is None:
        english = _raised(lambda: _moment("someday", "Asia/Almaty", end=False))
    translated = translate_message(english, translations("ru").gettext)
    assert translated is not None
    assert translated[:1].upper() + translated[1:] in page.replace("&#39;", "'")


def test_an_unknown_address_is_a_page_in_the_language(client: TestClient) -> None:
    client.cookies.set("qorgan_lang", "ru")
    page = client.get("/no-such-page")
    assert page.status_code == 404 and page.headers["content-language"] == "ru"
    assert f"<h1>{translations('ru').gettext('Not found')}</h1>" in page.text
    assert "Not Found" not in page.text  # Starlette's English phrase is not repeated
    refused = client.post("/audit")  # a method the page does not take
    assert refused.status_code == 405 and "GET" in refused.headers["allow"]
    assert '<html lang="ru">' in refused.text
    api = client.get("/api/v1/no-such-route")  # the API answers in JSON
    assert api.status_code == 404 and api.json() == {"detail": "Not Found"}
