"""The account service's and password policy's messages are shown translated: every message
they can give on a page is in the catalogues (through ``web.labels.SERVICE_MESSAGES``)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from qorgan.core import accounts, security
from qorgan.web.i18n import translations
from qorgan.web.labels import SERVICE_MESSAGES

from .conftest import PASSWORD, World, sign_in

#: Refusals only the command line gives (sharing is not on any page yet).
CLI_ONLY = {
    "an organisation already sees its own records",
    "no such partner organisation",
}


def test_every_page_message_of_the_service_is_listed() -> None:
    source = Path(accounts.__file__).read_text(encoding="utf-8")
    literals = set(re.findall(r'AccountError\(\s*"([^"{]+)"\s*\)', source))
    assert literals, "the account service's messages were not found"
    assert literals - CLI_ONLY <= SERVICE_MESSAGES, literals - CLI_ONLY - SERVICE_MESSAGES
    old = security.hash_password("Previous-Passphrase-77")
    problems = set()
    for candidate in ("a", "x" * 300, "password1", "aaaaaaaaa", "Previous-Passphrase-77"):
        found = security.password_problems(candidate, previous_hashes=[old])
        problems.update(found)
    assert len(problems) == 5, problems  # each kind of refusal was produced
    assert problems <= SERVICE_MESSAGES, problems - SERVICE_MESSAGES
    for language in ("kk", "ru"):
        gettext = translations(language).gettext
        untranslated = {m for m in SERVICE_MESSAGES if gettext(m) == m}
        assert not untranslated, (language, untranslated)


def test_a_refused_password_is_explained_in_kazakh(client: TestClient, world: World) -> None:
    csrf = sign_in(client, world["a.analyst"])
    client.post("/language", data={"language": "kk", "csrf_token": csrf})
    refused = client.post(
        "/account/password", data={"csrf_token": csrf, "current": PASSWORD, "new": "password1"}
    )
    assert refused.status_code == 400
    expected = translations("kk").gettext(
        "this password is in a list of common or breached passwords"
    )
    # Shown as a sentence: with a capital letter.
    assert expected[:1].upper() + expected[1:] in refused.text
