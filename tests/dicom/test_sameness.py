"""Whether a re-sent file is the stored instance: the data set compared, file meta aside."""

from __future__ import annotations

import io

import pydicom
from pydicom.uid import ImplicitVRLittleEndian

from pacs_app.dicom.sameness import difference
from tests.dicom_factory import make_ct


def _bytes(ds: pydicom.Dataset, **kwargs) -> io.BytesIO:
    out = io.BytesIO()
    ds.save_as(out, **kwargs)
    out.seek(0)
    return out


def test_the_same_data_set_under_other_file_meta_is_the_same(tmp_path):
    path = make_ct(tmp_path / "a.dcm")
    ds = pydicom.dcmread(path)
    ds.file_meta.ImplementationClassUID = "1.2.3.4"
    ds.file_meta.SourceApplicationEntityTitle = "FORWARDER"
    moved = _bytes(ds, enforce_file_format=True)

    with open(path, "rb") as stored:
        assert difference(stored, moved) is None
        assert difference(stored, io.BytesIO(path.read_bytes())) is None


def test_other_values_sizes_and_syntaxes_differ(tmp_path):
    path = make_ct(tmp_path / "a.dcm")
    same_size = pydicom.dcmread(path)
    same_size.PatientID = same_size.PatientID[:-1] + "9"  # one byte changed
    longer = pydicom.dcmread(path)
    longer.PatientID = "A-MUCH-LONGER-ID"
    recoded = pydicom.dcmread(path)
    recoded.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian

    with open(path, "rb") as stored:
        for other in (same_size, longer):
            assert "attributes differ" in difference(stored, _bytes(other))
        told = difference(stored, _bytes(recoded, enforce_file_format=True))
        assert told == (
            "it is encoded in another transfer syntax (Implicit VR Little Endian) than the "
            "stored one (Explicit VR Little Endian)"
        )


def test_a_file_without_a_preamble_is_compared_whole(tmp_path):
    whole = make_ct(tmp_path / "a.dcm").read_bytes()
    headless = whole[132:]  # no preamble: the direct parser does not read its file meta

    assert difference(io.BytesIO(headless), io.BytesIO(headless)) is None
    assert "attributes differ" in difference(io.BytesIO(whole), io.BytesIO(headless))
    changed = headless[:-1] + bytes([headless[-1] ^ 1])  # the last pixel byte
    assert "attributes differ" in difference(io.BytesIO(headless), io.BytesIO(changed))
