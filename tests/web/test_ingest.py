"""HTTP ingest with a source's own token, in the request shapes forwarders send (Fluent Bit's
``json_lines`` and ``json`` with gzip, Vector's newline-delimited JSON, plain arrays, text
records): answered once durable, analysed, kept to the token's organisation; bad bodies refused
whole with where and why; held senders told to retry."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core.accounts import create_organisation
from qorgan.core.db import unit_of_work
from qorgan.core.models import OrganisationKind
from qorgan.core.settings import Settings
from qorgan.detection.loader import BUILTIN_RULES, load_plan
from qorgan.detection.plan import Plan
from qorgan.incidents.models import StoredAlert
from qorgan.pipeline.collector import Collector, CollectorConfig
from qorgan.pipeline.intake import DETECTION
from qorgan.pipeline.listeners import ListenerConfig
from qorgan.pipeline.models import LogSource
from qorgan.pipeline.sources import create_source
from qorgan.web.ingest_app import create_ingest_app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "logs"
WINDOWS = [
    orjson.loads(line)
    for line in (EXAMPLES / "windows-endpoint.jsonl").read_bytes().splitlines()
    if line.strip().startswith(b"{") and line.strip().endswith(b"}")
]
AUTH = [line.decode() for line in (EXAMPLES / "auth.log").read_bytes().splitlines() if line]


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    return load_plan([BUILTIN_RULES], cache_dir=tmp_path_factory.mktemp("plans"))


@dataclass
class Ingest:
    client: TestClient
    collector: Collector
    factory: sessionmaker[Session]
    tokens: dict[str, str]
    orgs: dict[str, int]

    def post(self, token: str, body: bytes, **headers: str):  # type: ignore[no-untyped-def]
        return self.client.post(
            "/api/v1/ingest", content=body, headers={"Authorization": f"Bearer {token}", **headers}
        )

    def analysed(self) -> None:
        deadline = time.monotonic() + 60
        while self.collector.bus.lag(DETECTION):
            assert time.monotonic() < deadline
            time.sleep(0.05)

    def alerts(self, org: str) -> list[StoredAlert]:
        with unit_of_work(self.factory) as session:
            return list(
                session.scalars(
                    select(StoredAlert).where(StoredAlert.organisation_id == self.orgs[org])
                )
            )


@pytest.fixture
def ingest(
    factory: sessionmaker[Session], settings: Settings, tmp_path: Path, plan: Plan
) -> Iterator[Ingest]:
    tokens, orgs = {}, {}
    with unit_of_work(factory) as session:
        for org_name, sources in (
            ("astana", [("windows", "json"), ("linux", "syslog")]),
            ("almaty", [("windows", "json")]),
        ):
            org = create_organisation(
                session=session, actor="t", name=org_name, kind=OrganisationKind.soc
            )
            orgs[org_name] = org.id
            for name, fmt in sources:
                _s, token = create_source(
                    session=session,
                    organisation_id=org.id,
                    actor="t",
                    name=name,
                    transport="http",
                    format=fmt,
                    timezone="UTC",
                )
                assert token is not None
                tokens[f"{org_name}/{name}"] = token
        _s, _token = create_source(
            session=session,
            organisation_id=orgs["astana"],
            actor="t",
            name="tcp",
            transport="tcp",
            format="syslog",
        )
    collector = Collector(
        CollectorConfig(
            listeners=ListenerConfig(), bus_path=tmp_path / "bus.db", archive_root=None
        ),
        factory=factory,
        plan=lambda: plan,
    )
    collector.start()
    with TestClient(create_ingest_app(collector, settings)) as client:
        yield Ingest(client, collector, factory, tokens, orgs)
    collector.stop()


def test_fluent_bit_json_lines_gzip_is_stored_and_analysed(ingest: Ingest) -> None:
    body = gzip.compress(b"\n".join(orjson.dumps(e) for e in WINDOWS))
    response = ingest.post(ingest.tokens["astana/windows"], body, **{"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": len(WINDOWS)}
    ingest.analysed()
    titles = {a.rule_title for a in ingest.alerts("astana")}
    assert "Shadow Copies Deleted" in titles
    assert ingest.alerts("almaty") == []  # the token says whose events they are


def test_a_json_array_and_a_single_object_are_taken(ingest: Ingest) -> None:
    token = ingest.tokens["almaty/windows"]
    assert ingest.post(token, orjson.dumps(WINDOWS[:3])).json() == {"accepted": 3}
    assert ingest.post(token, orjson.dumps(WINDOWS[3])).json() == {"accepted": 1}
    with unit_of_work(ingest.factory) as session:
        ingest.collector._flush(time.time())
        counts = session.scalars(select(LogSource.events).where(LogSource.name == "windows"))
        assert sorted(counts) == [0, 4]


def test_text_records_as_vector_and_fluent_bit_send_them(ingest: Ingest) -> None:
    token = ingest.tokens["astana/linux"]
    vector = b"\n".join(orjson.dumps({"message": line, "host": "h"}) for line in AUTH[:20])
    fluent = orjson.dumps([{"log": line} for line in AUTH[20:]])
    assert ingest.post(token, vector).json() == {"accepted": 20}
    assert ingest.post(token, fluent).json() == {"accepted": len(AUTH) - 20}
    ingest.analysed()
    assert any(a.rule_title.startswith("SSH") for a in ingest.alerts("astana"))


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (b'{"a": 1}\n{"b": \n{"c": 3}', {}, "line 2: not JSON"),
        (b"[1, 2]", {}, "event 1: expected a JSON object"),
        (b"\x1f\x8b\x08not gzip", {"Content-Encoding": "gzip"}, "gzip body is damaged"),
        (b"{}", {"Content-Encoding": "br"}, "unsupported Content-Encoding"),
        (b'[{"a": "\\ud800"}]', {}, "not a JSON array"),
    ],
)
def test_a_bad_body_is_refused_whole_with_the_reason(
    ingest: Ingest, body: bytes, headers: dict[str, str], message: str
) -> None:
    response = ingest.post(ingest.tokens["astana/windows"], body, **headers)
    assert response.status_code == 400 and message in response.json()["detail"]
    assert ingest.collector.bus.end(0) == 0


def test_a_gzip_bomb_is_refused_before_it_is_held(ingest: Ingest) -> None:
    bomb = gzip.compress(b"\n" * (300 << 20))
    response = ingest.post(ingest.tokens["astana/windows"], bomb, **{"Content-Encoding": "gzip"})
    assert response.status_code == 400 and "inflates to more than" in response.json()["detail"]


def test_tokens_are_checked(ingest: Ingest) -> None:
    assert ingest.post("qls_forged", b"{}").status_code == 401
    unauthenticated = ingest.client.post("/api/v1/ingest", content=b"{}")
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["WWW-Authenticate"] == "Bearer"
    basic = ingest.client.post(
        "/api/v1/ingest",
        content=b"{}",
        headers={"Authorization": f"Basic {ingest.tokens['astana/windows']}"},
    )
    assert basic.status_code == 401
    assert ingest.collector.bus.end(0) == 0


def test_a_held_sender_is_told_when_to_retry_and_a_free_one_is_answered(
    ingest: Ingest,
) -> None:
    ingest.collector.intake._overloaded = True  # detection behind past its limit
    held = ingest.post(ingest.tokens["astana/windows"], orjson.dumps(WINDOWS[0]))
    assert held.status_code == 429 and held.headers["Retry-After"] == "5"
    assert ingest.collector.bus.end(0) == 0
    ingest.collector.intake._overloaded = False
    assert ingest.post(ingest.tokens["astana/windows"], orjson.dumps(WINDOWS[0])).status_code == 200
