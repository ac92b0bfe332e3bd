"""The AI findings' pages: labelled and explained, decided by an analyst with a reason and a
CSRF token, invisible to another organisation, read-only for an auditor; the model register
and objections recorded on request."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from qorgan.core.db import unit_of_work
from qorgan.core.models import AuditEntry
from qorgan.detection.anomaly.findings import Finding, contributions
from qorgan.incidents import findings as service
from qorgan.incidents.finding_models import AnomalyExclusion, AnomalyFinding
from qorgan.incidents.models import StoredAlert
from qorgan.web.labels import (
    DETECTOR_LABELS,
    FEATURE_LABELS,
    FINDING_STATUS_LABELS,
    feature_label,
    short_path,
)

from .conftest import World, sign_in
from .test_citizen_portal import ARMAN, DANA, Portal, citizen_sign_in, make_portal


def finding(user: str = "aigerim", feature: str = "logon.new_source_ip") -> dict[str, Any]:
    return Finding(
        detector="entity.logon",
        model="entity-baseline",
        version="1.2.0",
        time="2026-11-20T03:00:00Z",
        source="/var/log/auth.log",
        entity={"user": user, "source_ip": "203.0.113.9"},
        score=7.5,
        threshold=5.0,
        confidence=0.85,
        contributions=contributions(
            [(feature, 3.0, "never", "203.0.113.9"), ("logon.unusual_hour", 1.0, "09-18", "03")]
        ),
        summary=f"{user} signed in from a never-seen address at 03:00",
        examples=(f"sshd[7]: Accepted password for {user} from 203.0.113.9 <script>x</script>",),
        pattern=f"logon.new_source_ip|user={user}",
        identifiers=(user,),
    ).to_dict()


def seed(world: World, org_key: str, *items: dict[str, Any]) -> tuple[int, ...]:
    with unit_of_work(world.factory) as session:
        result = service.save_findings(session, world[org_key].organisation_id, list(items))
    return result.ids


def test_labels_cover_the_vocabularies() -> None:
    from qorgan.incidents.finding_models import FINDING_STATUSES

    assert set(FINDING_STATUS_LABELS) == set(FINDING_STATUSES)
    assert feature_label("logon.new_source_ip") == FEATURE_LABELS["logon.new_source_ip"]
    assert feature_label("entity.logon") == DETECTOR_LABELS["entity.logon"]
    # An unknown feature is shown by its key.
    assert feature_label("E5->E22") == "E5->E22"


def test_features_named_by_kind_and_subject_name_the_kind_in_the_language() -> None:
    """A sequence's step, a line's word and one of several rare templates name their kind in
    the reader's language and keep their subject as the model gave it; a kind the console does
    not know, or a lookalike of a known one, is shown as it is."""
    from qorgan.detection.anomaly.sequences import SessionModel
    from qorgan.web.i18n import translations

    ru = translations("ru").gettext
    model = SessionModel.fit([["E5", "E7", "E22"]] * 20)
    kinds = {f.name.split(": ")[0] for f in model.features(["E5", "E9", "E22", "E22", "E22"])}
    assert kinds == {"sequence.transition", "sequence.unseen_token", "sequence.count"}
    for kind in kinds:
        assert ru(FEATURE_LABELS[kind]) != FEATURE_LABELS[kind]
    assert feature_label("sequence.transition: E5 E7 -> E22", ru) == "Шаг в сессии: E5 E7 -> E22"
    assert feature_label("sequence.unseen_token: E9", ru) == (
        "Событие, ни разу не встреченное при обучении: E9"
    )
    assert feature_label("template.rarity: GET /a?q=%20", ru) == (
        f"{ru('How rare the template is')}: GET /a?q=%20"
    )
    assert feature_label("word.passwd", ru) == "Слово passwd"
    assert feature_label("field.status", ru) == "Поле status"
    assert feature_label("word.others", ru) == ru("Other words of the line")
    for unknown in ("wordy.passwd", "word.", "sequence.other: x", "template.rarity:x"):
        assert feature_label(unknown, ru) == unknown


def test_the_list_shows_findings_as_ai_output_pending_first(
    client: TestClient, world: World
) -> None:
    first, second = seed(world, "a.analyst", finding(), finding("dana"))
    with unit_of_work(world.factory) as session:
        org = world["a.analyst"].organisation_id
        service.reject(session, first, world["a.analyst"].id, "VPN", organisation_id=org)
    sign_in(client, world["a.analyst"])
    page = client.get("/findings")
    assert page.status_code == 200
    html = page.text
    assert "AI model&#39;s finding: needs a person&#39;s decision" in html
    assert html.index(f'data-finding="{second}"') < html.index(f'data-finding="{first}"')
    assert 'class="badge ai"' in html and "7.5 / 5" in html
    assert "<code>entity-baseline</code> <code>1.2.0</code>" in html
    pending = client.get("/findings?status=pending").text
    assert f'data-finding="{second}"' in pending and f'data-finding="{first}"' not in pending
    banner = client.get("/findings/banner").text
    assert 'data-pending="1"' in banner and "/findings?status=pending" in banner
    assert 'hx-get="/findings/banner"' in client.get("/alerts").text


def test_an_analyst_confirms_with_a_reason_and_the_alert_is_linked(
    client: TestClient, world: World
) -> None:
    (finding_id,) = seed(world, "a.analyst", finding())
    csrf = sign_in(client, world["a.analyst"])
    page = client.get(f"/findings/{finding_id}")
    assert page.status_code == 200
    html = page.text
    # Explained: the model, score against threshold, confidence, the features in words.
    assert "entity-baseline" in html and "1.2.0" in html and "85%" in html
    assert "Logon from a never-seen address" in html and "75%" in html and "25%" in html
    assert "&lt;script&gt;" in html and "<script>x" not in html  # autoescaped example line
    # No reason: refused, nothing decided.
    refused = client.post(
        f"/findings/{finding_id}/confirm", data={"csrf_token": csrf, "reason": "   "}
    )
    assert refused.status_code == 400 and "reason" in refused.text.lower()
    assert client.get("/findings?status=pending").text.count("data-finding=") == 1
    done = client.post(
        f"/findings/{finding_id}/confirm",
        data={"csrf_token": csrf, "reason": "Confirmed with the user: not them"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == f"/findings/{finding_id}"
    with unit_of_work(world.factory) as session:
        row = session.get(AnomalyFinding, finding_id)
        assert row is not None and row.status == "confirmed" and row.alert_id is not None
        alert = session.get(StoredAlert, row.alert_id)
        assert alert is not None and alert.organisation_id == world["a.analyst"].organisation_id
        alert_id = alert.id
    after = client.get(f"/findings/{finding_id}").text
    assert f'href="/alerts/{alert_id}" data-alert-link' in after
    assert "Confirmed with the user: not them" in after
    assert 'data-decision="confirm"' not in after  # decided: no more forms
    again = client.post(f"/findings/{finding_id}/reject", data={"csrf_token": csrf, "reason": "x"})
    assert again.status_code == 409
    assert client.get(f"/alerts/{alert_id}").status_code == 200


def test_deciding_needs_the_csrf_token(client: TestClient, world: World) -> None:
    (finding_id,) = seed(world, "a.analyst", finding())
    sign_in(client, world["a.analyst"])
    for action in ("confirm", "reject"):
        response = client.post(f"/findings/{finding_id}/{action}", data={"reason": "real"})
        assert response.status_code == 403
        forged = client.post(
            f"/findings/{finding_id}/{action}", data={"reason": "real", "csrf_token": "forged"}
        )
        assert forged.status_code == 403
    with unit_of_work(world.factory) as session:
        assert session.get(AnomalyFinding, finding_id).status == "pending"  # type: ignore[union-attr]


def test_another_organisations_finding_is_not_found(client: TestClient, world: World) -> None:
    (finding_id,) = seed(world, "a.analyst", finding())
    csrf = sign_in(client, world["b.analyst"])
    assert client.get(f"/findings/{finding_id}").status_code == 404
    for action in ("confirm", "reject"):
        response = client.post(
            f"/findings/{finding_id}/{action}", data={"csrf_token": csrf, "reason": "mine"}
        )
        assert response.status_code == 404
    assert f'data-finding="{finding_id}"' not in client.get("/findings").text
    with unit_of_work(world.factory) as session:
        assert session.get(AnomalyFinding, finding_id).status == "pending"  # type: ignore[union-attr]


def test_an_auditor_reads_but_cannot_decide(client: TestClient, world: World) -> None:
    (finding_id,) = seed(world, "a.analyst", finding())
    csrf = sign_in(client, world["a.auditor"])
    page = client.get(f"/findings/{finding_id}")
    assert page.status_code == 200 and 'data-decision="confirm"' not in page.text
    for action in ("confirm", "reject"):
        response = client.post(
            f"/findings/{finding_id}/{action}", data={"csrf_token": csrf, "reason": "no"}
        )
        assert response.status_code == 403
    with unit_of_work(world.factory) as session:
        assert session.get(AnomalyFinding, finding_id).status == "pending"  # type: ignore[union-attr]


def test_a_partner_sees_no_findings(client: TestClient, world: World) -> None:
    seed(world, "a.analyst", finding())
    sign_in(client, world["a.partner"])
    assert client.get("/findings").status_code == 403
    assert client.get("/models").status_code == 403


def test_the_register_and_an_objection_on_request(client: TestClient, world: World) -> None:
    org = world["a.analyst"].organisation_id
    with unit_of_work(world.factory) as session:
        service.register_model(
            session, organisation_id=org, name="entity-baseline", version="1.2.0",
            purpose="Logons per user", inputs=["auth.log"], metrics={"recall": 0.93},
            actor="cli",
        )  # fmt: skip
    csrf = sign_in(client, world["a.analyst"])
    page = client.get("/models")
    assert page.status_code == 200
    assert "entity-baseline" in page.text and "recall=0.93" in page.text
    assert "Not approved" in page.text
    refused = client.post(
        "/models/objections", data={"csrf_token": csrf, "identifiers": "", "request_ref": "L-1"}
    )
    assert refused.status_code == 400
    done = client.post(
        "/models/objections",
        data={"csrf_token": csrf, "identifiers": "Aigerim\n+7 701 123 45 67", "request_ref": "L-1"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    with unit_of_work(world.factory) as session:
        rows = session.scalars(select(AnomalyExclusion)).all()
        # The user name, and the phone in its three spellings (+7, 8, none).
        assert len(rows) == 1 + 3 and {r.request_ref for r in rows} == {"L-1"}
        key = service.exclusion_key(world.settings)
        excluded = service.excluded_identifiers(session, org)
        assert service.is_excluded(["aigerim"], excluded, key)
        assert service.is_excluded(["8 701 123 45 67"], excluded, key)
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "finding.excluded")
        ).one()
        assert entry.actor == str(world["a.analyst"].id)
    assert "L-1" in client.get("/models").text
    # An auditor reads the register but records nothing.
    client.cookies.clear()
    csrf = sign_in(client, world["a.auditor"])
    assert client.get("/models").status_code == 200
    response = client.post(
        "/models/objections", data={"csrf_token": csrf, "identifiers": "x", "request_ref": "L-2"}
    )
    assert response.status_code == 403


def test_the_audit_page_names_the_decisions(client: TestClient, world: World) -> None:
    first, second = seed(world, "a.analyst", finding(), finding("dana"))
    csrf = sign_in(client, world["a.analyst"])
    for finding_id, action in ((first, "confirm"), (second, "reject")):
        client.post(f"/findings/{finding_id}/{action}", data={"csrf_token": csrf, "reason": "r"})
    client.cookies.clear()
    sign_in(client, world["a.auditor"])
    html = client.get("/audit").text
    assert "AI model&#39;s finding confirmed by a person" in html
    assert "AI model&#39;s finding rejected by a person" in html
    assert len(re.findall(r'data-action="finding.created"', html)) == 2


# --------------------------------------------------------------------------- the citizen


@pytest.fixture
def portal(world: World, client: TestClient) -> Portal:
    return make_portal(world, client)


def test_a_citizen_learns_which_models_and_objects(client: TestClient, portal: Portal) -> None:
    world = portal.world
    a = world["a.admin"].organisation_id
    with unit_of_work(world.factory) as session:
        for name, approve in (("entity-baseline", True), ("draft-model", False)):
            service.register_model(
                session, organisation_id=a, name=name, version="1.0", purpose=f"{name} purpose",
                inputs=["auth.log"], actor="cli",
            )  # fmt: skip
            if approve:
                service.approve_model(
                    session, organisation_id=a, name=name, version="1.0",
                    approver=world["a.admin"].id, actor="cli",
                )  # fmt: skip
    csrf = citizen_sign_in(client, portal.dana, DANA)
    page = client.get("/citizen/ai")
    assert page.status_code == 200
    # Only approved models are in use; the unapproved one is not shown.
    assert 'data-model="entity-baseline"' in page.text and "draft-model" not in page.text
    assert "data-objected" not in page.text
    refused = client.post("/citizen/ai/object", data={"other": "x"})
    assert refused.status_code == 403  # no CSRF token
    done = client.post(
        "/citizen/ai/object",
        data={"csrf_token": csrf, "other": "+7 701 555 00 11\n"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert "data-objected" in client.get("/citizen/ai").text
    key = service.exclusion_key(world.settings)
    with unit_of_work(world.factory) as session:
        for org in (a, world["b.admin"].organisation_id):
            excluded = service.excluded_identifiers(session, org)
            for identifier in (DANA, "Dana@Example.kz", "77015550011"):
                assert service.is_excluded([identifier], excluded, key), identifier
            assert not service.is_excluded([ARMAN, "arman@example.kz"], excluded, key)
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "finding.excluded")
        ).one()
        assert entry.details == {"origin": "citizen", "identifiers": 3, "added": 3}
        assert DANA not in str(entry.details)
    # Staff have no such page.
    client.cookies.clear()
    sign_in(client, world["a.analyst"])
    assert client.get("/citizen/ai").status_code == 403


def test_a_dpo_records_an_objection_on_request(client: TestClient, portal: Portal) -> None:
    csrf = sign_in(client, portal.dpo_a)
    page = client.get("/models")
    assert page.status_code == 200 and 'action="/models/objections"' in page.text
    done = client.post(
        "/models/objections",
        data={"csrf_token": csrf, "identifiers": ARMAN, "request_ref": "letter 5-12/2026"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    key = service.exclusion_key(portal.world.settings)
    with unit_of_work(portal.world.factory) as session:
        org = portal.dpo_a.organisation_id
        assert service.is_excluded([ARMAN], service.excluded_identifiers(session, org), key)
        other = portal.dpo_b.organisation_id
        assert not service.is_excluded([ARMAN], service.excluded_identifiers(session, other), key)
    # The DPO reads the register but not the findings.
    assert client.get("/findings").status_code == 403


def test_a_refusal_is_shown_in_the_pages_language(client: TestClient, world: World) -> None:
    (finding_id,) = seed(world, "a.analyst", finding())
    with unit_of_work(world.factory) as session:
        from qorgan.core.models import User

        user = session.get(User, world["a.analyst"].id)
        assert user is not None
        user.language = "ru"
    csrf = sign_in(client, world["a.analyst"])
    refused = client.post(f"/findings/{finding_id}/reject", data={"csrf_token": csrf, "reason": ""})
    assert refused.status_code == 400 and "Для решения нужна причина" in refused.text


def test_an_objection_of_too_many_identifiers_is_refused_in_the_pages_language(
    client: TestClient, world: World
) -> None:
    with unit_of_work(world.factory) as session:
        from qorgan.core.models import User

        user = session.get(User, world["a.analyst"].id)
        assert user is not None
        user.language = "ru"
    csrf = sign_in(client, world["a.analyst"])
    lines = "\n".join(f"name{i} surname patronymic" for i in range(101))
    refused = client.post(
        "/models/objections",
        data={"csrf_token": csrf, "identifiers": lines, "request_ref": "L-9"},
    )
    assert refused.status_code == 400
    assert "В возражении не более 100 идентификаторов" in refused.text
    with unit_of_work(world.factory) as session:
        assert session.scalars(select(AnomalyExclusion)).all() == []
    # The neighbour: a hundred is one objection.
    done = client.post(
        "/models/objections",
        data={"csrf_token": csrf, "identifiers": lines.rsplit("\n", 1)[0], "request_ref": "L-9"},
        follow_redirects=False,
    )
    assert done.status_code == 303


def test_a_finding_s_headline_is_in_the_reader_s_language(client: TestClient, world: World) -> None:
    """The model's summary is English; the list and the page lead with the strongest feature,
    translated, its actual and typical value, and the source; the English summary is marked
    as the model's own words on a page in another language, and not on an English one."""
    (finding_id,) = seed(world, "a.analyst", finding())
    sign_in(client, world["a.analyst"])
    english = client.get(f"/findings/{finding_id}").text
    headline = 'data-headline-feature="logon.new_source_ip">Logon from a never-seen address'
    assert headline in english and ": 203.0.113.9 (typical never)" in english
    assert "aigerim signed in from a never-seen address" in english
    assert "The model&#39;s own words" not in english
    with unit_of_work(world.factory) as session:
        from qorgan.core.models import User

        user = session.get(User, world["a.analyst"].id)
        assert user is not None
        user.language = "ru"
    sign_in(client, world["a.analyst"])
    for html in (client.get("/findings").text, client.get(f"/findings/{finding_id}").text):
        assert 'data-headline-feature="logon.new_source_ip">Вход с ранее не встречавшегося' in html
        assert "(обычно never)" in html
        assert '<code title="/var/log/auth.log">/var/log/auth.log</code>' in html
    page = client.get(f"/findings/{finding_id}").text
    assert "Слова самой модели (на английском):" in page
    assert "aigerim signed in from a never-seen address" in page  # kept, marked English
    assert "aigerim signed in" not in client.get("/findings").text  # the list: headline only


def test_the_list_pages_through_many_findings(client: TestClient, world: World) -> None:
    """205 pending findings: three pages of at most 100, newest first, every finding on one of
    them; a page past the end is empty, and a page number out of range is refused."""
    items = []
    for n in range(205):
        item = finding(f"user{n:03d}")
        items.append(item)
    ids = seed(world, "a.analyst", *items)
    assert len(ids) == 205
    sign_in(client, world["a.analyst"])
    shown: list[int] = []
    for number, expected, has_next in ((1, 100, True), (2, 100, True), (3, 5, False)):
        html = client.get(f"/findings?status=pending&page={number}").text
        rows = [int(i) for i in re.findall(r'data-finding="(\d+)"', html)]
        assert len(rows) == expected
        assert ('rel="next"' in html) is has_next
        assert ('rel="prev"' in html) is (number > 1)
        if has_next:
            assert f'href="/findings?status=pending&amp;page={number + 1}"' in html
        shown += rows
    assert shown == sorted(ids, reverse=True)
    assert 'data-finding="' not in client.get("/findings?page=4").text
    assert client.get("/findings?page=0").status_code == 400
    assert client.get("/findings?page=100001").status_code == 400
    # Few findings: no pager at all (the neighbour).
    assert 'class="pager"' not in client.get("/findings?status=rejected").text


def test_a_long_path_is_shown_by_its_last_part() -> None:
    """The list's narrow columns show a source's file, not five lines of its folders."""
    long = "/work/shared/data/evtx-attack-samples/Command and Control/web_access_log.txt"
    assert short_path(long) == "…/web_access_log.txt"
    assert short_path("C:\\Windows\\System32\\winevt\\Logs\\Microsoft-Windows-Sysmon.evtx") == (
        "…\\Microsoft-Windows-Sysmon.evtx"
    )
    # Neighbours: a short path, long text with no folder, a path ending in a folder, a number.
    for same in ("/var/log/auth.log", "x" * 80, "/very/long/folder/name/that/ends/in/a/slash/", 7):
        assert short_path(same) == str(same)


def test_values_are_shown_as_a_reader_reads_them(client: TestClient, world: World) -> None:
    """A model's typical and actual values as numbers of three significant digits (or whole,
    grouped, when large), not the float the model computed: a session step's probability of
    0.9999984118243674 against 9.098384937550687e-10 reads "9.1e-10 (typical 1)"."""
    from qorgan.web.labels import model_value

    assert [model_value(v) for v in (None, 0.9999984118243674, 9.098384937550687e-10)] == [
        "—",
        "1",
        "9.1e-10",
    ]
    assert [model_value(v) for v in (15728640.0, 80.7, 12, "03", "a, b")] == [
        "15,728,640",
        "80.7",
        "12",
        "03",
        "a, b",
    ]
    item = finding()
    item["contributions"][0].update(typical=0.9999984118243674, actual=9.098384937550687e-10)
    item["contributions"][1].update(typical=1048576.0, actual=15728640.0)
    (finding_id,) = seed(world, "a.analyst", item)
    sign_in(client, world["a.analyst"])
    for html in (client.get("/findings").text, client.get(f"/findings/{finding_id}").text):
        assert ": 9.1e-10 (typical 1)" in html
        assert "0.99999" not in html and "9.098" not in html
    page = client.get(f"/findings/{finding_id}").text
    assert '<td class="value">1,048,576</td><td class="value">15,728,640</td>' in page


def test_the_list_is_filtered_by_detector_with_counts(client: TestClient, world: World) -> None:
    """Thousands of pending findings are taken one kind at a time: each detector's count (of
    the chosen status), and a filter that the status links and the pager keep; another
    organisation's findings are neither counted nor shown, and an unknown detector shows none."""
    account = finding("dana")
    account["detector"] = "entity.account"
    logons = seed(world, "a.analyst", finding("u1"), finding("u2"), finding("u3"))
    (new_account,) = seed(world, "a.analyst", account)
    seed(world, "b.analyst", finding("u4"), finding("u5"), finding("u6"), finding("u7"))
    with unit_of_work(world.factory) as session:
        org = world["a.analyst"].organisation_id
        service.reject(session, logons[0], world["a.analyst"].id, "VPN", organisation_id=org)
    sign_in(client, world["a.analyst"])
    html = client.get("/findings").text
    assert re.search(r'data-detector="entity.logon"[^>]*>Unusual logon: 3<', html), html
    assert 'data-detector="entity.account"' in html
    assert html.index('data-detector="entity.logon"') < html.index('data-detector="entity.account"')
    pending = client.get("/findings?status=pending").text
    assert re.search(r'data-detector="entity.logon"[^>]*>[^<]*: 2<', pending)
    only = client.get("/findings?status=pending&detector=entity.logon").text
    rows = [int(i) for i in re.findall(r'data-finding="(\d+)"', only)]
    assert rows == [logons[2], logons[1]]
    # The status counts are those of the detector, and the status links keep it.
    assert re.search(r'data-status="rejected"[^>]*>[^<]*: 1<', only)
    assert 'href="/findings?status=rejected&amp;detector=entity.logon"' in only
    account_only = client.get("/findings?detector=entity.account").text
    assert re.findall(r'data-finding="(\d+)"', account_only) == [str(new_account)]
    assert re.search(r'data-status="rejected"[^>]*>[^<]*: 0<', account_only)
    unknown = client.get("/findings?detector=nope").text
    assert 'data-finding="' not in unknown and 'data-detector="entity.logon"' in unknown
    assert client.get("/findings?detector=" + "x" * 101).status_code == 400
