"""A leak report and its subjects' CSV, for the leak, outbox and API tests."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session

from qorgan.core.workdays import default_calendar
from qorgan.privacy import leaks
from qorgan.privacy.leak_models import LeakReport
from qorgan.privacy.leaks import LeakIn

from .conftest import Registry
from .examples import bin_number, iin

#: A Friday afternoon in Almaty (15:00, UTC+5), just before a weekend and a Monday holiday.
DETECTED = datetime(2026, 3, 6, 10, 0, tzinfo=UTC)
HOLDER_BIN = bin_number(serial=3000)


def leak_in(**changes: object) -> LeakIn:
    values: dict[str, object] = {
        "categories": ["general", "special"],
        "description": "Выгрузка записей пациентов оказалась в открытом хранилище S3.",
        "detected_at": DETECTED,
        "occurred_at": DETECTED - timedelta(days=2),
        "measures": "Доступ к хранилищу закрыт, ключи заменены, проведена проверка журналов.",
        "responsible_person": "Ахметова Д. К.",
        "contacts": "+7 701 000 00 00, dpo@clinic.kz",
        "holder_name": "ТОО «Клиника»",
        "holder_bin": HOLDER_BIN,
    }
    values.update(changes)
    return LeakIn(**values)  # type: ignore[arg-type]


def person(index: int) -> tuple[str, str]:
    """The ``index``-th example subject: a name and a valid IIN, distinct for each index."""
    born = date(1950, 1, 1) + timedelta(days=index)
    return f"Субъект {index}", iin(born, serial=1000 + index % 7000, female=index % 2 == 1)


def subjects_csv(count: int, *, start: int = 0, delimiter: str = ",", bom: bool = False) -> bytes:
    """A CSV of ``count`` subjects: even ones by e-mail, odd ones by phone."""
    lines = [delimiter.join(("name", "iin", "email", "phone"))]
    for index in range(start, start + count):
        name, number = person(index)
        email = f"subject{index}@example.kz" if index % 2 == 0 else ""
        phone = f"+7701{index:07d}" if index % 2 else ""
        lines.append(delimiter.join((name, number, email, phone)))
    text = "\r\n".join(lines) + "\r\n"
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")


def submitted(session: Session, registry: Registry, count: int, *, start: int = 0) -> LeakReport:
    """A report of ``count`` subjects (from the ``start``-th example person: even ones by
    e-mail, odd ones by SMS), submitted, its notices queued."""
    leak = leaks.create(
        session=session,
        protection=registry.keys,
        calendar=default_calendar(),
        organisation_id=registry.organisation_id,
        leak=leak_in(system_id=registry.clinic.id),
        actor="test",
    )
    rows = leaks.load_subjects_csv(io.BytesIO(subjects_csv(count, start=start)))
    leaks.add_subjects(session=session, protection=registry.keys, leak=leak, rows=rows, actor="t")
    assert leaks.submit(session=session, leak=leak, actor="test").queued == count
    return leak
