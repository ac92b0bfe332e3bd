"""Incident task templates: the shipped file is complete and written in three real languages,
every rule of the validator refuses its mistake with a message naming the template and the
task while a valid neighbour passes, and a template survives the JSON round trip that an
organisation's edited copy goes through."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qorgan.core.errors import QorganError
from qorgan.detection.classification import load_taxonomy
from qorgan.incidents.task_templates import (
    LANGUAGES,
    MAX_DESCRIPTION,
    MAX_TASKS,
    MAX_TITLE,
    PHASES,
    Template,
    TemplateError,
    default_templates,
    for_class,
    load_templates,
    localised,
    parse_template,
)

BUILTIN = (
    "password-guessing",
    "malware",
    "unauthorised-access",
    "ddos",
    "personal-data-leak",
    "phishing-fraud-site",
)
#: Letters of the Kazakh Cyrillic alphabet that Russian does not have.
KAZAKH_LETTERS = set("әғқңөұүһіӘҒҚҢӨҰҮҺІ")
CYRILLIC = re.compile(r"[\u0400-\u04ff]")
LATIN = re.compile(r"[A-Za-z]")


def kz_cert_classes() -> set[str]:
    return set(load_taxonomy().kz_cert)


def all_texts(template: Template) -> list[tuple[str, dict[str, str]]]:
    """(where, {kk, ru, en}) for every text of a template."""
    texts = [("name", dict(template.name))]
    for index, task in enumerate(template.tasks):
        texts.append((f"tasks[{index}].title", dict(task.title)))
        texts.append((f"tasks[{index}].description", dict(task.description)))
    return texts


# --------------------------------------------------------------------------- the shipped file


def test_bundled_templates_are_the_six_in_file_order() -> None:
    assert tuple(default_templates()) == BUILTIN


@pytest.mark.parametrize("template_id", BUILTIN)
def test_bundled_template_names_only_known_kz_cert_classes(template_id: str) -> None:
    template = default_templates()[template_id]
    again = parse_template(template_id, template.to_data(), known_classes=kz_cert_classes())
    assert again == template


@pytest.mark.parametrize("template_id", BUILTIN)
def test_bundled_template_covers_the_lifecycle(template_id: str) -> None:
    template = default_templates()[template_id]
    phases = [task.phase for task in template.tasks]
    assert 4 <= len(phases) <= 8
    assert "triage" in phases
    assert "review" in phases
    # Listed in lifecycle order, as the checklist is read.
    assert phases == sorted(phases, key=PHASES.index)
    assert template.tasks_in("triage") == tuple(t for t in template.tasks if t.phase == "triage")


@pytest.mark.parametrize("template_id", BUILTIN)
def test_bundled_texts_exist_in_every_language(template_id: str) -> None:
    for where, texts in all_texts(default_templates()[template_id]):
        assert tuple(texts) == LANGUAGES, where
        for lang in LANGUAGES:
            assert texts[lang].strip(), f"{template_id} {where}.{lang} is empty"
            assert texts[lang] == texts[lang].strip(), f"{template_id} {where}.{lang}"
        assert len({texts["kk"], texts["ru"], texts["en"]}) == 3, f"{template_id} {where} copied"


@pytest.mark.parametrize("template_id", BUILTIN)
def test_bundled_texts_are_in_their_own_script_and_language(template_id: str) -> None:
    template = default_templates()[template_id]
    kazakh = " ".join(texts["kk"] for _, texts in all_texts(template))
    # Russian copied into the kk slot would have none of these letters.
    assert KAZAKH_LETTERS & set(kazakh), f"{template_id}: no Kazakh-specific letter"
    for where, texts in all_texts(template):
        assert CYRILLIC.search(texts["kk"]), f"{template_id} {where}.kk"
        assert CYRILLIC.search(texts["ru"]), f"{template_id} {where}.ru"
        # The .қаз top-level domain is the one Cyrillic word an English text may hold.
        assert not CYRILLIC.search(texts["en"].replace(".қаз", "")), f"{template_id} {where}.en"
        assert not KAZAKH_LETTERS & set(texts["ru"].replace(".қаз", "")), f"{where}.ru"
        for lang in ("kk", "ru"):
            # A word mixing scripts is a look-alike typo (Latin "c" or "o" in a Cyrillic word).
            for word in re.findall(r"\w+", texts[lang]):
                mixed = CYRILLIC.search(word) and LATIN.search(word)
                assert not mixed, f"{template_id} {where}.{lang}: {word!r}"


def test_each_bundled_description_is_specific_practice() -> None:
    """Spot checks that the texts carry the practice the templates exist for."""
    templates = default_templates()
    leak = " ".join(t.description["en"] for t in templates["personal-data-leak"].tasks)
    assert "one working day" in leak
    assert "1 July 2024" in leak
    assert "person responsible" in leak
    leak_ru = " ".join(t.description["ru"] for t in templates["personal-data-leak"].tasks)
    assert "одного рабочего дня" in leak_ru
    leak_kk = " ".join(t.description["kk"] for t in templates["personal-data-leak"].tasks)
    assert "бір жұмыс күні" in leak_kk
    guessing = " ".join(t.description["en"] for t in templates["password-guessing"].tasks)
    assert "successful logon" in guessing
    assert "multi-factor" in guessing
    site = " ".join(t.description["en"] for t in templates["phishing-fraud-site"].tasks)
    assert "KazNIC" in site
    assert "screenshots" in site


def test_default_templates_hands_out_independent_copies() -> None:
    first = default_templates()
    first.clear()
    assert tuple(default_templates()) == BUILTIN


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("template_id", BUILTIN)
def test_round_trip_through_json(template_id: str) -> None:
    template = default_templates()[template_id]
    assert parse_template(template.id, template.to_data()) == template
    stored = json.loads(json.dumps(template.to_data(), ensure_ascii=False))
    again = parse_template(template.id, stored)
    assert again == template
    assert hash(again) == hash(template)


def test_template_is_immutable() -> None:
    template = default_templates()["malware"]
    with pytest.raises(TypeError):
        template.name["en"] = "changed"
    with pytest.raises(AttributeError):
        template.id = "other"
    data = template.to_data()
    data["name"]["en"] = "changed"
    assert template.name["en"] == "Malware"


def test_language_order_does_not_matter() -> None:
    data = base()
    data["name"] = dict(reversed(list(data["name"].items())))
    assert parse_template("base", data) == parse_template("base", base())


# --------------------------------------------------------------------------- validation


def texts(word: str) -> dict[str, str]:
    return {"kk": f"{word} kk", "ru": f"{word} ru", "en": f"{word} en"}


def base() -> dict[str, Any]:
    """A small valid template: every case below changes one thing in it."""
    return {
        "name": texts("Base"),
        "classes": ["credential-attack"],
        "tasks": [
            {"phase": phase, "title": texts(f"Do {phase}"), "description": texts("Because")}
            for phase in PHASES
        ],
    }


def tasks_of(count: int) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["tasks"] = [copy.deepcopy(data["tasks"][0]) for _ in range(count)]

    return change


def setter(*path: str | int, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def deleter(*path: str | int) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return change


# (case, refused change, expected message, its valid neighbour, the id to parse under)
CASES: list[tuple[str, Callable[..., None], str, Callable[..., None], str, str]] = [
    (
        "unknown phase",
        setter("tasks", 2, "phase", value="eradicate"),
        r"template 'base': tasks\[2\]\.phase: unknown phase 'eradicate' \(expected one of "
        r"triage, containment, eradication, recovery, review\)",
        setter("tasks", 2, "phase", value="recovery"),
        "base",
        "base",
    ),
    (
        "missing language in a title",
        deleter("tasks", 1, "title", "kk"),
        r"template 'base': tasks\[1\]\.title: missing language\(s\) kk",
        setter("tasks", 1, "title", "kk", value="Тексеру"),
        "base",
        "base",
    ),
    (
        "missing language in a description",
        deleter("tasks", 0, "description", "ru"),
        r"tasks\[0\]\.description: missing language\(s\) ru",
        setter("tasks", 0, "description", "ru", value=""),
        "base",
        "base",
    ),
    (
        "empty English description",
        setter("tasks", 3, "description", "en", value="  "),
        r"template 'base': tasks\[3\]\.description\.en is empty",
        setter("tasks", 3, "description", "kk", value=""),
        "base",
        "base",
    ),
    (
        "empty name",
        setter("name", "ru", value=""),
        r"template 'base': name\.ru is empty",
        setter("name", "ru", value="Б"),
        "base",
        "base",
    ),
    (
        "unknown language",
        setter("name", "de", value="Basis"),
        r"template 'base': name: unknown language\(s\) 'de' \(expected kk, ru, en\)",
        setter("name", "en", value="Basis"),
        "base",
        "base",
    ),
    (
        "unknown key in a template",
        setter("notes", value="x"),
        r"template 'base': the template: unknown key\(s\) 'notes' "
        r"\(expected name, classes, tasks\)",
        setter("classes", value=[]),
        "base",
        "base",
    ),
    (
        "unknown key in a task",
        setter("tasks", 4, "owner", value="soc"),
        r"template 'base': tasks\[4\]: unknown key\(s\) 'owner' "
        r"\(expected phase, title, description\)",
        setter("tasks", 4, "phase", value="triage"),
        "base",
        "base",
    ),
    (
        "missing key in a task",
        deleter("tasks", 4, "description"),
        r"template 'base': tasks\[4\]: missing description",
        setter("tasks", 4, "description", value=texts("Why")),
        "base",
        "base",
    ),
    (
        "too many tasks",
        tasks_of(MAX_TASKS + 1),
        r"template 'base': has 51 tasks \(1 to 50 allowed\)",
        tasks_of(MAX_TASKS),
        "base",
        "base",
    ),
    (
        "no tasks",
        tasks_of(0),
        r"template 'base': has 0 tasks \(1 to 50 allowed\)",
        tasks_of(1),
        "base",
        "base",
    ),
    (
        "NUL in a description",
        setter("tasks", 2, "description", "kk", value="Бұғаттау\x00"),
        r"template 'base': tasks\[2\]\.description\.kk contains a NUL character "
        r"\('\\x00' at position 8\)",
        setter("tasks", 2, "description", "kk", value="Бұғаттау\u2400"),
        "base",
        "base",
    ),
    (
        "NUL in a name",
        setter("name", "en", value="\x00"),
        r"template 'base': name\.en contains a NUL character",
        setter("name", "en", value="0"),
        "base",
        "base",
    ),
    (
        "lone surrogate in a title",
        setter("tasks", 0, "title", "en", value="Block \ud800"),
        r"template 'base': tasks\[0\]\.title\.en contains a lone surrogate "
        r"\('\\ud800' at position 6\)",
        setter("tasks", 0, "title", "en", value="Block \U0001f6ab"),
        "base",
        "base",
    ),
    (
        "lone surrogate in a class",
        setter("classes", 0, value="\udfff"),
        r"template 'base': classes\[0\] contains a lone surrogate",
        setter("classes", 0, value="scanning"),
        "base",
        "base",
    ),
    (
        "title too long",
        setter("tasks", 1, "title", "ru", value="ы" * (MAX_TITLE + 1)),
        r"template 'base': tasks\[1\]\.title\.ru is 201 characters long \(at most 200\)",
        setter("tasks", 1, "title", "ru", value="ы" * MAX_TITLE),
        "base",
        "base",
    ),
    (
        "description too long",
        setter("tasks", 1, "description", "kk", value="ә" * (MAX_DESCRIPTION + 1)),
        r"tasks\[1\]\.description\.kk is 2001 characters long \(at most 2000\)",
        setter("tasks", 1, "description", "kk", value="ә" * MAX_DESCRIPTION),
        "base",
        "base",
    ),
    (
        "title not a string",
        setter("tasks", 1, "title", "en", value=True),
        r"template 'base': tasks\[1\]\.title\.en must be a string, not bool",
        setter("tasks", 1, "title", "en", value="True"),
        "base",
        "base",
    ),
    (
        "bad id: leading hyphen",
        lambda data: None,
        r"template '-ddos': the id must be 1-64 lower-case letters, digits and hyphens",
        lambda data: None,
        "-ddos",
        "ddos-",
    ),
    (
        "bad id: capital letter",
        lambda data: None,
        r"template 'DDoS': the id must be",
        lambda data: None,
        "DDoS",
        "d2dos",
    ),
    (
        "bad id: too long",
        lambda data: None,
        r"the id is 65 characters long \(at most 64\)",
        lambda data: None,
        "a" * 65,
        "a" * 64,
    ),
    (
        "bad id: trailing newline",
        lambda data: None,
        r"template 'ddos\\n': the id must be",
        lambda data: None,
        "ddos\n",
        "ddos",
    ),
    (
        "unknown class",
        setter("classes", value=["credential-attack", "phishing"]),
        r"template 'base': classes\[1\]: unknown KZ-CERT class 'phishing' \(known: ",
        setter("classes", value=["credential-attack", "scanning"]),
        "base",
        "base",
    ),
    (
        "class listed twice",
        setter("classes", value=["scanning", "scanning"]),
        r"template 'base': classes\[1\]: 'scanning' is listed twice",
        setter("classes", value=["scanning", "malware-spam"]),
        "base",
        "base",
    ),
    (
        "tasks not a list",
        setter("tasks", value={"phase": "triage"}),
        r"template 'base': tasks must be a list, not dict",
        setter("tasks", value=base()["tasks"][:1]),
        "base",
        "base",
    ),
]


@pytest.mark.parametrize(
    ("change", "message", "neighbour", "bad_id", "good_id"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_validation_refuses_the_mistake_and_accepts_its_neighbour(
    change: Callable[[dict[str, Any]], None],
    message: str,
    neighbour: Callable[[dict[str, Any]], None],
    bad_id: str,
    good_id: str,
) -> None:
    known = kz_cert_classes()
    refused = base()
    change(refused)
    with pytest.raises(TemplateError, match=message) as caught:
        parse_template(bad_id, refused, known_classes=known)
    assert isinstance(caught.value, QorganError)
    # The message is fit to show and to store: printable, and encodable as UTF-8.
    str(caught.value).encode("utf-8")
    assert "\x00" not in str(caught.value)

    accepted = base()
    neighbour(accepted)
    template = parse_template(good_id, accepted, known_classes=known)
    assert parse_template(good_id, template.to_data(), known_classes=known) == template


def test_error_carries_the_template_the_task_and_the_source() -> None:
    data = base()
    data["tasks"][3]["phase"] = "lessons"
    with pytest.raises(TemplateError) as caught:
        parse_template("base", data, source="database")
    assert caught.value.template_id == "base"
    assert caught.value.task_index == 3
    assert str(caught.value).startswith("database: template 'base': tasks[3].phase")


def test_unknown_classes_pass_without_known_classes() -> None:
    """The organisation's copy is checked against the taxonomy only by a caller that has it."""
    data = base()
    data["classes"] = ["phishing"]
    assert parse_template("base", data).classes == ("phishing",)


def test_a_long_unknown_key_is_cut_short_in_the_message() -> None:
    data = base()
    data["x" * 5000] = 1
    with pytest.raises(TemplateError) as caught:
        parse_template("base", data)
    assert len(str(caught.value)) < 200


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@given(
    name=JSON | st.just(texts("N")),
    classes=JSON | st.just(["scanning"]),
    phase=JSON | st.sampled_from(PHASES),
    title=JSON | st.just(texts("T")),
    description=JSON | st.just(texts("D")),
    extra=st.dictionaries(st.sampled_from(["tasks", "name", "other"]), JSON, max_size=1),
)
def test_any_json_is_accepted_or_refused_with_a_template_error(
    name: Any, classes: Any, phase: Any, title: Any, description: Any, extra: dict[str, Any]
) -> None:
    """Whatever an edited copy holds, the validator answers with a Template or a
    TemplateError, never with a TypeError or KeyError from deep inside."""
    data = {
        "name": name,
        "classes": classes,
        "tasks": [{"phase": phase, "title": title, "description": description}],
        **extra,
    }
    try:
        template = parse_template("fuzz", data)
    except TemplateError:
        return
    assert parse_template("fuzz", template.to_data()) == template


# --------------------------------------------------------------------------- the file loader


def test_load_templates_refuses_a_duplicate_id() -> None:
    body = json.dumps(base())
    text = f"templates:\n  base: {body}\n  other: {body}\n  base: {body}\n"
    with pytest.raises(TemplateError, match="duplicate key 'base'"):
        load_templates(text, source="custom.yml")
    text = f"templates:\n  base: {body}\n  other: {body}\n"
    assert tuple(load_templates(text)) == ("base", "other")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("templates: [\n", "not valid YAML"),
        ("- a\n", "the document must be a mapping with only 'templates'"),
        ("templates: {}\nextra: 1\n", "the document must be a mapping with only 'templates'"),
        ("templates: {}\n", "'templates' must map template ids to templates"),
    ],
)
def test_load_templates_refuses_a_malformed_document(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(message)) as caught:
        load_templates(text, source="custom.yml")
    assert caught.value.source == "custom.yml"


def test_load_templates_names_the_file_and_the_template() -> None:
    data = base()
    data["tasks"][0]["title"]["en"] = ""
    text = "templates:\n  base: " + json.dumps(data) + "\n"
    with pytest.raises(TemplateError) as caught:
        load_templates(text, source="custom.yml")
    assert str(caught.value) == "custom.yml: template 'base': tasks[0].title.en is empty"


# --------------------------------------------------------------------------- choosing and showing


def test_for_class_picks_password_guessing_for_credential_attack() -> None:
    templates = default_templates()
    chosen = for_class("credential-attack", templates)
    assert chosen is not None
    assert chosen.id == "password-guessing"
    unauthorised = for_class("protection-bypass", templates)
    assert unauthorised is not None
    assert unauthorised.id == "unauthorised-access"


def test_for_class_returns_none_for_a_class_no_template_lists() -> None:
    templates = default_templates()
    # "scanning" is a real KZ-CERT class, and every other class has a template...
    assert "scanning" in kz_cert_classes()
    listed = {c for t in templates.values() for c in t.classes}
    assert listed == kz_cert_classes() - {"scanning"}
    assert for_class("scanning", templates) is None
    # ... so a template that listed it would be found.
    data = templates["ddos"].to_data()
    data["classes"].append("scanning")
    edited = {**templates, "ddos": parse_template("ddos", data)}
    found = for_class("scanning", edited)
    assert found is not None
    assert found.id == "ddos"


def test_for_class_takes_the_first_template_in_order() -> None:
    templates = default_templates()
    data = templates["malware"].to_data()
    data["classes"] = ["credential-attack"]
    first = parse_template("local-first", data)
    assert for_class("credential-attack", {"local-first": first, **templates}) == first
    assert (
        for_class("credential-attack", {**templates, "local-first": first})
        == (templates["password-guessing"])
    )


@pytest.mark.parametrize(
    ("language", "mapping", "expected"),
    [
        ("kk", {"kk": "Қазақша", "ru": "По-русски", "en": "English"}, "Қазақша"),
        ("ru", {"kk": "Қазақша", "ru": "По-русски", "en": "English"}, "По-русски"),
        ("ru-RU", {"kk": "Қазақша", "ru": "По-русски", "en": "English"}, "По-русски"),
        ("kk_KZ", {"kk": "Қазақша", "ru": "По-русски", "en": "English"}, "Қазақша"),
        ("kk", {"kk": "", "ru": "По-русски", "en": "English"}, "English"),
        ("de", {"kk": "Қазақша", "ru": "По-русски", "en": "English"}, "English"),
        ("kk", {"kk": " ", "ru": "По-русски", "en": ""}, "По-русски"),
        ("en", {"ru": "По-русски"}, "По-русски"),
        ("en", {"kk": "", "ru": "", "en": ""}, ""),
    ],
)
def test_localised_falls_back_to_english_then_any(
    language: str, mapping: dict[str, str], expected: str
) -> None:
    assert localised(mapping, language) == expected


def test_localised_reads_a_template() -> None:
    template = default_templates()["password-guessing"]
    assert localised(template.name, "ru") == "Подбор паролей"
    assert localised(template.name, "kk") == "Құпиясөздерді іріктеу"
