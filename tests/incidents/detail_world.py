"""Two organisations with one member each, and alerts stored through the ingestion service:
what the comment, related-alert and history services are tested on (SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core.accounts import create_organisation
from qorgan.core.db import unit_of_work
from qorgan.core.models import OrganisationKind, Role, User
from qorgan.incidents import alerts as store
from qorgan.incidents.models import StoredAlert
from qorgan.incidents.schemas import AlertIn


@dataclass
class Pair:
    a: int  # organisation A
    b: int  # organisation B
    a_user: int
    b_user: int


def make_pair(factory: sessionmaker[Session]) -> Pair:
    with unit_of_work(factory) as session:
        orgs = [
            create_organisation(
                session=session, actor="system", name=name, kind=OrganisationKind.akimat
            )
            for name in ("Almaty akimat", "Astana akimat")
        ]
        users = []
        for org, name in zip(orgs, ("Aigerim", "Dana"), strict=True):
            # A row made directly: these services never check passwords.
            user = User(
                organisation_id=org.id,
                email=f"{name.lower()}@example.kz",
                display_name=name,
                role=Role.soc_analyst,
                password_hash="-",
            )
            session.add(user)
            session.flush()
            users.append(user.id)
        return Pair(orgs[0].id, orgs[1].id, users[0], users[1])


def alert(
    record: int,
    *,
    time: str | None = "2026-11-20T10:00:00Z",
    host: str | None = "web-01",
    user: str = "aigerim",
    ip: str = "198.51.100.1",
    rule_id: str = "8f0f2f7e-1d3a-4c55-9c61-0b7a3e1d2c11",
    correlation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "rule": {
            "id": rule_id,
            "title": "SSH Password Authentication Failed",
            "level": "low",
            "tags": ["attack.t1110"],
            "status": "test",
            "path": "rules/ssh.yml",
        },
        "time": time,
        "host": host,
        "source": {"path": "/var/log/auth.log", "record": record, "format": "syslog"},
        "event": {"user": user, "src_ip": ip},
    }
    if correlation is not None:
        out["correlation"] = correlation
        out["source"]["format"] = "correlation"
    return out


def store_alerts(factory: sessionmaker[Session], organisation_id: int, *alerts: dict) -> list[int]:
    """Ingest ``alerts`` for the organisation; their ids, in the order given."""
    with unit_of_work(factory) as session:
        store.ingest(
            session=session,
            organisation_id=organisation_id,
            alerts=[AlertIn.model_validate(a) for a in alerts],
            actor="test",
        )
    with unit_of_work(factory) as session:
        rows = session.scalars(
            select(StoredAlert).where(StoredAlert.organisation_id == organisation_id)
        ).all()
        by_key = {(r.body["source"]["record"], r.body["source"]["format"]): r.id for r in rows}
        return [by_key[(a["source"]["record"], a["source"]["format"])] for a in alerts]
