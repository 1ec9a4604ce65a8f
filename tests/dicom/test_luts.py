"""Modality and VOI LUT Sequences (PS3.3 C.11.1 and C.11.2): a radiograph shown through the
lookup tables its device wrote, as DCMTK's ``dcmj2pnm`` shows it. The viewer mirrors these
rules in JavaScript (``tests/browser/test_viewer.py`` compares its canvas with them)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from pacs_app.dicom import pixels
from tests.dcmtk import required
from tests.dicom_factory import make_cr, with_lut

# A VOI LUT as CR devices write them: a curve over the 12-bit input range.
CURVE = np.rint(255 * (np.arange(4096) / 4095) ** 0.6).astype(int)


def _stored(ds: pydicom.Dataset) -> np.ndarray:
    return ds.pixel_array.astype(np.int64)


def _saved(ds: pydicom.Dataset, path: Path) -> pydicom.Dataset:
    ds.save_as(path, enforce_file_format=True)
    return pydicom.dcmread(path)


def test_an_8_bit_voi_lut_of_4096_entries_maps_every_value(tmp_path):
    """Each input takes its own entry. (pydicom 3.0.2's application indexes an 8-bit LUT with
    8-bit numbers: its inputs past 255 wrap around, 256 showing as input 0.)"""
    ds = _saved(
        with_lut(make_cr(tmp_path / "cr.dcm"), "VOILUTSequence", CURVE, bits=8), tmp_path / "cr.dcm"
    )
    stored = _stored(ds)
    assert stored.max() > 1000  # the image has inputs well past 255
    assert np.array_equal(pixels.render(ds), CURVE[stored].astype(np.uint8))
    # MONOCHROME1: the same, inverted
    ds.PhotometricInterpretation = "MONOCHROME1"
    assert np.array_equal(pixels.render(ds), 255 - CURVE[stored].astype(np.uint8))


def test_a_voi_lut_is_preferred_to_the_header_window_unless_a_window_is_asked_for(tmp_path):
    ds = with_lut(make_cr(tmp_path / "cr.dcm"), "VOILUTSequence", CURVE * 16, bits=12)
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    ds = _saved(ds, tmp_path / "cr.dcm")
    lut = np.floor(CURVE * 16 * 255 / 4095 + 0.5).astype(np.uint8)
    assert np.array_equal(pixels.render(ds), lut[_stored(ds)])
    windowed = pixels.render(ds, 0, pixels.Window(2048, 4096))
    assert not np.array_equal(windowed, lut[_stored(ds)])
    assert np.array_equal(
        windowed, pixels.apply_window(_stored(ds), pixels.Window(2048, 4096, "LINEAR"))
    )


def test_the_modality_lut_sequence_gives_the_values_the_voi_lut_takes(tmp_path):
    """The Modality LUT maps stored values to modality values; the VOI LUT's first input is
    one of those (not a stored value), and its entries go past its input range's ends."""
    modality = np.rint(np.sqrt(np.arange(4096)) * 40).astype(int)  # 0..2560 (1358..2268 here)
    voi = np.rint(np.linspace(0, 65535, 401)).astype(int)  # inputs 1500..1900
    ds = with_lut(make_cr(tmp_path / "cr.dcm"), "ModalityLUTSequence", modality, bits=16)
    ds = _saved(with_lut(ds, "VOILUTSequence", voi, first=1500, bits=16), tmp_path / "cr.dcm")
    stored = _stored(ds)
    values = modality[stored]
    assert np.array_equal(pixels.modality_values(ds, ds.pixel_array), values.astype(float))
    expected = np.floor(voi[np.clip(values - 1500, 0, 400)] * 255 / 65535 + 0.5)
    shown = pixels.render(ds)
    assert np.array_equal(shown, expected.astype(np.uint8))
    assert (shown == 0).any() and (shown == 255).any()  # below and past the VOI LUT's inputs


@pytest.mark.parametrize(
    "form",
    [
        {"vr": "US"},  # LUT Data as numbers
        {"vr": "OB8", "bits": 8},  # 8-bit entries, two to a 16-bit word
    ],
)
def test_lut_data_in_its_other_forms(tmp_path, form):
    entries = CURVE[::16] if form.get("bits") == 8 else CURVE[::16] * 256
    ds = with_lut(make_cr(tmp_path / "cr.dcm"), "VOILUTSequence", entries, first=1024, **form)
    ds = _saved(ds, tmp_path / "cr.dcm")
    top = 255 if form.get("bits") == 8 else 65535
    lut = np.floor(np.asarray(entries) * 255 / top + 0.5).astype(np.uint8)
    assert np.array_equal(pixels.render(ds), lut[np.clip(_stored(ds) - 1024, 0, len(entries) - 1)])


def test_a_signed_images_first_input_written_as_us_is_negative(tmp_path):
    """An image of signed values whose LUT Descriptor says 65436 in US means -100."""
    ds = make_cr(tmp_path / "cr.dcm")
    ds.PixelRepresentation = 1
    ds.PixelData = (ds.pixel_array.astype(np.int16) - 1124).tobytes()  # -1124..2971
    entries = np.arange(400) * 100
    ds = with_lut(ds, "ModalityLUTSequence", entries, bits=16)
    ds.ModalityLUTSequence[0].LUTDescriptor = [400, 65436, 16]
    ds = _saved(ds, tmp_path / "cr.dcm")
    stored = ds.pixel_array.astype(np.int64)
    expected = entries[np.clip(stored + 100, 0, 399)].astype(float)
    assert np.array_equal(pixels.modality_values(ds, ds.pixel_array), expected)


def test_a_lut_without_its_data_is_refused_with_its_name(tmp_path):
    ds = with_lut(make_cr(tmp_path / "cr.dcm"), "VOILUTSequence", CURVE, bits=8)
    del ds.VOILUTSequence[0].LUTData
    with pytest.raises(
        pixels.PixelDataError, match="VOILUTSequence has no LUT Descriptor or no LUT Data"
    ):
        pixels.render(_saved(ds, tmp_path / "cr.dcm"))


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_luts_match_dcmtk(tmp_path, photometric):
    """``dcmj2pnm +Wl 1`` (the Modality LUT, then the first VOI LUT) renders the same."""
    [dcmj2pnm] = required("dcmj2pnm")
    modality = np.rint(np.sqrt(np.arange(4096)) * 40).astype(int)
    for name, ds in {
        "voi-8-bit": with_lut(
            make_cr(tmp_path / "a.dcm", photometric=photometric), "VOILUTSequence", CURVE, bits=8
        ),
        "voi-12-bit": with_lut(
            make_cr(tmp_path / "b.dcm", photometric=photometric),
            "VOILUTSequence",
            CURVE * 16,
            bits=12,
        ),
        "both": with_lut(
            with_lut(
                make_cr(tmp_path / "c.dcm", photometric=photometric),
                "ModalityLUTSequence",
                modality,
                bits=16,
            ),
            "VOILUTSequence",
            np.rint(np.linspace(0, 4095, 1501)).astype(int),
            first=500,
            bits=12,
        ),
    }.items():
        path = tmp_path / f"{name}.dcm"
        ours = pixels.render(_saved(ds, path)).astype(int)
        out = tmp_path / f"{name}.png"
        subprocess.run(
            [dcmj2pnm, "+on", "+Wl", "1", str(path), str(out)], check=True, capture_output=True
        )
        theirs = np.asarray(Image.open(out)).astype(int)
        assert np.abs(theirs - ours).max() <= 1, name
        assert len(np.unique(ours)) > 50, name  # a picture, not a flat field
