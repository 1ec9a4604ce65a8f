"""Invoice and payout documents: the text of the PDFs (read back with pypdf) and the CSVs."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pypdf import PdfReader

from pacs_app.documents import pdf as report_pdf
from pacs_app.documents.invoice import (
    INVOICE_CSV_HEADER,
    PAYOUT_CSV_HEADER,
    InvoiceDocument,
    InvoiceLine,
    PayoutLine,
    PayoutStatement,
    invoice_csv,
    payout_csv,
    render_invoice_pdf,
    render_payout_pdf,
)

UNICODE_FONT = report_pdf.find_unicode_font()
needs_unicode_font = pytest.mark.skipif(
    UNICODE_FONT is None,
    reason="no Unicode TrueType font (DejaVu Sans or PACS_PDF_FONT): the rupee sign cannot be "
    "drawn, so the PDF writes 'INR' instead (covered by the no-font test)",
)


def line(study_id: str = "K3Q9ZP2A", amount: int = 123456, **changes) -> InvoiceLine:
    values = dict(
        study_id=study_id, delivered_on=date(2026, 11, 27), modality="CT", priority="urgent",
        description="CT read, urgent", base_minor=amount, surcharge_minor=0, amount_minor=amount,
    )  # fmt: skip
    return InvoiceLine(**(values | changes))


def invoice(
    lines: tuple[InvoiceLine, ...] = (), currency: str = "USD", **changes
) -> InvoiceDocument:
    lines = lines or (line(),)
    doc = InvoiceDocument(
        number=f"INV-2026-11-NDC-{currency}", centre_name="Northside Diagnostic Centre",
        centre_code="NDC", month="2026-11", currency=currency, status="issued",
        issued_at=datetime(2026, 12, 1, 9, 0, tzinfo=UTC), paid_at=None, lines=lines,
        total_minor=sum(item.charged_minor for item in lines),
    )  # fmt: skip
    return dataclasses.replace(doc, **changes)


def payout(count: int = 3, currency: str = "INR") -> PayoutStatement:
    lines = tuple(
        PayoutLine(f"P{i:07d}", date(2026, 11, 1 + i % 28), "MR", "NDC", 150000 + i)
        for i in range(count)
    )
    return PayoutStatement(
        radiologist_name="Dr Ana Núñez", month="2026-11", currency=currency, lines=lines,
        total_minor=sum(item.amount_minor for item in lines),
    )  # fmt: skip


def pages(data: bytes) -> list[str]:
    """Each page's text, whitespace collapsed."""
    return [" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(data)).pages]


def read_text(data: bytes) -> str:
    return " ".join(pages(data))


@pytest.fixture
def no_unicode_font(monkeypatch):
    """No font anywhere: no environment variable, no system or matplotlib DejaVu."""
    monkeypatch.delenv(report_pdf.FONT_ENV_VAR, raising=False)
    monkeypatch.setattr(report_pdf, "_SYSTEM_FONTS", ())
    monkeypatch.setattr(report_pdf, "_matplotlib_font", lambda: None)


# --- invoice PDF ----------------------------------------------------------------------------


def test_usd_invoice_shows_header_lines_and_total():
    doc = invoice((line("K3Q9ZP2A", 123456), line("M7TT4XQ1", 1000, modality="MR")))
    data = render_invoice_pdf(doc)
    assert data.startswith(b"%PDF-")
    text = read_text(data)
    for expected in (
        "Teleradiology reading services",
        "INVOICE",
        "INV-2026-11-NDC-USD",
        "Northside Diagnostic Centre",
        "NDC",
        "November 2026",
        "2026-12-01",
        "Study ID",
        "K3Q9ZP2A",
        "M7TT4XQ1",
        "2026-11-27",
        "Urgent",
        "CT read, urgent",
        "$1,234.56",
        "$10.00",
        "Total (USD) $1,244.56",
        "page 1 of 1",
    ):
        assert expected in text, expected
    assert "DRAFT" not in text
    assert "PAID" not in text


def test_aed_invoice_uses_the_code():
    text = read_text(render_invoice_pdf(invoice(currency="AED")))
    assert "AED 1,234.56" in text
    assert "Total (AED) AED 1,234.56" in text


@needs_unicode_font
def test_an_arabic_centre_name_is_set_with_joined_letter_forms():
    from tests.test_report_pdf import ARABIC_WORD, JOINED_FORMS, embedded_glyphs

    data = render_invoice_pdf(invoice(currency="AED", centre_name=ARABIC_WORD))
    assert embedded_glyphs(data) >= JOINED_FORMS


@needs_unicode_font
def test_inr_invoice_uses_the_rupee_sign_and_indian_grouping():
    doc = invoice((line(amount=12345600), line("M7TT4XQ1", 5000)), currency="INR")
    text = read_text(render_invoice_pdf(doc))
    assert "₹1,23,456.00" in text
    assert "₹50.00" in text
    assert "₹1,23,506.00" in text


def test_inr_invoice_without_a_unicode_font_writes_the_code(no_unicode_font):
    doc = invoice((line(amount=12345600),), currency="INR", centre_name="Zürich “Centre”")
    text = read_text(render_invoice_pdf(doc))
    assert "INR 1,23,456.00" in text
    assert "?" not in text
    assert 'Zürich "Centre"' in text


def test_draft_invoice_has_a_banner_and_no_issue_date():
    doc = invoice(status="draft", issued_at=None)
    first = pages(render_invoice_pdf(doc))[0]
    assert "DRAFT INVOICE" in first
    assert "not a request for payment" in first
    assert "2026-12-01" not in first


def test_paid_invoice_has_a_stamp_with_the_date():
    doc = invoice(status="paid", paid_at=datetime(2026, 12, 10, 23, 30, tzinfo=UTC))
    text = read_text(render_invoice_pdf(doc))
    assert "PAID" in text
    assert "on 2026-12-10" in text


def test_credited_line_charges_nothing_and_says_why():
    lines = (line(), line("M7TT4XQ1", 5000, credited=True, credit_reason="Duplicate upload"))
    doc = invoice(lines)
    assert doc.total_minor == 123456
    text = read_text(render_invoice_pdf(doc))
    assert "Credited: Duplicate upload (was $50.00)" in text
    assert "$0.00" in text
    assert "Total (USD) $1,234.56" in text


def test_long_invoice_flows_onto_pages_with_the_table_header_repeated():
    lines = tuple(line(f"S{i:07d}", 10000 + i) for i in range(120))
    doc = invoice(lines)
    texts = pages(render_invoice_pdf(doc))
    assert len(texts) >= 3
    for number, text in enumerate(texts, start=1):
        assert "Study ID Date Modality Priority Description Amount" in text, number
        assert f"page {number} of {len(texts)}" in text
        assert "INV-2026-11-NDC-USD" in text
    everything = " ".join(texts)
    assert all(f"S{i:07d}" in everything for i in range(120))
    assert "Total (USD) $12,071.40" in texts[-1]  # 120 * 100.00 + 0.01 * (0 + ... + 119)


def test_invoice_has_no_patient_fields():
    names = {field.name for field in dataclasses.fields(InvoiceLine)}
    assert not {name for name in names if "patient" in name}


def test_unknown_status_is_refused():
    with pytest.raises(ValueError, match="status"):
        render_invoice_pdf(invoice(status="void"))


# --- invoice CSV ----------------------------------------------------------------------------


def test_invoice_csv_parses_back_and_sums_to_the_total():
    lines = (
        line("K3Q9ZP2A", 123456),
        line("M7TT4XQ1", 5000, credited=True, credit_reason="Duplicate upload"),
        line("Q2WE8RT5", 99, description='Read, "second opinion"\nwith a comma'),
    )
    doc = invoice(lines, currency="INR")
    text = invoice_csv(doc)
    assert "\r\n" in text
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert tuple(rows[0]) == INVOICE_CSV_HEADER
    body, total = rows[:-1], rows[-1]
    assert [row["row_type"] for row in body] == ["line"] * 3
    assert total["row_type"] == "total"
    assert {row["currency"] for row in rows} == {"INR"}
    assert [row["amount"] for row in body] == ["1234.56", "0.00", "0.99"]
    assert body[1]["priced_amount"] == "50.00"
    assert [row["credited"] for row in body] == ["no", "yes", "no"]
    assert body[1]["credit_reason"] == "Duplicate upload"
    assert body[2]["description"] == 'Read, "second opinion"\nwith a comma'
    added = sum(Decimal(row["amount"]) for row in body)
    assert added == Decimal(total["amount"]) == Decimal("1235.55")


@pytest.mark.parametrize("payload", ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)"])
def test_invoice_csv_defuses_formulas(payload):
    doc = invoice((line(description=payload, credit_reason=payload, credited=True),))
    rows = list(csv.DictReader(io.StringIO(invoice_csv(doc), newline="")))
    assert rows[0]["description"] == "'" + payload
    assert rows[0]["credit_reason"] == "'" + payload
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "@")), value
            assert not value.startswith("-") or value.lstrip("-").replace(".", "").isdigit()


# --- payout statement -----------------------------------------------------------------------


@needs_unicode_font
def test_payout_pdf_shows_reads_and_total():
    doc = payout()
    text = read_text(render_payout_pdf(doc))
    for expected in (
        "PAYOUT STATEMENT",
        "Dr Ana Núñez",
        "November 2026",
        "P0000000",
        "P0000002",
        "NDC",
        "₹1,500.00",
        "₹1,500.02",
        "Total (INR) ₹4,500.03",
        "page 1 of 1",
    ):
        assert expected in text, expected


def test_payout_pdf_in_usd_flows_onto_pages():
    doc = payout(count=120, currency="USD")
    texts = pages(render_payout_pdf(doc))
    assert len(texts) >= 3
    assert all("Study ID Read on Modality Centre Amount" in text for text in texts)
    assert "Total (USD) $180,071.40" in texts[-1]


def test_payout_csv_parses_back_and_sums_to_the_total():
    doc = dataclasses.replace(payout(currency="AED"), radiologist_name="=cmd|' /C calc'!A0")
    rows = list(csv.DictReader(io.StringIO(payout_csv(doc), newline="")))
    assert tuple(rows[0]) == PAYOUT_CSV_HEADER
    body, total = rows[:-1], rows[-1]
    assert len(body) == 3
    assert total["row_type"] == "total"
    assert {row["currency"] for row in rows} == {"AED"}
    assert body[0]["read_on"] == "2026-11-01"
    assert body[0]["radiologist"] == "'=cmd|' /C calc'!A0"
    assert sum(Decimal(row["amount"]) for row in body) == Decimal(total["amount"])
    assert total["amount"] == "4500.03"


def test_odd_text_and_a_long_centre_name_render():
    odd = "Read\x00 with\u200b control 😀 مرحبا 中文 " + "x" * 300
    doc = invoice(
        (line(description=odd, credited=True, credit_reason=odd),),
        centre_name="Very Long Centre Name " * 8,
    )
    text = read_text(render_invoice_pdf(doc))
    assert "Total (USD) $0.00" in text
    assert "\x00" not in text


def test_a_total_that_does_not_add_up_is_printed_as_given_with_a_warning(caplog):
    doc = invoice(total_minor=999)
    text = read_text(render_invoice_pdf(doc))
    assert "Total (USD) $9.99" in text
    assert "lines add up to 123456 but the total is 999" in caplog.text


@pytest.mark.parametrize("font", ["unicode", "core"])
def test_the_widest_study_ids_stay_on_one_line(font, request):
    # Study IDs are random: eight W's, or a credited line's long note beside them, must not
    # break an ID across two lines (it read "WXPNRDW" and "P" on the next).
    if font == "core":
        request.getfixturevalue("no_unicode_font")
    ids = ("WWWWWWWW", "MMMMMMMM", "WXPNRDWP", "W0W0W0W0")
    lines = tuple(
        line(study_id=i, credited=n % 2 == 0, credit_reason="duplicate upload of the study")
        for n, i in enumerate(ids)
    )
    doc = invoice(lines, currency="INR")
    payout_doc = dataclasses.replace(
        payout(),
        lines=tuple(PayoutLine(i, date(2026, 11, 2), "CT", "NDC", 100) for i in ids),
        total_minor=400,
    )
    for data in (render_invoice_pdf(doc), render_payout_pdf(payout_doc)):
        raw = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
        lines_of_text = raw.splitlines()
        for study_id in ids:
            assert any(study_id in text for text in lines_of_text), (study_id, raw)
