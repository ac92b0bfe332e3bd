"""The report of a leak to the authorised body, as structured JSON (for systems) and as a PDF
in Kazakh or Russian (for people), with the same content: the holder and its BIN, the system
(owner and operator), what leaked (categories and description), when it happened and when it
was found, the deadline and when it was submitted, the measures taken, the responsible person
and their contacts, the linked incident, and the affected subjects, counted and listed by
masked IIN only (``********1234``) with the channel each is notified by.

:func:`report_data` reads the database (and decrypts the contacts); :func:`render_pdf` is
pure, drawing the data with the bundled DejaVu fonts (:mod:`qorgan.core.pdf`), so every Kazakh
letter prints on a server without fonts. The JSON's keys are English and stable
(:data:`SCHEMA`); the texts are the holder's, as written.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from qorgan.core.db import utcnow
from qorgan.core.pdf import UnicodePdf
from qorgan.privacy.leak_models import LeakNotice, LeakReport, LeakSubject
from qorgan.privacy.leak_words import REPORT, REPORT_LANGUAGES, categories, leak_reference, when
from qorgan.privacy.models import InformationSystem

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qorgan.privacy.protection import Protection

#: The JSON document's format, and its version: a reader refuses what it does not know.
SCHEMA = "qorgan.privacy.leak-report"
VERSION = 1
#: Subjects listed in the PDF; the JSON lists them all.
PDF_SUBJECTS = 10_000


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def report_data(
    *, session: Session, protection: Protection, leak: LeakReport, incident_reference: str | None
) -> dict[str, Any]:
    """The report as a JSON object (see :data:`SCHEMA`)."""
    system = session.get(InformationSystem, leak.system_id) if leak.system_id else None
    subjects = session.execute(
        select(LeakSubject.iin_masked, LeakSubject.channel)
        .where(LeakSubject.leak_id == leak.id)
        .order_by(LeakSubject.id)
    ).all()
    notified = session.scalar(
        select(func.count()).where(LeakNotice.leak_id == leak.id, LeakNotice.status == "sent")
    )
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "reference": leak_reference(leak.id),
        "generated_at": utcnow().isoformat(),
        "holder": {"name": leak.holder_name, "bin": leak.holder_bin},
        "system": None
        if system is None
        else {
            "name": system.name,
            "owner": {"name": system.owner_name, "bin": system.owner_bin},
            "operator": {"name": system.operator_name, "bin": system.operator_bin},
        },
        "categories": list(leak.categories),
        "description": leak.description,
        "occurred_at": _iso(leak.occurred_at),
        "detected_at": _iso(leak.detected_at),
        "due_at": _iso(leak.due_at),
        "submitted_at": _iso(leak.submitted_at),
        "status": str(leak.status),
        "measures": leak.measures,
        "responsible_person": {
            "name": leak.responsible_person,
            "contacts": protection.decrypt(leak.contacts),
        },
        "incident": incident_reference,
        "affected_subjects": {
            "count": len(subjects),
            "notified": int(notified or 0),
            "subjects": [{"iin": iin, "channel": str(channel)} for iin, channel in subjects],
        },
    }


class _LeakPdf(UnicodePdf):
    def __init__(self, labels: dict[str, str], reference: str) -> None:
        super().__init__()
        self.labels = labels
        self.head = f"{reference} · {labels['title']}"
        self.foot = labels["page"]

    def paragraph(self, text: str, size: float = 9.5, style: str = "") -> None:
        self.set_font(self.FONT, style, size)
        self.multi_cell(0, size * 0.5, self.visible(text), new_x="LMARGIN", new_y="NEXT")

    def field(self, label: str, value: str) -> None:
        """A label in bold, its value below it."""
        if self.get_y() > self.h - 40:
            self.add_page()
        self.ln(1.5)
        self.paragraph(label, size=9, style="B")
        self.paragraph(value or "—")


def render_pdf(data: dict[str, Any], language: str) -> bytes:
    """The report's PDF in ``language`` (``kk`` or ``ru``)."""
    if language not in REPORT_LANGUAGES:
        raise ValueError(f"the report is written in {' or '.join(REPORT_LANGUAGES)}")
    labels = REPORT[language]
    pdf = _LeakPdf(labels, data["reference"])
    pdf.set_lang(language)
    pdf.set_title(f"{labels['title']}: {data['reference']}")
    pdf.set_creator("Qorgan")
    pdf.set_creation_date(datetime.fromisoformat(data["generated_at"]))
    pdf.add_page()
    pdf.paragraph(labels["addressee"], size=9)
    pdf.ln(2)
    pdf.paragraph(labels["title"], size=14, style="B")
    pdf.paragraph(f"{labels['reference']}: {data['reference']}", size=10)
    pdf.ln(2)

    def moment(key: str) -> str:
        value = data[key]
        return when(datetime.fromisoformat(value) if value else None, language)

    holder = data["holder"]
    pdf.field(labels["holder"], f"{holder['name']}, {labels['bin']} {holder['bin']}")
    system = data["system"]
    if system is None:
        pdf.field(labels["system"], labels["none"])
    else:
        owner, operator = system["owner"], system["operator"]
        pdf.field(
            labels["system"],
            f"{system['name']}\n{labels['owner']}: {owner['name']}, {labels['bin']} "
            f"{owner['bin']}\n{labels['operator']}: {operator['name']}, {labels['bin']} "
            f"{operator['bin']}",
        )
    pdf.field(labels["categories"], categories(data["categories"], language))
    pdf.field(labels["description"], data["description"])
    pdf.field(labels["occurred_at"], moment("occurred_at"))
    pdf.field(labels["detected_at"], moment("detected_at"))
    pdf.field(labels["due_at"], moment("due_at"))
    submitted = moment("submitted_at") if data["submitted_at"] else labels["not_submitted"]
    pdf.field(labels["submitted_at"], submitted)
    pdf.field(labels["measures"], data["measures"])
    person = data["responsible_person"]
    pdf.field(labels["responsible"], person["name"])
    pdf.field(labels["contacts"], person["contacts"])
    if data["incident"]:
        pdf.field(labels["incident"], data["incident"])
    affected = data["affected_subjects"]
    pdf.field(labels["count"], f"{affected['count']:,}".replace(",", " "))
    if affected["subjects"]:
        pdf.ln(2)
        pdf.paragraph(labels["subjects"], size=11, style="B")
        pdf.set_font(pdf.FONT, "", 8.5)
        shown = affected["subjects"][:PDF_SUBJECTS]
        for number, subject in enumerate(shown, start=1):
            channel = labels.get(subject["channel"], subject["channel"])
            pdf.cell(14, 4.6, str(number))
            pdf.cell(40, 4.6, pdf.visible(subject["iin"]))
            pdf.cell(0, 4.6, pdf.visible(channel), new_x="LMARGIN", new_y="NEXT")
        if len(affected["subjects"]) > len(shown):
            pdf.paragraph(f"… {len(affected['subjects']) - len(shown):,}", size=8.5)
    pdf.ln(4)
    pdf.paragraph(f"{labels['generated']} · {moment('generated_at')}", size=7.5)
    return bytes(pdf.output())
