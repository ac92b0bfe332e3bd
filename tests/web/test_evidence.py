"""Evidence files through the pages and the API: uploaded, listed with their hashes and
downloaded as attachments (never rendered), verified at each download and recorded in the
chain of custody; another organisation's files and incidents are 404s; empty, oversized and
badly named files are refused clearly, and nothing is left behind."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient

from qorgan.core.db import unit_of_work
from qorgan.incidents.models import Incident
from qorgan.web.app import create_app

from .conftest import World, sign_in

CONTENT = b"<html><script>alert('evidence')</script></html>\n" + bytes(range(256)) * 40
SHA256 = hashlib.sha256(CONTENT).hexdigest()


def _bearer(world: World, key: str, scopes: list[str] | None = None) -> dict[str, str]:
    token = world.token(key, scopes or ["incidents:read", "incidents:write"])
    return {"Authorization": f"Bearer {token}"}


def _incident(client: TestClient, headers: dict[str, str], title: str = "Leak") -> int:
    made = client.post("/api/v1/incidents", json={"title": title}, headers=headers)
    assert made.status_code == 201, made.text
    return int(made.json()["incident"]["id"])


def _upload(
    client: TestClient,
    headers: dict[str, str],
    incident_id: int,
    content: bytes = CONTENT,
    name: str = "page.html",
    media_type: str = "text/html",
    description: str = "",
) -> object:
    return client.post(
        f"/api/v1/incidents/{incident_id}/evidence",
        files={"file": (name, content, media_type)},
        data={"description": description},
        headers=headers,
    )


def _store(world: World) -> Path:
    return Path(world.settings.var_dir) / "evidence"


def _stored(world: World) -> list[Path]:
    """Every file in the store, temporary ones included."""
    root = _store(world)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _multipart(
    filename: bytes, content: bytes = b"data", boundary: str = "qorganboundary"
) -> bytes:
    """A multipart body with the file name's bytes exactly as given (a client library would
    refuse or re-encode some of them)."""
    return (
        f"--{boundary}\r\n".encode()
        + b'Content-Disposition: form-data; name="file"; filename="'
        + filename
        + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )


def test_api_round_trip_with_the_hash(client: TestClient, world: World) -> None:
    a = _bearer(world, "a.analyst")
    incident_id = _incident(client, a)
    added = _upload(client, a, incident_id, description="the phishing page as served")
    assert added.status_code == 201, added.text  # type: ignore[attr-defined]
    body = added.json()  # type: ignore[attr-defined]
    assert (body["name"], body["size"], body["sha256"]) == ("page.html", len(CONTENT), SHA256)
    assert (body["media_type"], body["description"]) == ("text/html", "the phishing page as served")
    assert body["added_by_id"] == world["a.analyst"].id
    listed = client.get(f"/api/v1/incidents/{incident_id}/evidence", headers=a).json()
    assert listed == [body]
    got = client.get(f"/api/v1/incidents/{incident_id}/evidence/{body['id']}", headers=a)
    assert got.status_code == 200
    assert got.content == CONTENT and hashlib.sha256(got.content).hexdigest() == SHA256
    assert got.headers["x-evidence-sha256"] == SHA256
    # Served so that no browser renders it, whatever was declared.
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-disposition"] == (
        "attachment; filename=\"page.html\"; filename*=UTF-8''page.html"
    )
    timeline = client.get(f"/api/v1/incidents/{incident_id}/timeline", headers=a).json()
    assert "evidence_added" in {e["kind"] for e in timeline["entries"]}


def test_page_round_trip_and_custody(client: TestClient, world: World) -> None:
    incident_id = _incident(client, _bearer(world, "a.analyst"))
    csrf = sign_in(client, world["a.analyst"])
    name = "Қорытынды <img src=x onerror=alert(1)>.html"
    added = client.post(
        f"/incidents/{incident_id}/evidence",
        data={"csrf_token": csrf, "description": "from the mail gateway"},
        files={"file": (name, CONTENT, "text/html")},
        follow_redirects=False,
    )
    assert added.status_code == 303, added.text
    assert added.headers["location"] == f"/incidents/{incident_id}#evidence"
    page = client.get(f"/incidents/{incident_id}").text
    assert SHA256 in page and "from the mail gateway" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    (evidence_id,) = re.findall(r'data-evidence-id="(\d+)"', page)
    link = f"/incidents/{incident_id}/evidence/{evidence_id}"
    assert f'href="{link}"' in page
    got = client.get(link)
    assert got.status_code == 200 and got.content == CONTENT
    assert got.headers["content-type"] == "application/octet-stream"
    disposition = got.headers["content-disposition"]
    # The exact name for today's browsers, an ASCII stand-in without quotes for old ones.
    stand_in, exact = re.fullmatch(
        r"attachment; filename=\"([ -~]*)\"; filename\*=UTF-8''([A-Za-z0-9%._~-]+)", disposition
    ).groups()  # type: ignore[union-attr]
    assert unquote(exact) == name and '"' not in stand_in
    # A colleague opens it too; the custody shows the addition and each opening, in order.
    client.post("/logout", data={"csrf_token": csrf})
    sign_in(client, world["a.admin"])
    assert client.get(link).status_code == 200
    page = client.get(f"/incidents/{incident_id}").text
    custody = re.findall(r'<li data-action="(\w+)">.*?· ([^<·]+) · <code', page)
    assert [(action, who.strip()) for action, who in custody] == [
        ("added", "Analyst A"),
        ("opened", "Analyst A"),
        ("opened", "Admin A"),
    ]


def test_the_same_bytes_on_two_incidents_are_stored_once(client: TestClient, world: World) -> None:
    a = _bearer(world, "a.analyst")
    first, second = _incident(client, a), _incident(client, a)
    assert _upload(client, a, first).status_code == 201  # type: ignore[attr-defined]
    assert _upload(client, a, second, name="copy.html").status_code == 201  # type: ignore[attr-defined]
    assert _stored(world) == [_store(world) / SHA256[:2] / SHA256[2:4] / SHA256]
    again = _upload(client, a, first, name="again.html")
    assert again.status_code == 400  # type: ignore[attr-defined]
    assert "already holds the same content as 'page.html'" in again.json()["detail"]  # type: ignore[attr-defined]


def test_another_organisations_evidence_and_incident_are_not_found(
    client: TestClient, world: World
) -> None:
    b = _bearer(world, "b.analyst")
    b_incident = _incident(client, b, "B's")
    b_evidence = _upload(client, b, b_incident).json()["id"]  # type: ignore[attr-defined]
    a = _bearer(world, "a.admin", ["*"])
    a_incident = _incident(client, a, "A's")
    for path in (
        f"/api/v1/incidents/{b_incident}/evidence",
        f"/api/v1/incidents/{b_incident}/evidence/{b_evidence}",
        f"/api/v1/incidents/{a_incident}/evidence/{b_evidence}",  # B's file through A's incident
    ):
        assert client.get(path, headers=a).status_code == 404, path
    planted = _upload(client, a, b_incident, b"planted by A")
    assert planted.status_code == 404  # type: ignore[attr-defined]
    assert client.get(f"/api/v1/incidents/{a_incident}/evidence", headers=a).json() == []
    csrf = sign_in(client, world["a.admin"])
    for path in (
        f"/incidents/{b_incident}/evidence/{b_evidence}",
        f"/incidents/{a_incident}/evidence/{b_evidence}",
    ):
        assert client.get(path).status_code == 404, path
    posted = client.post(
        f"/incidents/{b_incident}/evidence",
        data={"csrf_token": csrf},
        files={"file": ("x.txt", b"planted by A", "text/plain")},
    )
    assert posted.status_code == 404
    assert len(_stored(world)) == 1  # only B's file; nothing of A's was stored
    listed = client.get(f"/api/v1/incidents/{b_incident}/evidence", headers=b).json()
    assert [e["id"] for e in listed] == [b_evidence]


def test_the_coordinator_reads_but_never_adds(client: TestClient, world: World) -> None:
    a = _bearer(world, "a.analyst")
    incident_id = _incident(client, a)
    evidence_id = _upload(client, a, incident_id).json()["id"]  # type: ignore[attr-defined]
    with unit_of_work(world.factory) as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        incident.reported_to_id = world["b.coordinator"].organisation_id
    b = _bearer(world, "b.coordinator")
    got = client.get(f"/api/v1/incidents/{incident_id}/evidence/{evidence_id}", headers=b)
    assert got.status_code == 200 and got.content == CONTENT
    assert _upload(client, b, incident_id, b"from B").status_code == 404  # type: ignore[attr-defined]
    # The reporter sees that the coordinator opened it.
    sign_in(client, world["a.analyst"])
    page = client.get(f"/incidents/{incident_id}").text
    assert re.findall(r'<li data-action="(\w+)">', page) == ["added", "opened"]
    assert "Coordinator B" in page


def test_a_tampered_file_is_refused_at_download(client: TestClient, world: World) -> None:
    a = _bearer(world, "a.analyst")
    incident_id = _incident(client, a)
    evidence_id = _upload(client, a, incident_id).json()["id"]  # type: ignore[attr-defined]
    (path,) = _stored(world)
    path.chmod(0o600)
    path.write_bytes(CONTENT.replace(b"evidence", b"innocent"))
    refused = client.get(f"/api/v1/incidents/{incident_id}/evidence/{evidence_id}", headers=a)
    assert refused.status_code == 409
    assert "no longer matches its SHA-256" in refused.json()["detail"]
    assert "tampered with or corrupted" in refused.json()["detail"]
    sign_in(client, world["a.analyst"])
    page = client.get(f"/incidents/{incident_id}/evidence/{evidence_id}")
    assert page.status_code == 409 and "no longer matches its SHA-256" in page.text
    assert CONTENT[:20] not in page.content
    # A refused download is not in the custody.
    assert 'data-action="opened"' not in client.get(f"/incidents/{incident_id}").text


def test_empty_files_and_bad_names_are_refused_clearly(client: TestClient, world: World) -> None:
    a = _bearer(world, "a.analyst")
    incident_id = _incident(client, a)
    empty = _upload(client, a, incident_id, b"")
    assert empty.status_code == 400  # type: ignore[attr-defined]
    assert empty.json()["detail"] == "the evidence file is empty"  # type: ignore[attr-defined]
    for name, reason in (
        ("../x", "without folders"),
        ("..\\..\\windows\\x.dll", "without folders"),
        ("invoice\u202efdp.exe", "control characters"),
        ("x" * 256, "at most 255 characters"),
    ):
        refused = _upload(client, a, incident_id, name=name)
        assert refused.status_code == 400, name  # type: ignore[attr-defined]
        assert reason in refused.json()["detail"], name  # type: ignore[attr-defined]
    url = f"/api/v1/incidents/{incident_id}/evidence"
    content_type = {"Content-Type": "multipart/form-data; boundary=qorganboundary"}
    for raw, reason in (
        (b"auth\x00.log", "NUL"),
        (b"\xed\xa0\x80.log", "control characters"),  # a lone surrogate, UTF-8-encoded
        (b"a\x1b]8;;evil\x07.log", "control characters"),
    ):
        refused = client.post(url, content=_multipart(raw), headers={**a, **content_type})
        assert refused.status_code == 400, raw
        assert reason in refused.json()["detail"], raw
    no_file = client.post(url, data={"description": "nothing"}, headers=a)
    assert no_file.status_code == 400
    assert no_file.json()["detail"] == "choose a file to add as evidence"
    bad_text = _upload(client, a, incident_id, description="a\x00b")
    assert bad_text.status_code == 400  # type: ignore[attr-defined]
    assert _stored(world) == []
    assert client.get(url, headers=a).json() == []


@pytest.fixture
def small_client(world: World) -> Iterator[TestClient]:
    """The console with a 1 MiB evidence limit (so the body limit is 2 MiB)."""
    settings = world.settings.model_copy(update={"evidence_max_mib": 1})
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as test_client:
        yield test_client


def test_oversized_files_are_refused_and_leave_nothing(
    small_client: TestClient, world: World
) -> None:
    client = small_client
    a = _bearer(world, "a.analyst")
    incident_id = _incident(client, a)
    url = f"/api/v1/incidents/{incident_id}/evidence"
    # Within the body limit, over the file limit: the service refuses it (400).
    over = _upload(client, a, incident_id, b"x" * ((1 << 20) + 1))
    assert over.status_code == 400  # type: ignore[attr-defined]
    assert over.json()["detail"] == "the evidence file is larger than the limit of 1 MiB"  # type: ignore[attr-defined]
    # Over the body limit, declared: refused before anything reads it (413).
    declared = _upload(client, a, incident_id, b"x" * (3 << 20))
    assert declared.status_code == 413  # type: ignore[attr-defined]
    assert declared.json() == {"detail": "the request body is larger than 2 MiB"}  # type: ignore[attr-defined]
    # Over it, sent without a length (chunked): counted as it arrives and refused.
    body = _multipart(b"big.bin", b"y" * (3 << 20))

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    chunked = client.post(
        url,
        content=chunks(),
        headers={**a, "Content-Type": "multipart/form-data; boundary=qorganboundary"},
    )
    assert chunked.status_code == 413
    # The page's form says the same.
    csrf = sign_in(client, world["a.analyst"])
    page = client.post(
        f"/incidents/{incident_id}/evidence",
        data={"csrf_token": csrf},
        files={"file": ("big.bin", b"z" * ((1 << 20) + 10), "application/octet-stream")},
    )
    assert page.status_code == 400 and "larger than the limit of 1 MiB" in page.text
    # No partial temporary file, no stored content, no row.
    assert _stored(world) == []
    assert client.get(url, headers=a).json() == []
    # Exactly at the limit is accepted.
    assert _upload(client, a, incident_id, b"e" * (1 << 20)).status_code == 201  # type: ignore[attr-defined]


def test_who_may_upload_and_download(client: TestClient, world: World) -> None:
    a = _bearer(world, "a.analyst")
    incident_id = _incident(client, a)
    evidence_id = _upload(client, a, incident_id).json()["id"]  # type: ignore[attr-defined]
    url = f"/api/v1/incidents/{incident_id}/evidence"
    reader = _bearer(world, "a.analyst", ["incidents:read"])
    assert _upload(client, reader, incident_id, b"other").status_code == 403  # type: ignore[attr-defined]
    assert client.get(f"{url}/{evidence_id}", headers=reader).status_code == 200
    auditor = _bearer(world, "a.auditor", ["incidents:read"])
    assert client.get(f"{url}/{evidence_id}", headers=auditor).status_code == 200
    partner = _bearer(world, "a.partner", ["*"])
    assert client.get(f"{url}/{evidence_id}", headers=partner).status_code == 403
    anonymous = client.post(url, files={"file": ("x.txt", b"anonymous", "text/plain")})
    assert anonymous.status_code == 401
    assert client.get(f"{url}/{evidence_id}").status_code == 401
    assert len(_stored(world)) == 1
    # Pages never take a token.
    page = client.get(f"/incidents/{incident_id}/evidence/{evidence_id}", headers=a)
    assert page.status_code in (303, 307) or "/login" in str(page.url)


def test_names_cannot_break_out_of_the_download_header(client: TestClient, world: World) -> None:
    a = _bearer(world, "a.analyst")
    incident_id = _incident(client, a)
    for index, name in enumerate(
        ['report"; filename="evil.exe', "a;b=c.txt", "%0d%0aSet-Cookie: x=1.txt", "файл 1.txt"]
    ):
        added = _upload(client, a, incident_id, f"content {index}".encode(), name=name)
        assert added.status_code == 201, added.text  # type: ignore[attr-defined]
        evidence_id = added.json()["id"]  # type: ignore[attr-defined]
        got = client.get(f"/api/v1/incidents/{incident_id}/evidence/{evidence_id}", headers=a)
        assert got.status_code == 200 and "set-cookie" not in got.headers
        found = re.fullmatch(
            r"attachment; filename=\"([A-Za-z0-9._() -]*)\"; filename\*=UTF-8''([A-Za-z0-9%._~-]+)",
            got.headers["content-disposition"],
        )
        assert found, got.headers["content-disposition"]
        # The name as the client sent it (which, like a browser, writes a quote as %22).
        assert unquote(found.group(2)) == added.json()["name"]  # type: ignore[attr-defined]
        assert got.headers["content-disposition"].count('"') == 2
