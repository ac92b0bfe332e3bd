"""Hunts that run the AI models too: the organisation's approved models score the hunted events,
their findings are stored pending and linked to the hunt (never as alerts), a person who
objected is left out, and a hunt without the models, or of an organisation that approved none,
proposes nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core.accounts import create_organisation, create_user
from qorgan.core.db import unit_of_work
from qorgan.core.models import AuditEntry, OrganisationKind, Role
from qorgan.detection.loader import BUILTIN_RULES, load_plan
from qorgan.detection.plan import Plan
from qorgan.incidents import findings as store
from qorgan.incidents.finding_models import AnomalyFinding
from qorgan.incidents.models import StoredAlert
from qorgan.pipeline.hunts import create_hunt, execute
from qorgan.pipeline.models import Hunt, HuntSource, HuntStatus

KEY = b"k" * 32


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    """The built-in Linux rules: enough for sshd logs, quick to compile."""
    return load_plan([BUILTIN_RULES / "linux"], cache_dir=tmp_path_factory.mktemp("plans"))


@pytest.fixture
def attacked(
    tmp_path: Path, shared_file: Callable[[str], Path], ssh_attack: Callable[..., list[str]]
) -> Path:
    """Loghub's real OpenSSH log with a password-guessing attack and its success after it."""
    path = tmp_path / "auth.log"
    real = shared_file("loghub/OpenSSH/OpenSSH_2k.log").read_text(encoding="utf-8")
    path.write_text(real + "\n".join(ssh_attack()) + "\n", encoding="utf-8")
    return path


def _organisation(factory: sessionmaker[Session], name: str, *, approve: bool) -> tuple[int, int]:
    """An organisation and its administrator; with ``approve``, the entity model is approved."""
    with unit_of_work(factory) as session:
        org = create_organisation(session=session, actor="t", name=name, kind=OrganisationKind.soc)
        admin = create_user(
            session=session,
            actor="t",
            organisation_id=org.id,
            email=f"ciso@{name.split()[0].lower()}.kz",
            display_name="CISO",
            role=Role.administrator,
            password="a long enough passphrase 1",
        )
        if approve:
            store.register_model(
                session,
                organisation_id=org.id,
                name="qorgan-entity-behaviour",
                version="1.0",
                purpose="per-entity behaviour",
                inputs=["security events"],
                metrics={},
                actor="t",
            )
            store.approve_model(
                session,
                organisation_id=org.id,
                name="qorgan-entity-behaviour",
                version="1.0",
                approver=admin.id,
                actor="t",
            )
        return org.id, admin.id


def _hunt(
    factory: sessionmaker[Session], org: int, user: int, path: Path, plan: Plan, **kwargs: object
) -> Hunt:
    anomaly = bool(kwargs.pop("anomaly", True))
    with unit_of_work(factory) as session:
        hunt_id = create_hunt(
            session=session,
            organisation_id=org,
            user_id=user,
            paths=[path],
            source=HuntSource.upload,
            anomaly=anomaly,
        ).id
    execute(hunt_id, factory=factory, plan=plan, **kwargs)  # type: ignore[arg-type]
    with unit_of_work(factory) as session:
        hunt = session.get(Hunt, hunt_id)
        assert hunt is not None
        session.expunge(hunt)
        return hunt


def _findings(factory: sessionmaker[Session], org: int) -> list[AnomalyFinding]:
    with unit_of_work(factory) as session:
        rows = list(
            session.scalars(select(AnomalyFinding).where(AnomalyFinding.organisation_id == org))
        )
        session.expunge_all()
        return rows


def test_a_hunt_with_the_models_stores_their_findings_pending_and_linked(
    factory: sessionmaker[Session], attacked: Path, plan: Plan
) -> None:
    org, admin = _organisation(factory, "Astana SOC", approve=True)
    hunt = _hunt(factory, org, admin, attacked, plan, anomaly_key=KEY)
    assert hunt.status is HuntStatus.done, hunt.error
    assert hunt.anomaly and hunt.alerts_found > 0  # the rules ran as usual
    found = _findings(factory, org)
    assert hunt.findings == len(found) > 0
    assert {f.hunt_id for f in found} == {hunt.id}
    assert {f.status for f in found} == {"pending"}
    assert {f.model for f in found} == {"qorgan-entity-behaviour"}  # only the approved one
    logons = [f for f in found if f.detector == "entity.logon"]
    assert len(logons) == 1
    assert logons[0].body["contributions"][0]["feature"] == "logon.after_failures"
    with unit_of_work(factory) as session:
        alerts = list(session.scalars(select(StoredAlert.body)))
        # the register got the other default models too, unapproved
        register = {m.name: m.approved_at for m in store.list_models(session, org)}
        created = session.scalar(
            select(AuditEntry.details).where(
                AuditEntry.action == "hunt.create", AuditEntry.target_id == str(hunt.id)
            )
        )
    assert alerts and not any("ai.generated" in a["rule"]["tags"] for a in alerts)
    assert len(register) == 5 and register["qorgan-entity-behaviour"] is not None
    assert sum(1 for v in register.values() if v is None) == 4
    assert created is not None and created["anomaly"] is True

    # The same files hunted again: the same findings, stored once.
    again = _hunt(factory, org, admin, attacked, plan, anomaly_key=KEY)
    assert again.status is HuntStatus.done and again.findings == 0
    assert len(_findings(factory, org)) == len(found)


def test_without_the_option_or_an_approved_model_nothing_is_proposed(
    factory: sessionmaker[Session], attacked: Path, plan: Plan
) -> None:
    org, admin = _organisation(factory, "Astana SOC", approve=True)
    plain = _hunt(factory, org, admin, attacked, plan, anomaly=False, anomaly_key=KEY)
    assert plain.status is HuntStatus.done and not plain.anomaly
    assert plain.findings == 0 and _findings(factory, org) == []
    none_approved, user = _organisation(factory, "Kostanay SOC", approve=False)
    hunt = _hunt(factory, none_approved, user, attacked, plan, anomaly_key=KEY)
    assert hunt.status is HuntStatus.done and hunt.anomaly and hunt.alerts_found > 0
    assert hunt.findings == 0 and _findings(factory, none_approved) == []
    with unit_of_work(factory) as session:
        register = store.list_models(session, none_approved)
        assert len(register) == 5 and all(m.approved_at is None for m in register)


def test_a_person_who_objected_is_left_out_of_a_hunt_s_models(
    factory: sessionmaker[Session], attacked: Path, plan: Plan
) -> None:
    org, admin = _organisation(factory, "Astana SOC", approve=True)
    with unit_of_work(factory) as session:
        store.exclude(
            session,
            organisation_id=org,
            identifiers=["fztu"],
            key=KEY,
            actor=admin,
            request_ref="letter 2026/118",
        )
    hunt = _hunt(factory, org, admin, attacked, plan, anomaly_key=KEY)
    assert hunt.status is HuntStatus.done
    found = _findings(factory, org)
    assert not [f for f in found if f.detector == "entity.logon"]
    assert not any("fztu" in str(f.body) for f in found)


def test_a_hunt_with_the_models_but_no_key_fails_saying_why(
    factory: sessionmaker[Session], attacked: Path, plan: Plan
) -> None:
    org, admin = _organisation(factory, "Astana SOC", approve=True)
    hunt = _hunt(factory, org, admin, attacked, plan)
    assert hunt.status is HuntStatus.failed
    assert hunt.error is not None and "privacy_hash_key" in hunt.error
    assert _findings(factory, org) == []
