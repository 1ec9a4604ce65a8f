"""The patient's directions at the edges of an image, as the viewer shows them beside it and
the report's PDF prints them on its key images (``assets/viewer.js``: ``orientationOf``
mirrors this rule).

The patient's axes (PS3.3 C.7.6.2.1.1) run x to the patient's left, y to the back and z to
the head: L/R, P/A and H/F. An image's rows run along the first direction cosine of its
Image Orientation (Patient), its columns along the second, so its right edge is where the
first points and its bottom edge where the second does. An oblique direction is named by up
to three letters, the largest component first ("PF" for a head CT's gantry tilt), as
pixelmed, OHIF and Horos name it, leaving out components under 0.0001 (rounding). A
projection radiograph has no Image Orientation; its Patient Orientation (C.7.6.1.1.1) names
the directions of its rows and columns in the same letters.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pydicom
from pydicom.multival import MultiValue

from pacs_app.core.errors import InvalidInput
from pacs_app.dicom import pixels

#: Each axis's letters for its negative and positive directions.
AXIS_LETTERS = (("R", "L"), ("A", "P"), ("F", "H"))
OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H"}
#: A component smaller than this is taken for rounding, not obliquity.
NEGLIGIBLE = 0.0001
_BIPED = re.compile(r"[LRAPHF]{1,3}")


class Edges(NamedTuple):
    """The patient's direction at the middle of each edge of an image."""

    top: str
    right: str
    bottom: str
    left: str


def cosines(ds: pydicom.Dataset, index: int = 0) -> tuple[float, ...] | None:
    """The Image Orientation (Patient) of frame ``index`` (0-based): its Plane Orientation
    (per-frame or shared functional group) in an enhanced object, else the dataset's; six
    finite numbers, or ``None``."""
    group = pixels._functional_group(ds, index, "PlaneOrientationSequence")
    value = (group if group is not None else ds).get("ImageOrientationPatient")
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == 6 and all(map(math.isfinite, numbers)) else None


def direction_letters(vector: tuple[float, ...]) -> str:
    """The letters of a direction in the patient's axes, the largest component first."""
    size = [abs(c) for c in vector]
    letters = ""
    for _ in range(3):
        axis = max(range(3), key=lambda a: size[a])  # the first of equal ones
        if size[axis] <= NEGLIGIBLE:
            break
        letters += AXIS_LETTERS[axis][0 if vector[axis] < 0 else 1]
        size[axis] = 0.0
    return letters


def edges(ds: pydicom.Dataset, index: int = 0) -> Edges | None:
    """The patient's directions at the edges of frame ``index``, or ``None`` where the image
    says none (or names them in a quadruped's terms, which have no opposites here)."""
    found = cosines(ds, index)
    if found is not None:
        row, column = found[:3], found[3:]
        right, bottom = direction_letters(row), direction_letters(column)
        if right and bottom:
            return Edges(
                top=direction_letters(tuple(-c for c in column)),
                right=right,
                bottom=bottom,
                left=direction_letters(tuple(-c for c in row)),
            )
    named = ds.get("PatientOrientation")
    values = [str(v) for v in named] if isinstance(named, list | tuple | MultiValue) else []
    if len(values) == 2 and all(_BIPED.fullmatch(v) for v in values):
        right, bottom = values

        def opposite(letters: str) -> str:
            return "".join(OPPOSITE[c] for c in letters)

        return Edges(top=opposite(bottom), right=right, bottom=bottom, left=opposite(right))
    return None


@dataclass(frozen=True)
class Turn:
    """How a reader turned an image to read it, as the viewer's Rotate and Flip do: mirrored
    left to right (``flipped``), then turned ``rotation`` degrees clockwise (``turned`` and
    ``shownEdges`` in ``assets/viewer.js`` mirror it)."""

    rotation: int = 0
    flipped: bool = False

    def __post_init__(self):
        if self.rotation not in (0, 90, 180, 270):
            raise InvalidInput(
                f"A turn is 0, 90, 180 or 270 degrees clockwise, not {self.rotation}."
            )

    def pixels(self, image: np.ndarray) -> np.ndarray:
        """Display pixels ((h, w) or (h, w, 3)) as turned."""
        mirrored = image[:, ::-1] if self.flipped else image
        return np.ascontiguousarray(np.rot90(mirrored, -(self.rotation // 90)))

    def point(self, x: float, y: float, width: float, height: float) -> tuple[float, float]:
        """Where image position (``x``, ``y``) lies once the ``width`` x ``height`` image is
        turned (continuous coordinates: pixel i spans [i, i + 1), as the viewer's and DICOM's
        PIXEL units count), as :meth:`pixels` moves its pixel."""
        if self.flipped:
            x = width - x
        for _ in range(self.rotation // 90):  # a quarter clockwise: the left edge goes on top
            x, y, width, height = height - y, x, height, width
        return x, y

    def edges(self, found: Edges) -> Edges:
        """The directions at the edges of the image as turned."""
        if self.flipped:
            found = Edges(found.top, found.left, found.bottom, found.right)
        for _ in range(self.rotation // 90):
            found = Edges(top=found.left, right=found.top, bottom=found.right, left=found.bottom)
        return found
