"""The PNG writer: lossless for grey and colour, readable by Pillow, strict about its CRCs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pacs_app.dicom import pixels


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (512, 512), (33, 64, 3)])
def test_round_trip_is_exact(shape):
    image = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    data = pixels.encode(image, "png")
    Image.open(io.BytesIO(data)).verify()  # checks the chunks' CRCs
    back = Image.open(io.BytesIO(data))
    assert back.mode == ("RGB" if len(shape) == 3 else "L")
    assert np.array_equal(np.asarray(back), image)


def test_a_damaged_chunk_is_detected():
    data = bytearray(pixels.encode(np.zeros((8, 8), np.uint8), "png"))
    data[45] ^= 0xFF  # inside IDAT: its CRC no longer matches
    with pytest.raises(SyntaxError):
        Image.open(io.BytesIO(bytes(data))).verify()
