"""Single-bit pixel data, whose frames follow each other bit by bit (PS3.5 8.1.1): a frame
that starts inside a byte is cut out, decoded and rendered like the first."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from pacs_app.dicom import pixels
from pacs_app.services import dicomweb
from tests.dicom_factory import make_single_bit


@pytest.fixture(params=[(29, 37), (3, 5)], ids=["29x37", "3x5"])
def single_bit(tmp_path, request) -> tuple[pydicom.Dataset, np.ndarray]:
    rows, columns = request.param
    bits = make_single_bit(tmp_path / "bits.dcm", rows=rows, columns=columns)
    return pydicom.dcmread(tmp_path / "bits.dcm"), bits


def test_each_frame_is_cut_out_packed_from_the_start_of_a_byte(single_bit):
    ds, bits = single_bit
    size = ds.Rows * ds.Columns
    assert size % 8  # the second and third frames start inside a byte
    for index, expected in enumerate(bits):
        data, syntax = pixels.stored_frame(ds, index)
        assert syntax == pydicom.uid.ExplicitVRLittleEndian
        assert len(data) == (size + 7) // 8
        assert data == np.packbits(expected.ravel(), bitorder="little").tobytes()


def test_each_frame_decodes_and_renders(single_bit):
    """pydicom 3.0.2 alone fails on the later frames of some sizes (3 x 5: "cannot reshape
    array")."""
    ds, bits = single_bit
    for index, expected in enumerate(bits):
        assert np.array_equal(pixels.decode_frame(ds, index), expected)
        assert np.array_equal(pixels.render(ds, index), expected * np.uint8(255))


def test_a_short_value_is_not_cut(single_bit):
    ds, _ = single_bit
    needed = (3 * ds.Rows * ds.Columns + 7) // 8  # the bytes the three frames span
    ds.PixelData = ds.PixelData[: needed - 1]
    assert pixels.stored_frame(ds, 0) is not None
    assert pixels.stored_frame(ds, 2) is None


def test_uncompressed_frames_of_a_compressed_single_bit_image_come_packed(tmp_path, monkeypatch):
    """Decoded frames are packed again, as the viewer and the metadata take them. No encoder
    here writes single-bit pixel data compressed, so the stored frame is said to be in RLE
    (the one stand-in of this test); the frames are decoded by pydicom from the native data."""
    bits = make_single_bit(tmp_path / "bits.dcm")
    ds = pydicom.dcmread(tmp_path / "bits.dcm")
    monkeypatch.setattr(pixels, "stored_frame", lambda _ds, _i: (b"", pydicom.uid.RLELossless))
    sent = dicomweb._uncompressed(ds, [2, 0])
    assert sent == [np.packbits(bits[i].ravel(), bitorder="little").tobytes() for i in (2, 0)]
