"""Bulk data paths: URIs for the values metadata leaves out, and the values read back."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian

from pacs_app.dicom import bulk
from pacs_app.dicom.dicomjson import dataset_to_json
from tests.dicom_factory import TESTDATA, make_ct


def _with_blobs(path):
    """A CT with a 2 KiB OW value at the top and an OB one inside a sequence's second item."""
    make_ct(path)
    ds = pydicom.dcmread(path)
    ds.add_new(0x60003000, "OW", np.arange(1024, dtype="<u2").tobytes())
    inner = Dataset()
    inner.add_new(0x00282000, "OB", bytes(range(256)) * 8)  # an ICC profile
    ds.add_new(0x00220015, "SQ", Sequence([Dataset(), inner]))
    ds.add_new(0x00420011, "OB", b"%PDF-1.4 small")  # under 1 KiB: inline
    return ds


def test_left_out_values_get_uris_naming_their_path(tmp_path):
    ds = _with_blobs(tmp_path / "ct.dcm")
    doc = dataset_to_json(ds)
    assert doc["60003000"] == {"vr": "OW", "BulkDataURI": ""}
    bulk.fill_uris(doc, "http://h/dicomweb/studies/1/series/2/instances/3/bulk")
    assert (
        doc["60003000"]["BulkDataURI"]
        == "http://h/dicomweb/studies/1/series/2/instances/3/bulk/60003000"
    )
    assert doc["00220015"]["Value"][1]["00282000"]["BulkDataURI"].endswith(
        "/bulk/00220015/2/00282000"
    )
    # small values stay inline, and filling twice changes nothing
    assert "InlineBinary" in doc["00420011"]
    before = repr(doc)
    bulk.fill_uris(doc, "http://elsewhere")
    assert repr(doc) == before


def test_a_path_reads_its_value_back_in_little_endian(tmp_path):
    ds = _with_blobs(tmp_path / "ct.dcm")
    assert bulk.value(ds, bulk.parse_path("60003000")) == np.arange(1024, dtype="<u2").tobytes()
    assert bulk.value(ds, bulk.parse_path("00220015/2/00282000")) == bytes(range(256)) * 8
    # a big endian file's words are put in little endian order
    be = Dataset()
    be.file_meta = FileMetaDataset()
    be.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    be.SOPClassUID, be.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", "1.2.3.4"
    be.add_new(0x60003000, "OW", np.arange(1024, dtype=">u2").tobytes())
    be.save_as(tmp_path / "be.dcm", enforce_file_format=True)
    big = pydicom.dcmread(tmp_path / "be.dcm")
    assert big.original_encoding == (False, False)
    assert bulk.value(big, [0x60003000]) == np.arange(1024, dtype="<u2").tobytes()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("0022001", "not a tag"),
        ("00220015/1", "does not end with a tag"),
        ("00220015/0/00282000", "not an item number"),
        ("00220015/3/00282000", "no item 3"),
        ("00100010/1/00282000", "no sequence 00100010"),
        ("60003001", "no element 60003001"),
        ("00100010", "not bulk data"),
    ],
)
def test_a_path_that_names_no_bulk_value_says_why(tmp_path, path, message):
    ds = _with_blobs(tmp_path / "ct.dcm")
    with pytest.raises(bulk.BadPath, match=message):
        bulk.value(ds, bulk.parse_path(path))


@pytest.mark.skipif(not TESTDATA.exists(), reason=f"shared test data not found at {TESTDATA}")
def test_a_waveforms_samples_are_found_by_their_uri():
    ds = pydicom.dcmread(TESTDATA / "non_image" / "waveform_ecg.dcm")
    doc = dataset_to_json(
        pydicom.dcmread(TESTDATA / "non_image" / "waveform_ecg.dcm", stop_before_pixels=True)
    )
    bulk.fill_uris(doc, "b")
    uri = doc["54000100"]["Value"][0]["54001010"]["BulkDataURI"]
    assert uri == "b/54000100/1/54001010"
    samples = bulk.value(ds, bulk.parse_path(uri.removeprefix("b/")))
    assert samples == ds.WaveformSequence[0].WaveformData
