"""The monthly incident report as files: a CSV of the month's incidents (one row each, for
machines and spreadsheets) and a PDF of its figures (for people), whatever the language.

The PDF is drawn from a :class:`Document` whose words are already in the reader's language
(the caller translates): facts, then tables, each with a heading. It uses the bundled DejaVu
Sans, embedded, as the referral summary does (:mod:`qorgan.incidents.referral`), so every
Kazakh letter prints on a server without fonts; what the font lacks, and control characters,
are shown as ``<U+XXXX>``. The same document gives the same bytes (the creation date is the
generation time).

The CSV is UTF-8 with a BOM (spreadsheet programs then read Cyrillic), CRLF, times in the
local zone with their offset, durations in hours; a text cell beginning with ``= + - @``, tab
or CR gets a leading apostrophe so a spreadsheet never runs it as a formula.

Pure: no database, no web. The rows come from :func:`qorgan.incidents.stats.rows`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from fpdf.enums import MethodReturnValue

from qorgan.core.pdf import UnicodePdf

if TYPE_CHECKING:
    from qorgan.incidents.stats import Row

#: The CSV's columns, in order.
CSV_COLUMNS = (
    "reference",
    "organisation",
    "kz_cert_class",
    "severity",
    "status",
    "resolution",
    "started_at",
    "acknowledged_at",
    "contained_at",
    "closed_at",
    "hours_to_acknowledge",
    "hours_to_contain",
    "hours_to_close",
    "overdue",
    "deadlines_missed",
)
_SEVERITY = {1: "low", 2: "medium", 3: "high", 4: "critical"}
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


# --- CSV --------------------------------------------------------------------------------------


def _text(cell: str | None) -> str:
    cell = cell or ""
    return "'" + cell if cell.startswith(_FORMULA) else cell


def _hours(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def csv_lines(rows: Iterable[Row], *, now: datetime, zone: str, reference: object) -> Iterator[str]:
    """The CSV, a line at a time (``reference`` turns an id into ``INC-000123``)."""
    tz = ZoneInfo(zone)

    def local(moment: datetime | None) -> str:
        return moment.astimezone(tz).isoformat(timespec="seconds") if moment else ""

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(cells: Sequence[str]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(cells)
        return buffer.getvalue()

    yield "\ufeff" + line(CSV_COLUMNS)
    for row in rows:
        yield line(
            (
                reference(row.id),  # type: ignore[operator]
                _text(row.organisation),
                _text(row.kz_cert_class),
                _SEVERITY.get(row.severity, str(row.severity)),
                _text(row.status),
                _text(row.resolution),
                local(row.started_at),
                local(row.acknowledged_at),
                local(row.contained_at),
                local(row.closed_at),
                _hours(row.hours("acknowledge")),
                _hours(row.hours("contain")),
                _hours(row.hours("close")),
                "true" if row.overdue(now) else "false",
                ";".join(row.late(now)),
            )
        )


# --- PDF --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A table of the report; ``widths`` are relative, ``note`` is printed under it."""

    heading: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]
    widths: tuple[float, ...]
    note: str = ""
    #: Columns aligned right (numbers).
    numeric: tuple[int, ...] = ()
    #: Whether ``header`` is printed (a list of facts has none).
    headings: bool = True


@dataclass(frozen=True)
class Document:
    """The report as printed, every word already in ``language``."""

    language: str
    title: str
    subtitle: str
    facts: list[tuple[str, str]]
    tables: list[Table]
    #: The footer, with ``{page}`` and ``{pages}``.
    footer: str
    #: Printed for a table without rows.
    empty: str
    generated_at: datetime
    author: str = ""
    notes: list[str] = field(default_factory=list)


class _ReportPdf(UnicodePdf):
    def __init__(self, document: Document) -> None:
        super().__init__()
        self.document = document
        self.head = f"{document.title} · {document.subtitle}"
        self.foot = document.footer

    def paragraph(self, text: str, size: float = 9, style: str = "") -> None:
        self.set_font(self.FONT, style, size)
        self.multi_cell(0, size * 0.5, self.visible(text), new_x="LMARGIN", new_y="NEXT")
        self.set_font(self.FONT, "", 9)

    def heading(self, text: str) -> None:
        if self.get_y() > self.h - 50:
            self.add_page()
        self.ln(4)
        self.paragraph(text, size=12, style="B")
        self.ln(1)

    def grid(self, table: Table) -> None:
        """A table drawn cell by cell: a cell wraps only when its text is wider than its
        column, a row never splits, and the header is repeated on a new page. (fpdf2's own
        ``table()`` lays out every cell as a paragraph: ten times slower for these tables.)"""
        if not table.rows:
            self.paragraph(self.document.empty)
            return
        usable = self.w - self.l_margin - self.r_margin
        widths = [w * usable / sum(table.widths) for w in table.widths]
        self.set_draw_color(170)
        self.set_fill_color(225, 230, 238)
        if table.headings:
            self._row(table, widths, [self.visible(h) for h in table.header], header=True)
        for row in table.rows:
            cells = [self.visible(cell)[:2000] for cell in row]
            if not self._row(table, widths, cells, dry=True) and table.headings:
                self.add_page()
                self._row(table, widths, [self.visible(h) for h in table.header], header=True)
            self._row(table, widths, cells)
        self.set_font(self.FONT, "", 9)
        if table.note:
            self.ln(1)
            self.paragraph(table.note, size=8)

    def _row(
        self,
        table: Table,
        widths: list[float],
        cells: list[str],
        header: bool = False,
        dry: bool = False,
    ) -> bool:
        """Draw one row (``dry``: only say whether it fits on this page)."""
        self.set_font(self.FONT, "B" if header else "", 8.5)
        line, pad = self.font_size * 1.35, 1.0
        split = []
        for text, width in zip(cells, widths, strict=True):
            room = width - 2 * pad
            if "\n" not in text and self.get_string_width(text) <= room:
                split.append([text])
            else:
                split.append(
                    self.multi_cell(room, line, text, dry_run=True, output=MethodReturnValue.LINES)
                )
        height = max(len(lines) for lines in split) * line + 2 * pad
        fits = self.get_y() + height <= self.page_break_trigger
        if dry:
            return fits
        if not fits:
            self.add_page()
        x, y = self.l_margin, self.get_y()
        for index, (lines, width) in enumerate(zip(split, widths, strict=True)):
            self.rect(x, y, width, height, style="DF" if header else "D")
            align = "R" if index in table.numeric else "L"
            for number, text in enumerate(lines):
                self.set_xy(x + pad, y + pad + number * line)
                self.cell(width - 2 * pad, line, text, align=align)
            x += width
        self.set_xy(self.l_margin, y + height)
        return True


def render_pdf(document: Document) -> bytes:
    """The report's PDF bytes."""
    pdf = _ReportPdf(document)
    pdf.set_creation_date(document.generated_at)
    pdf.set_lang(document.language)
    pdf.set_title(f"{document.title}: {document.subtitle}")
    pdf.set_author(document.author)
    pdf.set_creator("Qorgan")
    pdf.add_page()
    pdf.paragraph(document.title, size=16, style="B")
    pdf.ln(1)
    pdf.paragraph(document.subtitle, size=12)
    pdf.ln(3)
    if document.facts:
        pdf.grid(Table("", ("", ""), list(document.facts), (60, 120), headings=False))
    for note in document.notes:
        pdf.ln(1)
        pdf.paragraph(note, size=8)
    for table in document.tables:
        pdf.heading(table.heading)
        pdf.grid(table)
    return bytes(pdf.output())
