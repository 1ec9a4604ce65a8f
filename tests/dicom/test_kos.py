"""A report's key images as a DICOM Key Object Selection Document (TID 2010), checked by
DCMTK's dsrdump and read back by pydicom and our SR reader."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

import pydicom
import pytest

from pacs_app.dicom import kos, sr
from pacs_app.dicom.reader import read_header
from tests.dicom_factory import TESTDATA

CHARSET = TESTDATA / "charset"


@pytest.mark.parametrize("name", ["chrRuss.dcm", "chrJapMulti.dcm", "chrGreek.dcm"])
def test_a_key_object_selection_files_with_its_images(name, dsrdump, tmp_path):
    source = CHARSET / name
    if not source.exists():
        pytest.skip(f"shared test data not found at {TESTDATA}")
    header = read_header(source)  # its DICOM JSON as ingest stores it
    images = [
        kos.KeyImageRef(header.series_instance_uid, header.sop_class_uid, header.sop_instance_uid),
        # two frames of a multi-frame instance of another series: one evidence entry
        kos.KeyImageRef("1.2.3.9", "1.2.840.10008.5.1.4.1.1.2.1", "1.2.3.9.1", 2, True),
        kos.KeyImageRef("1.2.3.9", "1.2.840.10008.5.1.4.1.1.2.1", "1.2.3.9.1", 5, True),
    ]
    ds = kos.key_object_selection(
        study_instance_uid=header.study_instance_uid,
        study_header=header.dicom_json,
        images=images,
        description="Key images of the report, signed by Dr Łukasz Ré.",
        observer="Ré^Łukasz",
        series_number=7,
        when=datetime(2026, 12, 6, 10, 30, tzinfo=UTC),
    )
    path = tmp_path / "kos.dcm"
    kos.write(ds, path)

    # DCMTK reads it as a valid Key Object Selection Document, with no error
    run = subprocess.run([dsrdump, "-ll", "warn", str(path)], capture_output=True)
    assert run.returncode == 0, run.stderr
    assert b"E: " not in run.stderr and b"F: " not in run.stderr, run.stderr
    assert run.stdout.startswith(b"Key Object Selection Document")

    back = pydicom.dcmread(path)
    original = pydicom.dcmread(source, stop_before_pixels=True)
    assert back.file_meta.MediaStorageSOPClassUID == kos.KOS_SOP_CLASS == back.SOPClassUID
    assert back.Modality == "KO" and back.SeriesNumber == 7
    assert back.SeriesInstanceUID != header.series_instance_uid
    # the images' patient and study, names in their own script
    assert str(back.PatientName) == str(original.PatientName)
    assert back.PatientID == original.PatientID
    assert back.StudyInstanceUID == original.StudyInstanceUID
    assert back.get("StudyDate", "") == original.get("StudyDate", "")
    evidence = back.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == header.study_instance_uid
    listed = {
        s.SeriesInstanceUID: [r.ReferencedSOPInstanceUID for r in s.ReferencedSOPSequence]
        for s in evidence.ReferencedSeriesSequence
    }
    assert listed == {
        header.series_instance_uid: [header.sop_instance_uid],
        "1.2.3.9": ["1.2.3.9.1"],
    }

    report = sr.read(back)
    assert report.title.startswith("Of Interest")
    pictures = [i for i in report.items if i.value_type == "IMAGE"]
    assert [(i.sop_instance_uid, i.frames) for i in pictures] == [
        (header.sop_instance_uid, ()),
        ("1.2.3.9.1", (2,)),
        ("1.2.3.9.1", (5,)),
    ]
    described = [i for i in report.items if i.concept.startswith("Key Object Description")]
    assert described[0].value == "Key images of the report, signed by Dr Łukasz Ré."
    assert any("Ré" in i.value for i in report.items if i.value_type == "PNAME")


def test_a_key_object_selection_needs_an_image():
    with pytest.raises(ValueError, match="at least one image"):
        kos.key_object_selection(
            study_instance_uid="1.2.3",
            study_header={},
            images=[],
            description="",
            observer="",
            series_number=1,
            when=datetime.now(UTC),
        )


def test_a_header_without_patient_attributes_gives_them_empty(tmp_path, dsrdump):
    ds = kos.key_object_selection(
        study_instance_uid="1.2.3",
        study_header={},
        images=[kos.KeyImageRef("1.2.3.4", "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5")],
        description="d",
        observer="o",
        series_number=1,
        when=datetime.now(UTC),
    )
    kos.write(ds, tmp_path / "k.dcm")
    back = pydicom.dcmread(tmp_path / "k.dcm")
    assert back.StudyInstanceUID == "1.2.3"
    assert back.PatientName == "" and back.PatientID == "" and back.AccessionNumber == ""
    run = subprocess.run([dsrdump, "-ll", "warn", str(tmp_path / "k.dcm")], capture_output=True)
    assert run.returncode == 0 and b"E: " not in run.stderr, run.stderr
