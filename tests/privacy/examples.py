"""Valid IINs and BINs for any date, and an information system to register."""

from __future__ import annotations

from datetime import date

from qorgan.core.identifiers import check_digit
from qorgan.privacy.registry import SystemIn


def iin(born: date, serial: int = 1234, female: bool = False) -> str:
    """A valid IIN of someone born on ``born`` (century digit from the year, then sex)."""
    century = {18: 1, 19: 3, 20: 5}[born.year // 100] + int(female)
    for bump in range(100):
        first = f"{born:%y%m%d}{century}{(serial + bump) % 10000:04d}"
        digit = check_digit(first)
        if digit is not None:
            return first + str(digit)
    raise AssertionError("no serial gives a check digit")


def bin_number(yy: int = 12, month: int = 5, serial: int = 4567) -> str:
    """A valid BIN of a resident head organisation registered in ``month`` of 20``yy``."""
    for bump in range(100):
        first = f"{yy:02d}{month:02d}40{(serial + bump) % 100000:05d}"
        digit = check_digit(first)
        if digit is not None:
            return first + str(digit)
    raise AssertionError("no serial gives a check digit")


def system_in(name: str, **changes: object) -> SystemIn:
    values: dict[str, object] = {
        "name": name,
        "owner_name": "Министерство здравоохранения РК",
        "owner_bin": bin_number(serial=1000),
        "operator_name": "АО «Национальные информационные технологии»",
        "operator_bin": bin_number(yy=8, month=11, serial=2000),
        "responsible_person": "Ахметова Д. К.",
        "contacts": "+7 701 000 00 00, dpo@example.kz",
        "categories": ["general", "special"],
        "purposes": ["medical care", "statistics"],
        "legal_bases": ["consent", "legal_obligation", "law_enforcement"],
    }
    values.update(changes)
    return SystemIn(**values)  # type: ignore[arg-type]
