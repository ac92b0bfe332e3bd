"""The intel pages on both databases: who may open them, TLP on the list and on an object's
page (another organisation's AMBER+STRICT object is absent and its page answers 404), the
redaction preview equals what the confirm stores, personal data does not leave under GREEN, a
partner's sighting appears on the originating incident, forms need the CSRF token, and
another organisation's incident cannot be shared."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import orjson
import pytest
from fastapi.testclient import TestClient

from qorgan.core.db import unit_of_work
from qorgan.core.models import Role
from qorgan.core.tlp import Tlp
from qorgan.intel import store
from qorgan.intel.patterns import Observable, indicator
from qorgan.intel.taxii import ObjectFilter
from qorgan.web import intel_exchange as exchange
from qorgan.web.intel_exchange import identity_id

from .conftest import World, csrf_of, sign_in
from .intel_setup import EMAIL, IIN, PERSON, PHONE, Exchange, setup_exchange
from .test_citizen_portal import _staff


@pytest.fixture
def ex(world: World) -> Exchange:
    return setup_exchange(world)


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("a.partner", 200),
        ("a.analyst", 200),
        ("a.auditor", 200),
        ("a.coordinator", 200),
        ("a.admin", 200),
    ],
)
def test_the_intel_page_for_each_role(
    client: TestClient, world: World, ex: Exchange, who: str, status: int
) -> None:
    sign_in(client, world[who])
    page = client.get("/intel")
    assert page.status_code == status
    assert "B to the community" in page.text and "B read-only" in page.text


def test_signed_out_visitors_are_sent_to_sign_in(client: TestClient, ex: Exchange) -> None:
    response = client.get("/intel", follow_redirects=False)
    assert response.status_code in (302, 303, 307) and "/login" in response.headers["location"]


def test_a_partner_starts_on_the_intel_page(client: TestClient, world: World) -> None:
    sign_in(client, world["a.partner"])
    response = client.get("/", follow_redirects=False)
    assert response.headers["location"] == "/intel"
    assert client.get("/incidents").status_code == 403  # a partner has no incidents


def test_tlp_on_the_list_and_the_object_page(
    client: TestClient, world: World, ex: Exchange
) -> None:
    sign_in(client, world["a.partner"])
    listing = client.get(f"/intel/collections/{ex.shared}")
    assert listing.status_code == 200
    assert ex.green in listing.text and "green-shared.example" in listing.text
    assert ex.strict not in listing.text and "strict-secret" not in listing.text
    assert client.get(f"/intel/objects/{ex.green}?collection={ex.shared}").status_code == 200
    hidden = client.get(f"/intel/objects/{ex.strict}?collection={ex.shared}")
    assert hidden.status_code == 404 and "strict-secret" not in hidden.text
    # The owner sees its own AMBER+STRICT object.
    client.cookies.clear()
    sign_in(client, world["b.analyst"])
    assert ex.strict in client.get(f"/intel/collections/{ex.shared}").text
    overview = client.get("/intel").text
    assert "TLP:GREEN" in overview


def test_a_collection_of_no_grant_answers_404(
    client: TestClient, world: World, ex: Exchange
) -> None:
    b = world["b.analyst"].organisation_id
    with unit_of_work(world.factory) as session:
        root = store.api_root_for(session=session, slug="kz-cert", organisation_id=b)
        own = store.create_collection(
            session=session, actor="t", api_root=root, owner_id=b, title="B alone"
        ).taxii_id
    sign_in(client, world["a.partner"])
    assert client.get(f"/intel/collections/{own}").status_code == 404
    assert "B alone" not in client.get("/intel").text


def _preview(client: TestClient, ex: Exchange) -> str:
    page = client.get(f"/incidents/{ex.incident}/share?collection={ex.shared}")
    assert page.status_code == 200, page.text
    return page.text


def test_the_preview_is_what_is_stored(client: TestClient, world: World, ex: Exchange) -> None:
    csrf = sign_in(client, world["b.analyst"])
    incident = client.get(f"/incidents/{ex.incident}").text
    assert "Share with the constituency" in incident and ex.shared in incident
    page = _preview(client, ex)
    for secret in (IIN, PHONE, PERSON):
        assert secret not in page
    assert 'data-kind="iin"' in page and 'data-kind="phone"' in page
    assert 'data-kind="person_name"' in page and EMAIL in page  # the withheld observable
    b = world["b.analyst"]
    with unit_of_work(world.factory) as session:
        preview = exchange.share_incident(
            session=session, organisation_id=b.organisation_id, actor="t",
            incident_id=ex.incident, taxii_id=ex.shared, send=False,
        )  # fmt: skip
    for obj in preview.objects:
        assert obj["id"] in page
    refused = client.post(f"/incidents/{ex.incident}/share", data={"collection": ex.shared})
    assert refused.status_code == 403
    done = client.post(
        f"/incidents/{ex.incident}/share",
        data={"collection": ex.shared, "csrf_token": csrf},
        follow_redirects=False,
    )
    assert done.status_code == 303
    with unit_of_work(world.factory) as session:
        access = exchange.access_to(
            session=session, organisation_id=b.organisation_id, taxii_id=ex.shared
        )
        rows = store.read_objects(
            session=session, access=access, reader=b.organisation_id, actor="t",
            query=ObjectFilter(),
        ).rows  # fmt: skip
    stored = {orjson.loads(r.body)["id"]: orjson.loads(r.body) for r in rows}
    assert [stored[o["id"]] for o in preview.objects] == list(preview.objects)
    text = orjson.dumps(list(stored.values())).decode()
    for secret in (IIN, PHONE, EMAIL, PERSON):
        assert secret not in text


def test_another_organisations_incident_cannot_be_shared(
    client: TestClient, world: World, ex: Exchange
) -> None:
    csrf = sign_in(client, world["a.analyst"])
    assert client.get(f"/incidents/{ex.incident}/share?collection={ex.shared}").status_code == 404
    posted = client.post(
        f"/incidents/{ex.incident}/share", data={"collection": ex.shared, "csrf_token": csrf}
    )
    assert posted.status_code == 404


def test_a_partner_cannot_share_incidents(client: TestClient, world: World, ex: Exchange) -> None:
    sign_in(client, world["a.partner"])
    assert client.get(f"/incidents/{ex.incident}/share?collection={ex.shared}").status_code == 403


def test_a_partners_sighting_appears_on_the_originating_incident(
    client: TestClient, world: World, ex: Exchange
) -> None:
    b = world["b.analyst"]
    with unit_of_work(world.factory) as session:
        sent = exchange.share_incident(
            session=session, organisation_id=b.organisation_id, actor="t",
            incident_id=ex.incident, taxii_id=ex.shared, send=True,
        )  # fmt: skip
    indicator = sent.indicators[0]
    csrf = sign_in(client, world["a.partner"])
    page = client.get(f"/intel/objects/{indicator}?collection={ex.shared}")
    assert page.status_code == 200 and "Report a sighting" in page.text
    # The producer is "a bank" to its readers (Chatham House), on the list and the object.
    listing = client.get(f"/intel/collections/{ex.shared}").text
    for shown in (page.text, listing):
        assert "Organisation B" not in shown and "a bank" in shown
    form = {
        "collection": ex.shared,
        "target": ex.shared,
        "first_seen": "2026-11-21T10:00",
        "last_seen": "2026-11-22T11:30",
        "count": "7",
        "tlp": "green",
    }
    assert client.post(f"/intel/objects/{indicator}/sightings", data=form).status_code == 403
    reported = client.post(
        f"/intel/objects/{indicator}/sightings", data={**form, "csrf_token": csrf}
    )
    assert reported.status_code == 200 and "Organisation A" in reported.text
    # Not into a collection A may only read, not of an object A may not receive.
    ro = client.post(
        f"/intel/objects/{indicator}/sightings",
        data={**form, "target": ex.private, "csrf_token": csrf},
    )
    assert ro.status_code == 403
    hidden = client.post(f"/intel/objects/{ex.strict}/sightings", data={**form, "csrf_token": csrf})
    assert hidden.status_code == 404
    client.cookies.clear()
    sign_in(client, world["b.analyst"])
    incident = client.get(f"/incidents/{ex.incident}").text
    assert "Sightings by partners" in incident
    # Times in the console's zone (Almaty, UTC+5), as typed into the form.
    assert "Organisation A saw it 7 times, 2026-11-21 10:00:00 to 2026-11-22 11:30:00" in incident


def test_an_auditor_reads_but_does_not_report(
    client: TestClient, world: World, ex: Exchange
) -> None:
    csrf = sign_in(client, world["a.auditor"])
    page = client.get(f"/intel/objects/{ex.green}?collection={ex.shared}")
    assert page.status_code == 200 and "Report a sighting" not in page.text
    posted = client.post(
        f"/intel/objects/{ex.green}/sightings",
        data={"collection": ex.shared, "target": ex.shared, "first_seen": "2026-11-21T10:00",
              "last_seen": "2026-11-21T10:00", "csrf_token": csrf},
    )  # fmt: skip
    assert posted.status_code == 403
    assert csrf_of(page.text)


def test_a_role_without_intel_is_refused(client: TestClient, world: World, ex: Exchange) -> None:
    with unit_of_work(world.factory) as session:
        dpo = _staff(session, world["a.admin"].organisation_id, "dpo@a.example.kz", Role.dpo)
    sign_in(client, dpo)
    for path in (
        "/intel",
        f"/intel/collections/{ex.shared}",
        f"/intel/objects/{ex.green}?collection={ex.shared}",
    ):
        assert client.get(path).status_code == 403, path
    assert "/intel" not in client.get("/account").text  # no link to it either


def test_the_intel_page_in_kazakh_and_russian(
    client: TestClient, world: World, ex: Exchange
) -> None:
    csrf = sign_in(client, world["a.partner"])
    for language, title in (("kk", "Қауіптер туралы барлау деректері"), ("ru", "Разведданные")):
        client.post("/language", data={"language": language, "next": "/intel", "csrf_token": csrf})
        page = client.get("/intel")
        assert page.status_code == 200 and title in page.text, language
        assert "B to the community" in page.text


def test_a_collection_is_paged_newest_first(client: TestClient, world: World, ex: Exchange) -> None:
    b = world["b.analyst"].organisation_id
    when = datetime(2026, 11, 20, tzinfo=UTC)
    with unit_of_work(world.factory) as session:
        access = exchange.access_to(session=session, organisation_id=b, taxii_id=ex.shared)
        made = [
            indicator(
                Observable.of("ipv4-addr", f"198.51.100.{i}"), created_by_ref=identity_id(b),
                confidence=50, valid_from=when, tlp=Tlp.green,
            )
            for i in range(60)
        ]  # fmt: skip
        for obj in made:  # one write each: each its own date added
            store.add_objects(
                [obj], session=session, collection=access.collection, sender_id=b, actor="t"
            )
    sign_in(client, world["a.partner"])
    first = client.get(f"/intel/collections/{ex.shared}?type=indicator").text
    ids = re.findall(r'<tr data-id="([^"]+)"', first)
    assert len(ids) == 50 and ids[0] == made[-1]["id"]  # the newest first
    older = re.search(r'href="\?type=indicator&amp;before=([^"]+)" id="older"', first)
    assert older is not None
    second = client.get(f"/intel/collections/{ex.shared}?type=indicator&before={older.group(1)}")
    rest = re.findall(r'<tr data-id="([^"]+)"', second.text)
    # 60 of this test and B's GREEN indicator of the setup; the AMBER+STRICT one is absent.
    assert len(rest) == 11 and not set(rest) & set(ids) and ex.strict not in rest
    assert 'id="older"' not in second.text and "Newest" in second.text


def test_an_indicator_shows_the_alerts_it_caused_in_the_readers_organisation_only(
    client: TestClient, world: World, ex: Exchange
) -> None:
    from qorgan.incidents.models import StoredAlert

    def alert(org: int, rule_id: str, n: int) -> StoredAlert:
        return StoredAlert(
            organisation_id=org, fingerprint=f"{org}-{rule_id}-{n}"[:64], rule_id=rule_id,
            rule_title=f"Indicator match {n}", level="high", host=f"host-{n}",
            body={"rule": {"id": rule_id}}, search_text="",
        )  # fmt: skip

    a, b = world["a.analyst"].organisation_id, world["b.analyst"].organisation_id
    with unit_of_work(world.factory) as session:
        session.add_all([alert(a, ex.green, n) for n in range(3)])
        session.add(alert(b, ex.green, 9))  # another organisation's: never counted for A
        session.add(alert(a, "indicator--00000000-0000-4000-8000-000000000000", 7))  # another
    sign_in(client, world["a.analyst"])
    page = client.get(f"/intel/objects/{ex.green}?collection={ex.shared}").text
    assert "Alerts it caused (3)" in page
    assert "host-0" in page and "host-2" in page and "host-9" not in page and "host-7" not in page
    # A partner holds no alerts:read: the section is not there at all.
    client.cookies.clear()
    sign_in(client, world["a.partner"])
    page = client.get(f"/intel/objects/{ex.green}?collection={ex.shared}").text
    assert "Alerts it caused" not in page


def test_the_intel_page_shows_the_organisations_feeds_and_their_health(
    client: TestClient, world: World, ex: Exchange
) -> None:
    from qorgan.intel import subscriptions
    from qorgan.intel.models import Collection, Feed

    a = world["a.analyst"].organisation_id
    sign_in(client, world["a.analyst"])
    assert "subscribes to no feed" in client.get("/intel").text
    with unit_of_work(world.factory) as session:
        root = store.api_root_for(session=session, slug="kz-cert", organisation_id=a)
        own = store.create_collection(
            session=session, actor="t", api_root=root, owner_id=a, title="A's feeds"
        )
        for name in ("misp-main", "blocklist"):
            subscriptions.add_feed(
                session=session, actor="t", organisation_id=a,
                collection=session.get(Collection, own.id),  # type: ignore[arg-type]
                name=name, kind="csv", url=f"https://feeds.example.kz/{name}.txt",
            )  # fmt: skip
        failing = session.query(Feed).filter_by(name="blocklist").one()
        failing.last_error = "the server answered 503 Service Unavailable"
    page = client.get("/intel").text
    assert 'data-feed="misp-main"' in page and "not polled yet" in page
    row = page[page.index('data-feed="blocklist"') :][:600]
    assert "feed-failing" in page and "503 Service Unavailable" in row
    # Another organisation's feeds are not listed.
    client.cookies.clear()
    sign_in(client, world["b.analyst"])
    assert "misp-main" not in client.get("/intel").text
