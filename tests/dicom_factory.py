"""Synthetic DICOM files built from pydicom's bundled examples, with fresh UIDs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom.examples
from pydicom.uid import generate_uid

TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "dicom"


def make_ct(
    path: Path,
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    patient_name: str = "TEST^PATIENT",
    patient_id: str = "PID-001",
    instance_number: int = 1,
    size: int | None = None,
) -> Path:
    """A CT slice (128x128 from pydicom's CT_small, or ``size``x``size`` 16-bit)."""
    ds = pydicom.examples.ct
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.InstanceNumber = instance_number
    if size:
        ds.Rows = ds.Columns = size
        pixels = (np.arange(size * size, dtype=np.uint32) % 4096).astype(np.int16)
        ds.PixelData = pixels.reshape(size, size).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def make_series(folder: Path, count: int, **kwargs) -> list[Path]:
    """``count`` slices of one new series (same study unless ``study_uid`` differs)."""
    study_uid = kwargs.pop("study_uid", None) or generate_uid()
    series_uid = kwargs.pop("series_uid", None) or generate_uid()
    return [
        make_ct(
            folder / f"slice_{i:03d}.dcm",
            study_uid=study_uid,
            series_uid=series_uid,
            instance_number=i + 1,
            **kwargs,
        )
        for i in range(count)
    ]
