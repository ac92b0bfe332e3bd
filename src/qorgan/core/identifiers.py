"""Kazakhstan's 12-digit identifiers: the IIN of a person and the BIN of an organisation.

Whatever takes an IIN or a BIN from a form, a file or an API is to parse it here first, so a
typo is refused with a reason the user can act on before it reaches a registry lookup or a
consent record. Pure Python, no I/O: the rules are the published layout and check digit. It
lives in ``core`` because more than one package needs the one rule: privacy (forms, registry,
leak reports) and intel (finding IINs to redact before sharing).

:func:`normalise_identifier` is the one spelling of any personal identifier (IIN, phone,
e-mail, user name) that objections to AI processing are kept and compared in: the anomaly
models (detection) and the findings store (incidents) must agree on it;
:func:`identifier_spellings` gives the other ways a log writes the same person (a name's words
in another order or with initials, a phone with the trunk prefix), which an objection keeps too.

An IIN is personal data (it encodes the birth date and sex), so no message, ``repr`` or log line
made here ever holds the number: errors say what is wrong, not what was typed, and
:func:`mask_iin` gives the form for pages and logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from itertools import permutations
from typing import Literal
from zoneinfo import ZoneInfo

from qorgan.core.errors import QorganError

__all__ = [
    "Bin",
    "BinKind",
    "EntityType",
    "IdentifierError",
    "Iin",
    "check_digit",
    "identifier_spellings",
    "is_valid_bin",
    "is_valid_iin",
    "mask_iin",
    "normalise_identifier",
    "parse_bin",
    "parse_iin",
]

LENGTH = 12
_FIRST_WEIGHTS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
#: Used only when the first weights give 10, which is not a digit.
_SECOND_WEIGHTS = (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2)
#: "Today" for the future-birth-date rule is Kazakhstan's date (one zone, UTC+5, since 2024),
#: not the server's: a child born just after midnight in Almaty is not "born tomorrow".
_KAZAKHSTAN = ZoneInfo("Asia/Almaty")
#: IIN digit 7: the first year of the century and the sex.
_CENTURIES: dict[str, tuple[int, Literal["male", "female"]]] = {
    "1": (1800, "male"),
    "2": (1800, "female"),
    "3": (1900, "male"),
    "4": (1900, "female"),
    "5": (2000, "male"),
    "6": (2000, "female"),
}


class IdentifierError(QorganError):
    """An IIN or BIN that cannot be right; the message says why and never repeats the number."""


class EntityType(StrEnum):
    """BIN digit 5: what kind of taxpayer registered."""

    resident = "resident"  # 4: a legal entity resident in Kazakhstan
    non_resident = "non_resident"  # 5: a non-resident legal entity
    joint_entrepreneur = "joint_entrepreneur"  # 6: an individual entrepreneur in joint venture


class BinKind(StrEnum):
    """BIN digit 6: which part of the organisation the number belongs to."""

    head = "head"  # 0: the head organisation
    branch = "branch"  # 1
    representative = "representative"  # 2: a representative office
    farm = "farm"  # 3: a peasant or farm enterprise


_ENTITY_TYPES = {
    "4": EntityType.resident,
    "5": EntityType.non_resident,
    "6": EntityType.joint_entrepreneur,
}
_KINDS = {"0": BinKind.head, "1": BinKind.branch, "2": BinKind.representative, "3": BinKind.farm}


@dataclass(frozen=True, slots=True, repr=False)
class Iin:
    """A parsed IIN. Its ``repr`` is masked so that logging the object does not log the person."""

    value: str
    birth_date: date
    sex: Literal["male", "female"]

    def __repr__(self) -> str:
        return f"Iin(value={mask_iin(self.value)!r})"


@dataclass(frozen=True, slots=True)
class Bin:
    """A parsed BIN. ``registered`` is ``(yy, month)``: the number gives no century."""

    value: str
    registered: tuple[int, int]
    entity_type: EntityType
    kind: BinKind


def check_digit(first11: str) -> int | None:
    """The check digit for the first 11 digits, or None when no digit can be valid.

    Weights 1..11, sum mod 11; a result of 10 is retried with weights 3..11, 1, 2; a second 10
    means no 12th digit makes the 11 valid.
    """
    if len(first11) != LENGTH - 1 or not (first11.isascii() and first11.isdigit()):
        raise IdentifierError("a check digit is computed from 11 digits")
    digits = [int(c) for c in first11]
    for weights in (_FIRST_WEIGHTS, _SECOND_WEIGHTS):
        result = sum(w * d for w, d in zip(weights, digits, strict=True)) % 11
        if result != 10:
            return result
    return None


def _digits(value: object, name: str) -> str:
    """The 12 ASCII digits of ``value`` (surrounding whitespace allowed), or IdentifierError."""
    a_name = "an IIN" if name == "IIN" else f"a {name}"
    if not isinstance(value, str):
        raise IdentifierError(f"{a_name} is text of 12 digits")
    # isascii first: str.isdigit accepts Arabic-Indic, superscript and other digits that int()
    # would either read or choke on; only 0-9 are an identifier's digits.
    text = value.strip()
    if text and not (text.isascii() and text.isdigit()):
        raise IdentifierError(f"{a_name} has only the digits 0-9")
    if len(text) != LENGTH:
        raise IdentifierError(f"{a_name} has 12 digits, not {len(text)}")
    return text


def _check(text: str, name: str) -> None:
    if check_digit(text[:11]) != int(text[11]):
        raise IdentifierError(f"the {name}'s check digit does not match")


def parse_iin(value: str, *, today: date | None = None) -> Iin:
    """Parse a person's IIN: 12 digits, a real birth date not after ``today``, the check digit.

    ``today`` defaults to the current date in Kazakhstan; tests pass a fixed one.
    """
    text = _digits(value, "IIN")
    century = _CENTURIES.get(text[6])
    if century is None:
        raise IdentifierError("the IIN's century digit must be 1-6")
    start, sex = century
    try:
        birth_date = date(start + int(text[0:2]), int(text[2:4]), int(text[4:6]))
    except ValueError:
        # from None: the ValueError adds nothing for the user and would only lengthen logs.
        raise IdentifierError("the IIN's date of birth is not a real date") from None
    if today is None:
        today = datetime.now(_KAZAKHSTAN).date()
    if birth_date > today:
        raise IdentifierError("the IIN's date of birth is in the future")
    _check(text, "IIN")
    return Iin(value=text, birth_date=birth_date, sex=sex)


def parse_bin(value: str) -> Bin:
    """Parse an organisation's BIN: registration month, type and kind digits, the check digit."""
    text = _digits(value, "BIN")
    month = int(text[2:4])
    if not 1 <= month <= 12:
        raise IdentifierError("the BIN's registration month must be 01-12")
    entity_type = _ENTITY_TYPES.get(text[4])
    if entity_type is None:
        raise IdentifierError("the BIN's type digit must be 4, 5 or 6")
    kind = _KINDS.get(text[5])
    if kind is None:
        raise IdentifierError("the BIN's kind digit must be 0-3")
    _check(text, "BIN")
    return Bin(value=text, registered=(int(text[0:2]), month), entity_type=entity_type, kind=kind)


def is_valid_iin(value: str, *, today: date | None = None) -> bool:
    """Whether :func:`parse_iin` accepts ``value``."""
    try:
        parse_iin(value, today=today)
    except IdentifierError:
        return False
    return True


def is_valid_bin(value: str) -> bool:
    """Whether :func:`parse_bin` accepts ``value``."""
    try:
        parse_bin(value)
    except IdentifierError:
        return False
    return True


def mask_iin(value: str) -> str:
    """``"********1234"``: the last 4 digits, enough for a person to recognise their own number.

    Never raises, since it is called on the way to a page or a log line: anything that is not
    12 ASCII digits (a typo, a name pasted into the field) comes back as 12 stars, as its tail
    may be as personal as an IIN's.
    """
    text = value.strip() if isinstance(value, str) else ""
    if len(text) == LENGTH and text.isascii() and text.isdigit():
        return "*" * 8 + text[8:]
    return "*" * LENGTH


_PHONE = re.compile(r"\+?[\d\s()\-]{7,20}")


def normalise_identifier(identifier: str) -> str:
    """The one spelling of a person's identifier (IIN, phone, e-mail, user name, name) in which
    an objection is kept and each identifier of an event is compared, so an objection matches
    however a log writes it: case and runs of space do not count (``Aigerim  Saparova`` is
    ``aigerim saparova``); a phone number is its digits alone (``+7 (701) 123-45-67`` is
    ``77011234567``; an IIN is its 12 digits); a Windows account drops its domain
    (``CORP\\Alice`` is ``alice``). Applying it twice gives the same as once."""
    text = " ".join(identifier.split()).casefold()
    if "\\" in text:
        text = text.rsplit("\\", 1)[1].strip()
    if _PHONE.fullmatch(text):
        return re.sub(r"\D", "", text)
    return text


#: A name's word: letters, perhaps joined by hyphens (``Saparova-Ivanova``).
_NAME_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
#: Kazakhstan's numbers: country code 7, ten national digits, trunk prefix 8.
_COUNTRY, _TRUNK, _NATIONAL = "7", "8", 10


def identifier_spellings(identifier: str) -> tuple[str, ...]:
    """Every spelling, each in :func:`normalise_identifier`'s form, in which a log may name the
    person ``identifier`` names, the normalised identifier first: an objection keeps them all,
    so an event is left out however it writes the person, while each event is still read once.

    - A full name of two or three words of letters is also each order of its words (Russian
      and Kazakh records put the surname first: ``Saparova Aigerim``), each two of its words
      (first name and patronymic, ``Aigerim Nurlanovna``), and two words with one of them cut
      to its initial (``Saparova A``, ``A. Saparova``; the dot is not compared).
    - A Kazakhstan phone number (``+7`` or the trunk prefix ``8`` and ten digits, or the ten
      alone) is also written in the other two ways: ``+7 701 123 45 67``, ``8 701 123 45 67``
      and ``701 123 45 67`` are one person.

    A spelling may name another person too (another ``Saparova A.``): for an objection, leaving
    out an event too many is the side to err on."""
    first = normalise_identifier(identifier)
    spellings = dict.fromkeys([first])
    words = first.split(" ")
    if 2 <= len(words) <= 3 and all(_NAME_WORD.fullmatch(w) for w in words):
        for size in (len(words), 2):
            for chosen in permutations(words, size):
                spellings[" ".join(chosen)] = None
        for a, b in permutations(words, 2):
            spellings[f"{a[0]} {b}"] = None
            spellings[f"{b} {a[0]}"] = None
    elif first.isascii() and first.isdigit():
        national = None
        if len(first) == _NATIONAL + 1 and first[0] in (_COUNTRY, _TRUNK):
            national = first[1:]
        elif len(first) == _NATIONAL and first[0] == _COUNTRY:
            national = first
        if national is not None:
            for spelling in (_COUNTRY + national, _TRUNK + national, national):
                spellings[spelling] = None
    return tuple(spellings)
