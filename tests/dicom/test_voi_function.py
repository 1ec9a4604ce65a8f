"""The VOI LUT Function (0028,1056) a window is applied with: LINEAR, LINEAR_EXACT or SIGMOID
(PS3.3 C.11.2.1.2-3), as mammography and many radiography devices name SIGMOID for their
windows; the image's own unless a window names another."""

from __future__ import annotations

import subprocess

import numpy as np
import pydicom
from PIL import Image

from pacs_app.dicom import pixels
from pacs_app.services import dicomweb
from tests.dcmtk import required


def _ct(function: str | None) -> pydicom.Dataset:
    ds = pydicom.examples.ct
    ds.WindowCenter, ds.WindowWidth = 40, 400
    if function is not None:
        ds.VOILUTFunction = function
    return ds


def _hounsfield(ds: pydicom.Dataset) -> np.ndarray:
    return ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def test_sigmoid_and_linear_exact_follow_their_formulas():
    x = _hounsfield(_ct(None))
    sigmoid = np.rint(255 / (1 + np.exp(-4 * (x - 40) / 400)))
    exact = np.rint(np.clip(((x - 40) / 400 + 0.5) * 255, 0, 255))
    assert np.array_equal(pixels.render(_ct("SIGMOID")), sigmoid.astype(np.uint8))
    assert np.array_equal(pixels.render(_ct("LINEAR_EXACT")), exact.astype(np.uint8))
    # the three differ where it matters: the sigmoid keeps detail past the window's edges
    linear = pixels.render(_ct(None)).astype(int)
    assert (np.abs(linear - sigmoid) > 10).mean() > 0.1
    assert pixels.render(_ct("LINEAR")).tolist() == linear.tolist()
    assert pixels.render(_ct("GAMMA")).tolist() == linear.tolist()  # none known: linear


def test_a_window_set_by_the_reader_keeps_the_images_function_unless_it_names_one():
    ds = _ct("SIGMOID")
    own = pixels.Window(100, 800)
    x = _hounsfield(ds)
    expected = np.rint(255 / (1 + np.exp(-4 * (x - 100) / 800))).astype(np.uint8)
    assert np.array_equal(pixels.render(ds, 0, own), expected)
    linear = pixels.render(_ct(None), 0, pixels.Window(100, 800))
    assert np.array_equal(pixels.render(ds, 0, pixels.Window(100, 800, "LINEAR")), linear)
    # the rendered resources' window parameter (PS3.18 8.3.5.1.3)
    assert dicomweb.parse_window("100,800") == own
    assert dicomweb.parse_window("100,800,sigmoid") == pixels.Window(100, 800, "SIGMOID")
    assert dicomweb.parse_window("100,800,Linear-Exact").function == "LINEAR_EXACT"


def test_sigmoid_matches_dcmtk(tmp_path):
    [dcmj2pnm] = required("dcmj2pnm")
    ds = _ct("SIGMOID")
    ds.save_as(tmp_path / "sigmoid.dcm")
    subprocess.run(
        [dcmj2pnm, "+on", "+Wi", "1", str(tmp_path / "sigmoid.dcm"), str(tmp_path / "out.png")],
        check=True,
        capture_output=True,
    )
    theirs = np.asarray(Image.open(tmp_path / "out.png")).astype(int)
    ours = pixels.render(pydicom.dcmread(tmp_path / "sigmoid.dcm")).astype(int)
    assert np.abs(theirs - ours).max() <= 1
