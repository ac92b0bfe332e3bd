"""The Sources pages and API on SQLite: who may read and who may configure; registering,
changing and rotating a token through the forms (CSRF-protected) and the API, with audit
entries; a token shown once and kept as its digest only; another organisation's source is not
found; sources needing attention come first; quarantined excerpts are shown escaped; the live
fragment carries the chart's data; the banners and connection instructions follow the
in-process collector; the metrics carry each source's series."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from qorgan.core import accounts
from qorgan.core.db import unit_of_work, utcnow
from qorgan.core.models import AuditEntry
from qorgan.core.security import digest
from qorgan.pipeline import source_stats
from qorgan.pipeline.models import LogSource, SourceProblem, SourceRate
from qorgan.pipeline.sources import create_source

from .conftest import METRICS_TOKEN, World, sign_in

pytestmark = pytest.mark.parametrize("settings", ["sqlite"], indirect=True)

TOKEN = re.compile(r"data-source-token>(qls_[\w-]+)<")


def _source(world: World, org_key: str, name: str, **options: Any) -> tuple[int, str | None]:
    with unit_of_work(world.factory) as session:
        source, token = create_source(
            session=session,
            organisation_id=world[org_key].organisation_id,
            actor="test",
            name=name,
            transport=options.pop("transport", "tcp"),
            format=options.pop("format", "syslog"),
            **options,
        )
        return source.id, token


def _set(world: World, source_id: int, **values: Any) -> None:
    with unit_of_work(world.factory) as session:
        source = session.get(LogSource, source_id)
        assert source is not None
        for key, value in values.items():
            setattr(source, key, value)


def _actions(world: World, source_id: int) -> list[str]:
    with unit_of_work(world.factory) as session:
        return list(
            session.scalars(
                select(AuditEntry.action)
                .where(
                    AuditEntry.target_type == "log_source", AuditEntry.target_id == str(source_id)
                )
                .order_by(AuditEntry.id)
            )
        )


def _bearer(world: World, key: str, scopes: list[str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.token(key, scopes)}"}


# --------------------------------------------------------------------------- permissions


def test_who_may_read_and_who_may_configure(client: TestClient, world: World) -> None:
    csrf = sign_in(client, world["a.analyst"])
    page = client.get("/sources")
    assert page.status_code == 200
    assert '<a href="/sources" aria-current="page">' in page.text  # in the navigation
    assert 'href="/sources/new"' not in page.text
    assert client.get("/sources/new").status_code == 403
    refused = client.post(
        "/sources",
        data={"csrf_token": csrf, "name": "fw", "transport": "tcp", "format": "syslog"},
    )
    assert refused.status_code == 403
    headers = _bearer(world, "a.analyst", ["sources:read"])
    assert client.get("/api/v1/sources", headers=headers).status_code == 200
    body = {"name": "fw", "transport": "tcp", "format": "syslog"}
    assert client.post("/api/v1/sources", json=body, headers=headers).status_code == 403
    # The auditor reads; a partner has no console permissions at all.
    auditor = _bearer(world, "a.auditor", ["*"])
    assert client.get("/api/v1/sources", headers=auditor).status_code == 200
    assert client.post("/api/v1/sources", json=body, headers=auditor).status_code == 403
    client.post("/logout", data={"csrf_token": csrf})
    sign_in(client, world["a.partner"])
    assert client.get("/sources").status_code == 403
    assert 'href="/sources"' not in client.get("/account").text
    # A token of the coordinator's, narrowed to reading, cannot configure.
    narrowed = _bearer(world, "a.coordinator", ["sources:read"])
    assert client.post("/api/v1/sources", json=body, headers=narrowed).status_code == 403


def test_forms_need_the_csrf_token(client: TestClient, world: World) -> None:
    source_id, token = _source(world, "a.admin", "web", transport="http", format="json")
    sign_in(client, world["a.admin"])
    form = {"name": "fw", "transport": "tcp", "format": "syslog"}
    assert client.post("/sources", data=form).status_code == 403
    assert client.post("/sources", data={**form, "csrf_token": "forged"}).status_code == 403
    edit = {"format": "json", "timezone": "UTC", "expected_interval": "60", "enabled": "on"}
    assert client.post(f"/sources/{source_id}", data=edit).status_code == 403
    assert client.post(f"/sources/{source_id}/token").status_code == 403
    with unit_of_work(world.factory) as session:
        source = session.get(LogSource, source_id)
        assert source is not None and token is not None
        assert (source.timezone, source.token_hash) == ("Asia/Almaty", digest(token))
        assert session.scalar(select(LogSource.id).where(LogSource.name == "fw")) is None


# --------------------------------------------------------------------------- the forms


def test_register_and_change_a_tcp_source(client: TestClient, world: World) -> None:
    csrf = sign_in(client, world["a.admin"])
    form = client.get("/sources/new")
    assert form.status_code == 200 and 'name="csrf_token"' in form.text
    made = client.post(
        "/sources",
        data={
            "csrf_token": csrf,
            "name": "Akimat firewall",
            "transport": "tcp",
            "format": "syslog",
            "timezone": "Asia/Almaty",
            "senders": "10.0.0.0/24\n192.0.2.7",
            "expected_interval": "300",
            "overflow": "wait",
        },
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    path = made.headers["location"]
    source_id = int(path.rsplit("/", 1)[1])
    page = client.get(path)
    assert page.status_code == 200
    assert "Akimat firewall" in page.text and "10.0.0.0/24" in page.text
    # How to send: the TCP listener of the settings (the collector does not run here).
    assert 'target="127.0.0.1" port="5514" protocol="tcp"' in page.text
    assert 'data-banner="no-collector"' in page.text
    assert "data-source-token" not in page.text  # a TCP source has no token
    changed = client.post(
        path,
        data={
            "csrf_token": csrf,
            "format": "cef",
            "timezone": "UTC",
            "senders": "10.0.0.0/24",
            "expected_interval": "60",
            "overflow": "drop",
        },  # "enabled" unticked
        follow_redirects=False,
    )
    assert changed.status_code == 303 and changed.headers["location"] == f"{path}?saved=1"
    with unit_of_work(world.factory) as session:
        source = session.get(LogSource, source_id)
        assert source is not None
        values = (source.format, source.timezone, source.senders, source.expected_interval)
        assert values == ("cef", "UTC", ["10.0.0.0/24"], 60)
        assert (str(source.overflow), source.enabled, source.token_hash) == ("drop", False, None)
    assert 'data-state="disabled"' in client.get(path).text
    assert _actions(world, source_id) == ["source.create", "source.edit"]
    # Refusals come back on the form, explained, with what was typed.
    refused = client.post(
        path,
        data={
            "csrf_token": csrf,
            "format": "syslog",
            "timezone": "Mars/Olympus",
            "expected_interval": "60",
        },
    )
    assert refused.status_code == 400
    assert "Unknown time zone &#39;Mars/Olympus&#39;" in refused.text
    assert 'value="Mars/Olympus"' in refused.text
    taken = client.post(
        "/sources",
        data={
            "csrf_token": csrf,
            "name": "Akimat firewall",
            "transport": "udp",
            "format": "syslog",
        },
    )
    assert taken.status_code == 400
    assert "The organisation already has a source named" in taken.text
    short = client.post(
        "/sources",
        data={
            "csrf_token": csrf,
            "name": "x",
            "transport": "udp",
            "format": "syslog",
            "expected_interval": "5",
        },
    )
    assert short.status_code == 400 and "10 seconds to 30 days" in short.text


def test_a_refusal_is_explained_in_kazakh(client: TestClient, world: World) -> None:
    from qorgan.web.i18n import translations

    csrf = sign_in(client, world["a.admin"])
    client.post("/language", data={"language": "kk", "csrf_token": csrf})
    refused = client.post(
        "/sources",
        data={
            "csrf_token": csrf,
            "name": "x",
            "transport": "tcp",
            "format": "syslog",
            "expected_interval": "many",
        },
    )
    assert refused.status_code == 400
    expected = translations("kk").gettext("the expected interval is a number of seconds")
    assert expected != "the expected interval is a number of seconds"
    assert expected[:1].upper() + expected[1:] in refused.text


def test_an_http_token_is_shown_once_and_kept_as_its_digest(
    client: TestClient, world: World
) -> None:
    csrf = sign_in(client, world["a.admin"])
    made = client.post(
        "/sources",
        data={"csrf_token": csrf, "name": "Web proxy", "transport": "http", "format": "json"},
        follow_redirects=False,
    )
    assert made.status_code == 201, made.text
    token = TOKEN.search(made.text).group(1)  # type: ignore[union-attr]
    assert f"Authorization: Bearer {token}" in made.text  # in the curl example too
    assert "http://127.0.0.1:8000/api/v1/ingest" not in made.text  # no collector in-process
    with unit_of_work(world.factory) as session:
        source = session.scalars(select(LogSource).where(LogSource.name == "Web proxy")).one()
        source_id, stored = source.id, source.token_hash
        columns = [str(getattr(source, c.key)) for c in LogSource.__table__.columns]
    assert stored == digest(token) and not any(token in value for value in columns)
    again = client.get(f"/sources/{source_id}")
    assert again.status_code == 200 and token not in again.text
    assert "Bearer &lt;token&gt;" in again.text
    rotated = client.post(f"/sources/{source_id}/token", data={"csrf_token": csrf})
    assert rotated.status_code == 200
    new = TOKEN.search(rotated.text).group(1)  # type: ignore[union-attr]
    assert new != token
    with unit_of_work(world.factory) as session:
        assert session.get(LogSource, source_id).token_hash == digest(new)  # type: ignore[union-attr]
    assert new not in client.get(f"/sources/{source_id}").text
    assert _actions(world, source_id) == ["source.create", "source.rotate_token"]
    # A TCP source has no token to rotate.
    tcp_id, _ = _source(world, "a.admin", "tcp")
    assert client.post(f"/sources/{tcp_id}/token", data={"csrf_token": csrf}).status_code == 400


# --------------------------------------------------------------------------- the list


def test_sources_needing_attention_come_first(client: TestClient, world: World) -> None:
    now = utcnow()
    live, _ = _source(world, "a.admin", "A live", senders=["10.0.0.1"])
    silent, _ = _source(world, "a.admin", "B silent", senders=["10.0.0.2"])
    never, _ = _source(world, "a.admin", "C never", senders=["10.0.0.3"])
    off, _ = _source(world, "a.admin", "D disabled", senders=["10.0.0.4"])
    dropping, _ = _source(world, "a.admin", "E dropping", senders=["10.0.0.5"])
    _set(
        world,
        live,
        last_event_at=now - timedelta(seconds=5),
        analysed_through=now - timedelta(seconds=7),
    )
    _set(
        world, silent, last_event_at=now - timedelta(hours=2), silent_since=now - timedelta(hours=1)
    )
    _set(world, off, enabled=False)
    _set(world, dropping, last_event_at=now, dropped=40)
    bucket = source_stats._at(now.timestamp() // 10 * 10)
    with unit_of_work(world.factory) as session:
        session.add(
            SourceRate(
                source_id=live, bucket=bucket, events=120, received_bytes=1, dropped=0, failures=0
            )
        )
        session.add(
            SourceRate(
                source_id=dropping,
                bucket=bucket,
                events=0,
                received_bytes=0,
                dropped=40,
                failures=0,
            )
        )
    sign_in(client, world["a.analyst"])
    page = client.get("/sources")
    order = re.findall(r'<tr data-source-id="(\d+)" data-state="(\w+)"', page.text)
    assert order == [
        (str(silent), "silent"),
        (str(dropping), "live"),
        (str(never), "never"),
        (str(live), "live"),
        (str(off), "disabled"),
    ]
    assert 'data-attention="2"' in page.text
    # Events per second over the last minute, and how far detection is behind it.
    row = page.text.split(f'data-source-id="{live}"')[1].split("</tr>")[0]
    assert '<td class="num">2.0</td>' in row and "2 seconds" in row
    # The polled fragment: the same table and the chart's figure, every ten seconds of 15 min.
    live_fragment = client.get("/sources/live")
    assert live_fragment.status_code == 200 and "<html" not in live_fragment.text
    figure = json.loads(
        re.search(r"data-rates='([^']*)'", live_fragment.text).group(1)  # type: ignore[union-attr]
    )
    assert len(figure["x"]) == 90
    first = figure["traces"][0]
    assert first["name"] == "A live" and sum(first["y"]) == 12.0, first
    assert first["y"].index(12.0) >= 87  # in the newest buckets (the clock moves on meanwhile)
    assert 'data-chart="sources-chart"' in live_fragment.text
    # The API tells the same, in the same order.
    listed = client.get("/api/v1/sources", headers=_bearer(world, "a.analyst", ["sources:read"]))
    assert [s["id"] for s in listed.json()][:2] == [silent, dropping]
    first = {s["id"]: s for s in listed.json()}[live]
    assert (first["state"], first["events_per_second"], first["lag_seconds"]) == ("live", 2.0, 2.0)
    assert "token_hash" not in first and first["has_token"] is False


def test_quarantined_excerpts_are_shown_escaped(client: TestClient, world: World) -> None:
    source_id, _ = _source(world, "a.admin", "noisy")
    with unit_of_work(world.factory) as session:
        session.add(
            SourceProblem(
                source_id=source_id,
                at=utcnow(),
                reason="syslog: <b>no header</b>",
                excerpt='<script>alert("x")</script><img src=x onerror=alert(1)>',
            )
        )
    sign_in(client, world["a.analyst"])
    for path in (f"/sources/{source_id}", f"/sources/{source_id}/live"):
        page = client.get(path)
        assert page.status_code == 200
        assert "<script>alert" not in page.text and "<img src=x" not in page.text
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x" in page.text
        assert "syslog: &lt;b&gt;no header&lt;/b&gt;" in page.text
    # A failing source is marked so on the list.
    listed = client.get("/sources").text
    assert f'data-source-id="{source_id}" data-state="never" class="attention"' in listed


# --------------------------------------------------------------------------- isolation


def test_another_organisations_source_is_not_found(client: TestClient, world: World) -> None:
    theirs, _ = _source(world, "b.admin", "B's secret firewall", transport="http", format="json")
    mine, _ = _source(world, "a.admin", "A's firewall")
    csrf = sign_in(client, world["a.admin"])
    for path in (f"/sources/{theirs}", f"/sources/{theirs}/live"):
        assert client.get(path).status_code == 404
    edit = {"csrf_token": csrf, "format": "json", "timezone": "UTC", "expected_interval": "60"}
    assert client.post(f"/sources/{theirs}", data=edit).status_code == 404
    assert client.post(f"/sources/{theirs}/token", data={"csrf_token": csrf}).status_code == 404
    assert "B&#39;s secret firewall" not in client.get("/sources").text
    assert "B&#39;s secret firewall" not in client.get("/sources/live").text
    headers = _bearer(world, "a.admin", ["*"])
    for method, path in (
        ("GET", f"/api/v1/sources/{theirs}"),
        ("PATCH", f"/api/v1/sources/{theirs}"),
        ("POST", f"/api/v1/sources/{theirs}/token"),
        ("GET", f"/api/v1/sources/{theirs}/rates"),
    ):
        body = {"json": {"timezone": "UTC"}} if method == "PATCH" else {}
        assert client.request(method, path, headers=headers, **body).status_code == 404, path
    assert [s["id"] for s in client.get("/api/v1/sources", headers=headers).json()] == [mine]
    # Sharing alerts lets A read B's sources (are B's alerts to be trusted?), never change them.
    with unit_of_work(world.factory) as session:
        accounts.share(
            session=session,
            actor="test",
            owner_id=world["b.admin"].organisation_id,
            partner_id=world["a.admin"].organisation_id,
            resource="alerts",
        )
    assert {s["id"] for s in client.get("/api/v1/sources", headers=headers).json()} == {
        mine,
        theirs,
    }
    shared = client.get(f"/sources/{theirs}")
    assert shared.status_code == 200
    assert "How to send" not in shared.text and 'action="/sources/' not in shared.text
    assert "Organisation B" in client.get("/sources").text  # the organisation column
    assert (
        client.patch(
            f"/api/v1/sources/{theirs}", json={"timezone": "UTC"}, headers=headers
        ).status_code
        == 404
    )
    assert client.post(f"/sources/{theirs}/token", data={"csrf_token": csrf}).status_code == 404
    with unit_of_work(world.factory) as session:
        assert session.get(LogSource, theirs).timezone == "Asia/Almaty"  # type: ignore[union-attr]


# --------------------------------------------------------------------------- the API


def test_the_api_registers_changes_and_rotates(client: TestClient, world: World) -> None:
    headers = _bearer(world, "a.coordinator", ["sources:*"])
    made = client.post(
        "/api/v1/sources",
        json={"name": "Vector", "transport": "http", "format": "json", "expected_interval": 60},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    created = made.json()
    token = created["token"]
    assert token.startswith("qls_") and created["state"] == "never" and created["has_token"]
    source_id = created["id"]
    with unit_of_work(world.factory) as session:
        assert session.get(LogSource, source_id).token_hash == digest(token)  # type: ignore[union-attr]
    got = client.get(f"/api/v1/sources/{source_id}", headers=headers).json()
    assert "token" not in got and got["expected_interval"] == 60
    changed = client.patch(
        f"/api/v1/sources/{source_id}",
        json={"senders": ["192.0.2.0/24"], "enabled": False, "overflow": "drop"},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["senders"], changed.json()["state"]) == (["192.0.2.0/24"], "disabled")
    bad = client.patch(
        f"/api/v1/sources/{source_id}", json={"timezone": "Nowhere"}, headers=headers
    )
    assert bad.status_code == 400 and "unknown time zone" in bad.json()["detail"]
    assert (
        client.patch(
            f"/api/v1/sources/{source_id}", json={"format": None}, headers=headers
        ).status_code
        == 422
    )
    rotated = client.post(f"/api/v1/sources/{source_id}/token", headers=headers)
    assert rotated.status_code == 200 and rotated.json()["token"] != token
    duplicate = client.post(
        "/api/v1/sources",
        json={"name": "Vector", "transport": "tcp", "format": "syslog"},
        headers=headers,
    )
    assert duplicate.status_code == 400
    invalid = client.post(
        "/api/v1/sources",
        json={"name": "x", "transport": "carrier-pigeon", "format": "syslog"},
        headers=headers,
    )
    assert invalid.status_code == 422
    assert _actions(world, source_id) == ["source.create", "source.edit", "source.rotate_token"]


def test_the_api_gives_a_sources_rates(client: TestClient, world: World) -> None:
    source_id, _ = _source(world, "a.admin", "rated")
    now = utcnow()
    with unit_of_work(world.factory) as session:
        for minutes_ago, events in ((40, 7), (10, 3), (1, 5)):
            bucket = source_stats._at((now - timedelta(minutes=minutes_ago)).timestamp() // 10 * 10)
            session.add(
                SourceRate(
                    source_id=source_id,
                    bucket=bucket,
                    events=events,
                    received_bytes=0,
                    dropped=1,
                    failures=0,
                )
            )
    headers = _bearer(world, "a.analyst", ["sources:read"])
    rates = client.get(f"/api/v1/sources/{source_id}/rates", headers=headers).json()
    assert rates["bucket_seconds"] == 10
    assert [p["events"] for p in rates["points"]] == [3, 5]
    hour = client.get(f"/api/v1/sources/{source_id}/rates?minutes=60", headers=headers).json()
    assert [p["events"] for p in hour["points"]] == [7, 3, 5]
    for minutes in ("0", "2881", "x"):
        answer = client.get(f"/api/v1/sources/{source_id}/rates?minutes={minutes}", headers=headers)
        assert answer.status_code == 422


# --------------------------------------------------------------------------- the collector


def _collector(*, overloaded: bool = False) -> SimpleNamespace:
    """A stand-in for the in-process collector: what the pages and metrics read of it."""
    intake = SimpleNamespace(
        lag=1234 if overloaded else 3,
        max_lag=1000,
        log_bytes=5 << 20,
        max_log_bytes=4096 << 20,
        overloaded=overloaded,
    )
    return SimpleNamespace(intake=intake, ports={"tcp": 40514, "udp": 40514})


def test_banners_and_instructions_follow_the_collector(client: TestClient, world: World) -> None:
    tcp_id, _ = _source(world, "a.admin", "tcp")
    relp_id, _ = _source(world, "a.admin", "relp", transport="relp")
    http_id, _ = _source(world, "a.admin", "http", transport="http", format="json")
    sign_in(client, world["a.admin"])
    client.app.state.collector = _collector()  # type: ignore[attr-defined]
    try:
        page = client.get("/sources").text
        assert "data-banner" not in page and 'data-backlog="3"' in page
        tcp = client.get(f"/sources/{tcp_id}").text
        assert 'target="127.0.0.1" port="40514" protocol="tcp"' in tcp  # the bound port
        # The collector binds no RELP listener here: nothing to send to.
        assert "No listener for this transport" in client.get(f"/sources/{relp_id}").text
        # HTTP ingest is served by the console itself.
        assert "http://127.0.0.1:8000/api/v1/ingest" in client.get(f"/sources/{http_id}").text
        client.app.state.collector = _collector(overloaded=True)  # type: ignore[attr-defined]
        held = client.get("/sources/live").text
        assert 'data-banner="backpressure"' in held and "1234 messages behind" in held
    finally:
        client.app.state.collector = None  # type: ignore[attr-defined]


def test_metrics_carry_each_sources_series(client: TestClient, world: World) -> None:
    now = utcnow()
    live, _ = _source(world, "a.admin", 'fw "edge"')
    silent, _ = _source(world, "b.admin", "quiet", transport="udp", expected_interval=10)
    _set(world, live, last_event_at=now, events=42, dropped=2, malformed=1, parse_failures=3)
    _set(world, silent, last_event_at=now - timedelta(minutes=5))
    auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    text = client.get("/metrics", headers=auth).text
    org_a, org_b = world["a.admin"].organisation_id, world["b.admin"].organisation_id
    mine = f'organisation="{org_a}",source="fw \\"edge\\""'
    theirs = f'organisation="{org_b}",source="quiet"'
    for line in (
        f"qorgan_source_events_total{{{mine}}} 42.0",
        f"qorgan_source_dropped_total{{{mine}}} 2.0",
        f"qorgan_source_malformed_total{{{mine}}} 1.0",
        f"qorgan_source_parse_failures_total{{{mine}}} 3.0",
        f"qorgan_source_silent{{{mine}}} 0.0",
        f"qorgan_source_silent{{{theirs}}} 1.0",
    ):
        assert line in text, line
    stamp = re.search(
        rf"^qorgan_source_last_event_timestamp_seconds{{{re.escape(theirs)}}} (\S+)$",
        text,
        re.MULTILINE,
    )
    assert stamp and abs(float(stamp.group(1)) - (now - timedelta(minutes=5)).timestamp()) < 1
    assert "qorgan_collector_backlog_messages" not in text  # no collector in this process
    client.app.state.collector = _collector(overloaded=True)  # type: ignore[attr-defined]
    try:
        text = client.get("/metrics", headers=auth).text
    finally:
        client.app.state.collector = None  # type: ignore[attr-defined]
    assert "qorgan_collector_backlog_messages 1234.0" in text
    assert re.search(r"^qorgan_collector_log_bytes 5\.24288e\+06$", text, re.MULTILINE)
    assert "qorgan_collector_overloaded 1.0" in text
    assert re.search(r"^qorgan_udp_receive_errors_total \d+\.0$", text, re.MULTILINE)
