"""Console hunts stay inside their organisation's folder, refuse unusable paths with a clear
400, and run in a process of their own: a hunt that exhausts its memory fails with the reason
while the console keeps answering."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from qorgan.pipeline.hunts import hunt_folder
from qorgan.web.app import create_app

from .conftest import World, csrf_of, sign_in

HUNTS = ["hunts:run", "hunts:read", "alerts:read"]
#: sshd failures from an address that appears only in files that must not be read.
SECRET_IP = "198.51.100.66"


def _bearer(world: World, key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.token(key, HUNTS)}"}


def _finished(client: TestClient, headers: dict[str, str], hunt_id: int) -> dict[str, Any]:
    """The hunt once it has ended, asked of the API as the console's page asks it."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        hunt = client.get(f"/api/v1/hunts/{hunt_id}", headers=headers)
        assert hunt.status_code == 200  # the console answers while the hunt runs
        if hunt.json()["status"] in ("done", "failed"):
            return dict(hunt.json())
        time.sleep(0.1)
    raise AssertionError(f"hunt {hunt_id} did not finish")


def _sshd_failures(ip: str, count: int = 12) -> bytes:
    return b"".join(
        b"Nov 20 08:00:%02d gov-web-01 sshd[4242]: Failed password for root from %s "
        b"port 5%04d ssh2\n" % (i, ip.encode(), i)
        for i in range(count)
    )


def test_each_organisation_lists_and_hunts_only_its_own_folder(
    client: TestClient, world: World
) -> None:
    a, b = _bearer(world, "a.analyst"), _bearer(world, "b.analyst")
    a_id = world["a.analyst"].organisation_id
    a_files = {f["path"] for f in client.get("/api/v1/hunts/files", headers=a).json()}
    assert {"examples/auth.log", "examples/access.log"} <= a_files
    assert client.get("/api/v1/hunts/files", headers=b).json() == []

    # B cannot hunt A's files, by name or by a way out of its own folder, and learns nothing
    # of them: an existing file and a missing one get the same answer.
    refused = {}
    for path in (
        "examples",
        "examples/auth.log",
        f"../{a_id}/examples/auth.log",
        f"../{a_id}/examples/no-such.log",
        f"../{a_id}",
        str(hunt_folder(world.settings.hunt_root, a_id) / "examples" / "auth.log"),
    ):
        response = client.post("/api/v1/hunts", json={"paths": [path]}, headers=b)
        assert response.status_code == 400, (path, response.text)
        refused[path] = response.json()["detail"].replace(repr(path), "PATH")
    assert refused[f"../{a_id}/examples/auth.log"] == refused[f"../{a_id}/examples/no-such.log"]
    assert client.get("/api/v1/hunts", headers=b).json() == []

    # A hunts its own files; the alerts are A's alone.
    started = client.post("/api/v1/hunts", json={"paths": ["examples"]}, headers=a)
    assert started.status_code == 202, started.text
    hunt = _finished(client, a, started.json()["id"])
    assert hunt["status"] == "done" and hunt["alerts_new"] > 0, hunt
    assert client.get("/api/v1/alerts", headers=a).json()["total"] == hunt["alerts_new"]
    assert client.get("/api/v1/alerts", headers=b).json()["total"] == 0

    # The hunts page offers each organisation its own files only.
    sign_in(client, world["b.analyst"])
    assert "auth.log" not in client.get("/hunts").text
    client.cookies.clear()
    sign_in(client, world["a.analyst"])
    assert "examples/auth.log" in client.get("/hunts").text


def test_links_out_of_the_folder_are_neither_listed_nor_read(
    client: TestClient, world: World, tmp_path: Path
) -> None:
    a = _bearer(world, "a.analyst")
    outside = tmp_path / "elsewhere"
    (outside / "secrets").mkdir(parents=True)
    (outside / "secret.log").write_bytes(_sshd_failures(SECRET_IP))
    (outside / "secrets" / "auth.log").write_bytes(_sshd_failures(SECRET_IP))
    folder = hunt_folder(world.settings.hunt_root, world["a.analyst"].organisation_id)
    b_folder = hunt_folder(world.settings.hunt_root, world["b.analyst"].organisation_id)
    b_folder.mkdir(parents=True, exist_ok=True)
    (b_folder / "b-only.log").write_bytes(_sshd_failures(SECRET_IP))
    (folder / "mine").mkdir()
    (folder / "mine" / "auth.log").write_bytes(_sshd_failures("203.0.113.9"))
    (folder / "mine" / "to-a-file.log").symlink_to(outside / "secret.log")
    (folder / "mine" / "to-a-folder").symlink_to(outside / "secrets")
    (folder / "mine" / "to-b.log").symlink_to(b_folder / "b-only.log")

    listed = {f["path"] for f in client.get("/api/v1/hunts/files", headers=a).json()}
    assert "mine/auth.log" in listed
    assert not {p for p in listed if "to-" in p}

    for path in ("mine/to-a-file.log", "mine/to-a-folder", "mine/to-a-folder/auth.log"):
        response = client.post("/api/v1/hunts", json={"paths": [path]}, headers=a)
        assert response.status_code == 400, path

    # Walking the folder, the links are met and refused, with the reason; only A's file is read.
    started = client.post("/api/v1/hunts", json={"paths": ["mine"]}, headers=a)
    assert started.status_code == 202, started.text
    hunt = _finished(client, a, started.json()["id"])
    assert hunt["status"] == "done", hunt
    assert hunt["events"] == 12 and hunt["quarantined"] == 3
    assert hunt["total_bytes"] == (folder / "mine" / "auth.log").stat().st_size
    alerts = client.get("/api/v1/alerts?limit=200", headers=a).json()["items"]
    assert alerts and all(SECRET_IP not in str(alert) for alert in alerts)


def test_unusable_paths_are_refused_with_400_not_5xx(client: TestClient, world: World) -> None:
    a = _bearer(world, "a.analyst")
    bad = [
        "a\u0000b",
        "examples/\u0000",
        "x" * 1024,  # one name far past the file system's 255 bytes
        "a/" * 511 + "b",  # 1,023 characters of folders that do not exist
        "\u007f",
        "examples/\nauth.log",
    ]
    for path in bad:
        response = client.post("/api/v1/hunts", json={"paths": [path]}, headers=a)
        assert response.status_code == 400, (path[:20], response.status_code, response.text)
        assert response.json()["detail"]
    too_long = client.post("/api/v1/hunts", json={"paths": ["x" * 1025]}, headers=a)
    assert too_long.status_code == 422
    assert client.get("/api/v1/hunts", headers=a).json() == []

    csrf = sign_in(client, world["a.analyst"])
    for path in [*bad, "y" * 5000]:
        page = client.post(
            "/hunts",
            data={"csrf_token": csrf, "server_paths": path},
            follow_redirects=False,
        )
        assert page.status_code == 400, (path[:20], page.status_code)
    assert csrf_of(client.get("/hunts").text)  # the page still answers


def test_a_hunt_over_its_memory_limit_fails_while_the_console_answers(world: World) -> None:
    """The hunt's process may use 512 MiB; a 600 MiB line (the record limit raised past it)
    needs more. The hunt fails with that reason; the console answers throughout and hunts
    again afterwards."""
    settings = world.settings.model_copy(
        update={"hunt_memory_mib": 512, "hunt_max_record_mib": 1024}
    )
    folder = hunt_folder(settings.hunt_root, world["a.analyst"].organisation_id)
    with (folder / "greedy.json").open("wb") as out:  # sparse: no disk, no time to write
        out.write(b'{"message": "')
        out.truncate(600 << 20)
    app = create_app(settings)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        a = _bearer(world, "a.analyst")
        started = client.post("/api/v1/hunts", json={"paths": ["greedy.json"]}, headers=a)
        assert started.status_code == 202, started.text
        hunt = _finished(client, a, started.json()["id"])
        assert hunt["status"] == "failed"
        assert hunt["error"] == "the hunt exceeded its memory limit of 512 MiB"
        assert client.get("/healthz").json() == {"status": "ok"}
        again = client.post("/api/v1/hunts", json={"paths": ["examples/auth.log"]}, headers=a)
        after = _finished(client, a, again.json()["id"])
        assert after["status"] == "done" and after["alerts_found"] > 0, after
