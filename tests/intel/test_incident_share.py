"""Incidents as STIX 2.1 with the Incident Core Extension, and sightings: every object passes
the OASIS validator, the mapping follows the incident, and what must not be shared is not."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from stix2validator import ValidationOptions, validate_instance

from qorgan.core.tlp import Pap, Tlp
from qorgan.intel.incident_share import (
    INCIDENT_CORE_EXTENSION_ID,
    IncidentShareError,
    Producer,
    SharedIncident,
    SharedObservable,
    incident_objects,
    share,
    stix_timestamp,
)
from qorgan.intel.markings import pap_of, tlp_of
from qorgan.intel.redaction import GREEN, Kind, RedactionPolicy, Victim
from qorgan.intel.sightings import SightingError, read_sighting, sighting

T0 = datetime(2026, 11, 20, 9, 30, 12, 345678, tzinfo=UTC)
PRODUCER = Producer(
    identity_id="identity--7d3c7a4e-1f0e-4a1c-9d1e-3f4b5a6c7d8e",
    name="Turan Bank",
    sectors=("financial-services",),
)
INCIDENT = SharedIncident(
    share_id="incident--a089c631-4392-48e5-8d55-7d1999ca9395",
    title="Phishing against Turan Bank clients",
    description="Aigerim Sultanova (IIN 900101310004) reported the mail from evil-bank.example.",
    status="containment",
    resolution=None,
    severity=3,
    created=T0,
    modified=T0 + timedelta(hours=2),
    started=T0 - timedelta(hours=5),
    origin="alert",
    rsit_class="fraud",
    rsit_type="phishing",
    kz_cert_class="phishing",
    tlp=Tlp.green,
    pap=Pap.amber,
    observables=(
        SharedObservable("ip", "198.51.100.7"),
        SharedObservable("ip", "2001:db8::5"),
        SharedObservable("domain", "Evil-Bank.Example."),
        SharedObservable("url", "http://evil-bank.example/login"),
        SharedObservable("hash", "D41D8CD98F00B204E9800998ECF8427E"),
        SharedObservable("email", "support@evil-bank.example"),
        SharedObservable("account", "a.sultanova"),  # names a person: never shared
        SharedObservable("file", "invoice.pdf.exe"),  # identifies nothing outside the victim
        SharedObservable("hash", "not-a-hash"),  # invalid: left out
        SharedObservable("ip", "198.51.100.7"),  # repeated: one SCO
    ),
)
OPTIONS = ValidationOptions(version="2.1", strict=False)


def _valid(obj: dict[str, Any]) -> None:
    result = validate_instance(obj, OPTIONS)
    assert result.is_valid, [str(e) for e in result.errors]
    # SDO ids are UUIDv4 as STIX asks (SCOs keep their deterministic UUIDv5).
    assert not [str(w) for w in result.warnings if "UUIDv4" in str(w)]


def _by_type(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        grouped.setdefault(obj["type"], []).append(obj)
    return grouped


def test_an_incident_becomes_valid_marked_stix_with_the_core_extension() -> None:
    objects = incident_objects(INCIDENT, PRODUCER)
    for obj in objects:
        _valid(obj)
        assert tlp_of(obj) is Tlp.green and pap_of(obj) is Pap.amber, obj["type"]
    grouped = _by_type(objects)
    (incident,) = grouped["incident"]
    extension = incident["extensions"][INCIDENT_CORE_EXTENSION_ID]
    assert extension == {
        "extension_type": "property-extension",
        "determination": "suspected",
        "investigation_status": "open",
        "criticality": 75,
        "detection_methods": ["qorgan", "alert"],
        "incident_types": ["rsit:fraud/phishing", "kz-cert:phishing"],
    }
    assert incident["created"] == "2026-11-20T09:30:12.345Z"
    assert incident["created_by_ref"] == PRODUCER.identity_id
    # Five observables survive: the account, the file name, the bad hash and the repeat do not.
    scos = {t: [o.get("value") or o.get("hashes") for o in grouped[t]] for t in grouped}
    assert scos["ipv4-addr"] == ["198.51.100.7"]
    assert scos["ipv6-addr"] == ["2001:db8::5"]
    assert scos["domain-name"] == ["evil-bank.example"]
    assert scos["url"] == ["http://evil-bank.example/login"]
    assert scos["email-addr"] == ["support@evil-bank.example"]
    assert scos["file"] == [{"MD5": "d41d8cd98f00b204e9800998ecf8427e"}]
    assert "user-account" not in grouped
    (observed,) = grouped["observed-data"]
    assert len(observed["object_refs"]) == 6
    assert observed["first_observed"] == stix_timestamp(INCIDENT.started)
    (relationship,) = grouped["relationship"]
    assert (relationship["source_ref"], relationship["target_ref"]) == (
        incident["id"],
        observed["id"],
    )


@pytest.mark.parametrize(
    ("status", "resolution", "investigation", "determination"),
    [
        ("new", None, "new", "suspected"),
        ("triage", None, "open", "suspected"),
        ("review", None, "open", "suspected"),
        ("closed", "true-positive-impact", "closed", "successful-attempt"),
        ("closed", "true-positive-no-impact", "closed", "failed-attempt"),
        ("closed", "false-positive", "closed", "false-positive"),
    ],
)
def test_status_and_resolution_map_onto_the_extension(
    status: str, resolution: str | None, investigation: str, determination: str
) -> None:
    shared = replace(INCIDENT, status=status, resolution=resolution)
    (incident,) = _by_type(incident_objects(shared, PRODUCER))["incident"]
    _valid(incident)
    extension = incident["extensions"][INCIDENT_CORE_EXTENSION_ID]
    assert (extension["investigation_status"], extension["determination"]) == (
        investigation,
        determination,
    )


def test_a_reshare_is_a_new_version_of_the_same_objects() -> None:
    first = incident_objects(INCIDENT, PRODUCER)
    later = incident_objects(replace(INCIDENT, modified=T0 + timedelta(days=1)), PRODUCER)
    assert [o["id"] for o in first] == [o["id"] for o in later]
    first_incident = _by_type(first)["incident"][0]
    later_incident = _by_type(later)["incident"][0]
    assert later_incident["modified"] > first_incident["modified"]
    # Another incident's objects are other objects.
    other = replace(INCIDENT, share_id="incident--1f1d4b7e-93a3-4b0c-8a55-6e1a8f2b9c01")
    assert {
        o["id"] for o in _by_type(incident_objects(other, PRODUCER))["observed-data"]
    }.isdisjoint(o["id"] for o in _by_type(first)["observed-data"])


def test_duplicates_naive_times_and_bad_severities_are_refused() -> None:
    with pytest.raises(IncidentShareError, match="duplicate"):
        incident_objects(replace(INCIDENT, status="closed", resolution="duplicate"), PRODUCER)
    with pytest.raises(IncidentShareError, match="zone"):
        incident_objects(replace(INCIDENT, created=datetime(2026, 11, 20)), PRODUCER)  # noqa: DTZ001
    with pytest.raises(IncidentShareError, match="severity"):
        incident_objects(replace(INCIDENT, severity=5), PRODUCER)


def test_without_observables_only_the_identity_and_incident_are_shared() -> None:
    objects = incident_objects(replace(INCIDENT, observables=()), PRODUCER)
    assert [o["type"] for o in objects] == ["identity", "incident"]


def test_redaction_with_the_victim_rule_shares_the_sector_not_the_bank_or_the_person() -> None:
    policy = GREEN(victim=Victim(names=("Turan Bank",), sector="a bank"))
    shared = share(INCIDENT, PRODUCER, policy)
    sent = list(shared.objects)
    text = repr(sent)
    assert "Turan Bank" not in text and "Sultanova" not in text and "900101310004" not in text
    identity = _by_type(sent)["identity"][0]
    assert identity["name"] == "a bank"
    incident = _by_type(sent)["incident"][0]
    assert incident["name"] == "Phishing against a bank clients"
    # The indicators of compromise are what the share is for: they are kept.
    assert "evil-bank.example" in text and "198.51.100.7" in text
    for obj in sent:
        _valid(obj)
    # The attacker's address is an e-mail address, which GREEN removes: its SCO is withheld
    # whole (an SCO valued "[e-mail]" would be invalid) and leaves the observed data.
    (email_id,) = shared.withheld
    assert email_id.startswith("email-addr--") and email_id not in text
    (observed,) = _by_type(sent)["observed-data"]
    assert len(observed["object_refs"]) == 5
    # Every redaction is listed with the object it was made in, for the preview.
    kinds = {(object_id.split("--")[0], m.mark.kind.value) for object_id, m in shared.marks}
    assert {("identity", "victim"), ("incident", "person_name"), ("incident", "iin")} <= kinds


def test_when_redaction_takes_every_observable_the_observed_data_goes_too() -> None:
    only_mail = replace(INCIDENT, observables=(SharedObservable("email", "a@evil.example"),))
    shared = share(only_mail, PRODUCER, GREEN())
    assert [o["type"] for o in shared.objects] == ["identity", "incident"]
    assert len(shared.withheld) == 1
    # The neighbour: a policy that keeps e-mail addresses shares it with its observed data.
    keep = RedactionPolicy(kinds=frozenset({Kind.iin, Kind.phone}))
    kept = share(only_mail, PRODUCER, keep)
    assert [o["type"] for o in kept.objects] == [
        "identity",
        "incident",
        "observed-data",
        "email-addr",
        "relationship",
    ]
    assert kept.withheld == ()


# --- sightings ------------------------------------------------------------------------------

INDICATOR = "indicator--26ffb872-1dd9-446e-b6f5-d58527e5b5d2"


def test_a_sighting_is_valid_marked_and_stable_per_indicator_and_incident() -> None:
    first = sighting(
        INDICATOR,
        sighted_by=PRODUCER.identity_id,
        about="incident:42",
        first_seen=T0,
        last_seen=T0 + timedelta(minutes=5),
        count=3,
        created=T0,
        tlp=Tlp.green,
    )
    _valid(first)
    assert tlp_of(first) is Tlp.green
    assert first["where_sighted_refs"] == [PRODUCER.identity_id]
    again = sighting(
        INDICATOR,
        sighted_by=PRODUCER.identity_id,
        about="incident:42",
        first_seen=T0,
        last_seen=T0 + timedelta(hours=1),
        count=7,
        created=T0,
        modified=T0 + timedelta(hours=1),
    )
    assert again["id"] == first["id"] and again["modified"] > first["modified"]
    other = sighting(
        INDICATOR,
        sighted_by=PRODUCER.identity_id,
        about="incident:43",
        first_seen=T0,
        last_seen=T0,
        created=T0,
    )
    assert other["id"] != first["id"]
    assert "incident:42" not in repr(first)
    read = read_sighting(first)
    assert (read.sighting_of_ref, read.count, read.where_sighted_refs) == (
        INDICATOR,
        3,
        (PRODUCER.identity_id,),
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"of_ref": "indicator--not-a-uuid"}, "sighted"),
        ({"sighted_by": "identity--\x00"}, "sighting organisation"),
        ({"count": 0}, "count"),
        ({"last_seen": T0 - timedelta(seconds=1)}, "before"),
        ({"observed_data_refs": (INDICATOR,)}, "observed-data"),
    ],
)
def test_bad_sightings_are_refused(change: dict[str, Any], reason: str) -> None:
    arguments: dict[str, Any] = {
        "of_ref": INDICATOR,
        "sighted_by": PRODUCER.identity_id,
        "about": "incident:1",
        "first_seen": T0,
        "last_seen": T0,
        "created": T0,
    } | change
    of_ref = arguments.pop("of_ref")
    with pytest.raises(SightingError, match=reason):
        sighting(of_ref, **arguments)


@pytest.mark.parametrize(
    "broken",
    [
        {"type": "indicator"},
        {"count": -1},
        {"count": True},
        {"where_sighted_refs": "identity--7d3c7a4e-1f0e-4a1c-9d1e-3f4b5a6c7d8e"},
        {"sighting_of_ref": "indicator--\ud800"},
        {"created_by_ref": "nobody"},
    ],
)
def test_received_sightings_are_checked(broken: dict[str, Any]) -> None:
    good = sighting(
        INDICATOR,
        sighted_by=PRODUCER.identity_id,
        about="x",
        first_seen=T0,
        last_seen=T0,
        created=T0,
    )
    read_sighting(good)  # the neighbour that must pass
    with pytest.raises(SightingError):
        read_sighting(good | broken)
