"""The fonts every Qorgan PDF embeds, so that Kazakh letters (ә, ғ, қ, ң, ө, ұ, ү, һ, і) print
on a server that has no fonts installed: DejaVu Sans, regular and bold, bundled in ``fonts/``
(its licence beside it). Here in ``core`` because incidents (referral summary, monthly report)
and the personal-data service (leak report) all draw PDFs and may not import one another.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from fpdf import FPDF

FONT_DIR = Path(__file__).with_name("fonts")
REGULAR = FONT_DIR / "DejaVuSans.ttf"
BOLD = FONT_DIR / "DejaVuSans-Bold.ttf"


class UnicodePdf(FPDF):
    """An A4 document with DejaVu Sans (family :attr:`FONT`, styles "" and "B") embedded.

    Every page carries :attr:`head` at its top and :attr:`foot` at its bottom, small and grey
    (``{page}`` and ``{pages}`` in the foot are filled in); :meth:`visible` is for every text a
    document prints.
    """

    FONT = "DejaVu"
    head = ""
    foot = ""

    def __init__(self) -> None:
        super().__init__(format="A4")
        self.add_font(self.FONT, "", REGULAR)
        self.add_font(self.FONT, "B", BOLD)
        fonts = (self.fonts["dejavu"], self.fonts["dejavuB"])
        #: Code points both styles can draw.
        self.glyphs: frozenset[int] = frozenset(fonts[0].cmap).intersection(fonts[1].cmap)
        self.set_margins(14, 16, 14)
        self.set_auto_page_break(True, margin=16)

    def header(self) -> None:
        self.set_font(self.FONT, "", 7.5)
        self.set_text_color(110)
        self.set_y(7)
        self.cell(0, 4, self.visible(self.head))
        self.set_text_color(0)
        self.set_y(self.t_margin)

    def footer(self) -> None:
        self.set_y(-11)
        self.set_font(self.FONT, "", 7.5)
        self.set_text_color(110)
        text = self.visible(self.foot).replace("{page}", str(self.page_no()))
        self.cell(0, 4, text.replace("{pages}", "{nb}"))
        self.set_text_color(0)

    def visible(self, text: str) -> str:
        """``text`` with what would print as nothing or mislead shown as ``<U+XXXX>``: control
        and format characters (a right-to-left override can disguise a name) and letters the
        font lacks; a tab as a space."""
        out = []
        for char in text:
            if char == "\n" or (unicodedata.category(char)[0] != "C" and ord(char) in self.glyphs):
                out.append(char)
            elif char == "\t":
                out.append(" ")
            else:
                out.append(f"<U+{ord(char):04X}>")
        return "".join(out)
