"""Languages and local time: Kazakh first, then Russian and English; times shown in Almaty.

The catalogues themselves (gettext ``.po`` files) belong to the web layer; this module holds
what any interface needs: the language codes, choosing one, and formatting a UTC time.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_datetime as _babel_format

#: Interface languages, in the order they are offered; the first is the default.
LANGUAGES = ("kk", "ru", "en")
DEFAULT_LANGUAGE = LANGUAGES[0]
LANGUAGE_NAMES = {"kk": "Қазақша", "ru": "Русский", "en": "English"}


def pick_language(*candidates: str | None, accept_language: str | None = None) -> str:
    """The first supported language among ``candidates`` (user's choice, cookie), then the
    browser's ``Accept-Language`` in its order of preference, then Kazakh."""
    for candidate in candidates:
        if candidate in LANGUAGES:
            return candidate
    if accept_language:
        ranked: list[tuple[float, int, str]] = []
        for index, part in enumerate(accept_language.split(",")):
            tag, _, params = part.strip().partition(";")
            quality = 1.0
            if params.strip().startswith("q="):
                try:
                    quality = float(params.strip()[2:])
                except ValueError:
                    quality = 0.0
            ranked.append((-quality, index, tag.split("-")[0].lower()))
        for _q, _i, code in sorted(ranked):
            if code in LANGUAGES:
                return code
    return DEFAULT_LANGUAGE


def local_time(value: datetime | None, language: str, zone: str, style: str = "medium") -> str:
    """``value`` (aware) in the zone ``zone``, formatted the way ``language`` writes dates."""
    if value is None:
        return "—"
    return _babel_format(value, format=style, tzinfo=ZoneInfo(zone), locale=language)
