"""Feeds as subscriptions, on SQLite and PostgreSQL: registered with their checks, polled into
their collection (a list, a MISP feed, a TAXII collection served by medallion), resumed where a
killed poll stopped with nothing lost or repeated, failures recorded without losing the state,
and the operator's ``qorgan intel`` commands."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import accounts
from qorgan.core.db import unit_of_work
from qorgan.core.models import AuditEntry, OrganisationKind
from qorgan.core.tlp import Tlp
from qorgan.intel import store, subscriptions
from qorgan.intel.models import Collection, Feed, StixObject
from qorgan.intel.subscriptions import SubscriptionError

from .conftest import COLLECTION, COUNT, PAGE, PASSWORD, ROOT, USER

DATA = Path(__file__).resolve().parents[1] / "data" / "intel"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@dataclass
class World:
    factory: sessionmaker[Session]
    organisation: int
    other: int
    collection: int

    def add(self, name: str, kind: str, url: str, **options: object) -> int:
        with unit_of_work(self.factory) as session:
            feed = subscriptions.add_feed(
                session=session,
                actor="test",
                organisation_id=self.organisation,
                collection=session.get(Collection, self.collection),  # type: ignore[arg-type]
                name=name,
                kind=kind,
                url=url,
                allow_local_paths=True,
                **options,  # type: ignore[arg-type]
            )
            return feed.id

    def stored(self) -> int:
        with unit_of_work(self.factory) as session:
            return session.scalar(
                select(func.count())
                .select_from(StixObject)
                .where(StixObject.collection_id == self.collection)
            )

    def feed(self, feed_id: int) -> Feed:
        with unit_of_work(self.factory) as session:
            found = session.get(Feed, feed_id)
            assert found is not None
            session.expunge(found)
            return found


@pytest.fixture
def world(factory: sessionmaker[Session]) -> World:
    with unit_of_work(factory) as session:
        a, b = (
            accounts.create_organisation(
                session=session, actor="test", name=name, kind=OrganisationKind.bank
            ).id
            for name in ("Turan Bank", "Altyn Telecom")
        )
        root = store.create_api_root(session=session, slug="kz-cert", title="KZ-CERT")
        collection = store.create_collection(
            session=session, actor="test", api_root=root, owner_id=a, title="Feeds"
        )
        return World(factory, a, b, collection.id)


def test_a_list_feed_fills_its_collection_and_a_second_poll_stores_nothing_new(
    world: World,
) -> None:
    feed_id = world.add("block list", "csv", str(DATA / "lists" / "blocklist.txt"))
    first = subscriptions.poll(world.factory, feed_id, now=lambda: NOW)
    assert first.error is None and first.objects > 0
    stored = world.stored()
    assert stored == first.objects  # the feed's identity and its indicators
    next_day = NOW + timedelta(days=1)
    again = subscriptions.poll(world.factory, feed_id, now=lambda: next_day)
    assert again.error is None and again.objects == 0 and world.stored() == stored
    feed = world.feed(feed_id)
    assert feed.last_success_at == next_day and feed.last_error is None
    assert feed.next_poll_at == next_day + timedelta(minutes=60)
    assert feed.objects_total == first.objects
    # Past half their 30 days, the values the list still names are written again: a new
    # version each, with a later valid_until and the first created (versions share it).
    later = NOW + timedelta(days=16)
    refreshed = subscriptions.poll(world.factory, feed_id, now=lambda: later)
    assert refreshed.objects == first.objects - 1  # every indicator; the identity has no expiry
    with unit_of_work(world.factory) as session:
        rows = session.scalars(
            select(StixObject).where(StixObject.type == "indicator").order_by(StixObject.id)
        ).all()
    by_id: dict[str, list[StixObject]] = {}
    for row in rows:
        by_id.setdefault(row.stix_id, []).append(row)
    assert {len(versions) for versions in by_id.values()} == {2}
    for old, new in by_id.values():
        assert new.valid_until > old.valid_until and new.version_at > old.version_at
        assert orjson.loads(new.body)["created"] == orjson.loads(old.body)["created"]
    with unit_of_work(world.factory) as session:
        actions = session.scalars(select(AuditEntry.action)).all()
    assert actions.count("intel.feed_poll") == 3 and "intel.feed_create" in actions


def test_a_misp_feed_remembers_what_it_read(world: World) -> None:
    feed_id = world.add("misp", "misp", str(DATA / "misp"), confidence=80, tlp=Tlp.green)
    first = subscriptions.poll(world.factory, feed_id, now=lambda: NOW)
    assert first.objects > 0
    state = world.feed(feed_id).state
    assert set(state["seen"]) and all(isinstance(t, int) for t in state["seen"].values())
    again = subscriptions.poll(world.factory, feed_id, now=lambda: NOW)
    assert again.objects == 0  # no event changed: none is read again


def test_a_taxii_feed_resumes_where_a_killed_poll_stopped(world: World, medallion: str) -> None:
    feed_id = world.add(
        "partner",
        "taxii",
        f"{medallion}/{ROOT}/",
        remote_collection=COLLECTION,
        credential_env="PARTNER_TAXII",
    )
    environ = {"PARTNER_TAXII": f"{USER}:{PASSWORD}"}
    # Two pages, then the process "dies": what was kept is stored with its cursor.
    partial = subscriptions.poll(world.factory, feed_id, environ=environ, max_pages=2)
    assert partial.objects == 2 * PAGE and world.stored() == 2 * PAGE
    assert world.feed(feed_id).state["cursor"]["added_after"]
    rest = subscriptions.poll(world.factory, feed_id, environ=environ)
    assert partial.objects + rest.objects == COUNT
    assert world.stored() == COUNT  # nothing lost at the page ends, nothing twice
    with unit_of_work(world.factory) as session:
        ids = session.scalars(
            select(StixObject.stix_id).where(StixObject.collection_id == world.collection)
        ).all()
    assert len(set(ids)) == COUNT
    assert subscriptions.poll(world.factory, feed_id, environ=environ).objects == 0


def test_a_failed_poll_keeps_its_state_and_says_why(world: World, medallion: str) -> None:
    feed_id = world.add(
        "partner",
        "taxii",
        f"{medallion}/{ROOT}/",
        remote_collection=COLLECTION,
        credential_env="PARTNER_TAXII",
    )
    ok = {"PARTNER_TAXII": f"{USER}:{PASSWORD}"}
    subscriptions.poll(world.factory, feed_id, environ=ok, max_pages=1)
    cursor = world.feed(feed_id).state
    missing = subscriptions.poll(world.factory, feed_id, environ={}, now=lambda: NOW)
    assert missing.error == "the environment variable PARTNER_TAXII is not set"
    wrong = subscriptions.poll(
        world.factory, feed_id, environ={"PARTNER_TAXII": "x:nope"}, now=lambda: NOW
    )
    assert wrong.error and PASSWORD not in wrong.error and "nope" not in wrong.error
    feed = world.feed(feed_id)
    assert feed.state == cursor and feed.last_error == wrong.error
    # Due again only after its interval, not in a loop of failures.
    with unit_of_work(world.factory) as session:
        assert feed_id not in subscriptions.due_feeds(session=session, now=NOW)
        later = NOW + timedelta(minutes=60)
        assert feed_id in subscriptions.due_feeds(session=session, now=later)
    resumed = subscriptions.poll(world.factory, feed_id, environ=ok)
    assert world.stored() == COUNT and resumed.error is None


def test_feeds_are_refused_when_they_could_not_work_or_would_read_the_server(
    world: World,
) -> None:
    with unit_of_work(world.factory) as session:
        collection = session.get(Collection, world.collection)
        assert collection is not None

        def add(**changes: object) -> None:
            arguments: dict[str, object] = {
                "session": session,
                "actor": "test",
                "organisation_id": world.organisation,
                "collection": collection,
                "name": "list",
                "kind": "csv",
                "url": "https://feeds.example.kz/block.txt",
            } | changes
            subscriptions.add_feed(**arguments)  # type: ignore[arg-type]

        add()  # the neighbour that works
        with pytest.raises(SubscriptionError, match="http"):
            add(name="local", url="/etc/shadow")  # a form must never read the server's files
        with pytest.raises(SubscriptionError, match="own organisation"):
            add(name="theirs", organisation_id=world.other)
        with pytest.raises(SubscriptionError, match="already"):
            add()
        with pytest.raises(SubscriptionError, match="name"):
            add(name="bad\x00name")
        with pytest.raises(SubscriptionError, match="environment variable"):
            add(name="secret", credential_env="token=abc")
        with pytest.raises(SubscriptionError, match="not usable"):
            add(name="taxii", kind="taxii")  # no remote collection
        with pytest.raises(SubscriptionError, match="not usable"):
            add(name="trust", confidence=101)


QORGAN = [sys.executable, "-c", "from qorgan.cli import app; app()"]


def test_the_operator_sets_up_exchange_and_polls_from_the_command_line(tmp_path: Path) -> None:
    db = tmp_path / "qorgan.db"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "QORGAN_DATABASE_URL": f"sqlite:///{db}",
    }

    def qorgan(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*QORGAN, *args], capture_output=True, text=True, env=env, check=False, timeout=120
        )

    assert qorgan("db", "upgrade").returncode == 0
    organisation = qorgan("org", "create", "Turan Bank", "--kind", "bank").stdout.split()[-1]
    partner = qorgan("org", "create", "Altyn Telecom", "--kind", "bank").stdout.split()[-1]
    assert qorgan("intel", "root-add", "kz-cert", "KZ-CERT").returncode == 0
    for org in (organisation, partner):
        assert qorgan("intel", "member-add", "kz-cert", org).returncode == 0
    made = qorgan("intel", "collection-add", "kz-cert", "Indicators", "-o", organisation)
    assert made.returncode == 0, made.stderr
    taxii_id = made.stdout.strip()
    assert qorgan("intel", "grant", taxii_id, partner, "--write").returncode == 0
    added = qorgan(
        "intel", "feed-add", "block list", "-o", organisation, "--collection", taxii_id,
        "--kind", "csv", "--url", str(DATA / "lists" / "blocklist.txt"),
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    polled = qorgan("intel", "poll")
    assert polled.returncode == 0, polled.stderr
    assert polled.stdout.startswith("block list: ") and ", ok" in polled.stdout
    listed = qorgan("intel", "feeds", "-o", organisation)
    assert "block list\tcsv\t" in listed.stdout and "\tok\t" in listed.stdout
    # Nothing is due now: a second cron run polls nothing.
    assert qorgan("intel", "poll").stdout == ""
    # Mistakes are clear errors, not tracebacks.
    for wrong in (
        ("intel", "grant", taxii_id, organisation),  # the owner's rights are not granted
        ("intel", "collection-add", "nowhere", "X", "-o", organisation),
        ("intel", "poll", "nothing", "-o", organisation),
        ("intel", "collection-add", "kz-cert", "X", "-o", organisation, "--tlp", "purple"),
        ("intel", "collection-add", "kz-cert", "X", "-o", organisation, "--policy", "lax"),
    ):
        failed = qorgan(*wrong)
        assert failed.returncode == 2 and failed.stderr.startswith("error: "), wrong
        assert "Traceback" not in failed.stderr
