"""Benchmark of the intel store and the TAXII server: bulk ingest of indicators into the store,
then pages of 1,000 objects served over HTTP.

    python bench/intel.py [--count 1000000] [--batch 10000] [--pages 200] [--postgres]

Input: ``--count`` generated STIX 2.1 indicators, each distinct: its own random id, a value of
one of five kinds in turn (IPv4 address, domain, URL, SHA-256, e-mail address; every value
different), ``created``/``modified`` spread over the year before the run, ``valid_from``,
a ``valid_until`` on two in three, a confidence from 10 to 100, a name and labels, and a TLP
2.0 marking (CLEAR, GREEN or AMBER in turn). They are added to one collection through
``qorgan.intel.store.add_objects`` in batches of ``--batch`` (what one TAXII POST of that many
objects does: validation, insert, status resource, audit entry, commit). Generation is not
timed; the rate counts only ``add_objects`` and the commit.

Then the console runs as its own process (uvicorn, one worker, as ``qorgan serve`` runs it) on
the same database, and a TAXII client with an API token asks ``--pages`` times for a page of
1,000 objects (``GET .../objects/?limit=1000``), each from a random ``added_after`` within the
collection, alternately as the sending organisation (every object) and as a community member
(CLEAR and GREEN only: the TLP condition at work). Each request is timed from sending to the
whole answer; p50 and p95 are printed. SQLite (a file, WAL) by default; ``--postgres`` runs a
PostgreSQL on loopback (``qorgan.testing.Postgres``).
"""

from __future__ import annotations

import argparse
import glob
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from qorgan.core import accounts
from qorgan.core.db import make_engine, session_factory, unit_of_work
from qorgan.core.models import OrganisationKind, Role
from qorgan.core.settings import get_settings
from qorgan.core.tlp import Tlp
from qorgan.intel import store
from qorgan.intel.markings import mark
from qorgan.intel.models import Collection
from qorgan.intel.taxii import format_timestamp
from qorgan.migrations import upgrade
from qorgan.testing import Postgres, free_port

SERVER = """
import sys

import uvicorn

from qorgan.cli import uvicorn_options
from qorgan.core.settings import get_settings
from qorgan.web.app import create_app

settings = get_settings(database_url=sys.argv[1], var_dir=sys.argv[2])
app = create_app(settings, start_runner=False, start_notifier=False)
options = uvicorn_options(settings, "127.0.0.1", int(sys.argv[3]), 1)
options.update(factory=False, log_level="warning")
uvicorn.run(app, **options)
"""
LEVELS = (Tlp.clear, Tlp.green, Tlp.amber)
TAXII = "application/taxii+json;version=2.1"


def _stix(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def indicators(count: int, batch: int, seed: int = 13) -> Iterator[list[dict[str, Any]]]:
    """``count`` distinct indicators, ``batch`` at a time (see the module docstring)."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(days=365)
    chunk: list[dict[str, Any]] = []
    for n in range(count):
        kind = n % 5
        if kind == 0:
            value = f"{10 + n // 16_777_216 % 200}.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
            pattern = f"[ipv4-addr:value = '{value}']"
        elif kind == 1:
            pattern = f"[domain-name:value = 'c2-{n:x}.{rng.choice(['kz', 'ru', 'com', 'top'])}']"
        elif kind == 2:
            pattern = f"[url:value = 'https://cdn{n % 97}.example/{n:x}/load.php?id={n}']"
        elif kind == 3:
            digest = rng.getrandbits(256).to_bytes(32, "big").hex()
            pattern = f"[file:hashes.'SHA-256' = '{digest}']"
        else:
            pattern = f"[email-addr:value = 'sender{n}@phish-{n % 1000}.example']"
        created = start + timedelta(seconds=rng.randrange(365 * 86400), microseconds=n % 1000)
        modified = created + timedelta(hours=rng.randrange(0, 240))
        obj: dict[str, Any] = {
            "type": "indicator",
            "spec_version": "2.1",
            "id": f"indicator--{uuid.UUID(int=rng.getrandbits(128), version=4)}",
            "created": _stix(created),
            "modified": _stix(modified),
            "name": f"Indicator {n}",
            "indicator_types": [rng.choice(["malicious-activity", "anomalous-activity"])],
            "pattern": pattern,
            "pattern_type": "stix",
            "valid_from": _stix(created),
            "confidence": rng.randrange(10, 101),
            "labels": ["bench", f"kind-{kind}"],
        }
        if n % 3:
            obj["valid_until"] = _stix(modified + timedelta(days=rng.randrange(30, 720)))
        chunk.append(mark(obj, LEVELS[n % 3]))
        if len(chunk) == batch:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="qorgan-intel-bench-"))
    server: Postgres | None = None
    if args.postgres:
        bindir = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1]).parent
        server = Postgres(bindir)
        server.start()
        url = server.database()
    else:
        url = f"sqlite:///{folder / 'qorgan.db'}"
    settings = get_settings(database_url=url, var_dir=str(folder / "var"))
    upgrade(settings)
    engine = make_engine(settings)
    factory = session_factory(engine)
    with unit_of_work(factory) as session:
        orgs, tokens = {}, {}
        for name in ("sender", "member"):
            org = accounts.create_organisation(
                session=session, actor="bench", name=name, kind=OrganisationKind.bank
            )
            orgs[name] = org.id
            user = accounts.create_user(
                session=session, actor="bench", organisation_id=org.id,
                email=f"partner@{name}.example.kz", display_name=name, role=Role.partner,
                password="Bench-Passphrase-2026-long-enough!",
            )  # fmt: skip
            tokens[name] = accounts.issue_token(
                session=session, user=user, name="bench", scopes=["intel:read"]
            )
        root = store.create_api_root(session=session, slug="kz-cert", title="KZ-CERT")
        for org_id in orgs.values():
            store.add_member(session=session, api_root=root, organisation_id=org_id)
        collection = store.create_collection(
            session=session, actor="bench", api_root=root, owner_id=orgs["sender"], title="Feed"
        )
        store.grant(session=session, collection=collection, organisation_id=orgs["member"],
                    can_read=True, can_write=False)  # fmt: skip
        collection_id, taxii_id = collection.id, collection.taxii_id

    loaded_from = datetime.now(UTC)
    timed = 0.0
    stored = 0
    started = time.perf_counter()
    for chunk in indicators(args.count, args.batch):
        begin = time.perf_counter()
        with unit_of_work(factory) as session:
            target = session.get(Collection, collection_id)
            assert target is not None
            status = store.add_objects(
                chunk, session=session, collection=target, sender_id=orgs["sender"], actor="bench"
            )
        timed += time.perf_counter() - begin
        stored += status.success_count
        assert status.failure_count == 0, status.failures[:3]
    wall = time.perf_counter() - started
    print(f"database: {'PostgreSQL' if server else 'SQLite (file, WAL)'}")
    print(
        f"ingest: {stored:,} indicators in batches of {args.batch:,}: {timed:.1f} s in add_objects"
        f" + commit = {stored / timed:,.0f} objects/s ({wall:.1f} s with generation)"
    )
    bounds = (loaded_from, datetime.now(UTC))  # every date_added lies between
    engine.dispose()

    port = free_port()
    log = folder / "server.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVER, url, str(folder / "var"), str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        objects_url = f"{base}/taxii2/kz-cert/collections/{taxii_id}/objects/"
        rng = random.Random(7)
        span = (bounds[1] - bounds[0]).total_seconds()
        times: dict[str, list[float]] = {"sender": [], "member": []}
        sizes: dict[str, list[int]] = {"sender": [], "member": []}
        with httpx.Client(timeout=60) as client:
            for who in ("sender", "member"):  # warm up (connections, caches): not timed
                auth = {"Authorization": f"Bearer {tokens[who]}", "Accept": TAXII}
                client.get(objects_url, params={"limit": "1000"}, headers=auth)
            for i in range(args.pages):
                who = "sender" if i % 2 == 0 else "member"
                after = bounds[0] + timedelta(seconds=rng.random() * span * 0.9)
                begin = time.perf_counter()
                answer = client.get(
                    objects_url,
                    params={"limit": "1000", "added_after": format_timestamp(after)},
                    headers={"Authorization": f"Bearer {tokens[who]}", "Accept": TAXII},
                )
                body = answer.json()
                times[who].append(time.perf_counter() - begin)
                assert answer.status_code == 200, answer.text
                sizes[who].append(len(body.get("objects", [])))
        for who, label in (("sender", "as the sender (all)"), ("member", "as a member (TLP)")):
            ms = sorted(t * 1000 for t in times[who])
            p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
            print(
                f"GET objects, pages of up to 1,000 {label}: {len(ms)} requests, "
                f"{statistics.mean(sizes[who]):,.0f} objects a page on average, "
                f"p50 {statistics.median(ms):.0f} ms, p95 {p95:.0f} ms, max {ms[-1]:.0f} ms"
            )
    finally:
        process.kill()
        process.wait(timeout=30)
        if server is not None:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)  # a million indicators take about 1 GB


if __name__ == "__main__":
    main()
