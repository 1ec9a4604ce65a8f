"""The fast DICOM JSON encoder gives exactly pydicom's JSON, on real files of every kind."""

from __future__ import annotations

import warnings

import pydicom
import pytest

from pacs_app.dicom.dicomjson import dataset_to_json
from tests.dicom_factory import TESTDATA, make_ct

FILES = sorted(p for p in TESTDATA.rglob("*") if p.is_file()) if TESTDATA.exists() else []


def _both(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reference = pydicom.dcmread(path, stop_before_pixels=True, force=True).to_json_dict(
                bulk_data_threshold=1024, bulk_data_element_handler=lambda _e: ""
            )
        except Exception:
            return None, None
        return reference, dataset_to_json(
            pydicom.dcmread(path, stop_before_pixels=True, force=True)
        )


@pytest.mark.skipif(not FILES, reason=f"shared test data not found at {TESTDATA}")
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(TESTDATA).as_posix())
def test_same_json_as_pydicom(path):
    reference, ours = _both(path)
    if reference is None:
        pytest.skip("pydicom itself cannot encode this file")
    assert ours == reference


def test_synthetic_ct(tmp_path):
    reference, ours = _both(make_ct(tmp_path / "ct.dcm", patient_name="Ünïcode^Näme"))
    assert ours == reference
    assert ours["00100010"]["Value"] == [{"Alphabetic": "Ünïcode^Näme"}]
