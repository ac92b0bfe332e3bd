"""The CSV of a leak's affected subjects, as a holder uploads it: checked row by row, and taken
whole or not at all.

A holder exports thousands of rows from a spreadsheet under a one-working-day deadline; a row
with a mistyped IIN must be found and named, not stored, and not silently skipped (the person
would never be told). So every row is checked, every problem is reported with its row number
(the spreadsheet's: the header is row 1) and a reason, and if any row is bad nothing is
returned. Problems never repeat the IIN, the address or the name: they are personal data, and
an error message ends up in logs and on screens.

The file: UTF-8 (a BOM is allowed, as spreadsheet programs write one), at most
:data:`MAX_BYTES` and :data:`MAX_ROWS` rows, comma- or semicolon-separated (a Russian or
Kazakh spreadsheet exports ``;``). The header names the columns, in any order and case:

=========  ===============================================================================
``name``   the subject's name (1-300 characters)
``iin``    their IIN (checked: 12 digits, a real birth date, the century digit, the check digit)
``email``  an address to notify them at, or
``phone``  a mobile number, ``+7`` and 10 digits (spaces, hyphens and brackets allowed)
=========  ===============================================================================

A row gives one way to reach the subject: an e-mail address or a phone number, not both. The
same IIN twice in one file is a problem on its second row. Pure: no database.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import BinaryIO

from qorgan.core.errors import QorganError
from qorgan.core.identifiers import IdentifierError, parse_iin

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 100_000
#: Problems listed in full; past this many, the rest are counted.
MAX_PROBLEMS = 1_000
NAME_MAX = 300
EMAIL_MAX = 254  # RFC 5321's path limit, less the brackets
COLUMNS = ("name", "iin", "email", "phone")
#: Header spellings a holder's spreadsheet may carry (Russian, Kazakh, common variants).
ALIASES = {
    "фио": "name",
    "аты-жөні": "name",
    "full name": "name",
    "иин": "iin",
    "жсн": "iin",
    "e-mail": "email",
    "эл. почта": "email",
    "электронная почта": "email",
    "электрондық пошта": "email",
    "mobile": "phone",
    "телефон": "phone",
}
_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
#: ``+7`` and ten digits, once spaces, hyphens and brackets are taken out.
_PHONE = re.compile(r"\+7[0-9]{10}")
_PHONE_SPACING = re.compile(r"[\s\-()]")
#: One ``@``, no spaces or brackets, a dot in the domain, no empty label.
_EMAIL = re.compile(
    r"""
    [^@\s<>()\[\],;:"\\]{1,64}          # local part
    @
    (?:[^@\s<>()\[\],;:"\\.]+\.)+       # domain labels, each followed by a dot
    [^@\s<>()\[\],;:"\\.]{2,}           # top-level domain
    """,
    re.VERBOSE,
)


class CsvRejected(QorganError):
    """The upload was refused: as a whole (``problems`` empty: the message says why) or for
    the rows in ``problems``. Nothing of it was stored."""

    def __init__(self, message: str, problems: Iterable[Problem] = (), total: int = 0) -> None:
        super().__init__(message)
        self.problems = list(problems)
        #: How many problems there were in all (``problems`` holds the first MAX_PROBLEMS).
        self.total = total or len(self.problems)


@dataclass(frozen=True, slots=True)
class Problem:
    """A bad row: its number in the spreadsheet (header = 1) and why, without its values."""

    row: int
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.reason}"


@dataclass(frozen=True, slots=True, repr=False)
class SubjectRow:
    """A checked row. Its ``repr`` names the row only: logging it logs nobody."""

    row: int
    name: str
    iin: str
    channel: str  # "email" or "sms"
    address: str

    def __repr__(self) -> str:
        return f"SubjectRow(row={self.row})"


def _decode(raw: bytes) -> str:
    if raw.startswith(_UTF16_BOMS):
        raise CsvRejected("the file is UTF-16; save it as “CSV UTF-8” and upload it again")
    if raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        row = raw.count(b"\n", 0, exc.start) + 1
        raise CsvRejected(
            f"the file is not UTF-8 text (row {row} holds bytes that are not); save it as "
            "“CSV UTF-8” and upload it again"
        ) from None


def read_limited(stream: BinaryIO, max_bytes: int = MAX_BYTES) -> bytes:
    """The stream's bytes, refused as soon as there are more than ``max_bytes``."""
    chunks, size = [], 0
    while chunk := stream.read(1 << 20):
        size += len(chunk)
        if size > max_bytes:
            raise CsvRejected(
                f"the file is larger than {max_bytes // (1024 * 1024)} MiB; split it and upload "
                "the parts to the same report"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _header(cells: list[str]) -> tuple[dict[str, int], list[Problem]]:
    columns: dict[str, int] = {}
    problems = []
    for index, cell in enumerate(cells):
        key = " ".join(cell.strip().lower().split())
        key = ALIASES.get(key, key)
        if key not in COLUMNS:
            problems.append(Problem(1, f"column {index + 1} is not one of {', '.join(COLUMNS)}"))
        elif key in columns:
            problems.append(Problem(1, f"the column {key} appears twice"))
        else:
            columns[key] = index
    missing = [c for c in ("name", "iin") if c not in columns]
    if missing:
        problems.append(Problem(1, f"the header has no {' or '.join(missing)} column"))
    if "email" not in columns and "phone" not in columns:
        problems.append(Problem(1, "the header has neither an email nor a phone column"))
    return columns, problems


def _storable(value: str, what: str) -> str | None:
    """Why ``value`` cannot be stored, or None (NUL and lone surrogates cannot be)."""
    if "\x00" in value:
        return f"the {what} contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"the {what} contains an unpaired surrogate character"
    return None


def _contact(email: str, phone: str) -> tuple[str, str] | str:
    """(channel, address), or the reason the row's contact is not usable."""
    if email and phone:
        return "give an e-mail address or a phone number, not both"
    if email:
        if len(email) > EMAIL_MAX or not _EMAIL.fullmatch(email):
            return "the e-mail address is not of the form name@domain.kz"
        local, _, domain = email.rpartition("@")
        return "email", f"{local}@{domain.lower()}"
    if phone:
        number = _PHONE_SPACING.sub("", phone)
        if not (number.isascii() and _PHONE.fullmatch(number)):
            return "the phone number is not +7 followed by 10 digits"
        return "sms", number
    return "no e-mail address or phone number"


def _row(
    number: int, cells: list[str], columns: dict[str, int], today: date | None
) -> SubjectRow | str:
    """The checked row, or why it is refused (the first reason found)."""

    def cell(key: str) -> str:
        index = columns.get(key)
        return cells[index].strip() if index is not None and index < len(cells) else ""

    if len(cells) > len(columns):
        return f"the row has {len(cells)} cells; the header names {len(columns)}"
    values = {key: cell(key) for key in COLUMNS}
    for key, value in values.items():
        why = _storable(value, "e-mail address" if key == "email" else key)
        if why:
            return why
    name = " ".join(values["name"].split())
    if not name:
        return "the name is empty"
    if len(name) > NAME_MAX:
        return f"the name is longer than {NAME_MAX} characters"
    try:
        iin = parse_iin(values["iin"], today=today).value
    except IdentifierError as exc:
        return str(exc)
    contact = _contact(values["email"], values["phone"])
    if isinstance(contact, str):
        return contact
    channel, address = contact
    return SubjectRow(number, name, iin, channel, address)


def parse_subjects(
    stream: BinaryIO,
    *,
    max_bytes: int = MAX_BYTES,
    max_rows: int = MAX_ROWS,
    today: date | None = None,
) -> list[SubjectRow]:
    """Every row of the upload, checked; :class:`CsvRejected` with each bad row's number and
    reason when any is bad (or the file as a whole is: too large, not UTF-8, no header)."""
    text = _decode(read_limited(stream, max_bytes))
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    problems: list[Problem] = []
    total = 0
    rows: list[SubjectRow] = []
    seen: dict[str, int] = {}

    def problem(row: int, reason: str) -> None:
        nonlocal total
        total += 1
        if len(problems) < MAX_PROBLEMS:
            problems.append(Problem(row, reason))

    try:
        header = next(reader, None)
        if header is None or not any(c.strip() for c in header):
            raise CsvRejected("the file is empty; the first row names the columns")
        columns, header_problems = _header(header)
        if header_problems:
            raise CsvRejected("the header is not usable", header_problems)
        for number, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue  # a blank line, as spreadsheets leave at the end
            if number - 1 > max_rows:
                raise CsvRejected(
                    f"the file has more than {max_rows:,} rows; split it and upload the parts "
                    "to the same report"
                )
            found = _row(number, cells, columns, today)
            if isinstance(found, str):
                problem(number, found)
                continue
            earlier = seen.setdefault(found.iin, number)
            if earlier != number:
                problem(number, f"the same IIN as row {earlier}")
                continue
            rows.append(found)
    except csv.Error:
        # The csv module's message quotes the line; the row number alone is safe to show.
        raise CsvRejected(
            f"row {reader.line_num} is not valid CSV (a quote is not closed or is misplaced)"
        ) from None
    if total:
        shown = "" if total == len(problems) else f" (the first {len(problems):,} are listed)"
        raise CsvRejected(
            f"{total:,} rows cannot be used{shown}; nothing was stored", problems, total
        )
    if not rows:
        raise CsvRejected("the file has a header but no subjects")
    return rows
