"""The interface's gettext catalogues (``translations/<lang>/LC_MESSAGES/messages.po``).

Catalogues are compiled in memory when first used, so no compiled ``.mo`` files are kept in the
repository or need a build step. English is the source language: its catalogue exists to show
the language is complete, and a missing translation falls back to the English text.
``_l`` marks a message in Python code for extraction; it is translated where it is shown.
"""

from __future__ import annotations

import gettext
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from qorgan.core.i18n import LANGUAGES

CATALOGUES = Path(__file__).resolve().parent / "translations"
DOMAIN = "messages"


def _l(message: str) -> str:
    """Mark ``message`` for translation where it is displayed (extraction keyword)."""
    return message


def catalogue_path(language: str) -> Path:
    return CATALOGUES / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(language: str) -> gettext.GNUTranslations | gettext.NullTranslations:
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}")
    path = catalogue_path(language)
    if not path.exists():
        return gettext.NullTranslations()
    with path.open("rb") as source:
        catalog = read_po(source, locale=language)
    buffer = BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


@cache
def pack_rule_ids() -> frozenset[str]:
    """Ids of the rules (and correlations) of Qorgan's own pack, whose titles are translated
    in the catalogues; other rules' titles are shown as written."""
    import yaml

    from qorgan.detection.loader import BUILTIN_RULES

    found = set()
    for path in BUILTIN_RULES.rglob("*.yml"):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(document, dict) and isinstance(document.get("id"), str):
                found.add(document["id"])
    return frozenset(found)
