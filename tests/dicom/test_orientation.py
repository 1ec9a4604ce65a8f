"""The patient's directions at the edges of an image (``pacs_app.dicom.orientation``), which
the viewer shows beside the image and the report's PDF prints on its key images. The viewer's
mirror of the rule is checked on the same files in ``tests/browser/test_viewer.py``."""

from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from pacs_app.core.errors import InvalidInput
from pacs_app.dicom.orientation import Edges, Turn, direction_letters, edges
from tests.dicom_factory import TESTDATA, make_ct, make_multiframe

#: Real files and the directions at their edges: (top, right, bottom, left) of their first frame
ORIENTED_FILES = {
    # a head CT with a gantry tilt: its columns run back and down (its device's own Patient
    # Orientation says "L\PF" too)
    "clinical/CT_head_J2K_pixelrep_mismatch.dcm": Edges("AH", "L", "PF", "R"),
    # an axial CT stored upside down (its columns run to the front)
    "clinical/CT_pancreas_TCIA_explicitVR_UN.dcm": Edges("P", "L", "A", "R"),
    # an enhanced CT: the shared Plane Orientation, its rows running to the patient's right
    "clinical/CT_enhanced_multiframe_2f.dcm": Edges("A", "R", "P", "L"),
    # an oblique sagittal MR: its rows run 0.82 back and 0.57 left
    "clinical/MR_1024_MR2_J2KI.dcm": Edges("H", "PL", "F", "AR"),
    # a radiograph: Patient Orientation only ("L\F")
    "clinical/DX_thorax_highdicom.dcm": Edges("H", "L", "F", "R"),
}


@pytest.mark.parametrize("name", list(ORIENTED_FILES))
def test_real_images_edges(name):
    if not (TESTDATA / name).exists():
        pytest.skip(f"shared test data not found at {TESTDATA}")
    ds = pydicom.dcmread(TESTDATA / name, stop_before_pixels=True)
    found = edges(ds, 0)
    assert found == ORIENTED_FILES[name]
    if "PatientOrientation" in ds:  # the device's own words for its rows and columns
        assert [found.right, found.bottom] == list(ds.PatientOrientation)


def _oriented(row, column) -> Dataset:
    ds = Dataset()
    ds.ImageOrientationPatient = [*row, *column]
    return ds


@pytest.mark.parametrize(
    ("row", "column", "expected"),
    [
        ((1, 0, 0), (0, 1, 0), Edges("A", "L", "P", "R")),  # axial, as most CT
        ((1, 0, 0), (0, 0, -1), Edges("H", "L", "F", "R")),  # coronal
        ((0, 1, 0), (0, 0, -1), Edges("H", "P", "F", "A")),  # sagittal
        ((-1, 0, 0), (0, -1, 0), Edges("P", "R", "A", "L")),  # axial, turned half a circle
        # rotated 30 degrees in the axial plane: two letters, the larger component first
        (
            (math.cos(math.pi / 6), math.sin(math.pi / 6), 0),
            (-math.sin(math.pi / 6), math.cos(math.pi / 6), 0),
            Edges("AL", "LP", "PR", "RA"),
        ),
        # rounding (under 0.0001) is not obliquity; a double oblique has three letters
        ((1, 0.00005, 0), (0, 0.6, -0.8), Edges("HA", "L", "FP", "R")),
        ((0.8, 0.48, 0.36), (0, 0.6, -0.8), Edges("HA", "LPH", "FP", "RAF")),
    ],
)
def test_edges_from_image_orientation(row, column, expected):
    assert edges(_oriented(row, column)) == expected


def test_direction_letters_of_equal_components_take_the_axes_in_order():
    assert direction_letters((0.6, 0.6, 0.0)) == "LP"
    assert direction_letters((0.0, 0.0, 0.0)) == ""


def test_enhanced_frames_each_have_their_own_orientation(tmp_path):
    """Per-frame Plane Orientation first, then the shared one (PS3.3 C.7.6.16)."""
    ds = make_multiframe(tmp_path / "mf.dcm", frames=3)

    def plane(row, column) -> Dataset:
        group, item = Dataset(), Dataset()
        item.ImageOrientationPatient = [*row, *column]
        group.PlaneOrientationSequence = [item]
        return group

    ds.SharedFunctionalGroupsSequence = [plane((1, 0, 0), (0, 1, 0))]
    ds.PerFrameFunctionalGroupsSequence = [Dataset(), plane((0, 1, 0), (0, 0, -1)), Dataset()]
    assert [edges(ds, i) for i in range(3)] == [
        Edges("A", "L", "P", "R"),
        Edges("H", "P", "F", "A"),
        Edges("A", "L", "P", "R"),
    ]


@pytest.mark.parametrize(
    ("named", "expected"),
    [
        (["L", "F"], Edges("H", "L", "F", "R")),  # a chest PA
        (["A", "FR"], Edges("HL", "A", "FR", "P")),  # an oblique view names two
        (["CR", "D"], None),  # a quadruped's terms (C.7.6.1.1.1): no opposites here
        (["L"], None),
        (["L", "X"], None),
    ],
)
def test_edges_from_patient_orientation(named, expected):
    ds = Dataset()
    ds.PatientOrientation = named
    assert edges(ds) == expected


def test_an_image_that_says_nothing_has_no_edges(tmp_path):
    ds = pydicom.dcmread(make_ct(tmp_path / "ct.dcm"))
    assert edges(ds) == Edges("A", "L", "P", "R")
    del ds.ImageOrientationPatient
    assert edges(ds) is None
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1]  # five numbers: not an orientation
    assert edges(ds) is None
    ds.ImageOrientationPatient = [0, 0, 0, 0, 1, 0]  # no row direction
    assert edges(ds) is None


@pytest.mark.parametrize(
    ("rotation", "flipped", "pixels", "shown"),
    [
        (0, False, [[1, 2, 3], [4, 5, 6]], Edges("A", "L", "P", "R")),
        (90, False, [[4, 1], [5, 2], [6, 3]], Edges("R", "A", "L", "P")),
        (180, False, [[6, 5, 4], [3, 2, 1]], Edges("P", "R", "A", "L")),
        (270, False, [[3, 6], [2, 5], [1, 4]], Edges("L", "P", "R", "A")),
        (0, True, [[3, 2, 1], [6, 5, 4]], Edges("A", "R", "P", "L")),
        # mirrored, then turned: as the viewer shows it after Rotate, then Flip
        (270, True, [[1, 4], [2, 5], [3, 6]], Edges("R", "P", "L", "A")),
    ],
)
def test_a_turn_moves_the_pixels_and_the_edges_together(rotation, flipped, pixels, shown):
    """A reader's turn (the viewer's Rotate and Flip): mirrored left to right, then turned
    clockwise; the directions at the edges go with the pixels."""
    turn = Turn(rotation, flipped)
    image = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    assert turn.pixels(image).tolist() == pixels
    assert turn.pixels(np.dstack([image] * 3)).shape == (*np.array(pixels).shape, 3)
    assert turn.edges(Edges("A", "L", "P", "R")) == shown


def test_a_turn_is_a_quarter():
    with pytest.raises(InvalidInput, match="0, 90, 180 or 270 degrees clockwise, not 45"):
        Turn(45)


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
@pytest.mark.parametrize("flipped", [False, True])
def test_a_point_turns_with_its_pixel(rotation, flipped):
    """``Turn.point`` takes a position where ``Turn.pixels`` takes the pixel it lies in."""
    turn = Turn(rotation, flipped)
    image = np.zeros((5, 7), dtype=np.uint8)
    image[1, 4] = 1  # row 1, column 4: the square [4, 5) x [1, 2)
    turned = turn.pixels(image)
    x, y = turn.point(4.25, 1.75, 7, 5)
    assert turned[int(y), int(x)] == 1
