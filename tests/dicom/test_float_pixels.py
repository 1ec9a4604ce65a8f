"""Float and Double Float Pixel Data (parametric maps): decoded, rendered by their values'
min-max, and sent uncompressed as little-endian floats of their own size, which the viewer
reads as floats (``tests/browser/test_viewer.py``)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from pacs_app.core.errors import InvalidInput
from pacs_app.dicom import pixels
from pacs_app.services import dicomweb
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


def test_windows_of_fractional_values_may_be_under_1_wide(tmp_path):
    """Values between about -0.004 and 0.006 (an ADC map in mm2/s, say). LINEAR_EXACT and
    SIGMOID windows may be under 1 wide (PS3.3 C.11.2.1.3; seen: refused), LINEAR ones not.
    The min-max window of fractional values is LINEAR_EXACT, whose centre and width are
    the values' own (LINEAR's would say a width of 1.01 for this range)."""
    values = make_float_map(tmp_path / "map.dcm", scale=0.001).astype(np.float64)
    ds = pydicom.dcmread(tmp_path / "map.dcm")
    lo, hi = values.min(), values.max()
    window = pixels.min_max_window(values)
    assert window == pixels.Window((lo + hi) / 2, hi - lo, "LINEAR_EXACT")
    shown = pixels.render(ds)
    assert shown.min() == 0 and shown.max() == 255 and len(np.unique(shown)) > 200
    # whole numbers keep the LINEAR min-max, by the image's own function
    assert pixels.min_max_window(np.array([3.0, 10.0])) == pixels.Window(7.0, 8.0)
    # a reader's narrow window: LINEAR_EXACT or SIGMOID, not LINEAR (PS3.3 C.11.2.1.2-3)
    narrow = dicomweb.parse_window("0.001,0.004,linear-exact")
    assert narrow == pixels.Window(0.001, 0.004, "LINEAR_EXACT")
    assert len(np.unique(pixels.render(ds, 0, narrow))) > 100
    assert dicomweb.parse_window("0.001,0.004,sigmoid").width == 0.004
    with pytest.raises(InvalidInput, match="LINEAR window's width must be at least 1"):
        dicomweb.parse_window("0.001,0.004,linear")
    with pytest.raises(InvalidInput, match="LINEAR window's width must be at least 1"):
        pixels.render(ds, 0, dicomweb.parse_window("0.001,0.004"))  # the image's own: LINEAR
    with pytest.raises(InvalidInput, match="above 0"):
        pixels.Window(0, 0, "SIGMOID")
