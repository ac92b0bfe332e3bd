"""A citizen's whole record as they download it: JSON (codes and their explanations in the
page's language, times in UTC and Almaty, the consents' signed receipts as issued) and a PDF
of the same in the page's language, with DejaVu Sans embedded so Kazakh letters print.

Only the caller's own subject's record reaches here (``routes/citizen.py`` finds it from the
signed-in account, never from the request).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from qorgan.core.i18n import local_time
from qorgan.core.models import Organisation
from qorgan.core.pdf import UnicodePdf
from qorgan.privacy.models import InformationSystem
from qorgan.web.i18n import _l, translations
from qorgan.web.privacy_labels import (
    CATEGORY_LABELS,
    COMPLAINT_KIND_LABELS,
    COMPLAINT_STATUS_LABELS,
    CONSENT_STATUS_LABELS,
    LEGAL_BASIS_LABELS,
    OUTCOME_LABELS,
    REASON_LABELS,
    staff_purpose,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qorgan.privacy.citizens import Record
    from qorgan.privacy.protection import Protection

#: The PDF's headings and field names (the page uses the same messages).
TITLE = _l("Your personal-data record")
LABELS = {
    "generated": _l("Made on %(moment)s"),
    "page": _l("Page %(page)s of %(pages)s"),
    "log": _l("Who accessed your data"),
    "consents": _l("Your consents"),
    "complaints": _l("Your complaints and objections"),
    "none": _l("None."),
    "who": _l("Who"),
    "official": _l("On behalf of"),
    "purpose": _l("Purpose"),
    "basis": _l("Legal basis"),
    "data": _l("Data"),
    "result": _l("Result"),
    "system": _l("Information system"),
    "operator": _l("Operator"),
    "bin": _l("BIN %(number)s"),
    "purposes": _l("Purposes"),
    "term": _l("Term"),
    "until": _l("until %(date)s"),
    "no_term": _l("No end date"),
    "transfers": _l("Transfers"),
    "third_party": _l("To third parties"),
    "cross_border": _l("Across the border"),
    "publication": _l("Publication in public sources"),
    "yes": _l("yes"),
    "no": _l("no"),
    "status": _l("Status"),
    "given": _l("Given"),
    "ended": _l("Ended"),
    "restriction": _l("The law does not allow withdrawing it"),
    "organisation": _l("Organisation"),
    "period": _l("Period"),
    "description": _l("What happened"),
    "evidence": _l("Evidence"),
    "filed": _l("Filed"),
    "due": _l("Answer due by"),
    "answer": _l("Answer"),
    "answered": _l("Answered on"),
}


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def document(
    *,
    session: Session,
    protection: Protection,
    record: Record,
    language: str,
    zone: str,
    now: datetime,
) -> dict[str, Any]:
    """The record as one JSON document, explanations in ``language``."""
    gettext = translations(language).gettext
    organisations = {
        number: name for number, name in session.execute(select(Organisation.id, Organisation.name))
    }
    system_ids = {c.system_id for c in record.complaints if c.system_id is not None}
    systems = {
        number: name
        for number, name in session.execute(
            select(InformationSystem.id, InformationSystem.name).where(
                InformationSystem.id.in_(system_ids)
            )
        )
    }
    log = [
        {
            "at": _iso(entry.at),
            "at_local": local_time(entry.at, language, zone),
            "who": entry.who,
            "official": entry.official,
            "purpose": entry.purpose,
            "purpose_text": staff_purpose(entry.purpose, gettext)
            if entry.reason == "staff_read"
            else entry.purpose,
            "legal_basis": entry.legal_basis,
            "legal_basis_text": gettext(LEGAL_BASIS_LABELS[entry.legal_basis]),
            "categories": entry.categories,
            "outcome": entry.outcome,
            "outcome_text": gettext(OUTCOME_LABELS[entry.outcome]),
            "reason": entry.reason,
            "reason_text": gettext(REASON_LABELS.get(entry.reason, entry.reason)),
        }
        for entry in record.log
    ]
    consents = [
        {
            "id": consent.id,
            "system": system.name,
            "operator": {"name": system.operator_name, "bin": system.operator_bin},
            "purposes": list(consent.purposes),
            "categories": list(consent.categories),
            "data_items": list(consent.data_items),
            "term_until": _iso(consent.term_until),
            "third_party_transfer": consent.third_party_transfer,
            "cross_border_transfer": consent.cross_border_transfer,
            "publication": consent.publication,
            "withdrawal_restriction": consent.withdrawal_restriction,
            "status": consent.status.value,
            "status_text": gettext(CONSENT_STATUS_LABELS[consent.status.value]),
            "given_at": _iso(consent.given_at),
            "ended_at": _iso(consent.ended_at),
            # The signed receipts as issued: `qorgan privacy verify-receipt` checks them.
            "receipts": {
                "given": json.loads(consent.given_receipt),
                "withdrawn": json.loads(consent.withdrawn_receipt)
                if consent.withdrawn_receipt
                else None,
            },
        }
        for consent, system in record.consents
    ]
    complaints = [
        {
            "id": complaint.id,
            "kind": complaint.kind.value,
            "kind_text": gettext(COMPLAINT_KIND_LABELS[complaint.kind.value]),
            "organisation": organisations.get(complaint.organisation_id, ""),
            "system": systems.get(complaint.system_id) if complaint.system_id else None,
            "name_and_contacts": protection.decrypt(complaint.contacts),
            "period_from": _iso(complaint.period_from),
            "period_to": _iso(complaint.period_to),
            "description": complaint.description,
            "evidence": complaint.evidence,
            "status": complaint.status.value,
            "status_text": gettext(COMPLAINT_STATUS_LABELS[complaint.status.value]),
            "filed_at": _iso(complaint.filed_at),
            "due_at": _iso(complaint.due_at),
            "answer": complaint.answer,
            "answered_at": _iso(complaint.answered_at),
        }
        for complaint in record.complaints
    ]
    return {
        "generated_at": now.isoformat(),
        "language": language,
        "time_zone": zone,
        "access_log": log,
        "consents": consents,
        "complaints": complaints,
    }


class _RecordPdf(UnicodePdf):
    def __init__(self, label: Callable[[str], str], title: str) -> None:
        super().__init__()
        self.label = label
        self.head = f"Qorgan · {title}"
        self.foot = label("page") % {"page": "{page}", "pages": "{pages}"}

    def paragraph(self, text: str, size: float = 9, style: str = "") -> None:
        self.set_font(self.FONT, style, size)
        self.multi_cell(0, size * 0.5, self.visible(text), new_x="LMARGIN", new_y="NEXT")

    def heading(self, text: str) -> None:
        if self.get_y() > self.h - 50:
            self.add_page()
        self.ln(3)
        self.paragraph(text, size=12, style="B")
        self.ln(1)

    def entry(self, title: str, lines: Sequence[tuple[str, str]]) -> None:
        """One entry: a bold first line, then ``label: value`` lines, a rule below."""
        if self.get_y() > self.h - 40:
            self.add_page()
        self.paragraph(title, size=9.5, style="B")
        for name, value in lines:
            if value:
                self.paragraph(f"{self.label(name)}: {value}", size=8.5)
        self.set_draw_color(200)
        self.line(self.l_margin, self.get_y() + 1, self.w - self.r_margin, self.get_y() + 1)
        self.ln(2.5)


def pdf(data: dict[str, Any], language: str) -> bytes:
    """The record's PDF in ``language`` (the document :func:`document` made in it)."""
    gettext = translations(language).gettext

    def label(name: str) -> str:
        return gettext(LABELS[name])

    def yes_no(value: bool) -> str:
        return label("yes") if value else label("no")

    def day(value: str | None) -> str:
        return value[:10] if value else "—"

    def moment(value: str | None) -> str:
        if not value:
            return "—"
        return local_time(datetime.fromisoformat(value), language, data["time_zone"])

    title = gettext(TITLE)
    document = _RecordPdf(label, title)
    document.set_lang(language)
    document.set_title(title)
    document.set_creator("Qorgan")
    document.set_creation_date(datetime.fromisoformat(data["generated_at"]))
    document.add_page()
    document.paragraph(title, size=15, style="B")
    document.paragraph(label("generated") % {"moment": moment(data["generated_at"])}, size=8.5)

    document.heading(label("log"))
    for entry in data["access_log"]:
        categories = ", ".join(gettext(CATEGORY_LABELS[c]) for c in entry["categories"])
        document.entry(
            f"{entry['at_local']} · {entry['outcome_text']}",
            [
                ("who", entry["who"]),
                ("official", entry["official"]),
                ("purpose", entry["purpose_text"]),
                ("basis", entry["legal_basis_text"]),
                ("data", categories),
                ("result", f"{entry['outcome_text']}: {entry['reason_text']}"),
            ],
        )
    if not data["access_log"]:
        document.paragraph(label("none"))

    document.heading(label("consents"))
    for consent in data["consents"]:
        operator = consent["operator"]
        data_items = [gettext(CATEGORY_LABELS[c]) for c in consent["categories"]]
        term = consent["term_until"]
        document.entry(
            f"{consent['system']} · {consent['status_text']}",
            [
                (
                    "operator",
                    f"{operator['name']} ({label('bin') % {'number': operator['bin']}})",
                ),
                ("purposes", "; ".join(consent["purposes"])),
                ("data", "; ".join(data_items + consent["data_items"])),
                ("term", label("until") % {"date": term} if term else label("no_term")),
                (
                    "transfers",
                    f"{label('third_party')}: {yes_no(consent['third_party_transfer'])}; "
                    f"{label('cross_border')}: {yes_no(consent['cross_border_transfer'])}; "
                    f"{label('publication')}: {yes_no(consent['publication'])}",
                ),
                ("restriction", consent["withdrawal_restriction"] or ""),
                ("given", moment(consent["given_at"])),
                ("ended", moment(consent["ended_at"]) if consent["ended_at"] else ""),
            ],
        )
    if not data["consents"]:
        document.paragraph(label("none"))

    document.heading(label("complaints"))
    for complaint in data["complaints"]:
        period = ""
        if complaint["period_from"] or complaint["period_to"]:
            period = f"{day(complaint['period_from'])} – {day(complaint['period_to'])}"
        document.entry(
            f"№ {complaint['id']} · {complaint['kind_text']} · {complaint['status_text']}",
            [
                ("organisation", complaint["organisation"]),
                ("system", complaint["system"] or ""),
                ("period", period),
                ("description", complaint["description"]),
                ("evidence", complaint["evidence"] or ""),
                ("filed", moment(complaint["filed_at"])),
                ("due", moment(complaint["due_at"])),
                ("answer", complaint["answer"] or ""),
                ("answered", moment(complaint["answered_at"]) if complaint["answered_at"] else ""),
            ],
        )
    if not data["complaints"]:
        document.paragraph(label("none"))
    return bytes(document.output())
