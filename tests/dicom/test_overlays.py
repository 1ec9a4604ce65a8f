"""Overlay planes (60xx,3000): read per frame, drawn in white, as DCMTK's dcmj2pnm draws them.

A radiologist must see what the modality marked on the image (a lesion outlined, an
orientation letter): the real Siemens MR of the test data outlines a liver lesion in an
overlay, which the renderer left out before.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pydicom
import pytest
from PIL import Image

from pacs_app.dicom import pixels
from tests.dcmtk import required, tool
from tests.dicom_factory import (
    TESTDATA,
    add_overlay,
    make_multiframe,
    make_overlaid_ct,
)

DCMJ2PNM, DCMCONV = tool("dcmj2pnm"), tool("dcmconv")
SIEMENS = TESTDATA / "clinical" / "MR_abdomen_siemens_overlays.dcm"


@pytest.fixture
def dcmtk():
    required("dcmj2pnm", "dcmconv")


def _dcmtk(path, out, frame: int, window: pixels.Window) -> np.ndarray:
    args = [DCMJ2PNM, "+on", "+F", str(frame + 1), "+Ww", repr(window.center)]
    subprocess.run([*args, repr(window.width), str(path), str(out)], check=True)
    return np.asarray(Image.open(out)).astype(int)


def _mark() -> np.ndarray:
    bits = np.zeros((10, 20), bool)
    bits[0, :] = bits[:, 0] = True
    bits[9, 5:15] = True
    return bits


@pytest.mark.skipif(not SIEMENS.exists(), reason=f"shared test data not found at {TESTDATA}")
def test_the_lesion_outlined_in_a_real_mr_is_drawn_as_dcmtk_draws_it(dcmtk, tmp_path):
    ds = pixels.read_dataset(SIEMENS)
    [plane] = pixels.overlays(ds, 0)
    assert (plane.group, plane.kind, plane.origin) == (0x6000, "G", (1, 1))
    assert plane.description == "Siemens MedCom Object Graphics"
    assert plane.bits.shape == (484, 484) and plane.bits.sum() == 323

    window = pixels.header_window(ds)
    shown = pixels.render(ds, 0, window)
    assert (np.abs(shown - _dcmtk(SIEMENS, tmp_path / "r.png", 0, window)) > 1).sum() == 0
    bare = pixels.render(ds, 0, window, with_overlays=False)
    changed = shown != bare
    assert changed.sum() == 323 and (shown[changed] == 255).all()
    assert np.array_equal(changed, plane.bits & (bare != 255))


@pytest.mark.parametrize("syntax", ["little", "big"])
def test_a_plane_partly_outside_the_image_is_clipped_in_either_byte_order(dcmtk, tmp_path, syntax):
    path = make_overlaid_ct(tmp_path / "le.dcm", _mark(), group=0x6002, origin=(-2, 115))
    if syntax == "big":  # DCMTK writes OW as 16-bit big-endian words, as the standard says
        subprocess.run([DCMCONV, "+tb", str(path), str(tmp_path / "be.dcm")], check=True)
        path = tmp_path / "be.dcm"
    ds = pixels.read_dataset(path)
    [plane] = pixels.overlays(ds, 0)
    assert plane.group == 0x6002 and plane.origin == (-2, 115)
    assert np.array_equal(plane.bits, _mark())
    window = pixels.Window(40, 400)
    shown = pixels.render(ds, 0, window)
    assert (np.abs(shown - _dcmtk(path, tmp_path / "r.png", 0, window)) > 1).sum() == 0
    # rows -2..7 and columns 115..134 of the image: what lies inside it is drawn, no more
    changed = shown != pixels.render(ds, 0, window, with_overlays=False)
    assert changed[8:].sum() == 0 and changed[:, :114].sum() == 0
    assert changed.sum() == 16


def test_a_multi_frame_overlay_marks_only_its_own_frames(dcmtk, tmp_path):
    path = tmp_path / "mf.dcm"
    ds = make_multiframe(path, frames=3)
    marks = np.zeros((2, 16, 16), bool)
    marks[0, 3, :] = True
    marks[1, :, 7] = True
    add_overlay(ds, marks, first_frame=2, label="MARKS")
    ds.save_as(path, enforce_file_format=True)
    ds = pixels.read_dataset(path)
    assert pixels.overlays(ds, 0) == []
    for frame, expected in ((1, marks[0]), (2, marks[1])):
        [plane] = pixels.overlays(ds, frame)
        assert plane.label == "MARKS" and np.array_equal(plane.bits, expected)
    window = pixels.Window(50, 100)
    for frame in range(3):
        shown = pixels.render(ds, frame, window)
        reference = _dcmtk(path, tmp_path / f"f{frame}.png", frame, window)
        assert (np.abs(shown - reference) > 1).sum() == 0, frame


def test_a_plane_without_a_frame_count_applies_to_every_frame(tmp_path):
    ds = make_multiframe(tmp_path / "mf.dcm", frames=3)
    add_overlay(ds, np.eye(16, dtype=bool))
    for frame in range(3):
        [plane] = pixels.overlays(ds, frame)
        assert plane.bits.sum() == 16


def test_damaged_or_retired_planes_are_left_out_and_the_image_still_shows(tmp_path):
    path = make_overlaid_ct(tmp_path / "short.dcm", _mark())
    ds = pydicom.dcmread(path)
    ds[0x60003000].value = ds[0x60003000].value[:10]  # 80 bits of the 200 it says it has
    add_overlay(ds, _mark(), group=0x6004)
    ds[0x60040100].value = 16  # retired: the overlay in the pixel data's unused high bits
    ds.add_new(0x60060010, "US", 0)  # no size
    ds.add_new(0x60060011, "US", 20)
    ds.add_new(0x60063000, "OW", b"\xff" * 26)
    assert pixels.overlays(ds, 0) == []
    assert np.array_equal(
        pixels.render(ds, 0, pixels.Window(40, 400)),
        pixels.render(ds, 0, pixels.Window(40, 400), with_overlays=False),
    )


def test_an_image_without_planes_renders_as_before(tmp_path):
    path = make_overlaid_ct(tmp_path / "ct.dcm", _mark())
    ds = pydicom.dcmread(path)
    for element in [e for e in ds if e.tag.group == 0x6000]:
        del ds[element.tag]
    assert pixels.overlays(ds, 0) == []
    assert np.array_equal(pixels.render(ds, 0), pixels.render(ds, 0, with_overlays=False))


def test_frames_of_a_multi_frame_overlay_need_not_start_on_a_byte(tmp_path):
    marks = np.random.default_rng(1).random((4, 5, 5)) > 0.5  # 25 bits a frame
    ds = make_multiframe(tmp_path / "mf.dcm", frames=4, size=5)
    add_overlay(ds, marks)
    for frame in range(4):
        [plane] = pixels.overlays(ds, frame)
        assert np.array_equal(plane.bits, marks[frame]), frame
