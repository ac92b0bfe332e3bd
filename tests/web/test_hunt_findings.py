"""A console hunt that runs the AI models too, end to end: asked for by the API or the form, run
in the hunt's own process with the organisation's approved models, its findings counted on the
hunt, listed under AI findings filtered by the hunt, and pending a person's decision; a hunt
without the option proposes nothing, and another organisation sees none of it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from qorgan.core.db import unit_of_work
from qorgan.incidents import findings as store
from qorgan.pipeline.anomaly import register_default_models
from qorgan.pipeline.hunts import hunt_folder

from .conftest import World, csrf_of, sign_in
from .test_hunt_folders import _bearer, _finished


def _approve_entity_model(world: World) -> None:
    admin = world["a.admin"]
    with unit_of_work(world.factory) as session:
        register_default_models(session, admin.organisation_id, "t")
        store.approve_model(
            session,
            organisation_id=admin.organisation_id,
            name="qorgan-entity-behaviour",
            version="1.0",
            approver=admin.id,
            actor="t",
        )


def test_a_hunt_with_the_models_lists_its_findings_for_a_decision(
    client: TestClient,
    world: World,
    shared_file: Callable[[str], Path],
    ssh_attack: Callable[..., list[str]],
) -> None:
    _approve_entity_model(world)
    folder = hunt_folder(world.settings.hunt_root, world["a.analyst"].organisation_id)
    real = shared_file("loghub/OpenSSH/OpenSSH_2k.log").read_text(encoding="utf-8")
    (folder / "attacked.log").write_text(real + "\n".join(ssh_attack()) + "\n", encoding="utf-8")
    a = _bearer(world, "a.analyst")

    plain = client.post("/api/v1/hunts", json={"paths": ["attacked.log"]}, headers=a)
    assert plain.status_code == 202 and plain.json()["anomaly"] is False
    done = _finished(client, a, plain.json()["id"])
    assert done["status"] == "done" and done["alerts_found"] > 0 and done["findings"] == 0

    started = client.post(
        "/api/v1/hunts", json={"paths": ["attacked.log"], "anomaly": True}, headers=a
    )
    assert started.status_code == 202 and started.json()["anomaly"] is True
    hunt = _finished(client, a, started.json()["id"])
    assert hunt["status"] == "done", hunt
    assert hunt["findings"] >= 1 and hunt["alerts_found"] > 0

    sign_in(client, world["a.analyst"])
    row = client.get(f"/hunts/{hunt['id']}").text
    assert f'href="/findings?hunt={hunt["id"]}"' in row and 'class="badge ai"' in row
    assert 'data-findings="0"' in client.get(f"/hunts/{done['id']}").text
    listed = client.get(f"/findings?hunt={hunt['id']}").text
    assert listed.count("data-finding=") == hunt["findings"]
    assert 'data-status="pending"' in listed
    assert 'data-headline-feature="logon.after_failures"' in listed
    # nothing of the plain hunt's, and nothing for another organisation
    assert client.get(f"/findings?hunt={done['id']}").text.count("data-finding=") == 0
    sign_in(client, world["b.analyst"])
    assert client.get(f"/findings?hunt={hunt['id']}").text.count("data-finding=") == 0
    b = client.get(f"/api/v1/hunts/{hunt['id']}", headers=_bearer(world, "b.analyst"))
    assert b.status_code == 404


def test_the_form_asks_for_the_models_with_a_checkbox(client: TestClient, world: World) -> None:
    sign_in(client, world["a.analyst"])
    page = client.get("/hunts")
    assert 'name="anomaly"' in page.text
    started = client.post(
        "/hunts",
        data={
            "csrf_token": csrf_of(page.text),
            "server_paths": ["examples/auth.log"],
            "anomaly": "on",
        },
        follow_redirects=False,
    )
    assert started.status_code == 303
    hunts = client.get("/api/v1/hunts", headers=_bearer(world, "a.analyst")).json()
    assert hunts[0]["anomaly"] is True
    assert _finished(client, _bearer(world, "a.analyst"), hunts[0]["id"])["status"] == "done"
