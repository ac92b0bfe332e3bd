"""The intel tests' shared fixture: the OASIS reference TAXII server, medallion, run as a real
process on loopback with its memory backend, holding a few hundred indicators over several
pages. A group of ten objects shares one ``date_added`` across a page boundary, as a bulk write
does, to prove resuming loses nothing there."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from qorgan.core.tlp import Tlp
from qorgan.intel.client import MEDIA_TYPE_STIX, MEDIA_TYPE_TAXII
from qorgan.intel.patterns import Observable, indicator

COLLECTION = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"
LOCKED = "52892447-4d7e-4f70-b94d-d7f22742ff63"
ROOT = "trustgroup1"
USER, PASSWORD = "partner", "correct horse battery staple"
SOURCE = "identity--c8d2fa1c-5d8e-4b3a-9a0f-111111111111"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
PAGE = 50
COUNT = 320
TIE = range(95, 105)  # these share one date_added, straddling the page boundary at 100


def _objects() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``COUNT`` objects in date_added order, and medallion's manifest for them."""
    objects, manifest = [], []
    for i in range(COUNT):
        value = Observable.of("ipv4-addr", f"198.51.{100 + i // 250}.{i % 250}")
        made = indicator(value, created_by_ref=SOURCE, confidence=90, valid_from=T0, tlp=Tlp.green)
        if i % 3 == 0:  # a third arrive unmarked and without confidence: the feed's defaults
            made = {k: v for k, v in made.items() if k not in ("object_marking_refs", "confidence")}
        added = T0 + timedelta(seconds=95 if i in TIE else i, microseconds=0)
        objects.append(made)
        manifest.append(
            {
                "id": made["id"],
                "date_added": added.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "version": made["modified"],
                "media_type": MEDIA_TYPE_STIX,
            }
        )
    return objects, manifest


OBJECTS, MANIFEST = _objects()
ORDER = [m["id"] for m in sorted(MANIFEST, key=lambda m: m["date_added"])]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def medallion(tmp_path: Path) -> Iterator[str]:
    """A medallion server on loopback; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = {
        "/discovery": {
            "title": "Test TAXII server",
            "description": "medallion for qorgan's client tests",
            "contact": "soc@example.kz",
            "default": f"{base}/{ROOT}/",
            "api_roots": [f"{base}/{ROOT}/"],
        },
        ROOT: {
            "information": {
                "title": "Trust group 1",
                "description": "indicators",
                "versions": [MEDIA_TYPE_TAXII],
                "max_content_length": 9765625,
            },
            "status": [],
            "collections": [
                {
                    "id": COLLECTION,
                    "title": "Indicators",
                    "description": "IPv4 indicators",
                    "can_read": True,
                    "can_write": True,
                    "media_types": [MEDIA_TYPE_STIX],
                    "objects": OBJECTS,
                    "manifest": MANIFEST,
                },
                {
                    "id": LOCKED,
                    "title": "Write only",
                    "can_read": False,
                    "can_write": True,
                    "media_types": [MEDIA_TYPE_STIX],
                    "objects": [],
                    "manifest": [],
                },
            ],
        },
    }
    (tmp_path / "data.json").write_text(json.dumps(data))
    config = {
        "backend": {
            "module": "medallion.backends.memory_backend",
            "module_class": "MemoryBackend",
            "filename": str(tmp_path / "data.json"),
        },
        "users": {USER: PASSWORD},
        "taxii": {"max_page_size": PAGE},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    log = (tmp_path / "medallion.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "medallion.scripts.run", "--port", str(port), "config.json"],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(200):  # wait until it listens (readiness, not a timing assertion)
            if process.poll() is not None:
                pytest.fail(f"medallion exited: {(tmp_path / 'medallion.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("medallion did not start listening")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
