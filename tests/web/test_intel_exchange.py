"""The glue between incidents and intel (qorgan.web.intel_exchange), on both databases:
what a share sends is what was previewed, personal data does not survive the GREEN policy,
another organisation's incident or a read-only collection is refused, and a partner's
sighting of a published indicator is found for the originating incident."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from sqlalchemy import select

from qorgan.core.db import unit_of_work
from qorgan.core.models import AuditEntry, Organisation
from qorgan.core.tlp import Tlp
from qorgan.incidents.models import Incident
from qorgan.intel import sightings, store
from qorgan.intel.taxii import Forbidden, NotFound, ObjectFilter
from qorgan.web import intel_exchange as exchange

from .conftest import World
from .intel_setup import EMAIL, IIN, PERSON, PHONE, Exchange, setup_exchange


@pytest.fixture
def ex(world: World) -> Exchange:
    return setup_exchange(world)


def _share(world: World, ex: Exchange, send: bool, who: str = "b.analyst") -> exchange.Prepared:
    person = world[who]
    with unit_of_work(world.factory) as session:
        return exchange.share_incident(
            session=session, organisation_id=person.organisation_id, actor=str(person.id),
            incident_id=ex.incident, taxii_id=ex.shared, send=send,
        )  # fmt: skip


def test_what_is_stored_is_what_was_previewed(world: World, ex: Exchange) -> None:
    preview = _share(world, ex, send=False)
    sent = _share(world, ex, send=True)
    assert sent == preview
    b = world["b.analyst"].organisation_id
    with unit_of_work(world.factory) as session:
        access = exchange.access_to(session=session, organisation_id=b, taxii_id=ex.shared)
        page = store.read_objects(
            session=session, access=access, reader=b, actor="test", query=ObjectFilter()
        )
    stored = {orjson.loads(r.body)["id"]: orjson.loads(r.body) for r in page.rows}
    for obj in preview.objects:
        assert stored[obj["id"]] == obj
    kinds = {o["type"] for o in preview.objects}
    assert {"identity", "incident", "observed-data", "indicator"} <= kinds
    # One indicator per shareable observable; the e-mail address is withheld whole, the
    # account never leaves.
    assert len(preview.indicators) == 3
    assert {value for _, value in preview.withheld} == {EMAIL}


def test_personal_data_does_not_survive_a_green_share(world: World, ex: Exchange) -> None:
    preview = _share(world, ex, send=False)
    text = orjson.dumps(list(preview.objects)).decode()
    for secret in (IIN, PHONE, EMAIL, PERSON, "Асель", "Нурланова", "Organisation B", "asel.n"):
        assert secret not in text
    assert {m.mark.kind.value for _, m in preview.marks} >= {"iin", "phone", "email", "victim"}
    incident = next(o for o in preview.objects if o["type"] == "incident")
    assert "evil-c2.example" in incident["description"]


def test_another_organisations_incident_cannot_be_shared(world: World, ex: Exchange) -> None:
    with pytest.raises(NotFound):
        _share(world, ex, send=False, who="a.analyst")


def test_a_read_only_collection_cannot_be_written(world: World, ex: Exchange) -> None:
    a = world["a.partner"]
    with unit_of_work(world.factory) as session, pytest.raises(Forbidden):
        exchange.report_sighting(
            session=session, organisation_id=a.organisation_id, actor=str(a.id),
            source=ex.shared, stix_id=ex.green, target=ex.private,
            first_seen=datetime(2026, 11, 21, tzinfo=UTC),
            last_seen=datetime(2026, 11, 22, tzinfo=UTC), count=2, tlp=Tlp.green,
        )  # fmt: skip


def test_an_unknown_redaction_policy_is_refused(world: World, ex: Exchange) -> None:
    with unit_of_work(world.factory) as session:
        org = session.get(Organisation, world["b.analyst"].organisation_id)
        assert org is not None
        with pytest.raises(exchange.ExchangeError):
            exchange.redaction_policy("lenient", org)


def test_a_partners_sighting_shows_on_the_originating_incident(world: World, ex: Exchange) -> None:
    sent = _share(world, ex, send=True)
    a = world["a.partner"]
    indicator = sent.indicators[0]
    with unit_of_work(world.factory) as session:
        exchange.report_sighting(
            session=session, organisation_id=a.organisation_id, actor=str(a.id),
            source=ex.shared, stix_id=indicator, target=ex.shared,
            first_seen=datetime(2026, 11, 21, tzinfo=UTC),
            last_seen=datetime(2026, 11, 22, tzinfo=UTC), count=4, tlp=Tlp.green,
        )  # fmt: skip
        # A sighting of another indicator that merely mentions this one is not this one's.
        other = sightings.sighting(
            ex.green, sighted_by=exchange.identity_id(a.organisation_id), about="other",
            first_seen=datetime(2026, 11, 21, tzinfo=UTC),
            last_seen=datetime(2026, 11, 21, tzinfo=UTC), created=datetime.now(UTC),
            tlp=Tlp.green, description=f'"sighting_of_ref":"{indicator}"',
        )  # fmt: skip
        store.add_objects(
            [other], session=session, actor="t", sender_id=a.organisation_id,
            collection=exchange.access_to(
                session=session, organisation_id=a.organisation_id, taxii_id=ex.shared
            ).collection,
        )  # fmt: skip
    b = world["b.analyst"]
    with unit_of_work(world.factory) as session:
        incident = session.get(Incident, ex.incident)
        assert incident is not None
        seen = exchange.incident_sightings(
            session=session, incident=incident, reader=b.organisation_id, actor=str(b.id)
        )
    assert [(v.sighted_by, v.sighting.count, v.sighting.sighting_of_ref) for v in seen] == [
        ("Organisation A", 4, indicator)
    ]
    with unit_of_work(world.factory) as session:
        actions = {
            (action, organisation)
            for action, organisation in session.execute(
                select(AuditEntry.action, AuditEntry.organisation_id)
            )
        }
    assert ("intel.incident_share", b.organisation_id) in actions
    assert ("intel.sighting_report", a.organisation_id) in actions


def test_an_unreadable_object_cannot_be_sighted(world: World, ex: Exchange) -> None:
    a = world["a.partner"]
    with unit_of_work(world.factory) as session, pytest.raises(NotFound):
        exchange.report_sighting(
            session=session, organisation_id=a.organisation_id, actor=str(a.id),
            source=ex.shared, stix_id=ex.strict, target=ex.shared,
            first_seen=datetime(2026, 11, 21, tzinfo=UTC),
            last_seen=datetime(2026, 11, 22, tzinfo=UTC), count=1, tlp=Tlp.green,
        )  # fmt: skip
