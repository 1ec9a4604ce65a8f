"""Float and Double Float Pixel Data (parametric maps): decoded, rendered by their values'
min-max, and sent uncompressed as little-endian floats of their own size, which the viewer
reads as floats (``tests/browser/test_viewer.py``)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from pacs_app.dicom import pixels
from tests.dicom_factory import make_float_map


@pytest.mark.parametrize("double", [False, True], ids=["float", "double"])
def test_float_frames_decode_render_and_go_uncompressed(tmp_path, double):
    values = make_float_map(tmp_path / "map.dcm", double=double)
    ds = pydicom.dcmread(tmp_path / "map.dcm")
    decoded = pixels.decode_frame(ds, 0)
    assert decoded.dtype == (np.float64 if double else np.float32)
    assert np.array_equal(decoded, values)
    assert pixels.raw_frame(ds, 0) == values.astype("<f8" if double else "<f4").tobytes()
    window = pixels.min_max_window(values.astype(np.float64))
    assert np.array_equal(pixels.render(ds), pixels.apply_window(values.astype(np.float64), window))
    assert len(np.unique(pixels.render(ds))) > 50
