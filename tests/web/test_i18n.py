"""The interface in Kazakh, Russian and English: the catalogues hold a finished translation of
every message the code and templates mark and of every title of Qorgan's own rule pack
(extracted here as ``make messages`` does), once each, with placeholders and names intact;
pages come in the chosen language; times are shown in Almaty, written the language's way."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from io import BytesIO
from pathlib import Path

import httpx
import pytest
import yaml
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient

from qorgan.core.db import unit_of_work
from qorgan.core.i18n import LANGUAGES, local_time
from qorgan.core.models import User
from qorgan.detection.loader import BUILTIN_RULES
from qorgan.web.app import create_app
from qorgan.web.i18n import (
    CATALOGUES,
    catalogue_path,
    extract_rule_titles,
    pack_rule_ids,
    translations,
)

from .conftest import World, alert_payload, csrf_of, sign_in

WEB = CATALOGUES.parent
#: Where ``make messages`` extracts from: the patterns of babel.cfg are relative to it.
ROOT = WEB.parent
CONFIG = WEB / "babel.cfg"
TEMPLATE = CATALOGUES / "messages.pot"
LANGUAGE_COOKIE = "qorgan_lang"
PLURAL_FORMS = {
    "kk": "nplurals=2; plural=(n != 1);",
    "ru": (
        "nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && "
        "(n%100<10 || n%100>=20) ? 1 : 2);"
    ),
    "en": "nplurals=2; plural=(n != 1);",
}
#: printf-style (%s, %(name)s) and str.format-style ({name}, {0}) placeholders.
PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[-#0 +]*\d*(?:\.\d+)?[sdifeEgGxXorca%]|\{[^{}]*\}")
#: A word of capitals only (CSRF, API, SSH), also before a hyphen (CSRF-токен).
ABBREVIATION = re.compile(r"[^\W\d_a-zа-яёәғқңөұүіһ]{2,}(?![^\W\d_])")
#: Commands and code quoted in backticks stay as they are.
CODE = re.compile(r"`[^`]+`")
#: Names, codes and formats that are written the same in every language.
KEPT = (
    "Qorgan", "SOC", "CERT", "KZ-CERT", "API", "TOTP", "QR", "ENISA RSIT", "MiB",
    "EVTX", "JSON", "syslog", "Zeek", "CEF", "gzip", "UTC+5",
)  # fmt: skip


@cache
def extracted() -> dict[str, list[str]]:
    """msgid -> where it is used, extracted with the mapping and keywords of ``babel.cfg``."""
    with CONFIG.open(encoding="utf-8") as config:
        method_map, options_map = parse_mapping_cfg(config, str(CONFIG))
    found: dict[str, list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        ROOT, method_map, options_map, keywords=DEFAULT_KEYWORDS
    ):
        msgid = message if isinstance(message, str) else message[0]
        found.setdefault(msgid, []).append(f"{filename}:{lineno}")
    return found


@cache
def catalogue(language: str) -> Catalog:
    with catalogue_path(language).open("rb") as source:
        return read_po(source, locale=language)


def entries(catalog: Catalog) -> Iterator[Message]:
    return (message for message in catalog if message.id)


def key(message: Message) -> str:
    return message.id if isinstance(message.id, str) else message.id[0]


def strings(value: str | tuple[str, ...] | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def shown(ids: set[str] | list[str]) -> str:
    """Ids with where they are used, one a line, for an assertion message."""
    uses = extracted()
    return "".join(f"\n  {i!r} ({', '.join(uses.get(i, ['not in the code']))})" for i in ids)


def test_extraction_finds_the_marked_messages() -> None:
    messages = extracted()
    # From templates and from Python code (the `_l` keyword of babel.cfg), with no empty id.
    assert "Sign in" in messages and "Alerts" in messages
    assert "Wrong e-mail or password." in messages  # routes/auth.py
    assert "False positive" in messages  # labels.py and the templates
    assert "" not in messages
    assert len(messages) > 100


def test_the_template_is_current() -> None:
    """messages.pot holds what an extraction gives now: the same messages, each once, with the
    same python-format flag (line numbers aside, which move with every edit)."""
    with TEMPLATE.open("rb") as source:
        template = {key(m): m.python_format for m in entries(read_po(source))}
    ids = set(extracted())
    assert not ids - set(template), "not in messages.pot, run `make messages`:" + shown(
        sorted(ids - set(template))
    )
    assert not set(template) - ids, (
        f"in messages.pot but not in the code: {sorted(set(template) - ids)}"
    )
    flags = {i: Message(i).python_format for i in ids}
    assert flags == template, {i for i in ids if flags[i] != template[i]}


@pytest.mark.parametrize("path", [TEMPLATE, *(catalogue_path(lang) for lang in LANGUAGES)])
def test_no_message_is_listed_twice(path: Path) -> None:
    """Babel's reader keeps the last of two entries with one msgid silently: the files
    themselves must list each message once."""
    text = path.read_text(encoding="utf-8")
    ids = re.findall(r'^msgid "(.*)"$', text, flags=re.MULTILINE)
    assert len(ids) > 100
    twice = sorted(i for i, n in Counter(ids).items() if n > 1)
    assert not twice, f"{path}: listed more than once: {twice}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_has_a_finished_translation(language: str) -> None:
    catalog = catalogue(language)
    ids = set(extracted())
    present = {key(m) for m in entries(catalog)}
    problems = {
        "not in the catalogue (run `make messages`)": sorted(ids - present),
        "in the catalogue but no longer in the code (run `make messages`)": sorted(present - ids),
        "obsolete (#~) entries": sorted(str(i) for i in catalog.obsolete),
        "not translated": sorted(
            key(m) for m in entries(catalog) if not all(s.strip() for s in strings(m.string))
        ),
        "fuzzy, to be checked": sorted(key(m) for m in entries(catalog) if m.fuzzy),
    }
    report = "".join(f"\n{what}:" + shown(found) for what, found in problems.items() if found)
    assert not report, f"{catalogue_path(language)}:{report}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogue_header(language: str) -> None:
    catalog = catalogue(language)
    assert str(catalog.locale) == language
    assert catalog.plural_forms == PLURAL_FORMS[language]
    assert not catalog.fuzzy, f"{language}: the header is marked fuzzy"


@pytest.mark.parametrize("language", ["kk", "ru"])
def test_kazakh_and_russian_are_not_left_in_english(language: str) -> None:
    """Only names and codes read the same as the English: a copied catalogue is caught."""
    messages = list(entries(catalogue(language)))
    same = [key(m) for m in messages if m.string == m.id and m.id not in KEPT]
    assert not same, f"{language}: left in English:" + shown(same)
    text = " ".join(strings(m.string)[0] for m in messages)
    assert len(re.findall(r"[А-яЁёӘәҒғҚқҢңӨөҰұҮүІіҺһ]", text)) > len(re.findall(r"[A-Za-z]", text))
    kazakh_letters = re.findall(r"[ӘәҒғҚқҢңӨөҰұҮүІі]", text)
    assert bool(kazakh_letters) == (language == "kk")


@pytest.mark.parametrize("language", ["kk", "ru"])
def test_translations_begin_as_the_source_does(language: str) -> None:
    """A sentence or label begins with a capital letter in every language, and a message that
    continues another (a part of a joined error, a shortcut's description) with a small one."""
    problems = []
    for message in entries(catalogue(language)):
        source, translated = key(message), strings(message.string)[0]
        if not (source[:1].isalpha() and translated[:1].isalpha()):
            continue  # begins with a placeholder or a sign
        if any(ABBREVIATION.match(t) for t in (source, translated)):
            continue  # begins with an abbreviation (CSRF, API), which keeps its case
        if source[:1].isupper() != translated[:1].isupper():
            problems.append(f"{source!r} -> {translated!r}")
    assert not problems, f"{language}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("language", LANGUAGES)
def test_placeholders_names_and_commands_are_kept(language: str) -> None:
    problems = []
    for message in entries(catalogue(language)):
        source = " ".join(strings(message.id))
        for translated in strings(message.string):
            for pattern in (PLACEHOLDER, CODE):
                wanted = Counter(pattern.findall(source))
                got = Counter(pattern.findall(translated))
                if wanted != got:
                    problems.append(f"{source!r} -> {translated!r}: {dict(wanted)} != {dict(got)}")
            for name in KEPT:
                if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", source) and (
                    name not in translated
                ):
                    problems.append(f"{source!r} -> {translated!r}: {name!r} is not kept")
        if "python-format" in message.flags:
            errors = list(message.check(catalogue(language)))
            problems.extend(f"{source!r}: {error}" for error in errors)
    assert not problems, f"{language}:\n  " + "\n  ".join(problems)


# --- Pages in the chosen language ------------------------------------------------------------


def sign_in_text(language: str) -> str:
    translated = catalogue(language)["Sign in"].string
    assert translated, f"{language}: 'Sign in' is not translated"
    return translated


def assert_in_language(response: httpx.Response, language: str) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-language"] == language
    assert f'<html lang="{language}">' in response.text
    title = re.search(r"<h1>(.*?)</h1>", response.text)
    assert title is not None, response.text
    assert title.group(1) == sign_in_text(language), f"{language}: {title.group(1)!r}"


@pytest.mark.parametrize("language", ["kk", "ru", "en"])
def test_login_page_in_the_cookie_language(client: TestClient, language: str) -> None:
    client.cookies.set(LANGUAGE_COOKIE, language)
    response = client.get("/login")
    assert_in_language(response, language)
    # The labels of the form too, and no other language's.
    assert catalogue(language)["Password"].string in response.text
    others = [sign_in_text(other) for other in LANGUAGES if other != language]
    assert not any(f">{text}<" in response.text for text in others)


def test_kazakh_is_the_default(client: TestClient) -> None:
    response = client.get("/login")  # no cookie, no Accept-Language
    assert "accept-language" not in {k.lower() for k in response.request.headers}
    assert_in_language(response, "kk")


@pytest.mark.parametrize(
    ("accept", "language"),
    [
        ("ru-RU,ru;q=0.9", "ru"),
        ("en-GB,en;q=0.9,ru;q=0.8", "en"),
        ("de-DE,de;q=0.9,ru;q=0.5,en;q=0.3", "ru"),
        ("kk-KZ,ru;q=0.9", "kk"),
        ("fr-FR,fr;q=0.9", "kk"),
    ],
)
def test_browser_languages(client: TestClient, accept: str, language: str) -> None:
    assert_in_language(client.get("/login", headers={"Accept-Language": accept}), language)


def test_the_cookie_wins_over_the_browser(client: TestClient) -> None:
    client.cookies.set(LANGUAGE_COOKIE, "kk")
    response = client.get("/login", headers={"Accept-Language": "ru-RU,ru;q=0.9"})
    assert_in_language(response, "kk")


def test_choosing_a_language_before_signing_in_sticks(client: TestClient) -> None:
    page = client.get("/login")
    assert_in_language(page, "kk")
    response = client.post(
        "/language",
        data={"language": "ru", "next": "/login", "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert client.cookies.get(LANGUAGE_COOKIE) == "ru"
    assert_in_language(client.get("/login"), "ru")
    assert_in_language(client.get("/login"), "ru")  # and stays
    # Without the form's token the choice is refused.
    refused = client.post("/language", data={"language": "kk"}, follow_redirects=False)
    assert refused.status_code == 403
    assert_in_language(client.get("/login"), "ru")


def test_the_choice_is_stored_on_the_user(client: TestClient, world: World) -> None:
    analyst = world["a.analyst"]
    csrf = sign_in(client, analyst)  # the fixture's users chose English
    assert client.get("/alerts").headers["content-language"] == "en"
    response = client.post(
        "/language",
        data={"language": "ru", "next": "/alerts", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/alerts"
    alerts = client.get("/alerts")
    assert alerts.headers["content-language"] == "ru"
    assert f"<h1>{catalogue('ru')['Alerts'].string}</h1>" in alerts.text
    with unit_of_work(world.factory) as session:
        user = session.get(User, analyst.id)
        assert user is not None and user.language == "ru"

    # Another browser, with no cookie at all: Kazakh until the sign-in, then the user's choice.
    with TestClient(
        create_app(world.settings, start_runner=False), base_url="http://127.0.0.1"
    ) as other:
        assert_in_language(other.get("/login"), "kk")
        sign_in(other, analyst)
        assert other.cookies.get(LANGUAGE_COOKIE) == "ru"  # the sign-in set it
        other.cookies.delete(LANGUAGE_COOKIE)
        page = other.get("/alerts", headers={"Accept-Language": "en"})
        assert page.headers["content-language"] == "ru"  # the stored choice, not the browser
        assert f"<h1>{catalogue('ru')['Alerts'].string}</h1>" in page.text


# --- Times --------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["kk", "ru"])
def test_alert_times_are_shown_in_almaty(client: TestClient, world: World, language: str) -> None:
    payload = alert_payload(1)
    payload["time"] = "2026-11-20T20:30:00Z"
    token = world.token("a.analyst", ["alerts:write"])
    response = client.post(
        "/api/v1/alerts", json=[payload], headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 1

    csrf = sign_in(client, world["a.analyst"])
    chosen = client.post(
        "/language",
        data={"language": language, "next": "/alerts", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert chosen.status_code == 303
    page = client.get("/alerts")
    assert page.status_code == 200 and page.headers["content-language"] == language

    event = datetime(2026, 11, 20, 20, 30, tzinfo=UTC)
    # The inbox's rows: compact, the same in every language, in Almaty time.
    assert ">2026-11-21 01:30:00</time>" in page.text, re.findall(r">[^<]*:30[^<]*<", page.text)
    assert "2026-11-20 20:30:00" not in page.text
    # The alert itself: written the language's way.
    expected = local_time(event, language, "Asia/Almaty")
    assert "01:30" in expected and "21" in expected  # the next day, 01:30 in Almaty (UTC+5)
    assert expected != local_time(event, "en", "Asia/Almaty")
    alert_id = re.search(r'data-alert-id="(\d+)"', page.text).group(1)  # type: ignore[union-attr]
    alert_page = client.get(f"/alerts/{alert_id}").text
    assert expected in alert_page, re.findall(r">[^<]*:30[^<]*<", alert_page)
    assert local_time(event, language, "UTC") not in alert_page
    # The level and status of the row are in the language too.
    for english in ("High", "New"):
        assert f">{catalogue(language)[english].string}<" in page.text


# --- The rule pack's titles -----------------------------------------------------------------


def pack_titles() -> dict[str, str]:
    """Rule id -> title of every rule and correlation of Qorgan's own pack."""
    titles = {}
    for path in sorted(BUILTIN_RULES.rglob("*.yml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(document, dict) and "id" in document:
                titles[document["id"]] = document["title"]
    return titles


def test_rule_titles_are_extracted_with_their_rule() -> None:
    source = b"""title: First Rule
id: 11111111-1111-4111-8111-111111111111
detection: {selection: {a: 1}, condition: selection}
---
title: 'Second: Correlation'
id: 22222222-2222-4222-8222-222222222222
correlation: {type: event_count}
---
action: global
"""
    found = list(extract_rule_titles(BytesIO(source), (), (), {}))
    assert found == [
        (1, None, "First Rule", ["rule 11111111-1111-4111-8111-111111111111"]),
        (5, None, "Second: Correlation", ["rule 22222222-2222-4222-8222-222222222222"]),
    ]


def test_every_pack_rule_title_is_extracted_and_translated() -> None:
    titles = pack_titles()
    assert len(titles) >= 60 and set(titles) == pack_rule_ids()
    uses = extracted()
    missing = sorted(t for t in titles.values() if t not in uses)
    assert not missing, f"rule titles not extracted (see babel.cfg): {missing}"
    assert all(any("detection/rules/" in u for u in uses[t]) for t in titles.values())
    for language in ("kk", "ru"):
        gettext = translations(language).gettext
        untranslated = sorted(t for t in titles.values() if gettext(t) == t)
        assert not untranslated, f"{language}: rule titles without a translation:" + shown(
            untranslated
        )


def test_pack_rule_titles_are_shown_translated(client: TestClient, world: World) -> None:
    pack_id, title = next(iter(sorted(pack_titles().items())))
    own = alert_payload(1)
    own["rule"] = {**own["rule"], "id": pack_id, "title": title}  # type: ignore[dict-item]
    other = alert_payload(2)  # another rule with the same title: shown as written
    other["rule"] = {**other["rule"], "title": title}  # type: ignore[dict-item]
    token = world.token("a.analyst", ["alerts:write"])
    sent = client.post(
        "/api/v1/alerts", json=[own, other], headers={"Authorization": f"Bearer {token}"}
    )
    assert sent.status_code == 200 and sent.json()["created"] == 2, sent.text
    csrf = sign_in(client, world["a.analyst"])
    client.post("/language", data={"language": "kk", "csrf_token": csrf})
    page = client.get("/alerts").text
    kazakh = translations("kk").gettext(title)
    assert kazakh != title
    shown_titles = re.findall(r'class="open">([^<]*)</a>', page)
    assert sorted(shown_titles) == sorted([kazakh, title]), shown_titles
