"""The interface's gettext catalogues (``translations/<lang>/LC_MESSAGES/messages.po``).

Catalogues are compiled in memory when first used, so no compiled ``.mo`` files are kept in the
repository or need a build step. English is the source language: its catalogue exists to show
the language is complete, and a missing translation falls back to the English text.
``_l`` marks a message in Python code for extraction; it is translated where it is shown.
The titles of Qorgan's own rule pack are messages too: :func:`extract_rule_titles` reads them
from the pack's YAML for ``make messages`` (see ``babel.cfg``), and pages translate them with
``rule_title`` (only for the pack's rules, whose ids :func:`pack_rule_ids` gives).
"""

from __future__ import annotations

import gettext
from collections.abc import Collection, Iterator, Mapping
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import IO, Any

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


def extract_rule_titles(
    fileobj: IO[bytes],
    keywords: Collection[str],
    comment_tags: Collection[str],
    options: Mapping[str, Any],
) -> Iterator[tuple[int, str | None, str, list[str]]]:
    """Babel extraction method for the rule pack's YAML: the ``title`` of every rule and
    correlation document, with the rule's id as a comment for translators."""
    import yaml

    encoding = options.get("encoding", "utf-8")
    for document in yaml.compose_all(fileobj.read().decode(encoding)):
        if not isinstance(document, yaml.MappingNode):
            continue
        fields = {
            key.value: value for key, value in document.value if isinstance(key, yaml.ScalarNode)
        }
        title = fields.get("title")
        if isinstance(title, yaml.ScalarNode) and title.value.strip():
            rule_id = fields.get("id")
            comments = [f"rule {rule_id.value}"] if isinstance(rule_id, yaml.ScalarNode) else []
            yield title.start_mark.line + 1, None, title.value, comments
