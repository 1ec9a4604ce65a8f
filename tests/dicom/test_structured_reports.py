"""Structured reports read into a content tree, item for item as DCMTK's dsrdump reads them.

A modality's SR (measurements, CAD findings, dose reports, key image notes) is part of what a
radiologist reads; before, the viewer showed such an object as a black stage.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from pacs_app.dicom import sr
from tests.dicom_factory import TESTDATA

DSRDUMP = shutil.which("dsrdump")
NON_IMAGE = TESTDATA / "non_image"
needs_data = pytest.mark.skipif(
    not NON_IMAGE.exists(), reason=f"shared test data not found at {TESTDATA}"
)

# dsrdump's short names of the relationships
_DCMTK_RELATIONSHIPS = {
    "contains": "contains",
    "has obs context": "has observation context",
    "has acq context": "has acquisition context",
    "has concept mod": "has concept modifier",
    "has properties": "has properties",
    "inferred from": "inferred from",
    "selected from": "selected from",
}


def _dsrdump_items(path) -> list[tuple[int, str, str, str]]:
    """(depth, relationship, value type, concept name) of each content item dsrdump prints; a
    by-reference item as (depth, relationship, "", "-> 1.2.3")."""
    out = subprocess.run([DSRDUMP, str(path)], check=True, capture_output=True)
    items = []
    # dsrdump prints the file's bytes as they are (test-SR.dcm's names are Latin-1)
    for line in out.stdout.decode("latin-1").splitlines():
        m = re.fullmatch(r"( *)<(.*)>( \{.*\})?", line)
        if not m:
            continue
        depth, body = len(m[1]) // 2, m[2]
        by_reference = re.fullmatch(r"([a-z ]+) (\d+(?:\.\d+)*)", body)
        if by_reference:
            items.append(
                (depth, _DCMTK_RELATIONSHIPS[by_reference[1]], "", "-> " + by_reference[2])
            )
            continue
        parts = re.match(r"(?:([a-z][a-z ]*) )?([A-Z0-9]+):(.*)", body)
        concept = re.match(r'\([^,]*,[^,]*,"(.*?)"\)=', parts[3])
        relationship = _DCMTK_RELATIONSHIPS[parts[1]] if parts[1] else ""
        items.append((depth, relationship, parts[2], concept[1] if concept else ""))
    return items


def _ours(report: sr.StructuredReport) -> list[tuple[int, str, str, str]]:
    return [
        (
            item.depth,
            item.relationship,
            item.value_type,
            "-> " + item.refers_to if item.refers_to else item.concept,
        )
        for item in report.items
    ]


@needs_data
@pytest.mark.parametrize("name", ["test-SR.dcm", "SR_TID1500_highdicom.dcm"])
def test_the_content_tree_is_the_one_dcmtk_reads(dsrdump, name):
    path = NON_IMAGE / name
    report = sr.read(pydicom.dcmread(path))
    expected = _dsrdump_items(path)
    assert len(expected) > 15
    assert _ours(report) == expected
    assert report.problems == []


@needs_data
def test_a_measurement_report_reads_as_a_radiologist_needs_it():
    report = sr.read(pydicom.dcmread(NON_IMAGE / "SR_TID1500_highdicom.dcm"))
    assert report.document == "Comprehensive 3D SR Storage"
    assert report.title == "Imaging Measurement Report"
    assert (report.completion, report.verification, report.preliminary) == (
        "PARTIAL",
        "UNVERIFIED",
        "PRELIMINARY",
    )
    by_position = {item.position: item for item in report.items}
    finding = by_position["1.8.1.3"]
    assert (finding.concept, finding.value, finding.code) == (
        "Finding",
        "Spinal cord",
        "T-A7010, SRT",
    )
    area = by_position["1.8.1.6"]
    assert (area.value_type, area.concept, area.value) == (
        "NUM",
        "Area of defined region",
        "1.7 cm2",
    )
    assert area.code == "square centimeter (cm2, UCUM)"
    region = by_position["1.8.1.4"]
    assert region.value == "CIRCLE (58, 52), (58, 41)"
    source = by_position["1.8.1.4.1"]
    assert (source.relationship, source.value_type, source.value) == (
        "selected from",
        "IMAGE",
        "CT Image Storage",
    )
    # pydicom's CT_small, of the same study: the viewer can open it
    assert source.sop_instance_uid == "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"


@needs_data
def test_header_flags_observers_dates_and_references():
    report = sr.read(pydicom.dcmread(NON_IMAGE / "test-SR.dcm"))
    assert (report.completion, report.completion_description) == (
        "COMPLETE",
        "This document is completed!",
    )
    assert report.verification == "VERIFIED"
    assert report.content_datetime == "2001-02-13 18:47:46"
    assert len(report.verifying_observers) == 2
    assert report.verifying_observers[1] == "Observer Verifying, Organisation (2001-02-13 18:47:46)"
    by_position = {item.position: item for item in report.items}
    assert by_position["1"].observed == "2001-02-13 18:47:46"
    assert by_position["1.3.3.1"].refers_to == "1.3.2" and by_position["1.3.3.1"].value == (
        "see item 1.3.2"
    )
    assert by_position["1.3.1"].value.startswith("Inferred Sample Text\nNew line.")
    assert by_position["1.4.1"].value == "2000-12-06"
    assert by_position["1.4.2"].value == "12:00:00"
    assert by_position["1.4.3"].value == "2000-12-06 12:00:00"
    image = by_position["1.5"]
    assert image.value == "CT Image Storage, frames 5, 2 (with presentation state)"
    assert image.frames == (5, 2)
    assert by_position["1.3.3"].value == "SEGMENT seconds 1.000000, 2.500000"


@needs_data
def test_a_document_dcmtk_refuses_still_shows(dsrdump):
    path = NON_IMAGE / "reportsi.dcm"
    # DCMTK stops at an image reference whose SOP class is not valid ("0")
    assert subprocess.run([DSRDUMP, str(path)], capture_output=True).returncode != 0
    report = sr.read(pydicom.dcmread(path))
    assert report.document == "Basic Text SR Storage"
    assert [item.position for item in report.items][-3:] == ["1.5.1", "1.5.1.1", "1.5.2"]
    assert report.items[-1].value_type == "IMAGE" and report.items[-1].value == "0"


def _document(*children: Dataset, sop_class=pydicom.uid.ComprehensiveSRStorage) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ConceptNameCodeSequence = Sequence([_code("18748-4", "LN", "Diagnostic imaging report")])
    ds.ContentSequence = Sequence(list(children))
    return ds


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
    return code


def _item(value_type: str, relationship="CONTAINS", **attributes) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = Sequence([_code("121071", "DCM", "Finding")])
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return item


def test_unreadable_items_are_listed_and_said_not_dropped():
    text = _item("TEXT", TextValue="<b>No</b> focal lesion.")
    odd = _item("BLOB")
    image = _item("IMAGE")  # no Referenced SOP Sequence
    unmeasured = _item("NUM")
    no_units = _item("NUM")
    measured = Dataset()
    measured.NumericValue = "3"
    measured.MeasurementUnitsCodeSequence = Sequence([_code("1", "UCUM", "no units")])
    no_units.MeasuredValueSequence = Sequence([measured])
    report = sr.read(_document(text, odd, image, unmeasured, no_units))
    assert [item.value for item in report.items[1:]] == [
        "<b>No</b> focal lesion.",  # text as sent: the viewer shows it as text
        "(unreadable)",
        "(unreadable)",
        "no value",
        "3",
    ]
    assert report.problems == [
        "Item 1.2 (BLOB) is unreadable: its value type BLOB is not one SR defines.",
        "Item 1.3 (IMAGE) is unreadable: it refers to no object (no Referenced SOP Sequence).",
    ]
    assert report.title == "Diagnostic imaging report"


def test_a_tree_deeper_than_the_limit_is_cut_with_a_word():
    leaf = _item("CONTAINER")
    for _ in range(sr.MAX_DEPTH + 5):
        parent = _item("CONTAINER")
        parent.ContentSequence = Sequence([leaf])
        leaf = parent
    report = sr.read(_document(leaf))
    assert max(item.depth for item in report.items) == sr.MAX_DEPTH
    assert len(report.problems) == 1 and "deeper than 64 levels" in report.problems[0]


def test_only_structured_reports_are_read():
    ds = _document(sop_class=pydicom.uid.CTImageStorage)
    assert not sr.is_structured_report(ds)
    with pytest.raises(ValueError, match="not a structured report"):
        sr.read(ds)
    assert sr.is_structured_report(
        _document(sop_class=pydicom.uid.KeyObjectSelectionDocumentStorage)
    )


def test_a_document_longer_than_the_limit_is_cut_with_a_word(monkeypatch):
    monkeypatch.setattr(sr, "MAX_ITEMS", 5)
    report = sr.read(_document(*[_item("TEXT", TextValue=f"line {i}") for i in range(9)]))
    assert [item.position for item in report.items] == ["1", "1.1", "1.2", "1.3", "1.4"]
    assert report.problems == ["The document has more than 5 items; the rest is cut."]
