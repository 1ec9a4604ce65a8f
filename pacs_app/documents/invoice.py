"""Centre invoices and radiologist payout statements: A4 PDFs (fpdf2) and CSV exports.

Plain Python (no web framework, no database), like :mod:`pacs_app.documents.pdf`: the caller
fetches and permission-checks the figures, builds an :class:`InvoiceDocument` or a
:class:`PayoutStatement`, and gets bytes or text back; nothing is written to disk::

    pdf_bytes = render_invoice_pdf(doc)
    csv_text = invoice_csv(doc)

Amounts are integer minor units throughout and are printed with
:func:`pacs_app.billing.money.format_money` (``$1,234.56``, ``₹1,23,456.00``, ``AED 1,234.56``).
Without a Unicode font the PDF still renders in Helvetica, and a symbol it cannot show is
written as the currency code (``INR 1,23,456.00``), never as ``?``.

No PHI: an invoice line names a study by its Study ID only, never by patient.
"""

from __future__ import annotations

import csv
import io
import logging
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from pacs_app.billing.money import CURRENCIES, currency_of, format_money, to_decimal
from pacs_app.documents.pdf import find_unicode_font, shape_text

__all__ = [
    "INVOICE_CSV_HEADER",
    "INVOICE_STATUSES",
    "PAYOUT_CSV_HEADER",
    "InvoiceDocument",
    "InvoiceLine",
    "PayoutLine",
    "PayoutStatement",
    "invoice_csv",
    "payout_csv",
    "render_invoice_pdf",
    "render_payout_pdf",
]

logger = logging.getLogger(__name__)

INVOICE_STATUSES = ("draft", "issued", "paid")


@dataclass(frozen=True)
class InvoiceLine:
    """One billed study. ``amount_minor`` is the priced amount; a credited line charges 0."""

    study_id: str
    delivered_on: date
    modality: str
    priority: str
    description: str  # e.g. "CT read, urgent"
    base_minor: int
    surcharge_minor: int
    amount_minor: int
    credited: bool = False
    credit_reason: str = ""

    @property
    def charged_minor(self) -> int:
        """What this line adds to the invoice total: 0 once credited."""
        return 0 if self.credited else self.amount_minor


@dataclass(frozen=True)
class InvoiceDocument:
    """A centre's invoice for one month in one currency, as the caller fetched it."""

    number: str
    centre_name: str
    centre_code: str
    month: str  # "2026-11"
    currency: str  # "USD" | "INR" | "AED"
    status: str  # "draft" | "issued" | "paid"
    issued_at: datetime | None
    paid_at: datetime | None
    lines: tuple[InvoiceLine, ...]
    total_minor: int
    business_name: str = "Teleradiology reading services"


@dataclass(frozen=True)
class PayoutLine:
    study_id: str
    read_on: date
    modality: str
    centre_code: str
    amount_minor: int


@dataclass(frozen=True)
class PayoutStatement:
    """What a radiologist earned in one month, in one currency."""

    radiologist_name: str
    month: str
    currency: str
    lines: tuple[PayoutLine, ...]
    total_minor: int


# --- public API -----------------------------------------------------------------------------


def render_invoice_pdf(doc: InvoiceDocument, *, font_path: str | None = None) -> bytes:
    """Render ``doc`` as an A4 invoice PDF and return its bytes.

    A draft carries a "DRAFT INVOICE" title and banner; a paid invoice a "PAID" stamp. Lines
    flow onto further pages with the table header repeated. ``font_path`` names a TrueType
    font to prefer (see :func:`pacs_app.documents.pdf.find_unicode_font`).

    Raises ``ValueError`` for an unknown status and
    :class:`pacs_app.core.errors.InvalidInput` for an unknown currency.
    """
    if doc.status not in INVOICE_STATUSES:
        raise ValueError(f"Unknown invoice status {doc.status!r}: use one of {INVOICE_STATUSES}.")
    _check_total(doc.number, [line.charged_minor for line in doc.lines], doc.total_minor)
    pdf = _DocumentPDF(font_path, currency=doc.currency)
    draft = doc.status == "draft"
    month = _month_label(doc.month)
    pdf.set_title(f"Invoice {pdf.clean(doc.number)}")
    pdf.set_author(pdf.clean(doc.business_name))
    pdf.heading = _Heading(
        left_big=pdf.clean(doc.business_name),
        left_small=pdf.clean(doc.centre_name, one_line=True),
        left_small_tail=f" \u00b7 {month}",
        right_big="DRAFT INVOICE" if draft else "INVOICE",
        right_small=pdf.clean(doc.number, one_line=True),
        footer_left=f"Invoice {pdf.clean(doc.number, one_line=True)}",
        footer_right=f"Amounts in {pdf.currency_code}",
    )
    pdf.add_page()
    if draft:
        pdf.banner(f"DRAFT INVOICE {pdf.dash} not issued, not a request for payment")
    pdf.details(
        (
            ("Bill to", doc.centre_name, "Invoice no.", doc.number),
            ("Centre code", doc.centre_code, "Month", month),
            ("Issued", _date_text(doc.issued_at, pdf.dash), "Currency", pdf.currency_name),
            ("Paid", _date_text(doc.paid_at, pdf.dash), "Status", doc.status.capitalize()),
        )
    )
    if doc.status == "paid":
        paid_on = f"on {_date_text(doc.paid_at, '')}" if doc.paid_at else ""
        pdf.stamp("PAID", paid_on)

    rows = []
    for line in doc.lines:
        description = pdf.clean(line.description)
        if line.credited:
            reason = pdf.clean(line.credit_reason, one_line=True).strip()
            note = f"Credited: {reason}" if reason else "Credited"
            description += f"\n{note} (was {pdf.money(line.amount_minor)})"
        rows.append(
            _Row(
                (
                    line.study_id,
                    line.delivered_on.isoformat(),
                    line.modality,
                    _priority_label(line.priority),
                    description,
                    pdf.money(line.charged_minor),
                ),
                muted=line.credited,
            )
        )
    pdf.lines_table(
        ("Study ID", "Date", "Modality", "Priority", "Description", "Amount"),
        (22, 22, 18, 16, 66, 30),
        rows,
    )
    credited = sum(line.credited for line in doc.lines)
    summary = [("Studies", str(len(doc.lines)))]
    if credited:
        summary.append(("Credited", str(credited)))
    pdf.totals(summary, ("Total", pdf.money(doc.total_minor)))
    return bytes(pdf.output())


def render_payout_pdf(doc: PayoutStatement, *, font_path: str | None = None) -> bytes:
    """Render a radiologist's monthly payout statement as an A4 PDF and return its bytes."""
    _check_total(doc.radiologist_name, [line.amount_minor for line in doc.lines], doc.total_minor)
    pdf = _DocumentPDF(font_path, currency=doc.currency)
    month = _month_label(doc.month)
    name = pdf.clean(doc.radiologist_name, one_line=True)
    pdf.set_title(f"Payout statement {name} {doc.month}")
    pdf.heading = _Heading(
        left_big=name,
        left_small="Reading payouts",
        left_small_tail=f" \u00b7 {month}",
        right_big="PAYOUT STATEMENT",
        right_small=month,
        footer_left=f"Payout statement {name} {pdf.dash} {month}",
        footer_right=f"Amounts in {pdf.currency_code}",
    )
    pdf.add_page()
    pdf.details(
        (
            ("Radiologist", doc.radiologist_name, "Month", month),
            ("Reads", str(len(doc.lines)), "Currency", pdf.currency_name),
        )
    )
    rows = [
        _Row(
            (
                line.study_id,
                line.read_on.isoformat(),
                line.modality,
                line.centre_code,
                pdf.money(line.amount_minor),
            )
        )
        for line in doc.lines
    ]
    pdf.lines_table(
        ("Study ID", "Read on", "Modality", "Centre", "Amount"), (30, 26, 24, 56, 38), rows
    )
    pdf.totals([("Reads", str(len(doc.lines)))], ("Total", pdf.money(doc.total_minor)))
    return bytes(pdf.output())


INVOICE_CSV_HEADER = (
    "row_type", "invoice_number", "centre_code", "month", "study_id", "delivered_on",
    "modality", "priority", "description", "currency", "base", "surcharge", "priced_amount",
    "credited", "credit_reason", "amount",
)  # fmt: skip
"""Columns of :func:`invoice_csv`. ``amount`` is what the line charges (0 when credited):
the ``line`` rows' amounts add up to the ``total`` row's."""

PAYOUT_CSV_HEADER = (
    "row_type", "radiologist", "month", "study_id", "read_on", "modality", "centre_code",
    "currency", "amount",
)  # fmt: skip
"""Columns of :func:`payout_csv`; the ``line`` rows' amounts add up to the ``total`` row's."""


def invoice_csv(doc: InvoiceDocument) -> str:
    """The invoice as CSV text: a header row, one ``line`` row per study, one ``total`` row.

    Amounts are plain decimals (``1234.50``) beside a ``currency`` column; ``credited`` is
    ``yes``/``no``. Quoting follows RFC 4180 (``\\r\\n`` line ends). Text that a spreadsheet
    would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return)
    gets a leading ``'``; the amount columns are left as numbers.
    Encode as ``utf-8-sig`` for a file that Excel should open.
    """
    code = currency_of(doc.currency).value
    head = {"invoice_number": doc.number, "centre_code": doc.centre_code, "month": doc.month}
    rows = [
        head
        | {
            "row_type": "line",
            "study_id": line.study_id,
            "delivered_on": line.delivered_on.isoformat(),
            "modality": line.modality,
            "priority": line.priority,
            "description": line.description,
            "base": _plain_amount(line.base_minor, code),
            "surcharge": _plain_amount(line.surcharge_minor, code),
            "priced_amount": _plain_amount(line.amount_minor, code),
            "credited": "yes" if line.credited else "no",
            "credit_reason": line.credit_reason,
            "amount": _plain_amount(line.charged_minor, code),
        }
        for line in doc.lines
    ]
    rows.append(head | {"row_type": "total", "amount": _plain_amount(doc.total_minor, code)})
    return _write_csv(INVOICE_CSV_HEADER, rows, currency=code)


def payout_csv(doc: PayoutStatement) -> str:
    """The payout statement as CSV text, like :func:`invoice_csv` (see ``PAYOUT_CSV_HEADER``)."""
    code = currency_of(doc.currency).value
    head = {"radiologist": doc.radiologist_name, "month": doc.month}
    rows = [
        head
        | {
            "row_type": "line",
            "study_id": line.study_id,
            "read_on": line.read_on.isoformat(),
            "modality": line.modality,
            "centre_code": line.centre_code,
            "amount": _plain_amount(line.amount_minor, code),
        }
        for line in doc.lines
    ]
    rows.append(head | {"row_type": "total", "amount": _plain_amount(doc.total_minor, code)})
    return _write_csv(PAYOUT_CSV_HEADER, rows, currency=code)


# --- helpers --------------------------------------------------------------------------------

_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_AMOUNT_COLUMNS = frozenset({"base", "surcharge", "priced_amount", "amount"})


def _month_label(month: str) -> str:
    """``"2026-11"`` -> ``"November 2026"``; anything else is returned as it is."""
    year, _, number = month.strip().partition("-")
    if year.isdigit() and number.isdigit() and 1 <= int(number) <= 12:
        return f"{_MONTHS[int(number) - 1]} {year}"
    return month


def _date_text(moment: datetime | None, missing: str) -> str:
    """The UTC calendar day of ``moment`` (a naive datetime is taken to be UTC)."""
    if moment is None:
        return missing
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.date().isoformat()


def _priority_label(priority: str) -> str:
    return "STAT" if priority.strip().lower() == "stat" else priority.strip().capitalize()


def _check_total(what: str, amounts: Iterable[int], total: int) -> None:
    """Warn (not fail: the stored total is what was issued) when the lines do not add up."""
    added = sum(amounts)
    if added != total:
        logger.warning("%s: lines add up to %d but the total is %d", what, added, total)


def _plain_amount(minor: int, currency: str) -> str:
    """``123450`` in INR -> ``"1234.50"``: no symbol, no grouping, always the minor digits."""
    return f"{to_decimal(int(minor), currency):f}"


def _cell(value: str) -> str:
    """User text for a CSV cell, defused so that a spreadsheet shows it instead of running it."""
    return "'" + value if value.startswith(_FORMULA_PREFIXES) else value


def _write_csv(header: Sequence[str], rows: Iterable[dict[str, str]], *, currency: str) -> str:
    """RFC 4180 text; every cell but the amounts (ours, never formulas) goes through _cell."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, restval="", lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                key: value if key in _AMOUNT_COLUMNS else _cell(value)
                for key, value in (row | {"currency": currency}).items()
            }
        )
    return buffer.getvalue()


# --- text and fonts -------------------------------------------------------------------------

_ASCII_LOOKALIKES = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
        "\u2014": "-", "\u2212": "-", "\u2026": "...", "\u2022": "*",
    }
)  # fmt: skip
_FONT_FAMILY = "pacs-invoice"


class _Filter:
    """Makes text safe for the fonts in use: unknown characters become '?', never an error."""

    def __init__(self, covers: Callable[[int], bool], *, unicode: bool) -> None:
        self.covers = covers
        self.unicode = unicode

    def clean(self, text: str, *, one_line: bool = False) -> str:
        text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
        text = text.replace("\t", " ")
        if one_line:
            text = " ".join(text.split())
        if not self.unicode:
            text = text.translate(_ASCII_LOOKALIKES)
        out = []
        for char in text:
            if char == "\n" or self.covers(ord(char)):
                out.append(char)
            elif unicodedata.category(char) == "Zs":
                out.append(" ")
            elif unicodedata.category(char)[0] != "C":  # controls and zero-width marks: dropped
                out.append("?")
        return "".join(out)


def _load_fonts(pdf: FPDF, font_path: str | None) -> _Filter:
    """Register ``font_path`` (and its ``-Bold`` sibling) for the document; else Helvetica."""
    if font_path:
        try:
            pdf.add_font(_FONT_FAMILY, "", font_path)
            bold = Path(font_path).with_name(Path(font_path).stem + "-Bold.ttf")
            pdf.add_font(_FONT_FAMILY, "B", bold if bold.is_file() else font_path)
        except Exception:  # an unreadable or invalid font file must not stop the document
            logger.warning("cannot use font %s for invoice PDFs; using Helvetica", font_path)
            pdf.fonts.pop(_FONT_FAMILY, None)
            pdf.fonts.pop(_FONT_FAMILY + "B", None)
        else:
            pdf.family = _FONT_FAMILY
            shape_text(pdf)
            both = set(pdf.fonts[_FONT_FAMILY].cmap) & set(pdf.fonts[_FONT_FAMILY + "B"].cmap)
            return _Filter(both.__contains__, unicode=True)
    pdf.family = "helvetica"
    return _Filter(lambda cp: 0x20 <= cp <= 0x7E or 0xA0 <= cp <= 0xFF, unicode=False)


# --- layout ---------------------------------------------------------------------------------

_MARGIN = 18.0
_FOOTER_SPACE = 20.0
_BODY_PT = 9.0
_GREY = (100, 100, 100)
_RULE = (190, 190, 190)
_LABEL = FontFace(emphasis="BOLD", color=_GREY, size_pt=8.5, fill_color=(244, 244, 244))


@dataclass(frozen=True)
class _Heading:
    """What every page repeats: a header (two lines each side) and a footer."""

    left_big: str
    left_small: str
    right_big: str
    right_small: str
    footer_left: str
    footer_right: str
    left_small_tail: str = ""  # kept whole when left_small is cut to fit


@dataclass(frozen=True)
class _Row:
    cells: tuple[str, ...]  # the last one is the amount, right-aligned
    muted: bool = False


class _DocumentPDF(FPDF):
    family: str
    heading: _Heading

    def __init__(self, font_path: str | None, *, currency: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.set_margins(_MARGIN, 15, _MARGIN)
        self.set_auto_page_break(True, margin=_FOOTER_SPACE)
        # An alias users cannot type by chance: fpdf2 would replace it in their text too.
        self.pages_alias = "{pages-" + secrets.token_hex(6) + "}"
        self.alias_nb_pages(self.pages_alias)
        self.set_creator("Teleradiology PACS")
        self.filter = _load_fonts(self, find_unicode_font(font_path))
        self.currency = currency_of(currency)
        info = CURRENCIES[self.currency]
        self.currency_code = info.code
        self.currency_name = f"{info.code} ({info.name})"
        self.dash = "\u2014" if self.filter.unicode else "-"

    def clean(self, text: str, *, one_line: bool = False) -> str:
        return self.filter.clean(text, one_line=one_line)

    def money(self, minor: int) -> str:
        """``format_money``, with the currency code where the font lacks the symbol."""
        text = format_money(minor, self.currency)
        if all(self.filter.covers(ord(char)) for char in text):
            return text
        info = CURRENCIES[self.currency]
        return text.replace(info.symbol, f"{info.code} ", 1)

    def font(self, size: float = _BODY_PT, *, bold: bool = False, grey: bool = False) -> None:
        self.set_font(self.family, "B" if bold else "", size)
        self.set_text_color(*(_GREY if grey else (0, 0, 0)))

    # Every page -----------------------------------------------------------------------------

    def header(self) -> None:
        h, width, top = self.heading, self.epw, self.get_y()
        right_x = self.l_margin + width * 0.55
        self.font(15, bold=True)
        self.set_xy(right_x, top)
        self.cell(width * 0.45, 8, self._fit(h.right_big, width * 0.45), align="R")
        self.font(10, grey=True)
        self.set_xy(right_x, top + 8)
        self.cell(width * 0.45, 5, self._fit(h.right_small, width * 0.45), align="R")

        self.set_xy(self.l_margin, top)
        self.font(15, bold=True)
        self.cell(width * 0.55, 8, self._fit(h.left_big, width * 0.55 - 3))
        self.set_xy(self.l_margin, top + 8)
        self.font(10, grey=True)
        tail = h.left_small_tail
        room = width * 0.55 - 3 - self.get_string_width(tail)
        self.cell(width * 0.55, 5, self._fit(h.left_small, room) + tail)

        self.set_y(top + 15)
        self._rule(weight=0.4, colour=(60, 60, 60))
        self.ln(4)

    def footer(self) -> None:
        self.set_y(-(_FOOTER_SPACE - 5))
        self._rule()
        self.ln(1.5)
        self.font(8, grey=True)
        half = self.epw / 2
        page = f"page {self.page_no()} of {self.pages_alias}"
        self.cell(half, 4, f"{self._fit(self.heading.footer_left, half - 30)} {self.dash} {page}")
        self.cell(half, 4, self.heading.footer_right, align="R")

    # First page -----------------------------------------------------------------------------

    def banner(self, text: str) -> None:
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

    def details(self, rows: Iterable[tuple[str, str, str, str]]) -> None:
        """A two-pair-per-row block of labelled values (values are cleaned here)."""
        self.font(_BODY_PT)
        self.set_fill_color(255, 255, 255)  # the table takes its initial style from the page
        self.set_draw_color(*_RULE)
        self.set_line_width(0.2)
        with self.table(
            col_widths=(16, 34, 16, 34), width=self.epw, first_row_as_headings=False,
            borders_layout="HORIZONTAL_LINES", text_align="LEFT", v_align="TOP",
            line_height=4.6, padding=(1.2, 1.5),
        ) as table:  # fmt: skip
            for left_label, left_value, right_label, right_value in rows:
                row = table.row()
                row.cell(left_label, style=_LABEL)
                row.cell(self.clean(left_value) or self.dash)
                row.cell(right_label, style=_LABEL)
                row.cell(self.clean(right_value) or self.dash)
        self.ln(5)

    def stamp(self, word: str, note: str) -> None:
        """A green, boxed stamp (``PAID``) at the right, above the table."""
        width, green = 48.0, (22, 120, 60)
        x = self.w - self.r_margin - width
        self.set_draw_color(*green)
        self.set_line_width(0.8)
        self.set_text_color(*green)
        self.set_font(self.family, "B", 18)
        self.set_x(x)
        self.cell(width, 9, word, border="LTR", align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(self.family, "", 8.5)
        self.set_x(x)
        self.cell(width, 5, note, border="LBR", align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(0, 0, 0)
        self.ln(4)

    # The lines ------------------------------------------------------------------------------

    def lines_table(
        self, headings: Sequence[str], widths: Sequence[float], rows: Iterable[_Row]
    ) -> None:
        """The table of lines; fpdf2 repeats its heading row at the top of each new page.

        The first column holds Study IDs: it is widened, where needed, to fit the widest one
        (eight W's) on one line, taking the room from the widest other column.
        """
        align = ("LEFT",) * (len(headings) - 1) + ("RIGHT",)
        muted = FontFace(color=_GREY)
        self.font(_BODY_PT)
        widths = list(widths)
        scale = sum(widths) / self.epw  # the widths are shares of the page's width
        needed = (self.get_string_width("W" * 8) + 2 * 1.5 + 1.0) * scale
        if widths[0] < needed:
            widest = max(range(1, len(widths)), key=lambda i: widths[i])
            widths[widest] -= needed - widths[0]
            widths[0] = needed
        self.set_fill_color(255, 255, 255)
        self.set_draw_color(*_RULE)
        self.set_line_width(0.2)
        with self.table(
            col_widths=tuple(widths), width=self.epw, text_align=align, v_align="TOP",
            borders_layout="HORIZONTAL_LINES", line_height=4.4, padding=(1.4, 1.5),
            headings_style=FontFace(emphasis="BOLD", size_pt=8.5, fill_color=(234, 234, 234)),
        ) as table:  # fmt: skip
            heading = table.row()
            for text in headings:
                heading.cell(text)
            empty = True
            for item in rows:
                empty = False
                row = table.row()
                for text in item.cells:
                    row.cell(self.clean(text) or self.dash, style=muted if item.muted else None)
            if empty:
                table.row().cell("No studies this month.", colspan=len(headings), style=muted)

    def totals(self, summary: Sequence[tuple[str, str]], total: tuple[str, str]) -> None:
        """Right-aligned counts, then the total in bold; kept together on one page."""
        needed = 4 + 5 * len(summary) + 9
        if self.will_page_break(needed):
            self.add_page()
        self.ln(4)
        label_w, value_w = 38.0, 42.0
        x = self.w - self.r_margin - label_w - value_w
        for label, value in summary:
            self.set_x(x)
            self.font(_BODY_PT, grey=True)
            self.cell(label_w, 5, label)
            self.font(_BODY_PT)
            self.cell(value_w, 5, value, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_draw_color(60, 60, 60)
        self.set_line_width(0.4)
        y = self.get_y() + 1
        self.line(x, y, self.w - self.r_margin, y)
        self.set_y(y + 1.5)
        self.set_x(x)
        self.font(12, bold=True)
        self.cell(label_w, 7, f"{total[0]} ({self.currency_code})")
        self.cell(value_w, 7, total[1], align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    # Small tools ----------------------------------------------------------------------------

    def _rule(self, *, weight: float = 0.2, colour: tuple[int, int, int] = _RULE) -> None:
        self.set_draw_color(*colour)
        self.set_line_width(weight)
        y = self.get_y()
        self.line(self.l_margin, y, self.w - self.r_margin, y)

    def _fit(self, text: str, width: float) -> str:
        """Shrink the current font (down to 8 pt), then cut with an ellipsis, to fit ``width``."""
        while self.get_string_width(text) > width and self.font_size_pt > 8:
            self.set_font_size(self.font_size_pt - 0.5)
        if self.get_string_width(text) <= width:
            return text
        ellipsis = "\u2026" if self.filter.unicode else "..."
        while text and self.get_string_width(text + ellipsis) > width:
            text = text[:-1]
        return text.rstrip() + ellipsis
