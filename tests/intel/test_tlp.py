"""TLP 2.0 / PAP markings: the published objects, reading and writing them, who may receive."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from qorgan.intel.markings import (
    PAP_EXTENSION_ID,
    TLP2_EXTENSION_ID,
    Audience,
    MarkingError,
    Pap,
    Tlp,
    filter_for,
    mark,
    mark_pap,
    may_receive,
    pap_marking_definition,
    pap_of,
    parse_pap,
    parse_tlp,
    tlp_marking_definition,
    tlp_of,
)

# --- Literals copied from the published sources, not from the code under test. ---------------

# oasis-open/cti-stix-common-objects,
# extension-definition-specifications/tlp-2.0/extension-definition--60a3c5c5-...json
# (the schema enumerates each id and name) and examples/tlp-amber+strict.json (the object shape).
TLP2_EXT = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP2_PUBLISHED = {
    Tlp.clear: ("marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487", "TLP:CLEAR", "clear"),
    Tlp.green: ("marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb", "TLP:GREEN", "green"),
    Tlp.amber: ("marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421", "TLP:AMBER", "amber"),
    Tlp.amber_strict: (
        "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
        "TLP:AMBER+STRICT",
        "amber+strict",
    ),
    Tlp.red: ("marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1", "TLP:RED", "red"),
}
# The STIX 2.1 predefined TLP 1.0 markings, stix2/v21/common.py (TLP_WHITE ... TLP_RED).
TLP1_WHITE = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"
TLP1_GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"
TLP1_AMBER = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"
TLP1_RED = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"

# oasis-open/cti-stix-common-objects, extension-definition-specifications/
# pap-marking-definition-f8d/extension-definition--f8d78575-...json (ids and names) and
# examples/pap-clear.json, pap-green.json (created); amber/red created from mirrors of
# examples/pap-amber.json and pap-red.json (not in the stored copy of the repository).
PAP_EXT = "extension-definition--f8d78575-edfd-406e-8e84-6162a8450f5b"
PAP_PUBLISHED = {
    Pap.clear: (
        "marking-definition--ad15a0cd-55b6-4588-a14c-a66105329b92",
        "PAP:CLEAR",
        "2022-10-01T00:00:00.000Z",
    ),
    Pap.green: (
        "marking-definition--c43594d1-4b11-4c59-93ab-1c9b14d53ce9",
        "PAP:GREEN",
        "2022-10-09T00:00:00.000Z",
    ),
    Pap.amber: (
        "marking-definition--60f8932b-e51e-4458-b265-a2e8be9a80ab",
        "PAP:AMBER",
        "2022-10-02T00:00:00.000Z",
    ),
    Pap.red: (
        "marking-definition--740d36e5-7714-4c30-961a-3ae632ceee0e",
        "PAP:RED",
        "2022-10-06T00:00:00.000Z",
    ),
}
PAP_WHITE = "marking-definition--a3bea94c-b469-41dc-9cfe-d6e7daba7730"
# OpenCTI's PAP:CLEAR and PAP:GREEN standard ids, from OpenCTI-Platform/opencti test fixtures.
OPENCTI_PAP_CLEAR = "marking-definition--4cdff7eb-acb8-543f-8573-829eb9fe8b34"
OPENCTI_PAP_GREEN = "marking-definition--89484dde-e3d2-547f-a6c6-d14824429eb1"

STATEMENT = "marking-definition--0f5a6a0e-7a0c-4a3e-9f1e-000000000001"  # some copyright statement


def indicator(*refs: str, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        "pattern": "[ipv4-addr:value = '203.0.113.7']",
        **extra,
    }
    if refs:
        obj["object_marking_refs"] = list(refs)
    return obj


# --- The published objects -----------------------------------------------------------------


def test_extension_ids_are_the_published_ones() -> None:
    assert TLP2_EXTENSION_ID == TLP2_EXT
    assert PAP_EXTENSION_ID == PAP_EXT


@pytest.mark.parametrize("level", list(Tlp))
def test_tlp_marking_definition_is_the_published_object(level: Tlp) -> None:
    ident, name, value = TLP2_PUBLISHED[level]
    assert tlp_marking_definition(level) == {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": ident,
        "created": "2022-10-01T00:00:00.000Z",
        "name": name,
        "extensions": {TLP2_EXT: {"extension_type": "property-extension", "tlp_2_0": value}},
    }


@pytest.mark.parametrize("level", list(Pap))
def test_pap_marking_definition_is_the_published_object(level: Pap) -> None:
    ident, name, created = PAP_PUBLISHED[level]
    assert pap_marking_definition(level) == {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": ident,
        "created": created,
        "name": name,
        "extensions": {PAP_EXT: {"extension_type": "property-extension", "pap": level.value}},
    }


def test_marking_definitions_are_fresh_copies() -> None:
    first = tlp_marking_definition(Tlp.red)
    first["extensions"][TLP2_EXT]["tlp_2_0"] = "clear"
    assert tlp_marking_definition(Tlp.red)["extensions"][TLP2_EXT]["tlp_2_0"] == "red"


# --- Order -----------------------------------------------------------------------------------


def test_levels_are_ordered_by_restriction_not_alphabet() -> None:
    assert Tlp.clear < Tlp.green < Tlp.amber < Tlp.amber_strict < Tlp.red
    assert sorted([Tlp.red, Tlp.clear, Tlp.amber_strict, Tlp.green, Tlp.amber]) == list(Tlp)
    assert Pap.clear < Pap.green < Pap.amber < Pap.red
    assert max(Pap) is Pap.red
    with pytest.raises(TypeError):
        _ = Tlp.red < Pap.clear  # type: ignore[operator]
    with pytest.raises(TypeError):
        _ = Tlp.red < "amber"  # type: ignore[operator]


# --- Reading and writing TLP -----------------------------------------------------------------


@pytest.mark.parametrize("level", list(Tlp))
def test_mark_then_read_round_trips(level: Tlp) -> None:
    assert tlp_of(mark(indicator(), level)) is level
    assert mark(indicator(), level)["object_marking_refs"] == [TLP2_PUBLISHED[level][0]]


@pytest.mark.parametrize(
    ("ref", "level"),
    [
        (TLP1_WHITE, Tlp.clear),
        (TLP1_GREEN, Tlp.green),
        (TLP1_AMBER, Tlp.amber),
        (TLP1_RED, Tlp.red),
    ],
)
def test_tlp_1_ids_read_as_tlp_2(ref: str, level: Tlp) -> None:
    assert tlp_of(indicator(ref)) is level


def test_no_tlp_marking_is_none() -> None:
    assert tlp_of(indicator()) is None
    assert tlp_of(indicator(STATEMENT)) is None


@pytest.mark.parametrize(
    ("refs", "level"),
    [
        ((TLP2_PUBLISHED[Tlp.green][0], TLP2_PUBLISHED[Tlp.amber_strict][0]), Tlp.amber_strict),
        ((TLP2_PUBLISHED[Tlp.red][0], TLP2_PUBLISHED[Tlp.clear][0]), Tlp.red),
        ((TLP1_AMBER, TLP2_PUBLISHED[Tlp.green][0]), Tlp.amber),
        ((TLP1_WHITE, TLP2_PUBLISHED[Tlp.clear][0], STATEMENT), Tlp.clear),
    ],
)
def test_most_restrictive_of_several_wins(refs: tuple[str, ...], level: Tlp) -> None:
    assert tlp_of(indicator(*refs)) is level


def test_granular_tlp_counts_for_the_whole_object() -> None:
    obj = indicator(
        TLP2_PUBLISHED[Tlp.green][0],
        granular_markings=[
            {"marking_ref": TLP2_PUBLISHED[Tlp.red][0], "selectors": ["description"]},
            {"lang": "kk", "selectors": ["name"]},
        ],
    )
    assert tlp_of(obj) is Tlp.red


def test_mark_keeps_other_markings_and_does_not_mutate() -> None:
    obj = indicator(STATEMENT, TLP1_AMBER, TLP2_PUBLISHED[Tlp.green][0], PAP_WHITE)
    before = copy.deepcopy(obj)
    marked = mark(obj, Tlp.red)
    assert obj == before
    assert marked["object_marking_refs"] == [STATEMENT, PAP_WHITE, TLP2_PUBLISHED[Tlp.red][0]]
    assert tlp_of(marked) is Tlp.red
    assert pap_of(marked) is Pap.clear
    marked["pattern"] = "changed"
    assert obj["pattern"] == before["pattern"]


def test_mark_copies_deeply() -> None:
    obj = indicator(external_references=[{"source_name": "kz-cert"}])
    marked = mark(obj, Tlp.amber)
    marked["external_references"][0]["source_name"] = "other"
    assert obj["external_references"][0]["source_name"] == "kz-cert"


@pytest.mark.parametrize(
    "bad",
    [
        {"object_marking_refs": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"},
        {"object_marking_refs": [1, 2]},
        {"granular_markings": {"marking_ref": TLP1_RED}},
        {"granular_markings": [{"marking_ref": 7, "selectors": ["name"]}]},
    ],
)
def test_malformed_markings_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(MarkingError):
        tlp_of(indicator(**bad))
    with pytest.raises(MarkingError):
        mark(indicator(**bad), Tlp.green)
    with pytest.raises(MarkingError):
        pap_of(indicator(**bad))


def test_not_an_object_is_refused() -> None:
    with pytest.raises(MarkingError):
        tlp_of(["indicator"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("TLP:CLEAR", Tlp.clear),
        ("tlp:white", Tlp.clear),
        ("WHITE", Tlp.clear),
        ("TLP:GREEN", Tlp.green),
        ("green", Tlp.green),
        ("TLP: Amber", Tlp.amber),
        ("TLP:AMBER+STRICT", Tlp.amber_strict),
        ("amber strict", Tlp.amber_strict),
        ("Amber-Strict", Tlp.amber_strict),
        ("tlp_amber_strict", Tlp.amber_strict),
        ("amber+strict", Tlp.amber_strict),
        ("  TLP:RED  ", Tlp.red),
        ("tlp red", Tlp.red),
        ("TLPRED", Tlp.red),
    ],
)
def test_parse_tlp_accepts_spellings(text: str, level: Tlp) -> None:
    assert parse_tlp(text) is level


@pytest.mark.parametrize(
    "text", ["", "   ", "TLP", "TLP:", "blue", "TLP:PINK", "strict", "amber strict red", "PAP:RED"]
)
def test_parse_tlp_refuses_junk_without_echoing_it(text: str) -> None:
    with pytest.raises(MarkingError) as caught:
        parse_tlp(text)
    assert "PINK" not in str(caught.value)
    assert "blue" not in str(caught.value)


def test_parse_tlp_refuses_non_text() -> None:
    with pytest.raises(MarkingError):
        parse_tlp(3)  # type: ignore[arg-type]


def test_label_is_the_printed_form() -> None:
    assert [t.label for t in Tlp] == [name for _, name, _ in TLP2_PUBLISHED.values()]
    assert all(parse_tlp(t.label) is t for t in Tlp)


# --- PAP --------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", list(Pap))
def test_pap_round_trips(level: Pap) -> None:
    assert pap_of(mark_pap(indicator(), level)) is level
    assert parse_pap(level.label) is level


def test_pap_reads_white_and_opencti_ids() -> None:
    assert pap_of(indicator(PAP_WHITE)) is Pap.clear
    assert pap_of(indicator(OPENCTI_PAP_CLEAR)) is Pap.clear
    assert pap_of(indicator(OPENCTI_PAP_GREEN)) is Pap.green
    assert pap_of(indicator(OPENCTI_PAP_GREEN, PAP_PUBLISHED[Pap.amber][0])) is Pap.amber
    assert pap_of(indicator(TLP1_RED)) is None


def test_mark_pap_replaces_pap_only() -> None:
    obj = indicator(TLP1_RED, OPENCTI_PAP_GREEN, STATEMENT)
    marked = mark_pap(obj, Pap.red)
    assert marked["object_marking_refs"] == [TLP1_RED, STATEMENT, PAP_PUBLISHED[Pap.red][0]]
    assert tlp_of(marked) is Tlp.red
    assert obj["object_marking_refs"] == [TLP1_RED, OPENCTI_PAP_GREEN, STATEMENT]


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("PAP:CLEAR", Pap.clear),
        ("pap:white", Pap.clear),
        ("PAP GREEN", Pap.green),
        ("amber", Pap.amber),
        ("Pap-Red", Pap.red),
    ],
)
def test_parse_pap_accepts_spellings(text: str, level: Pap) -> None:
    assert parse_pap(text) is level


@pytest.mark.parametrize("text", ["", "PAP", "amber strict", "TLP:RED", "purple"])
def test_parse_pap_refuses_junk(text: str) -> None:
    with pytest.raises(MarkingError):
        parse_pap(text)


# --- Who may receive ---------------------------------------------------------------------------

SENDER = "org-akimat"
AUDIENCE = Audience.of(
    named={"org-named"},
    clients={SENDER: {"org-client"}, "org-other": {"org-others-client"}},
    community={"org-community"},
)

# recipient -> how it stands to SENDER. A member of the sender's organisation carries the
# organisation's id, so it is the sender's id.
RECIPIENTS = {
    "the sender itself": SENDER,
    "another member of the sender's organisation": SENDER,
    "a named recipient": "org-named",
    "a client of the sender": "org-client",
    "a community member": "org-community",
    "a client of another organisation": "org-others-client",
    "an organisation the sender is a client of": "org-other",
    "an outsider": "org-outsider",
}

# The rule written out by hand, one row per relationship, columns
# CLEAR, GREEN, AMBER, AMBER+STRICT, RED (Y = may receive).
MATRIX = {
    "the sender itself": "Y Y Y Y Y",
    "another member of the sender's organisation": "Y Y Y Y Y",
    "a named recipient": "Y - - - Y",
    "a client of the sender": "Y Y Y - -",
    "a community member": "Y Y - - -",
    "a client of another organisation": "Y - - - -",
    "an organisation the sender is a client of": "Y - - - -",
    "an outsider": "Y - - - -",
}
COLUMNS = [Tlp.clear, Tlp.green, Tlp.amber, Tlp.amber_strict, Tlp.red]
CASES = [
    pytest.param(relation, level, cell == "Y", id=f"{level.label}-{relation}")
    for relation, row in MATRIX.items()
    for level, cell in zip(COLUMNS, row.split(), strict=True)
]


def test_matrix_covers_every_level_and_relationship() -> None:
    assert set(MATRIX) == set(RECIPIENTS)
    assert set(COLUMNS) == set(Tlp)


@pytest.mark.parametrize(("relation", "level", "allowed"), CASES)
def test_may_receive_matrix(relation: str, level: Tlp, allowed: bool) -> None:
    recipient = RECIPIENTS[relation]
    assert may_receive(level, sender=SENDER, recipient=recipient, audience=AUDIENCE) is allowed


def test_empty_audience_shares_only_clear_and_with_oneself() -> None:
    nobody = Audience()
    for level in Tlp:
        assert may_receive(level, sender=SENDER, recipient=SENDER, audience=nobody)
        assert may_receive(level, sender=SENDER, recipient="x", audience=nobody) is (
            level is Tlp.clear
        )


def test_audience_is_frozen() -> None:
    with pytest.raises(AttributeError):
        AUDIENCE.named = frozenset({"anyone"})  # type: ignore[misc]


def test_filter_for_keeps_order_and_uses_the_default_for_unmarked() -> None:
    objects = [
        indicator(TLP2_PUBLISHED[Tlp.red][0], id="a", x_sender=SENDER),
        indicator(TLP1_GREEN, id="b", x_sender=SENDER),
        indicator(id="c", x_sender=SENDER),  # unmarked: the collection's default
        indicator(TLP2_PUBLISHED[Tlp.amber][0], id="d", x_sender=SENDER),
        indicator(TLP2_PUBLISHED[Tlp.red][0], id="e", x_sender="org-client"),  # its own
        indicator(TLP1_WHITE, id="f", x_sender="org-outsider"),
    ]

    def sender_of(obj: dict[str, Any]) -> str:
        return obj["x_sender"]

    # Each sender's own audience: org-client and org-outsider named nobody.
    audiences = {SENDER: AUDIENCE, "org-client": Audience(), "org-outsider": Audience()}

    def ids(recipient: str, default: Tlp) -> list[str]:
        kept = filter_for(objects, recipient, audiences.__getitem__, sender_of, default=default)
        return [o["id"] for o in kept]

    assert ids("org-client", Tlp.amber) == ["b", "c", "d", "e", "f"]
    assert ids("org-client", Tlp.amber_strict) == ["b", "d", "e", "f"]
    assert ids("org-community", Tlp.green) == ["b", "c", "f"]
    assert ids("org-named", Tlp.green) == ["a", "f"]
    assert ids("org-outsider", Tlp.clear) == ["c", "f"]
    assert ids(SENDER, Tlp.red) == ["a", "b", "c", "d", "f"]


def test_one_audience_for_all_senders_opens_every_senders_red_to_the_named() -> None:
    # Why filter_for takes a function when a collection mixes senders.
    objects = [indicator(TLP2_PUBLISHED[Tlp.red][0], id="e", x_sender="org-client")]
    kept = filter_for(objects, "org-named", AUDIENCE, lambda o: o["x_sender"], default=Tlp.red)
    assert [o["id"] for o in kept] == ["e"]
    per_sender = filter_for(
        objects, "org-named", lambda _s: Audience(), lambda o: o["x_sender"], default=Tlp.red
    )
    assert per_sender == []


def test_filter_for_refuses_malformed_markings() -> None:
    bad = indicator(object_marking_refs="oops")
    with pytest.raises(MarkingError):
        filter_for([bad], "org-client", AUDIENCE, lambda _: SENDER, default=Tlp.clear)
