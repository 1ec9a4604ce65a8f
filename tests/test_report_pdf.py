"""Report PDFs: what a reader sees in the text of the PDF (read back with pypdf)."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont
from pypdf import PdfReader

from pacs_app.documents import pdf as report_pdf
from pacs_app.documents.pdf import (
    NO_UNICODE_FONT_NOTE,
    ReportAddendum,
    ReportDocument,
    find_unicode_font,
    render_report_pdf,
)

SIGNED = datetime(2026, 11, 27, 21, 5, tzinfo=UTC)


def make_document(**changes) -> ReportDocument:
    doc = ReportDocument(
        centre_name="Northside Diagnostic Centre",
        study_id="K3Q9ZP2A",
        patient_name="DOE^JANE^MARIE",
        patient_id="MRN-0042317",
        patient_age="045Y",
        patient_sex="F",
        modality="CT",
        body_part="CHEST",
        description="CT thorax with contrast",
        study_date=date(2026, 11, 27),
        accession_number="ACC-118842",
        priority="urgent",
        received_at=datetime(2026, 11, 27, 19, 42, tzinfo=UTC),
        verified_at=SIGNED,
        delivered_at=datetime(2026, 11, 27, 21, 6, tzinfo=UTC),
        findings="Lungs are clear.\nNo pleural effusion.",
        impression="No acute cardiopulmonary abnormality.",
        signed_by="Dr Ana Núñez",
        signed_at=SIGNED,
        addenda=(
            ReportAddendum(2, "Comparison study reviewed: unchanged.", "Dr Ana Núñez",
                           datetime(2026, 11, 28, 8, 15, tzinfo=UTC)),
            ReportAddendum(3, "Referrer informed by phone.", "Dr Li Wei",
                           datetime(2026, 11, 28, 9, 30, tzinfo=UTC)),
        ),
    )  # fmt: skip
    return dataclasses.replace(doc, **changes)


def read_text(data: bytes) -> str:
    """All pages' text, whitespace collapsed (wrapping and extraction add line breaks)."""
    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join(page.extract_text().split()) for page in reader.pages)


def page_count(data: bytes) -> int:
    return len(PdfReader(io.BytesIO(data)).pages)


def fonts_cover(text: str) -> bool:
    """Whether the fonts the renderer would use here have a glyph for every character."""
    paths = [find_unicode_font()] + [p for p in report_pdf._FALLBACK_FONTS if Path(p).is_file()]
    covered: set[int] = set()
    for path in filter(None, paths):
        with TTFont(path, fontNumber=0, lazy=True) as font:
            covered |= set(font.getBestCmap())
    return all(ord(char) in covered for char in text if not char.isspace())


@pytest.fixture
def no_unicode_font(monkeypatch):
    """No font anywhere: no environment variable, no system or matplotlib DejaVu."""
    monkeypatch.delenv(report_pdf.FONT_ENV_VAR, raising=False)
    monkeypatch.setattr(report_pdf, "_SYSTEM_FONTS", ())
    monkeypatch.setattr(report_pdf, "_matplotlib_font", lambda: None)


def test_every_field_appears_in_order():
    data = render_report_pdf(make_document(), generated_at=datetime(2026, 11, 29, 7, 0, tzinfo=UTC))
    assert data.startswith(b"%PDF-")
    text = read_text(data)

    for expected in (
        "Northside Diagnostic Centre",
        "Radiology report",
        "K3Q9ZP2A",
        "DOE JANE MARIE",
        "MRN-0042317",
        "045Y / F",
        "CT",
        "CHEST",
        "CT thorax with contrast",
        "2026-11-27",
        "ACC-118842",
        "URGENT",
        "2026-11-27 19:42 UTC",
        "2026-11-27 21:06 UTC",
        "Study K3Q9ZP2A",
        "page 1 of 1",
        "Generated 2026-11-29 07:00 UTC",
    ):
        assert expected in text, expected
    assert "^" not in text

    in_order = [
        "Findings",
        "Lungs are clear.",
        "No pleural effusion.",
        "Impression",
        "No acute cardiopulmonary abnormality.",
        "Electronically signed by Dr Ana Núñez on 2026-11-27 21:05 UTC",
        "Addendum 2",
        "Comparison study reviewed: unchanged.",
        "Electronically signed by Dr Ana Núñez on 2026-11-28 08:15 UTC",
        "Addendum 3",
        "Referrer informed by phone.",
        "Electronically signed by Dr Li Wei on 2026-11-28 09:30 UTC",
    ]
    positions = [text.find(part) for part in in_order]
    assert -1 not in positions, dict(zip(in_order, positions, strict=True))
    assert positions == sorted(positions)


def test_addenda_are_printed_by_version_number():
    doc = make_document()
    text = read_text(render_report_pdf(dataclasses.replace(doc, addenda=doc.addenda[::-1])))
    assert text.index("Addendum 2") < text.index("Addendum 3")


def test_unsigned_report_without_times_renders():
    doc = make_document(
        signed_by="", signed_at=None, verified_at=None, delivered_at=None, study_date=None,
        addenda=(), impression="",
    )  # fmt: skip
    text = read_text(render_report_pdf(doc))
    assert "Not signed." in text
    assert "Electronically signed" not in text
    assert "Impression (none)" in text


def test_preliminary_banner_only_when_status_note_is_set():
    note = "PRELIMINARY - NOT VERIFIED"
    assert note in read_text(render_report_pdf(make_document(status_note=note)))
    assert "PRELIMINARY" not in read_text(render_report_pdf(make_document()))


def test_user_text_is_not_interpreted_as_markup():
    findings = "**not bold** <b>no html</b> --strike-- {nb} __x__"
    text = read_text(render_report_pdf(make_document(findings=findings)))
    assert findings in text


def test_key_images_carry_the_patients_directions_on_their_edges():
    """Each key image prints the patient's direction at the middle of each edge (white on
    black) where the image has them; one without prints none."""
    import numpy as np
    from PIL import Image

    jpeg = io.BytesIO()
    Image.fromarray(np.full((64, 80), 40, np.uint8)).save(jpeg, format="JPEG")
    oriented = report_pdf.KeyImagePrint(
        "Series 2, image 14", jpeg.getvalue(), aspect=0.8, edges=("AH", "L", "PF", "R")
    )
    plain = report_pdf.KeyImagePrint("Series 2, image 15", jpeg.getvalue(), aspect=0.8)
    data = render_report_pdf(make_document(key_images=(oriented, plain)))
    text = read_text(data)
    assert "Key images AH L PF R Series 2, image 14 Series 2, image 15" in text
    # where each is set, in mm from the page's left and top: on the first image's edges (it
    # spans the left column, 18 to 102 mm across, 67.2 mm high)
    placed = {}
    page = PdfReader(io.BytesIO(data)).pages[-1]
    height = float(page.mediabox.height)

    def visit(found, cm, tm, font, size):
        if found.strip() in ("AH", "L", "PF", "R"):
            placed[found.strip()] = (tm[4] * 25.4 / 72, (height - tm[5]) * 25.4 / 72)

    page.extract_text(visitor_text=visit)
    assert set(placed) == {"AH", "L", "PF", "R"}
    (ah_x, ah_y), (pf_x, pf_y) = placed["AH"], placed["PF"]
    assert 18 <= placed["R"][0] < 21 and 98 < placed["L"][0] < 102
    assert abs(ah_x - pf_x) < 1 and 55 < ah_x < 62
    assert 62 < pf_y - ah_y < 63  # 67.2 less their boxes (3.4 mm) and insets (0.6 mm)
    assert abs(placed["R"][1] - placed["L"][1]) < 0.5
    assert ah_y < placed["R"][1] < pf_y


def test_long_findings_flow_onto_further_pages():
    lines = [f"Line {n:03d}: finding text that a radiologist dictated." for n in range(1, 301)]
    data = render_report_pdf(make_document(findings="\n".join(lines)))
    pages = page_count(data)
    text = read_text(data)
    assert pages > 1
    assert "Line 001:" in text and "Line 300:" in text
    assert f"page 1 of {pages}" in text and f"page {pages} of {pages}" in text
    assert text.index("Line 300:") < text.index("Electronically signed by")


@pytest.mark.parametrize(
    "name, shown",
    [
        ("ΠΑΠΑΔΟΠΟΥΛΟΣ^Γιώργος", "ΠΑΠΑΔΟΠΟΥΛΟΣ Γιώργος"),
        ("Иванов^Иван", "Иванов Иван"),
        ("Müller-Lüdenscheidt^José", "Müller-Lüdenscheidt José"),
        ("Yamada^Tarou=山田^太郎", "Yamada Tarou = 山田 太郎"),
    ],
)
def test_non_latin_patient_names_survive_with_a_unicode_font(name, shown):
    if find_unicode_font() is None:
        pytest.skip("no Unicode TrueType font here (set PACS_PDF_FONT or install fonts-dejavu)")
    if not fonts_cover(shown):
        pytest.skip(f"no installed font has glyphs for {shown!r} (e.g. fonts-droid-fallback)")
    text = read_text(render_report_pdf(make_document(patient_name=name)))
    assert shown in text
    assert "could not be shown" not in text


def embedded_glyphs(data: bytes) -> set[str]:
    """The names of the glyphs in the PDF's embedded (subset) TrueType fonts."""
    names: set[str] = set()
    for page in PdfReader(io.BytesIO(data)).pages:
        for ref in page["/Resources"]["/Font"].values():
            font = ref.get_object()
            for descendant in font.get("/DescendantFonts", []):
                descriptor = descendant.get_object()["/FontDescriptor"].get_object()
                if "/FontFile2" in descriptor:
                    subset = descriptor["/FontFile2"].get_object().get_data()
                    names |= set(TTFont(io.BytesIO(subset)).getGlyphOrder())
    return names


# مرح: meem initial, reh final, then hah alone. Unshaped, each would be its isolated form
# (U+0645, U+0631, U+062D) and the word would be set left to right.
ARABIC_WORD = "\u0645\u0631\u062d"
JOINED_FORMS = {"uniFEE3", "uniFEAE"}  # meem initial, reh final (DejaVu Sans glyph names)


def test_arabic_names_are_set_with_joined_letter_forms():
    """A patient name in Arabic must read as the word, not as separate letters."""
    if find_unicode_font() is None or not fonts_cover(ARABIC_WORD):
        pytest.skip("no Unicode TrueType font with Arabic here (install fonts-dejavu)")
    glyphs = embedded_glyphs(render_report_pdf(make_document(patient_name=ARABIC_WORD)))
    assert glyphs >= JOINED_FORMS, sorted(g for g in glyphs if g.startswith("uni06"))


def test_characters_no_font_has_become_question_marks(monkeypatch):
    if find_unicode_font() is None:
        pytest.skip("no Unicode TrueType font here (set PACS_PDF_FONT or install fonts-dejavu)")
    monkeypatch.setattr(report_pdf, "_FALLBACK_FONTS", ())
    name = "\U0001d49c\U0001d49e^Jane"  # mathematical script letters, not in DejaVu Sans
    if fonts_cover(name):
        pytest.skip("the Unicode font here has even these glyphs")
    text = read_text(render_report_pdf(make_document(patient_name=name)))
    assert "?? Jane" in text
    assert "some characters could not be shown" in text


def test_without_any_font_falls_back_to_helvetica(no_unicode_font, tmp_path, monkeypatch):
    missing = str(tmp_path / "missing.ttf")
    assert find_unicode_font(missing) is None
    monkeypatch.chdir(tmp_path)
    doc = make_document(
        centre_name="Centre “Ōsaka” — Клиника",
        patient_name="Yamada^Tarou=山田^太郎",
        findings="Café au lait spot, 3 \u00d7 4 mm, ±1 mm\u2009— “stable”…\x00\u200b",
        signed_by="Dr Ψ Núñez",
        status_note="PRELIMINARY - NOT VERIFIED",
    )

    data = render_report_pdf(doc, font_path=missing)

    assert list(tmp_path.iterdir()) == []  # nothing written to disk
    reader = PdfReader(io.BytesIO(data))
    fonts = {str(font["/BaseFont"]) for font in reader.pages[0]["/Resources"]["/Font"].values()}
    assert fonts <= {"/Helvetica", "/Helvetica-Bold"}
    text = read_text(data)
    assert "Yamada Tarou = ?? ??" in text
    assert 'Café au lait spot, 3 \u00d7 4 mm, ±1 mm - "stable"...' in text
    assert "Electronically signed by Dr ? Núñez on 2026-11-27 21:05 UTC" in text
    assert "Study K3Q9ZP2A - page 1 of 1" in text
    assert "PRELIMINARY - NOT VERIFIED" in text
    assert text.count(NO_UNICODE_FONT_NOTE) == 1


def test_latin_text_without_a_font_needs_no_note(no_unicode_font, tmp_path):
    data = render_report_pdf(make_document(), font_path=str(tmp_path / "missing.ttf"))
    text = read_text(data)
    assert "DOE JANE MARIE" in text and "Dr Ana Núñez" in text
    assert "could not be shown" not in text


def test_an_unreadable_font_file_falls_back_without_crashing(no_unicode_font, tmp_path):
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"not a font")
    assert find_unicode_font(str(broken)) == str(broken)
    text = read_text(render_report_pdf(make_document(), font_path=str(broken)))
    assert "Lungs are clear." in text


def test_find_unicode_font_order(no_unicode_font, tmp_path, monkeypatch):
    explicit, from_env, system = (tmp_path / n for n in ("a.ttf", "b.ttf", "c.ttf"))
    for path in (explicit, from_env, system):
        path.write_bytes(b"")
    monkeypatch.setattr(report_pdf, "_SYSTEM_FONTS", (str(system),))
    monkeypatch.setenv(report_pdf.FONT_ENV_VAR, str(from_env))

    assert find_unicode_font(str(explicit)) == str(explicit)
    assert find_unicode_font(str(tmp_path / "missing.ttf")) == str(from_env)
    monkeypatch.delenv(report_pdf.FONT_ENV_VAR)
    assert find_unicode_font() == str(system)
    monkeypatch.setattr(report_pdf, "_SYSTEM_FONTS", ())
    monkeypatch.setattr(report_pdf, "_matplotlib_font", lambda: str(from_env))
    assert find_unicode_font() == str(from_env)


def test_module_imports_no_web_or_database_framework():
    code = (
        "import sys, pacs_app.documents.pdf\n"
        "print(','.join(sorted({n.split('.')[0] for n in sys.modules} & "
        "{'reflex', 'fastapi', 'starlette', 'sqlmodel', 'sqlalchemy'})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
