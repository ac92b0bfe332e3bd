"""The intel store on SQLite and PostgreSQL: objects stored as received and read back with the
TAXII filters, bad objects refused with a reason, versions, pagination, deletion rights, the
audit trail of what was served, active indicators with decaying confidence, and the TLP rule
applied in the query agreeing exactly with :func:`qorgan.intel.markings.may_receive` for every
level and every pair of organisations."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import accounts
from qorgan.core.db import unit_of_work
from qorgan.core.models import AuditEntry, OrganisationKind
from qorgan.core.tlp import Tlp
from qorgan.intel import store
from qorgan.intel.markings import Audience, filter_for, mark
from qorgan.intel.models import Collection, StixObject
from qorgan.intel.taxii import BadRequest, Forbidden, NotFound, ObjectFilter

T0 = "2026-01-01T00:00:00.000Z"


def indicator(n: int, *, modified: str = T0, level: Tlp | None = None, **extra: Any) -> dict:
    obj: dict[str, Any] = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.UUID(int=n)}",
        "created": T0,
        "modified": modified,
        "pattern": f"[ipv4-addr:value = '198.51.100.{n % 250}']",
        "pattern_type": "stix",
        "valid_from": T0,
        **extra,
    }
    return mark(obj, level) if level is not None else obj


@dataclass
class Intel:
    factory: sessionmaker[Session]
    orgs: dict[str, int]
    collection_id: int

    def collection(self, session: Session) -> Collection:
        found = session.get(Collection, self.collection_id)
        assert found is not None
        return found

    def add(self, objects: list[Any], sender: str = "a") -> Any:
        with unit_of_work(self.factory) as session:
            return store.add_objects(
                objects,
                session=session,
                collection=self.collection(session),
                sender_id=self.orgs[sender],
                actor="test",
            )

    def read(self, reader: str = "a", query: ObjectFilter | None = None) -> store.Page:
        with unit_of_work(self.factory) as session:
            return store.read_objects(
                session=session,
                access=store.Access(self.collection(session), True, True),
                reader=self.orgs[reader],
                actor="test",
                query=query or ObjectFilter(),
            )


ORGS = "abcde"


@pytest.fixture
def intel(factory: sessionmaker[Session]) -> Intel:
    """Five organisations and relations between them; one collection owned by A that all
    five read (B and C write too), under the constituency kz-cert (A, C, D members)."""
    with unit_of_work(factory) as session:
        orgs = {
            name: accounts.create_organisation(
                session=session, actor="test", name=f"Org {name}", kind=OrganisationKind.bank
            ).id
            for name in ORGS
        }
        root = store.create_api_root(session=session, slug="kz-cert", title="KZ-CERT")
        for name in "acd":
            store.add_member(session=session, api_root=root, organisation_id=orgs[name])
        store.add_client(session=session, organisation_id=orgs["a"], client_id=orgs["b"])
        store.add_client(session=session, organisation_id=orgs["c"], client_id=orgs["e"])
        store.add_client(session=session, organisation_id=orgs["b"], client_id=orgs["a"])
        store.name_red_recipient(session=session, sender_id=orgs["a"], recipient_id=orgs["d"])
        store.name_red_recipient(session=session, sender_id=orgs["d"], recipient_id=orgs["e"])
        store.name_red_recipient(session=session, sender_id=orgs["b"], recipient_id=orgs["c"])
        collection = store.create_collection(
            session=session, actor="test", api_root=root, owner_id=orgs["a"], title="Shared"
        )
        for name in "bcde":
            store.grant(
                session=session,
                collection=collection,
                organisation_id=orgs[name],
                can_read=True,
                can_write=name in "bc",
            )
        return Intel(factory, orgs, collection.id)


def test_objects_round_trip_as_received(intel: Intel) -> None:
    sent = [
        indicator(1, level=Tlp.green, x_custom={"nested": [1, "ü", None]}),
        {"type": "ipv4-addr", "id": f"ipv4-addr--{uuid.UUID(int=7)}", "value": "203.0.113.9"},
        {
            "type": "malware",
            "spec_version": "2.1",
            "id": f"malware--{uuid.UUID(int=8)}",
            "created": T0,
            "modified": "2026-02-01T10:00:00.123456789Z",
            "name": "Loader",
            "is_family": True,
            "extensions": {"extension-definition--00000000-0000-4000-8000-000000000001": {}},
        },
    ]
    status = intel.add(sent)
    assert (status.success_count, status.failure_count, status.total_count) == (3, 0, 3)
    page = intel.read()
    assert [orjson.loads(r.body) for r in page.rows] == sent
    assert page.rows[2].version == "2026-02-01T10:00:00.123456789Z"
    dates = [r.date_added for r in page.rows]
    assert dates == sorted(dates) and len(set(dates)) == 3
    # the SCO's version is its date added
    assert status.successes[1]["version"].endswith("Z")


def test_invalid_objects_are_failures_with_reasons(intel: Intel) -> None:
    good = indicator(1)
    bad = [
        "not an object",
        {**indicator(2), "id": "indicator--not-a-uuid"},
        {**indicator(3), "id": f"malware--{uuid.UUID(int=3)}"},
        {**indicator(4), "spec_version": "2.0"},
        {**indicator(5), "modified": "yesterday"},
        {**indicator(6), "confidence": 101},
        {**indicator(7), "name": "nul\x00byte"},
        {**indicator(8), "name": "lone \ud800 surrogate"},
        {**indicator(9), "object_marking_refs": "not a list"},
        {**indicator(10), "description": "x" * (store.MAX_OBJECT_BYTES + 1)},
        {**indicator(11), "created": None, "modified": None},
    ]
    status = intel.add([good, *bad])
    assert status.success_count == 1
    assert status.failure_count == len(bad)
    messages = [f["message"] for f in status.failures]
    assert "id must be" in messages[1] and "id must be" in messages[2]
    assert "spec_version" in messages[3] and "modified" in messages[4]
    assert "confidence" in messages[5] and "NUL" in messages[6] and "Unicode" in messages[7]
    assert "KiB" in messages[9] and "created" in messages[10]
    assert all(len(m) < 200 for m in messages)  # never the input at length
    assert [orjson.loads(r.body) for r in intel.read().rows] == [good]


def test_same_version_twice_is_one_row_and_two_successes(intel: Intel) -> None:
    first = intel.add([indicator(1)])
    # the same instant written differently is the same version
    again = intel.add([indicator(1), indicator(1, modified="2026-01-01T00:00:00Z")])
    assert first.success_count == 1 and again.success_count == 2 and again.failure_count == 0
    with intel.factory() as session:
        assert session.scalar(select(func.count()).select_from(StixObject)) == 1


def test_versions_filters_and_pagination(intel: Intel) -> None:
    versions = ["2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z", "2026-01-03T00:00:00Z"]
    intel.add([indicator(1, modified=v) for v in versions])
    intel.add([indicator(n) for n in range(2, 12)])
    intel.add([{"type": "ipv4-addr", "id": f"ipv4-addr--{uuid.UUID(int=99)}", "value": "x"}])

    def ids(query: ObjectFilter) -> list[tuple[str, str]]:
        return [(r.stix_id, r.version) for r in intel.read(query=query).rows]

    one = f"indicator--{uuid.UUID(int=1)}"
    assert ids(ObjectFilter(ids=(one,))) == [(one, versions[2])]
    assert ids(ObjectFilter(ids=(one,), versions=("first",))) == [(one, versions[0])]
    assert len(ids(ObjectFilter(ids=(one,), versions=("all",)))) == 3
    at = datetime(2026, 1, 2, tzinfo=UTC)
    assert ids(ObjectFilter(ids=(one,), versions=(at, "first"))) == [
        (one, versions[0]),
        (one, versions[1]),
    ]
    assert len(ids(ObjectFilter(types=("ipv4-addr",)))) == 1
    assert len(ids(ObjectFilter(types=("indicator",)))) == 11
    assert ids(ObjectFilter(spec_versions=("2.0",))) == []
    # pages of 4 follow date_added, without gaps or repeats
    seen: list[tuple[str, str]] = []
    after = None
    while True:
        page = intel.read(query=ObjectFilter(after=after, limit=4))
        seen += [(r.stix_id, r.version) for r in page.rows]
        after = page.last_added
        if not page.more:
            break
    assert seen == ids(ObjectFilter()) and len(seen) == 12
    everything = intel.read(query=ObjectFilter(versions=("all",))).rows
    middle = everything[5].date_added
    assert [r.stix_id for r in intel.read(query=ObjectFilter(added_after=middle)).rows] == [
        r.stix_id for r in everything[6:]
    ]


def test_every_page_served_is_one_audit_entry(intel: Intel) -> None:
    intel.add([indicator(n) for n in range(1, 6)])
    with intel.factory() as session:
        before = session.scalar(select(func.count()).select_from(AuditEntry))
    intel.read(reader="b", query=ObjectFilter(limit=3))
    with intel.factory() as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).all()
        assert len(entries) == before + 1
        latest = entries[0]
        assert latest.action == "intel.objects_serve"
        assert latest.organisation_id == intel.orgs["b"]
        assert [e[0] for e in latest.details["objects"]] == [
            f"indicator--{uuid.UUID(int=n)}" for n in range(1, 4)
        ]


def test_deletion_by_sender_or_managing_owner_only(intel: Intel) -> None:
    intel.add([indicator(1, level=Tlp.clear)], sender="b")
    intel.add([indicator(1, modified="2026-01-05T00:00:00Z", level=Tlp.clear)], sender="c")
    one = f"indicator--{uuid.UUID(int=1)}"
    everything = ObjectFilter(versions=("all",))

    def delete(who: str, *, manage: bool = False, can_write: bool = True) -> int:
        with unit_of_work(intel.factory) as session:
            access = store.Access(intel.collection(session), True, can_write)
            return store.delete_object(
                session=session, access=access, reader=intel.orgs[who], actor="t",
                stix_id=one, query=everything, manage=manage,
            )  # fmt: skip

    with pytest.raises(Forbidden):
        delete("d")  # sees them, sent neither
    with pytest.raises(Forbidden):
        delete("b", can_write=False)
    with pytest.raises(Forbidden):
        delete("a")  # the owner, but without intel:manage
    assert delete("b") == 1  # its own version only
    assert delete("a", manage=True) == 1
    with pytest.raises(NotFound):
        delete("a", manage=True)


def test_statuses_belong_to_their_writer(intel: Intel) -> None:
    status = intel.add([indicator(1), {"type": "bad"}], sender="b")
    with intel.factory() as session:
        found = store.read_status(
            session=session, status_id=status.id, organisation_id=intel.orgs["b"]
        )
        assert (found.success_count, found.failure_count) == (1, 1)
        with pytest.raises(NotFound):
            store.read_status(session=session, status_id=status.id, organisation_id=intel.orgs["a"])


def test_collections_are_invisible_without_a_grant(intel: Intel) -> None:
    with unit_of_work(intel.factory) as session:
        outsider = accounts.create_organisation(
            session=session, actor="t", name="Org f", kind=OrganisationKind.bank
        ).id
        root = store.api_root_for(session=session, slug="kz-cert", organisation_id=intel.orgs["e"])
        taxii_id = intel.collection(session).taxii_id
        with pytest.raises(NotFound):
            store.api_root_for(session=session, slug="kz-cert", organisation_id=outsider)
        with pytest.raises(NotFound):
            store.find_collection(
                session=session, api_root=root, taxii_id=taxii_id, organisation_id=outsider
            )
        assert store.collections_for(session=session, api_root=root, organisation_id=outsider) == []
        access = store.find_collection(
            session=session, api_root=root, taxii_id=taxii_id, organisation_id=intel.orgs["d"]
        )
        assert (access.can_read, access.can_write) == (True, False)
        with pytest.raises(BadRequest):
            store.create_api_root(session=session, slug="Bad Slug!", title="x")


def test_active_indicators_and_decay(intel: Intel) -> None:
    now = datetime(2026, 7, 2, 12, tzinfo=UTC)
    intel.add(
        [
            indicator(1, confidence=80),
            indicator(2, confidence=80, valid_until="2026-03-01T00:00:00Z"),  # expired
            indicator(3, revoked=True),
            indicator(4, confidence=90),
            indicator(4, modified="2026-07-02T12:00:00Z", confidence=90, revoked=True),
            indicator(5),
        ]
    )
    with intel.factory() as session:
        active = list(
            store.active_indicators(session=session, organisation_id=intel.orgs["a"], now=now)
        )
    assert [a.stix_id[-1] for a in active] == ["1", "5"]
    age = (now - datetime(2026, 1, 1, tzinfo=UTC)) / store.DECAY_PERIOD
    assert active[0].confidence == round(80 * (1 - age)) and active[1].confidence is None
    modified = datetime(2026, 1, 1, tzinfo=UTC)
    decay = store.decayed_confidence
    assert decay(60, modified=modified, now=modified) == 60
    assert decay(60, modified=modified, now=modified - timedelta(days=1)) == 60
    assert decay(60, modified=modified, now=modified + store.DECAY_PERIOD / 2) == 30
    assert decay(60, modified=modified, now=modified + store.DECAY_PERIOD * 2) == 0


# --- TLP: every level, every pair of organisations ------------------------------------------

#: The relations the fixture sets up, from the sender's side, named so the table says which
#: relation each pair exercises (a pair may have none: an outsider).
RELATIONS = {
    "client": {("a", "b"), ("c", "e"), ("b", "a")},
    "named": {("a", "d"), ("d", "e"), ("b", "c")},
    "community": {(s, r) for s in ORGS for r in "acd"},
}


def test_tlp_in_the_query_agrees_with_may_receive_for_every_pair(intel: Intel) -> None:
    """Each organisation sends one object per TLP level and one unmarked (the collection's
    AMBER); each reads the collection. What each receives must be exactly what
    :func:`filter_for` allows, built from the same relations."""
    objects_by_sender: dict[str, list[dict[str, Any]]] = {}
    n = 0
    for sender in ORGS:
        objects_by_sender[sender] = []
        for level in [*Tlp, None]:
            n += 1
            objects_by_sender[sender].append(indicator(n, level=level))
        intel.add(objects_by_sender[sender], sender=sender)
    sender_of = {o["id"]: s for s, objs in objects_by_sender.items() for o in objs}
    ids = {name: str(number) for name, number in intel.orgs.items()}

    def audience(sender: str) -> Audience:
        return Audience.of(
            named=[ids[r] for s, r in RELATIONS["named"] if s == sender],
            clients={ids[sender]: [ids[r] for s, r in RELATIONS["client"] if s == sender]},
            community=[ids[r] for r in "acd"],
        )

    everything = [o for objs in objects_by_sender.values() for o in objs]
    covered: set[tuple[str, str]] = set()
    for reader in ORGS:
        expected = filter_for(
            everything,
            ids[reader],
            lambda sender_id: audience(next(k for k, v in ids.items() if v == sender_id)),
            lambda obj: ids[sender_of[obj["id"]]],
            default=Tlp.amber,
        )
        received = [orjson.loads(r.body) for r in intel.read(reader=reader).rows]
        assert received == expected, reader
        for sender in ORGS:
            kinds = {k for k, pairs in RELATIONS.items() if (sender, reader) in pairs}
            covered.add(("same" if sender == reader else "+".join(sorted(kinds)) or "outsider",
                         reader))  # fmt: skip
    relations = {relation for relation, _ in covered}
    # every relation the rule distinguishes occurs for some pair
    assert {"same", "outsider", "client+community", "named", "community"} <= relations
    assert any("client" in r for r in relations) and any("named" in r for r in relations)
    # and the query is not vacuous: some pair receives each level and some pair does not
    for level in Tlp:
        marked = [o for o in everything if mark(o, level) == o]
        assert marked


def test_tlp_and_pap_are_stored_as_their_ranks(intel: Intel) -> None:
    """Tlp.red == Pap.red == "red" as strings: the ranks must not be mixed up."""
    from qorgan.core.tlp import Pap
    from qorgan.intel.markings import mark_pap

    intel.add(
        [
            mark_pap(indicator(1, level=Tlp.red), Pap.red),
            mark_pap(indicator(2, level=Tlp.clear), Pap.green),
            indicator(3),
        ]
    )
    with intel.factory() as session:
        ranks = session.execute(select(StixObject.tlp, StixObject.pap).order_by(StixObject.id))
        assert ranks.all() == [(4, 3), (0, 1), (Tlp.amber.rank, None)]
