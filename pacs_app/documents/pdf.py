"""Radiology report PDFs: a :class:`ReportDocument` rendered to A4 PDF bytes with fpdf2.

Plain Python (no web framework, no database), so a route, a Reflex handler, the CLI or a test
can call it alike. Nothing is written to disk::

    pdf_bytes = render_report_pdf(doc)

Text is Unicode through a TrueType font (see :func:`find_unicode_font`). Without one the report
still renders, in the PDF core font Helvetica: characters outside Latin-1 become ``?`` and a
small note says so. Text that users wrote is always set as plain text, never as markup.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import secrets
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

__all__ = [
    "FONT_ENV_VAR",
    "MISSING_GLYPHS_NOTE",
    "NO_UNICODE_FONT_NOTE",
    "KeyImagePrint",
    "ReportAddendum",
    "ReportDocument",
    "find_unicode_font",
    "render_report_pdf",
    "shape_text",
]

logger = logging.getLogger(__name__)

FONT_ENV_VAR = "PACS_PDF_FONT"
"""Environment variable naming a TrueType font file for report PDFs."""

_SYSTEM_FONTS: tuple[str, ...] = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",)
# Fonts for scripts DejaVu Sans lacks (Chinese, Japanese, Korean), used where installed.
_FALLBACK_FONTS: tuple[str, ...] = (
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)

NO_UNICODE_FONT_NOTE = "(some characters could not be shown: no Unicode font installed)"
MISSING_GLYPHS_NOTE = "(some characters could not be shown: no installed font has them)"

# Layout, in millimetres and points.
_MARGIN = 18.0
_FOOTER_SPACE = 20.0
_BODY_PT = 10.0
_LINE = 5.0
_GREY = (100, 100, 100)
_RULE = (190, 190, 190)


@dataclass(frozen=True)
class ReportAddendum:
    """A signed addition to a verified report (report version ``number``: 2, 3, ...)."""

    number: int
    text: str
    signed_by: str
    signed_at: datetime  # aware, UTC


@dataclass(frozen=True)
class KeyImagePrint:
    """A key image as printed: JPEG bytes (``None`` where it could not be rendered, with
    ``problem`` saying why) and where it is in the study."""

    caption: str
    jpeg: bytes | None
    aspect: float = 1.0  # height / width
    problem: str = ""
    # the patient's directions at its top, right, bottom and left edges, printed on them
    # (:func:`pacs_app.dicom.orientation.edges`); empty where the image says none
    edges: tuple[str, str, str, str] = ("", "", "", "")


@dataclass(frozen=True)
class ReportDocument:
    """Everything printed on a report, already fetched and permission-checked by the caller."""

    centre_name: str
    study_id: str
    patient_name: str  # DICOM PN: '^' separates name parts, '=' the representations
    patient_id: str
    patient_age: str
    patient_sex: str
    modality: str
    body_part: str
    description: str
    study_date: date | None
    accession_number: str
    priority: str  # "routine" | "urgent" | "stat"
    received_at: datetime
    verified_at: datetime | None
    delivered_at: datetime | None
    findings: str
    impression: str
    signed_by: str
    signed_at: datetime | None
    addenda: tuple[ReportAddendum, ...] = ()
    status_note: str = ""  # e.g. "PRELIMINARY - NOT VERIFIED", shown as a banner
    key_images: tuple[KeyImagePrint, ...] = ()


def find_unicode_font(explicit: str | None = None) -> str | None:
    """Return the path of a TrueType font for report text, or ``None`` when there is none.

    The first existing file of: ``explicit``; the ``PACS_PDF_FONT`` environment variable;
    Debian's DejaVu Sans; the DejaVu Sans that matplotlib ships, if matplotlib is installed.
    """
    candidates = (explicit, os.environ.get(FONT_ENV_VAR), *_SYSTEM_FONTS, _matplotlib_font())
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return str(candidate)
    return None


def render_report_pdf(
    doc: ReportDocument, *, font_path: str | None = None, generated_at: datetime | None = None
) -> bytes:
    """Render ``doc`` as an A4 PDF and return its bytes.

    ``font_path`` names a TrueType font to prefer (see :func:`find_unicode_font`);
    ``generated_at`` (default: now) is printed in the footer. Never raises for odd text or a
    missing or unreadable font: it falls back to Helvetica and Latin-1.
    """
    generated = generated_at or datetime.now(UTC)
    pdf = _ReportPDF(doc, generated=generated)
    texts = list(_strings(doc))
    used = {ord(char) for char in unicodedata.normalize("NFC", "".join(texts))}
    pdf.text_filter = _load_fonts(pdf, find_unicode_font(font_path), used=used)
    for text in texts:  # learn up front whether any character will be lost
        pdf.text_filter.clean(text)
    pdf.set_title(f"Radiology report {pdf.text_filter.clean(doc.study_id)}")
    pdf.set_author(pdf.text_filter.clean(doc.centre_name))
    pdf.set_creator("Teleradiology PACS")
    pdf.set_creation_date(generated)
    pdf.draw_report()
    return bytes(pdf.output())


# --- text -----------------------------------------------------------------------------------

_ASCII_LOOKALIKES = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u2032": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"',
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
        "\u2212": "-", "\u2026": "...", "\u2022": "*", "\u2264": "<=", "\u2265": ">=",
    }
)  # fmt: skip


class _TextFilter:
    """Makes text safe for the fonts in use: unknown characters become '?', never an error."""

    def __init__(self, covers: Callable[[int], bool], *, unicode: bool) -> None:
        self._covers = covers
        self.unicode = unicode
        self.lost = False  # whether any character had to be replaced

    @property
    def dash(self) -> str:
        return "\u2014" if self.unicode else "-"

    def clean(self, text: str) -> str:
        text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
        text = text.replace("\t", "    ")
        if not self.unicode:
            text = text.translate(_ASCII_LOOKALIKES)
        out = []
        for char in text:
            if char == "\n" or self._covers(ord(char)):
                out.append(char)
            elif unicodedata.category(char) in ("Cc", "Cf"):  # controls, zero-width marks
                continue
            elif unicodedata.category(char) == "Zs":
                out.append(" ")
            else:
                out.append("?")
                self.lost = True
        return "".join(out)


def _load_fonts(pdf: FPDF, font_path: str | None, *, used: set[int]) -> _TextFilter:
    """Register the report fonts under the family "pacs"; Helvetica when there is no font.

    ``used`` holds the document's code points: fallback fonts (large, slow to load) are
    registered only when the main font lacks some of them.
    """
    if font_path:
        try:
            pdf.add_font("pacs", "", font_path)
            bold = Path(font_path).with_name(Path(font_path).stem + "-Bold.ttf")
            pdf.add_font("pacs", "B", bold if bold.is_file() else font_path)
        except Exception:  # an unreadable or invalid font file must not stop the report
            logger.warning("cannot use font %s for report PDFs; using Helvetica", font_path)
            pdf.fonts.pop("pacs", None)
            pdf.fonts.pop("pacsB", None)
        else:
            pdf.font_family_name = "pacs"
            main = set(pdf.fonts["pacs"].cmap) & set(pdf.fonts["pacsB"].cmap)
            lacking = {cp for cp in used - main if unicodedata.category(chr(cp))[0] not in "CZ"}
            extra = _load_fallback_fonts(pdf) if lacking else set()
            shape_text(pdf)
            return _TextFilter(lambda cp: cp in main or cp in extra, unicode=True)
    pdf.font_family_name = "helvetica"
    return _TextFilter(lambda cp: 0x20 <= cp <= 0x7E or 0xA0 <= cp <= 0xFF, unicode=False)


def shape_text(pdf: FPDF) -> bool:
    """Set text through HarfBuzz (uharfbuzz): Arabic and other joining scripts take their
    joined letter forms and right-to-left text its order. Without it a name such as محمد
    came out as separate letters in reverse order. Returns whether it is on (it needs the
    uharfbuzz package and a TrueType font)."""
    try:
        pdf.set_text_shaping(True)
    except Exception:  # uharfbuzz missing or broken: the text is still set, unshaped
        logger.warning("uharfbuzz is not usable: right-to-left text in PDFs is not shaped")
        return False
    return True


def _load_fallback_fonts(pdf: FPDF) -> set[int]:
    """Register the installed CJK fallback fonts; return the code points they add."""
    names, covered = [], set()
    for i, path in enumerate(p for p in _FALLBACK_FONTS if Path(p).is_file()):
        name = f"pacs-fallback{i}"
        try:
            pdf.add_font(name, "", path)
        except Exception:
            logger.warning("cannot use fallback font %s for report PDFs", path)
            continue
        names.append(name)
        covered |= set(pdf.fonts[name].cmap)
    if names:
        pdf.set_fallback_fonts(names, exact_match=False)
    return covered


def _matplotlib_font() -> str | None:
    """The DejaVu Sans inside an installed matplotlib, found without importing matplotlib."""
    try:
        spec = importlib.util.find_spec("matplotlib")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    return str(Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf")


def _strings(doc: ReportDocument) -> Iterator[str]:
    yield from (doc.centre_name, doc.study_id, _person_name(doc.patient_name), doc.patient_id)
    yield from (doc.patient_age, doc.patient_sex, doc.modality, doc.body_part, doc.description)
    yield from (doc.accession_number, doc.priority, doc.findings, doc.impression, doc.signed_by)
    yield doc.status_note
    for addendum in doc.addenda:
        yield from (addendum.text, addendum.signed_by)
    for image in doc.key_images:
        yield from (image.caption, image.problem)


#: The tallest a key image is printed, in millimetres (a tall radiograph is narrowed to it).
_KEY_IMAGE_MAX_H = 110.0


def _print_size(image: KeyImagePrint, width: float) -> tuple[float, float]:
    """A key image's printed width and height in a column ``width`` wide, its shape kept."""
    if image.jpeg is None:
        return width, 20.0
    height = min(width * image.aspect, _KEY_IMAGE_MAX_H)
    return height / image.aspect, height


def _person_name(value: str) -> str:
    """A DICOM person name for reading: 'DOE^JANE' -> 'DOE JANE'."""
    groups = (" ".join(group.replace("^", " ").split()) for group in value.split("="))
    return " = ".join(group for group in groups if group)


def _format_utc(moment: datetime) -> str:
    """``2026-11-27 21:05 UTC``; a naive datetime is taken to be UTC already."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


# --- layout ---------------------------------------------------------------------------------


class _ReportPDF(FPDF):
    text_filter: _TextFilter
    font_family_name: str

    def __init__(self, doc: ReportDocument, *, generated: datetime) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.doc = doc
        self.generated = generated
        self.set_margins(_MARGIN, 15, _MARGIN)
        self.set_auto_page_break(True, margin=_FOOTER_SPACE)
        # An alias users cannot type by chance: fpdf2 would replace it in their text too.
        self.pages_alias = "{pages-" + secrets.token_hex(6) + "}"
        self.alias_nb_pages(self.pages_alias)

    # The text filter replaces what the fonts cannot show; every user string goes through it.
    def t(self, text: str) -> str:
        return self.text_filter.clean(text)

    def font(self, size: float = _BODY_PT, *, bold: bool = False, grey: bool = False) -> None:
        self.set_font(self.font_family_name, "B" if bold else "", size)
        self.set_text_color(*(_GREY if grey else (0, 0, 0)))

    def header(self) -> None:
        width = self.epw
        top = self.get_y()
        study = self.t(self.doc.study_id)
        self.font(9, grey=True)
        self.set_xy(self.l_margin + width * 0.6, top)
        self.cell(width * 0.4, 5, "Study ID", align="R")
        self.font(15, bold=True)
        self.set_xy(self.l_margin + width * 0.6, top + 5)
        self.cell(width * 0.4, 8, study, align="R")

        self.set_xy(self.l_margin, top)
        self.font(15, bold=True)
        self.cell(width * 0.6, 8, self._fit(self.t(self.doc.centre_name), width * 0.6 - 2))
        self.set_xy(self.l_margin, top + 8)
        self.font(11, grey=True)
        self.cell(width * 0.6, 5, "Radiology report")

        self.set_y(top + 15)
        self._rule(weight=0.4, colour=(60, 60, 60))
        self.ln(4)

    def footer(self) -> None:
        self.set_y(-(_FOOTER_SPACE - 5))
        self._rule()
        self.ln(1.5)
        self.font(8, grey=True)
        half = self.epw / 2
        study = self.t(self.doc.study_id)
        dash = self.text_filter.dash
        self.cell(half, 4, f"Study {study} {dash} page {self.page_no()} of {self.pages_alias}")
        self.cell(half, 4, f"Generated {_format_utc(self.generated)}", align="R")

    def draw_report(self) -> None:
        doc = self.doc
        self.add_page()
        if doc.status_note.strip():
            self._banner(self.t(doc.status_note.strip()))
        self._details()
        self._section("Findings", doc.findings)
        self._section("Impression", doc.impression)
        self._signature(doc.signed_by, doc.signed_at)
        for addendum in sorted(doc.addenda, key=lambda a: a.number):
            self._section(f"Addendum {addendum.number}", addendum.text)
            self._signature(addendum.signed_by, addendum.signed_at)
        if doc.key_images:
            self._key_images(doc.key_images)

    def _key_images(self, images: tuple[KeyImagePrint, ...]) -> None:
        """Two a row, each with where it is in the study below it."""
        gap, caption = 6.0, 5.0
        width = (self.epw - gap) / 2
        self._heading("Key images", keep=width * 0.6)
        for start in range(0, len(images), 2):
            pair = images[start : start + 2]
            sizes = [_print_size(image, width) for image in pair]
            row = max(h for _, h in sizes) + caption + 3
            if self.will_page_break(row):
                self.add_page()
            top = self.get_y()
            for column, (image, (w, height)) in enumerate(zip(pair, sizes, strict=True)):
                x = self.l_margin + column * (width + gap)
                if image.jpeg is not None:
                    self.image(io.BytesIO(image.jpeg), x=x, y=top, w=w, h=height)
                    self._edge_letters(image.edges, x, top, w, height)
                else:
                    self.set_xy(x, top)
                    self.font(9, grey=True)
                    self.multi_cell(width, _LINE, self.t(image.problem), border=1)
                self.set_xy(x, top + height + 1)
                self.font(9, grey=True)
                self.cell(width, caption - 1, self.t(image.caption))
            self.set_xy(self.l_margin, top + row)

    def _edge_letters(
        self, edges: tuple[str, str, str, str], x: float, y: float, w: float, h: float
    ) -> None:
        """The patient's directions at the middle of each edge of the image printed at
        ``x, y`` (``w`` by ``h`` mm): white on black, legible on any image."""
        self.font(7, bold=True)
        self.set_text_color(255, 255, 255)
        self.set_fill_color(0, 0, 0)
        box_h, inset = 3.4, 0.6
        for side, letters in zip(("top", "right", "bottom", "left"), edges, strict=True):
            if not letters:
                continue
            box_w = self.get_string_width(letters) + 1.4
            across = {"left": inset, "right": w - box_w - inset}.get(side, (w - box_w) / 2)
            down = {"top": inset, "bottom": h - box_h - inset}.get(side, (h - box_h) / 2)
            self.set_xy(x + across, y + down)
            self.cell(box_w, box_h, letters, align="C", fill=True)
        self.set_fill_color(255, 255, 255)

    def _banner(self, text: str) -> None:
        self.set_fill_color(255, 236, 179)
        self.set_draw_color(204, 122, 0)
        self.set_line_width(0.4)
        self.font(11, bold=True)
        self.set_text_color(122, 62, 0)
        self.multi_cell(
            0, 6, text, border=1, align="C", fill=True, padding=(2, 3),
            new_x=XPos.LMARGIN, new_y=YPos.NEXT,
        )  # fmt: skip
        self.set_fill_color(255, 255, 255)
        self.ln(4)

    def _details(self) -> None:
        doc, dash = self.doc, self.text_filter.dash

        def when(moment: datetime | None) -> str:
            return _format_utc(moment) if moment else dash

        sex_age = " / ".join(v for v in (self.t(doc.patient_age), self.t(doc.patient_sex)) if v)
        rows = (
            ("Patient", self.t(_person_name(doc.patient_name)), "Modality", doc.modality),
            ("Patient ID", doc.patient_id, "Body part", doc.body_part),
            ("Age / Sex", sex_age, "Priority", doc.priority.upper()),
            ("Accession no.", doc.accession_number, "Study date",
             doc.study_date.isoformat() if doc.study_date else ""),
            ("Description", doc.description, None, None),
            ("Received", when(doc.received_at), "Verified", when(doc.verified_at)),
            ("Delivered", when(doc.delivered_at), "", ""),
        )  # fmt: skip
        label_style = FontFace(emphasis="BOLD", color=_GREY, size_pt=9, fill_color=(244, 244, 244))
        self.font(_BODY_PT)
        self.set_fill_color(255, 255, 255)  # the table takes its initial style from the page
        self.set_draw_color(*_RULE)
        self.set_line_width(0.2)
        with self.table(
            col_widths=(17, 33, 17, 33), width=self.epw, first_row_as_headings=False,
            borders_layout="HORIZONTAL_LINES", text_align="LEFT", v_align="TOP",
            line_height=_LINE, padding=(1.2, 1.5),
        ) as table:  # fmt: skip
            for left_label, left_value, right_label, right_value in rows:
                row = table.row()
                row.cell(left_label, style=label_style)
                if right_label is None:
                    row.cell(self.t(left_value) or dash, colspan=3)
                    continue
                row.cell(self.t(left_value) or dash)
                row.cell(right_label, style=label_style if right_label else None)
                row.cell((self.t(right_value) or dash) if right_label else "")
        if self.text_filter.lost:
            self.ln(1)
            self.font(8, grey=True)
            note = NO_UNICODE_FONT_NOTE if not self.text_filter.unicode else MISSING_GLYPHS_NOTE
            self.cell(0, 4, note, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(3)

    def _heading(self, title: str, *, keep: float = 2 * _LINE) -> None:
        if self.will_page_break(8 + keep):  # keep a heading with what follows it
            self.add_page()
        self.ln(2)
        self.font(12, bold=True)
        self.cell(0, 7, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self._rule()
        self.ln(2)

    def _section(self, title: str, text: str) -> None:
        self._heading(title)
        body = self.t(text).strip("\n")
        self.font(_BODY_PT, grey=not body.strip())
        self.multi_cell(
            0, _LINE, body if body.strip() else "(none)", align="L",
            new_x=XPos.LMARGIN, new_y=YPos.NEXT,
        )  # fmt: skip

    def _signature(self, signed_by: str, signed_at: datetime | None) -> None:
        self.ln(3)
        if self.will_page_break(2 * _LINE):
            self.add_page()
        signer = self.t(signed_by).strip()
        if signer and signed_at:
            self.font(_BODY_PT, bold=True)
            line = f"Electronically signed by {signer} on {_format_utc(signed_at)}"
        else:
            self.font(_BODY_PT, grey=True)
            line = "Not signed."
        self.multi_cell(0, _LINE, line, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(2)

    def _rule(self, *, weight: float = 0.2, colour: tuple[int, int, int] = _RULE) -> None:
        self.set_draw_color(*colour)
        self.set_line_width(weight)
        y = self.get_y()
        self.line(self.l_margin, y, self.w - self.r_margin, y)

    def _fit(self, text: str, width: float) -> str:
        """Shrink the current font (down to 9 pt), then cut with an ellipsis, to fit ``width``."""
        while self.get_string_width(text) > width and self.font_size_pt > 9:
            self.set_font_size(self.font_size_pt - 0.5)
        ellipsis = "\u2026" if self.text_filter.unicode else "..."
        if self.get_string_width(text) <= width:
            return text
        while text and self.get_string_width(text + ellipsis) > width:
            text = text[:-1]
        return text.rstrip() + ellipsis
